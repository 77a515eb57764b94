/* clk_ops.h: the kernel program of kernels/clk/ (the .cl files) as backend ops that do not
 * depend on the host API. Two backends run these kernels: the OpenCL backend builds the source at
 * run time, the Level Zero GPU backend embeds the same source compiled offline to SPIR-V. Which
 * kernel an op launches, its argument list, its grid, the layout weights are repacked into at
 * upload and the KV cache layout are written here once, so the two cannot drift apart.
 *
 * A backend supplies device memory and kernel launches through a p3_clk_host, the first member of
 * its context, and puts the p3_clk_* functions below straight into its method table (they take the
 * same `void *ctx`). It keeps buffers, reads, copies, sync and discovery for itself. */
#ifndef P3_CLK_OPS_H
#define P3_CLK_OPS_H

#include "backend.h"

/* X(enum, kernel name): every kernel of the .cl files the ops launch. */
#define P3_CLK_KERNELS(X)                                                                          \
    X(P3_CLK_EMBED_F32, "p3_embed_f32")                                                            \
    X(P3_CLK_EMBED_F16, "p3_embed_f16")                                                            \
    X(P3_CLK_EMBED_BF16, "p3_embed_bf16")                                                          \
    X(P3_CLK_EMBED_I4, "p3_embed_i4")                                                              \
    X(P3_CLK_RMSNORM, "p3_rmsnorm")                                                                \
    X(P3_CLK_ROPE, "p3_rope")                                                                      \
    X(P3_CLK_SWIGLU, "p3_swiglu")                                                                  \
    X(P3_CLK_ADD, "p3_add")                                                                        \
    X(P3_CLK_KV_WRITE_F32, "p3_kv_write_f32")                                                      \
    X(P3_CLK_KV_WRITE_F16, "p3_kv_write_f16")                                                      \
    X(P3_CLK_KV_WRITE_Q8, "p3_kv_write_q8")                                                        \
    X(P3_CLK_ATTENTION_F32, "p3_attention_f32")                                                    \
    X(P3_CLK_ATTENTION_F16, "p3_attention_f16")                                                    \
    X(P3_CLK_ATTENTION_Q8, "p3_attention_q8")                                                      \
    X(P3_CLK_ATTENTION_MERGE, "p3_attention_merge")                                                \
    X(P3_CLK_MM_I4_T1, "p3_mm_i4_t1")                                                              \
    X(P3_CLK_MM_I4_T4, "p3_mm_i4_t4")                                                              \
    X(P3_CLK_MM_F32_T1, "p3_mm_f32_t1")                                                            \
    X(P3_CLK_MM_F32_T4, "p3_mm_f32_t4")                                                            \
    X(P3_CLK_MM_F16_T1, "p3_mm_f16_t1")                                                            \
    X(P3_CLK_MM_F16_T4, "p3_mm_f16_t4")                                                            \
    X(P3_CLK_MM_BF16_T1, "p3_mm_bf16_t1")                                                          \
    X(P3_CLK_MM_BF16_T4, "p3_mm_bf16_t4")                                                          \
    X(P3_CLK_QUANT_ACT, "p3_quant_act")                                                            \
    X(P3_CLK_MM_I4Q8_T1, "p3_mm_i4q8_t1")                                                          \
    X(P3_CLK_MM_I4Q8_T4, "p3_mm_i4q8_t4")

typedef enum p3_clk_kernel {
#define P3_CLK_ENUM(id, name) id,
    P3_CLK_KERNELS(P3_CLK_ENUM)
#undef P3_CLK_ENUM
        P3_CLK_COUNT
} p3_clk_kernel;

extern const char *const p3_clk_kernel_names[P3_CLK_COUNT];

/* Limits the kernels are written for (attention.cl keeps a head in local memory). */
enum { P3_CLK_MAX_HEAD_DIM = 256 };

typedef enum p3_clk_arg_kind {
    P3_CLK_ARG_MEM,   /* a device allocation handle (cl_mem, Level Zero device pointer) */
    P3_CLK_ARG_INT,   /* int */
    P3_CLK_ARG_ULONG, /* ulong: element offsets into a MEM argument */
    P3_CLK_ARG_FLOAT, /* float */
} p3_clk_arg_kind;

typedef struct p3_clk_arg {
    p3_clk_arg_kind kind;
    union {
        void *mem;
        int32_t i;
        uint64_t u;
        float f;
    } v;
} p3_clk_arg;

/* The bytes a kernel receives for an argument, and how many: the value as the kernel's C type
 * (a pointer-sized handle, int, ulong or float), which is what clSetKernelArg and
 * zeKernelSetArgumentValue both take. */
static inline const void *p3_clk_arg_bytes(const p3_clk_arg *a, size_t *size) {
    switch (a->kind) {
    case P3_CLK_ARG_MEM:
        *size = sizeof a->v.mem;
        return &a->v.mem;
    case P3_CLK_ARG_ULONG:
        *size = sizeof a->v.u;
        return &a->v.u;
    case P3_CLK_ARG_INT:
        *size = sizeof a->v.i;
        return &a->v.i;
    default:
        *size = sizeof a->v.f;
        return &a->v.f;
    }
}

enum { P3_CLK_MAX_ARGS = 24 };

/* One kernel launch: the kernel's arguments in order and its NDRange. local all zero leaves the
 * work-group size to the host API; every such kernel checks dimension 0 against its bound, so the
 * host may round global[0] up to a whole number of groups. */
typedef struct p3_clk_launch {
    p3_clk_kernel kernel;
    const char *op; /* for messages: "matmul", "attention (merge)" */
    unsigned dims;
    size_t global[3];
    size_t local[3];
    int n_args;
    p3_clk_arg args[P3_CLK_MAX_ARGS];
} p3_clk_launch;

typedef struct p3_clk_host p3_clk_host;

/* What a host API provides. Handles are what kernels take as buffer arguments; a p3_buffer's impl
 * must be such a handle too (ops read p3_ref.buf->impl). */
struct p3_clk_host {
    const char *api; /* "opencl", "level-zero": the prefix of messages */
    /* Device memory of `bytes`; `what` names it in the out-of-memory message. */
    p3_status (*alloc)(p3_clk_host *h, size_t bytes, const char *what, void **mem, p3_error *err);
    /* Frees an allocation that queued work may still use (the host waits or defers). */
    void (*release)(p3_clk_host *h, void *mem);
    /* Host to device, complete on return. */
    p3_status (*write)(p3_clk_host *h, void *mem, const void *src, size_t bytes, p3_error *err);
    /* Appends the launch to the stream, after everything appended before. */
    p3_status (*launch)(p3_clk_host *h, const p3_clk_launch *l, p3_error *err);
    void *bad_id; /* an int the embed kernels raise for an id outside the table, read at sync */
    /* Scratch of the ops, grown to the largest need, freed by p3_clk_host_release: w4a8
     * activations (int8 [T][groups*128], scales and sums [T][groups]) and split-decode partials. */
    void *act_q, *act_d, *act_s;
    size_t act_groups;
    void *att_part;
    size_t att_part_bytes;
};

void p3_clk_host_release(p3_clk_host *h);

/* An uploaded weight. INT4: a = nibble words uint [groups*16][stride], b = f16 scales
 * [groups][stride], c = zero points uchar [groups][stride], stride = rows rounded up to 16.
 * Plain: a = [cols][rows] of the weight's type (matmul.cl explains both). */
typedef struct p3_clk_weight {
    p3_weight pub;
    void *a, *b, *c;
    size_t stride;
    size_t bytes;
} p3_clk_weight;

/* KV cache [layer][kv_head][n_ctx][head_dim] (f32, f16 or int8); q8 adds f32 scales
 * [layer][kv_head][n_ctx] in ks/vs. */
typedef struct p3_clk_kv {
    p3_kv_cache pub;
    void *k, *v, *ks, *vs;
    size_t layer_elems; /* n_kv_heads * n_ctx * head_dim */
    size_t layer_rows;  /* n_kv_heads * n_ctx */
} p3_clk_kv;

/* Method-table entries; ctx points to a struct whose first member is a p3_clk_host. */
bool p3_clk_supports(void *ctx, p3_op op, p3_dtype weight, p3_act_mode act, p3_kv_dtype kv);
p3_status p3_clk_weight_upload(void *ctx, const p3_weight_desc *d, p3_weight **out, p3_error *err);
void p3_clk_weight_free(void *ctx, p3_weight *w);
size_t p3_clk_weight_bytes(void *ctx, const p3_weight *w);
p3_status p3_clk_kv_alloc(void *ctx, const p3_kv_desc *d, p3_kv_cache **out, p3_error *err);
void p3_clk_kv_free(void *ctx, p3_kv_cache *kv);
p3_status p3_clk_embed(void *ctx, p3_ref out, const p3_weight *table, p3_ref ids, int n_tokens,
                       p3_error *err);
p3_status p3_clk_rmsnorm(void *ctx, p3_ref out, p3_ref x, p3_ref w, int n_tokens, int dim,
                         float eps, p3_error *err);
p3_status p3_clk_matmul(void *ctx, p3_ref y, p3_ref x, const p3_weight *w, int n_tokens,
                        p3_error *err);
p3_status p3_clk_rope(void *ctx, p3_ref qkv, int n_tokens, int pos0, const p3_rope_params *p,
                      p3_error *err);
p3_status p3_clk_kv_write(void *ctx, p3_kv_cache *kv, int layer, p3_ref qkv, int n_tokens, int pos0,
                          const p3_attn_params *p, p3_error *err);
p3_status p3_clk_attention(void *ctx, p3_ref out, p3_ref qkv, p3_kv_cache *kv, int layer,
                           int n_tokens, int pos0, const p3_attn_params *p, p3_error *err);
p3_status p3_clk_swiglu(void *ctx, p3_ref out, p3_ref gate_up, int n_tokens, int dim,
                        p3_error *err);
p3_status p3_clk_add(void *ctx, p3_ref x, p3_ref y, size_t n, p3_error *err);

/* The method-table entries above, for a backend's p3_backend_iface initializer. */
#define P3_CLK_METHODS                                                                             \
    .supports = p3_clk_supports, .weight_upload = p3_clk_weight_upload,                            \
    .weight_free = p3_clk_weight_free, .weight_bytes = p3_clk_weight_bytes,                        \
    .kv_alloc = p3_clk_kv_alloc, .kv_free = p3_clk_kv_free, .embed = p3_clk_embed,                 \
    .rmsnorm = p3_clk_rmsnorm, .matmul = p3_clk_matmul, .rope = p3_clk_rope,                       \
    .kv_write = p3_clk_kv_write, .attention = p3_clk_attention, .swiglu = p3_clk_swiglu,           \
    .add = p3_clk_add

#endif /* P3_CLK_OPS_H */
