/* int4.h: phi3c's INT4 group-128 weight formats and int8 activation groups: the block layouts, the
 * scalar quantizers and dequantizers, and the two reference matmuls every fast kernel is checked
 * against. These are the specification; backends repack the blocks into their own layouts. */
#ifndef P3_QUANT_INT4_H
#define P3_QUANT_INT4_H

#include "p3.h"
#include "p3_dtype.h"

/* Symmetric: w[j] = d * (q[j] - 8), q in 0..15. qs[j] holds q[j] in its low nibble and q[j + 64]
 * in its high nibble (j < 64), so one 64-byte load yields the whole group in two halves.
 * A row of K weights is ceil(K / 128) blocks; a shorter last group is padded with q = 8 (zero). */
typedef struct p3_block_i4s {
    uint16_t d; /* f16 scale */
    uint8_t qs[P3_QK / 2];
} p3_block_i4s;
_Static_assert(sizeof(p3_block_i4s) == P3_I4G128S_BLOCK_BYTES,
               "p3_block_i4s must be 66 bytes (4.125 bits/weight)");

/* Asymmetric: w[j] = d * (q[j] - z), q and z in 0..15, same nibble order; padding uses q = z. */
typedef struct p3_block_i4a {
    uint16_t d;       /* f16 scale */
    uint8_t z;        /* zero point, 0..15 */
    uint8_t reserved; /* always 0 */
    uint8_t qs[P3_QK / 2];
} p3_block_i4a;
_Static_assert(sizeof(p3_block_i4a) == P3_I4G128A_BLOCK_BYTES, "p3_block_i4a must be 68 bytes");

/* int8 activations for the w4a8 path, one block per 128 inputs: x[j] ~= d * qs[j].
 * d = max|x| / 127 over the group; qs[j] = nearbyint(x[j] * (1/d)) in round-to-nearest-even (the
 * rounding SIMD conversions use), 0 when the group is all zero. sum = sum of qs (asym weights
 * need it). A shorter last group is zero padded. */
typedef struct p3_block_q8g {
    float d;
    int32_t sum;
    int8_t qs[P3_QK];
} p3_block_q8g;
_Static_assert(sizeof(p3_block_q8g) == 136, "p3_block_q8g must be 136 bytes");

static inline int64_t p3_groups(int64_t k) {
    return (k + P3_QK - 1) / P3_QK;
}

typedef enum p3_quant_method {
    P3_QUANT_RTN = 0, /* round to nearest with the absmax scale */
    P3_QUANT_SEARCH,  /* per group, the scale that minimises the squared reconstruction error */
} p3_quant_method;

void p3_quantize_row_i4s(const float *x, int64_t k, p3_block_i4s *out, p3_quant_method method);
void p3_dequantize_row_i4s(const p3_block_i4s *in, int64_t k, float *out);
void p3_quantize_row_i4a(const float *x, int64_t k, p3_block_i4a *out, p3_quant_method method);
void p3_dequantize_row_i4a(const p3_block_i4a *in, int64_t k, float *out);
void p3_quantize_act_q8g(const float *x, int64_t k, p3_block_q8g *out);

/* Reference matmuls, y[t][n] = sum_k x[t][k] * W[n][k], for n_tokens rows of x (row-major, K
 * floats each) and W given as n_out rows of ceil(K/128) blocks of `fmt` (P3_DT_I4G128S/A).
 * w4a32: weights dequantized exactly, f32 activations, f32 accumulation in k order.
 * w4a8:  activations quantized with p3_quantize_act_q8g, exact int32 dot per group, then
 *        y += (d_w * d_x) * dot (sym) or d_w * d_x * (dot - z * sum) (asym), groups in order. */
p3_status p3_matmul_w4a32_ref(float *y, const float *x, const void *w, p3_dtype fmt, int64_t n_out,
                              int64_t k, int64_t n_tokens);
p3_status p3_matmul_w4a8_ref(float *y, const float *x, const void *w, p3_dtype fmt, int64_t n_out,
                             int64_t k, int64_t n_tokens);

#endif /* P3_QUANT_INT4_H */
