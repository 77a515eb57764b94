/* int4.c: scalar INT4 group-128 quantizers (round-to-nearest and the per-group error-minimising
 * search), dequantizers, int8 activation groups and the two reference matmuls of quant/int4.h.
 *
 * Method of P3_QUANT_SEARCH (sym and asym alike): for each group, try a grid of candidate scales
 * (sym: the RTN scale shrunk by clipping ratios 1.0, 0.98, ..., 0.60, with the group's extreme
 * value at level -8 or at +7; asym: each end of the range [min, max] shrunk towards 0 by 0, 5, ...,
 * 30%, all 49 pairs); for each candidate round the group, then take the least-squares
 * scale for those integers (d* = <x,p>/<p,p>), whose squared error has the closed form
 * <x,x> - <x,p>^2/<p,p>. The best candidate's d* is rounded to f16, the group re-rounded with that
 * f16 scale, and its exact squared error compared with RTN's: the better of the two is stored, so
 * SEARCH is never worse than RTN on any group. */
#include "int4.h"

#include <math.h>
#include <string.h>

enum { HALF = P3_QK / 2 };

/* ---- nibble packing: element j in the low nibble of qs[j], element j + 64 in the high one */

static void pack_nibbles(const uint8_t *q, uint8_t *qs) {
    for (int j = 0; j < HALF; j++) qs[j] = (uint8_t)(q[j] | (q[j + HALF] << 4));
}

static void unpack_nibbles(const uint8_t *qs, uint8_t *q) {
    for (int j = 0; j < HALF; j++) {
        q[j] = qs[j] & 0x0f;
        q[j + HALF] = qs[j] >> 4;
    }
}

/* NaN-safe: a NaN input lands on lo instead of reaching an undefined float-to-int conversion. */
static float clampf(float v, float lo, float hi) {
    return !(v >= lo) ? lo : (v > hi ? hi : v);
}

/* Rounds x / d to the nearest integer (ties to even) in [lo, hi] (lo >= -16, hi <= 16). Clamping
 * to +-17 first lets the 1.5 * 2^23 trick round exactly like nearbyintf (in [2^23, 2^24) the f32
 * spacing is 1), without a libm call, so the search loops vectorise. */
static float round_level(float x, float inv_d, float lo, float hi) {
    const float magic = 12582912.0f; /* 1.5 * 2^23 */
    float v = clampf(x * inv_d, -17.0f, 17.0f);
    return clampf((v + magic) - magic, lo, hi);
}

/* round_level for the search loops, in integer arithmetic so the compiler vectorises it: adding
 * 1.5 * 2^23 rounds to an integer (ties to even) held in the low mantissa bits, exact for
 * |x / d| < 2^22, far beyond the candidates' range (|x / d| <= 22). Larger or NaN ratios give some
 * clamped level, which only spoils that candidate's ranking, never a stored nibble. */
static float search_level(float x, float inv_d, int32_t lo, int32_t hi) {
    float t = x * inv_d + 12582912.0f;
    uint32_t bits;
    memcpy(&bits, &t, sizeof bits);
    int32_t q = (int32_t)(bits - 0x4B400000u);
    q = q < lo ? lo : q;
    q = q > hi ? hi : q;
    return (float)q;
}

/* ---- symmetric: w = d * (q - 8), q in 0..15 */

/* The group's value of largest magnitude, signed (ties: the first one). */
static float signed_absmax(const float *x, int n) {
    float m = 0.0f;
    for (int j = 0; j < n; j++)
        if (fabsf(x[j]) > fabsf(m)) m = x[j];
    return m;
}

/* Rounds the group with f16 scale `d16` into q (padding q = 8) and returns the exact squared
 * error of the dequantized values. */
static double sym_round(const float *x, int n, uint16_t d16, uint8_t *q) {
    float d = p3_f16_to_f32(d16);
    float inv = d != 0.0f ? 1.0f / d : 0.0f;
    double err = 0.0;
    for (int j = 0; j < P3_QK; j++) {
        if (j >= n) {
            q[j] = 8;
            continue;
        }
        float v = round_level(x[j], inv, -8.0f, 7.0f);
        q[j] = (uint8_t)(v + 8.0f);
        double e = (double)x[j] - (double)(d * v);
        err += e * e;
    }
    return err;
}

/* RTN scale: the signed absmax maps exactly to level -8, so the full 16 levels are used. */
static uint16_t sym_rtn_scale(const float *x, int n) {
    return p3_f32_to_f16(signed_absmax(x, n) / -8.0f);
}

/* <x,p> and <p,p> for the levels p = clamp(round(x / d), lo, hi), in 8 float lanes so the compiler
 * can vectorise (p*p sums are exact integers; <x,p> only ranks candidates). */
static void level_moments(const float *x, int n, float inv, int32_t lo, int32_t hi, double *xp_out,
                          double *pp_out) {
    float xp[8] = {0}, pp[8] = {0};
    int j = 0;
    for (; j + 8 <= n; j += 8) {
        for (int l = 0; l < 8; l++) {
            float p = search_level(x[j + l], inv, lo, hi);
            xp[l] += x[j + l] * p;
            pp[l] += p * p;
        }
    }
    for (int l = 0; j < n; j++, l++) {
        float p = search_level(x[j], inv, lo, hi);
        xp[l] += x[j] * p;
        pp[l] += p * p;
    }
    double sxp = 0.0, spp = 0.0;
    for (int l = 0; l < 8; l++) {
        sxp += xp[l];
        spp += pp[l];
    }
    *xp_out = sxp;
    *pp_out = spp;
}

/* Squared error of the least-squares refit for scale d (closed form); sets *best_d. */
static double sym_candidate(const float *x, int n, float d, double xx, float *best_d) {
    double xp, pp;
    level_moments(x, n, 1.0f / d, -8, 7, &xp, &pp);
    if (pp == 0.0) {
        *best_d = d;
        return xx;
    }
    *best_d = (float)(xp / pp);
    return xx - xp * xp / pp;
}

static uint16_t sym_search_scale(const float *x, int n) {
    float m = signed_absmax(x, n);
    double xx = 0.0;
    for (int j = 0; j < n; j++) xx += (double)x[j] * x[j];
    double best = INFINITY;
    float best_d = m / -8.0f;
    /* Both orientations: the extreme value at level -8 (d of the opposite sign) or at +7. */
    for (int r = 0; r <= 20; r++) {
        float ratio = 1.0f - 0.02f * (float)r;
        float cands[2] = {m * ratio / -8.0f, m * ratio / 7.0f};
        for (int c = 0; c < 2; c++) {
            float d_fit;
            double e = sym_candidate(x, n, cands[c], xx, &d_fit);
            if (e < best) {
                best = e;
                best_d = d_fit;
            }
        }
    }
    /* Alternate rounding and refitting from the best candidate: neither step can increase the
     * error (nearest levels are optimal for a fixed d; the refit is optimal for fixed levels). */
    for (int it = 0; it < 2; it++) {
        float d_fit;
        double e = sym_candidate(x, n, best_d, xx, &d_fit);
        if (!(e < best)) break;
        best = e;
        best_d = d_fit;
    }
    return p3_f32_to_f16(best_d);
}

static void quantize_group_i4s(const float *x, int n, p3_block_i4s *b, p3_quant_method method) {
    uint8_t q[P3_QK];
    if (signed_absmax(x, n) == 0.0f) {
        b->d = 0;
        memset(q, 8, sizeof q);
        pack_nibbles(q, b->qs);
        return;
    }
    uint16_t d16 = sym_rtn_scale(x, n);
    double err = sym_round(x, n, d16, q);
    if (method == P3_QUANT_SEARCH) {
        uint8_t q2[P3_QK];
        uint16_t d2 = sym_search_scale(x, n);
        double err2 = sym_round(x, n, d2, q2);
        if (err2 < err) {
            d16 = d2;
            memcpy(q, q2, sizeof q);
        }
    }
    b->d = d16;
    pack_nibbles(q, b->qs);
}

void p3_quantize_row_i4s(const float *x, int64_t k, p3_block_i4s *out, p3_quant_method method) {
    for (int64_t g = 0; g < p3_groups(k); g++) {
        int64_t start = g * P3_QK;
        int n = (int)P3_MIN((int64_t)P3_QK, k - start);
        quantize_group_i4s(x + start, n, &out[g], method);
    }
}

void p3_dequantize_row_i4s(const p3_block_i4s *in, int64_t k, float *out) {
    uint8_t q[P3_QK];
    for (int64_t g = 0; g < p3_groups(k); g++) {
        float d = p3_f16_to_f32(in[g].d);
        unpack_nibbles(in[g].qs, q);
        int64_t start = g * P3_QK;
        int n = (int)P3_MIN((int64_t)P3_QK, k - start);
        for (int j = 0; j < n; j++) out[start + j] = d * (float)((int)q[j] - 8);
    }
}

/* ---- asymmetric: w = d * (q - z), q and z in 0..15 */

static void min_max(const float *x, int n, float *lo, float *hi) {
    *lo = x[0];
    *hi = x[0];
    for (int j = 1; j < n; j++) {
        *lo = fminf(*lo, x[j]);
        *hi = fmaxf(*hi, x[j]);
    }
}

/* Zero point for range [lo, hi] at scale d: the level that represents 0 (0..15). */
static int asym_zero(float lo, float d) {
    if (!(d > 0.0f)) return 0;
    return (int)clampf(nearbyintf(-lo / d), 0.0f, 15.0f);
}

/* Rounds the group at f16 scale d16 and zero z into q (padding q = z); exact squared error. */
static double asym_round(const float *x, int n, uint16_t d16, int z, uint8_t *q) {
    float d = p3_f16_to_f32(d16);
    float inv = d != 0.0f ? 1.0f / d : 0.0f;
    double err = 0.0;
    for (int j = 0; j < P3_QK; j++) {
        if (j >= n) {
            q[j] = (uint8_t)z;
            continue;
        }
        float v = round_level(x[j], inv, (float)-z, (float)(15 - z));
        q[j] = (uint8_t)(v + (float)z);
        double e = (double)x[j] - (double)(d * v);
        err += e * e;
    }
    return err;
}

/* Least-squares refit of d for the integers of range [lo, hi]; closed-form error. */
static double asym_candidate(const float *x, int n, float lo, float hi, double xx, float *d_fit,
                             int *z_out) {
    float d = (hi - lo) / 15.0f;
    if (!(d > 0.0f)) return INFINITY;
    int z = asym_zero(lo, d);
    double xp, pp;
    level_moments(x, n, 1.0f / d, -z, 15 - z, &xp, &pp);
    *z_out = z;
    if (pp == 0.0) {
        *d_fit = d;
        return xx;
    }
    *d_fit = (float)(xp / pp);
    return xx - xp * xp / pp;
}

static void asym_search(const float *x, int n, float lo, float hi, uint16_t *d16, int *z) {
    double xx = 0.0;
    for (int j = 0; j < n; j++) xx += (double)x[j] * x[j];
    double best = INFINITY;
    float best_d = (hi - lo) / 15.0f;
    int best_z = asym_zero(lo, best_d);
    /* lo <= 0 <= hi: shrink each end towards 0 by 0..30% (no-op ends are tried once). */
    int a_max = lo < 0.0f ? 6 : 0, b_max = hi > 0.0f ? 6 : 0;
    for (int a = 0; a <= a_max; a++) {
        for (int b = 0; b <= b_max; b++) {
            float l = lo * (1.0f - 0.05f * (float)a), h = hi * (1.0f - 0.05f * (float)b);
            float d_fit = 0.0f;
            int zc = 0;
            double e = asym_candidate(x, n, l, h, xx, &d_fit, &zc);
            if (e < best && d_fit > 0.0f) {
                best = e;
                best_d = d_fit;
                best_z = zc;
            }
        }
    }
    for (int it = 0; it < 2; it++) { /* refine as for sym, the zero point kept */
        double xp, pp;
        level_moments(x, n, 1.0f / best_d, -best_z, 15 - best_z, &xp, &pp);
        if (pp == 0.0 || !(xx - xp * xp / pp < best) || !(xp / pp > 0.0)) break;
        best = xx - xp * xp / pp;
        best_d = (float)(xp / pp);
    }
    *d16 = p3_f32_to_f16(best_d);
    *z = best_z;
}

static void quantize_group_i4a(const float *x, int n, p3_block_i4a *b, p3_quant_method method) {
    uint8_t q[P3_QK];
    float lo, hi;
    min_max(x, n, &lo, &hi);
    /* The range always includes 0 so that a zero weight (and the padding) is exact. */
    lo = fminf(lo, 0.0f);
    hi = fmaxf(hi, 0.0f);
    b->reserved = 0;
    if (hi - lo == 0.0f) {
        b->d = 0;
        b->z = 8;
        memset(q, 8, sizeof q);
        pack_nibbles(q, b->qs);
        return;
    }
    uint16_t d16 = p3_f32_to_f16((hi - lo) / 15.0f);
    int z = asym_zero(lo, p3_f16_to_f32(d16));
    double err = asym_round(x, n, d16, z, q);
    if (method == P3_QUANT_SEARCH) {
        uint8_t q2[P3_QK];
        uint16_t d2;
        int z2;
        asym_search(x, n, lo, hi, &d2, &z2);
        double err2 = asym_round(x, n, d2, z2, q2);
        if (err2 < err) {
            d16 = d2;
            z = z2;
            memcpy(q, q2, sizeof q);
        }
    }
    b->d = d16;
    b->z = (uint8_t)z;
    pack_nibbles(q, b->qs);
}

void p3_quantize_row_i4a(const float *x, int64_t k, p3_block_i4a *out, p3_quant_method method) {
    for (int64_t g = 0; g < p3_groups(k); g++) {
        int64_t start = g * P3_QK;
        int n = (int)P3_MIN((int64_t)P3_QK, k - start);
        quantize_group_i4a(x + start, n, &out[g], method);
    }
}

void p3_dequantize_row_i4a(const p3_block_i4a *in, int64_t k, float *out) {
    uint8_t q[P3_QK];
    for (int64_t g = 0; g < p3_groups(k); g++) {
        float d = p3_f16_to_f32(in[g].d);
        int z = in[g].z;
        unpack_nibbles(in[g].qs, q);
        int64_t start = g * P3_QK;
        int n = (int)P3_MIN((int64_t)P3_QK, k - start);
        for (int j = 0; j < n; j++) out[start + j] = d * (float)((int)q[j] - z);
    }
}

/* ---- int8 activation groups */

void p3_quantize_act_q8g(const float *x, int64_t k, p3_block_q8g *out) {
    for (int64_t g = 0; g < p3_groups(k); g++) {
        int64_t start = g * P3_QK;
        int n = (int)P3_MIN((int64_t)P3_QK, k - start);
        p3_block_q8g *b = &out[g];
        float amax = 0.0f;
        for (int j = 0; j < n; j++) amax = fmaxf(amax, fabsf(x[start + j]));
        memset(b->qs, 0, sizeof b->qs);
        b->d = amax / 127.0f;
        b->sum = 0;
        if (amax == 0.0f) continue;
        float inv = 1.0f / b->d;
        for (int j = 0; j < n; j++) {
            b->qs[j] = (int8_t)nearbyintf(x[start + j] * inv);
            b->sum += b->qs[j];
        }
    }
}

/* ---- reference matmuls */

static p3_status check_matmul_args(float *y, const float *x, const void *w, p3_dtype fmt,
                                   int64_t n_out, int64_t k, int64_t n_tokens, const char *what) {
    (void)what;
    if (!y || !x || !w || n_out < 0 || k <= 0 || n_tokens < 0) return PHI3C_ERR_INVALID_ARG;
    if (!p3_dtype_is_int4(fmt)) return PHI3C_ERR_UNSUPPORTED;
    return PHI3C_OK;
}

/* Dot of one f32 row with one weight row, weights dequantized exactly, accumulated in k order. */
static float dot_w4_f32(const float *x, const void *wrow, p3_dtype fmt, int64_t k) {
    uint8_t q[P3_QK];
    float acc = 0.0f;
    for (int64_t g = 0; g < p3_groups(k); g++) {
        float d;
        int z;
        if (fmt == P3_DT_I4G128S) {
            const p3_block_i4s *b = (const p3_block_i4s *)wrow + g;
            d = p3_f16_to_f32(b->d);
            z = 8;
            unpack_nibbles(b->qs, q);
        } else {
            const p3_block_i4a *b = (const p3_block_i4a *)wrow + g;
            d = p3_f16_to_f32(b->d);
            z = b->z;
            unpack_nibbles(b->qs, q);
        }
        int64_t start = g * P3_QK;
        int n = (int)P3_MIN((int64_t)P3_QK, k - start);
        for (int j = 0; j < n; j++) {
            float wv = d * (float)((int)q[j] - z);
            acc += x[start + j] * wv;
        }
    }
    return acc;
}

static size_t w4_row_bytes(p3_dtype fmt, int64_t k) {
    size_t block = fmt == P3_DT_I4G128S ? sizeof(p3_block_i4s) : sizeof(p3_block_i4a);
    return (size_t)p3_groups(k) * block;
}

p3_status p3_matmul_w4a32_ref(float *y, const float *x, const void *w, p3_dtype fmt, int64_t n_out,
                              int64_t k, int64_t n_tokens) {
    p3_status st = check_matmul_args(y, x, w, fmt, n_out, k, n_tokens, "w4a32");
    if (st != PHI3C_OK) return st;
    size_t row_bytes = w4_row_bytes(fmt, k);
    for (int64_t t = 0; t < n_tokens; t++)
        for (int64_t o = 0; o < n_out; o++)
            y[t * n_out + o] =
                dot_w4_f32(x + t * k, (const uint8_t *)w + (size_t)o * row_bytes, fmt, k);
    return PHI3C_OK;
}

/* Dot of one quantized activation row with one weight row: exact int32 per group, f32 across. */
static float dot_w4_q8(const p3_block_q8g *xa, const void *wrow, p3_dtype fmt, int64_t k) {
    uint8_t q[P3_QK];
    float acc = 0.0f;
    for (int64_t g = 0; g < p3_groups(k); g++) {
        const p3_block_q8g *a = &xa[g];
        int32_t dot = 0;
        if (fmt == P3_DT_I4G128S) {
            const p3_block_i4s *b = (const p3_block_i4s *)wrow + g;
            unpack_nibbles(b->qs, q);
            for (int j = 0; j < P3_QK; j++) dot += (int32_t)a->qs[j] * ((int32_t)q[j] - 8);
            acc += (p3_f16_to_f32(b->d) * a->d) * (float)dot;
        } else {
            const p3_block_i4a *b = (const p3_block_i4a *)wrow + g;
            unpack_nibbles(b->qs, q);
            for (int j = 0; j < P3_QK; j++) dot += (int32_t)a->qs[j] * (int32_t)q[j];
            acc += p3_f16_to_f32(b->d) * a->d * (float)(dot - (int32_t)b->z * a->sum);
        }
    }
    return acc;
}

p3_status p3_matmul_w4a8_ref(float *y, const float *x, const void *w, p3_dtype fmt, int64_t n_out,
                             int64_t k, int64_t n_tokens) {
    p3_status st = check_matmul_args(y, x, w, fmt, n_out, k, n_tokens, "w4a8");
    if (st != PHI3C_OK) return st;
    size_t row_bytes = w4_row_bytes(fmt, k);
    p3_block_q8g *xa = p3_malloc((size_t)p3_groups(k) * sizeof *xa);
    if (!xa) return PHI3C_ERR_NOMEM;
    for (int64_t t = 0; t < n_tokens; t++) {
        p3_quantize_act_q8g(x + t * k, k, xa);
        for (int64_t o = 0; o < n_out; o++)
            y[t * n_out + o] = dot_w4_q8(xa, (const uint8_t *)w + (size_t)o * row_bytes, fmt, k);
    }
    p3_free(xa);
    return PHI3C_OK;
}
