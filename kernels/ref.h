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
void p3_ref_rmsnorm(float *out, const float *x, const float *w, int n_tokens, int dim, float eps);
/* y = x W^T for W in F32, F16 or BF16 ([rows, cols] row-major), f32 accumulation in k order.
 * INT4 weights use p3_matmul_w4a32_ref / p3_matmul_w4a8_ref (quant/int4.h). */
p3_status p3_ref_matmul(float *y, const float *x, const void *w, p3_dtype dtype, int64_t rows,
                        int64_t cols, int n_tokens);
/* inv_freq: rot_dim/2 host floats. Angle = (float)pos * inv_freq[i]; cos/sin in f32 times mscale. */
void p3_ref_rope(float *qkv, int n_tokens, int pos0, const float *inv_freq, float mscale,
                 int n_heads, int n_kv_heads, int head_dim, int rot_dim);
/* k_cache, v_cache: f32 [n_ctx][n_kv_heads][head_dim] already holding positions < pos0+n_tokens
 * (round them through f16 or q8 first to model a lower-precision cache). Scores q.k*scale,
 * softmax in f32 with max subtraction, keys in position order. */
void p3_ref_attention(float *out, const float *qkv, const float *k_cache, const float *v_cache,
                      int n_tokens, int pos0, const p3_attn_params *p);
/* Stores K and V of qkv rows into f32 caches laid out as above. */
void p3_ref_kv_write(float *k_cache, float *v_cache, const float *qkv, int n_tokens, int pos0,
                     const p3_attn_params *p);
void p3_ref_swiglu(float *out, const float *gate_up, int n_tokens, int dim);
void p3_ref_add(float *x, const float *y, size_t n);

/* inv_freq[i] = 1 / (ext[i] * theta^(2i/rot_dim)) in f32, ext = factors or 1 (factors NULL). */
void p3_rope_inv_freq(float *inv_freq, int rot_dim, float theta, const float *factors);

/* The q8 KV cache format (per head and position: f32 scale d = max|x|/127, int8 values rounded
 * to nearest even); the reference of what a P3_KV_Q8 cache stores. */
void p3_ref_kv_round_q8(float *v, int n);
void p3_ref_kv_round_f16(float *v, int n);

#endif /* P3_KERNELS_REF_H */
