/* clk_ops.c: the backend ops of the kernels/clk/ program, for any host API (clk_ops.h): weight
 * repacking, KV cache layout, and for every op the kernel, its arguments and its grid. */
#include "clk_ops.h"

#include "int4.h"

#include <string.h>

const char *const p3_clk_kernel_names[P3_CLK_COUNT] = {
#define P3_CLK_NAME(id, name) name,
    P3_CLK_KERNELS(P3_CLK_NAME)
#undef P3_CLK_NAME
};

/* Geometry shared with the .cl files: matmul.cl work-groups are MM_LR rows x MM_LK K-slices and
 * take MM_TT tokens per work-item in prefill; attention.cl and rmsnorm use groups of 64. */
enum { MM_LR = 16, MM_LK = 4, MM_TT = 4, GROUP64 = 64 };
/* A decode step over more than 2 chunks of keys splits them over work-groups (attention.cl). */
enum { ATT_CHUNK = 256 };

static size_t round_up(size_t n, size_t m) {
    return (n + m - 1) / m * m;
}

/* ---- launches ------------------------------------------------------------------------------ */

static p3_clk_launch launch_of(p3_clk_kernel k, const char *op) {
    p3_clk_launch l;
    memset(&l, 0, sizeof l);
    l.kernel = k;
    l.op = op;
    return l;
}

static void grid(p3_clk_launch *l, unsigned dims, size_t g0, size_t g1, size_t g2) {
    l->dims = dims;
    l->global[0] = g0;
    l->global[1] = g1;
    l->global[2] = g2;
}

static void group(p3_clk_launch *l, size_t l0, size_t l1, size_t l2) {
    l->local[0] = l0;
    l->local[1] = l1;
    l->local[2] = l2;
}

static p3_clk_arg *next_arg(p3_clk_launch *l, p3_clk_arg_kind kind) {
    p3_clk_arg *a = &l->args[l->n_args < P3_CLK_MAX_ARGS ? l->n_args++ : P3_CLK_MAX_ARGS - 1];
    a->kind = kind;
    return a;
}
static void arg_mem(p3_clk_launch *l, void *mem) {
    next_arg(l, P3_CLK_ARG_MEM)->v.mem = mem;
}
static void arg_int(p3_clk_launch *l, int v) {
    next_arg(l, P3_CLK_ARG_INT)->v.i = v;
}
static void arg_ulong(p3_clk_launch *l, size_t v) {
    next_arg(l, P3_CLK_ARG_ULONG)->v.u = v;
}
static void arg_float(p3_clk_launch *l, float v) {
    next_arg(l, P3_CLK_ARG_FLOAT)->v.f = v;
}

/* A buffer and the element offset of a ref: kernels index (pointer, offset) pairs. */
static bool arg_ref(p3_clk_launch *l, p3_ref r, size_t elem) {
    arg_mem(l, r.buf->impl);
    arg_ulong(l, r.offset / elem);
    return r.offset % elem == 0;
}

static p3_status run(p3_clk_host *h, const p3_clk_launch *l, bool aligned, p3_error *err) {
    if (!aligned)
        return p3_fail(err, PHI3C_ERR_INVALID_ARG,
                       "%s %s: a buffer offset is not a multiple of the element size", h->api,
                       l->op);
    return h->launch(h, l, err);
}

/* ---- scratch and teardown ------------------------------------------------------------------ */

static void release(p3_clk_host *h, void **mem) {
    if (*mem) h->release(h, *mem);
    *mem = NULL;
}

void p3_clk_host_release(p3_clk_host *h) {
    release(h, &h->act_q);
    release(h, &h->act_d);
    release(h, &h->act_s);
    release(h, &h->att_part);
    h->act_groups = h->att_part_bytes = 0;
}

/* Grows the w4a8 scratch to hold `need` token-groups (only the first prefill allocates). */
static p3_status ensure_act_scratch(p3_clk_host *h, size_t need, p3_error *err) {
    if (need <= h->act_groups) return PHI3C_OK;
    void *q = NULL, *d = NULL, *s = NULL;
    p3_status st = h->alloc(h, need * 128, "w4a8 activations", &q, err);
    if (st == PHI3C_OK) st = h->alloc(h, need * 4, "w4a8 activation scales", &d, err);
    if (st == PHI3C_OK) st = h->alloc(h, need * 4, "w4a8 activation sums", &s, err);
    if (st != PHI3C_OK) {
        release(h, &q);
        release(h, &d);
        return st;
    }
    release(h, &h->act_q);
    release(h, &h->act_d);
    release(h, &h->act_s);
    h->act_q = q;
    h->act_d = d;
    h->act_s = s;
    h->act_groups = need;
    return PHI3C_OK;
}

/* Grows the split-decode scratch (the first long decode step allocates it once). */
static p3_status ensure_att_part(p3_clk_host *h, size_t bytes, p3_error *err) {
    if (bytes <= h->att_part_bytes) return PHI3C_OK;
    void *m = NULL;
    p3_status st = h->alloc(h, bytes, "attention partials", &m, err);
    if (st != PHI3C_OK) return st;
    release(h, &h->att_part);
    h->att_part = m;
    h->att_part_bytes = bytes;
    return PHI3C_OK;
}

/* ---- support ------------------------------------------------------------------------------- */

bool p3_clk_supports(void *ctx, p3_op op, p3_dtype weight, p3_act_mode act, p3_kv_dtype kv) {
    (void)ctx;
    if (op == P3_OP_KV_WRITE || op == P3_OP_ATTENTION)
        return kv == P3_KV_F32 || kv == P3_KV_F16 || kv == P3_KV_Q8;
    if (op == P3_OP_MATMUL || op == P3_OP_EMBED) {
        if (p3_dtype_is_int4(weight)) return act == P3_ACT_F32 || act == P3_ACT_Q8;
        return p3_dtype_is_float(weight);
    }
    return true;
}

/* ---- weights ------------------------------------------------------------------------------- */

/* Allocates and fills one device array of a weight. */
static p3_status put(p3_clk_host *h, const char *name, const void *src, size_t bytes, void **mem,
                     p3_error *err) {
    p3_status st = h->alloc(h, bytes, name, mem, err);
    return st == PHI3C_OK ? h->write(h, *mem, src, bytes, err) : st;
}

/* Plain weights are transposed to [cols][rows] (see matmul.cl for why). */
static p3_status upload_plain(p3_clk_host *h, const p3_weight_desc *d, p3_clk_weight *w,
                              p3_error *err) {
    size_t es = d->dtype == P3_DT_F32 ? 4 : 2, n, bytes;
    if (!p3_mul_size((size_t)d->rows, (size_t)d->cols, &n) || !p3_mul_size(n, es, &bytes))
        return p3_fail(err, PHI3C_ERR_INVALID_ARG, "%s: weight %s is too large", h->api, d->name);
    uint8_t *t = p3_malloc(bytes);
    if (!t)
        return p3_fail(err, PHI3C_ERR_NOMEM, "%s: no host memory to repack %s", h->api, d->name);
    const uint8_t *src = d->data;
    size_t rows = (size_t)d->rows, cols = (size_t)d->cols;
    for (size_t r = 0; r < rows; r++)
        for (size_t k = 0; k < cols; k++)
            memcpy(t + (k * rows + r) * es, src + (r * cols + k) * es, es);
    p3_status st = put(h, d->name, t, bytes, &w->a, err);
    p3_free(t);
    w->bytes = bytes;
    return st;
}

/* The 16 words of one group of row r: the block's nibble order (q[j] low, q[j+64] high) becomes
 * 8 consecutive weights per word, low nibble first. */
static void pack_group_words(const uint8_t *qs, uint32_t *qw, size_t stride) {
    for (size_t j = 0; j < 16; j++) {
        uint32_t word = 0;
        for (size_t i = 0; i < 8; i++) {
            size_t k = j * 8 + i; /* weight k of the group */
            uint32_t q = k < 64 ? qs[k] & 15u : (uint32_t)qs[k - 64] >> 4;
            word |= q << (4 * i);
        }
        qw[j * stride] = word;
    }
}

/* The INT4 blocks of every row into the K-major arrays of matmul.cl; padding rows stay zero. */
static void repack_int4(const p3_weight_desc *d, size_t stride, uint32_t *qw, uint16_t *scale,
                        uint8_t *zero) {
    bool sym = d->dtype == P3_DT_I4G128S;
    size_t rows = (size_t)d->rows, groups = (size_t)p3_groups(d->cols);
    size_t block = sym ? sizeof(p3_block_i4s) : sizeof(p3_block_i4a);
    for (size_t r = 0; r < rows; r++) {
        for (size_t g = 0; g < groups; g++) {
            const uint8_t *b = (const uint8_t *)d->data + (r * groups + g) * block;
            memcpy(&scale[g * stride + r], b, 2);
            zero[g * stride + r] = sym ? 8 : b[2];
            pack_group_words(b + (sym ? 2 : 4), qw + g * 16 * stride + r, stride);
        }
    }
}

static p3_status upload_int4(p3_clk_host *h, const p3_weight_desc *d, p3_clk_weight *w,
                             p3_error *err) {
    size_t groups = (size_t)p3_groups(d->cols), stride = round_up((size_t)d->rows, MM_LR);
    size_t nq, nqb, ng;
    if (!p3_mul_size(groups * 16, stride, &nq) || !p3_mul_size(nq, 4, &nqb) ||
        !p3_mul_size(groups, stride, &ng))
        return p3_fail(err, PHI3C_ERR_INVALID_ARG, "%s: weight %s is too large", h->api, d->name);
    w->stride = stride;
    uint32_t *qw = p3_calloc(nq, 4);
    uint16_t *scale = p3_calloc(ng, sizeof(uint16_t));
    uint8_t *zero = p3_calloc(ng, 1);
    p3_status st = PHI3C_OK;
    if (!qw || !scale || !zero)
        st = p3_fail(err, PHI3C_ERR_NOMEM, "%s: no host memory to repack %s", h->api, d->name);
    if (st == PHI3C_OK) repack_int4(d, stride, qw, scale, zero);
    if (st == PHI3C_OK) st = put(h, d->name, qw, nqb, &w->a, err);
    if (st == PHI3C_OK) st = put(h, d->name, scale, ng * sizeof(uint16_t), &w->b, err);
    if (st == PHI3C_OK) st = put(h, d->name, zero, ng, &w->c, err);
    w->bytes = nqb + ng * (sizeof(uint16_t) + 1);
    p3_free(qw);
    p3_free(scale);
    p3_free(zero);
    return st;
}

void p3_clk_weight_free(void *ctx, p3_weight *pw) {
    p3_clk_host *h = ctx;
    p3_clk_weight *w = (p3_clk_weight *)pw;
    if (!w) return;
    release(h, &w->a);
    release(h, &w->b);
    release(h, &w->c);
    p3_free(w);
}

p3_status p3_clk_weight_upload(void *ctx, const p3_weight_desc *d, p3_weight **out, p3_error *err) {
    p3_clk_host *h = ctx;
    bool plain = p3_dtype_is_float(d->dtype);
    if (!p3_dtype_is_int4(d->dtype) && !plain)
        return p3_fail(err, PHI3C_ERR_UNSUPPORTED,
                       "%s: weight %s has dtype %d (F32, F16, BF16, I4G128S or I4G128A expected)",
                       h->api, d->name, (int)d->dtype);
    if (d->rows <= 0 || d->cols <= 0 || d->rows > INT32_MAX || d->cols > INT32_MAX)
        return p3_fail(err, PHI3C_ERR_UNSUPPORTED, "%s: weight %s has shape %lldx%lld", h->api,
                       d->name, (long long)d->rows, (long long)d->cols);
    p3_clk_weight *w = p3_calloc(1, sizeof *w);
    if (!w) return p3_fail(err, PHI3C_ERR_NOMEM, "%s: out of host memory", h->api);
    w->pub.dtype = d->dtype;
    w->pub.rows = d->rows;
    w->pub.cols = d->cols;
    w->pub.act = d->act;
    w->pub.impl = w;
    p3_status st =
        p3_dtype_is_int4(d->dtype) ? upload_int4(h, d, w, err) : upload_plain(h, d, w, err);
    if (st != PHI3C_OK) {
        p3_clk_weight_free(h, &w->pub);
        return st;
    }
    *out = &w->pub;
    return PHI3C_OK;
}

size_t p3_clk_weight_bytes(void *ctx, const p3_weight *w) {
    (void)ctx;
    return ((const p3_clk_weight *)w)->bytes;
}

/* ---- KV cache ------------------------------------------------------------------------------ */

void p3_clk_kv_free(void *ctx, p3_kv_cache *pkv) {
    p3_clk_host *h = ctx;
    p3_clk_kv *kv = (p3_clk_kv *)pkv;
    if (!kv) return;
    release(h, &kv->k);
    release(h, &kv->v);
    release(h, &kv->ks);
    release(h, &kv->vs);
    p3_free(kv);
}

p3_status p3_clk_kv_alloc(void *ctx, const p3_kv_desc *d, p3_kv_cache **out, p3_error *err) {
    p3_clk_host *h = ctx;
    if (d->dtype != P3_KV_F32 && d->dtype != P3_KV_F16 && d->dtype != P3_KV_Q8)
        return p3_fail(err, PHI3C_ERR_UNSUPPORTED, "%s: KV cache type %d", h->api, (int)d->dtype);
    if (d->head_dim > P3_CLK_MAX_HEAD_DIM)
        return p3_fail(err, PHI3C_ERR_UNSUPPORTED, "%s: head_dim %d exceeds %d", h->api,
                       d->head_dim, P3_CLK_MAX_HEAD_DIM);
    size_t elem = d->dtype == P3_KV_F32 ? 4 : d->dtype == P3_KV_F16 ? 2 : 1;
    size_t rows, layer, all, bytes, scale_bytes;
    if (d->n_layers <= 0 || d->n_ctx <= 0 || d->n_kv_heads <= 0 || d->head_dim <= 0 ||
        !p3_mul_size((size_t)d->n_kv_heads, (size_t)d->n_ctx, &rows) ||
        !p3_mul_size(rows, (size_t)d->head_dim, &layer) ||
        !p3_mul_size(layer, (size_t)d->n_layers, &all) || !p3_mul_size(all, elem, &bytes) ||
        !p3_mul_size(rows * 4, (size_t)d->n_layers, &scale_bytes))
        return p3_fail(err, PHI3C_ERR_INVALID_ARG, "%s: bad KV cache shape or size", h->api);
    p3_clk_kv *kv = p3_calloc(1, sizeof *kv);
    if (!kv) return p3_fail(err, PHI3C_ERR_NOMEM, "%s: out of host memory", h->api);
    kv->pub.desc = *d;
    kv->pub.impl = kv;
    kv->layer_elems = layer;
    kv->layer_rows = rows;
    p3_status st = h->alloc(h, bytes, "the KV cache (keys)", &kv->k, err);
    if (st == PHI3C_OK) st = h->alloc(h, bytes, "the KV cache (values)", &kv->v, err);
    if (st == PHI3C_OK && d->dtype == P3_KV_Q8)
        st = h->alloc(h, scale_bytes, "the KV cache (key scales)", &kv->ks, err);
    if (st == PHI3C_OK && d->dtype == P3_KV_Q8)
        st = h->alloc(h, scale_bytes, "the KV cache (value scales)", &kv->vs, err);
    if (st != PHI3C_OK) {
        p3_clk_kv_free(h, &kv->pub);
        return st;
    }
    *out = &kv->pub;
    return PHI3C_OK;
}

/* ---- ops ----------------------------------------------------------------------------------- */

p3_status p3_clk_embed(void *ctx, p3_ref out, const p3_weight *table, p3_ref ids, int n_tokens,
                       p3_error *err) {
    p3_clk_host *h = ctx;
    const p3_clk_weight *w = table->impl;
    bool int4 = p3_dtype_is_int4(table->dtype);
    p3_clk_kernel k = int4                        ? P3_CLK_EMBED_I4
                      : table->dtype == P3_DT_F32 ? P3_CLK_EMBED_F32
                      : table->dtype == P3_DT_F16 ? P3_CLK_EMBED_F16
                                                  : P3_CLK_EMBED_BF16;
    p3_clk_launch l = launch_of(k, "embed");
    bool ok = arg_ref(&l, out, 4);
    arg_mem(&l, w->a);
    if (int4) {
        arg_mem(&l, w->b);
        arg_mem(&l, w->c);
    }
    ok &= arg_ref(&l, ids, 4);
    arg_int(&l, (int)table->rows);
    if (int4) arg_int(&l, (int)w->stride);
    arg_int(&l, (int)table->cols);
    arg_mem(&l, h->bad_id);
    grid(&l, 2, round_up((size_t)table->cols, 64), (size_t)n_tokens, 1);
    return run(h, &l, ok, err);
}

p3_status p3_clk_rmsnorm(void *ctx, p3_ref out, p3_ref x, p3_ref w, int n_tokens, int dim,
                         float eps, p3_error *err) {
    p3_clk_launch l = launch_of(P3_CLK_RMSNORM, "rmsnorm");
    bool ok = arg_ref(&l, out, 4);
    ok &= arg_ref(&l, x, 4);
    ok &= arg_ref(&l, w, 4);
    arg_int(&l, dim);
    arg_float(&l, eps);
    grid(&l, 2, GROUP64, (size_t)n_tokens, 1);
    group(&l, GROUP64, 1, 1);
    return run(ctx, &l, ok, err);
}

/* The matmul grid: 16-row blocks x 4 K-slices x token tiles (matmul.cl). */
static void matmul_grid(p3_clk_launch *l, const p3_weight *w, int n_tokens) {
    size_t tiles = n_tokens > 1 ? ((size_t)n_tokens + MM_TT - 1) / MM_TT : 1;
    grid(l, 3, round_up((size_t)w->rows, MM_LR), MM_LK, tiles);
    group(l, MM_LR, MM_LK, 1);
}

/* w4a8: quantize the activations into the scratch, then the integer matmul. */
static p3_status matmul_q8(p3_clk_host *h, p3_ref y, p3_ref x, const p3_weight *pw, int n_tokens,
                           p3_error *err) {
    const p3_clk_weight *w = pw->impl;
    size_t groups = (size_t)p3_groups(pw->cols);
    p3_status st = ensure_act_scratch(h, groups * (size_t)n_tokens, err);
    if (st != PHI3C_OK) return st;
    p3_clk_launch q = launch_of(P3_CLK_QUANT_ACT, "matmul (activation quantization)");
    arg_mem(&q, h->act_q);
    arg_mem(&q, h->act_d);
    arg_mem(&q, h->act_s);
    bool ok = arg_ref(&q, x, 4);
    arg_int(&q, (int)pw->cols);
    grid(&q, 2, 64 * groups, (size_t)n_tokens, 1);
    group(&q, 64, 1, 1);
    st = run(h, &q, ok, err);
    if (st != PHI3C_OK) return st;
    p3_clk_launch l = launch_of(n_tokens > 1 ? P3_CLK_MM_I4Q8_T4 : P3_CLK_MM_I4Q8_T1, "matmul");
    ok = arg_ref(&l, y, 4);
    arg_mem(&l, h->act_q);
    arg_mem(&l, h->act_d);
    arg_mem(&l, h->act_s);
    arg_mem(&l, w->a);
    arg_mem(&l, w->b);
    arg_mem(&l, w->c);
    arg_int(&l, (int)pw->rows);
    arg_int(&l, (int)w->stride);
    arg_int(&l, (int)pw->cols);
    arg_int(&l, n_tokens);
    matmul_grid(&l, pw, n_tokens);
    return run(h, &l, ok, err);
}

static p3_clk_kernel matmul_kernel(p3_dtype dt, bool wide) {
    switch (dt) {
    case P3_DT_F32:
        return wide ? P3_CLK_MM_F32_T4 : P3_CLK_MM_F32_T1;
    case P3_DT_F16:
        return wide ? P3_CLK_MM_F16_T4 : P3_CLK_MM_F16_T1;
    case P3_DT_BF16:
        return wide ? P3_CLK_MM_BF16_T4 : P3_CLK_MM_BF16_T1;
    default:
        return wide ? P3_CLK_MM_I4_T4 : P3_CLK_MM_I4_T1;
    }
}

p3_status p3_clk_matmul(void *ctx, p3_ref y, p3_ref x, const p3_weight *pw, int n_tokens,
                        p3_error *err) {
    const p3_clk_weight *w = pw->impl;
    bool int4 = p3_dtype_is_int4(pw->dtype);
    if (int4 && pw->act == P3_ACT_Q8) return matmul_q8(ctx, y, x, pw, n_tokens, err);
    p3_clk_launch l = launch_of(matmul_kernel(pw->dtype, n_tokens > 1), "matmul");
    bool ok = arg_ref(&l, y, 4);
    ok &= arg_ref(&l, x, 4);
    arg_mem(&l, w->a);
    if (int4) {
        arg_mem(&l, w->b);
        arg_mem(&l, w->c);
    }
    arg_int(&l, (int)pw->rows);
    if (int4) arg_int(&l, (int)w->stride);
    arg_int(&l, (int)pw->cols);
    arg_int(&l, n_tokens);
    matmul_grid(&l, pw, n_tokens);
    return run(ctx, &l, ok, err);
}

p3_status p3_clk_rope(void *ctx, p3_ref qkv, int n_tokens, int pos0, const p3_rope_params *p,
                      p3_error *err) {
    p3_clk_launch l = launch_of(P3_CLK_ROPE, "rope");
    bool ok = arg_ref(&l, qkv, 4);
    ok &= arg_ref(&l, p->inv_freq, 4);
    arg_int(&l, pos0);
    arg_int(&l, p->n_heads);
    arg_int(&l, p->n_kv_heads);
    arg_int(&l, p->head_dim);
    arg_int(&l, p->rot_dim);
    arg_float(&l, p->mscale);
    grid(&l, 3, (size_t)p->rot_dim / 2, (size_t)(p->n_heads + p->n_kv_heads), (size_t)n_tokens);
    return run(ctx, &l, ok, err);
}

p3_status p3_clk_kv_write(void *ctx, p3_kv_cache *pkv, int layer, p3_ref qkv, int n_tokens,
                          int pos0, const p3_attn_params *p, p3_error *err) {
    p3_clk_kv *kv = pkv->impl;
    p3_kv_dtype dt = pkv->desc.dtype;
    bool q8 = dt == P3_KV_Q8;
    p3_clk_launch l = launch_of(dt == P3_KV_F16 ? P3_CLK_KV_WRITE_F16
                                : q8            ? P3_CLK_KV_WRITE_Q8
                                                : P3_CLK_KV_WRITE_F32,
                                "kv_write");
    arg_mem(&l, kv->k);
    arg_mem(&l, kv->v);
    arg_ulong(&l, (size_t)layer * kv->layer_elems);
    if (q8) {
        arg_mem(&l, kv->ks);
        arg_mem(&l, kv->vs);
        arg_ulong(&l, (size_t)layer * kv->layer_rows);
    }
    bool ok = arg_ref(&l, qkv, 4);
    arg_int(&l, pos0);
    arg_int(&l, pkv->desc.n_ctx);
    arg_int(&l, p->n_heads);
    arg_int(&l, p->n_kv_heads);
    arg_int(&l, p->head_dim);
    if (q8) { /* one work-group per (kv head, token) */
        grid(&l, 2, (size_t)GROUP64 * (size_t)p->n_kv_heads, (size_t)n_tokens, 1);
        group(&l, GROUP64, 1, 1);
    } else {
        grid(&l, 2, round_up((size_t)p->n_kv_heads * (size_t)p->head_dim, 64), (size_t)n_tokens, 1);
    }
    return run(ctx, &l, ok, err);
}

/* Merges the partials of a split decode step into out. */
static p3_status attention_merge(p3_clk_host *h, p3_ref out, const p3_attn_params *p, size_t chunks,
                                 p3_error *err) {
    p3_clk_launch m = launch_of(P3_CLK_ATTENTION_MERGE, "attention (merge)");
    bool ok = arg_ref(&m, out, 4);
    arg_mem(&m, h->att_part);
    arg_int(&m, p->head_dim);
    arg_int(&m, (int)chunks);
    grid(&m, 1, (size_t)GROUP64 * (size_t)p->n_heads, 1, 1);
    group(&m, GROUP64, 1, 1);
    return run(h, &m, ok, err);
}

p3_status p3_clk_attention(void *ctx, p3_ref out, p3_ref qkv, p3_kv_cache *pkv, int layer,
                           int n_tokens, int pos0, const p3_attn_params *p, p3_error *err) {
    p3_clk_host *h = ctx;
    p3_clk_kv *kv = pkv->impl;
    if (p->head_dim > P3_CLK_MAX_HEAD_DIM)
        return p3_fail(err, PHI3C_ERR_UNSUPPORTED, "%s attention: head_dim %d exceeds %d", h->api,
                       p->head_dim, P3_CLK_MAX_HEAD_DIM);
    p3_kv_dtype dt = pkv->desc.dtype;
    p3_clk_launch l = launch_of(dt == P3_KV_F16  ? P3_CLK_ATTENTION_F16
                                : dt == P3_KV_Q8 ? P3_CLK_ATTENTION_Q8
                                                 : P3_CLK_ATTENTION_F32,
                                "attention");
    int lo = p->window > 0 ? P3_MAX(0, pos0 - p->window + 1) : 0;
    size_t keys = (size_t)(pos0 - lo + 1), chunks = (keys + ATT_CHUNK - 1) / ATT_CHUNK;
    bool split = n_tokens == 1 && chunks > 2;
    if (split) {
        size_t bytes = (size_t)p->n_heads * chunks * ((size_t)p->head_dim + 2) * sizeof(float);
        p3_status st = ensure_att_part(h, bytes, err);
        if (st != PHI3C_OK) return st;
    }
    bool ok = arg_ref(&l, out, 4);
    ok &= arg_ref(&l, qkv, 4);
    arg_mem(&l, kv->k);
    arg_mem(&l, kv->v);
    arg_ulong(&l, (size_t)layer * kv->layer_elems);
    /* f32/f16 kernels never read the scales or (unsplit) the partials: any valid buffer will do */
    arg_mem(&l, dt == P3_KV_Q8 ? kv->ks : h->bad_id);
    arg_mem(&l, dt == P3_KV_Q8 ? kv->vs : h->bad_id);
    arg_ulong(&l, (size_t)layer * kv->layer_rows);
    arg_int(&l, pkv->desc.n_ctx);
    arg_int(&l, p->n_heads);
    arg_int(&l, p->n_kv_heads);
    arg_int(&l, p->head_dim);
    arg_int(&l, pos0);
    arg_int(&l, p->window);
    arg_float(&l, p->scale);
    arg_int(&l, split ? ATT_CHUNK : 0);
    arg_mem(&l, split ? h->att_part : h->bad_id);
    grid(&l, 3, (size_t)GROUP64 * (size_t)p->n_heads, (size_t)n_tokens, split ? chunks : 1);
    group(&l, GROUP64, 1, 1);
    p3_status st = run(h, &l, ok, err);
    if (st != PHI3C_OK || !split) return st;
    return attention_merge(h, out, p, chunks, err);
}

p3_status p3_clk_swiglu(void *ctx, p3_ref out, p3_ref gate_up, int n_tokens, int dim,
                        p3_error *err) {
    p3_clk_launch l = launch_of(P3_CLK_SWIGLU, "swiglu");
    bool ok = arg_ref(&l, out, 4);
    ok &= arg_ref(&l, gate_up, 4);
    arg_int(&l, dim);
    grid(&l, 2, round_up((size_t)dim, 64), (size_t)n_tokens, 1);
    return run(ctx, &l, ok, err);
}

p3_status p3_clk_add(void *ctx, p3_ref x, p3_ref y, size_t n, p3_error *err) {
    if (n == 0) return PHI3C_OK;
    p3_clk_launch l = launch_of(P3_CLK_ADD, "add");
    bool ok = arg_ref(&l, x, 4);
    ok &= arg_ref(&l, y, 4);
    arg_ulong(&l, n);
    grid(&l, 1, round_up(n, 64), 1, 1);
    return run(ctx, &l, ok, err);
}
