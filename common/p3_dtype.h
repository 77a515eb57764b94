/* p3_dtype.h: tensor element types, the vocabulary every folder shares (loaders produce them,
 * quant/ and the backends consume them): names, row sizes and the few questions asked of a type.
 * It sits in common/ so quant/ and kernels/ need not include a loader header for it. */
#ifndef P3_COMMON_DTYPE_H
#define P3_COMMON_DTYPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Tensor element types. Block formats (Q*, I4*) store whole blocks per row. */
typedef enum p3_dtype {
    P3_DT_F32 = 0,
    P3_DT_F16,
    P3_DT_BF16,
    P3_DT_Q8_0, /* ggml: 32 weights, f16 scale */
    P3_DT_Q4_0, /* ggml: 32 weights, f16 scale, offset-8 nibbles */
    P3_DT_Q4_K, /* ggml k-quants: 256-weight super blocks */
    P3_DT_Q5_K,
    P3_DT_Q6_K,
    P3_DT_I4G128S, /* phi3c: INT4 group 128 symmetric (quant/int4.h) */
    P3_DT_I4G128A, /* phi3c: INT4 group 128 asymmetric (quant/int4.h) */
    P3_DT_I32,
    P3_DT_COUNT
} p3_dtype;

#define P3_QK 128 /* weights per INT4 group, along the input (K) dimension */
/* Bytes of one INT4 block (quant/int4.h asserts its structs have these sizes). */
enum { P3_I4G128S_BLOCK_BYTES = 66, P3_I4G128A_BLOCK_BYTES = 68 };

/* ggml's block formats (ggml-common.h): weights per block and bytes per block. */
enum { P3_QK8_0 = 32, P3_QK4_0 = 32, P3_QK_K = 256 };
enum { P3_Q8_0_BYTES = 2 + P3_QK8_0, P3_Q4_0_BYTES = 2 + P3_QK4_0 / 2 };
enum { P3_Q4_K_BYTES = 2 + 2 + 12 + P3_QK_K / 2 };               /* d, dmin, scales, qs: 144 */
enum { P3_Q5_K_BYTES = 2 + 2 + 12 + P3_QK_K / 8 + P3_QK_K / 2 }; /* + qh: 176 */
enum { P3_Q6_K_BYTES = P3_QK_K / 2 + P3_QK_K / 4 + P3_QK_K / 16 + 2 }; /* ql, qh, scales, d: 210 */

/* phi3c's own INT4 group-128 formats (symmetric or asymmetric). */
static inline bool p3_dtype_is_int4(p3_dtype dtype) {
    return dtype == P3_DT_I4G128S || dtype == P3_DT_I4G128A;
}
/* One float per element: F32, F16 or BF16. */
static inline bool p3_dtype_is_float(p3_dtype dtype) {
    return dtype == P3_DT_F32 || dtype == P3_DT_F16 || dtype == P3_DT_BF16;
}

/* "F32", "BF16", "Q4_K", "I4G128S", ...; "?" for a value outside the enum. */
const char *p3_dtype_name(p3_dtype dtype);
/* Bytes of one row of n_cols elements; fails (returns false) on overflow or when a ggml block
 * format's n_cols is not a multiple of its block size. phi3c's INT4 formats use ceil(n_cols/128)
 * blocks (a shorter last group, zero padded). */
bool p3_dtype_row_bytes(p3_dtype dtype, int64_t n_cols, size_t *bytes);

#endif /* P3_COMMON_DTYPE_H */
