/* backend.h: the contract between the engine and a compute backend (CPU, OpenCL, Level Zero GPU,
 * Level Zero NPU). A backend is a static const table of function pointers plus an opaque context.
 * Designed for devices: buffers are device-resident, ops are enqueued without host round trips,
 * and the host waits once per step (buffer_read or sync). The scalar reference of every op is in
 * kernels/ref.h; docs/PORTING.md explains how to add a backend and prove it with the conformance
 * suite. The engine never calls the table directly: it uses the checked wrappers at the bottom. */
#ifndef P3_KERNELS_BACKEND_H
#define P3_KERNELS_BACKEND_H

#include "p3.h"
#include "p3_dtype.h"

/* Bumped when the table changes incompatibly (SQLite's iVersion idea): a backend states the
 * version it was written for, and the registry refuses a mismatch. */
#define P3_BACKEND_IFACE_VERSION 1

/* A backend allocation. The backend fills the fields; `host` is non-NULL only when the memory is
 * directly addressable by the CPU (CPU backend, or mapped shared memory). */
typedef struct p3_buffer {
    size_t size;
    void *host;
    void *impl; /* backend-private handle (cl_mem, device pointer...) */
} p3_buffer;

/* A place in a buffer: all op arguments are (buffer, byte offset) pairs so the engine can address
 * rows (e.g. the last token's hidden state) without copies. */
typedef struct p3_ref {
    p3_buffer *buf;
    size_t offset;
} p3_ref;

static inline p3_ref p3_ref_at(p3_buffer *buf, size_t offset) {
    p3_ref r = {buf, offset};
    return r;
}

/* How int4 weights meet activations (quant/int4.h has the reference of each kind). */
typedef enum p3_act_mode {
    P3_ACT_F32 = 0, /* w4a32: exact dequantized weights times f32 activations */
    P3_ACT_Q8,      /* w4a8: activations quantized per 128-group to int8, integer dots */
} p3_act_mode;

typedef enum p3_kv_dtype { P3_KV_F32 = 0, P3_KV_F16, P3_KV_Q8 } p3_kv_dtype;

/* A weight as the engine hands it over: host data in a loader/quant layout (F32, F16, BF16,
 * I4G128S, I4G128A), row-major [rows = out, cols = in]. The backend copies and repacks it into
 * its preferred layout during weight_upload; `data` need not outlive the call. */
typedef struct p3_weight_desc {
    const char *name; /* for messages */
    p3_dtype dtype;
    int64_t rows, cols;
    const void *data;
    p3_act_mode act; /* only meaningful for INT4 dtypes */
} p3_weight_desc;

/* An uploaded weight. The backend fills the common fields so the wrappers can check shapes. */
typedef struct p3_weight {
    p3_dtype dtype;
    int64_t rows, cols;
    p3_act_mode act;
    void *impl;
} p3_weight;

typedef struct p3_kv_desc {
    int n_layers;
    int n_ctx; /* positions per layer */
    int n_kv_heads;
    int head_dim;
    p3_kv_dtype dtype;
} p3_kv_desc;

/* The cache's layout is the backend's own; only kv_write and attention touch it. */
typedef struct p3_kv_cache {
    p3_kv_desc desc;
    void *impl;
} p3_kv_cache;

/* Shapes of the fused qkv rows: [Q: n_heads*head_dim | K: n_kv_heads*head_dim | V: same]. */
typedef struct p3_attn_params {
    int n_heads;
    int n_kv_heads; /* query head h reads KV head h / (n_heads / n_kv_heads) */
    int head_dim;
    int window;  /* query at position i sees keys j with i - window < j <= i; 0 = no window */
    float scale; /* usually 1/sqrt(head_dim) */
} p3_attn_params;

typedef struct p3_rope_params {
    int n_heads;
    int n_kv_heads;
    int head_dim;
    int rot_dim;     /* dims >= rot_dim pass through; pairs are (i, i + rot_dim/2) */
    p3_ref inv_freq; /* rot_dim/2 f32, LongRoPE factors already folded in */
    float mscale;    /* multiplies cos and sin (LongRoPE attention factor), 1 otherwise */
} p3_rope_params;

typedef struct p3_backend_options {
    int n_threads;       /* CPU threads; 0 = all cores */
    int device;          /* device index for GPU backends */
    const char *variant; /* backend-specific: CPU ISA "scalar|avx2|avx512|neon", NULL = best */
} p3_backend_options;

typedef enum p3_op {
    P3_OP_EMBED = 0,
    P3_OP_RMSNORM,
    P3_OP_MATMUL,
    P3_OP_ROPE,
    P3_OP_KV_WRITE,
    P3_OP_ATTENTION,
    P3_OP_SWIGLU,
    P3_OP_ADD,
    P3_OP_COPY,
    P3_OP_COUNT
} p3_op;

/* The method table. Every entry marked (optional) may be NULL; the wrappers then report
 * PHI3C_ERR_UNSUPPORTED naming the backend and the op, so the engine can fall back or say why.
 * Ops are enqueued in order on one stream; a backend may defer errors to the next sync/read. All
 * shapes are in elements; p3_ref offsets in bytes. Activations are f32, row-major [tokens, dim]. */
typedef struct p3_backend_iface {
    int version;      /* P3_BACKEND_IFACE_VERSION */
    const char *name; /* "cpu", "opencl", "level-zero" */

    /* Is the backend usable on this machine? Fills `why` (e.g. "libOpenCL.so.1 not found") when
     * not, and a one-line device list in `devices` when it is. Must be cheap and side-effect free.
     */
    bool (*probe)(char *why, size_t why_len, char *devices, size_t devices_len);
    p3_status (*create)(const p3_backend_options *opt, void **ctx, p3_error *err);
    void (*destroy)(void *ctx);
    /* One line for logs and `phi3c info`: "cpu avx512-vnni, 2 threads". */
    void (*describe)(void *ctx, char *buf, size_t len);
    /* (optional) Whether an op is available for a weight dtype / activation mode / KV type; NULL
     * means every non-NULL op handles every type the engine uses. */
    bool (*supports)(void *ctx, p3_op op, p3_dtype weight, p3_act_mode act, p3_kv_dtype kv);

    p3_status (*buffer_alloc)(void *ctx, size_t size, p3_buffer **out, p3_error *err);
    void (*buffer_free)(void *ctx, p3_buffer *buf);
    p3_status (*buffer_write)(void *ctx, p3_ref dst, const void *src, size_t size, p3_error *err);
    /* Waits for all enqueued work that precedes it, then copies. */
    p3_status (*buffer_read)(void *ctx, p3_ref src, void *dst, size_t size, p3_error *err);
    /* (optional) Zero-copy view of host memory (e.g. mmap'd weights); read-only for ops. */
    p3_status (*buffer_wrap_host)(void *ctx, const void *host, size_t size, p3_buffer **out,
                                  p3_error *err);

    p3_status (*weight_upload)(void *ctx, const p3_weight_desc *desc, p3_weight **out,
                               p3_error *err);
    void (*weight_free)(void *ctx, p3_weight *w);
    /* Bytes the uploaded weight occupies on the device (for stats and RSS budgets). */
    size_t (*weight_bytes)(void *ctx, const p3_weight *w);

    p3_status (*kv_alloc)(void *ctx, const p3_kv_desc *desc, p3_kv_cache **out, p3_error *err);
    void (*kv_free)(void *ctx, p3_kv_cache *kv);

    /* out[t][:] = row ids[t] of table (dequantized to f32); ids: int32 [n_tokens]. */
    p3_status (*embed)(void *ctx, p3_ref out, const p3_weight *table, p3_ref ids, int n_tokens,
                       p3_error *err);
    /* out[t] = x[t] * rsqrt(mean(x[t]^2) + eps) * w; w: f32 [dim]. out may equal x. */
    p3_status (*rmsnorm)(void *ctx, p3_ref out, p3_ref x, p3_ref w, int n_tokens, int dim,
                         float eps, p3_error *err);
    /* y[t][n] = sum_k x[t][k] * W[n][k]; x: [n_tokens, cols], y: [n_tokens, rows]. */
    p3_status (*matmul)(void *ctx, p3_ref y, p3_ref x, const p3_weight *w, int n_tokens,
                        p3_error *err);
    /* Rotates Q and K of qkv rows in place; token t has position pos0 + t. */
    p3_status (*rope)(void *ctx, p3_ref qkv, int n_tokens, int pos0, const p3_rope_params *p,
                      p3_error *err);
    /* Stores K and V of the qkv rows at positions pos0..pos0+n_tokens-1 of `layer`. */
    p3_status (*kv_write)(void *ctx, p3_kv_cache *kv, int layer, p3_ref qkv, int n_tokens, int pos0,
                          const p3_attn_params *p, p3_error *err);
    /* Causal attention of the Q rows of qkv (positions pos0 + t) over the cached keys/values of
     * `layer` at positions [max(0, pos - window + 1), pos]; out: [n_tokens, n_heads*head_dim]. */
    p3_status (*attention)(void *ctx, p3_ref out, p3_ref qkv, p3_kv_cache *kv, int layer,
                           int n_tokens, int pos0, const p3_attn_params *p, p3_error *err);
    /* out[t][i] = silu(gu[t][i]) * gu[t][dim + i]; gu: [n_tokens, 2*dim], out: [n_tokens, dim]. */
    p3_status (*swiglu)(void *ctx, p3_ref out, p3_ref gate_up, int n_tokens, int dim,
                        p3_error *err);
    /* x[i] += y[i] for n floats. */
    p3_status (*add)(void *ctx, p3_ref x, p3_ref y, size_t n, p3_error *err);
    /* Device-side copy of size bytes (non-overlapping). */
    p3_status (*copy)(void *ctx, p3_ref dst, p3_ref src, size_t size, p3_error *err);
    /* Waits for everything enqueued; reports deferred errors. */
    p3_status (*sync)(void *ctx, p3_error *err);
} p3_backend_iface;

/* An opened backend: the table and its context. */
typedef struct p3_backend {
    const p3_backend_iface *iface;
    void *ctx;
} p3_backend;

/* ---- Registry (kernels/registry.c): the one piece of global state, probed once, read-only after.
 */
typedef struct p3_backend_info {
    const char *name;
    bool available;
    char why[256];     /* why not available */
    char devices[256]; /* what was found */
} p3_backend_info;

size_t p3_backend_count(void);
/* Probes (once, cached) and describes backend i. */
void p3_backend_info_at(size_t i, p3_backend_info *info);
/* Opens backend `name` ("cpu", "opencl", "level-zero") or, when name is NULL or "auto", the best
 * available one. A named backend that is unavailable fails with PHI3C_ERR_UNAVAILABLE and why. */
p3_status p3_backend_open(const char *name, const p3_backend_options *opt, p3_backend *out,
                          p3_error *err);
void p3_backend_close(p3_backend *be);

/* ---- Checked wrappers (kernels/backend.c): the only way the engine calls a backend. They check
 * NULL entries, argument ranges and that every p3_ref covers the bytes the op touches. */
p3_status p3_be_buffer_alloc(p3_backend *be, size_t size, p3_buffer **out, p3_error *err);
void p3_be_buffer_free(p3_backend *be, p3_buffer *buf);
p3_status p3_be_write(p3_backend *be, p3_ref dst, const void *src, size_t size, p3_error *err);
p3_status p3_be_read(p3_backend *be, p3_ref src, void *dst, size_t size, p3_error *err);
p3_status p3_be_weight_upload(p3_backend *be, const p3_weight_desc *desc, p3_weight **out,
                              p3_error *err);
void p3_be_weight_free(p3_backend *be, p3_weight *w);
p3_status p3_be_kv_alloc(p3_backend *be, const p3_kv_desc *desc, p3_kv_cache **out, p3_error *err);
void p3_be_kv_free(p3_backend *be, p3_kv_cache *kv);
bool p3_be_supports(p3_backend *be, p3_op op, p3_dtype weight, p3_act_mode act, p3_kv_dtype kv);
/* The backend's name ("cpu"), its one-line description (its name when it has none) and the
 * device bytes of an uploaded weight (0 when the backend does not say). */
const char *p3_be_name(const p3_backend *be);
void p3_be_describe(p3_backend *be, char *buf, size_t len);
size_t p3_be_weight_bytes(p3_backend *be, const p3_weight *w);

p3_status p3_be_embed(p3_backend *be, p3_ref out, const p3_weight *table, p3_ref ids, int n_tokens,
                      p3_error *err);
p3_status p3_be_rmsnorm(p3_backend *be, p3_ref out, p3_ref x, p3_ref w, int n_tokens, int dim,
                        float eps, p3_error *err);
p3_status p3_be_matmul(p3_backend *be, p3_ref y, p3_ref x, const p3_weight *w, int n_tokens,
                       p3_error *err);
p3_status p3_be_rope(p3_backend *be, p3_ref qkv, int n_tokens, int pos0, const p3_rope_params *p,
                     p3_error *err);
p3_status p3_be_kv_write(p3_backend *be, p3_kv_cache *kv, int layer, p3_ref qkv, int n_tokens,
                         int pos0, const p3_attn_params *p, p3_error *err);
p3_status p3_be_attention(p3_backend *be, p3_ref out, p3_ref qkv, p3_kv_cache *kv, int layer,
                          int n_tokens, int pos0, const p3_attn_params *p, p3_error *err);
p3_status p3_be_swiglu(p3_backend *be, p3_ref out, p3_ref gate_up, int n_tokens, int dim,
                       p3_error *err);
p3_status p3_be_add(p3_backend *be, p3_ref x, p3_ref y, size_t n, p3_error *err);
p3_status p3_be_copy(p3_backend *be, p3_ref dst, p3_ref src, size_t size, p3_error *err);
p3_status p3_be_sync(p3_backend *be, p3_error *err);

#endif /* P3_KERNELS_BACKEND_H */
