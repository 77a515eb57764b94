/* overlay.c: a backend made of a primary and a fallback backend (overlay.h): weights remember
 * which of the two holds them, every other entry goes to the primary when its table has it, else
 * to the fallback, always through the checked p3_be_* wrappers. */
#include "overlay.h"

#include <stdio.h>
#include <string.h>

typedef struct overlay_ctx {
    p3_backend primary;
    p3_backend fallback;
} overlay_ctx;

/* An uploaded weight: the inner weight and the backend holding it. */
typedef struct overlay_weight {
    p3_weight pub; /* first: the engine sees this */
    p3_weight *inner;
    bool on_primary;
} overlay_weight;

static p3_backend *holder(overlay_ctx *o, const p3_weight *w) {
    return ((const overlay_weight *)w)->on_primary ? &o->primary : &o->fallback;
}
static const p3_weight *inner(const p3_weight *w) {
    return ((const overlay_weight *)w)->inner;
}
/* The backend that runs an op without a weight: the primary when its table has the entry. */
static p3_backend *runner(overlay_ctx *o, const void *primary_entry) {
    return primary_entry ? &o->primary : &o->fallback;
}

p3_status p3_overlay_create(const p3_backend_iface *primary, const char *fallback,
                            const p3_backend_options *opt, void **ctx, p3_error *err) {
    *ctx = NULL;
    overlay_ctx *o = p3_calloc(1, sizeof *o);
    if (!o) return p3_fail(err, PHI3C_ERR_NOMEM, "%s: out of memory", primary->name);
    o->primary.iface = primary;
    p3_status s = primary->create(opt, &o->primary.ctx, err);
    if (s == PHI3C_OK) {
        s = p3_backend_open(fallback, opt, &o->fallback, err);
        if (s != PHI3C_OK) p3_error_prefix(err, "%s: fallback backend", primary->name);
    }
    if (s != PHI3C_OK) {
        p3_overlay_destroy(o);
        return s;
    }
    *ctx = o;
    return PHI3C_OK;
}

void p3_overlay_destroy(void *ctx) {
    overlay_ctx *o = ctx;
    if (!o) return;
    if (o->primary.ctx) o->primary.iface->destroy(o->primary.ctx);
    p3_backend_close(&o->fallback);
    p3_free(o);
}

void p3_overlay_describe(void *ctx, char *buf, size_t len) {
    overlay_ctx *o = ctx;
    char primary[256], fallback[256];
    p3_be_describe(&o->primary, primary, sizeof primary);
    p3_be_describe(&o->fallback, fallback, sizeof fallback);
    snprintf(buf, len, "%s, %s (other ops)", primary, fallback);
}

bool p3_overlay_supports(void *ctx, p3_op op, p3_dtype weight, p3_act_mode act, p3_kv_dtype kv) {
    overlay_ctx *o = ctx;
    return p3_be_supports(&o->fallback, op, weight, act, kv) ||
           p3_be_supports(&o->primary, op, weight, act, kv);
}

/* ---- memory: the fallback's */
p3_status p3_overlay_buffer_alloc(void *ctx, size_t size, p3_buffer **out, p3_error *err) {
    return p3_be_buffer_alloc(&((overlay_ctx *)ctx)->fallback, size, out, err);
}
void p3_overlay_buffer_free(void *ctx, p3_buffer *buf) {
    p3_be_buffer_free(&((overlay_ctx *)ctx)->fallback, buf);
}
p3_status p3_overlay_buffer_write(void *ctx, p3_ref dst, const void *src, size_t size,
                                  p3_error *err) {
    return p3_be_write(&((overlay_ctx *)ctx)->fallback, dst, src, size, err);
}
p3_status p3_overlay_buffer_read(void *ctx, p3_ref src, void *dst, size_t size, p3_error *err) {
    overlay_ctx *o = ctx;
    if (o->primary.iface->sync) P3_TRY(p3_be_sync(&o->primary, err));
    return p3_be_read(&o->fallback, src, dst, size, err);
}
p3_status p3_overlay_kv_alloc(void *ctx, const p3_kv_desc *desc, p3_kv_cache **out, p3_error *err) {
    return p3_be_kv_alloc(&((overlay_ctx *)ctx)->fallback, desc, out, err);
}
void p3_overlay_kv_free(void *ctx, p3_kv_cache *kv) {
    p3_be_kv_free(&((overlay_ctx *)ctx)->fallback, kv);
}

/* ---- weights: the primary's when it takes them, else the fallback's */
p3_status p3_overlay_weight_upload(void *ctx, const p3_weight_desc *desc, p3_weight **out,
                                   p3_error *err) {
    overlay_ctx *o = ctx;
    overlay_weight *w = p3_calloc(1, sizeof *w);
    if (!w) return p3_fail(err, PHI3C_ERR_NOMEM, "%s: out of memory", o->primary.iface->name);
    p3_status s = PHI3C_ERR_UNSUPPORTED;
    if (o->primary.iface->weight_upload) {
        s = p3_be_weight_upload(&o->primary, desc, &w->inner, err);
        w->on_primary = s == PHI3C_OK;
    }
    if (s == PHI3C_ERR_UNSUPPORTED) {
        p3_error_clear(err);
        s = p3_be_weight_upload(&o->fallback, desc, &w->inner, err);
    }
    if (s != PHI3C_OK) {
        p3_free(w);
        return s;
    }
    w->pub = *w->inner;
    *out = &w->pub;
    return PHI3C_OK;
}
void p3_overlay_weight_free(void *ctx, p3_weight *w) {
    if (!w) return;
    p3_be_weight_free(holder(ctx, w), ((overlay_weight *)w)->inner);
    p3_free(w);
}
size_t p3_overlay_weight_bytes(void *ctx, const p3_weight *w) {
    return p3_be_weight_bytes(holder(ctx, w), inner(w));
}

/* ---- ops */
p3_status p3_overlay_embed(void *ctx, p3_ref out, const p3_weight *table, p3_ref ids, int n_tokens,
                           p3_error *err) {
    return p3_be_embed(holder(ctx, table), out, inner(table), ids, n_tokens, err);
}
p3_status p3_overlay_matmul(void *ctx, p3_ref y, p3_ref x, const p3_weight *w, int n_tokens,
                            p3_error *err) {
    return p3_be_matmul(holder(ctx, w), y, x, inner(w), n_tokens, err);
}
p3_status p3_overlay_rmsnorm(void *ctx, p3_ref out, p3_ref x, p3_ref w, int n_tokens, int dim,
                             float eps, p3_error *err) {
    overlay_ctx *o = ctx;
    return p3_be_rmsnorm(runner(o, (const void *)o->primary.iface->rmsnorm), out, x, w, n_tokens,
                         dim, eps, err);
}
p3_status p3_overlay_rope(void *ctx, p3_ref qkv, int n_tokens, int pos0, const p3_rope_params *p,
                          p3_error *err) {
    overlay_ctx *o = ctx;
    return p3_be_rope(runner(o, (const void *)o->primary.iface->rope), qkv, n_tokens, pos0, p, err);
}
p3_status p3_overlay_kv_write(void *ctx, p3_kv_cache *kv, int layer, p3_ref qkv, int n_tokens,
                              int pos0, const p3_attn_params *p, p3_error *err) {
    overlay_ctx *o = ctx; /* the cache is the fallback's, so is the op that fills it */
    return p3_be_kv_write(&o->fallback, kv, layer, qkv, n_tokens, pos0, p, err);
}
p3_status p3_overlay_attention(void *ctx, p3_ref out, p3_ref qkv, p3_kv_cache *kv, int layer,
                               int n_tokens, int pos0, const p3_attn_params *p, p3_error *err) {
    overlay_ctx *o = ctx; /* reads the fallback's cache */
    return p3_be_attention(&o->fallback, out, qkv, kv, layer, n_tokens, pos0, p, err);
}
p3_status p3_overlay_swiglu(void *ctx, p3_ref out, p3_ref gate_up, int n_tokens, int dim,
                            p3_error *err) {
    overlay_ctx *o = ctx;
    return p3_be_swiglu(runner(o, (const void *)o->primary.iface->swiglu), out, gate_up, n_tokens,
                        dim, err);
}
p3_status p3_overlay_add(void *ctx, p3_ref x, p3_ref y, size_t n, p3_error *err) {
    overlay_ctx *o = ctx;
    return p3_be_add(runner(o, (const void *)o->primary.iface->add), x, y, n, err);
}
p3_status p3_overlay_copy(void *ctx, p3_ref dst, p3_ref src, size_t size, p3_error *err) {
    overlay_ctx *o = ctx;
    return p3_be_copy(runner(o, (const void *)o->primary.iface->copy), dst, src, size, err);
}
p3_status p3_overlay_sync(void *ctx, p3_error *err) {
    overlay_ctx *o = ctx;
    if (o->primary.iface->sync) P3_TRY(p3_be_sync(&o->primary, err));
    return p3_be_sync(&o->fallback, err);
}
