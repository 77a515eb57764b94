/* cli_args.h: each command's argument parser on its own, apart from the work the command then
 * does (loading a model, reading files), so the parsers can be tested and fuzzed
 * (tests/fuzz/fuzz_cli_args.c) without a model. A parser returns CLI_EXIT_OK, or CLI_EXIT_USAGE
 * after printing the usage message; --help is handled by the command before it parses. */
#ifndef P3_CLI_ARGS_H
#define P3_CLI_ARGS_H

#include "cli_engine.h"
#include "phi3c_file.h"

typedef struct cli_run_args {
    cli_engine_opts o;
    const char *prompt, *file, *system, *ids_text;
    int32_t *ids; /* --prompt-ids parsed (malloc'd, the caller frees) */
    size_t n_ids;
    bool chat, echo, print_ids, verbose;
    long n_predict;
} cli_run_args;
int cli_run_parse(int argc, char **argv, cli_run_args *a);

typedef struct cli_chat_args {
    cli_engine_opts o;
    const char *system;
    long n_predict;
} cli_chat_args;
int cli_chat_parse(int argc, char **argv, cli_chat_args *a);

typedef struct cli_tokenize_args {
    const char *model, *file, *text;
    unsigned flags; /* P3_ENCODE_* */
} cli_tokenize_args;
int cli_tokenize_parse(int argc, char **argv, cli_tokenize_args *a);

typedef struct cli_logits_args {
    cli_engine_opts o;
    const char *ids_text, *ids_file, *out_path;
    int32_t *ids; /* --ids parsed (malloc'd, the caller frees) */
    size_t n_ids;
    bool decode;
} cli_logits_args;
int cli_logits_parse(int argc, char **argv, cli_logits_args *a);

typedef struct cli_quantize_args {
    const char *in, *out;
    p3_native_write_opts o;
} cli_quantize_args;
int cli_quantize_parse(int argc, char **argv, cli_quantize_args *a);

typedef struct cli_perplexity_args {
    cli_engine_opts o;
    const char *file, *ids_file;
    bool llama;
} cli_perplexity_args;
int cli_perplexity_parse(int argc, char **argv, cli_perplexity_args *a);

/* bench's options are many and its own (bench.h); this parses them into a throw-away copy. */
int cli_bench_parse(int argc, char **argv);

#endif /* P3_CLI_ARGS_H */
