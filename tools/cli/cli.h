/* cli.h: shared pieces of the phi3c command-line program: the subcommand table, argument
 * helpers and the one place that turns a phi3c_error into a message and an exit code. */
#ifndef P3_CLI_H
#define P3_CLI_H

#include "p3.h"

#include <signal.h>
#include <stdio.h>

typedef int (*cli_command_fn)(int argc, char **argv); /* argv[0] is the subcommand name */

/* Each subcommand lives in its own file: cmd_<name>.c. */
int cmd_run(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_detokenize(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);

/* Exit codes: 0 ok, 1 runtime failure (bad file, device error...), 2 usage error. */
enum { CLI_EXIT_OK = 0, CLI_EXIT_FAIL = 1, CLI_EXIT_USAGE = 2 };

/* Prints "phi3c CMD: MESSAGE" to stderr and returns CLI_EXIT_FAIL. */
int cli_fail(const char *cmd, const p3_error *err);
/* Prints "phi3c CMD: <formatted>" and a hint to run --help; returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) P3_PRINTF(2, 3);

/* True when argv[i] is `flag` or `alias` (alias may be NULL). */
bool cli_is(const char *arg, const char *flag, const char *alias);
/* Takes the value after a flag: returns it and advances *i, or NULL (with a usage message) when
 * the flag is last. */
const char *cli_value(const char *cmd, int argc, char **argv, int *i);
/* Parses a whole decimal int in [lo, hi]; false (with a usage message) otherwise. */
bool cli_int(const char *cmd, const char *flag, const char *text, long lo, long hi, long *out);
bool cli_float(const char *cmd, const char *flag, const char *text, double lo, double hi,
               double *out);
/* Flushes stdout; when it or any earlier write to it failed (a full disk, a closed pipe), prints
 * the cause and turns a successful rc into CLI_EXIT_FAIL: output that was lost is not a success. */
int cli_finish_stdout(const char *cmd, int rc);
/* fflush(stdout) that keeps the cause of a failure for cli_finish_stdout; false once any write to
 * stdout failed. Commands flush with this, never with fflush(stdout). */
bool cli_flush_stdout(void);
/* For commands that write a file: INT, TERM, HUP, QUIT and PIPE (every signal a terminal, a
 * session end or a closed pipe sends) set cli_stop_signal instead of ending the process, so the
 * command stops at its next check and removes its temp file. */
extern volatile sig_atomic_t cli_stop_signal;
void cli_catch_stop_signals(void);
/* True when --help or -h is among the arguments. */
bool cli_wants_help(int argc, char **argv);

/* A copy of argv (NULL-terminated, free with free()) where every `--name=value` is split into
 * `--name` `value`, so each command's parser sees one spelling. An argument after `--` stays. */
char **cli_split_equals(int argc, char **argv, int *argc_out);
/* A seed from the kernel's random source (63 bits, so `--seed` takes it back). */
uint64_t cli_random_seed(void);
/* Online CPU cores. */
int cli_core_count(void);

/* A progress bar on stderr for long work, drawn only when stderr is a terminal (nothing in logs or
 * pipes), at most 10 times a second: "LABEL [#####.....]  45%  DETAIL  ETA 12 s". */
typedef struct cli_progress {
    const char *label;
    double t0, last;
    bool tty, drawn;
} cli_progress;
void cli_progress_init(cli_progress *p, const char *label);
void cli_progress_draw(cli_progress *p, uint64_t done, uint64_t total, const char *detail);
/* Ends the bar: keeps it on its line (keep) or erases it. */
void cli_progress_end(cli_progress *p, bool keep);
/* A phi3c_progress_fn drawing the bar of `user` (a cli_progress) in weight tensors. */
bool cli_progress_tensors(void *user, uint64_t done, uint64_t total);

#endif /* P3_CLI_H */
