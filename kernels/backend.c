/* backend.c: the checked wrappers the engine calls instead of the method table: NULL entries
 * become PHI3C_ERR_UNSUPPORTED, and every p3_ref is checked to cover the bytes an op touches. */
#include "backend.h"

#include <stdio.h>
#include <string.h>

static const char *const op_names[P3_OP_COUNT] = {
    [P3_OP_EMBED] = "embed",   [P3_OP_RMSNORM] = "rmsnorm",   [P3_OP_MATMUL] = "matmul",
    [P3_OP_ROPE] = "rope",     [P3_OP_KV_WRITE] = "kv_write", [P3_OP_ATTENTION] = "attention",
    [P3_OP_SWIGLU] = "swiglu", [P3_OP_ADD] = "add",           [P3_OP_COPY] = "copy",
};

static p3_status unsupported(const p3_backend *be, p3_op op, p3_error *err) {
    return p3_fail(err, PHI3C_ERR_UNSUPPORTED, "backend %s does not implement %s", be->iface->name,
                   op_names[op]);
}

/* elements * elem_size bytes starting at ref must lie inside its buffer. */
static p3_status check_ref(const p3_backend *be, p3_op op, const char *what, p3_ref ref,
                           size_t elements, size_t elem_size, p3_error *err) {
    size_t bytes, end;
    if (!ref.buf)
        return p3_fail(err, PHI3C_ERR_INVALID_ARG, "%s %s: %s buffer is NULL", be->iface->name,
                       op_names[op], what);
    if (!p3_mul_size(elements, elem_size, &bytes) || !p3_add_size(ref.offset, bytes, &end) ||
        end > ref.buf->size)
        return p3_fail(err, PHI3C_ERR_INVALID_ARG,
                       "%s %s: %s needs %zu elements at offset %zu, buffer holds %zu bytes",
                       be->iface->name, op_names[op], what, elements, ref.offset, ref.buf->size);
    return PHI3C_OK;
}

static p3_status check_tokens(const p3_backend *be, p3_op op, int n_tokens, p3_error *err) {
    if (n_tokens <= 0)
        return p3_fail(err, PHI3C_ERR_INVALID_ARG, "%s %s: n_tokens %d", be->iface->name,
                       op_names[op], n_tokens);
    return PHI3C_OK;
}

static size_t qkv_width(const p3_attn_params *p) {
    return (size_t)(p->n_heads + 2 * p->n_kv_heads) * (size_t)p->head_dim;
}

static p3_status check_attn(const p3_backend *be, p3_op op, const p3_kv_cache *kv, int layer,
                            int n_tokens, int pos0, const p3_attn_params *p, p3_error *err) {
    if (p->n_heads <= 0 || p->n_kv_heads <= 0 || p->n_heads % p->n_kv_heads || p->head_dim <= 0)
        return p3_fail(err, PHI3C_ERR_INVALID_ARG, "%s %s: heads %d/%d, head_dim %d",
                       be->iface->name, op_names[op], p->n_heads, p->n_kv_heads, p->head_dim);
    if (!kv || layer < 0 || layer >= kv->desc.n_layers || kv->desc.n_kv_heads != p->n_kv_heads ||
        kv->desc.head_dim != p->head_dim)
        return p3_fail(err, PHI3C_ERR_INVALID_ARG, "%s %s: KV cache does not match layer %d",
                       be->iface->name, op_names[op], layer);
    if (pos0 < 0 || n_tokens > kv->desc.n_ctx - pos0)
        return p3_fail(err, PHI3C_ERR_CONTEXT_FULL,
                       "%s %s: positions %d..%d exceed the KV cache of %d", be->iface->name,
                       op_names[op], pos0, pos0 + n_tokens - 1, kv->desc.n_ctx);
    return PHI3C_OK;
}

p3_status p3_be_buffer_alloc(p3_backend *be, size_t size, p3_buffer **out, p3_error *err) {
    return be->iface->buffer_alloc(be->ctx, size, out, err);
}
void p3_be_buffer_free(p3_backend *be, p3_buffer *buf) {
    if (buf) be->iface->buffer_free(be->ctx, buf);
}

p3_status p3_be_write(p3_backend *be, p3_ref dst, const void *src, size_t size, p3_error *err) {
    P3_TRY(check_ref(be, P3_OP_COPY, "write destination", dst, size, 1, err));
    return be->iface->buffer_write(be->ctx, dst, src, size, err);
}

p3_status p3_be_read(p3_backend *be, p3_ref src, void *dst, size_t size, p3_error *err) {
    P3_TRY(check_ref(be, P3_OP_COPY, "read source", src, size, 1, err));
    return be->iface->buffer_read(be->ctx, src, dst, size, err);
}

p3_status p3_be_weight_upload(p3_backend *be, const p3_weight_desc *desc, p3_weight **out,
                              p3_error *err) {
    if (desc->rows <= 0 || desc->cols <= 0 || !desc->data)
        return p3_fail(err, PHI3C_ERR_INVALID_ARG, "%s: weight %s has shape [%lld, %lld]",
                       be->iface->name, desc->name, (long long)desc->rows, (long long)desc->cols);
    return be->iface->weight_upload(be->ctx, desc, out, err);
}
void p3_be_weight_free(p3_backend *be, p3_weight *w) {
    if (w) be->iface->weight_free(be->ctx, w);
}

p3_status p3_be_kv_alloc(p3_backend *be, const p3_kv_desc *desc, p3_kv_cache **out, p3_error *err) {
    if (desc->n_layers <= 0 || desc->n_ctx <= 0 || desc->n_kv_heads <= 0 || desc->head_dim <= 0)
        return p3_fail(err, PHI3C_ERR_INVALID_ARG, "%s: invalid KV cache shape", be->iface->name);
    return be->iface->kv_alloc(be->ctx, desc, out, err);
}
void p3_be_kv_free(p3_backend *be, p3_kv_cache *kv) {
    if (kv) be->iface->kv_free(be->ctx, kv);
}

const char *p3_be_name(const p3_backend *be) {
    return be->iface->name;
}

void p3_be_describe(p3_backend *be, char *buf, size_t len) {
    if (be->iface->describe)
        be->iface->describe(be->ctx, buf, len);
    else
        snprintf(buf, len, "%s", be->iface->name);
}

size_t p3_be_weight_bytes(p3_backend *be, const p3_weight *w) {
    return w && be->iface->weight_bytes ? be->iface->weight_bytes(be->ctx, w) : 0;
}

bool p3_be_supports(p3_backend *be, p3_op op, p3_dtype weight, p3_act_mode act, p3_kv_dtype kv) {
    const p3_backend_iface *f = be->iface;
    const void *entry[P3_OP_COUNT] = {
        [P3_OP_EMBED] = (const void *)f->embed,
        [P3_OP_RMSNORM] = (const void *)f->rmsnorm,
        [P3_OP_MATMUL] = (const void *)f->matmul,
        [P3_OP_ROPE] = (const void *)f->rope,
        [P3_OP_KV_WRITE] = (const void *)f->kv_write,
        [P3_OP_ATTENTION] = (const void *)f->attention,
        [P3_OP_SWIGLU] = (const void *)f->swiglu,
        [P3_OP_ADD] = (const void *)f->add,
        [P3_OP_COPY] = (const void *)f->copy,
    };
    if ((unsigned)op >= P3_OP_COUNT || !entry[op]) return false;
    return !f->supports || f->supports(be->ctx, op, weight, act, kv);
}

p3_status p3_be_embed(p3_backend *be, p3_ref out, const p3_weight *table, p3_ref ids, int n_tokens,
                      p3_error *err) {
    if (!be->iface->embed) return unsupported(be, P3_OP_EMBED, err);
    P3_TRY(check_tokens(be, P3_OP_EMBED, n_tokens, err));
    P3_TRY(check_ref(be, P3_OP_EMBED, "ids", ids, (size_t)n_tokens, sizeof(int32_t), err));
    P3_TRY(check_ref(be, P3_OP_EMBED, "out", out, (size_t)n_tokens * (size_t)table->cols,
                     sizeof(float), err));
    return be->iface->embed(be->ctx, out, table, ids, n_tokens, err);
}

p3_status p3_be_rmsnorm(p3_backend *be, p3_ref out, p3_ref x, p3_ref w, int n_tokens, int dim,
                        float eps, p3_error *err) {
    if (!be->iface->rmsnorm) return unsupported(be, P3_OP_RMSNORM, err);
    P3_TRY(check_tokens(be, P3_OP_RMSNORM, n_tokens, err));
    size_t n = (size_t)n_tokens * (size_t)dim;
    P3_TRY(check_ref(be, P3_OP_RMSNORM, "x", x, n, sizeof(float), err));
    P3_TRY(check_ref(be, P3_OP_RMSNORM, "out", out, n, sizeof(float), err));
    P3_TRY(check_ref(be, P3_OP_RMSNORM, "weight", w, (size_t)dim, sizeof(float), err));
    return be->iface->rmsnorm(be->ctx, out, x, w, n_tokens, dim, eps, err);
}

p3_status p3_be_matmul(p3_backend *be, p3_ref y, p3_ref x, const p3_weight *w, int n_tokens,
                       p3_error *err) {
    if (!be->iface->matmul) return unsupported(be, P3_OP_MATMUL, err);
    P3_TRY(check_tokens(be, P3_OP_MATMUL, n_tokens, err));
    P3_TRY(check_ref(be, P3_OP_MATMUL, "x", x, (size_t)n_tokens * (size_t)w->cols, sizeof(float),
                     err));
    P3_TRY(check_ref(be, P3_OP_MATMUL, "y", y, (size_t)n_tokens * (size_t)w->rows, sizeof(float),
                     err));
    return be->iface->matmul(be->ctx, y, x, w, n_tokens, err);
}

p3_status p3_be_rope(p3_backend *be, p3_ref qkv, int n_tokens, int pos0, const p3_rope_params *p,
                     p3_error *err) {
    if (!be->iface->rope) return unsupported(be, P3_OP_ROPE, err);
    P3_TRY(check_tokens(be, P3_OP_ROPE, n_tokens, err));
    if (p->rot_dim <= 0 || p->rot_dim > p->head_dim || p->rot_dim % 2 || pos0 < 0)
        return p3_fail(err, PHI3C_ERR_INVALID_ARG, "%s rope: rot_dim %d of head_dim %d, pos %d",
                       be->iface->name, p->rot_dim, p->head_dim, pos0);
    size_t width = (size_t)(p->n_heads + 2 * p->n_kv_heads) * (size_t)p->head_dim;
    P3_TRY(check_ref(be, P3_OP_ROPE, "qkv", qkv, (size_t)n_tokens * width, sizeof(float), err));
    P3_TRY(check_ref(be, P3_OP_ROPE, "inv_freq", p->inv_freq, (size_t)p->rot_dim / 2, sizeof(float),
                     err));
    return be->iface->rope(be->ctx, qkv, n_tokens, pos0, p, err);
}

p3_status p3_be_kv_write(p3_backend *be, p3_kv_cache *kv, int layer, p3_ref qkv, int n_tokens,
                         int pos0, const p3_attn_params *p, p3_error *err) {
    if (!be->iface->kv_write) return unsupported(be, P3_OP_KV_WRITE, err);
    P3_TRY(check_tokens(be, P3_OP_KV_WRITE, n_tokens, err));
    P3_TRY(check_attn(be, P3_OP_KV_WRITE, kv, layer, n_tokens, pos0, p, err));
    P3_TRY(check_ref(be, P3_OP_KV_WRITE, "qkv", qkv, (size_t)n_tokens * qkv_width(p), sizeof(float),
                     err));
    return be->iface->kv_write(be->ctx, kv, layer, qkv, n_tokens, pos0, p, err);
}

p3_status p3_be_attention(p3_backend *be, p3_ref out, p3_ref qkv, p3_kv_cache *kv, int layer,
                          int n_tokens, int pos0, const p3_attn_params *p, p3_error *err) {
    if (!be->iface->attention) return unsupported(be, P3_OP_ATTENTION, err);
    P3_TRY(check_tokens(be, P3_OP_ATTENTION, n_tokens, err));
    P3_TRY(check_attn(be, P3_OP_ATTENTION, kv, layer, n_tokens, pos0, p, err));
    P3_TRY(check_ref(be, P3_OP_ATTENTION, "qkv", qkv, (size_t)n_tokens * qkv_width(p),
                     sizeof(float), err));
    P3_TRY(check_ref(be, P3_OP_ATTENTION, "out", out,
                     (size_t)n_tokens * (size_t)p->n_heads * (size_t)p->head_dim, sizeof(float),
                     err));
    return be->iface->attention(be->ctx, out, qkv, kv, layer, n_tokens, pos0, p, err);
}

p3_status p3_be_swiglu(p3_backend *be, p3_ref out, p3_ref gate_up, int n_tokens, int dim,
                       p3_error *err) {
    if (!be->iface->swiglu) return unsupported(be, P3_OP_SWIGLU, err);
    P3_TRY(check_tokens(be, P3_OP_SWIGLU, n_tokens, err));
    P3_TRY(check_ref(be, P3_OP_SWIGLU, "gate_up", gate_up, (size_t)n_tokens * 2 * (size_t)dim,
                     sizeof(float), err));
    P3_TRY(check_ref(be, P3_OP_SWIGLU, "out", out, (size_t)n_tokens * (size_t)dim, sizeof(float),
                     err));
    return be->iface->swiglu(be->ctx, out, gate_up, n_tokens, dim, err);
}

p3_status p3_be_add(p3_backend *be, p3_ref x, p3_ref y, size_t n, p3_error *err) {
    if (!be->iface->add) return unsupported(be, P3_OP_ADD, err);
    P3_TRY(check_ref(be, P3_OP_ADD, "x", x, n, sizeof(float), err));
    P3_TRY(check_ref(be, P3_OP_ADD, "y", y, n, sizeof(float), err));
    return be->iface->add(be->ctx, x, y, n, err);
}

p3_status p3_be_copy(p3_backend *be, p3_ref dst, p3_ref src, size_t size, p3_error *err) {
    if (!be->iface->copy) return unsupported(be, P3_OP_COPY, err);
    P3_TRY(check_ref(be, P3_OP_COPY, "dst", dst, size, 1, err));
    P3_TRY(check_ref(be, P3_OP_COPY, "src", src, size, 1, err));
    return be->iface->copy(be->ctx, dst, src, size, err);
}

p3_status p3_be_sync(p3_backend *be, p3_error *err) {
    return be->iface->sync(be->ctx, err);
}
