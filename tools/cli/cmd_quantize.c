/* cmd_quantize.c: `phi3c quantize`: any model source (HF folder, GGUF, native file) to one native
 * .phi3c file with INT4-g128 linear weights, with a progress bar on a terminal and Ctrl-C that
 * leaves no output behind. */
#include "cli_args.h"
#include "gguf.h"
#include "phi3c_file.h"
#include "tokenizer.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static void print_help(void) {
    printf("usage: phi3c quantize -m IN -o OUT.phi3c [options]\n\n"
           "Writes a native phi3c file: config, tokenizer files and weights, linear layers in\n"
           "INT4 with one f16 scale per 128 weights, XXH3-64 checksums (docs/FORMAT.md).\n\n"
           "  -m, --model IN      HF folder, .gguf or .phi3c file\n"
           "  -o, --output OUT    output file (written beside it as a temp file, then renamed);\n"
           "                      a name ending in .gguf is refused (the file is not GGUF)\n"
           "  --sym               symmetric INT4 (default)\n"
           "  --asym              asymmetric INT4 (scale and zero point per group)\n"
           "  --group 128         group size (only 128 is supported)\n"
           "  --method M          search (default: per group, the scale with the least squared\n"
           "                      error) or rtn (round to nearest with the absmax scale)\n"
           "  --embed T           f16 (default; bf16 sources stay bf16) or int4\n"
           "  -t, --threads N     quantization threads (default: all CPUs)\n"
           "  --force             replace OUT if it exists\n");
}

/* The bar: tensors and MB written, and the write rate (stderr on a terminal only). */
static bool on_progress(void *user, size_t i, size_t n, uint64_t done, uint64_t total) {
    cli_progress *p = user;
    if (cli_stop_signal) return false; /* the writer removes its temp file */
    double el = p3_time_now() - p->t0;
    char detail[96];
    snprintf(detail, sizeof detail, "tensor %zu/%zu  %.0f/%.0f MB  %.1f MB/s", i + 1, n,
             (double)done / 1e6, (double)total / 1e6, el > 0 ? (double)done / 1e6 / el : 0.0);
    cli_progress_draw(p, done, total, detail);
    return true;
}

typedef struct quantize_summary_args {
    const char *out, *method;
    bool asym;
    double seconds;
    const p3_native_write_stats *stats;
} quantize_summary_args;

/* The closing summary (stderr, always): what was written, its size, bits per weight, time and the
 * mean normalized squared error of the INT4 weights against the source's. */
static const char *human_bytes(uint64_t n, char *buf, size_t len) {
    if (n >= 1000000000u)
        snprintf(buf, len, "%.2f GB", (double)n / 1e9);
    else
        snprintf(buf, len, "%.2f MB", (double)n / 1e6);
    return buf;
}

static void print_summary(const quantize_summary_args *q) {
    const p3_native_write_stats *s = q->stats;
    char in[32], out[32];
    double bpw = s->int4_weights ? 8.0 * (double)s->int4_bytes / (double)s->int4_weights : 0.0;
    fprintf(stderr,
            "quantize: wrote %s: %zu tensors (%zu INT4-g128 %s, %s), %s in -> %s out, %.3f bits "
            "per INT4 weight, %.1f s, mean weight NMSE %.3e\n",
            q->out, s->n_tensors, s->n_int4, q->asym ? "asym" : "sym", q->method,
            human_bytes(s->bytes_in, in, sizeof in), human_bytes(s->bytes_out, out, sizeof out),
            bpw, q->seconds, s->n_int4 ? s->nmse_sum / (double)s->n_int4 : 0.0);
}

/* PHI3C_TEST_WRITE_FAULT=KIND:BYTES (tests only): enospc, kill (SIGKILL), or a signal the command
 * catches: sigint, sigterm, sighup, sigquit, sigpipe. */
static void read_test_fault(p3_native_write_opts *o) {
    const char *v = getenv("PHI3C_TEST_WRITE_FAULT");
    if (!v) return;
    static const struct {
        const char *name;
        p3_native_fault fault;
        int sig;
    } kinds[] = {{"enospc:", P3N_FAULT_ENOSPC, 0},       {"kill:", P3N_FAULT_SIGKILL, 0},
                 {"sigint:", P3N_FAULT_SIGINT, 0},       {"sigterm:", P3N_FAULT_SIGNAL, SIGTERM},
                 {"sighup:", P3N_FAULT_SIGNAL, SIGHUP},  {"sigquit:", P3N_FAULT_SIGNAL, SIGQUIT},
                 {"sigpipe:", P3N_FAULT_SIGNAL, SIGPIPE}};
    for (size_t i = 0; i < P3_ARRAY_LEN(kinds); i++) {
        size_t n = strlen(kinds[i].name);
        if (strncmp(v, kinds[i].name, n) == 0) {
            o->test_fault = kinds[i].fault;
            o->test_fault_signal = kinds[i].sig;
            o->test_fault_at = strtoull(v + n, NULL, 10);
        }
    }
}

/* The tokenizer files are copied into the output as they are: a corrupt one is refused here,
 * not found when the quantized model is first run. A source without any tokenizer is fine. */
static bool gguf_has_tokenizer(const p3_gguf *g) {
    static const char key[] = "tokenizer.ggml.model";
    for (size_t i = 0; i < g->n_kvs; i++)
        if (g->kvs[i].key.len == sizeof key - 1 &&
            memcmp(g->kvs[i].key.s, key, sizeof key - 1) == 0)
            return true;
    return false;
}

static p3_status check_tokenizer(const p3_model_source *src, p3_error *err) {
    if (src->gguf && !gguf_has_tokenizer(src->gguf)) return PHI3C_OK; /* none to copy */
    p3_tokenizer *tok = NULL;
    p3_status st = p3_tokenizer_load_source(src, &tok, err);
    p3_tokenizer_free(tok);
    if (st == PHI3C_ERR_UNSUPPORTED) {
        p3_error_clear(err);
        return PHI3C_OK;
    }
    if (st != PHI3C_OK) p3_error_prefix(err, "the tokenizer cannot be loaded");
    return st;
}

int cli_quantize_parse(int argc, char **argv, cli_quantize_args *a) {
    const char *cmd = "quantize";
    memset(a, 0, sizeof *a);
    a->o.method = P3_QUANT_SEARCH;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *v;
        long n;
        if (cli_is(arg, "--model", "-m") || cli_is(arg, "--output", "-o")) {
            if (!(v = cli_value(cmd, argc, argv, &i))) return CLI_EXIT_USAGE;
            *(cli_is(arg, "--model", "-m") ? &a->in : &a->out) = v;
        } else if (cli_is(arg, "--sym", NULL) || cli_is(arg, "--asym", NULL)) {
            a->o.asym = cli_is(arg, "--asym", NULL);
        } else if (cli_is(arg, "--group", NULL)) {
            if (!(v = cli_value(cmd, argc, argv, &i)) || !cli_int(cmd, arg, v, 1, 1 << 20, &n))
                return CLI_EXIT_USAGE;
            if (n != P3_QK) return cli_usage_error(cmd, "only --group %d is supported", P3_QK);
        } else if (cli_is(arg, "--method", NULL)) {
            if (!(v = cli_value(cmd, argc, argv, &i))) return CLI_EXIT_USAGE;
            if (strcmp(v, "search") && strcmp(v, "rtn"))
                return cli_usage_error(cmd, "--method wants search or rtn, got '%s'", v);
            a->o.method = strcmp(v, "rtn") == 0 ? P3_QUANT_RTN : P3_QUANT_SEARCH;
        } else if (cli_is(arg, "--embed", NULL)) {
            if (!(v = cli_value(cmd, argc, argv, &i))) return CLI_EXIT_USAGE;
            if (strcmp(v, "f16") && strcmp(v, "int4"))
                return cli_usage_error(cmd, "--embed wants f16 or int4, got '%s'", v);
            a->o.embed_int4 = strcmp(v, "int4") == 0;
        } else if (cli_is(arg, "--threads", "-t")) {
            if (!(v = cli_value(cmd, argc, argv, &i)) || !cli_int(cmd, arg, v, 1, 256, &n))
                return CLI_EXIT_USAGE;
            a->o.n_threads = (int)n;
        } else if (cli_is(arg, "--force", NULL)) {
            a->o.force = true;
        } else {
            return cli_usage_error(cmd, "unknown option '%s'", arg);
        }
    }
    if (!a->in || !a->out) return cli_usage_error(cmd, "needs -m IN and -o OUT");
    size_t len = strlen(a->out);
    if (len >= 5 && strcasecmp(a->out + len - 5, ".gguf") == 0)
        return cli_usage_error(cmd,
                               "%s: quantize writes a native .phi3c file, not GGUF (name it "
                               "OUT.phi3c; phi3c loads GGUF files as they are)",
                               a->out);
    return CLI_EXIT_OK;
}

int cmd_quantize(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        print_help();
        return CLI_EXIT_OK;
    }
    cli_quantize_args a;
    int rc = cli_quantize_parse(argc, argv, &a);
    if (rc != CLI_EXIT_OK) return rc;
    cli_progress prog;
    cli_progress_init(&prog, "quantize");
    p3_native_write_stats stats = {0};
    a.o.to_f32 = p3_tensor_to_f32;
    a.o.progress = on_progress;
    a.o.progress_user = &prog;
    a.o.stats = &stats;
    read_test_fault(&a.o);
    cli_catch_stop_signals();

    p3_error err = {0};
    p3_model_source *src = NULL;
    p3_native_blob *blobs = NULL;
    size_t n_blobs = 0;
    p3_status st = p3_source_open(a.in, &src, &err);
    if (st == PHI3C_OK) st = p3_source_check_tensors(src, &err);
    if (st == PHI3C_OK) st = check_tokenizer(src, &err);
    if (st == PHI3C_OK) st = p3_native_gather_blobs(src, &blobs, &n_blobs, &err);
    if (st == PHI3C_OK) st = p3_native_write(src, blobs, n_blobs, a.out, &a.o, &err);
    cli_progress_end(&prog, true);
    p3_native_blobs_free(blobs, n_blobs);
    p3_source_close(src);
    if (st != PHI3C_OK) return cli_fail("quantize", &err);
    quantize_summary_args sum = {.out = a.out,
                                 .method = a.o.method == P3_QUANT_SEARCH ? "search" : "rtn",
                                 .asym = a.o.asym,
                                 .seconds = p3_time_now() - prog.t0,
                                 .stats = &stats};
    print_summary(&sum);
    return CLI_EXIT_OK;
}
