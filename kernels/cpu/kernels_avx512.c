/* kernels_avx512.c: the CPU backend's AVX-512 level (F/BW/VL/DQ + VNNI): INT4 x INT8 panels with
 * vpdpbusd (decode GEMV and register-tiled prefill GEMM), f32/f16/bf16 matmul with FMA, attention
 * with online softmax, and the vectorised row ops. Compiled with its own ISA flags. */
#include "cpu.h"
#include "ref.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

/* ---- helpers */

static inline __mmask16 tail_mask(int n) {
    return n >= 16 ? 0xffff : (__mmask16)((1u << n) - 1);
}

/* p3_ref_expf on 16 lanes, bit for bit (same clamp, rounding, fused steps and scaling). */
static inline __m512 exp512(__m512 x) {
    x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(88.3762626647949f)),
                      _mm512_set1_ps(-87.3365478515625f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

/* p3_ref_dot bit for bit: lane l of the accumulator is the reference's partial sum l. */
static inline float lanes_sum(__m512 acc) {
    __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(acc), _mm512_extractf32x8_ps(acc, 1));
    __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    return _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));
}

/* Lane r of the result: the sum of v[r]'s 16 lanes by lanes_sum's tree (lanes l and l + 8, then
 * + 4, + 2, + 1; float addition commutes, so the bits are lanes_sum's), for 16 vectors in 15
 * shuffle-adds instead of 16 horizontal sums. */
static inline __m512 reduce16(const __m512 v[16]) {
    __m512 h[8], q[4], e[2];
    for (int j = 0; j < 8; j++) /* 256-bit halves: [a0+a2, a1+a3, b0+b2, b1+b3] */
        h[j] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * j], v[2 * j + 1], 0x44),
                             _mm512_shuffle_f32x4(v[2 * j], v[2 * j + 1], 0xee));
    for (int j = 0; j < 4; j++) /* 128-bit chunks: vectors 4j .. 4j+3, four partials each */
        q[j] = _mm512_add_ps(_mm512_shuffle_f32x4(h[2 * j], h[2 * j + 1], 0x88),
                             _mm512_shuffle_f32x4(h[2 * j], h[2 * j + 1], 0xdd));
    for (int j = 0; j < 2; j++) /* chunk c: vectors 8j+c, 8j+4+c, two partials each */
        e[j] = _mm512_add_ps(_mm512_unpacklo_ps(q[2 * j], q[2 * j + 1]),
                             _mm512_unpackhi_ps(q[2 * j], q[2 * j + 1]));
    /* chunk c now holds vectors c, c + 8, c + 4, c + 12: back to their order */
    __m512 sum = _mm512_add_ps(_mm512_unpacklo_ps(e[0], e[1]), _mm512_unpackhi_ps(e[0], e[1]));
    const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 2, 6, 10, 14, 1, 5, 9, 13, 3, 7, 11, 15);
    return _mm512_permutexvar_ps(order, sum);
}

static inline float dot_spec(const float *a, const float *b, int n) {
    __m512 acc = _mm512_setzero_ps();
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        acc =
            _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), acc);
    }
    return lanes_sum(acc);
}

/* ---- row ops (bit-identical to the reference) */

static void rmsnorm_row_avx512(float *out, const float *x, const float *w, int dim, float eps) {
    float r = 1.0f / sqrtf(dot_spec(x, x, dim) / (float)dim + eps);
    __m512 rv = _mm512_set1_ps(r);
    for (int i = 0; i < dim; i += 16) {
        __mmask16 m = tail_mask(dim - i);
        __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), rv);
        _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, w + i)));
    }
}

static void swiglu_row_avx512(float *out, const float *gate_up, int dim) {
    const float *up = gate_up + dim;
    for (int i = 0; i < dim; i += 16) {
        __mmask16 m = tail_mask(dim - i);
        __m512 g = _mm512_maskz_loadu_ps(m, gate_up + i);
        __m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), g));
        __m512 s = _mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
        _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(s, _mm512_maskz_loadu_ps(m, up + i)));
    }
}

static void add_avx512(float *x, const float *y, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(x + i, _mm512_add_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
    for (; i < n; i++) x[i] += y[i];
}

static void store_f16_avx512(uint16_t *dst, const float *src, int n) {
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m256i h = _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, src + i), _MM_FROUND_TO_NEAREST_INT);
        _mm256_mask_storeu_epi16(dst + i, m, h);
    }
}

/* ---- activations to int8 groups: bit-identical to p3_quantize_act_q8g */

static void quantize_act_avx512(const float *x, int64_t k, p3_block_q8g *out) {
    const __m512 sign = _mm512_set1_ps(-0.0f);
    for (int64_t g = 0; g * P3_QK < k; g++) {
        const float *xg = x + g * P3_QK;
        int n = (int)P3_MIN((int64_t)P3_QK, k - g * P3_QK);
        p3_block_q8g *b = &out[g];
        __m512 v[8], amax = _mm512_setzero_ps();
        for (int i = 0; i < 8; i++) {
            v[i] = _mm512_maskz_loadu_ps(tail_mask(P3_MAX(0, n - 16 * i)), xg + 16 * i);
            amax = _mm512_max_ps(amax, _mm512_andnot_ps(sign, v[i]));
        }
        float m = _mm512_reduce_max_ps(amax);
        b->d = m / 127.0f;
        if (m == 0.0f) {
            memset(b->qs, 0, sizeof b->qs);
            b->sum = 0;
            continue;
        }
        __m512 inv = _mm512_set1_ps(1.0f / b->d);
        __m512i sum = _mm512_setzero_si512();
        for (int i = 0; i < 8; i++) {
            __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(v[i], inv));
            sum = _mm512_add_epi32(sum, q);
            _mm_storeu_si128((__m128i *)(b->qs + 16 * i), _mm512_cvtepi32_epi8(q));
        }
        b->sum = _mm512_reduce_add_epi32(sum);
    }
}

/* ---- INT4 panels x int8 activations */

#define TOKEN_TILE 16

/* One panel, NT tokens starting at xa (stride ng blocks), all groups; y rows of this panel. One
 * int32 accumulator per token (NT independent vpdpbusd chains); the f32 sums live in a small
 * L1-resident array so the registers go to the integer accumulators. */
static inline __attribute__((always_inline)) void
panel_tile(float *y, size_t y_stride, const p3_block_q8g *xa, int64_t ng, const uint8_t *data,
           const uint16_t *scales, const uint8_t *zeros, int NT, __mmask16 rows_mask) {
    const __m512i low4 = _mm512_set1_epi8(0x0f);
    __attribute__((aligned(64))) float acc[TOKEN_TILE][CPU_PANEL];
#pragma GCC unroll 16
    for (int i = 0; i < NT; i++) _mm512_store_ps(acc[i], _mm512_setzero_ps());
    for (int64_t g = 0; g < ng; g++) {
        const uint8_t *src = data + (size_t)g * CPU_GROUP_BYTES;
        __m512i d[TOKEN_TILE];
#pragma GCC unroll 16
        for (int i = 0; i < NT; i++) d[i] = _mm512_setzero_si512();
        for (int c = 0; c < P3_QK / 8; c++) {
            __m512i v = _mm512_load_si512((const void *)(src + c * CPU_CHUNK));
            __m512i lo = _mm512_and_si512(v, low4);
            __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
#pragma GCC unroll 16
            for (int i = 0; i < NT; i++) {
                const int8_t *qs = xa[(size_t)i * (size_t)ng + (size_t)g].qs;
                int32_t a0, a1;
                memcpy(&a0, qs + 4 * c, 4);
                memcpy(&a1, qs + 64 + 4 * c, 4);
                d[i] = _mm512_dpbusd_epi32(d[i], lo, _mm512_set1_epi32(a0));
                d[i] = _mm512_dpbusd_epi32(d[i], hi, _mm512_set1_epi32(a1));
            }
        }
        __m512 dw = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(scales + g * CPU_PANEL)));
        __m512i z =
            zeros ? _mm512_cvtepu8_epi32(_mm_load_si128((const __m128i *)(zeros + g * CPU_PANEL)))
                  : _mm512_set1_epi32(8);
#pragma GCC unroll 16
        for (int i = 0; i < NT; i++) {
            const p3_block_q8g *a = &xa[(size_t)i * (size_t)ng + (size_t)g];
            __m512i dot = _mm512_sub_epi32(d[i], _mm512_mullo_epi32(z, _mm512_set1_epi32(a->sum)));
            __m512 s = _mm512_mul_ps(dw, _mm512_set1_ps(a->d));
            __m512 r =
                _mm512_add_ps(_mm512_load_ps(acc[i]), _mm512_mul_ps(s, _mm512_cvtepi32_ps(dot)));
            _mm512_store_ps(acc[i], r);
        }
    }
#pragma GCC unroll 16
    for (int i = 0; i < NT; i++)
        _mm512_mask_storeu_ps(y + (size_t)i * y_stride, rows_mask, _mm512_load_ps(acc[i]));
}

/* Decode: one token, four independent dot chains per group to hide vpdpbusd latency. High
 * nibbles are used in place (v & 0xf0 = 16 q): their dot is 16x the wanted one, exactly, so an
 * arithmetic shift recovers it and the loop saves a shift per 64 bytes. Every cache line is also
 * prefetched GEMV_PREFETCH bytes ahead (two groups): the hardware prefetcher alone left ~10% of
 * the read bandwidth unused at 1 and 2 threads (A/B in one process, timed in thread CPU time on
 * a shared machine: +9-14% for 1-3 KB ahead, -5% for 512 bytes, less with the L2 hint). */
#define GEMV_PREFETCH 2048
static void panel_gemv(float *y, const p3_block_q8g *xa, int64_t ng, const uint8_t *data,
                       const uint16_t *scales, const uint8_t *zeros, __mmask16 rows_mask) {
    const __m512i low4 = _mm512_set1_epi8(0x0f), high4 = _mm512_set1_epi8((char)0xf0);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t g = 0; g < ng; g++) {
        const uint8_t *src = data + (size_t)g * CPU_GROUP_BYTES;
        const int8_t *qs = xa[g].qs;
        __m512i d0 = _mm512_setzero_si512(), d1 = d0, d2 = d0, d3 = d0;
#pragma GCC unroll 8
        for (int c = 0; c < P3_QK / 8; c += 2) {
            _mm_prefetch((const char *)src + c * CPU_CHUNK + GEMV_PREFETCH, _MM_HINT_T0);
            _mm_prefetch((const char *)src + (c + 1) * CPU_CHUNK + GEMV_PREFETCH, _MM_HINT_T0);
            __m512i v0 = _mm512_load_si512((const void *)(src + c * CPU_CHUNK));
            __m512i v1 = _mm512_load_si512((const void *)(src + (c + 1) * CPU_CHUNK));
            int32_t a[4];
            memcpy(&a[0], qs + 4 * c, 8);
            memcpy(&a[2], qs + 64 + 4 * c, 8);
            d0 = _mm512_dpbusd_epi32(d0, _mm512_and_si512(v0, low4), _mm512_set1_epi32(a[0]));
            d1 = _mm512_dpbusd_epi32(d1, _mm512_and_si512(v1, low4), _mm512_set1_epi32(a[1]));
            d2 = _mm512_dpbusd_epi32(d2, _mm512_and_si512(v0, high4), _mm512_set1_epi32(a[2]));
            d3 = _mm512_dpbusd_epi32(d3, _mm512_and_si512(v1, high4), _mm512_set1_epi32(a[3]));
        }
        __m512 dw = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(scales + g * CPU_PANEL)));
        __m512i dot = _mm512_add_epi32(_mm512_add_epi32(d0, d1),
                                       _mm512_srai_epi32(_mm512_add_epi32(d2, d3), 4));
        if (zeros)
            dot = _mm512_sub_epi32(
                dot, _mm512_mullo_epi32(_mm512_cvtepu8_epi32(_mm_load_si128(
                                            (const __m128i *)(zeros + g * CPU_PANEL))),
                                        _mm512_set1_epi32(xa[g].sum)));
        else
            dot = _mm512_sub_epi32(dot, _mm512_set1_epi32(8 * xa[g].sum));
        __m512 s = _mm512_mul_ps(dw, _mm512_set1_ps(xa[g].d));
        acc = _mm512_add_ps(acc, _mm512_mul_ps(s, _mm512_cvtepi32_ps(dot)));
    }
    _mm512_mask_storeu_ps(y, rows_mask, acc);
}

static void matmul_w4a8_avx512(float *y, const p3_block_q8g *xa, const cpu_weight *w, int n_tokens,
                               int64_t p0, int64_t p1) {
    int64_t ng = w->n_groups, rows = w->pub.rows;
    size_t ys = (size_t)rows;
    for (int64_t p = p0; p < p1; p++) {
        cpu_panel pn = cpu_panel_of(w, p);
        __mmask16 m = tail_mask(pn.rows);
        float *yp = y + p * CPU_PANEL;
        if (n_tokens == 1) {
            panel_gemv(yp, xa, ng, pn.data, pn.scales, pn.zeros, m);
            continue;
        }
        int t = 0;
        for (; t + TOKEN_TILE <= n_tokens; t += TOKEN_TILE)
            panel_tile(yp + (size_t)t * ys, ys, xa + (size_t)t * (size_t)ng, ng, pn.data, pn.scales,
                       pn.zeros, TOKEN_TILE, m);
        int rest = n_tokens - t;
        const p3_block_q8g *xr = xa + (size_t)t * (size_t)ng;
        float *yr = yp + (size_t)t * ys;
        switch (rest) {
        case 15:
            panel_tile(yr, ys, xr, ng, pn.data, pn.scales, pn.zeros, 15, m);
            break;
        case 14:
            panel_tile(yr, ys, xr, ng, pn.data, pn.scales, pn.zeros, 14, m);
            break;
        case 13:
            panel_tile(yr, ys, xr, ng, pn.data, pn.scales, pn.zeros, 13, m);
            break;
        case 12:
            panel_tile(yr, ys, xr, ng, pn.data, pn.scales, pn.zeros, 12, m);
            break;
        case 11:
            panel_tile(yr, ys, xr, ng, pn.data, pn.scales, pn.zeros, 11, m);
            break;
        case 10:
            panel_tile(yr, ys, xr, ng, pn.data, pn.scales, pn.zeros, 10, m);
            break;
        case 9:
            panel_tile(yr, ys, xr, ng, pn.data, pn.scales, pn.zeros, 9, m);
            break;
        case 8:
            panel_tile(yr, ys, xr, ng, pn.data, pn.scales, pn.zeros, 8, m);
            break;
        case 7:
            panel_tile(yr, ys, xr, ng, pn.data, pn.scales, pn.zeros, 7, m);
            break;
        case 6:
            panel_tile(yr, ys, xr, ng, pn.data, pn.scales, pn.zeros, 6, m);
            break;
        case 5:
            panel_tile(yr, ys, xr, ng, pn.data, pn.scales, pn.zeros, 5, m);
            break;
        case 4:
            panel_tile(yr, ys, xr, ng, pn.data, pn.scales, pn.zeros, 4, m);
            break;
        case 3:
            panel_tile(yr, ys, xr, ng, pn.data, pn.scales, pn.zeros, 3, m);
            break;
        case 2:
            panel_tile(yr, ys, xr, ng, pn.data, pn.scales, pn.zeros, 2, m);
            break;
        case 1:
            panel_tile(yr, ys, xr, ng, pn.data, pn.scales, pn.zeros, 1, m);
            break;
        default:
            break;
        }
    }
}

/* ---- f32 / f16 / bf16 weights */

static inline __m512 load_w(const void *row, p3_dtype dt, int64_t k, __mmask16 m) {
    if (dt == P3_DT_F32) return _mm512_maskz_loadu_ps(m, (const float *)row + k);
    __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)row + k);
    if (dt == P3_DT_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* NT <= 8 tokens x one weight row: one 16-lane accumulator per token, reduced at the end (each
 * token's sum is the same whatever NT, so any split of the tokens gives the same bits). */
static inline __attribute__((always_inline)) void plain_tile(float *y, size_t ys, const float *x,
                                                             size_t xs, const void *row,
                                                             p3_dtype dt, int64_t cols, int NT) {
    __m512 acc[8];
#pragma GCC unroll 16
    for (int i = 0; i < NT; i++) acc[i] = _mm512_setzero_ps();
    for (int64_t k = 0; k < cols; k += 16) {
        __mmask16 m = tail_mask((int)(cols - k));
        __m512 wv = load_w(row, dt, k, m);
#pragma GCC unroll 16
        for (int i = 0; i < NT; i++)
            acc[i] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, x + (size_t)i * xs + k), wv, acc[i]);
    }
#pragma GCC unroll 16
    for (int i = 0; i < NT; i++) y[(size_t)i * ys] = _mm512_reduce_add_ps(acc[i]);
}

/* plain_tile for two weight rows at once: each activation load feeds two FMAs (the loads, not
 * the FMAs, bound the one-row tile when several tokens share it). Each row's sum is computed
 * exactly as by plain_tile. */
static inline __attribute__((always_inline)) void plain_tile2(float *y, size_t ys, const float *x,
                                                              size_t xs, const void *row0,
                                                              const void *row1, p3_dtype dt,
                                                              int64_t cols, int NT) {
    __m512 acc0[8], acc1[8];
#pragma GCC unroll 16
    for (int i = 0; i < NT; i++) acc0[i] = acc1[i] = _mm512_setzero_ps();
    for (int64_t k = 0; k < cols; k += 16) {
        __mmask16 m = tail_mask((int)(cols - k));
        __m512 w0 = load_w(row0, dt, k, m), w1 = load_w(row1, dt, k, m);
#pragma GCC unroll 16
        for (int i = 0; i < NT; i++) {
            __m512 xv = _mm512_maskz_loadu_ps(m, x + (size_t)i * xs + k);
            acc0[i] = _mm512_fmadd_ps(xv, w0, acc0[i]);
            acc1[i] = _mm512_fmadd_ps(xv, w1, acc1[i]);
        }
    }
#pragma GCC unroll 16
    for (int i = 0; i < NT; i++) {
        y[(size_t)i * ys] = _mm512_reduce_add_ps(acc0[i]);
        y[(size_t)i * ys + 1] = _mm512_reduce_add_ps(acc1[i]);
    }
}

/* Tiles of NT tokens for rows n0..n1, two rows at a time. */
static inline __attribute__((always_inline)) void plain_rows(float *y, size_t ys, const float *x,
                                                             size_t xs, const cpu_weight *w,
                                                             int64_t n0, int64_t n1, int NT) {
    int64_t n = n0;
    for (; n + 2 <= n1; n += 2)
        plain_tile2(y + n, ys, x, xs, w->data + (size_t)n * w->row_bytes,
                    w->data + (size_t)(n + 1) * w->row_bytes, w->pub.dtype, w->pub.cols, NT);
    if (n < n1)
        plain_tile(y + n, ys, x, xs, w->data + (size_t)n * w->row_bytes, w->pub.dtype, w->pub.cols,
                   NT);
}

static void matmul_plain_avx512(float *y, const float *x, const cpu_weight *w, int n_tokens,
                                int64_t n0, int64_t n1) {
    size_t rows = (size_t)w->pub.rows, cols = (size_t)w->pub.cols;
    int t = 0;
    /* tiles of 8 tokens, then one of the rest: a row is loaded and widened once per tile (a few
     * tokens at a time, as a lookup verification feeds, then cost little more than one) */
    for (; t + 8 <= n_tokens; t += 8)
        plain_rows(y + (size_t)t * rows, rows, x + (size_t)t * cols, cols, w, n0, n1, 8);
    float *yt = y + (size_t)t * rows;
    const float *xt = x + (size_t)t * cols;
    /* NT as a constant, so the accumulators stay in registers */
#define PLAIN_CASE(NT)                                                                             \
    case NT:                                                                                       \
        plain_rows(yt, rows, xt, cols, w, n0, n1, NT);                                             \
        break;
    switch (n_tokens - t) {
        PLAIN_CASE(1)
        PLAIN_CASE(2)
        PLAIN_CASE(3)
        PLAIN_CASE(4)
        PLAIN_CASE(5)
        PLAIN_CASE(6)
        PLAIN_CASE(7)
    default:
        break;
    }
#undef PLAIN_CASE
}

/* ---- INT4 weights x f32 activations (w4a32): exact dequantized weights, FMA dot */

/* 16 weights q[16*i .. 16*i+15] of a block as f32 (q - z) * d. */
static inline __m512 dequant16(const uint8_t *qs, int i, __m512i z, __m512 d) {
    __m512i q = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(qs + 16 * (i & 3))));
    q = i < 4 ? _mm512_and_si512(q, _mm512_set1_epi32(0x0f)) : _mm512_srli_epi32(q, 4);
    return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(q, z)), d);
}

static inline __attribute__((always_inline)) void w4a32_tile(float *y, size_t ys, const float *x,
                                                             size_t xs, const uint8_t *row,
                                                             bool asym, int64_t cols, int NT) {
    __m512 acc[4];
#pragma GCC unroll 16
    for (int i = 0; i < NT; i++) acc[i] = _mm512_setzero_ps();
    size_t bb = asym ? sizeof(p3_block_i4a) : sizeof(p3_block_i4s);
    for (int64_t g = 0; g * P3_QK < cols; g++) {
        const uint8_t *blk = row + (size_t)g * bb;
        uint16_t d16;
        memcpy(&d16, blk, 2);
        __m512 d = _mm512_set1_ps(p3_f16_to_f32(d16));
        __m512i z = _mm512_set1_epi32(asym ? blk[2] : 8);
        const uint8_t *qs = blk + (asym ? 4 : 2);
        for (int i = 0; i < 8; i++) {
            int64_t k = g * P3_QK + 16 * i;
            if (k >= cols) break;
            __mmask16 m = tail_mask((int)(cols - k));
            __m512 wv = dequant16(qs, i, z, d);
#pragma GCC unroll 16
            for (int t = 0; t < NT; t++)
                acc[t] =
                    _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, x + (size_t)t * xs + k), wv, acc[t]);
        }
    }
#pragma GCC unroll 16
    for (int i = 0; i < NT; i++) y[(size_t)i * ys] = _mm512_reduce_add_ps(acc[i]);
}

static void matmul_w4a32_avx512(float *y, const float *x, const cpu_weight *w, int n_tokens,
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

/* ---- attention: the reference's two passes (scores, then exp and weighted values in position
 * order), vectorised over head_dim and over positions for exp: bit-identical to the reference. */

/* Vector i of row `pos` of the job's head as f32, zero past head_dim. */
static inline __attribute__((always_inline)) __m512
kv_vec(const cpu_kv *kv, const uint8_t *base, const float *scale, size_t idx, int hd, int i) {
    __mmask16 m = tail_mask(hd - 16 * i);
    const uint8_t *src = base + idx * (size_t)hd * kv->elem;
    switch (kv->pub.desc.dtype) {
    case P3_KV_F32:
        return _mm512_maskz_loadu_ps(m, (const float *)src + 16 * i);
    case P3_KV_F16:
        return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const uint16_t *)src + 16 * i));
    default: {
        __m128i b = _mm_maskz_loadu_epi8(m, (const int8_t *)src + 16 * i);
        return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(b)),
                             _mm512_set1_ps(scale[idx]));
    }
    }
}

/* s[j] = p3_ref_attn_weight(s[j] - m) for j < n. */
static inline void softmax_weights512(float *s, int n, float m) {
    __m512 mv = _mm512_set1_ps(m), cut = _mm512_set1_ps(P3_ATTN_MIN_ARG);
    for (int j = 0; j < n; j += 16) {
        __mmask16 mk = tail_mask(n - j);
        __m512 x = _mm512_sub_ps(_mm512_maskz_loadu_ps(mk, s + j), mv);
        __mmask16 keep = ~_mm512_cmp_ps_mask(x, cut, _CMP_LT_OQ); /* NaN kept, as in the ref */
        _mm512_mask_storeu_ps(s + j, mk, _mm512_maskz_mov_ps(keep, exp512(_mm512_max_ps(cut, x))));
    }
}

/* NV vectors per head (a compile-time constant after inlining, so q and the sums stay in
 * registers); positions of one head are consecutive in the cache. */
static inline __attribute__((always_inline)) void attend_nv(const cpu_attn_job *job, int NV) {
    const cpu_kv *kv = job->kv;
    int hd = kv->pub.desc.head_dim, n = job->hi - job->lo + 1;
    size_t idx0 = cpu_kv_index(kv, job->layer, job->kv_head, job->lo);
    float *s = job->scores;
    __m512 q[32], acc[32];
#pragma GCC unroll 32
    for (int i = 0; i < NV; i++) {
        q[i] = _mm512_maskz_loadu_ps(tail_mask(hd - 16 * i), job->q + 16 * i);
        acc[i] = _mm512_setzero_ps();
    }
    float m = -INFINITY;
    for (int j = 0; j < n; j++) {
        __m512 d = _mm512_setzero_ps();
#pragma GCC unroll 32
        for (int i = 0; i < NV; i++)
            d = _mm512_fmadd_ps(q[i], kv_vec(kv, kv->k, kv->k_scale, idx0 + (size_t)j, hd, i), d);
        s[j] = lanes_sum(d) * job->scale;
        m = s[j] > m ? s[j] : m;
    }
    softmax_weights512(s, n, m);
    float sum = 0.0f;
    for (int j = 0; j < n; j++) {
        sum += s[j];
        __m512 e = _mm512_set1_ps(s[j]);
#pragma GCC unroll 32
        for (int i = 0; i < NV; i++)
            acc[i] = _mm512_add_ps(
                acc[i], _mm512_mul_ps(e, kv_vec(kv, kv->v, kv->v_scale, idx0 + (size_t)j, hd, i)));
    }
    __m512 sv = _mm512_set1_ps(sum);
#pragma GCC unroll 32
    for (int i = 0; i < NV; i++)
        _mm512_mask_storeu_ps(job->out + 16 * i, tail_mask(hd - 16 * i), _mm512_div_ps(acc[i], sv));
}

static void attend_avx512(const cpu_attn_job *job) {
    switch ((job->kv->pub.desc.head_dim + 15) / 16) {
    case 1:
        attend_nv(job, 1);
        break;
    case 2:
        attend_nv(job, 2);
        break;
    case 3:
        attend_nv(job, 3);
        break;
    case 4:
        attend_nv(job, 4);
        break;
    case 5:
        attend_nv(job, 5);
        break;
    case 6:
        attend_nv(job, 6);
        break;
    case 7:
        attend_nv(job, 7);
        break;
    case 8:
        attend_nv(job, 8);
        break;
    default:
        cpu_attend_scalar(job);
        break; /* head_dim > 128: exact, not tuned */
    }
}

/* T query tokens (consecutive positions) x NV vectors: each key and value row is loaded once
 * for all of them; each token's arithmetic is attend_nv's, in the same order. */
static inline __attribute__((always_inline)) void attend_tile_nv(const cpu_attn_job *jobs, int T,
                                                                 int NV) {
    const cpu_kv *kv = jobs[0].kv;
    int hd = kv->pub.desc.head_dim, jlo = jobs[0].lo, jhi = jobs[T - 1].hi;
    size_t idx0 = cpu_kv_index(kv, jobs[0].layer, jobs[0].kv_head, 0);
    __m512 q[4][8], acc[4][8];
    float m[4], sum[4];
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) {
        m[t] = -INFINITY;
        sum[t] = 0.0f;
#pragma GCC unroll 8
        for (int i = 0; i < NV; i++) {
            q[t][i] = _mm512_maskz_loadu_ps(tail_mask(hd - 16 * i), jobs[t].q + 16 * i);
            acc[t][i] = _mm512_setzero_ps();
        }
    }
    /* scores 16 keys at a time: the 16 dot vectors of a token are summed by one reduce16 (the
     * lanes_sum tree for each) instead of 16 horizontal sums, which bound the tile */
    for (int j0 = jlo; j0 <= jhi; j0 += 16) {
        int nk = P3_MIN(16, jhi - j0 + 1);
        __m512 d[4][16];
        for (int kk = 0; kk < nk; kk++) {
            __m512 row[8];
#pragma GCC unroll 8
            for (int i = 0; i < NV; i++)
                row[i] = kv_vec(kv, kv->k, kv->k_scale, idx0 + (size_t)(j0 + kk), hd, i);
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) {
                __m512 dt = _mm512_setzero_ps();
#pragma GCC unroll 8
                for (int i = 0; i < NV; i++) dt = _mm512_fmadd_ps(q[t][i], row[i], dt);
                d[t][kk] = dt;
            }
        }
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) {
            for (int kk = nk; kk < 16; kk++) d[t][kk] = _mm512_setzero_ps();
            float sc[16];
            _mm512_storeu_ps(sc, _mm512_mul_ps(reduce16(d[t]), _mm512_set1_ps(jobs[t].scale)));
            int lo = P3_MAX(j0, jobs[t].lo), hi = P3_MIN(j0 + nk - 1, jobs[t].hi);
            for (int j = lo; j <= hi; j++) {
                jobs[t].scores[j - jobs[t].lo] = sc[j - j0];
                m[t] = sc[j - j0] > m[t] ? sc[j - j0] : m[t];
            }
        }
    }
    for (int t = 0; t < T; t++) {
        int n = jobs[t].hi - jobs[t].lo + 1;
        float *s = jobs[t].scores;
        softmax_weights512(s, n, m[t]);
    }
    for (int j = jlo; j <= jhi; j++) {
        __m512 row[8];
#pragma GCC unroll 8
        for (int i = 0; i < NV; i++)
            row[i] = kv_vec(kv, kv->v, kv->v_scale, idx0 + (size_t)j, hd, i);
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) {
            if (j < jobs[t].lo || j > jobs[t].hi) continue;
            float e = jobs[t].scores[j - jobs[t].lo];
            sum[t] += e;
            __m512 ev = _mm512_set1_ps(e);
#pragma GCC unroll 8
            for (int i = 0; i < NV; i++)
                acc[t][i] = _mm512_add_ps(acc[t][i], _mm512_mul_ps(ev, row[i]));
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) {
        __m512 sv = _mm512_set1_ps(sum[t]);
#pragma GCC unroll 8
        for (int i = 0; i < NV; i++)
            _mm512_mask_storeu_ps(jobs[t].out + 16 * i, tail_mask(hd - 16 * i),
                                  _mm512_div_ps(acc[t][i], sv));
    }
}

/* Token tiles for head sizes up to 96 (4 tokens) and 128 (2 tokens): what fits the registers. */
static void attend_tile_avx512(const cpu_attn_job *jobs, int n) {
    int nv = (jobs[0].kv->pub.desc.head_dim + 15) / 16;
    if (nv > 8) {
        for (int k = 0; k < n; k++) attend_avx512(&jobs[k]);
        return;
    }
    int T = nv <= 6 ? 4 : 2;
    for (int k = 0; k < n; k += T) {
        int r = P3_MIN(T, n - k);
        const cpu_attn_job *jb = jobs + k;
#define TILE_CASE(NVc)                                                                             \
    case NVc:                                                                                      \
        if (r == 4)                                                                                \
            attend_tile_nv(jb, 4, NVc);                                                            \
        else if (r == 3)                                                                           \
            attend_tile_nv(jb, 3, NVc);                                                            \
        else if (r == 2)                                                                           \
            attend_tile_nv(jb, 2, NVc);                                                            \
        else                                                                                       \
            attend_avx512(jb);                                                                     \
        break;
        switch (nv) {
            TILE_CASE(1)
            TILE_CASE(2)
            TILE_CASE(3)
            TILE_CASE(4)
            TILE_CASE(5)
            TILE_CASE(6)
            TILE_CASE(7)
            TILE_CASE(8)
        default:
            break;
        }
#undef TILE_CASE
    }
}

const cpu_isa cpu_isa_avx512 = {
    .name = "avx512-vnni",
    .matmul_plain = matmul_plain_avx512,
    .matmul_w4a32 = matmul_w4a32_avx512,
    .quantize_act = quantize_act_avx512,
    .matmul_w4a8 = matmul_w4a8_avx512,
    .attend = attend_avx512,
    .attend_tile = attend_tile_avx512,
    .rmsnorm_row = rmsnorm_row_avx512,
    .swiglu_row = swiglu_row_avx512,
    .add = add_avx512,
    .store_f16 = store_f16_avx512,
};
