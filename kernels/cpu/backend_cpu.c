/* backend_cpu.c: the CPU backend's method table: host buffers (zero-copy wrapping), weight upload
 * with INT4 repacking, the KV cache, and every op, split over the thread pool and run with the
 * kernels of the ISA level chosen at create time (cpuid, or options.variant / PHI3C_CPU). */
#include "cpu.h"
#include "ref.h"

#include <math.h>
#include <stddef.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__aarch64__)
#include <sys/auxv.h>
#endif
#if defined(__x86_64__)
#include <cpuid.h>
#endif

typedef struct cpu_ctx {
    const cpu_isa *isa;
    cpu_isa amx;  /* the AVX-512 table renamed, when the AMX level is chosen */
    bool use_amx; /* INT4 GEMMs of >= AMX_MIN_TOKENS tokens through AMX */
    cpu_pool *pool;
    p3_block_q8g *act;    /* quantized activations, grown to the largest matmul seen */
    size_t act_cap;       /* blocks */
    uint8_t *act_tiles;   /* AMX: act repacked into A tiles (cpu.h), grown likewise */
    size_t act_tiles_cap; /* bytes */
    float *scores;        /* attention scores: n_threads x scores_cap, sized by kv_alloc */
    size_t scores_cap;
} cpu_ctx;

/* ---- ISA levels */

typedef struct level_entry {
    const char *name;
    const cpu_isa *isa;
    bool (*available)(void);
    const char *needs;
    bool amx; /* isa plus the AMX prefill GEMM */
} level_entry;

static bool always(void) {
    return true;
}
#if defined(__x86_64__)
static bool has_avx2(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
static bool has_avx512(void) {
    __builtin_cpu_init();
    return has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vnni");
}
/* cpuid leaf 7 directly: older compilers' __builtin_cpu_supports lacks these names. */
static bool cpuid7(unsigned sub, unsigned reg, unsigned bit) {
    unsigned r[4];
    if (!__get_cpuid_count(7, sub, &r[0], &r[1], &r[2], &r[3])) return false;
    return (r[reg] >> bit) & 1;
}
/* EDX bits 24, 25: AMX-TILE, AMX-INT8; ECX bit 8: GFNI (every AMX CPU has it; the unpack uses it)
 */
static bool has_amx(void) {
    return has_avx512() && cpuid7(0, 3, 24) && cpuid7(0, 3, 25) && cpuid7(0, 2, 8) &&
           cpu_amx_request();
}
static bool has_avx2_vnni(void) {
    return has_avx2() && cpuid7(1, 0, 4); /* EAX bit 4 */
}
#endif
#if defined(__aarch64__)
static bool has_dotprod(void) {
    return (getauxval(AT_HWCAP) & (1ul << 20)) != 0; /* ASIMDDP */
}
#endif

/* Best first; a name may appear twice (the better flavour first). "avx2-novnni" is the AVX2
 * level without AVX-VNNI, reachable by name for testing on CPUs that have it. */
static const level_entry levels[] = {
#if defined(__x86_64__)
    {"amx", &cpu_isa_avx512, has_amx, "avx512 with amx-tile/amx-int8 and the kernel's permission",
     true},
    {"avx512", &cpu_isa_avx512, has_avx512, "avx512f/bw/vl/dq and avx512vnni", false},
    {"avx2", &cpu_isa_avx2_vnni, has_avx2_vnni, "avx2, fma and avx-vnni", false},
    {"avx2", &cpu_isa_avx2, has_avx2, "avx2 and fma", false},
    {"avx2-novnni", &cpu_isa_avx2, has_avx2, "avx2 and fma", false},
#endif
#if defined(__aarch64__)
    {"neon", &cpu_isa_neon, has_dotprod, "the dot-product extension (asimddp)", false},
#endif
    {"scalar", &cpu_isa_scalar, always, "nothing", false},
};

static p3_status pick_level(const char *want, const level_entry **out, p3_error *err) {
    if (!want || !want[0]) want = getenv("PHI3C_CPU");
    bool any = !want || !want[0] || strcmp(want, "auto") == 0;
    for (size_t i = 0; i < P3_ARRAY_LEN(levels); i++) {
        if (!any && strcmp(levels[i].name, want) != 0) continue;
        if (levels[i].available()) {
            *out = &levels[i];
            return PHI3C_OK;
        }
        if (!any && i + 1 < P3_ARRAY_LEN(levels) && !strcmp(levels[i + 1].name, want))
            continue; /* a lesser flavour of the same level follows */
        if (!any)
            return p3_fail(err, PHI3C_ERR_UNAVAILABLE,
                           "cpu backend: level %s needs %s, which this CPU lacks", want,
                           levels[i].needs);
    }
    return p3_fail(err, PHI3C_ERR_UNAVAILABLE,
                   "cpu backend: unknown level '%s' (this build knows: %s)", want,
#if defined(__x86_64__)
                   "scalar, avx2, avx2-novnni, avx512, amx"
#elif defined(__aarch64__)
                   "scalar, neon"
#else
                   "scalar"
#endif
    );
}

static int online_cores(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* ---- lifecycle */

static bool cpu_probe(char *why, size_t why_len, char *devices, size_t devices_len) {
    (void)why;
    (void)why_len;
    const char *best = "scalar";
    for (size_t i = 0; i < P3_ARRAY_LEN(levels); i++)
        if (levels[i].available()) {
            best = levels[i].name;
            break;
        }
    snprintf(devices, devices_len, "%d cores, best level %s", online_cores(), best);
    return true;
}

static p3_status cpu_create(const p3_backend_options *opt, void **out, p3_error *err) {
    cpu_ctx *c = p3_calloc(1, sizeof *c);
    if (!c) return p3_fail(err, PHI3C_ERR_NOMEM, "cpu backend: out of memory");
    const level_entry *level = NULL;
    p3_status st = pick_level(opt->variant, &level, err);
    if (st != PHI3C_OK) {
        p3_free(c);
        return st;
    }
    c->isa = level->isa;
#if defined(__x86_64__)
    if (level->amx) {
        c->amx = *level->isa;
        c->amx.name = "avx512-vnni+amx";
        c->isa = &c->amx;
        c->use_amx = true;
    }
#endif
    int n = opt->n_threads > 0 ? opt->n_threads : online_cores();
    if (n > 256) n = 256;
    st = cpu_pool_create(n, &c->pool, err);
    if (st != PHI3C_OK) {
        p3_free(c);
        return st;
    }
    *out = c;
    return PHI3C_OK;
}

static void cpu_destroy(void *ctx) {
    cpu_ctx *c = ctx;
    cpu_pool_destroy(c->pool);
    p3_free_aligned(c->act);
    p3_free_aligned(c->act_tiles);
    p3_free_aligned(c->scores);
    p3_free(c);
}

static void cpu_describe(void *ctx, char *buf, size_t len) {
    cpu_ctx *c = ctx;
    int n = cpu_pool_threads(c->pool);
    snprintf(buf, len, "cpu %s, %d thread%s", c->isa->name, n, n == 1 ? "" : "s");
}

static bool cpu_supports(void *ctx, p3_op op, p3_dtype weight, p3_act_mode act, p3_kv_dtype kv) {
    (void)ctx;
    (void)act;
    if (op == P3_OP_EMBED || op == P3_OP_MATMUL)
        return p3_dtype_is_float(weight) || p3_dtype_is_int4(weight);
    if (op == P3_OP_KV_WRITE || op == P3_OP_ATTENTION)
        return kv == P3_KV_F32 || kv == P3_KV_F16 || kv == P3_KV_Q8;
    return true;
}

/* ---- buffers: plain host memory; wrapped host memory is not owned (impl == NULL). */

static p3_status cpu_buffer_alloc(void *ctx, size_t size, p3_buffer **out, p3_error *err) {
    (void)ctx;
    p3_buffer *b = p3_calloc(1, sizeof *b);
    void *mem = b ? p3_malloc_aligned(size, 64) : NULL;
    if (!mem) {
        p3_free(b);
        return p3_fail(err, PHI3C_ERR_NOMEM, "cpu backend: cannot allocate a %zu-byte buffer",
                       size);
    }
    b->size = size;
    b->host = mem;
    b->impl = mem;
    *out = b;
    return PHI3C_OK;
}

static void cpu_buffer_free(void *ctx, p3_buffer *buf) {
    (void)ctx;
    if (!buf) return;
    p3_free_aligned(buf->impl);
    p3_free(buf);
}

static p3_status cpu_buffer_wrap_host(void *ctx, const void *host, size_t size, p3_buffer **out,
                                      p3_error *err) {
    (void)ctx;
    p3_buffer *b = p3_calloc(1, sizeof *b);
    if (!b) return p3_fail(err, PHI3C_ERR_NOMEM, "cpu backend: out of memory");
    b->size = size;
    b->host = (void *)(uintptr_t)host; /* ops never write through a wrapped buffer */
    *out = b;
    return PHI3C_OK;
}

static void *at(p3_ref r) {
    return (uint8_t *)r.buf->host + r.offset;
}

static p3_status cpu_buffer_write(void *ctx, p3_ref dst, const void *src, size_t size,
                                  p3_error *err) {
    (void)ctx;
    (void)err;
    memcpy(at(dst), src, size);
    return PHI3C_OK;
}

static p3_status cpu_buffer_read(void *ctx, p3_ref src, void *dst, size_t size, p3_error *err) {
    (void)ctx;
    (void)err;
    memcpy(dst, at(src), size);
    return PHI3C_OK;
}

/* ---- weights */

static size_t int4_block_bytes(p3_dtype d) {
    return d == P3_DT_I4G128S ? sizeof(p3_block_i4s) : sizeof(p3_block_i4a);
}

/* Repacks INT4 rows into panels (layout in cpu.h), panels split over the threads. A source byte
 * qs[j] holds q[j] (low) and q[j + 64] (high), and a panel chunk byte wants q[4c + b] (low) and
 * q[64 + 4c + b] (high): the same pair, so repacking only interleaves 4-byte words of 16 rows. */
typedef struct repack_job {
    cpu_weight *w;
    const uint8_t *src;
} repack_job;

static void repack_task(void *arg, int ith, int nth) {
    repack_job *j = arg;
    cpu_weight *w = j->w;
    const uint8_t *src = j->src;
    size_t bb = int4_block_bytes(w->pub.dtype), row_bytes = (size_t)w->n_groups * bb;
    bool asym = w->pub.dtype == P3_DT_I4G128A;
    size_t qs_off = asym ? offsetof(p3_block_i4a, qs) : offsetof(p3_block_i4s, qs);
    int64_t p0, p1;
    cpu_split(w->n_panels, 1, ith, nth, &p0, &p1);
    for (int64_t p = p0; p < p1; p++)
        for (int64_t g = 0; g < w->n_groups; g++) {
            size_t pg = (size_t)(p * w->n_groups + g);
            uint8_t *dst = w->data + pg * CPU_GROUP_BYTES;
            uint16_t *sc = w->scales + pg * CPU_PANEL;
            uint8_t *zp = asym ? w->zeros + pg * CPU_PANEL : NULL;
            for (int r = 0; r < CPU_PANEL; r++) {
                int64_t row = p * CPU_PANEL + r;
                if (row >= w->pub.rows) { /* padding row: scale 0, every nibble its offset */
                    sc[r] = 0;
                    if (zp) zp[r] = 8;
                    for (int c = 0; c < P3_QK / 8; c++)
                        memset(dst + c * CPU_CHUNK + r * 4, 0x88, 4);
                    continue;
                }
                const uint8_t *blk = src + (size_t)row * row_bytes + (size_t)g * bb;
                memcpy(&sc[r], blk, sizeof(uint16_t)); /* d is the first field of both blocks */
                if (zp) zp[r] = ((const p3_block_i4a *)blk)->z;
                for (int c = 0; c < P3_QK / 8; c++)
                    memcpy(dst + c * CPU_CHUNK + r * 4, blk + qs_off + 4 * c, 4);
            }
        }
}

static p3_status upload_panels(cpu_ctx *c, cpu_weight *w, const p3_weight_desc *d, p3_error *err) {
    (void)c;
    w->layout = CPU_LAYOUT_PANELS;
    w->n_groups = p3_groups(d->cols);
    w->n_panels = (d->rows + CPU_PANEL - 1) / CPU_PANEL;
    size_t pg = (size_t)(w->n_panels * w->n_groups), nib, sc, zp = 0;
    if (!p3_mul_size(pg, CPU_GROUP_BYTES, &nib) || !p3_mul_size(pg, CPU_PANEL * 2, &sc))
        return p3_fail(err, PHI3C_ERR_NOMEM, "cpu backend: weight %s is too large", d->name);
    if (d->dtype == P3_DT_I4G128A) zp = pg * CPU_PANEL;
    w->data = p3_malloc_large(nib);
    w->scales = p3_malloc_aligned(sc, 64);
    w->zeros = zp ? p3_malloc_aligned(zp, 64) : NULL;
    if (!w->data || !w->scales || (zp && !w->zeros))
        return p3_fail(err, PHI3C_ERR_NOMEM, "cpu backend: out of memory repacking %s (%zu MB)",
                       d->name, (nib + sc + zp) >> 20);
    w->bytes = nib + sc + zp;
    repack_job job = {w, d->data};
    cpu_pool_run(c->pool, repack_task, &job);
    return PHI3C_OK;
}

static void cpu_weight_free(void *ctx, p3_weight *pw) {
    (void)ctx;
    if (!pw) return;
    cpu_weight *w = (cpu_weight *)pw;
    p3_free_aligned(w->data);
    p3_free_aligned(w->scales);
    p3_free_aligned(w->zeros);
    p3_free(w);
}

static p3_status cpu_weight_upload(void *ctx, const p3_weight_desc *d, p3_weight **out,
                                   p3_error *err) {
    cpu_ctx *c = ctx;
    if (!p3_dtype_is_float(d->dtype) && !p3_dtype_is_int4(d->dtype))
        return p3_fail(err, PHI3C_ERR_UNSUPPORTED,
                       "cpu backend: weight %s has dtype %d; convert to F32/F16/BF16/INT4 first",
                       d->name, (int)d->dtype);
    cpu_weight *w = p3_calloc(1, sizeof *w);
    if (!w) return p3_fail(err, PHI3C_ERR_NOMEM, "cpu backend: out of memory");
    w->pub.dtype = d->dtype;
    w->pub.rows = d->rows;
    w->pub.cols = d->cols;
    w->pub.act = d->act;
    w->pub.impl = w;
    p3_status st = PHI3C_OK;
    if (p3_dtype_is_int4(d->dtype) && d->act == P3_ACT_Q8 && c->isa->matmul_w4a8) {
        st = upload_panels(c, w, d, err);
    } else {
        w->layout = CPU_LAYOUT_PLAIN;
        w->row_bytes = p3_dtype_is_int4(d->dtype)
                           ? (size_t)p3_groups(d->cols) * int4_block_bytes(d->dtype)
                           : (size_t)d->cols * (d->dtype == P3_DT_F32 ? 4 : 2);
        if (!p3_mul_size(w->row_bytes, (size_t)d->rows, &w->bytes))
            st = p3_fail(err, PHI3C_ERR_NOMEM, "cpu backend: weight %s is too large", d->name);
        else if (!(w->data = p3_malloc_large(w->bytes)))
            st = p3_fail(err, PHI3C_ERR_NOMEM, "cpu backend: out of memory for %s (%zu MB)",
                         d->name, w->bytes >> 20);
        else
            memcpy(w->data, d->data, w->bytes);
    }
    if (st != PHI3C_OK) {
        cpu_weight_free(ctx, &w->pub);
        return st;
    }
    *out = &w->pub;
    return PHI3C_OK;
}

static size_t cpu_weight_bytes(void *ctx, const p3_weight *w) {
    (void)ctx;
    return ((const cpu_weight *)w)->bytes;
}

/* ---- KV cache */

static void cpu_kv_free(void *ctx, p3_kv_cache *pkv) {
    (void)ctx;
    if (!pkv) return;
    cpu_kv *kv = (cpu_kv *)pkv;
    p3_free_aligned(kv->k);
    p3_free_aligned(kv->v);
    p3_free_aligned(kv->k_scale);
    p3_free_aligned(kv->v_scale);
    p3_free_aligned(kv->k_f32);
    p3_free_aligned(kv->v_f32);
    p3_free(kv);
}

static p3_status cpu_kv_alloc(void *ctx, const p3_kv_desc *d, p3_kv_cache **out, p3_error *err) {
    cpu_ctx *c = ctx;
    if (d->dtype != P3_KV_F32 && d->dtype != P3_KV_F16 && d->dtype != P3_KV_Q8)
        return p3_fail(err, PHI3C_ERR_UNSUPPORTED, "cpu backend: KV type %d", (int)d->dtype);
    if (d->head_dim > 512)
        return p3_fail(err, PHI3C_ERR_UNSUPPORTED, "cpu backend: head_dim %d > 512", d->head_dim);
    cpu_kv *kv = p3_calloc(1, sizeof *kv);
    if (!kv) return p3_fail(err, PHI3C_ERR_NOMEM, "cpu backend: out of memory");
    kv->pub.desc = *d;
    kv->pub.impl = kv;
    kv->elem = d->dtype == P3_KV_F32 ? 4 : d->dtype == P3_KV_F16 ? 2 : 1;
    size_t rows, bytes, layer_floats;
    bool ok =
        p3_mul_size((size_t)d->n_layers * (size_t)d->n_kv_heads, (size_t)d->n_ctx, &rows) &&
        p3_mul_size(rows, (size_t)d->head_dim * kv->elem, &bytes) &&
        p3_mul_size((size_t)d->n_ctx * (size_t)d->n_kv_heads, (size_t)d->head_dim, &layer_floats) &&
        layer_floats < SIZE_MAX / 4;
    if (ok) {
        kv->k = p3_malloc_large(bytes);
        kv->v = p3_malloc_large(bytes);
        ok = kv->k && kv->v;
    }
    if (ok && d->dtype == P3_KV_Q8) {
        kv->k_scale = p3_malloc_aligned(rows * sizeof(float), 64);
        kv->v_scale = p3_malloc_aligned(rows * sizeof(float), 64);
        ok = kv->k_scale && kv->v_scale;
    }
    if (ok && c->isa == &cpu_isa_scalar) {
        kv->k_f32 = p3_malloc_aligned(layer_floats * 4, 64);
        kv->v_f32 = p3_malloc_aligned(layer_floats * 4, 64);
        ok = kv->k_f32 && kv->v_f32;
    }
    if (ok && (size_t)d->n_ctx > c->scores_cap) {
        float *sc = p3_malloc_aligned((size_t)cpu_pool_threads(c->pool) * CPU_ATT_TILE *
                                          (size_t)d->n_ctx * sizeof(float),
                                      64);
        ok = sc != NULL;
        if (ok) {
            p3_free_aligned(c->scores);
            c->scores = sc;
            c->scores_cap = (size_t)d->n_ctx;
        }
    }
    if (!ok) {
        cpu_kv_free(ctx, &kv->pub);
        return p3_fail(err, PHI3C_ERR_NOMEM,
                       "cpu backend: cannot allocate a KV cache of %d "
                       "layers x %d positions",
                       d->n_layers, d->n_ctx);
    }
    *out = &kv->pub;
    return PHI3C_OK;
}

/* ---- ops */

/* Row of a PANELS weight dequantized (for embedding lookups of a repacked table). */
static void panel_row_f32(const cpu_weight *w, int64_t row, float *out) {
    int64_t p = row / CPU_PANEL;
    int r = (int)(row % CPU_PANEL);
    for (int64_t g = 0; g < w->n_groups; g++) {
        size_t pg = (size_t)(p * w->n_groups + g);
        const uint8_t *src = w->data + pg * CPU_GROUP_BYTES;
        float d = p3_f16_to_f32(w->scales[pg * CPU_PANEL + r]);
        int z = w->zeros ? w->zeros[pg * CPU_PANEL + r] : 8;
        for (int j = 0; j < P3_QK && g * P3_QK + j < w->pub.cols; j++) {
            int jj = j & 63, c = jj / 4, b = jj % 4;
            uint8_t byte = src[c * CPU_CHUNK + r * 4 + b];
            int q = j < 64 ? byte & 0x0f : byte >> 4;
            out[g * P3_QK + j] = d * (float)(q - z);
        }
    }
}

static p3_status cpu_embed(void *ctx, p3_ref out, const p3_weight *table, p3_ref ids, int n_tokens,
                           p3_error *err) {
    (void)ctx;
    const cpu_weight *w = (const cpu_weight *)table;
    if (w->layout == CPU_LAYOUT_PLAIN)
        return p3_ref_embed(at(out), w->data, w->pub.dtype, w->pub.rows, w->pub.cols, at(ids),
                            n_tokens, err);
    const int32_t *id = at(ids);
    for (int t = 0; t < n_tokens; t++) {
        if (id[t] < 0 || id[t] >= w->pub.rows)
            return p3_fail(err, PHI3C_ERR_INVALID_ARG, "embed: token id %d outside [0, %lld)",
                           (int)id[t], (long long)w->pub.rows);
        panel_row_f32(w, id[t], (float *)at(out) + (size_t)t * (size_t)w->pub.cols);
    }
    return PHI3C_OK;
}

/* Row-wise ops: tokens split over threads when there are several. */
typedef struct rows_job {
    const cpu_isa *isa;
    float *out;
    const float *x, *w;
    int n_tokens, dim;
    float eps;
} rows_job;

static void rmsnorm_task(void *arg, int ith, int nth) {
    rows_job *j = arg;
    int64_t t0, t1;
    cpu_split(j->n_tokens, 1, ith, nth, &t0, &t1);
    for (int64_t t = t0; t < t1; t++)
        j->isa->rmsnorm_row(j->out + t * j->dim, j->x + t * j->dim, j->w, j->dim, j->eps);
}

static void run_rows(cpu_ctx *c, cpu_task_fn fn, rows_job *job) {
    if (job->n_tokens == 1)
        fn(job, 0, 1);
    else
        cpu_pool_run(c->pool, fn, job);
}

static p3_status cpu_rmsnorm(void *ctx, p3_ref out, p3_ref x, p3_ref w, int n_tokens, int dim,
                             float eps, p3_error *err) {
    (void)err;
    cpu_ctx *c = ctx;
    rows_job job = {c->isa, at(out), at(x), at(w), n_tokens, dim, eps};
    run_rows(c, rmsnorm_task, &job);
    return PHI3C_OK;
}

static void swiglu_task(void *arg, int ith, int nth) {
    rows_job *j = arg;
    int64_t t0, t1;
    cpu_split(j->n_tokens, 1, ith, nth, &t0, &t1);
    for (int64_t t = t0; t < t1; t++) {
        j->isa->swiglu_row(j->out + t * j->dim, j->x + t * 2 * j->dim, j->dim);
    }
}

static p3_status cpu_swiglu(void *ctx, p3_ref out, p3_ref gate_up, int n_tokens, int dim,
                            p3_error *err) {
    (void)err;
    cpu_ctx *c = ctx;
    rows_job job = {c->isa, at(out), at(gate_up), NULL, n_tokens, dim, 0};
    run_rows(c, swiglu_task, &job);
    return PHI3C_OK;
}

/* x += y element-wise, in chunks of whole cache lines (prefill adds are MBs; decode's one row stays
 * on the caller). */
typedef struct add_job {
    const cpu_isa *isa;
    float *x;
    const float *y;
    size_t n;
} add_job;

static void add_task(void *arg, int ith, int nth) {
    add_job *j = arg;
    int64_t i0, i1;
    cpu_split((int64_t)j->n, 16, ith, nth, &i0, &i1);
    if (i0 < i1) j->isa->add(j->x + i0, j->y + i0, (size_t)(i1 - i0));
}

static p3_status cpu_add(void *ctx, p3_ref x, p3_ref y, size_t n, p3_error *err) {
    (void)err;
    cpu_ctx *c = ctx;
    add_job job = {c->isa, at(x), at(y), n};
    if (n < 65536)
        add_task(&job, 0, 1);
    else
        cpu_pool_run(c->pool, add_task, &job);
    return PHI3C_OK;
}

static p3_status cpu_copy(void *ctx, p3_ref dst, p3_ref src, size_t size, p3_error *err) {
    (void)ctx;
    (void)err;
    memcpy(at(dst), at(src), size);
    return PHI3C_OK;
}

static p3_status cpu_sync(void *ctx, p3_error *err) {
    (void)ctx;
    (void)err;
    return PHI3C_OK;
}

/* ---- matmul */

typedef struct matmul_job {
    cpu_ctx *c;
    float *y;
    const float *x;
    const cpu_weight *w;
    int n_tokens;
    atomic_llong next; /* AMX: next chunk to claim */
} matmul_job;

static void matmul_plain_task(void *arg, int ith, int nth) {
    matmul_job *j = arg;
    int64_t n0, n1;
    cpu_split(j->w->pub.rows, CPU_PANEL, ith, nth, &n0, &n1);
    if (n0 < n1) j->c->isa->matmul_plain(j->y, j->x, j->w, j->n_tokens, n0, n1);
}

static void matmul_w4a32_task(void *arg, int ith, int nth) {
    matmul_job *j = arg;
    int64_t n0, n1;
    cpu_split(j->w->pub.rows, CPU_PANEL, ith, nth, &n0, &n1);
    if (n0 < n1) j->c->isa->matmul_w4a32(j->y, j->x, j->w, j->n_tokens, n0, n1);
}

/* Scalar level: the reference itself, one token and one row range per call. */
static void matmul_w4a8_ref_task(void *arg, int ith, int nth) {
    matmul_job *j = arg;
    const cpu_weight *w = j->w;
    int64_t n0, n1;
    cpu_split(w->pub.rows, CPU_PANEL, ith, nth, &n0, &n1);
    for (int t = 0; n0 < n1 && t < j->n_tokens; t++)
        p3_matmul_w4a8_ref(j->y + (size_t)t * (size_t)w->pub.rows + (size_t)n0,
                           j->x + (size_t)t * (size_t)w->pub.cols,
                           w->data + (size_t)n0 * w->row_bytes, w->pub.dtype, n1 - n0, w->pub.cols,
                           1);
}

static void quantize_task(void *arg, int ith, int nth) {
    matmul_job *j = arg;
    int64_t t0, t1, groups = j->w->n_groups;
    cpu_split(j->n_tokens, 1, ith, nth, &t0, &t1);
    for (int64_t t = t0; t < t1; t++)
        j->c->isa->quantize_act(j->x + t * j->w->pub.cols, j->w->pub.cols, j->c->act + t * groups);
}

#if defined(__x86_64__)
/* AMX: whole token tiles per thread (the last may be partial), each quantized then repacked while
 * it is still in cache. */
static int64_t token_tiles(int n_tokens) {
    return (n_tokens + CPU_ACT_TILE_TOKENS - 1) / CPU_ACT_TILE_TOKENS;
}

static void quantize_tiles_task(void *arg, int ith, int nth) {
    matmul_job *j = arg;
    int64_t t0, t1, groups = j->w->n_groups;
    cpu_split(j->n_tokens, CPU_ACT_TILE_TOKENS, ith, nth, &t0, &t1);
    for (int64_t t = t0; t < t1; t++)
        j->c->isa->quantize_act(j->x + t * j->w->pub.cols, j->w->pub.cols, j->c->act + t * groups);
    int64_t tile0 = t0 / CPU_ACT_TILE_TOKENS, tile1 = token_tiles((int)t1);
    if (tile0 < tile1)
        cpu_pack_act_tiles(j->c->act_tiles, j->c->act, groups, j->n_tokens, tile0, tile1);
}

/* Chunks of AMX_CHUNK panels x one L2 block of token tiles, block-major, claimed in turn by
 * whichever thread is free (a busy machine deschedules threads; every output is computed the same
 * way by any thread). With one token tile (2..16 tokens) this is a split by panels, like the
 * GEMV's: each thread streams its own share of the weights. */
#define AMX_CHUNK 16
/* Fewest tokens for which the AMX GEMM beats the AVX-512 kernel (one vpdpbusd chain per token).
 * Measured with `phi3c bench --kernels --shapes 32064x8192 --batch N -t 1` (134 MB of INT4, so
 * both stream from memory; 1-thread GEMV 9.3-9.9 ms; shared machine, load ~2.8, two runs):
 *   N          2          3          4          8          16
 *   AVX-512    12.9-25.0  14.4-22.3  13.2-15.8  21.1-43.6  21.9-38.5 ms
 *   AMX        9.4-10.2   10.1-10.5  10.7-11.5  11.0-11.4  13.7-14.5 ms
 * AMX wins from 2 tokens on; 1 token stays on the GEMV (nothing to share a B tile with). */
#define AMX_MIN_TOKENS 2
static void matmul_amx_task(void *arg, int ith, int nth) {
    (void)ith;
    (void)nth;
    matmul_job *j = arg;
    const cpu_weight *w = j->w;
    int64_t n_tiles = token_tiles(j->n_tokens);
    int64_t per = cpu_amx_block_tiles(w, n_tiles), blocks = (n_tiles + per - 1) / per;
    int64_t pchunks = (w->n_panels + AMX_CHUNK - 1) / AMX_CHUNK;
    for (;;) {
        int64_t c = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (c >= blocks * pchunks) break;
        int64_t t0 = c / pchunks * per, p0 = c % pchunks * AMX_CHUNK;
        cpu_matmul_w4a8_amx(j->y, j->c->act_tiles, w, j->n_tokens, t0, P3_MIN(n_tiles, t0 + per),
                            p0, P3_MIN(w->n_panels, p0 + AMX_CHUNK));
    }
}

static p3_status grow_act_tiles(cpu_ctx *c, size_t bytes, p3_error *err) {
    if (bytes <= c->act_tiles_cap) return PHI3C_OK;
    uint8_t *a = p3_malloc_aligned(bytes, 64);
    if (!a) return p3_fail(err, PHI3C_ERR_NOMEM, "cpu backend: out of memory for activations");
    p3_free_aligned(c->act_tiles);
    c->act_tiles = a;
    c->act_tiles_cap = bytes;
    return PHI3C_OK;
}
#endif

static void matmul_w4a8_task(void *arg, int ith, int nth) {
    matmul_job *j = arg;
    int64_t p0, p1;
    cpu_split(j->w->n_panels, 1, ith, nth, &p0, &p1);
    if (p0 < p1) j->c->isa->matmul_w4a8(j->y, j->c->act, j->w, j->n_tokens, p0, p1);
}

static p3_status grow_act(cpu_ctx *c, size_t blocks, p3_error *err) {
    if (blocks <= c->act_cap) return PHI3C_OK;
    p3_block_q8g *a = p3_malloc_aligned(blocks * sizeof *a, 64);
    if (!a) return p3_fail(err, PHI3C_ERR_NOMEM, "cpu backend: out of memory for activations");
    p3_free_aligned(c->act);
    c->act = a;
    c->act_cap = blocks;
    return PHI3C_OK;
}

/* Chunks of a matmul's rows: several per thread, so a thread that runs slower (or not at all for a
 * while: a busy machine) leaves its share to the others and the wait at the end is one chunk. */
#define CHUNKS_PER_THREAD 8
static int row_chunks(const cpu_ctx *c, const cpu_weight *w) {
    int64_t panels = (w->pub.rows + CPU_PANEL - 1) / CPU_PANEL;
    return (int)P3_MIN(panels, (int64_t)CHUNKS_PER_THREAD * cpu_pool_threads(c->pool));
}

static p3_status cpu_matmul(void *ctx, p3_ref y, p3_ref x, const p3_weight *pw, int n_tokens,
                            p3_error *err) {
    cpu_ctx *c = ctx;
    const cpu_weight *w = (const cpu_weight *)pw;
    matmul_job job = {c, at(y), at(x), w, n_tokens, 0};
    int chunks = row_chunks(c, w);
    if (p3_dtype_is_float(w->pub.dtype)) {
        cpu_pool_run_chunks(c->pool, matmul_plain_task, &job, chunks);
    } else if (w->pub.act == P3_ACT_F32) {
        cpu_pool_run_chunks(c->pool, matmul_w4a32_task, &job, chunks);
    } else if (w->layout == CPU_LAYOUT_PLAIN) {
        cpu_pool_run_chunks(c->pool, matmul_w4a8_ref_task, &job, chunks);
    } else {
        p3_status st = grow_act(c, (size_t)n_tokens * (size_t)w->n_groups, err);
        if (st != PHI3C_OK) return st;
#if defined(__x86_64__)
        if (c->use_amx && n_tokens >= AMX_MIN_TOKENS) {
            size_t tiles = (size_t)token_tiles(n_tokens) * (size_t)w->n_groups;
            st = grow_act_tiles(c, tiles * CPU_ACT_TILE_BYTES, err);
            if (st != PHI3C_OK) return st;
            cpu_pool_run(c->pool, quantize_tiles_task, &job);
            cpu_pool_run(c->pool, matmul_amx_task, &job);
            return PHI3C_OK;
        }
#endif
        if (n_tokens < 4)
            quantize_task(&job, 0, 1);
        else
            cpu_pool_run(c->pool, quantize_task, &job);
        cpu_pool_run_chunks(c->pool, matmul_w4a8_task, &job, chunks);
    }
    return PHI3C_OK;
}

/* ---- rope: cos/sin once per token (bit-identical to the reference, which recomputes them per
 * head), applied to every Q and K head. */

typedef struct rope_job {
    float *qkv;
    int n_tokens, pos0;
    const p3_rope_params *p;
    const float *inv_freq;
} rope_job;

static void rope_task(void *arg, int ith, int nth) {
    rope_job *j = arg;
    const p3_rope_params *p = j->p;
    int half = p->rot_dim / 2, hd = p->head_dim;
    size_t width = (size_t)(p->n_heads + 2 * p->n_kv_heads) * (size_t)hd;
    float cs[2 * 256];
    int64_t t0, t1;
    cpu_split(j->n_tokens, 1, ith, nth, &t0, &t1);
    for (int64_t t = t0; t < t1; t++) {
        float pos = (float)(j->pos0 + (int)t);
        for (int i = 0; i < half; i++) {
            float angle = pos * j->inv_freq[i];
            cs[2 * i] = cosf(angle) * p->mscale;
            cs[2 * i + 1] = sinf(angle) * p->mscale;
        }
        for (int h = 0; h < p->n_heads + p->n_kv_heads; h++) {
            float *v = j->qkv + (size_t)t * width + (size_t)h * (size_t)hd;
            for (int i = 0; i < half; i++) {
                float c = cs[2 * i], s = cs[2 * i + 1];
                float x0 = v[i], x1 = v[i + half];
                v[i] = x0 * c - x1 * s;
                v[i + half] = x1 * c + x0 * s;
            }
        }
    }
}

static p3_status cpu_rope(void *ctx, p3_ref qkv, int n_tokens, int pos0, const p3_rope_params *p,
                          p3_error *err) {
    cpu_ctx *c = ctx;
    if (p->rot_dim > 512)
        return p3_fail(err, PHI3C_ERR_UNSUPPORTED, "cpu backend: rot_dim %d > 512", p->rot_dim);
    rope_job job = {at(qkv), n_tokens, pos0, p, at(p->inv_freq)};
    if (n_tokens == 1)
        rope_task(&job, 0, 1);
    else
        cpu_pool_run(c->pool, rope_task, &job);
    return PHI3C_OK;
}

/* ---- KV cache write and attention */

static void store_q8(int8_t *dst, float *scale, const float *src, int n) {
    float amax = 0.0f;
    for (int i = 0; i < n; i++) amax = fmaxf(amax, fabsf(src[i]));
    float d = amax / 127.0f, inv = amax > 0.0f ? 1.0f / d : 0.0f;
    for (int i = 0; i < n; i++) dst[i] = (int8_t)nearbyintf(src[i] * inv);
    *scale = d;
}

static void store_row(const cpu_isa *isa, cpu_kv *kv, bool value, int layer, int head, int pos,
                      const float *src) {
    int hd = kv->pub.desc.head_dim;
    size_t idx = cpu_kv_index(kv, layer, head, pos);
    uint8_t *base = value ? kv->v : kv->k;
    void *dst = base + idx * (size_t)hd * kv->elem;
    switch (kv->pub.desc.dtype) {
    case P3_KV_F32:
        memcpy(dst, src, (size_t)hd * sizeof(float));
        break;
    case P3_KV_F16:
        isa->store_f16(dst, src, hd);
        break;
    case P3_KV_Q8:
        store_q8(dst, (value ? kv->v_scale : kv->k_scale) + idx, src, hd);
        break;
    }
}

void cpu_kv_load_row(const cpu_kv *kv, bool value, int layer, int head, int pos, float *out) {
    int hd = kv->pub.desc.head_dim;
    size_t idx = cpu_kv_index(kv, layer, head, pos);
    const uint8_t *src = (value ? kv->v : kv->k) + idx * (size_t)hd * kv->elem;
    switch (kv->pub.desc.dtype) {
    case P3_KV_F32:
        memcpy(out, src, (size_t)hd * sizeof(float));
        break;
    case P3_KV_F16:
        for (int i = 0; i < hd; i++) out[i] = p3_f16_to_f32(((const uint16_t *)src)[i]);
        break;
    case P3_KV_Q8: {
        float d = (value ? kv->v_scale : kv->k_scale)[idx];
        for (int i = 0; i < hd; i++) out[i] = (float)((const int8_t *)src)[i] * d;
        break;
    }
    }
}

typedef struct kv_job {
    cpu_ctx *c;
    cpu_kv *kv;
    int layer, n_tokens, pos0;
    const float *qkv;
    float *out;
    const p3_attn_params *p;
    atomic_llong next; /* attention: next chunk of items to claim */
} kv_job;

static void kv_write_task(void *arg, int ith, int nth) {
    kv_job *j = arg;
    const p3_attn_params *p = j->p;
    size_t hd = (size_t)p->head_dim, width = (size_t)(p->n_heads + 2 * p->n_kv_heads) * hd;
    int64_t t0, t1;
    cpu_split(j->n_tokens, 1, ith, nth, &t0, &t1);
    for (int64_t t = t0; t < t1; t++)
        for (int h = 0; h < p->n_kv_heads; h++) {
            const float *k = j->qkv + (size_t)t * width + ((size_t)p->n_heads + (size_t)h) * hd;
            const float *v = k + (size_t)p->n_kv_heads * hd;
            store_row(j->c->isa, j->kv, false, j->layer, h, j->pos0 + (int)t, k);
            store_row(j->c->isa, j->kv, true, j->layer, h, j->pos0 + (int)t, v);
        }
}

static p3_status cpu_kv_write(void *ctx, p3_kv_cache *pkv, int layer, p3_ref qkv, int n_tokens,
                              int pos0, const p3_attn_params *p, p3_error *err) {
    (void)err;
    cpu_ctx *c = ctx;
    kv_job job = {c, (cpu_kv *)pkv, layer, n_tokens, pos0, at(qkv), NULL, p, 0};
    if (n_tokens == 1)
        kv_write_task(&job, 0, 1);
    else
        cpu_pool_run(c->pool, kv_write_task, &job);
    return PHI3C_OK;
}

/* Scalar level: unpack the layer into the reference's [pos][kv_head][head_dim] f32 layout. */
static void unpack_layer_task(void *arg, int ith, int nth) {
    kv_job *j = arg;
    cpu_kv *kv = j->kv;
    const p3_kv_desc *d = &kv->pub.desc;
    int64_t n0, n1;
    cpu_split(j->pos0 + j->n_tokens, 1, ith, nth, &n0, &n1);
    for (int64_t pos = n0; pos < n1; pos++)
        for (int h = 0; h < d->n_kv_heads; h++) {
            size_t off = ((size_t)pos * (size_t)d->n_kv_heads + (size_t)h) * (size_t)d->head_dim;
            cpu_kv_load_row(kv, false, j->layer, h, (int)pos, kv->k_f32 + off);
            cpu_kv_load_row(kv, true, j->layer, h, (int)pos, kv->v_f32 + off);
        }
}

static void ref_attention_task(void *arg, int ith, int nth) {
    kv_job *j = arg;
    const p3_attn_params *p = j->p;
    size_t hd = (size_t)p->head_dim, width = (size_t)(p->n_heads + 2 * p->n_kv_heads) * hd;
    int64_t t0, t1;
    cpu_split(j->n_tokens, 1, ith, nth, &t0, &t1);
    if (t0 < t1)
        p3_ref_attention(j->out + (size_t)t0 * (size_t)p->n_heads * hd, j->qkv + (size_t)t0 * width,
                         j->kv->k_f32, j->kv->v_f32, (int)(t1 - t0), j->pos0 + (int)t0, p);
}

/* Attention items [i0, i1) (see attention_task). */
static void attend_items(const kv_job *j, int64_t i0, int64_t i1, int tiles, int group,
                         size_t width, float *scratch) {
    const p3_attn_params *p = j->p;
    int hd = p->head_dim;
    for (int64_t i = i0; i < i1; i++) {
        int h = (int)(i / tiles), t0 = (int)(i % tiles) * CPU_ATT_TILE;
        int n = P3_MIN(CPU_ATT_TILE, j->n_tokens - t0);
        cpu_attn_job a[CPU_ATT_TILE];
        for (int k = 0; k < n; k++) {
            int t = t0 + k, pos = j->pos0 + t;
            a[k] = (cpu_attn_job){
                .kv = j->kv,
                .layer = j->layer,
                .kv_head = h / group,
                .lo = p->window > 0 ? P3_MAX(0, pos - p->window + 1) : 0,
                .hi = pos,
                .scale = p->scale,
                .q = j->qkv + (size_t)t * width + (size_t)h * (size_t)hd,
                .out = j->out + ((size_t)t * (size_t)p->n_heads + (size_t)h) * (size_t)hd,
                .scores = scratch + (size_t)k * j->c->scores_cap,
            };
        }
        if (n > 1 && j->c->isa->attend_tile)
            j->c->isa->attend_tile(a, n);
        else
            for (int k = 0; k < n; k++) j->c->isa->attend(&a[k]);
    }
}

/* SIMD levels: one item per (head, tile of CPU_ATT_TILE tokens), heads outermost so a thread's
 * keys stay in cache; chunks of ATT_CHUNK items are claimed in turn by whichever thread is free.
 * Every output is computed the same way whatever the tiling, the split or the thread. */
#define ATT_CHUNK 8
static void attention_task(void *arg, int ith, int nth) {
    (void)nth;
    kv_job *j = arg;
    const p3_attn_params *p = j->p;
    int group = p->n_heads / p->n_kv_heads;
    int tiles = (j->n_tokens + CPU_ATT_TILE - 1) / CPU_ATT_TILE;
    size_t width = (size_t)(p->n_heads + 2 * p->n_kv_heads) * (size_t)p->head_dim;
    float *scratch = j->c->scores + (size_t)ith * CPU_ATT_TILE * j->c->scores_cap;
    int64_t items = (int64_t)p->n_heads * tiles;
    for (;;) {
        int64_t i0 = atomic_fetch_add_explicit(&j->next, ATT_CHUNK, memory_order_relaxed);
        if (i0 >= items) break;
        attend_items(j, i0, P3_MIN(items, i0 + ATT_CHUNK), tiles, group, width, scratch);
    }
}

static p3_status cpu_attention(void *ctx, p3_ref out, p3_ref qkv, p3_kv_cache *pkv, int layer,
                               int n_tokens, int pos0, const p3_attn_params *p, p3_error *err) {
    (void)err;
    cpu_ctx *c = ctx;
    cpu_kv *kv = (cpu_kv *)pkv;
    kv_job job = {c, kv, layer, n_tokens, pos0, at(qkv), at(out), p, 0};
    if (c->isa != &cpu_isa_scalar) {
        cpu_pool_run(c->pool, attention_task, &job);
        return PHI3C_OK;
    }
    cpu_pool_run(c->pool, unpack_layer_task, &job);
    cpu_pool_run(c->pool, ref_attention_task, &job);
    return PHI3C_OK;
}

const p3_backend_iface p3_backend_cpu = {
    .version = P3_BACKEND_IFACE_VERSION,
    .name = "cpu",
    .probe = cpu_probe,
    .create = cpu_create,
    .destroy = cpu_destroy,
    .describe = cpu_describe,
    .supports = cpu_supports,
    .buffer_alloc = cpu_buffer_alloc,
    .buffer_free = cpu_buffer_free,
    .buffer_write = cpu_buffer_write,
    .buffer_read = cpu_buffer_read,
    .buffer_wrap_host = cpu_buffer_wrap_host,
    .weight_upload = cpu_weight_upload,
    .weight_free = cpu_weight_free,
    .weight_bytes = cpu_weight_bytes,
    .kv_alloc = cpu_kv_alloc,
    .kv_free = cpu_kv_free,
    .embed = cpu_embed,
    .rmsnorm = cpu_rmsnorm,
    .matmul = cpu_matmul,
    .rope = cpu_rope,
    .kv_write = cpu_kv_write,
    .attention = cpu_attention,
    .swiglu = cpu_swiglu,
    .add = cpu_add,
    .copy = cpu_copy,
    .sync = cpu_sync,
};
