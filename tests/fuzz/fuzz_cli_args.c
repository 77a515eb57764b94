/* fuzz_cli_args.c: libFuzzer target for the CLI's argument parsers (tools/cli/cli_args.h): run,
 * chat, tokenize, logits, quantize, perplexity and bench, reached as main.c reaches them
 * (cli_split_equals, then --help or the parser). Input: the command line split on NUL bytes, the
 * first field naming the command ("run\0-m\0M\0-p\0hi"); at most MAX_ARGS fields of at most
 * MAX_ARG bytes. Checks: no faults or leaks; a parser answers OK or USAGE, and USAGE always with
 * a "phi3c CMD: " message; on OK, what the command relies on holds (a model path, exactly one
 * input, ids in range, values in their documented range) and every sampler setting the CLI
 * accepts is one the library's sampler accepts; the same argv parses the same way twice. */
#include "cli_args.h"
#include "api_internal.h"
#include "engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { MAX_ARGS = 64, MAX_ARG = 4096 };

/* The fields of the input as writable C strings (cli_split_equals writes into them), argv[0]
 * being the program name as in main(). */
typedef struct fuzz_argv {
    char *argv[MAX_ARGS + 2];
    int argc;
} fuzz_argv;

static bool make_argv(const uint8_t *data, size_t size, fuzz_argv *a) {
    a->argc = 0;
    a->argv[a->argc++] = strdup("phi3c");
    size_t at = 0;
    while (at < size && a->argc < MAX_ARGS + 1) {
        const uint8_t *nul = memchr(data + at, 0, size - at);
        size_t len = nul ? (size_t)(nul - (data + at)) : size - at;
        char *s = strndup((const char *)data + at, len < MAX_ARG ? len : MAX_ARG);
        if (!s) return false;
        a->argv[a->argc++] = s;
        at += len + 1;
    }
    a->argv[a->argc] = NULL;
    return a->argv[0] != NULL;
}

static void free_argv(fuzz_argv *a) {
    for (int i = 0; i < a->argc; i++) free(a->argv[i]);
}

static void check(bool ok) {
    if (!ok) __builtin_trap();
}

/* What the library's sampler refuses, the CLI must refuse as a usage error, not accept. */
static void check_sampler(const phi3c_sampler_params *p) {
    p3_sampler_options so = p3_api_sampler_options(p);
    p3_sampler *s = NULL;
    p3_error err = {0};
    check(p3_sampler_create(&so, 8, &s, &err) == PHI3C_OK);
    p3_sampler_free(s);
}

static void check_engine(const cli_engine_opts *o) {
    check(o->model_path != NULL);
    check(o->session.n_ctx >= 0 && o->session.n_ctx <= 1 << 24);
    check(!o->ctx_given || o->session.n_ctx >= 1);
    check(o->model.n_threads >= 0 && o->model.n_threads <= 1024);
    check(o->session.n_batch >= 0 && o->session.n_batch <= 1 << 16); /* 0: the default */
}

static void check_ids(const int32_t *ids, size_t n) {
    check(ids != NULL && n > 0);
    for (size_t i = 0; i < n; i++) check(ids[i] >= 0);
}

/* Parses argv as COMMAND's parser; on OK checks its result. Returns the parser's answer. */
static int parse(const char *cmd, int argc, char **argv) {
    if (strcmp(cmd, "run") == 0) {
        cli_run_args a;
        int rc = cli_run_parse(argc, argv, &a);
        if (rc == CLI_EXIT_OK) {
            check_engine(&a.o);
            check_sampler(&a.o.sampler);
            check((a.prompt != NULL) + (a.file != NULL) + (a.ids_text != NULL) == 1);
            check(!a.system || a.chat);
            check(!a.ids_text || (!a.chat && a.print_ids));
            if (a.ids_text) check_ids(a.ids, a.n_ids);
            check(a.n_predict >= -1 && a.n_predict <= 1 << 24);
        }
        free(a.ids);
        return rc;
    }
    if (strcmp(cmd, "chat") == 0) {
        cli_chat_args a;
        int rc = cli_chat_parse(argc, argv, &a);
        if (rc == CLI_EXIT_OK) {
            check_engine(&a.o);
            check_sampler(&a.o.sampler);
            check(a.n_predict >= -1 && a.n_predict <= 1 << 24);
        }
        return rc;
    }
    if (strcmp(cmd, "tokenize") == 0) {
        cli_tokenize_args a;
        int rc = cli_tokenize_parse(argc, argv, &a);
        if (rc == CLI_EXIT_OK) check(a.model && (a.file != NULL) + (a.text != NULL) == 1);
        return rc;
    }
    if (strcmp(cmd, "logits") == 0) {
        cli_logits_args a;
        int rc = cli_logits_parse(argc, argv, &a);
        if (rc == CLI_EXIT_OK) {
            check_engine(&a.o);
            check(a.out_path && (a.ids_text != NULL) + (a.ids_file != NULL) == 1);
            if (a.ids_text) check_ids(a.ids, a.n_ids);
        }
        free(a.ids);
        return rc;
    }
    if (strcmp(cmd, "quantize") == 0) {
        cli_quantize_args a;
        int rc = cli_quantize_parse(argc, argv, &a);
        if (rc == CLI_EXIT_OK) {
            check(a.in && a.out);
            size_t len = strlen(a.out);
            check(len < 5 || strcasecmp(a.out + len - 5, ".gguf") != 0);
            check(a.o.n_threads >= 0 && a.o.n_threads <= 256);
        }
        return rc;
    }
    if (strcmp(cmd, "perplexity") == 0) {
        cli_perplexity_args a;
        int rc = cli_perplexity_parse(argc, argv, &a);
        if (rc == CLI_EXIT_OK) {
            check_engine(&a.o);
            check(!a.o.ctx_given || a.o.session.n_ctx >= (a.llama ? 3 : 2));
            check((a.file != NULL) + (a.ids_file != NULL) == 1);
        }
        return rc;
    }
    if (strcmp(cmd, "bench") == 0) return cli_bench_parse(argc, argv);
    return -1; /* not a command with a parser here */
}

/* Runs the parser with stderr captured; checks the answer and its message. */
static int parse_captured(const char *cmd, int argc, char **argv) {
    char *msg = NULL;
    size_t msg_len = 0;
    FILE *saved = stderr, *capture = open_memstream(&msg, &msg_len);
    if (!capture) return -1;
    stderr = capture;
    int rc = parse(cmd, argc, argv);
    stderr = saved;
    fclose(capture);
    if (rc != -1) check(rc == CLI_EXIT_OK || rc == CLI_EXIT_USAGE);
    if (rc == CLI_EXIT_USAGE) {
        char want[64];
        snprintf(want, sizeof want, "phi3c %s: ", cmd);
        check(msg_len > strlen(want) && memcmp(msg, want, strlen(want)) == 0);
    }
    free(msg);
    return rc;
}

/* main.c's path: argv[1] names the command, cli_split_equals splits --name=value, the command
 * prints its help when asked, else parses. */
static int run_once(const uint8_t *data, size_t size) {
    fuzz_argv fa;
    if (!make_argv(data, size, &fa) || fa.argc < 2) {
        free_argv(&fa);
        return -2;
    }
    int n = 0;
    char **args = cli_split_equals(fa.argc - 1, fa.argv + 1, &n);
    check(args != NULL);
    check(n >= fa.argc - 1 && n <= 2 * (fa.argc - 1) && args[n] == NULL);
    int rc = -2;
    if (!cli_wants_help(n, args)) rc = parse_captured(fa.argv[1], n, args);
    free(args);
    free_argv(&fa);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int first = run_once(data, size);
    check(run_once(data, size) == first);
    return 0;
}
