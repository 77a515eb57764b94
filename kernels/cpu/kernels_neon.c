/* kernels_neon.c: the CPU backend's NEON level for aarch64 with the dot-product extension (sdot):
 * INT4 panels x int8 activations, FMA matmul for f32/f16/bf16 weights, vector row ops. Attention
 * uses the portable kernel. Compiled with -march=armv8.2-a+dotprod, used only when HWCAP says so.
 */
#include "cpu.h"
#include "ref.h"

#include <arm_neon.h>
#include <math.h>
#include <string.h>

/* ---- activations to int8 groups: bit-identical to p3_quantize_act_q8g */

static void quantize_act_neon(const float *x, int64_t k, p3_block_q8g *out) {
    for (int64_t g = 0; g * P3_QK < k; g++) {
        float v[P3_QK] = {0};
        int n = (int)P3_MIN((int64_t)P3_QK, k - g * P3_QK);
        memcpy(v, x + g * P3_QK, (size_t)n * sizeof(float));
        p3_block_q8g *b = &out[g];
        float32x4_t amax = vdupq_n_f32(0.0f);
        for (int i = 0; i < P3_QK; i += 4) amax = vmaxq_f32(amax, vabsq_f32(vld1q_f32(v + i)));
        float m = vmaxvq_f32(amax);
        b->d = m / 127.0f;
        b->sum = 0;
        if (m == 0.0f) {
            memset(b->qs, 0, sizeof b->qs);
            continue;
        }
        float32x4_t inv = vdupq_n_f32(1.0f / b->d);
        int32x4_t sum = vdupq_n_s32(0);
        for (int i = 0; i < P3_QK; i += 8) {
            int32x4_t q0 = vcvtnq_s32_f32(vmulq_f32(vld1q_f32(v + i), inv));
            int32x4_t q1 = vcvtnq_s32_f32(vmulq_f32(vld1q_f32(v + i + 4), inv));
            sum = vaddq_s32(sum, vaddq_s32(q0, q1));
            int16x8_t h = vcombine_s16(vmovn_s32(q0), vmovn_s32(q1));
            vst1_s8(b->qs + i, vmovn_s16(h));
        }
        b->sum = vaddvq_s32(sum);
    }
}

/* ---- INT4 panels x int8 activations */

/* NT tokens x one panel; acc[t][16] f32 sums in the reference's group order. */
static inline __attribute__((always_inline)) void
panel_tokens(float *y, size_t ys, const p3_block_q8g *xa, int64_t ng, const uint8_t *data,
             const uint16_t *sc, const uint8_t *zp, int NT, int valid) {
    const uint8x16_t low4 = vdupq_n_u8(0x0f);
    float acc[4][CPU_PANEL];
    memset(acc, 0, sizeof acc);
    for (int64_t g = 0; g < ng; g++) {
        const uint8_t *src = data + (size_t)g * CPU_GROUP_BYTES;
        int32x4_t d[4][4];
#pragma GCC unroll 4
        for (int i = 0; i < NT; i++)
            for (int r = 0; r < 4; r++) d[i][r] = vdupq_n_s32(0);
        for (int c = 0; c < P3_QK / 8; c += 4) {
            int8x16_t alo[4], ahi[4];
#pragma GCC unroll 4
            for (int i = 0; i < NT; i++) {
                const int8_t *qs = xa[(size_t)i * (size_t)ng + (size_t)g].qs;
                alo[i] = vld1q_s8(qs + 4 * c);
                ahi[i] = vld1q_s8(qs + 64 + 4 * c);
            }
#pragma GCC unroll 4
            for (int cc = 0; cc < 4; cc++) {
                const uint8_t *p = src + (c + cc) * CPU_CHUNK;
#pragma GCC unroll 4
                for (int r = 0; r < 4; r++) {
                    uint8x16_t v = vld1q_u8(p + 16 * r);
                    int8x16_t lo = vreinterpretq_s8_u8(vandq_u8(v, low4));
                    int8x16_t hi = vreinterpretq_s8_u8(vshrq_n_u8(v, 4));
#pragma GCC unroll 4
                    for (int i = 0; i < NT; i++) {
                        switch (cc) {
                        case 0:
                            d[i][r] = vdotq_laneq_s32(d[i][r], lo, alo[i], 0);
                            d[i][r] = vdotq_laneq_s32(d[i][r], hi, ahi[i], 0);
                            break;
                        case 1:
                            d[i][r] = vdotq_laneq_s32(d[i][r], lo, alo[i], 1);
                            d[i][r] = vdotq_laneq_s32(d[i][r], hi, ahi[i], 1);
                            break;
                        case 2:
                            d[i][r] = vdotq_laneq_s32(d[i][r], lo, alo[i], 2);
                            d[i][r] = vdotq_laneq_s32(d[i][r], hi, ahi[i], 2);
                            break;
                        default:
                            d[i][r] = vdotq_laneq_s32(d[i][r], lo, alo[i], 3);
                            d[i][r] = vdotq_laneq_s32(d[i][r], hi, ahi[i], 3);
                            break;
                        }
                    }
                }
            }
        }
        const uint16_t *s16 = sc + g * CPU_PANEL;
        for (int r = 0; r < 4; r++) {
            float16x4_t h;
            memcpy(&h, s16 + 4 * r, sizeof h);
            float32x4_t dw = vcvt_f32_f16(h);
            int32x4_t z = vdupq_n_s32(8);
            if (zp) {
                const uint8_t *zz = zp + g * CPU_PANEL + 4 * r;
                int32_t zv[4] = {zz[0], zz[1], zz[2], zz[3]};
                z = vld1q_s32(zv);
            }
#pragma GCC unroll 4
            for (int i = 0; i < NT; i++) {
                const p3_block_q8g *a = &xa[(size_t)i * (size_t)ng + (size_t)g];
                int32x4_t dot = vsubq_s32(d[i][r], vmulq_n_s32(z, a->sum));
                float32x4_t s = vmulq_n_f32(dw, a->d);
                float32x4_t yv = vld1q_f32(acc[i] + 4 * r);
                vst1q_f32(acc[i] + 4 * r, vaddq_f32(yv, vmulq_f32(s, vcvtq_f32_s32(dot))));
            }
        }
    }
    for (int i = 0; i < NT; i++) memcpy(y + (size_t)i * ys, acc[i], (size_t)valid * 4);
}

static void matmul_w4a8_neon(float *y, const p3_block_q8g *xa, const cpu_weight *w, int n_tokens,
                             int64_t p0, int64_t p1) {
    int64_t ng = w->n_groups, rows = w->pub.rows;
    size_t ys = (size_t)rows;
    for (int64_t p = p0; p < p1; p++) {
        cpu_panel pn = cpu_panel_of(w, p);
        float *yp = y + p * CPU_PANEL;
        int t = 0;
        for (; t + 4 <= n_tokens; t += 4)
            panel_tokens(yp + (size_t)t * ys, ys, xa + (size_t)t * (size_t)ng, ng, pn.data,
                         pn.scales, pn.zeros, 4, pn.rows);
        for (; t < n_tokens; t++)
            panel_tokens(yp + (size_t)t * ys, ys, xa + (size_t)t * (size_t)ng, ng, pn.data,
                         pn.scales, pn.zeros, 1, pn.rows);
    }
}

/* ---- f32 / f16 / bf16 weights: one row x one token, 4-lane FMA, tail zero padded */

static inline float32x4_t load_w4(const void *row, p3_dtype dt, int64_t k) {
    if (dt == P3_DT_F32) return vld1q_f32((const float *)row + k);
    uint16x4_t h = vld1_u16((const uint16_t *)row + k);
    if (dt == P3_DT_F16) return vcvt_f32_f16(vreinterpret_f16_u16(h));
    return vreinterpretq_f32_u32(vshll_n_u16(h, 16));
}

static void matmul_plain_neon(float *y, const float *x, const cpu_weight *w, int n_tokens,
                              int64_t n0, int64_t n1) {
    size_t rows = (size_t)w->pub.rows, cols = (size_t)w->pub.cols;
    p3_dtype dt = w->pub.dtype;
    for (int64_t n = n0; n < n1; n++) {
        const void *row = w->data + (size_t)n * w->row_bytes;
        for (int t = 0; t < n_tokens; t++) {
            const float *xt = x + (size_t)t * cols;
            float32x4_t acc = vdupq_n_f32(0.0f);
            int64_t k = 0;
            for (; k + 4 <= (int64_t)cols; k += 4)
                acc = vfmaq_f32(acc, vld1q_f32(xt + k), load_w4(row, dt, k));
            float tail = 0.0f;
            for (; k < (int64_t)cols; k++) {
                float wk = dt == P3_DT_F32   ? ((const float *)row)[k]
                           : dt == P3_DT_F16 ? p3_f16_to_f32(((const uint16_t *)row)[k])
                                             : p3_bf16_to_f32(((const uint16_t *)row)[k]);
                tail += xt[k] * wk;
            }
            y[(size_t)t * rows + (size_t)n] = vaddvq_f32(acc) + tail;
        }
    }
}

/* ---- row ops */

/* p3_ref_dot bit for bit: four 4-lane accumulators hold the reference's 16 partial sums. */
static float dot_spec(const float *a, const float *b, int n) {
    float32x4_t acc[4] = {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f),
                          vdupq_n_f32(0.0f)};
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 4; k++)
            acc[k] = vfmaq_f32(acc[k], vld1q_f32(a + i + 4 * k), vld1q_f32(b + i + 4 * k));
    if (i < n) {
        float ta[16] = {0}, tb[16] = {0};
        memcpy(ta, a + i, (size_t)(n - i) * sizeof(float));
        memcpy(tb, b + i, (size_t)(n - i) * sizeof(float));
        for (int k = 0; k < 4; k++)
            acc[k] = vfmaq_f32(acc[k], vld1q_f32(ta + 4 * k), vld1q_f32(tb + 4 * k));
    }
    /* the reference's halvings: lanes i and i+8, i and i+4, i and i+2, i and i+1 */
    float32x4_t s4 = vaddq_f32(vaddq_f32(acc[0], acc[2]), vaddq_f32(acc[1], acc[3]));
    float32x2_t s2 = vadd_f32(vget_low_f32(s4), vget_high_f32(s4));
    return vget_lane_f32(s2, 0) + vget_lane_f32(s2, 1);
}

static void rmsnorm_row_neon(float *out, const float *x, const float *w, int dim, float eps) {
    float r = 1.0f / sqrtf(dot_spec(x, x, dim) / (float)dim + eps);
    int i = 0;
    for (; i + 4 <= dim; i += 4)
        vst1q_f32(out + i, vmulq_f32(vmulq_n_f32(vld1q_f32(x + i), r), vld1q_f32(w + i)));
    for (; i < dim; i++) out[i] = x[i] * r * w[i];
}

static void swiglu_row_neon(float *out, const float *gate_up, int dim) {
    p3_ref_swiglu(out, gate_up, 1, dim);
}

static void add_neon(float *x, const float *y, size_t n) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(x + i, vaddq_f32(vld1q_f32(x + i), vld1q_f32(y + i)));
    for (; i < n; i++) x[i] += y[i];
}

static void store_f16_neon(uint16_t *dst, const float *src, int n) {
    int i = 0;
    for (; i + 4 <= n; i += 4)
        vst1_u16(dst + i, vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(src + i))));
    for (; i < n; i++) dst[i] = p3_f32_to_f16(src[i]);
}

const cpu_isa cpu_isa_neon = {
    .name = "neon-dotprod",
    .matmul_plain = matmul_plain_neon,
    .matmul_w4a32 = cpu_matmul_w4a32_scalar,
    .quantize_act = quantize_act_neon,
    .matmul_w4a8 = matmul_w4a8_neon,
    .attend = cpu_attend_scalar,
    .rmsnorm_row = rmsnorm_row_neon,
    .swiglu_row = swiglu_row_neon,
    .add = add_neon,
    .store_f16 = store_f16_neon,
};
