/* cmd_detokenize.c: `phi3c detokenize`: prints the text of token ids and nothing else (no newline),
 * so that decode(encode(x)) can be compared byte for byte. */
#include "cli.h"
#include "source.h"
#include "tokenizer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char *const CMD = "detokenize";

static void usage(FILE *f) {
    fprintf(f,
            "usage: phi3c detokenize -m PATH [--skip-special] ID...   (at least one id)\n\n"
            "Prints the decoded text of the ids (separate arguments or one quoted list, spaces or\n"
            "commas between them) exactly as HF decodes it, with no newline added.\n\n"
            "  -m, --model PATH  model folder, tokenizer folder, GGUF or native .phi3c file\n"
            "  --skip-special    leave out the special tokens (HF's skip_special_tokens)\n");
}

/* Appends the ids in one argument ("1 2 3", "1,2,3" or "1") to ids; false on anything else. */
static bool parse_id_list(const char *arg, int32_t **ids, size_t *n, size_t *cap) {
    const char *p = arg;
    for (;;) {
        while (*p == ' ' || *p == ',' || *p == '\t' || *p == '\n' || *p == '[' || *p == ']') p++;
        if (!*p) return true;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > INT32_MAX) return false;
        if (*end && !strchr(" ,\t\n[]", *end)) return false;
        if (*n == *cap) {
            size_t nc = *cap ? *cap * 2 : 64;
            int32_t *ni = realloc(*ids, nc * sizeof *ni);
            if (!ni) return false;
            *ids = ni;
            *cap = nc;
        }
        (*ids)[(*n)++] = (int32_t)v;
        p = end;
    }
}

/* The model's vocab_size (config.json, GGUF or native header: the size `phi3c info` shows), or
 * the tokenizer's for a tokenizer-only path. */
static int model_vocab_size(const char *path, int tokenizer_vocab) {
    p3_model_source *src = NULL;
    p3_error err = {0};
    int vocab = tokenizer_vocab;
    if (p3_source_open_verify(path, false, &src, &err) == PHI3C_OK && src->has_config &&
        src->config.vocab_size > vocab)
        vocab = src->config.vocab_size;
    p3_source_close(src);
    return vocab;
}

int cmd_detokenize(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    const char *model = NULL;
    unsigned flags = 0;
    int32_t *ids = NULL;
    size_t n = 0, cap = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_is(argv[i], "--model", "-m")) {
            if (!(model = cli_value(CMD, argc, argv, &i))) goto usage_fail;
        } else if (cli_is(argv[i], "--skip-special", NULL)) {
            flags |= P3_DECODE_SKIP_SPECIAL;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            cli_usage_error(CMD, "unknown option '%s'", argv[i]);
            goto usage_fail;
        } else if (!parse_id_list(argv[i], &ids, &n, &cap)) {
            cli_usage_error(CMD, "'%s' is not a token id (a whole number >= 0)", argv[i]);
            goto usage_fail;
        }
    }
    if (!model) {
        cli_usage_error(CMD, "-m PATH is required");
        goto usage_fail;
    }
    if (n == 0) {
        cli_usage_error(CMD, "no token ids given");
        goto usage_fail;
    }
    p3_error err = {0};
    p3_tokenizer *tok = NULL;
    char *text = NULL;
    size_t len = 0;
    int rc = CLI_EXIT_OK;
    if (p3_tokenizer_load_path(model, &tok, &err) == PHI3C_OK) {
        /* the library drops ids without a token, as HF does (the model's vocabulary may have
         * padding rows past the tokenizer's); past the model's vocabulary it is a typo */
        int vocab = model_vocab_size(model, (int)p3_tokenizer_vocab_size(tok));
        for (size_t i = 0; i < n; i++)
            if (ids[i] >= vocab) {
                p3_fail(&err, PHI3C_ERR_INVALID_ARG,
                        "token id %d out of range (vocabulary size %d)", (int)ids[i], vocab);
                break;
            }
    }
    if (tok && !err.message[0] &&
        p3_tokenizer_decode(tok, ids, n, flags, &text, &len, &err) == PHI3C_OK) {
        if (fwrite(text, 1, len, stdout) != len || !cli_flush_stdout()) rc = CLI_EXIT_FAIL;
    } else {
        rc = cli_fail(CMD, &err);
    }
    p3_free(text);
    p3_tokenizer_free(tok);
    free(ids);
    return rc;
usage_fail:
    free(ids);
    return CLI_EXIT_USAGE;
}
