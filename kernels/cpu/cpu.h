/* cpu.h: internals shared by the CPU backend's files: the weight and KV cache layouts, the thread
 * pool, and the per-ISA kernel table (scalar, AVX2, AVX-512, NEON) chosen at create time. */
#ifndef P3_KERNELS_CPU_H
#define P3_KERNELS_CPU_H

#include "backend.h"
#include "int4.h"

/* INT4 weights used with int8 activations are repacked into panels of CPU_PANEL output rows.
 * Per panel and 128-group: CPU_PANEL * 64 nibble bytes as 16 chunks of 64 bytes; in chunk c, byte
 * r*4 + b holds q[r][4c + b] (low nibble) and q[r][64 + 4c + b] (high nibble), so one 64-byte load
 * feeds two vpdpbusd steps of 16 rows x 4 consecutive K. Nibbles stay unsigned (0..15): the
 * activation group sum removes the offset (8, or the zero point) exactly in int32. Scales (f16) and
 * zero points (u8, asym only) live in separate arrays [panel][group][CPU_PANEL]. Rows past the
 * matrix end are zero-scaled padding. */
#define CPU_PANEL       16
#define CPU_CHUNK       64 /* bytes per chunk: CPU_PANEL rows x 4 bytes */
#define CPU_GROUP_BYTES (CPU_PANEL * P3_QK / 2)

typedef enum cpu_layout {
    CPU_LAYOUT_PLAIN = 0, /* the desc's own bytes: F32/F16/BF16 rows or INT4 blocks */
    CPU_LAYOUT_PANELS,    /* INT4 panels above, for P3_ACT_Q8 on SIMD levels */
} cpu_layout;

typedef struct cpu_weight {
    p3_weight pub;
    cpu_layout layout;
    size_t row_bytes; /* PLAIN: bytes per row */
    int64_t n_panels, n_groups;
    uint8_t *data;    /* PLAIN rows, or panel nibbles [panel][group][CPU_GROUP_BYTES] */
    uint16_t *scales; /* PANELS: f16 [panel][group][CPU_PANEL] */
    uint8_t *zeros;   /* PANELS asym: [panel][group][CPU_PANEL]; NULL for symmetric */
    size_t bytes;     /* total owned bytes */
} cpu_weight;

/* Panel p of a PANELS weight: its nibbles, f16 scales, zero points (NULL when symmetric) and the
 * matrix rows it holds (CPU_PANEL, fewer in the last panel). */
typedef struct cpu_panel {
    const uint8_t *data;
    const uint16_t *scales;
    const uint8_t *zeros;
    int rows;
} cpu_panel;

static inline cpu_panel cpu_panel_of(const cpu_weight *w, int64_t p) {
    size_t pg = (size_t)(p * w->n_groups);
    return (cpu_panel){w->data + pg * CPU_GROUP_BYTES, w->scales + pg * CPU_PANEL,
                       w->zeros ? w->zeros + pg * CPU_PANEL : NULL,
                       (int)P3_MIN((int64_t)CPU_PANEL, w->pub.rows - p * CPU_PANEL)};
}

/* KV cache: per layer and KV head, positions in order, head_dim elements each (head-major so
 * one head's keys are contiguous for attention). Q8 keeps one f32 scale per (head, position). */
typedef struct cpu_kv {
    p3_kv_cache pub;
    size_t elem;              /* bytes per element: 4 (f32), 2 (f16), 1 (q8) */
    uint8_t *k, *v;           /* [layer][kv_head][n_ctx][head_dim] */
    float *k_scale, *v_scale; /* Q8: [layer][kv_head][n_ctx] */
    float *k_f32, *v_f32;     /* scalar level: one layer unpacked to the reference's layout */
} cpu_kv;

static inline size_t cpu_kv_index(const cpu_kv *kv, int layer, int head, int pos) {
    const p3_kv_desc *d = &kv->pub.desc;
    return (((size_t)layer * (size_t)d->n_kv_heads + (size_t)head) * (size_t)d->n_ctx +
            (size_t)pos);
}

/* ---- thread pool: a task is cut into nth chunks, fn(arg, ith, nth) does chunk ith of them (its
 * own static part of the work: every output element is always computed by the same code in the same
 * order, whoever runs it). Chunks are claimed in turn by whichever thread is free, so a thread the
 * OS has descheduled never holds up the others; no two threads run the same ith at once, so ith
 * may index per-chunk scratch. */
typedef void (*cpu_task_fn)(void *arg, int ith, int nth);
typedef struct cpu_pool cpu_pool;
p3_status cpu_pool_create(int n_threads, cpu_pool **out, p3_error *err);
void cpu_pool_destroy(cpu_pool *pool);
int cpu_pool_threads(const cpu_pool *pool);
/* Runs the n_chunks chunks of fn (the caller takes part) and returns when all are done. */
void cpu_pool_run_chunks(cpu_pool *pool, cpu_task_fn fn, void *arg, int n_chunks);
/* The same with one chunk per thread (scratch sized by the thread count stays in bounds). */
void cpu_pool_run(cpu_pool *pool, cpu_task_fn fn, void *arg);

/* [begin, end) of n items for thread ith of nth, in whole units of `unit` items. */
static inline void cpu_split(int64_t n, int64_t unit, int ith, int nth, int64_t *begin,
                             int64_t *end) {
    int64_t units = (n + unit - 1) / unit;
    int64_t b = units * ith / nth, e = units * (ith + 1) / nth;
    *begin = P3_MIN(n, b * unit);
    *end = P3_MIN(n, e * unit);
}

/* Attention of one query head over positions [lo, hi] of one KV head. */
typedef struct cpu_attn_job {
    const cpu_kv *kv;
    int layer, kv_head, lo, hi;
    float scale;
    const float *q;
    float *out;
    float *scores; /* scratch of n_ctx floats */
} cpu_attn_job;

/* Up to this many query tokens of one head share each key and value load (prefill). */
#define CPU_ATT_TILE 4

/* The kernels an ISA level provides; the backend does the threading around them. */
typedef struct cpu_isa {
    const char *name;
    /* y[t][n] for rows n0..n1 of a PLAIN F32/F16/BF16 weight, all tokens. */
    void (*matmul_plain)(float *y, const float *x, const cpu_weight *w, int n_tokens, int64_t n0,
                         int64_t n1);
    /* Same for INT4 PLAIN weights with f32 activations (w4a32). */
    void (*matmul_w4a32)(float *y, const float *x, const cpu_weight *w, int n_tokens, int64_t n0,
                         int64_t n1);
    /* Quantizes one activation row (p3_quantize_act_q8g's exact results). */
    void (*quantize_act)(const float *x, int64_t k, p3_block_q8g *out);
    /* INT4 PANELS weights, int8 activations: panels p0..p1, all tokens. NULL on the scalar
     * level, which keeps PLAIN INT4 and calls p3_matmul_w4a8_ref. */
    void (*matmul_w4a8)(float *y, const p3_block_q8g *xa, const cpu_weight *w, int n_tokens,
                        int64_t p0, int64_t p1);
    void (*attend)(const cpu_attn_job *job);
    /* (optional) n <= CPU_ATT_TILE jobs of one head at consecutive positions; each result must
     * equal attend's bit for bit. NULL: attend is called for each. */
    void (*attend_tile)(const cpu_attn_job *jobs, int n);
    void (*rmsnorm_row)(float *out, const float *x, const float *w, int dim, float eps);
    void (*swiglu_row)(float *out, const float *gate_up, int dim); /* gate_up: 2*dim */
    void (*add)(float *x, const float *y, size_t n);
    /* Stores n floats into the cache format (f16 or f32 copies; q8 returns the scale). */
    void (*store_f16)(uint16_t *dst, const float *src, int n);
} cpu_isa;

extern const cpu_isa cpu_isa_scalar;
#if defined(__x86_64__)
extern const cpu_isa cpu_isa_avx2;
extern const cpu_isa cpu_isa_avx2_vnni;
/* AMX (kernels_amx.c): the AVX-512 level with a GEMM for 2 or more tokens; needs cpu_amx_request()
 * first. Its activations are repacked per tile of CPU_ACT_TILE_TOKENS tokens and 128-group into
 * CPU_ACT_TILE_BYTES: qs[0..63] of the 16 tokens (one 64-byte row each), then qs[64..127], then
 * the 16 scales d, then the 16 sums * 8 (int32); tiles [token tile][group], 64-byte aligned. The
 * last tile may hold fewer tokens (its A and C tiles are configured with that many rows; the rows
 * past them are never read). */
#define CPU_ACT_TILE_TOKENS 16
#define CPU_ACT_TILE_BYTES  (2 * CPU_ACT_TILE_TOKENS * 64 + 128)
bool cpu_amx_request(void);
/* Token tiles [tile0, tile1) of xa ([n_tokens][ng] blocks) into dst, laid out as above. */
void cpu_pack_act_tiles(uint8_t *dst, const p3_block_q8g *xa, int64_t ng, int64_t n_tokens,
                        int64_t tile0, int64_t tile1);
/* Token tiles per block (of n_tiles) whose activations stay in L2 while every panel uses them. */
int64_t cpu_amx_block_tiles(const cpu_weight *w, int64_t n_tiles);
/* Outputs of token tiles [tile0, tile1) x panels [p0, p1) of an n_tokens matmul from packed
 * `tiles` (y: [tokens][rows]). */
void cpu_matmul_w4a8_amx(float *y, const uint8_t *tiles, const cpu_weight *w, int64_t n_tokens,
                         int64_t tile0, int64_t tile1, int64_t p0, int64_t p1);
extern const cpu_isa cpu_isa_avx512;
#endif
#if defined(__aarch64__)
extern const cpu_isa cpu_isa_neon;
#endif

/* Shared scalar pieces used by several levels (kernels_scalar.c). */
void cpu_matmul_plain_scalar(float *y, const float *x, const cpu_weight *w, int n_tokens,
                             int64_t n0, int64_t n1);
void cpu_matmul_w4a32_scalar(float *y, const float *x, const cpu_weight *w, int n_tokens,
                             int64_t n0, int64_t n1);
void cpu_quantize_act_scalar(const float *x, int64_t k, p3_block_q8g *out);
void cpu_attend_scalar(const cpu_attn_job *job);
void cpu_matmul_w4a8_panels_c(float *y, const p3_block_q8g *xa, const cpu_weight *w, int n_tokens,
                              int64_t p0, int64_t p1);
/* Key or value j of a job's head as f32 (any cache type). */
void cpu_kv_load_row(const cpu_kv *kv, bool value, int layer, int head, int pos, float *out);

#endif /* P3_KERNELS_CPU_H */
