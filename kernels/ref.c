/* ref.c: the scalar reference of every backend op (kernels/ref.h), the specification the
 * conformance suite checks each backend against. Plain loops in f32, no fast-math, fixed order. */
#include "ref.h"

#include "int4.h"

#include <math.h>
#include <string.h>

/* One weight element of a plain (unquantized) row as f32. */
static float plain_at(const void *row, p3_dtype dtype, int64_t k) {
    switch (dtype) {
    case P3_DT_F32:
        return ((const float *)row)[k];
    case P3_DT_F16:
        return p3_f16_to_f32(((const uint16_t *)row)[k]);
    default:
        return p3_bf16_to_f32(((const uint16_t *)row)[k]);
    }
}

static size_t plain_size(p3_dtype dtype) {
    return dtype == P3_DT_F32 ? 4 : 2;
}

p3_status p3_ref_embed(float *out, const void *table, p3_dtype dtype, int64_t rows, int64_t cols,
                       const int32_t *ids, int n_tokens, p3_error *err) {
    size_t row_bytes;
    if (p3_dtype_is_float(dtype))
        row_bytes = (size_t)cols * plain_size(dtype);
    else if (dtype == P3_DT_I4G128S)
        row_bytes = (size_t)p3_groups(cols) * sizeof(p3_block_i4s);
    else if (dtype == P3_DT_I4G128A)
        row_bytes = (size_t)p3_groups(cols) * sizeof(p3_block_i4a);
    else
        return p3_fail(err, PHI3C_ERR_UNSUPPORTED, "embed: table dtype %d is not supported",
                       (int)dtype);
    for (int t = 0; t < n_tokens; t++) {
        if (ids[t] < 0 || ids[t] >= rows)
            return p3_fail(err, PHI3C_ERR_INVALID_ARG, "embed: token id %d outside [0, %lld)",
                           (int)ids[t], (long long)rows);
        const uint8_t *row = (const uint8_t *)table + (size_t)ids[t] * row_bytes;
        float *o = out + (size_t)t * (size_t)cols;
        if (dtype == P3_DT_I4G128S)
            p3_dequantize_row_i4s((const p3_block_i4s *)row, cols, o);
        else if (dtype == P3_DT_I4G128A)
            p3_dequantize_row_i4a((const p3_block_i4a *)row, cols, o);
        else
            for (int64_t k = 0; k < cols; k++) o[k] = plain_at(row, dtype, k);
    }
    return PHI3C_OK;
}

float p3_ref_dot(const float *a, const float *b, int n) {
    float lane[16] = {0};
    for (int i = 0; i < n; i++) lane[i % 16] = fmaf(a[i], b[i], lane[i % 16]);
    /* pairwise tree: lanes i and i+8, then i and i+4, i and i+2, i and i+1 (SIMD halvings) */
    for (int width = 8; width >= 1; width /= 2)
        for (int l = 0; l < width; l++) lane[l] += lane[l + width];
    return lane[0];
}

float p3_ref_expf(float x) {
    x = fmaxf(fminf(x, 88.3762626647949f), -87.3365478515625f);
    float n = nearbyintf(x * 1.44269504088896341f);
    float r = fmaf(-n, 0.693359375f, x);
    r = fmaf(-n, -2.12194440e-4f, r);
    float p = 1.9875691500e-4f;
    p = fmaf(p, r, 1.3981999507e-3f);
    p = fmaf(p, r, 8.3334519073e-3f);
    p = fmaf(p, r, 4.1665795894e-2f);
    p = fmaf(p, r, 1.6666665459e-1f);
    p = fmaf(p, r, 5.0000001201e-1f);
    p = fmaf(p, r * r, r + 1.0f);
    return ldexpf(p, (int)n);
}

float p3_ref_attn_weight(float x) {
    return x < P3_ATTN_MIN_ARG ? 0.0f : p3_ref_expf(x);
}

void p3_ref_rmsnorm(float *out, const float *x, const float *w, int n_tokens, int dim, float eps) {
    for (int t = 0; t < n_tokens; t++) {
        const float *xt = x + (size_t)t * (size_t)dim;
        float *ot = out + (size_t)t * (size_t)dim;
        float ss = p3_ref_dot(xt, xt, dim);
        float r = 1.0f / sqrtf(ss / (float)dim + eps);
        for (int i = 0; i < dim; i++) ot[i] = xt[i] * r * w[i];
    }
}

p3_status p3_ref_matmul(float *y, const float *x, const void *w, p3_dtype dtype, int64_t rows,
                        int64_t cols, int n_tokens) {
    if (!p3_dtype_is_float(dtype)) return PHI3C_ERR_UNSUPPORTED;
    size_t row_bytes = (size_t)cols * plain_size(dtype);
    for (int t = 0; t < n_tokens; t++) {
        const float *xt = x + (size_t)t * (size_t)cols;
        for (int64_t n = 0; n < rows; n++) {
            const void *wr = (const uint8_t *)w + (size_t)n * row_bytes;
            float acc = 0.0f;
            for (int64_t k = 0; k < cols; k++) acc += xt[k] * plain_at(wr, dtype, k);
            y[(size_t)t * (size_t)rows + (size_t)n] = acc;
        }
    }
    return PHI3C_OK;
}

/* Rotate-half on one head: pairs (i, i + rot_dim/2). */
static void rope_head(float *v, int pos, const float *inv_freq, float mscale, int rot_dim) {
    int half = rot_dim / 2;
    for (int i = 0; i < half; i++) {
        float angle = (float)pos * inv_freq[i];
        float c = cosf(angle) * mscale, s = sinf(angle) * mscale;
        float x0 = v[i], x1 = v[i + half];
        v[i] = x0 * c - x1 * s;
        v[i + half] = x1 * c + x0 * s;
    }
}

void p3_ref_rope(float *qkv, int n_tokens, int pos0, const float *inv_freq, float mscale,
                 int n_heads, int n_kv_heads, int head_dim, int rot_dim) {
    size_t width = (size_t)(n_heads + 2 * n_kv_heads) * (size_t)head_dim;
    for (int t = 0; t < n_tokens; t++) /* Q heads then K heads: they are adjacent */
        for (int h = 0; h < n_heads + n_kv_heads; h++)
            rope_head(qkv + (size_t)t * width + (size_t)h * (size_t)head_dim, pos0 + t, inv_freq,
                      mscale, rot_dim);
}

/* One query head against keys [lo, pos]: two passes (max, then exp-sum and weighted values) so
 * the reference needs no scratch memory. */
static void attend_head(float *out, const float *q, const float *k_cache, const float *v_cache,
                        int lo, int pos, size_t stride, int hd, float scale) {
    float m = -INFINITY;
    for (int j = lo; j <= pos; j++) {
        float s = p3_ref_dot(q, k_cache + (size_t)j * stride, hd) * scale;
        if (s > m) m = s;
    }
    for (int d = 0; d < hd; d++) out[d] = 0.0f;
    float sum = 0.0f;
    for (int j = lo; j <= pos; j++) {
        float e = p3_ref_attn_weight(p3_ref_dot(q, k_cache + (size_t)j * stride, hd) * scale - m);
        sum += e;
        const float *v = v_cache + (size_t)j * stride;
        for (int d = 0; d < hd; d++) out[d] += e * v[d];
    }
    for (int d = 0; d < hd; d++) out[d] /= sum;
}

void p3_ref_attention(float *out, const float *qkv, const float *k_cache, const float *v_cache,
                      int n_tokens, int pos0, const p3_attn_params *p) {
    int hd = p->head_dim, group = p->n_heads / p->n_kv_heads;
    size_t width = (size_t)(p->n_heads + 2 * p->n_kv_heads) * (size_t)hd;
    size_t stride = (size_t)p->n_kv_heads * (size_t)hd; /* one position of the cache */
    for (int t = 0; t < n_tokens; t++) {
        int pos = pos0 + t;
        int lo = p->window > 0 ? P3_MAX(0, pos - p->window + 1) : 0;
        for (int h = 0; h < p->n_heads; h++) {
            size_t kv_off = (size_t)(h / group) * (size_t)hd;
            attend_head(out + ((size_t)t * (size_t)p->n_heads + (size_t)h) * (size_t)hd,
                        qkv + (size_t)t * width + (size_t)h * (size_t)hd, k_cache + kv_off,
                        v_cache + kv_off, lo, pos, stride, hd, p->scale);
        }
    }
}

void p3_ref_kv_write(float *k_cache, float *v_cache, const float *qkv, int n_tokens, int pos0,
                     const p3_attn_params *p) {
    size_t hd = (size_t)p->head_dim;
    size_t width = (size_t)(p->n_heads + 2 * p->n_kv_heads) * hd;
    size_t kv_width = (size_t)p->n_kv_heads * hd;
    for (int t = 0; t < n_tokens; t++) {
        const float *k = qkv + (size_t)t * width + (size_t)p->n_heads * hd;
        size_t at = (size_t)(pos0 + t) * kv_width;
        memcpy(k_cache + at, k, kv_width * sizeof(float));
        memcpy(v_cache + at, k + kv_width, kv_width * sizeof(float));
    }
}

void p3_ref_swiglu(float *out, const float *gate_up, int n_tokens, int dim) {
    for (int t = 0; t < n_tokens; t++) {
        const float *g = gate_up + (size_t)t * 2 * (size_t)dim;
        const float *u = g + dim;
        float *o = out + (size_t)t * (size_t)dim;
        for (int i = 0; i < dim; i++) o[i] = g[i] / (1.0f + p3_ref_expf(-g[i])) * u[i];
    }
}

void p3_ref_add(float *x, const float *y, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

void p3_rope_inv_freq(float *inv_freq, int rot_dim, float theta, const float *factors) {
    for (int i = 0; i < rot_dim / 2; i++) {
        float expo = (float)(2 * i) / (float)rot_dim;
        float ext = factors ? factors[i] : 1.0f;
        inv_freq[i] = 1.0f / (ext * powf(theta, expo));
    }
}

void p3_ref_kv_round_q8(float *v, int n) {
    float amax = 0.0f;
    for (int i = 0; i < n; i++) amax = fmaxf(amax, fabsf(v[i]));
    float d = amax / 127.0f;
    float inv = amax > 0.0f ? 1.0f / d : 0.0f;
    for (int i = 0; i < n; i++) v[i] = nearbyintf(v[i] * inv) * d;
}

void p3_ref_kv_round_f16(float *v, int n) {
    for (int i = 0; i < n; i++) v[i] = p3_f16_to_f32(p3_f32_to_f16(v[i]));
}
