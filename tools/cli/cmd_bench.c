/* cmd_bench.c: `phi3c bench`: the kernel lab (INT4-g128 GEMV/GEMM at Phi-3-mini's matrix shapes,
 * attention at several context lengths) and the end-to-end speed of a full-shape Phi-3-mini
 * (pp512, tg128, time to first token, peak RSS), each set against this machine's memory bandwidth
 * and int8 peak measured in the same process. Everything runs through the backend interface. */
#include "bench.h"
#include "cli_args.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "usage: phi3c bench [-m MODEL | --synthetic phi3-mini] [--backend B] [-t N] [--kernels]\n"
    "                   [--e2e] [--svg FILE] [options]\n"
    "\n"
    "Measures this machine's memory read bandwidth and int8 dot-product peak, then (--kernels)\n"
    "the INT4-g128 matmuls at Phi-3-mini's shapes and attention, and (--e2e) prefill/decode of a\n"
    "full model: a synthetic Phi-3-mini with random INT4 weights (default) or MODEL. Without\n"
    "--kernels or --e2e both run. Numbers are medians of --reps runs; see docs/BENCHMARKS.md.\n"
    "\n"
    "  -m, --model PATH      HF folder, GGUF or .phi3c file for --e2e\n"
    "  --quant Q             with -m: int4-g128 (default), int4-g128-asym or none\n"
    "  --synthetic NAME      phi3-mini (default for --e2e without -m)\n"
    "  --layers N            synthetic model layers (default 32)\n"
    "  --backend B           cpu (default), opencl, level-zero\n"
    "  -t, --threads N       threads (default: all cores)\n"
    "  --act A               w4a8 (default) or w4a32\n"
    "  --reps N              repetitions per measurement (default 3)\n"
    "  --mem-mb N            bandwidth test buffer and GEMV working set in MiB (default 1024)\n"
    "  --shapes RxC,...      kernel matrix shapes (default: Phi-3-mini's five)\n"
    "  --ctx N,...           attention context lengths (default 512,1024,2048,4096)\n"
    "  --batch N             tokens of the GEMM and prefill attention rows (default 512)\n"
    "  --pp N, --tg N        prompt tokens and generated tokens end to end (default 512, 128)\n"
    "  --depth N             --e2e: N tokens already in the KV cache before pp and tg (default 0,\n"
    "                        as llama-bench -d N)\n"
    "  --kv T                --e2e KV cache type: f16 (default) or q8\n"
    "  --verify-cost         with --e2e: instead of pp/tg, the time of one forward of 1, 2, 4,\n"
    "                        8 and 16 tokens after --pp cached positions, as a ratio to one\n"
    "                        (the cost of verifying lookup drafts; 512 unless --pp)\n"
    "  --svg FILE            writes the roofline plot of the kernels\n";

#define TRY_BENCH(expr)                                                                            \
    do {                                                                                           \
        p3_status st_ = (expr);                                                                    \
        if (st_ != PHI3C_OK) return st_;                                                           \
    } while (0)

enum { MAX_SHAPES = 16, MAX_CTX = 16, MAX_REPS = 64 };

typedef struct bench_opts {
    const char *model_path, *backend, *svg;
    p3_weight_quant quant;
    p3_act_mode act;
    p3_kv_dtype kv;
    int threads, reps, layers, batch, pp, tg, depth;
    size_t mem_bytes;
    bool kernels, e2e, verify_cost;
    int n_shapes, n_ctx;
    int64_t shape[MAX_SHAPES][2];
    const char *shape_name[MAX_SHAPES];
    int ctx[MAX_CTX];
} bench_opts;

/* What the run measured, for the summary line and the plot. */
typedef struct bench_state {
    bench_bandwidth bw;
    bench_peak peak;
    bench_point pts[2 * MAX_SHAPES + MAX_CTX + 1];
    int n_pts;
    char backend_desc[160];
    double gemv_s[MAX_SHAPES], gemm_s[MAX_SHAPES], attn_prefill_s; /* medians, for the estimate */
} bench_state;

static void opts_init(bench_opts *o) {
    memset(o, 0, sizeof *o);
    o->quant = P3_WQ_INT4_SYM;
    o->act = P3_ACT_Q8;
    o->kv = P3_KV_F16;
    o->reps = 3;
    o->layers = 32;
    o->batch = 512;
    o->pp = 512;
    o->tg = 128;
    o->mem_bytes = (size_t)1024 << 20;
    static const struct {
        const char *name;
        int64_t rows, cols;
    } mini[] = {{"qkv", 9216, 3072},
                {"o", 3072, 3072},
                {"gate_up", 16384, 3072},
                {"down", 3072, 8192},
                {"lm_head", 32064, 3072}};
    o->n_shapes = 5;
    for (int i = 0; i < 5; i++) {
        o->shape_name[i] = mini[i].name;
        o->shape[i][0] = mini[i].rows;
        o->shape[i][1] = mini[i].cols;
    }
    static const int ctx[] = {512, 1024, 2048, 4096};
    o->n_ctx = 4;
    memcpy(o->ctx, ctx, sizeof ctx);
}

static bool parse_shapes(const char *text, bench_opts *o) {
    o->n_shapes = 0;
    for (const char *p = text; *p && o->n_shapes < MAX_SHAPES;) {
        char *end;
        long r = strtol(p, &end, 10);
        if (*end != 'x' || r < 1 || r > 1000000) return false;
        long c = strtol(end + 1, &end, 10);
        if (c < 1 || c > 1000000 || (*end && *end != ',')) return false;
        o->shape_name[o->n_shapes] = "custom";
        o->shape[o->n_shapes][0] = r;
        o->shape[o->n_shapes++][1] = c;
        p = *end ? end + 1 : end;
    }
    return o->n_shapes > 0;
}

static bool parse_ctx(const char *text, bench_opts *o) {
    o->n_ctx = 0;
    for (const char *p = text; *p && o->n_ctx < MAX_CTX;) {
        char *end;
        long c = strtol(p, &end, 10);
        if (c < 1 || c > 1 << 20 || (*end && *end != ',')) return false;
        o->ctx[o->n_ctx++] = (int)c;
        p = *end ? end + 1 : end;
    }
    return o->n_ctx > 0;
}

static int parse_int_flag(const char *flag, int argc, char **argv, int *i, long lo, long hi,
                          int *out) {
    const char *v = cli_value("bench", argc, argv, i);
    long x;
    if (!v || !cli_int("bench", flag, v, lo, hi, &x)) return CLI_EXIT_USAGE;
    *out = (int)x;
    return CLI_EXIT_OK;
}

/* Flags that take a text value; returns -1 when argv[*i] is not one of them. */
static int parse_text_flag(int argc, char **argv, int *i, bench_opts *o) {
    const char *a = argv[*i], *v;
    if (cli_is(a, "--model", "-m")) {
        if (!(o->model_path = cli_value("bench", argc, argv, i))) return CLI_EXIT_USAGE;
    } else if (cli_is(a, "--backend", NULL)) {
        if (!(o->backend = cli_value("bench", argc, argv, i))) return CLI_EXIT_USAGE;
    } else if (cli_is(a, "--svg", NULL)) {
        if (!(o->svg = cli_value("bench", argc, argv, i))) return CLI_EXIT_USAGE;
    } else if (cli_is(a, "--synthetic", NULL)) {
        if (!(v = cli_value("bench", argc, argv, i))) return CLI_EXIT_USAGE;
        if (strcmp(v, "phi3-mini") != 0)
            return cli_usage_error("bench", "--synthetic %s: only phi3-mini is known", v);
    } else if (cli_is(a, "--quant", NULL)) {
        if (!(v = cli_value("bench", argc, argv, i))) return CLI_EXIT_USAGE;
        if (strcmp(v, "int4-g128") == 0 || strcmp(v, "int4-g128-sym") == 0)
            o->quant = P3_WQ_INT4_SYM;
        else if (strcmp(v, "int4-g128-asym") == 0)
            o->quant = P3_WQ_INT4_ASYM;
        else if (strcmp(v, "none") == 0)
            o->quant = P3_WQ_NONE;
        else
            return cli_usage_error("bench", "--quant %s: int4-g128, int4-g128-asym or none", v);
    } else if (cli_is(a, "--act", NULL)) {
        if (!(v = cli_value("bench", argc, argv, i))) return CLI_EXIT_USAGE;
        if (strcmp(v, "w4a8") != 0 && strcmp(v, "w4a32") != 0)
            return cli_usage_error("bench", "--act %s: w4a8 or w4a32", v);
        o->act = strcmp(v, "w4a8") == 0 ? P3_ACT_Q8 : P3_ACT_F32;
    } else if (cli_is(a, "--kv", NULL)) {
        if (!(v = cli_value("bench", argc, argv, i))) return CLI_EXIT_USAGE;
        if (strcmp(v, "f16") != 0 && strcmp(v, "q8") != 0)
            return cli_usage_error("bench", "--kv %s: f16 or q8", v);
        o->kv = strcmp(v, "f16") == 0 ? P3_KV_F16 : P3_KV_Q8;
    } else if (cli_is(a, "--shapes", NULL)) {
        if (!(v = cli_value("bench", argc, argv, i))) return CLI_EXIT_USAGE;
        if (!parse_shapes(v, o)) return cli_usage_error("bench", "--shapes %s: RxC,RxC,...", v);
    } else if (cli_is(a, "--ctx", NULL)) {
        if (!(v = cli_value("bench", argc, argv, i))) return CLI_EXIT_USAGE;
        if (!parse_ctx(v, o)) return cli_usage_error("bench", "--ctx %s: N,N,...", v);
    } else {
        return -1;
    }
    return CLI_EXIT_OK;
}

static int parse_args(int argc, char **argv, bench_opts *o) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = parse_text_flag(argc, argv, &i, o);
        int mem_mb = 0;
        if (r >= 0) {
            if (r != CLI_EXIT_OK) return r;
        } else if (cli_is(a, "--kernels", NULL)) {
            o->kernels = true;
        } else if (cli_is(a, "--e2e", NULL)) {
            o->e2e = true;
        } else if (cli_is(a, "--verify-cost", NULL)) {
            o->verify_cost = o->e2e = true;
        } else if (cli_is(a, "--threads", "-t")) {
            r = parse_int_flag(a, argc, argv, &i, 0, 64, &o->threads);
        } else if (cli_is(a, "--reps", NULL)) {
            r = parse_int_flag(a, argc, argv, &i, 1, MAX_REPS, &o->reps);
        } else if (cli_is(a, "--layers", NULL)) {
            r = parse_int_flag(a, argc, argv, &i, 1, 32, &o->layers);
        } else if (cli_is(a, "--batch", NULL)) {
            r = parse_int_flag(a, argc, argv, &i, 1, 4096, &o->batch);
        } else if (cli_is(a, "--pp", NULL)) {
            r = parse_int_flag(a, argc, argv, &i, 1, 4096, &o->pp);
        } else if (cli_is(a, "--tg", NULL)) {
            r = parse_int_flag(a, argc, argv, &i, 1, 4096, &o->tg);
        } else if (cli_is(a, "--depth", NULL)) {
            r = parse_int_flag(a, argc, argv, &i, 0, 131072, &o->depth);
        } else if (cli_is(a, "--mem-mb", NULL)) {
            r = parse_int_flag(a, argc, argv, &i, 1, 1 << 16, &mem_mb);
            o->mem_bytes = (size_t)mem_mb << 20;
        } else {
            return cli_usage_error("bench", "unknown argument %s", a);
        }
        if (r > 0) return r;
    }
    if (!o->kernels && !o->e2e) o->kernels = o->e2e = true;
    return CLI_EXIT_OK;
}

static int machine_threads(const bench_opts *o) {
    if (o->threads > 0) return o->threads;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 64 ? 64 : (int)n;
}

static double load_average(void) {
    double la[1] = {0};
    return getloadavg(la, 1) == 1 ? la[0] : -1;
}

static void print_bandwidth(const bench_bandwidth *b) {
    printf(
        "  memory read bandwidth  %7.1f GB/s  (median of %d reads of %zu MiB; range %.1f-%.1f)\n",
        b->median_gbs, b->n, b->bytes >> 20, b->min_gbs, b->max_gbs);
}

static void measure_machine(const bench_opts *o, bench_state *s) {
    int t = machine_threads(o);
    if (!bench_read_bandwidth(o->mem_bytes, t, o->reps < 5 ? 5 : o->reps, &s->bw))
        fprintf(stderr, "phi3c bench: the bandwidth test could not allocate %zu MiB\n",
                o->mem_bytes >> 20);
    bench_int8_peak(t, 3, &s->peak);
    printf("machine: %d threads, load average %.2f\n", t, load_average());
    print_bandwidth(&s->bw);
    if (s->peak.isa)
        printf("  int8 dot-product peak  %7.0f GOP/s (%s register-only loop, 2 ops per MAC)\n",
               s->peak.median_gops, s->peak.isa);
    else
        printf("  int8 dot-product peak  n/a (no AVX-512 VNNI here)\n");
}

static double pct(double x, double of) {
    return of > 0 ? 100.0 * x / of : 0;
}

static void add_point(bench_state *s, const char *label, double ops, double bytes, double sec) {
    if (s->n_pts >= (int)(sizeof s->pts / sizeof s->pts[0]) || sec <= 0 || bytes <= 0) return;
    bench_point *p = &s->pts[s->n_pts++];
    snprintf(p->label, sizeof p->label, "%s", label);
    p->intensity = ops / bytes;
    p->gops = ops / sec / 1e9;
}

static void print_row(const bench_state *s, const char *kernel, const char *shape, int tokens,
                      double sec, double bytes, double ops) {
    double gbs = bytes / sec / 1e9, gops = ops / sec / 1e9;
    printf("%-16s %-12s %6d %10.3f %8.1f %8.1f %6.0f%% %6.1f%%\n", kernel, shape, tokens, sec * 1e3,
           gbs, gops, pct(gbs, s->bw.median_gbs), pct(gops, s->peak.median_gops));
}

/* ---- kernels ------------------------------------------------------------------------------ */

typedef struct kernel_ctx {
    p3_backend be;
    p3_buffer *x, *y;
    p3_act_mode act;
} kernel_ctx;

static size_t weight_bytes(kernel_ctx *k, const p3_weight *w) {
    if (k->be.iface->weight_bytes) return k->be.iface->weight_bytes(k->be.ctx, w);
    return (size_t)w->rows * (size_t)p3_groups(w->cols) * sizeof(p3_block_i4s);
}

/* Random INT4 blocks for one shape (content does not change the kernels' speed). */
static p3_block_i4s *random_blocks(int64_t rows, int64_t cols) {
    size_t n = (size_t)rows * (size_t)p3_groups(cols);
    p3_block_i4s *b = p3_malloc(n * sizeof *b);
    if (!b) return NULL;
    uint64_t s = 0x2545f4914f6cdd1dull ^ (uint64_t)rows * 31 ^ (uint64_t)cols;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        b[i].d = p3_f32_to_f16(0.002f + (float)(s >> 60) * 0.00025f);
        for (int j = 0; j < P3_QK / 2; j++) b[i].qs[j] = (uint8_t)(s >> (j % 7 * 8)) ^ (uint8_t)j;
    }
    return b;
}

static double median_of(double *v, int n) {
    return bench_median(v, n);
}

/* GEMV streams a working set larger than the caches: copies of the matrix, used in turn. */
static p3_status time_gemv(kernel_ctx *k, p3_weight **w, int n, int reps, double *sec,
                           p3_error *err) {
    double t[MAX_REPS];
    for (int r = -1; r < reps; r++) { /* r = -1: warm-up */
        double t0 = p3_time_now();
        for (int c = 0; c < n; c++)
            if (p3_be_matmul(&k->be, p3_ref_at(k->y, 0), p3_ref_at(k->x, 0), w[c], 1, err))
                return err->status;
        if (p3_be_sync(&k->be, err)) return err->status;
        if (r >= 0) t[r] = (p3_time_now() - t0) / n;
    }
    *sec = median_of(t, reps);
    return PHI3C_OK;
}

static p3_status time_gemm(kernel_ctx *k, p3_weight *w, int tokens, int reps, double *sec,
                           p3_error *err) {
    double t[MAX_REPS];
    for (int r = -1; r < reps; r++) {
        double t0 = p3_time_now();
        if (p3_be_matmul(&k->be, p3_ref_at(k->y, 0), p3_ref_at(k->x, 0), w, tokens, err) ||
            p3_be_sync(&k->be, err))
            return err->status;
        if (r >= 0) t[r] = p3_time_now() - t0;
    }
    *sec = median_of(t, reps);
    return PHI3C_OK;
}

enum { MAX_COPIES = 512 };

static p3_status bench_shape(kernel_ctx *k, const bench_opts *o, bench_state *s, int i,
                             p3_error *err) {
    int64_t rows = o->shape[i][0], cols = o->shape[i][1];
    p3_block_i4s *blocks = random_blocks(rows, cols);
    if (!blocks)
        return p3_fail(err, PHI3C_ERR_NOMEM, "out of memory for a %lldx%lld matrix",
                       (long long)rows, (long long)cols);
    p3_weight_desc d = {o->shape_name[i], P3_DT_I4G128S, rows, cols, blocks, k->act};
    p3_weight *w[MAX_COPIES];
    int n = 0;
    size_t total = 0;
    p3_status st = PHI3C_OK;
    while (n < MAX_COPIES && (n < 2 || total < o->mem_bytes)) {
        st = p3_be_weight_upload(&k->be, &d, &w[n], err);
        if (st != PHI3C_OK) break;
        total += weight_bytes(k, w[n++]);
    }
    p3_free(blocks);
    double gemv = 0, gemm = 0, wb = (double)weight_bytes(k, w[0]);
    if (n > 0 && (st == PHI3C_OK || n >= 2)) st = time_gemv(k, w, n, o->reps, &gemv, err);
    if (st == PHI3C_OK) st = time_gemm(k, w[0], o->batch, o->reps, &gemm, err);
    for (int c = 0; c < n; c++) p3_be_weight_free(&k->be, w[c]);
    if (st != PHI3C_OK) return st;
    s->gemv_s[i] = gemv;
    s->gemm_s[i] = gemm;
    char shape[32], label[48];
    snprintf(shape, sizeof shape, "%lldx%lld", (long long)rows, (long long)cols);
    double macs = (double)rows * (double)cols, io = 4.0 * (double)(rows + cols);
    snprintf(label, sizeof label, "gemv %s", o->shape_name[i]);
    print_row(s, label, shape, 1, gemv, wb + io, 2 * macs);
    add_point(s, label, 2 * macs, wb + io, gemv);
    snprintf(label, sizeof label, "gemm %s", o->shape_name[i]);
    print_row(s, label, shape, o->batch, gemm, wb + io * o->batch, 2 * macs * o->batch);
    add_point(s, label, 2 * macs * o->batch, wb + io * o->batch, gemm);
    return PHI3C_OK;
}

/* Phi-3-mini attention: 32 heads of 96, f16 KV cache of one layer filled with random rows. */
enum { ATT_HEADS = 32, ATT_HD = 96, ATT_QKV = 3 * ATT_HEADS * ATT_HD, FILL = 256 };

static p3_status fill_kv(kernel_ctx *k, p3_kv_cache *kv, int n_ctx, const p3_attn_params *p,
                         p3_error *err) {
    size_t n = (size_t)FILL * ATT_QKV;
    if (k->x->size < n * sizeof(float))
        return p3_fail(err, PHI3C_ERR_UNSUPPORTED, "attention bench: activation buffer too small");
    /* rows are made on the host and written, so device backends (no host pointer) work too */
    float *rows = p3_malloc(n * sizeof(float));
    if (!rows) return p3_fail(err, PHI3C_ERR_NOMEM, "attention bench: out of memory");
    for (size_t i = 0; i < n; i++) rows[i] = (float)((int)(i * 2654435761u >> 20) % 200 - 100) / 64;
    p3_status st = p3_be_write(&k->be, p3_ref_at(k->x, 0), rows, n * sizeof(float), err);
    p3_free(rows);
    if (st != PHI3C_OK) return st;
    for (int pos = 0; pos < n_ctx; pos += FILL) {
        int m = n_ctx - pos < FILL ? n_ctx - pos : FILL;
        if (p3_be_kv_write(&k->be, kv, 0, p3_ref_at(k->x, 0), m, pos, p, err)) return err->status;
    }
    return p3_be_sync(&k->be, err);
}

static p3_status time_attention(kernel_ctx *k, p3_kv_cache *kv, int tokens, int pos0, int reps,
                                const p3_attn_params *p, double *sec, p3_error *err) {
    double t[MAX_REPS];
    for (int r = -1; r < reps; r++) {
        int iters = 0;
        double t0 = p3_time_now(), dt;
        do { /* short calls are repeated until they fill ~20 ms */
            if (p3_be_attention(&k->be, p3_ref_at(k->y, 0), p3_ref_at(k->x, 0), kv, 0, tokens, pos0,
                                p, err) ||
                p3_be_sync(&k->be, err))
                return err->status;
            iters++;
            dt = p3_time_now() - t0;
        } while (dt < 0.02);
        if (r >= 0) t[r] = dt / iters;
    }
    *sec = median_of(t, reps);
    return PHI3C_OK;
}

static p3_status bench_attention(kernel_ctx *k, const bench_opts *o, bench_state *s,
                                 p3_error *err) {
    int max_ctx = o->batch;
    for (int i = 0; i < o->n_ctx; i++) max_ctx = o->ctx[i] > max_ctx ? o->ctx[i] : max_ctx;
    p3_kv_desc kd = {1, max_ctx, ATT_HEADS, ATT_HD, P3_KV_F16};
    p3_attn_params p = {ATT_HEADS, ATT_HEADS, ATT_HD, 0, 1.0f / sqrtf((float)ATT_HD)};
    p3_kv_cache *kv;
    if (!p3_be_supports(&k->be, P3_OP_ATTENTION, P3_DT_F32, k->act, P3_KV_F16))
        return p3_fail(err, PHI3C_ERR_UNSUPPORTED, "no f16 KV attention on this backend");
    TRY_BENCH(p3_be_kv_alloc(&k->be, &kd, &kv, err));
    p3_status st = fill_kv(k, kv, max_ctx, &p, err);
    double kv_pos = 2.0 * ATT_HEADS * ATT_HD * 2; /* K and V, f16 */
    char label[48], shape[32];
    for (int i = 0; i < o->n_ctx && st == PHI3C_OK; i++) {
        double sec;
        int c = o->ctx[i];
        st = time_attention(k, kv, 1, c - 1, o->reps, &p, &sec, err);
        if (st != PHI3C_OK) break;
        double ops = 4.0 * ATT_HEADS * ATT_HD * c;
        snprintf(label, sizeof label, "attn decode");
        snprintf(shape, sizeof shape, "ctx %d", c);
        print_row(s, label, shape, 1, sec, kv_pos * c, ops);
        snprintf(label, sizeof label, "attn ctx %d", c);
        add_point(s, label, ops, kv_pos * c, sec);
    }
    if (st == PHI3C_OK) {
        double sec, t = o->batch;
        st = time_attention(k, kv, o->batch, 0, o->reps, &p, &sec, err);
        double ops = 4.0 * ATT_HEADS * ATT_HD * t * (t + 1) / 2;
        snprintf(shape, sizeof shape, "ctx %d", o->batch);
        if (st == PHI3C_OK) print_row(s, "attn prefill", shape, o->batch, sec, kv_pos * t, ops);
        s->attn_prefill_s = st == PHI3C_OK ? sec : 0;
    }
    p3_be_kv_free(&k->be, kv);
    return st;
}

static p3_status kernel_buffers(kernel_ctx *k, const bench_opts *o, p3_error *err) {
    int64_t max_rows = ATT_HEADS * ATT_HD, max_cols = ATT_QKV;
    for (int i = 0; i < o->n_shapes; i++) {
        if (o->shape[i][0] > max_rows) max_rows = o->shape[i][0];
        if (o->shape[i][1] > max_cols) max_cols = o->shape[i][1];
    }
    int64_t rows_x = o->batch > FILL ? o->batch : FILL;
    size_t xb = (size_t)rows_x * (size_t)max_cols * sizeof(float);
    size_t yb = (size_t)o->batch * (size_t)(max_rows > max_cols ? max_rows : max_cols) * 4;
    TRY_BENCH(p3_be_buffer_alloc(&k->be, xb, &k->x, err));
    TRY_BENCH(p3_be_buffer_alloc(&k->be, yb, &k->y, err));
    float *tmp = p3_malloc(xb);
    if (!tmp) return p3_fail(err, PHI3C_ERR_NOMEM, "out of memory for activations");
    for (size_t i = 0; i < xb / sizeof(float); i++) tmp[i] = (float)((int)(i % 251) - 125) * 0.01f;
    p3_status st = p3_be_write(&k->be, p3_ref_at(k->x, 0), tmp, xb, err);
    p3_free(tmp);
    return st;
}

/* Where a Phi-3-mini step's time goes if it were only these kernels: 32 layers of qkv, o, gate_up
 * and down, plus lm_head (for prefill only the last token's row goes through lm_head). */
static void print_estimate(const bench_opts *o, const bench_state *s) {
    static const char *names[] = {"qkv", "o", "gate_up", "down", "lm_head"};
    if (o->n_shapes != 5) return;
    for (int i = 0; i < 5; i++)
        if (strcmp(o->shape_name[i], names[i]) != 0) return;
    double dec = s->gemv_s[4], pre = s->gemv_s[4] + 32 * s->attn_prefill_s;
    for (int i = 0; i < 4; i++) {
        dec += 32 * s->gemv_s[i];
        pre += 32 * s->gemm_s[i];
    }
    printf("\nestimate from these kernels for Phi-3-mini (32 layers + lm_head):\n");
    printf("  decode  %7.1f ms/token = %6.2f tok/s (matmuls only):", dec * 1e3, 1 / dec);
    for (int i = 0; i < 5; i++)
        printf(" %s %.0f%%", names[i], pct((i < 4 ? 32 : 1) * s->gemv_s[i], dec));
    printf("\n  prefill %7.2f s/%d tokens = %6.2f tok/s:", pre, o->batch, o->batch / pre);
    for (int i = 0; i < 4; i++) printf(" %s %.0f%%", names[i], pct(32 * s->gemm_s[i], pre));
    printf(" attention %.0f%%\n", pct(32 * s->attn_prefill_s, pre));
}

static p3_status open_backend(const bench_opts *o, p3_backend *be, char *desc, size_t len,
                              p3_error *err) {
    p3_backend_options bo = {.n_threads = o->threads};
    TRY_BENCH(p3_backend_open(o->backend ? o->backend : "cpu", &bo, be, err));
    be->iface->describe(be->ctx, desc, len);
    return PHI3C_OK;
}

static p3_status run_kernels(const bench_opts *o, bench_state *s, p3_error *err) {
    kernel_ctx k = {0};
    TRY_BENCH(open_backend(o, &k.be, s->backend_desc, sizeof s->backend_desc, err));
    k.act = o->act;
    if (!p3_be_supports(&k.be, P3_OP_MATMUL, P3_DT_I4G128S, k.act, P3_KV_F16))
        k.act = k.act == P3_ACT_Q8 ? P3_ACT_F32 : P3_ACT_Q8;
    printf("\nkernels on %s, INT4-g128 %s, GEMV working set >= %zu MiB, median of %d\n",
           s->backend_desc, k.act == P3_ACT_Q8 ? "w4a8" : "w4a32", o->mem_bytes >> 20, o->reps);
    printf("%-16s %-12s %6s %10s %8s %8s %7s %7s\n", "kernel", "shape", "tokens", "time ms", "GB/s",
           "GOP/s", "%BW", "%peak");
    p3_status st = kernel_buffers(&k, o, err);
    for (int i = 0; i < o->n_shapes && st == PHI3C_OK; i++) st = bench_shape(&k, o, s, i, err);
    if (st == PHI3C_OK && o->n_ctx > 0) st = bench_attention(&k, o, s, err);
    if (st == PHI3C_OK) print_estimate(o, s);
    p3_be_buffer_free(&k.be, k.x);
    p3_be_buffer_free(&k.be, k.y);
    p3_backend_close(&k.be);
    return st;
}

/* ---- end to end ---------------------------------------------------------------------------- */

static p3_status load_model(const bench_opts *o, p3_model **m, p3_error *err) {
    p3_load_options lo;
    p3_load_options_init(&lo);
    lo.backend = o->backend;
    lo.n_threads = o->threads;
    lo.act = o->act;
    if (o->model_path) {
        lo.quant = o->quant;
        return p3_model_load(o->model_path, &lo, m, err);
    }
    bench_synth syn;
    TRY_BENCH(bench_synth_phi3_mini(o->layers, &syn, err));
    lo.quant = P3_WQ_NONE; /* the source is INT4-g128 already */
    p3_status st = p3_model_from_source(&syn.src, &lo, m, err);
    bench_synth_free(&syn);
    return st;
}

/* Bytes a decode step streams: every linear weight once (the embedding is one row per token). */
static double linear_bytes(const p3_model *m) {
    const p3_backend_iface *f = m->be.iface;
    if (!f->weight_bytes) return (double)m->weight_bytes;
    double b = (double)f->weight_bytes(m->be.ctx, m->lm_head);
    for (int l = 0; l < m->cfg.num_layers; l++) {
        const p3_layer_weights *w = &m->layers[l];
        b += (double)f->weight_bytes(m->be.ctx, w->qkv) + f->weight_bytes(m->be.ctx, w->o) +
             f->weight_bytes(m->be.ctx, w->gate_up) + f->weight_bytes(m->be.ctx, w->down);
    }
    return b;
}

/* KV bytes of one position over all layers (K and V): f16 elements, or int8 elements plus one f32
 * scale per head (q8). */
static double kv_bytes_per_pos(const p3_config *c, p3_kv_dtype kv) {
    double heads = 2.0 * c->num_layers * c->num_kv_heads;
    if (kv == P3_KV_Q8) return heads * (c->head_dim + sizeof(float));
    return heads * c->head_dim * (kv == P3_KV_F32 ? 4 : 2);
}

typedef struct e2e_result {
    bench_verify verify; /* --verify-cost */
    double pp_tps, tg_tps, ttft, load_s;
    size_t rss_peak, rss_lifetime;
    double weights, kv, kv_read, stream_bytes;
} e2e_result;

/* Back to `depth` cached positions (llama-bench -d): the cache rows before it stay as filled. */
static void rewind_to(p3_session *s, int depth) {
    p3_session_reset(s);
    s->n_past = depth;
}

/* Fills the cache with `depth` tokens once, in chunks of the session's batch (not timed). */
static p3_status fill_depth(p3_session *s, int depth, p3_error *err) {
    p3_session_reset(s);
    int32_t chunk[256];
    for (int done = 0; done < depth;) {
        int n = P3_MIN(depth - done, (int)P3_ARRAY_LEN(chunk));
        for (int i = 0; i < n; i++) chunk[i] = (int32_t)(((done + i) * 4099 + 7) % 32000);
        TRY_BENCH(p3_session_feed(s, chunk, n, NULL, err));
        done += n;
    }
    return PHI3C_OK;
}

static p3_status timed_prefill(p3_session *s, int depth, const int32_t *ids, int n, double *sec,
                               double *ttft, p3_error *err) {
    rewind_to(s, depth);
    double t0 = p3_time_now();
    TRY_BENCH(p3_session_feed(s, ids, n, NULL, err));
    *sec = p3_time_now() - t0;
    (void)p3_argmax(s->host_logits, s->model->cfg.vocab_size);
    *ttft = p3_time_now() - t0;
    return PHI3C_OK;
}

/* llama-bench's tg: n single-token steps from an empty cache, each feeding the previous argmax. */
static p3_status timed_decode(p3_session *s, int depth, int n, double *sec, p3_error *err) {
    rewind_to(s, depth);
    int32_t id = 1;
    double t0 = p3_time_now();
    for (int i = 0; i < n; i++) {
        TRY_BENCH(p3_session_feed(s, &id, 1, NULL, err));
        id = p3_argmax(s->host_logits, s->model->cfg.vocab_size);
    }
    *sec = p3_time_now() - t0;
    return PHI3C_OK;
}

static p3_status e2e_runs(const bench_opts *o, p3_session *s, e2e_result *r, p3_error *err) {
    int32_t *ids = p3_malloc((size_t)o->pp * sizeof *ids);
    if (!ids) return p3_fail(err, PHI3C_ERR_NOMEM, "out of memory for prompt ids");
    for (int i = 0; i < o->pp; i++) ids[i] = (int32_t)((i * 7919 + 13) % 32000);
    double pp[MAX_REPS], tg[MAX_REPS], ft[MAX_REPS], w1, w2;
    int warm = o->pp < 16 ? o->pp : 16;
    p3_status st = fill_depth(s, o->depth, err);
    if (st == PHI3C_OK) st = timed_prefill(s, o->depth, ids, warm, &w1, &w2, err); /* warm-up */
    if (st == PHI3C_OK) st = timed_decode(s, o->depth, 2, &w1, err);
    for (int rep = 0; rep < o->reps && st == PHI3C_OK; rep++) {
        st = timed_prefill(s, o->depth, ids, o->pp, &pp[rep], &ft[rep], err);
        if (st == PHI3C_OK) st = timed_decode(s, o->depth, o->tg, &tg[rep], err);
        if (st == PHI3C_OK)
            fprintf(stderr, "[rep %d/%d: pp%d %.2f tok/s, tg%d %.2f tok/s]\n", rep + 1, o->reps,
                    o->pp, o->pp / pp[rep], o->tg, o->tg / tg[rep]);
    }
    p3_free(ids);
    if (st != PHI3C_OK) return st;
    r->pp_tps = o->pp / median_of(pp, o->reps);
    r->tg_tps = o->tg / median_of(tg, o->reps);
    r->ttft = median_of(ft, o->reps);
    return PHI3C_OK;
}

static p3_status run_e2e(const bench_opts *o, bench_state *bs, e2e_result *r, p3_error *err) {
    memset(r, 0, sizeof *r);
    p3_model *m = NULL;
    TRY_BENCH(load_model(o, &m, err));
    p3_session_options so;
    p3_session_options_init(&so);
    so.n_ctx = o->depth + o->pp + o->tg + 8 + BENCH_VERIFY_KS * 4;
    so.n_batch = P3_MAX(o->pp, 16);
    so.kv = o->kv;
    so.kv_given = true;
    p3_session *s = NULL;
    p3_status st = p3_session_create(m, &so, &s, err);
    if (st == PHI3C_OK) {
        m->be.iface->describe(m->be.ctx, bs->backend_desc, sizeof bs->backend_desc);
        r->load_s = m->load_seconds;
        r->weights = (double)m->weight_bytes;
        r->kv = kv_bytes_per_pos(&m->cfg, o->kv) * s->n_ctx;
        /* a decode step reads the weights and the keys/values of the depth and, on average, of
         * half the tg positions; no more than the sliding window's keys (Phi-3-mini-4k: 2047) */
        double kv_positions = o->depth + o->tg / 2.0;
        if (m->cfg.sliding_window > 0 && kv_positions > m->cfg.sliding_window)
            kv_positions = m->cfg.sliding_window;
        r->kv_read = kv_bytes_per_pos(&m->cfg, o->kv) * kv_positions;
        r->stream_bytes = linear_bytes(m) + r->kv_read;
        r->rss_lifetime = bench_peak_rss();
        if (!bench_reset_peak_rss()) r->rss_lifetime = 0;
        st = o->verify_cost ? bench_verify_cost(s, o->pp, o->reps, &r->verify, err)
                            : e2e_runs(o, s, r, err);
        r->rss_peak = bench_peak_rss();
    }
    p3_session_free(s);
    p3_model_free(m);
    return st;
}

static void print_verify_cost(const bench_opts *o, const bench_state *s, const e2e_result *r) {
    const bench_verify *v = &r->verify;
    printf("\nverify cost: %s, %s, median of %d\n",
           o->model_path ? o->model_path : "synthetic Phi-3-mini (random INT4-g128)",
           s->backend_desc, o->reps);
    printf("  one forward of k tokens after %d cached positions (logits of every row)\n", v->depth);
    printf("  tokens    median   ratio     fastest   ratio\n");
    for (int i = 0; i < BENCH_VERIFY_KS; i++)
        printf("  k = %2d  %8.2f ms  %5.2fx  %8.2f ms  %5.2fx\n", v->k[i], v->sec[i] * 1e3,
               v->ratio[i], v->best[i] * 1e3, v->best_ratio[i]);
    printf("bench-result: threads=%d depth=%d", machine_threads(o), v->depth);
    for (int i = 0; i < BENCH_VERIFY_KS; i++)
        printf(" k%d_ms=%.2f k%d_ratio=%.3f k%d_best_ratio=%.3f", v->k[i], v->sec[i] * 1e3, v->k[i],
               v->ratio[i], v->k[i], v->best_ratio[i]);
    printf("\n");
}

static void print_e2e(const bench_opts *o, const bench_state *s, const e2e_result *r) {
    if (o->verify_cost) {
        print_verify_cost(o, s, r);
        return;
    }
    double mb = 1048576.0, dec_gbs = r->tg_tps * r->stream_bytes / 1e9;
    printf("\nend to end: %s, %s, %s KV cache, depth %d, median of %d\n",
           o->model_path ? o->model_path : "synthetic Phi-3-mini (random INT4-g128)",
           s->backend_desc, o->kv == P3_KV_Q8 ? "q8" : "f16", o->depth, o->reps);
    printf("  load                   %8.2f s\n", r->load_s);
    printf("  prefill pp%-4d         %8.2f tok/s\n", o->pp, r->pp_tps);
    printf("  decode  tg%-4d         %8.2f tok/s  (%.1f GB/s, %.0f%% of the measured %.1f GB/s;"
           " KV %.0f MB of %.0f MB a step)\n",
           o->tg, r->tg_tps, dec_gbs, pct(dec_gbs, s->bw.median_gbs), s->bw.median_gbs,
           r->kv_read / 1e6, r->stream_bytes / 1e6);
    printf("  time to first token    %8.3f s     (%d-token prompt)\n", r->ttft, o->pp);
    printf("  peak RSS while running %8.0f MiB   (weights %.0f + KV %.0f MiB = %.0f; %+.0f%%)\n",
           r->rss_peak / mb, r->weights / mb, r->kv / mb, (r->weights + r->kv) / mb,
           pct(r->rss_peak, r->weights + r->kv) - 100);
    if (r->rss_lifetime) printf("  peak RSS incl. loading %8.0f MiB\n", r->rss_lifetime / mb);
    printf("bench-result: threads=%d pp=%d tg=%d pp_tps=%.3f tg_tps=%.3f ttft_s=%.4f "
           "decode_gbs=%.2f bw_gbs=%.2f bw_pct=%.1f rss_peak_mib=%.0f weights_mib=%.0f "
           "kv_mib=%.0f load_s=%.2f depth=%d kv=%s step_mb=%.1f kv_read_mb=%.1f\n",
           machine_threads(o), o->pp, o->tg, r->pp_tps, r->tg_tps, r->ttft, dec_gbs,
           s->bw.median_gbs, pct(dec_gbs, s->bw.median_gbs), r->rss_peak / mb, r->weights / mb,
           r->kv / mb, r->load_s, o->depth, o->kv == P3_KV_Q8 ? "q8" : "f16", r->stream_bytes / 1e6,
           r->kv_read / 1e6);
}

static int bench_fail(const p3_error *err) {
    cli_flush_stdout(); /* the table so far, then the message */
    return cli_fail("bench", err);
}

int cli_bench_parse(int argc, char **argv) {
    bench_opts o;
    opts_init(&o);
    return parse_args(argc, argv, &o);
}

int cmd_bench(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        printf("%s", usage);
        return CLI_EXIT_OK;
    }
    bench_opts o;
    opts_init(&o);
    int r = parse_args(argc, argv, &o);
    if (r != CLI_EXIT_OK) return r;
    bench_state s;
    memset(&s, 0, sizeof s);
    p3_error err = {0};
    measure_machine(&o, &s);
    if (o.kernels) {
        if (run_kernels(&o, &s, &err) != PHI3C_OK) return bench_fail(&err);
        if (o.svg) {
            char title[256];
            snprintf(title, sizeof title, "phi3c roofline: %s", s.backend_desc);
            if (!bench_write_roofline(o.svg, s.bw.median_gbs, s.peak.median_gops, s.pts, s.n_pts,
                                      title)) {
                fprintf(stderr, "phi3c bench: cannot write %s\n", o.svg);
                return CLI_EXIT_FAIL;
            }
            printf("roofline written to %s\n", o.svg);
        }
    }
    if (o.e2e) {
        e2e_result e;
        if (run_e2e(&o, &s, &e, &err) != PHI3C_OK) return bench_fail(&err);
        /* the machine is shared: bandwidth measured before and after the run, medians merged */
        bench_bandwidth after;
        if (bench_read_bandwidth(o.mem_bytes, machine_threads(&o), 5, &after)) {
            bench_bandwidth_merge(&s.bw, &after);
            printf("\nafter the run (load average %.2f):\n", load_average());
            print_bandwidth(&s.bw);
        }
        print_e2e(&o, &s, &e);
    }
    return CLI_EXIT_OK;
}
