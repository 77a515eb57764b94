/* overlay.h: a backend made of two. The primary runs the weights it accepts (and the embed and
 * matmul of those weights) plus any op its table implements; the fallback, another backend opened
 * by name from the registry, owns the buffers and the KV cache and runs everything else. Both are
 * called only through the checked p3_be_* wrappers, so a primary names no other backend (the NPU
 * backend, kernels/level_zero/npu_backend.c, is a primary over "cpu"). */
#ifndef P3_KERNELS_OVERLAY_H
#define P3_KERNELS_OVERLAY_H

#include "backend.h"

/* Creates the overlay context: primary->create(opt), then p3_backend_open(fallback, opt). The
 * primary's table needs create, destroy and, when it takes weights, weight_upload (return
 * PHI3C_ERR_UNSUPPORTED for a weight it leaves to the fallback) and weight_free; every NULL entry
 * goes to the fallback. Its ops receive the fallback's buffers (host-addressable for "cpu"). */
p3_status p3_overlay_create(const p3_backend_iface *primary, const char *fallback,
                            const p3_backend_options *opt, void **ctx, p3_error *err);

void p3_overlay_destroy(void *ctx);
void p3_overlay_describe(void *ctx, char *buf, size_t len);
bool p3_overlay_supports(void *ctx, p3_op op, p3_dtype weight, p3_act_mode act, p3_kv_dtype kv);
p3_status p3_overlay_buffer_alloc(void *ctx, size_t size, p3_buffer **out, p3_error *err);
void p3_overlay_buffer_free(void *ctx, p3_buffer *buf);
p3_status p3_overlay_buffer_write(void *ctx, p3_ref dst, const void *src, size_t size,
                                  p3_error *err);
p3_status p3_overlay_buffer_read(void *ctx, p3_ref src, void *dst, size_t size, p3_error *err);
p3_status p3_overlay_weight_upload(void *ctx, const p3_weight_desc *desc, p3_weight **out,
                                   p3_error *err);
void p3_overlay_weight_free(void *ctx, p3_weight *w);
size_t p3_overlay_weight_bytes(void *ctx, const p3_weight *w);
p3_status p3_overlay_kv_alloc(void *ctx, const p3_kv_desc *desc, p3_kv_cache **out, p3_error *err);
void p3_overlay_kv_free(void *ctx, p3_kv_cache *kv);
p3_status p3_overlay_embed(void *ctx, p3_ref out, const p3_weight *table, p3_ref ids, int n_tokens,
                           p3_error *err);
p3_status p3_overlay_rmsnorm(void *ctx, p3_ref out, p3_ref x, p3_ref w, int n_tokens, int dim,
                             float eps, p3_error *err);
p3_status p3_overlay_matmul(void *ctx, p3_ref y, p3_ref x, const p3_weight *w, int n_tokens,
                            p3_error *err);
p3_status p3_overlay_rope(void *ctx, p3_ref qkv, int n_tokens, int pos0, const p3_rope_params *p,
                          p3_error *err);
p3_status p3_overlay_kv_write(void *ctx, p3_kv_cache *kv, int layer, p3_ref qkv, int n_tokens,
                              int pos0, const p3_attn_params *p, p3_error *err);
p3_status p3_overlay_attention(void *ctx, p3_ref out, p3_ref qkv, p3_kv_cache *kv, int layer,
                               int n_tokens, int pos0, const p3_attn_params *p, p3_error *err);
p3_status p3_overlay_swiglu(void *ctx, p3_ref out, p3_ref gate_up, int n_tokens, int dim,
                            p3_error *err);
p3_status p3_overlay_add(void *ctx, p3_ref x, p3_ref y, size_t n, p3_error *err);
p3_status p3_overlay_copy(void *ctx, p3_ref dst, p3_ref src, size_t size, p3_error *err);
p3_status p3_overlay_sync(void *ctx, p3_error *err);

/* The registered table of an overlay backend: .version, .name, .probe and a .create that calls
 * p3_overlay_create, then these. */
#define P3_OVERLAY_METHODS                                                                         \
    .destroy = p3_overlay_destroy, .describe = p3_overlay_describe,                                \
    .supports = p3_overlay_supports, .buffer_alloc = p3_overlay_buffer_alloc,                      \
    .buffer_free = p3_overlay_buffer_free, .buffer_write = p3_overlay_buffer_write,                \
    .buffer_read = p3_overlay_buffer_read, .weight_upload = p3_overlay_weight_upload,              \
    .weight_free = p3_overlay_weight_free, .weight_bytes = p3_overlay_weight_bytes,                \
    .kv_alloc = p3_overlay_kv_alloc, .kv_free = p3_overlay_kv_free, .embed = p3_overlay_embed,     \
    .rmsnorm = p3_overlay_rmsnorm, .matmul = p3_overlay_matmul, .rope = p3_overlay_rope,           \
    .kv_write = p3_overlay_kv_write, .attention = p3_overlay_attention,                            \
    .swiglu = p3_overlay_swiglu, .add = p3_overlay_add, .copy = p3_overlay_copy,                   \
    .sync = p3_overlay_sync

#endif /* P3_KERNELS_OVERLAY_H */
