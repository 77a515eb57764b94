/* ref.h: the plain scalar C reference of every op in backend.h, on host arrays. This is the
 * specification: the CPU backend's scalar level calls it, and the conformance suite compares every
 * backend against it. Compiled without fast-math, in straightforward loop order. */
#ifndef P3_KERNELS_REF_H
#define P3_KERNELS_REF_H

#include "backend.h"

/* out[t][:] = row ids[t] of a table in any weight dtype (F32, F16, BF16, I4G128S, I4G128A),
 * dequantized exactly. Fails on an id outside [0, rows). */
p3_status p3_ref_embed(float *out, const void *table, p3_dtype dtype, int64_t rows, int64_t cols,
                       const int32_t *ids, int n_tokens, p3_error *err);
/* Sum of squares with p3_ref_dot, then x * (1 / sqrtf(ss / dim + eps)) * w. */
void p3_ref_rmsnorm(float *out, const float *x, const float *w, int n_tokens, int dim, float eps);
/* y = x W^T for W in F32, F16 or BF16 ([rows, cols] row-major), f32 accumulation in k order.
 * INT4 weights use p3_matmul_w4a32_ref / p3_matmul_w4a8_ref (quant/int4.h). */
p3_status p3_ref_matmul(float *y, const float *x, const void *w, p3_dtype dtype, int64_t rows,
                        int64_t cols, int n_tokens);
/* inv_freq: rot_dim/2 host floats. Angle = (float)pos * inv_freq[i]; cos/sin in f32 times mscale.
 */
void p3_ref_rope(float *qkv, int n_tokens, int pos0, const float *inv_freq, float mscale,
                 int n_heads, int n_kv_heads, int head_dim, int rot_dim);
/* k_cache, v_cache: f32 [n_ctx][n_kv_heads][head_dim] already holding positions < pos0+n_tokens
 * (round them through f16 or q8 first to model a lower-precision cache). Scores
 * p3_ref_dot(q, k) * scale; m = their max; e_j = p3_ref_attn_weight(s_j - m); sum of e_j and,
 * per dim, out = sum of e_j * v_j (mul then add) in position order; finally out / sum. */
void p3_ref_attention(float *out, const float *qkv, const float *k_cache, const float *v_cache,
                      int n_tokens, int pos0, const p3_attn_params *p);
/* Stores K and V of qkv rows into f32 caches laid out as above. */
void p3_ref_kv_write(float *k_cache, float *v_cache, const float *qkv, int n_tokens, int pos0,
                     const p3_attn_params *p);
/* out = g / (1 + p3_ref_expf(-g)) * u. */
void p3_ref_swiglu(float *out, const float *gate_up, int n_tokens, int dim);
void p3_ref_add(float *x, const float *y, size_t n);

/* The two reductions the ops above share, specified so that SIMD code can reproduce them bit for
 * bit (activations feed the int8 quantizer of the w4a8 path, where a one-ulp difference can flip
 * a rounding):
 * p3_ref_dot: 16 partial sums, element i going to lane i % 16 as lane = fmaf(a[i], b[i], lane) in
 * increasing i, then combined by halving: lane[l] += lane[l + w] for w = 8, 4, 2, 1 (l < w).
 * p3_ref_expf: exp(x) for x clamped to [-87.3365478515625, 88.3762626647949] (so 2^n is normal):
 * n = nearbyintf(x * log2(e)), r = fmaf(-n, C2, fmaf(-n, C1, x)) with C1 + C2 = ln 2 (Cody-Waite),
 * a degree-6 polynomial in fmaf (coefficients in ref.c), times 2^n with ldexpf; within 2 ulp of
 * exp. */
float p3_ref_dot(const float *a, const float *b, int n);
float p3_ref_expf(float x);
/* Softmax weight of a score x = s - max <= 0: p3_ref_expf(x), but exactly 0 below
 * P3_ATTN_MIN_ARG. Such a weight is below 2^-92 of the largest one (which is 1), so dropping it
 * changes no f32 output by more than ~1e-28 relative; keeping it would make e * v subnormal, and
 * x86 takes a microcode assist of ~100 cycles per subnormal operation (it made prefill of a
 * model with peaked attention 5x slower). */
#define P3_ATTN_MIN_ARG (-64.0f)
float p3_ref_attn_weight(float x);

/* inv_freq[i] = 1 / (ext[i] * theta^(2i/rot_dim)) in f32, ext = factors or 1 (factors NULL). */
void p3_rope_inv_freq(float *inv_freq, int rot_dim, float theta, const float *factors);

/* The q8 KV cache format (per head and position: f32 scale d = max|x|/127, int8 values rounded
 * to nearest even); the reference of what a P3_KV_Q8 cache stores. */
void p3_ref_kv_round_q8(float *v, int n);
void p3_ref_kv_round_f16(float *v, int n);

#endif /* P3_KERNELS_REF_H */
