/* main.c: the phi3c command-line program: dispatches to one subcommand per file. */
#include "cli.h"
#include "serve.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

typedef struct cli_command {
    const char *name;
    cli_command_fn fn;
    const char *summary;
} cli_command;

static const cli_command commands[] = {
    {"run", cmd_run, "generate text from a prompt (streams tokens to stdout)"},
    {"chat", cmd_chat, "interactive multi-turn chat with the Phi-3 template"},
    {"tokenize", cmd_tokenize, "print the token ids of a text"},
    {"detokenize", cmd_detokenize, "print the text of token ids"},
    {"logits", cmd_logits, "write raw f32 logits for a token sequence"},
    {"perplexity", cmd_perplexity, "perplexity of a text file in non-overlapping windows"},
    {"quantize", cmd_quantize, "write a native INT4-g128 .phi3c model file"},
    {"info", cmd_info, "show a model's config and tensors, and the available backends"},
    {"bench", cmd_bench, "kernel and end-to-end benchmarks"},
    {"serve", serve_main, "OpenAI-compatible HTTP server with continuous batching"},
};

static void print_usage(FILE *f) {
    fprintf(f, "phi3c %s: inference engine for the Phi-3 family\n\n", PHI3C_VERSION);
    fprintf(f, "usage: phi3c COMMAND [options]   (phi3c COMMAND --help for its options)\n\n");
    for (size_t i = 0; i < P3_ARRAY_LEN(commands); i++)
        fprintf(f, "  %-11s %s\n", commands[i].name, commands[i].summary);
    fprintf(f,
            "\nMODEL paths (-m) may be a Hugging Face folder (config.json + safetensors), a GGUF "
            "file or a native .phi3c file.\n");
}

#ifdef P3_FAULT_INJECTION
/* Sanitizer build only, for tests/stages/fault_injection.sh: PHI3C_TEST_ALLOC_FAIL=N makes the
 * N-th library allocation of the main thread (from 0) fail; PHI3C_TEST_ALLOC_COUNT=1 prints how
 * many the command made, so the stage knows which indices exist. */
static void test_alloc_setup(void) {
    const char *v = getenv("PHI3C_TEST_ALLOC_FAIL");
    if (v) p3_alloc_fail_after(strtol(v, NULL, 10));
}
static int test_alloc_report(int rc) {
    if (getenv("PHI3C_TEST_ALLOC_COUNT"))
        fprintf(stderr, "phi3c: %ld allocations\n", p3_alloc_count());
    return rc;
}
#else
static void test_alloc_setup(void) {}
static int test_alloc_report(int rc) {
    return rc;
}
#endif

int main(int argc, char **argv) {
    test_alloc_setup();
    if (argc < 2) {
        print_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    if (cli_is(argv[1], "--help", "-h") || strcmp(argv[1], "help") == 0) {
        print_usage(stdout);
        return cli_finish_stdout("help", CLI_EXIT_OK);
    }
    if (cli_is(argv[1], "--version", NULL)) {
        printf("phi3c %s\n", PHI3C_VERSION);
        return cli_finish_stdout("--version", CLI_EXIT_OK);
    }
    for (size_t i = 0; i < P3_ARRAY_LEN(commands); i++) {
        if (strcmp(argv[1], commands[i].name) != 0) continue;
        int n = 0;
        char **args = cli_split_equals(argc - 1, argv + 1, &n);
        if (!args) {
            fprintf(stderr, "phi3c: out of memory\n");
            return CLI_EXIT_FAIL;
        }
        int rc = commands[i].fn(n, args);
        free(args);
        return test_alloc_report(cli_finish_stdout(argv[1], rc));
    }
    fprintf(stderr, "phi3c: unknown command '%s'\n\n", argv[1]);
    print_usage(stderr);
    return CLI_EXIT_USAGE;
}
