/* cmd_logits.c: `phi3c logits`: raw f32 logits of a token sequence, from one prefill of the whole
 * sequence or (--decode) one token at a time through the KV cache. Needs no tokenizer. */
#include "cli_args.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "phi3c logits writes the host's floats as little-endian: big-endian hosts need a swap"
#endif

static const char usage[] =
    "usage: phi3c logits -m MODEL (--ids \"1 2 3 ...\" | --ids-file FILE) --out FILE [options]\n"
    "\n"
    "Writes raw little-endian float32 logits, one row of vocab_size per input position. By\n"
    "default the whole sequence is one prefill; with --decode the tokens go one at a time\n"
    "through the KV cache and row p is the logits of step p.\n"
    "\n"
    "  --ids \"IDS\"           token ids, separated by spaces or commas\n"
    "  --ids-file FILE       the same, read from a file\n"
    "  -o, --out FILE        output file (required): a new path or a regular file, replaced\n"
    "                        only once all rows are written (never a device or FIFO)\n"
    "  --decode              feed one token at a time\n";

static bool read_ids_file(const char *path, int32_t **ids, size_t *n) {
    char *text = NULL;
    size_t size;
    p3_error err = {0};
    if (p3_file_read_all(path, &text, &size, &err) != PHI3C_OK) {
        cli_fail("logits", &err);
        return false;
    }
    bool ok = cli_parse_ids(text, ids, n);
    p3_free(text);
    if (!ok) fprintf(stderr, "phi3c logits: %s: expected decimal token ids\n", path);
    return ok;
}

/* write() until done; false with errno set on a failure (a full disk: ENOSPC). */
static bool write_all(int fd, const void *data, size_t n) {
    const char *p = data;
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            if (k == 0) errno = EIO;
            return false;
        }
        p += k;
        n -= (size_t)k;
    }
    return true;
}

/* Runs the ids and writes the rows to fd; returns an exit code. */
static int write_logits(phi3c_session *s, int vocab, const int32_t *ids, size_t n, bool decode,
                        int fd, const char *out_path) {
    phi3c_error err = {0};
    size_t rows = decode ? 1 : n;
    float *logits = malloc(rows * (size_t)vocab * sizeof(float));
    if (!logits) {
        fprintf(stderr, "phi3c logits: out of memory for %zu logit rows\n", rows);
        return CLI_EXIT_FAIL;
    }
    int rc = CLI_EXIT_OK;
    for (size_t p = 0; p < n && rc == CLI_EXIT_OK; p += rows) {
        if (cli_stop_signal) {
            fprintf(stderr, "phi3c logits: interrupted (signal %d)\n", (int)cli_stop_signal);
            rc = CLI_EXIT_FAIL;
        } else if (phi3c_session_feed_tokens(s, ids + p, rows, decode ? NULL : logits, &err) !=
                   PHI3C_OK) {
            rc = cli_fail("logits", &err);
        } else if (!write_all(fd, decode ? phi3c_session_logits(s) : logits,
                              rows * (size_t)vocab * sizeof(float))) {
            fprintf(stderr, "phi3c logits: %s: write failed: %s\n", out_path, strerror(errno));
            rc = CLI_EXIT_FAIL;
        }
    }
    free(logits);
    return rc;
}

/* The rows go to a temp file beside out_path, renamed into place once complete and on disk: a
 * failure (a full disk, a bad id, a signal) leaves no file, not a partial or empty one. */
static int write_logits_file(phi3c_model *model, phi3c_session *s, const int32_t *ids, size_t n,
                             bool decode, const char *out_path) {
    p3_error err = {0};
    char *tmp = NULL;
    int fd = -1;
    if (p3_output_temp(out_path, &tmp, &fd, &err) != PHI3C_OK) return cli_fail("logits", &err);
    int vocab = phi3c_model_vocab_size(model);
    int rc = write_logits(s, vocab, ids, n, decode, fd, out_path);
    if (rc == CLI_EXIT_OK && (fsync(fd) != 0 || fchmod(fd, 0644) != 0)) {
        fprintf(stderr, "phi3c logits: %s: write failed: %s\n", out_path, strerror(errno));
        rc = CLI_EXIT_FAIL;
    }
    if (close(fd) != 0 && rc == CLI_EXIT_OK) {
        fprintf(stderr, "phi3c logits: %s: write failed: %s\n", out_path, strerror(errno));
        rc = CLI_EXIT_FAIL;
    }
    if (rc == CLI_EXIT_OK && p3_output_commit(tmp, out_path, true, &err) != PHI3C_OK)
        rc = cli_fail("logits", &err);
    if (rc != CLI_EXIT_OK) unlink(tmp);
    p3_free(tmp);
    if (rc == CLI_EXIT_OK)
        fprintf(stderr, "phi3c logits: wrote %zu rows of %d floats to %s\n", n, vocab, out_path);
    return rc;
}

int cli_logits_parse(int argc, char **argv, cli_logits_args *a) {
    memset(a, 0, sizeof *a);
    cli_engine_opts_init(&a->o);
    for (int i = 1; i < argc; i++) {
        int r = cli_engine_flag("logits", argc, argv, &i, &a->o);
        if (r == CLI_FLAG_BAD) return CLI_EXIT_USAGE;
        if (r == CLI_FLAG_TAKEN) continue;
        if (cli_is(argv[i], "--decode", NULL)) {
            a->decode = true;
        } else if (cli_is(argv[i], "--ids", NULL) || cli_is(argv[i], "--ids-file", NULL) ||
                   cli_is(argv[i], "-o", "--out")) {
            const char *flag = argv[i], *v = cli_value("logits", argc, argv, &i);
            if (!v) return CLI_EXIT_USAGE;
            if (cli_is(flag, "--ids", NULL))
                a->ids_text = v;
            else if (cli_is(flag, "--ids-file", NULL))
                a->ids_file = v;
            else
                a->out_path = v;
        } else {
            return cli_usage_error("logits", "unknown option '%s'", argv[i]);
        }
    }
    if (!a->o.model_path) return cli_usage_error("logits", "-m MODEL is required");
    if (!a->out_path) return cli_usage_error("logits", "--out FILE is required");
    if (!a->ids_text == !a->ids_file)
        return cli_usage_error("logits", "give one of --ids, --ids-file");
    if (a->ids_text && !cli_parse_ids(a->ids_text, &a->ids, &a->n_ids))
        return cli_usage_error("logits", "--ids wants decimal token ids, got '%s'", a->ids_text);
    return CLI_EXIT_OK;
}

int cmd_logits(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        printf("%s%s%s", usage, cli_engine_help, cli_ctx_help);
        return CLI_EXIT_OK;
    }
    cli_logits_args a;
    if (cli_logits_parse(argc, argv, &a) != CLI_EXIT_OK) return CLI_EXIT_USAGE;
    cli_engine_opts o = a.o;
    const char *ids_file = a.ids_file, *out_path = a.out_path;
    bool decode = a.decode;
    int32_t *ids = a.ids;
    size_t n = a.n_ids;
    if (ids_file && !read_ids_file(ids_file, &ids, &n)) return CLI_EXIT_FAIL;
    p3_error err = {0};
    if (p3_output_check(out_path, true, &err) != PHI3C_OK) { /* before the model loads */
        free(ids);
        return cli_fail("logits", &err);
    }
    cli_catch_stop_signals();

    /* the cache holds exactly the sequence unless the user chose -c */
    if (!o.ctx_given) o.session.n_ctx = (int)P3_MIN(n, (size_t)1 << 24);
    o.session.all_logits = !decode;
    phi3c_model *model;
    phi3c_session *s;
    if (!cli_engine_open("logits", &o, &model, &s)) {
        free(ids);
        return CLI_EXIT_FAIL;
    }
    int rc = write_logits_file(model, s, ids, n, decode, out_path);
    phi3c_session_free(s);
    phi3c_model_free(model);
    free(ids);
    return rc;
}
