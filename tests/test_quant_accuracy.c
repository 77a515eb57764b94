/* test_quant_accuracy.c: reconstruction error of INT4-g128 against what the format predicts.
 * RTN with step d makes an error spread evenly over [-d/2, d/2], variance d^2/12, with
 * d = max|x| / 8 per group; the tests compute that prediction from the data (or, for Gaussian
 * weights, from the distribution of the maximum of 128 samples) and check the quantizer against
 * it, and check that the search is clearly better than RTN. */
#include "harness.h"
#include "quantize.h"

#include <math.h>
#include <string.h>

typedef struct nmse_pair {
    double rtn, search, predicted_rtn;
} nmse_pair;

static double nmse_of(const float *w, int64_t rows, int64_t cols, p3_quant_method m) {
    size_t bytes;
    p3_quant_matrix_bytes(P3_DT_I4G128S, rows, cols, &bytes);
    uint8_t *q = p3_malloc(bytes);
    float *y = p3_malloc((size_t)cols * sizeof *y);
    p3_error err = {0};
    double e = 0, s = 0;
    if (q && y && p3_quantize_matrix_f32(w, rows, cols, P3_DT_I4G128S, m, 2, q, &err) == PHI3C_OK) {
        size_t rb = bytes / (size_t)rows;
        for (int64_t r = 0; r < rows; r++) {
            p3_dequantize_row_i4s((const p3_block_i4s *)(q + (size_t)r * rb), cols, y);
            for (int64_t j = 0; j < cols; j++) {
                double x = w[r * cols + j];
                e += (x - y[j]) * (x - y[j]);
                s += x * x;
            }
        }
    } else {
        e = INFINITY;
        s = 1;
    }
    p3_free(q);
    p3_free(y);
    return e / s;
}

/* sum over groups of n * (max|x| / 8)^2 / 12, over sum x^2: the uniform-noise prediction. */
static double predicted_rtn_nmse(const float *w, int64_t rows, int64_t cols) {
    double e = 0, s = 0;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t g = 0; g < cols; g += 128) {
            int64_t n = P3_MIN((int64_t)128, cols - g);
            double m = 0;
            for (int64_t j = 0; j < n; j++) {
                double x = w[r * cols + g + j];
                m = fmax(m, fabs(x));
                s += x * x;
            }
            e += (double)n * (m / 8) * (m / 8) / 12;
        }
    return e / s;
}

static nmse_pair measure(const float *w, int64_t rows, int64_t cols) {
    return (nmse_pair){nmse_of(w, rows, cols, P3_QUANT_RTN),
                       nmse_of(w, rows, cols, P3_QUANT_SEARCH), predicted_rtn_nmse(w, rows, cols)};
}

/* E[M^2] / 768 for M the maximum of 128 |N(0,1)| samples: integral of 2m P(M > m) dm. */
static double gaussian_rtn_theory(void) {
    double s = 0, dm = 1e-4;
    for (double m = dm / 2; m < 10; m += dm) s += 2 * m * (1 - pow(erf(m / sqrt(2.0)), 128)) * dm;
    return s / 768;
}

P3_TEST(quant_accuracy_gaussian_matches_theory) {
    enum { ROWS = 256, COLS = 3072 };
    p3_test_rng r;
    p3_test_rng_seed(&r, 77);
    float *w = p3_malloc(ROWS * COLS * sizeof *w);
    for (size_t i = 0; i < ROWS * COLS; i++) w[i] = 0.02f * p3_test_rng_normal(&r);
    nmse_pair p = measure(w, ROWS, COLS);
    double theory = gaussian_rtn_theory(); /* 0.01061 */
    CHECK_MSG(fabs(p.rtn / theory - 1) < 0.05, "RTN NMSE %g vs theory %g", p.rtn, theory);
    CHECK_MSG(fabs(p.rtn / p.predicted_rtn - 1) < 0.05, "RTN NMSE %g vs prediction %g", p.rtn,
              p.predicted_rtn);
    CHECK_MSG(p.search < 0.92 * p.rtn, "search %g vs RTN %g", p.search, p.rtn);
    p3_free(w);
}

P3_TEST(quant_accuracy_real_minilm_weights) {
    size_t n = 0;
    float *w = p3_test_read_file(t, "tests/fixtures/real-weights/minilm-l0-query.f32", &n);
    if (!w) return;
    CHECK_EQ_INT(n, 384 * 384 * sizeof(float));
    nmse_pair p = measure(w, 384, 384);
    /* Real weights are heavier-tailed than Gaussian; the per-group prediction still holds. */
    CHECK_MSG(fabs(p.rtn / p.predicted_rtn - 1) < 0.10, "RTN NMSE %g vs prediction %g", p.rtn,
              p.predicted_rtn);
    CHECK_MSG(p.search < 0.92 * p.rtn, "search %g vs RTN %g", p.search, p.rtn);
    CHECK_MSG(p.rtn < 0.02, "RTN NMSE %g", p.rtn);
    p3_free(w);
}
