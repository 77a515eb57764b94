/* quantize.h: whole-matrix INT4-g128 quantization on several threads (load-time `--quant
 * int4-g128` and `phi3c quantize`). Rows are independent, so the output is identical for any
 * thread count. */
#ifndef P3_QUANT_QUANTIZE_H
#define P3_QUANT_QUANTIZE_H

#include "int4.h"

/* Writes row `row` (cols floats) of the source matrix into `out`. Called from several threads at
 * once, so it must be thread safe (reading a mapped tensor is). */
typedef p3_status (*p3_row_fetch_fn)(void *user, int64_t row, float *out, p3_error *err);
/* Progress, called from the calling thread only; return false to cancel (the quantizer then
 * returns PHI3C_ERR_INTERRUPTED). */
typedef bool (*p3_quant_progress_fn)(void *user, int64_t rows_done, int64_t rows_total);

typedef struct p3_quant_matrix_args {
    int64_t rows, cols;
    p3_dtype fmt; /* P3_DT_I4G128S or P3_DT_I4G128A */
    p3_quant_method method;
    p3_row_fetch_fn fetch;
    void *fetch_user;
    int n_threads;                 /* <= 0: one per online CPU */
    p3_quant_progress_fn progress; /* may be NULL */
    void *progress_user;
} p3_quant_matrix_args;

/* Bytes of the quantized matrix (rows * ceil(cols/128) blocks); false on overflow or a bad fmt. */
bool p3_quant_matrix_bytes(p3_dtype fmt, int64_t rows, int64_t cols, size_t *bytes);

/* Quantizes a->rows rows into out (p3_quant_matrix_bytes bytes, row after row). */
p3_status p3_quantize_matrix(const p3_quant_matrix_args *a, void *out, p3_error *err);

/* Convenience: the source is a row-major f32 array. */
p3_status p3_quantize_matrix_f32(const float *src, int64_t rows, int64_t cols, p3_dtype fmt,
                                 p3_quant_method method, int n_threads, void *out, p3_error *err);

#endif /* P3_QUANT_QUANTIZE_H */
