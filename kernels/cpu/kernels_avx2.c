/* kernels_avx2.c: the CPU backend's AVX2 level (+FMA, F16C), in two flavours: with AVX-VNNI
 * (vpdpbusd on ymm) when cpuid reports it, and with vpmaddubsw/vpmaddwd otherwise (both exact).
 * INT4 panels are processed as two halves of 8 rows. Compiled with its own ISA flags. */
#include "cpu.h"
#include "ref.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

/* ---- helpers */

static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float hmax8(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* p3_ref_expf on 8 lanes, bit for bit: with x clamped to [-87.34, 88.38], n is in [-126, 127],
 * so multiplying by 2^n built in the exponent field is exactly ldexpf. */
static inline __m256 exp256(__m256 x) {
    x = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(88.3762626647949f)),
                      _mm256_set1_ps(-87.3365478515625f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* Loads n < 8 floats zero-padded. */
static inline __m256 load_tail(const float *x, int n) {
    float tmp[8] = {0};
    memcpy(tmp, x, (size_t)n * sizeof(float));
    return _mm256_loadu_ps(tmp);
}

/* p3_ref_dot bit for bit: two 8-lane accumulators hold the reference's 16 partial sums. */
static inline float dot_spec(const float *a, const float *b, int n) {
    __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        lo = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), lo);
        hi = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), hi);
    }
    if (i < n) {
        float ta[16] = {0}, tb[16] = {0};
        memcpy(ta, a + i, (size_t)(n - i) * sizeof(float));
        memcpy(tb, b + i, (size_t)(n - i) * sizeof(float));
        lo = _mm256_fmadd_ps(_mm256_loadu_ps(ta), _mm256_loadu_ps(tb), lo);
        hi = _mm256_fmadd_ps(_mm256_loadu_ps(ta + 8), _mm256_loadu_ps(tb + 8), hi);
    }
    return hsum8(_mm256_add_ps(lo, hi)); /* the reference's halvings: 8, then 4, 2, 1 */
}

/* ---- row ops (bit-identical to the reference) */

static void rmsnorm_row_avx2(float *out, const float *x, const float *w, int dim, float eps) {
    float r = 1.0f / sqrtf(dot_spec(x, x, dim) / (float)dim + eps);
    __m256 rv = _mm256_set1_ps(r);
    int i = 0;
    for (; i + 8 <= dim; i += 8)
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), rv),
                                                _mm256_loadu_ps(w + i)));
    for (; i < dim; i++) out[i] = x[i] * r * w[i];
}

static void swiglu_row_avx2(float *out, const float *gate_up, int dim) {
    const float *up = gate_up + dim;
    int i = 0;
    for (; i + 8 <= dim; i += 8) {
        __m256 g = _mm256_loadu_ps(gate_up + i);
        __m256 e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), g));
        __m256 s = _mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
        _mm256_storeu_ps(out + i, _mm256_mul_ps(s, _mm256_loadu_ps(up + i)));
    }
    if (i < dim) {
        float tmp[8];
        __m256 g = load_tail(gate_up + i, dim - i);
        __m256 e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), g));
        __m256 s = _mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
        _mm256_storeu_ps(tmp, _mm256_mul_ps(s, load_tail(up + i, dim - i)));
        memcpy(out + i, tmp, (size_t)(dim - i) * sizeof(float));
    }
}

static void add_avx2(float *x, const float *y, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(x + i, _mm256_add_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) x[i] += y[i];
}

static void store_f16_avx2(uint16_t *dst, const float *src, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) dst[i] = p3_f32_to_f16(src[i]);
}

/* ---- activations to int8 groups: bit-identical to p3_quantize_act_q8g */

static void quantize_act_avx2(const float *x, int64_t k, p3_block_q8g *out) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t g = 0; g * P3_QK < k; g++) {
        float v[P3_QK] = {0};
        int n = (int)P3_MIN((int64_t)P3_QK, k - g * P3_QK);
        memcpy(v, x + g * P3_QK, (size_t)n * sizeof(float));
        p3_block_q8g *b = &out[g];
        __m256 amax = _mm256_setzero_ps();
        for (int i = 0; i < P3_QK; i += 8)
            amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, _mm256_loadu_ps(v + i)));
        float m = hmax8(amax);
        b->d = m / 127.0f;
        b->sum = 0;
        memset(b->qs, 0, sizeof b->qs);
        if (m == 0.0f) continue;
        __m256 inv = _mm256_set1_ps(1.0f / b->d);
        __m256i sum = _mm256_setzero_si256();
        int32_t q[P3_QK];
        for (int i = 0; i < P3_QK; i += 8) {
            __m256i qi = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(v + i), inv));
            sum = _mm256_add_epi32(sum, qi);
            _mm256_storeu_si256((__m256i *)(q + i), qi);
        }
        for (int i = 0; i < P3_QK; i++) b->qs[i] = (int8_t)q[i];
        int32_t s[8];
        _mm256_storeu_si256((__m256i *)s, sum);
        b->sum = s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
    }
}

/* ---- INT4 panels x int8 activations, generic over the u8 x s8 dot step */

static inline __m256i dot_vnni(__m256i acc, __m256i u, __m256i s) {
    return _mm256_dpbusd_avx_epi32(acc, u, s);
}

/* Exact without VNNI: u <= 15 and |s| <= 127, so the pair sums fit int16 without saturation. */
static inline __m256i dot_madd(__m256i acc, __m256i u, __m256i s) {
    __m256i p = _mm256_maddubs_epi16(u, s);
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
}

typedef __m256i (*dot_fn)(__m256i, __m256i, __m256i);

/* Adds one group's contribution of NT tokens (16 rows each) into acc[NT][16]. */
static inline __attribute__((always_inline)) void
group_tile(float (*acc)[CPU_PANEL], const p3_block_q8g *xa, size_t xstride, const uint8_t *src,
           const uint16_t *sc, const uint8_t *zp, int NT, dot_fn dot) {
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    __m256i d[4][2];
#pragma GCC unroll 16
    for (int i = 0; i < NT; i++) d[i][0] = d[i][1] = _mm256_setzero_si256();
    for (int c = 0; c < P3_QK / 8; c++) {
        __m256i v0 = _mm256_load_si256((const __m256i *)(src + c * CPU_CHUNK));
        __m256i v1 = _mm256_load_si256((const __m256i *)(src + c * CPU_CHUNK + 32));
        __m256i lo0 = _mm256_and_si256(v0, low4),
                hi0 = _mm256_and_si256(_mm256_srli_epi16(v0, 4), low4);
        __m256i lo1 = _mm256_and_si256(v1, low4),
                hi1 = _mm256_and_si256(_mm256_srli_epi16(v1, 4), low4);
#pragma GCC unroll 16
        for (int i = 0; i < NT; i++) {
            const int8_t *qs = xa[(size_t)i * xstride].qs;
            int32_t a0, a1;
            memcpy(&a0, qs + 4 * c, 4);
            memcpy(&a1, qs + 64 + 4 * c, 4);
            __m256i b0 = _mm256_set1_epi32(a0), b1 = _mm256_set1_epi32(a1);
            d[i][0] = dot(dot(d[i][0], lo0, b0), hi0, b1);
            d[i][1] = dot(dot(d[i][1], lo1, b0), hi1, b1);
        }
    }
    for (int h = 0; h < 2; h++) {
        __m256 dw = _mm256_cvtph_ps(_mm_load_si128((const __m128i *)(sc + 8 * h)));
        __m256i z = zp ? _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(zp + 8 * h)))
                       : _mm256_set1_epi32(8);
#pragma GCC unroll 16
        for (int i = 0; i < NT; i++) {
            const p3_block_q8g *a = &xa[(size_t)i * xstride];
            __m256i dt =
                _mm256_sub_epi32(d[i][h], _mm256_mullo_epi32(z, _mm256_set1_epi32(a->sum)));
            __m256 s = _mm256_mul_ps(dw, _mm256_set1_ps(a->d));
            __m256 y = _mm256_loadu_ps(acc[i] + 8 * h);
            _mm256_storeu_ps(acc[i] + 8 * h,
                             _mm256_add_ps(y, _mm256_mul_ps(s, _mm256_cvtepi32_ps(dt))));
        }
    }
}

static inline __attribute__((always_inline)) void
panel_tokens(float *y, size_t ys, const p3_block_q8g *xa, int64_t ng, const uint8_t *data,
             const uint16_t *sc, const uint8_t *zp, int NT, int valid_rows, dot_fn dot) {
    float acc[4][CPU_PANEL];
    memset(acc, 0, sizeof acc);
    for (int64_t g = 0; g < ng; g++)
        group_tile(acc, xa + g, (size_t)ng, data + (size_t)g * CPU_GROUP_BYTES, sc + g * CPU_PANEL,
                   zp ? zp + g * CPU_PANEL : NULL, NT, dot);
#pragma GCC unroll 16
    for (int i = 0; i < NT; i++) memcpy(y + (size_t)i * ys, acc[i], (size_t)valid_rows * 4);
}

static inline __attribute__((always_inline)) void
matmul_w4a8_avx2_impl(float *y, const p3_block_q8g *xa, const cpu_weight *w, int n_tokens,
                      int64_t p0, int64_t p1, dot_fn dot) {
    int64_t ng = w->n_groups, rows = w->pub.rows;
    size_t ys = (size_t)rows;
    for (int64_t p = p0; p < p1; p++) {
        cpu_panel pn = cpu_panel_of(w, p);
        float *yp = y + p * CPU_PANEL;
        int t = 0;
        for (; t + 4 <= n_tokens; t += 4)
            panel_tokens(yp + (size_t)t * ys, ys, xa + (size_t)t * (size_t)ng, ng, pn.data,
                         pn.scales, pn.zeros, 4, pn.rows, dot);
        const p3_block_q8g *xr = xa + (size_t)t * (size_t)ng;
        float *yr = yp + (size_t)t * ys;
        switch (n_tokens - t) {
        case 3:
            panel_tokens(yr, ys, xr, ng, pn.data, pn.scales, pn.zeros, 3, pn.rows, dot);
            break;
        case 2:
            panel_tokens(yr, ys, xr, ng, pn.data, pn.scales, pn.zeros, 2, pn.rows, dot);
            break;
        case 1:
            panel_tokens(yr, ys, xr, ng, pn.data, pn.scales, pn.zeros, 1, pn.rows, dot);
            break;
        default:
            break;
        }
    }
}

static void matmul_w4a8_avx2_vnni(float *y, const p3_block_q8g *xa, const cpu_weight *w,
                                  int n_tokens, int64_t p0, int64_t p1) {
    matmul_w4a8_avx2_impl(y, xa, w, n_tokens, p0, p1, dot_vnni);
}

static void matmul_w4a8_avx2_madd(float *y, const p3_block_q8g *xa, const cpu_weight *w,
                                  int n_tokens, int64_t p0, int64_t p1) {
    matmul_w4a8_avx2_impl(y, xa, w, n_tokens, p0, p1, dot_madd);
}

/* ---- f32 / f16 / bf16 weights */

/* 8 weights at k as f32; k + 8 <= cols. */
static inline __m256 load_w8(const void *row, p3_dtype dt, int64_t k) {
    if (dt == P3_DT_F32) return _mm256_loadu_ps((const float *)row + k);
    __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)row + k));
    if (dt == P3_DT_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

static inline __m256 load_w_tail(const void *row, p3_dtype dt, int64_t k, int n) {
    float tmp[8] = {0};
    for (int i = 0; i < n; i++) {
        if (dt == P3_DT_F32)
            tmp[i] = ((const float *)row)[k + i];
        else if (dt == P3_DT_F16)
            tmp[i] = p3_f16_to_f32(((const uint16_t *)row)[k + i]);
        else
            tmp[i] = p3_bf16_to_f32(((const uint16_t *)row)[k + i]);
    }
    return _mm256_loadu_ps(tmp);
}

static inline __attribute__((always_inline)) void plain_tile(float *y, size_t ys, const float *x,
                                                             size_t xs, const void *row,
                                                             p3_dtype dt, int64_t cols, int NT) {
    __m256 acc[4];
#pragma GCC unroll 16
    for (int i = 0; i < NT; i++) acc[i] = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 8 <= cols; k += 8) {
        __m256 wv = load_w8(row, dt, k);
#pragma GCC unroll 16
        for (int i = 0; i < NT; i++)
            acc[i] = _mm256_fmadd_ps(_mm256_loadu_ps(x + (size_t)i * xs + k), wv, acc[i]);
    }
    if (k < cols) {
        __m256 wv = load_w_tail(row, dt, k, (int)(cols - k));
#pragma GCC unroll 16
        for (int i = 0; i < NT; i++)
            acc[i] =
                _mm256_fmadd_ps(load_tail(x + (size_t)i * xs + k, (int)(cols - k)), wv, acc[i]);
    }
#pragma GCC unroll 16
    for (int i = 0; i < NT; i++) y[(size_t)i * ys] = hsum8(acc[i]);
}

static void matmul_plain_avx2(float *y, const float *x, const cpu_weight *w, int n_tokens,
                              int64_t n0, int64_t n1) {
    size_t rows = (size_t)w->pub.rows, cols = (size_t)w->pub.cols;
    for (int64_t n = n0; n < n1; n++) {
        const void *row = w->data + (size_t)n * w->row_bytes;
        int t = 0;
        for (; t + 4 <= n_tokens; t += 4)
            plain_tile(y + (size_t)t * rows + n, rows, x + (size_t)t * cols, cols, row,
                       w->pub.dtype, w->pub.cols, 4);
        for (; t < n_tokens; t++)
            plain_tile(y + (size_t)t * rows + n, rows, x + (size_t)t * cols, cols, row,
                       w->pub.dtype, w->pub.cols, 1);
    }
}

/* ---- INT4 weights x f32 activations (w4a32) */

static inline __attribute__((always_inline)) void w4a32_tile(float *y, size_t ys, const float *x,
                                                             size_t xs, const uint8_t *row,
                                                             bool asym, int64_t cols, int NT) {
    __m256 acc[4];
#pragma GCC unroll 16
    for (int i = 0; i < NT; i++) acc[i] = _mm256_setzero_ps();
    size_t bb = asym ? sizeof(p3_block_i4a) : sizeof(p3_block_i4s);
    for (int64_t g = 0; g * P3_QK < cols; g++) {
        const uint8_t *blk = row + (size_t)g * bb;
        uint16_t d16;
        memcpy(&d16, blk, 2);
        __m256 d = _mm256_set1_ps(p3_f16_to_f32(d16));
        __m256i z = _mm256_set1_epi32(asym ? blk[2] : 8);
        const uint8_t *qs = blk + (asym ? 4 : 2);
        for (int i = 0; i < 16; i++) {
            int64_t k = g * P3_QK + 8 * i;
            if (k >= cols) break;
            __m256i q = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(qs + 8 * (i & 7))));
            q = i < 8 ? _mm256_and_si256(q, _mm256_set1_epi32(0x0f)) : _mm256_srli_epi32(q, 4);
            __m256 wv = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(q, z)), d);
            int n = (int)P3_MIN((int64_t)8, cols - k);
#pragma GCC unroll 16
            for (int t = 0; t < NT; t++) {
                const float *xt = x + (size_t)t * xs + k;
                __m256 xv = n == 8 ? _mm256_loadu_ps(xt) : load_tail(xt, n);
                acc[t] = _mm256_fmadd_ps(xv, wv, acc[t]);
            }
        }
    }
#pragma GCC unroll 16
    for (int i = 0; i < NT; i++) y[(size_t)i * ys] = hsum8(acc[i]);
}

static void matmul_w4a32_avx2(float *y, const float *x, const cpu_weight *w, int n_tokens,
                              int64_t n0, int64_t n1) {
    size_t rows = (size_t)w->pub.rows, cols = (size_t)w->pub.cols;
    bool asym = w->pub.dtype == P3_DT_I4G128A;
    for (int64_t n = n0; n < n1; n++) {
        const uint8_t *row = w->data + (size_t)n * w->row_bytes;
        int t = 0;
        for (; t + 4 <= n_tokens; t += 4)
            w4a32_tile(y + (size_t)t * rows + n, rows, x + (size_t)t * cols, cols, row, asym,
                       w->pub.cols, 4);
        for (; t < n_tokens; t++)
            w4a32_tile(y + (size_t)t * rows + n, rows, x + (size_t)t * cols, cols, row, asym,
                       w->pub.cols, 1);
    }
}

/* ---- attention: the reference's two passes, vectorised over head_dim and over positions for
 * exp: bit-identical to the reference. */

/* One cache row as f32, zero padded to a multiple of 16 (hd <= 512). */
static inline void kv_row_f32(const cpu_attn_job *job, bool value, int pos, float *out, int hd) {
    const cpu_kv *kv = job->kv;
    size_t idx = cpu_kv_index(kv, job->layer, job->kv_head, pos);
    const uint8_t *src = (value ? kv->v : kv->k) + idx * (size_t)hd * kv->elem;
    int i = 0;
    switch (kv->pub.desc.dtype) {
    case P3_KV_F32:
        memcpy(out, src, (size_t)hd * 4);
        i = hd;
        break;
    case P3_KV_F16:
        for (; i + 8 <= hd; i += 8)
            _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128(
                                          (const __m128i *)((const uint16_t *)src + i))));
        for (; i < hd; i++) out[i] = p3_f16_to_f32(((const uint16_t *)src)[i]);
        break;
    case P3_KV_Q8: {
        float ds = (value ? kv->v_scale : kv->k_scale)[idx];
        __m256 d = _mm256_set1_ps(ds);
        for (; i + 8 <= hd; i += 8) {
            __m256i b = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(src + i)));
            _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_cvtepi32_ps(b), d));
        }
        for (; i < hd; i++) out[i] = (float)((const int8_t *)src)[i] * ds;
        break;
    }
    }
    for (int j = hd; j < ((hd + 15) & ~15); j++) out[j] = 0.0f;
}

/* s[j] = p3_ref_attn_weight(s[j] - m) for j < n, 8 lanes at a time. */
static inline __m256 attn_weight8(__m256 s, __m256 mv) {
    __m256 x = _mm256_sub_ps(s, mv), cut = _mm256_set1_ps(P3_ATTN_MIN_ARG);
    __m256 below = _mm256_cmp_ps(x, cut, _CMP_LT_OQ); /* NaN stays NaN, as in the reference */
    return _mm256_andnot_ps(below, exp256(_mm256_max_ps(cut, x)));
}

static void softmax_weights_avx2(float *s, int n, float m) {
    __m256 mv = _mm256_set1_ps(m);
    int j = 0;
    for (; j + 8 <= n; j += 8) _mm256_storeu_ps(s + j, attn_weight8(_mm256_loadu_ps(s + j), mv));
    if (j < n) {
        float tmp[8] = {0};
        memcpy(tmp, s + j, (size_t)(n - j) * 4);
        _mm256_storeu_ps(tmp, attn_weight8(_mm256_loadu_ps(tmp), mv));
        memcpy(s + j, tmp, (size_t)(n - j) * 4);
    }
}

static void attend_avx2(const cpu_attn_job *job) {
    int hd = job->kv->pub.desc.head_dim, nv = (hd + 15) / 16 * 2; /* 8-lane vectors, padded */
    int n = job->hi - job->lo + 1;
    float *s = job->scores;
    float q[512], acc[512], row[512];
    memset(q, 0, (size_t)nv * 32);
    memcpy(q, job->q, (size_t)hd * 4);
    memset(acc, 0, (size_t)nv * 32);
    float m = -INFINITY;
    for (int j = 0; j < n; j++) {
        kv_row_f32(job, false, job->lo + j, row, hd);
        s[j] = dot_spec(q, row, nv * 8) * job->scale;
        m = fmaxf(m, s[j]);
    }
    softmax_weights_avx2(s, n, m);
    float sum = 0.0f;
    for (int j = 0; j < n; j++) {
        sum += s[j];
        kv_row_f32(job, true, job->lo + j, row, hd);
        __m256 e = _mm256_set1_ps(s[j]);
        for (int i = 0; i < nv; i++)
            _mm256_storeu_ps(acc + 8 * i,
                             _mm256_add_ps(_mm256_loadu_ps(acc + 8 * i),
                                           _mm256_mul_ps(e, _mm256_loadu_ps(row + 8 * i))));
    }
    for (int i = 0; i < hd; i++) job->out[i] = acc[i] / sum;
}

/* Head sizes that are multiples of 16 (64, 96, 128): q and the sums in registers, rows loaded
 * straight from the cache. P pairs of 8-lane vectors; same arithmetic as attend_avx2. */
static inline __attribute__((always_inline)) __m256
kv_vec8(const cpu_kv *kv, const uint8_t *base, const float *scale, size_t idx, int hd, int i) {
    const uint8_t *src = base + idx * (size_t)hd * kv->elem;
    switch (kv->pub.desc.dtype) {
    case P3_KV_F32:
        return _mm256_loadu_ps((const float *)src + 8 * i);
    case P3_KV_F16:
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)src + 8 * i)));
    default: {
        __m256i b = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(src + 8 * i)));
        return _mm256_mul_ps(_mm256_cvtepi32_ps(b), _mm256_set1_ps(scale[idx]));
    }
    }
}

static inline __attribute__((always_inline)) void attend_pairs(const cpu_attn_job *job, int P) {
    const cpu_kv *kv = job->kv;
    int hd = kv->pub.desc.head_dim, n = job->hi - job->lo + 1;
    size_t idx0 = cpu_kv_index(kv, job->layer, job->kv_head, job->lo);
    float *s = job->scores;
    __m256 q[16], acc[16];
#pragma GCC unroll 16
    for (int i = 0; i < 2 * P; i++) {
        q[i] = _mm256_loadu_ps(job->q + 8 * i);
        acc[i] = _mm256_setzero_ps();
    }
    float m = -INFINITY;
    for (int j = 0; j < n; j++) {
        __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
#pragma GCC unroll 8
        for (int k = 0; k < P; k++) {
            lo = _mm256_fmadd_ps(q[2 * k],
                                 kv_vec8(kv, kv->k, kv->k_scale, idx0 + (size_t)j, hd, 2 * k), lo);
            hi = _mm256_fmadd_ps(
                q[2 * k + 1], kv_vec8(kv, kv->k, kv->k_scale, idx0 + (size_t)j, hd, 2 * k + 1), hi);
        }
        s[j] = hsum8(_mm256_add_ps(lo, hi)) * job->scale;
        m = s[j] > m ? s[j] : m;
    }
    softmax_weights_avx2(s, n, m);
    float sum = 0.0f;
    for (int j = 0; j < n; j++) {
        sum += s[j];
        __m256 e = _mm256_set1_ps(s[j]);
#pragma GCC unroll 16
        for (int i = 0; i < 2 * P; i++)
            acc[i] = _mm256_add_ps(
                acc[i], _mm256_mul_ps(e, kv_vec8(kv, kv->v, kv->v_scale, idx0 + (size_t)j, hd, i)));
    }
    __m256 sv = _mm256_set1_ps(sum);
#pragma GCC unroll 16
    for (int i = 0; i < 2 * P; i++) _mm256_storeu_ps(job->out + 8 * i, _mm256_div_ps(acc[i], sv));
}

static void attend_avx2_fast(const cpu_attn_job *job) {
    int hd = job->kv->pub.desc.head_dim;
    switch (hd % 16 ? 0 : hd / 16) {
    case 4:
        attend_pairs(job, 4);
        break;
    case 6:
        attend_pairs(job, 6);
        break;
    case 8:
        attend_pairs(job, 8);
        break;
    default:
        attend_avx2(job);
        break;
    }
}

const cpu_isa cpu_isa_avx2 = {
    .name = "avx2",
    .matmul_plain = matmul_plain_avx2,
    .matmul_w4a32 = matmul_w4a32_avx2,
    .quantize_act = quantize_act_avx2,
    .matmul_w4a8 = matmul_w4a8_avx2_madd,
    .attend = attend_avx2_fast,
    .rmsnorm_row = rmsnorm_row_avx2,
    .swiglu_row = swiglu_row_avx2,
    .add = add_avx2,
    .store_f16 = store_f16_avx2,
};

const cpu_isa cpu_isa_avx2_vnni = {
    .name = "avx2-vnni",
    .matmul_plain = matmul_plain_avx2,
    .matmul_w4a32 = matmul_w4a32_avx2,
    .quantize_act = quantize_act_avx2,
    .matmul_w4a8 = matmul_w4a8_avx2_vnni,
    .attend = attend_avx2_fast,
    .rmsnorm_row = rmsnorm_row_avx2,
    .swiglu_row = swiglu_row_avx2,
    .add = add_avx2,
    .store_f16 = store_f16_avx2,
};
