/* dtype.c: conversion of any stored tensor to f32 (names and row sizes of the types are in
 * common/p3_dtype.c), including dequantization of ggml's Q8_0, Q4_0 and k-quant blocks (Q4_K, Q5_K,
 * Q6_K), written from the block definitions (ggml-common.h) and checked against the gguf package.
 */
#include "int4.h"
#include "source.h"

#include <string.h>

/* ---- block decoders: each writes one block's weights to y ---- */

static uint16_t load_u16(const uint8_t *p) {
    return (uint16_t)(p[0] | (p[1] << 8));
}
static float load_f16(const uint8_t *p) {
    return p3_f16_to_f32(load_u16(p));
}

/* Q8_0: f16 scale d, 32 int8: y = d * q */
static void decode_q8_0(const uint8_t *b, float *y) {
    float d = load_f16(b);
    for (int j = 0; j < P3_QK8_0; j++) y[j] = (float)(int8_t)b[2 + j] * d;
}

/* Q4_0: f16 scale d, 16 bytes; byte j holds weight j (low nibble) and j + 16 (high), offset 8 */
static void decode_q4_0(const uint8_t *b, float *y) {
    float d = load_f16(b);
    const uint8_t *qs = b + 2;
    for (int j = 0; j < P3_QK4_0 / 2; j++) {
        y[j] = d * (float)((qs[j] & 0x0f) - 8);
        y[j + P3_QK4_0 / 2] = d * (float)((qs[j] >> 4) - 8);
    }
}

/* The 12 scale bytes of Q4_K/Q5_K pack eight 6-bit scales and eight 6-bit mins: sub-blocks 0-3
 * in the low 6 bits of bytes 0-3 (scales) and 4-7 (mins); sub-blocks 4-7 in the nibbles of
 * bytes 8-11 with their top two bits in the high bits of bytes 0-3 / 4-7. */
static void k_scale_min(const uint8_t *s, int j, uint8_t *scale, uint8_t *min) {
    if (j < 4) {
        *scale = s[j] & 63;
        *min = s[j + 4] & 63;
    } else {
        *scale = (uint8_t)((s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4));
        *min = (uint8_t)((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
}

/* Q4_K: 8 sub-blocks of 32; y = d*scale*q - dmin*min. Each 32-byte chunk of qs serves two
 * sub-blocks: low nibbles the first, high nibbles the second. */
static void decode_q4_k(const uint8_t *b, float *y) {
    float d = load_f16(b), dmin = load_f16(b + 2);
    const uint8_t *scales = b + 4, *qs = b + 16;
    for (int sb = 0; sb < 8; sb += 2, qs += 32, y += 64) {
        uint8_t sc, m;
        k_scale_min(scales, sb, &sc, &m);
        float d1 = d * (float)sc, m1 = dmin * (float)m;
        k_scale_min(scales, sb + 1, &sc, &m);
        float d2 = d * (float)sc, m2 = dmin * (float)m;
        for (int l = 0; l < 32; l++) y[l] = d1 * (float)(qs[l] & 0x0f) - m1;
        for (int l = 0; l < 32; l++) y[32 + l] = d2 * (float)(qs[l] >> 4) - m2;
    }
}

/* Q5_K: as Q4_K plus a fifth bit per weight: qh[l] bit sb holds it for weight l of sub-block sb */
static void decode_q5_k(const uint8_t *b, float *y) {
    float d = load_f16(b), dmin = load_f16(b + 2);
    const uint8_t *scales = b + 4, *qh = b + 16, *qs = b + 48;
    for (int sb = 0; sb < 8; sb += 2, qs += 32, y += 64) {
        uint8_t sc, m;
        k_scale_min(scales, sb, &sc, &m);
        float d1 = d * (float)sc, m1 = dmin * (float)m;
        k_scale_min(scales, sb + 1, &sc, &m);
        float d2 = d * (float)sc, m2 = dmin * (float)m;
        for (int l = 0; l < 32; l++) {
            int hi1 = (qh[l] >> sb) & 1, hi2 = (qh[l] >> (sb + 1)) & 1;
            y[l] = d1 * (float)((qs[l] & 0x0f) | (hi1 << 4)) - m1;
            y[32 + l] = d2 * (float)((qs[l] >> 4) | (hi2 << 4)) - m2;
        }
    }
}

/* Q6_K: 16 sub-blocks of 16 with int8 scales; 6-bit q = 4 low bits (ql) + 2 high bits (qh),
 * offset 32. Per 128-weight half: ql[0..64) and qh[0..32); weight l + 32k (k = 0..3) takes the low
 * nibble (k even) or high nibble (k odd) of ql[l + 32 * (k & 1)] and bits 2k..2k+1 of qh[l]. */
static void decode_q6_k(const uint8_t *b, float *y) {
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    float d = load_f16(b + 208);
    for (int half = 0; half < 2; half++, ql += 64, qh += 32, sc += 8, y += 128) {
        for (int l = 0; l < 32; l++) {
            int is = l / 16;
            int q1 = ((ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4)) - 32;
            int q2 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32;
            int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            y[l] = (d * (float)sc[is]) * (float)q1;
            y[l + 32] = (d * (float)sc[is + 2]) * (float)q2;
            y[l + 64] = (d * (float)sc[is + 4]) * (float)q3;
            y[l + 96] = (d * (float)sc[is + 6]) * (float)q4;
        }
    }
}

/* Decodes one whole row of n_cols weights. */
static void decode_row(p3_dtype dtype, const uint8_t *row, int64_t n_cols, float *y) {
    switch (dtype) {
    case P3_DT_F32:
        memcpy(y, row, (size_t)n_cols * 4);
        return;
    case P3_DT_F16:
        for (int64_t j = 0; j < n_cols; j++) y[j] = load_f16(row + 2 * j);
        return;
    case P3_DT_BF16:
        for (int64_t j = 0; j < n_cols; j++) y[j] = p3_bf16_to_f32(load_u16(row + 2 * j));
        return;
    case P3_DT_I32:
        for (int64_t j = 0; j < n_cols; j++) {
            int32_t v;
            memcpy(&v, row + 4 * j, 4);
            y[j] = (float)v;
        }
        return;
    case P3_DT_Q8_0:
        for (int64_t j = 0; j < n_cols / P3_QK8_0; j++)
            decode_q8_0(row + j * P3_Q8_0_BYTES, y + j * P3_QK8_0);
        return;
    case P3_DT_Q4_0:
        for (int64_t j = 0; j < n_cols / P3_QK4_0; j++)
            decode_q4_0(row + j * P3_Q4_0_BYTES, y + j * P3_QK4_0);
        return;
    case P3_DT_Q4_K:
        for (int64_t j = 0; j < n_cols / P3_QK_K; j++)
            decode_q4_k(row + j * P3_Q4_K_BYTES, y + j * P3_QK_K);
        return;
    case P3_DT_Q5_K:
        for (int64_t j = 0; j < n_cols / P3_QK_K; j++)
            decode_q5_k(row + j * P3_Q5_K_BYTES, y + j * P3_QK_K);
        return;
    case P3_DT_Q6_K:
        for (int64_t j = 0; j < n_cols / P3_QK_K; j++)
            decode_q6_k(row + j * P3_Q6_K_BYTES, y + j * P3_QK_K);
        return;
    case P3_DT_I4G128S:
        p3_dequantize_row_i4s((const p3_block_i4s *)(const void *)row, n_cols, y);
        return;
    case P3_DT_I4G128A:
        p3_dequantize_row_i4a((const p3_block_i4a *)(const void *)row, n_cols, y);
        return;
    default:
        return;
    }
}

p3_status p3_tensor_to_f32(const p3_tensor *t, size_t first, size_t count, float *out,
                           p3_error *err) {
    if (!t || (!out && count)) return p3_fail(err, PHI3C_ERR_INVALID_ARG, "tensor_to_f32: NULL");
    if ((unsigned)t->dtype >= P3_DT_COUNT || t->n_dims < 0 || t->n_dims > P3_MAX_DIMS)
        return p3_fail(err, PHI3C_ERR_INVALID_ARG, "%s: bad tensor description", t->name);
    /* rows of the innermost dimension; a 0-d tensor is one row of one element */
    int64_t n_cols = t->n_dims ? t->shape[t->n_dims - 1] : 1;
    uint64_t n_rows = 1;
    for (int i = 0; i + 1 < t->n_dims; i++)
        if (t->shape[i] < 0 || !p3_mul_u64(n_rows, (uint64_t)t->shape[i], &n_rows))
            return p3_fail(err, PHI3C_ERR_INVALID_ARG, "%s: bad shape", t->name);
    size_t row_bytes, total_bytes;
    uint64_t n_elems;
    if (n_cols < 0 || !p3_dtype_row_bytes(t->dtype, n_cols, &row_bytes) ||
        !p3_mul_size(row_bytes, (size_t)n_rows, &total_bytes) ||
        !p3_mul_u64(n_rows, (uint64_t)n_cols, &n_elems))
        return p3_fail(err, PHI3C_ERR_INVALID_ARG, "%s: %s rows of %lld columns are not valid",
                       t->name, p3_dtype_name(t->dtype), (long long)n_cols);
    if (total_bytes > t->nbytes)
        return p3_fail(err, PHI3C_ERR_INVALID_ARG, "%s: shape needs %zu bytes, tensor has %zu",
                       t->name, total_bytes, t->nbytes);
    size_t end;
    if (!p3_add_size(first, count, &end) || end > n_elems)
        return p3_fail(err, PHI3C_ERR_INVALID_ARG, "%s: elements [%zu, +%zu) out of range (%llu)",
                       t->name, first, count, (unsigned long long)n_elems);
    if (count == 0) return PHI3C_OK;
    const uint8_t *data = t->data;
    size_t cols = (size_t)n_cols;
    float *scratch = NULL;
    for (size_t pos = first; pos < end;) {
        size_t row = pos / cols, col = pos % cols, take = P3_MIN(cols - col, end - pos);
        const uint8_t *src = data + row * row_bytes;
        if (take == cols) {
            decode_row(t->dtype, src, n_cols, out + (pos - first));
        } else { /* a partial row: decode it whole, copy the part asked for */
            if (!scratch && !(scratch = p3_malloc(cols * sizeof *scratch)))
                return p3_fail(err, PHI3C_ERR_NOMEM, "%s: out of memory", t->name);
            decode_row(t->dtype, src, n_cols, scratch);
            memcpy(out + (pos - first), scratch + col, take * sizeof *scratch);
        }
        pos += take;
    }
    p3_free(scratch);
    return PHI3C_OK;
}
