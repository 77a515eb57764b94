/* cmd_tokenize.c: `phi3c tokenize`: prints the token ids of a text (argument or file, used byte for
 * byte) separated by single spaces, then one newline. */
#include "cli_args.h"
#include "tokenizer.h"

#include <stdlib.h>
#include <string.h>

static const char *const CMD = "tokenize";

static void usage(FILE *f) {
    fprintf(
        f,
        "usage: phi3c tokenize -m PATH [--bos] [--no-special] (--file F | TEXT)\n\n"
        "Prints the token ids of TEXT (or of file F; '-' reads stdin), separated by single\n"
        "spaces and followed by one newline. The text is used byte for byte.\n\n"
        "  -m, --model PATH  model folder, folder with tokenizer.json (+ tokenizer_config.json)\n"
        "                    or only tokenizer.model, a GGUF file, or a native .phi3c file\n"
        "  --bos             prepend the BOS id (only then, whatever add_bos_token says)\n"
        "  --no-special      do not recognise special tokens written in the text (as HF's\n"
        "                    split_special_tokens: added tokens not marked special still are)\n"
        "  --file F          read the text from F instead of the argument\n");
}

/* Reads all of stdin into a heap buffer, at most P3_FILE_READ_MAX bytes (as --file). */
static bool read_stdin(char **data, size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    if (!buf) return false;
    size_t got;
    while ((got = fread(buf + n, 1, cap - n, stdin)) > 0) {
        n += got;
        if (n > P3_FILE_READ_MAX) {
            fprintf(stderr, "phi3c %s: stdin: larger than the limit of %zu MiB\n", CMD,
                    P3_FILE_READ_MAX >> 20);
            free(buf);
            return false;
        }
        if (n == cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                return false;
            }
            buf = nb;
            cap *= 2;
        }
    }
    *data = buf;
    *len = n;
    return true;
}

static int print_ids(const int32_t *ids, size_t n) {
    for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", (int)ids[i]);
    printf("\n");
    return cli_flush_stdout() ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

int cli_tokenize_parse(int argc, char **argv, cli_tokenize_args *a) {
    memset(a, 0, sizeof *a);
    for (int i = 1; i < argc; i++) {
        if (cli_is(argv[i], "--model", "-m")) {
            if (!(a->model = cli_value(CMD, argc, argv, &i))) return CLI_EXIT_USAGE;
        } else if (cli_is(argv[i], "--file", "-f")) {
            if (!(a->file = cli_value(CMD, argc, argv, &i))) return CLI_EXIT_USAGE;
        } else if (cli_is(argv[i], "--bos", NULL)) {
            a->flags |= P3_ENCODE_ADD_BOS;
        } else if (cli_is(argv[i], "--no-special", NULL)) {
            a->flags |= P3_ENCODE_NO_SPECIAL;
        } else if (cli_is(argv[i], "--", NULL) && i + 2 == argc && !a->text) {
            a->text = argv[++i]; /* a TEXT that starts with '-' */
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            return cli_usage_error(CMD, "unknown option '%s'", argv[i]);
        } else if (!a->text) {
            a->text = argv[i];
        } else {
            return cli_usage_error(CMD, "give the text as one argument (quote it)");
        }
    }
    if (!a->model) return cli_usage_error(CMD, "-m PATH is required");
    if (!a->file == !a->text) return cli_usage_error(CMD, "give either TEXT or --file F");
    return CLI_EXIT_OK;
}

int cmd_tokenize(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    cli_tokenize_args a;
    if (cli_tokenize_parse(argc, argv, &a) != CLI_EXIT_OK) return CLI_EXIT_USAGE;
    const char *model = a.model, *file = a.file, *text = a.text;
    unsigned flags = a.flags;
    p3_error err = {0};
    char *data = NULL;
    size_t len = 0;
    bool heap = false;
    if (file && strcmp(file, "-") == 0) {
        if (!read_stdin(&data, &len))
            return p3_fail(&err, PHI3C_ERR_IO, "cannot read stdin"), cli_fail(CMD, &err);
        heap = true;
    } else if (file) {
        if (p3_file_read_all(file, &data, &len, &err) != PHI3C_OK) return cli_fail(CMD, &err);
    } else {
        data = (char *)text;
        len = strlen(text);
    }
    p3_tokenizer *tok = NULL;
    int rc = CLI_EXIT_FAIL;
    int32_t *ids = NULL;
    size_t n = 0;
    if (p3_tokenizer_load_path(model, &tok, &err) == PHI3C_OK &&
        p3_tokenizer_encode(tok, data, len, flags, &ids, &n, &err) == PHI3C_OK)
        rc = print_ids(ids, n);
    else
        cli_fail(CMD, &err);
    p3_free(ids);
    p3_tokenizer_free(tok);
    if (heap)
        free(data);
    else if (file)
        p3_free(data);
    return rc;
}
