/* test_quant.c: INT4-g128 quantizers, int8 activation groups and the reference matmuls, checked
 * against bounds derived from the format definition and against double-precision dot products. */
#include "harness.h"
#include "quantize.h"

#include <math.h>
#include <string.h>

static void fill_normal(p3_test_rng *r, float *x, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) x[i] = scale * p3_test_rng_normal(r);
}

static int nibble(const uint8_t *qs, int j) {
    return j < P3_QK / 2 ? qs[j] & 0x0f : qs[j - P3_QK / 2] >> 4;
}

/* Per element: inside the clip range of scale d (levels lo..hi) the error is at most |d|/2; outside
 * it is the distance to the nearest end level. A relative slack of 1e-6 covers the f32 product. */
static bool element_error_ok(float x, float deq, float d, int lo, int hi) {
    double v = (double)x / d, err = fabs((double)x - deq);
    double ad = fabs(d), slack = 1e-6 * (fabs(x) + ad) + 1e-30;
    if (v >= lo - 0.5 && v <= hi + 0.5) return err <= ad / 2 + slack;
    double end = v < lo ? (double)lo * d : (double)hi * d;
    return fabs(err - fabs((double)x - end)) <= slack;
}

static double group_sq_err(const float *x, const float *y, int n) {
    double e = 0;
    for (int j = 0; j < n; j++) e += ((double)x[j] - y[j]) * ((double)x[j] - y[j]);
    return e;
}

static void check_sym_row(p3_test_ctx *t, const float *x, int64_t k, p3_quant_method m) {
    int64_t ng = p3_groups(k);
    p3_block_i4s *b = p3_malloc((size_t)ng * sizeof *b);
    float *y = p3_malloc((size_t)k * sizeof *y);
    p3_quantize_row_i4s(x, k, b, m);
    p3_dequantize_row_i4s(b, k, y);
    for (int64_t g = 0; g < ng; g++) {
        float d = p3_f16_to_f32(b[g].d);
        int n = (int)P3_MIN(128, k - g * 128);
        if (m == P3_QUANT_RTN) {
            float amax = 0, sm = 0;
            for (int j = 0; j < n; j++)
                if (fabsf(x[g * 128 + j]) > amax) amax = fabsf(sm = x[g * 128 + j]);
            CHECK_MSG(b[g].d == p3_f32_to_f16(sm / -8.0f), "group %lld RTN scale", (long long)g);
        }
        for (int j = 0; j < n; j++) {
            float xv = x[g * 128 + j], yv = y[g * 128 + j];
            int q = nibble(b[g].qs, j);
            if (!CHECK_MSG(yv == d * (float)(q - 8), "dequant formula at %d", j)) break;
            if (!CHECK_MSG(element_error_ok(xv, yv, d, -8, 7), "k=%lld g=%lld j=%d x=%g y=%g d=%g",
                           (long long)k, (long long)g, j, xv, yv, d))
                break;
        }
        for (int j = n; j < 128; j++)
            if (!CHECK_MSG(nibble(b[g].qs, j) == 8, "padding nibble %d is %d", j,
                           nibble(b[g].qs, j)))
                break;
    }
    p3_free(b);
    p3_free(y);
}

static void check_asym_row(p3_test_ctx *t, const float *x, int64_t k, p3_quant_method m) {
    int64_t ng = p3_groups(k);
    p3_block_i4a *b = p3_malloc((size_t)ng * sizeof *b);
    float *y = p3_malloc((size_t)k * sizeof *y);
    p3_quantize_row_i4a(x, k, b, m);
    p3_dequantize_row_i4a(b, k, y);
    for (int64_t g = 0; g < ng; g++) {
        float d = p3_f16_to_f32(b[g].d);
        int z = b[g].z, n = (int)P3_MIN(128, k - g * 128);
        CHECK(z <= 15 && b[g].reserved == 0);
        for (int j = 0; j < n; j++) {
            float xv = x[g * 128 + j], yv = y[g * 128 + j];
            int q = nibble(b[g].qs, j);
            if (!CHECK_MSG(yv == d * (float)(q - z), "dequant formula at %d", j)) break;
            if (!CHECK_MSG(element_error_ok(xv, yv, d, -z, 15 - z), "g=%lld j=%d x=%g y=%g d=%g",
                           (long long)g, j, xv, yv, d))
                break;
            /* RTN covers [min, max] (and 0), so nothing is clipped by more than rounding. */
            if (m == P3_QUANT_RTN && !CHECK(fabsf(xv - yv) <= fabsf(d) * 0.5001f + 1e-30f)) break;
        }
        for (int j = n; j < 128; j++)
            if (!CHECK_MSG(nibble(b[g].qs, j) == z, "padding nibble %d", j)) break;
    }
    p3_free(b);
    p3_free(y);
}

P3_TEST(quant_i4_roundtrip_bounds) {
    static const int64_t ks[] = {128, 256, 200, 130, 1, 127, 3072};
    p3_test_rng r;
    p3_test_rng_seed(&r, 11);
    for (size_t i = 0; i < P3_ARRAY_LEN(ks); i++) {
        float *x = p3_malloc((size_t)ks[i] * sizeof *x);
        fill_normal(&r, x, (size_t)ks[i], 0.05f);
        if (ks[i] > 5) x[3] = 1.0f; /* an outlier */
        for (int m = P3_QUANT_RTN; m <= P3_QUANT_SEARCH; m++) {
            check_sym_row(t, x, ks[i], (p3_quant_method)m);
            check_asym_row(t, x, ks[i], (p3_quant_method)m);
        }
        p3_free(x);
    }
}

P3_TEST(quant_i4_exact_levels) {
    /* A group holding exactly the 16 levels of scale 0.5 (extreme -4 = level -8) is exact. */
    float x[128], y[128];
    for (int j = 0; j < 128; j++) x[j] = 0.5f * (float)((j % 16) - 8);
    p3_block_i4s b;
    p3_quantize_row_i4s(x, 128, &b, P3_QUANT_RTN);
    CHECK(p3_f16_to_f32(b.d) == 0.5f);
    p3_dequantize_row_i4s(&b, 128, y);
    CHECK(memcmp(x, y, sizeof x) == 0);
    /* All-zero group: scale 0, every nibble 8, exact zeros back. */
    memset(x, 0, sizeof x);
    for (int m = 0; m < 2; m++) {
        p3_quantize_row_i4s(x, 128, &b, (p3_quant_method)m);
        p3_dequantize_row_i4s(&b, 128, y);
        CHECK(b.d == 0 && b.qs[0] == 0x88 && b.qs[63] == 0x88 && y[5] == 0.0f);
        p3_block_i4a a;
        p3_quantize_row_i4a(x, 128, &a, (p3_quant_method)m);
        p3_dequantize_row_i4a(&a, 128, y);
        CHECK(y[0] == 0.0f && y[127] == 0.0f);
    }
    /* Asym range [0, 1.5] at scale 0.1: levels 0..15 with z = 0. */
    for (int j = 0; j < 128; j++) x[j] = (float)(j % 16) * 0.1f;
    p3_block_i4a a;
    p3_quantize_row_i4a(x, 128, &a, P3_QUANT_RTN);
    CHECK_EQ_INT(a.z, 0);
    CHECK(a.d == p3_f32_to_f16(1.5f / 15.0f));
    CHECK_EQ_INT(nibble(a.qs, 15), 15);
    CHECK_EQ_INT(nibble(a.qs, 7), 7);
}

/* Per group, SEARCH's squared reconstruction error never exceeds RTN's, and is smaller overall. */
P3_TEST(quant_i4_search_never_worse) {
    enum { K = 128 * 64 + 72 };
    p3_test_rng r;
    p3_test_rng_seed(&r, 5);
    float *x = p3_malloc(K * sizeof *x), *y0 = p3_malloc(K * sizeof *y0),
          *y1 = p3_malloc(K * sizeof *y1);
    fill_normal(&r, x, K, 1.0f);
    for (int j = 0; j < K; j += 97) x[j] *= 8.0f; /* some outliers */
    p3_block_i4s bs[65];
    p3_block_i4a ba[65];
    for (int asym = 0; asym < 2; asym++) {
        if (asym) {
            p3_quantize_row_i4a(x, K, ba, P3_QUANT_RTN);
            p3_dequantize_row_i4a(ba, K, y0);
            p3_quantize_row_i4a(x, K, ba, P3_QUANT_SEARCH);
            p3_dequantize_row_i4a(ba, K, y1);
        } else {
            p3_quantize_row_i4s(x, K, bs, P3_QUANT_RTN);
            p3_dequantize_row_i4s(bs, K, y0);
            p3_quantize_row_i4s(x, K, bs, P3_QUANT_SEARCH);
            p3_dequantize_row_i4s(bs, K, y1);
        }
        double tot0 = 0, tot1 = 0;
        for (int g = 0; g < 65; g++) {
            int n = P3_MIN(128, K - g * 128);
            double e0 = group_sq_err(x + g * 128, y0 + g * 128, n);
            double e1 = group_sq_err(x + g * 128, y1 + g * 128, n);
            CHECK_MSG(e1 <= e0, "%s group %d: search %g > rtn %g", asym ? "asym" : "sym", g, e1,
                      e0);
            tot0 += e0;
            tot1 += e1;
        }
        CHECK_MSG(tot1 < 0.95 * tot0, "%s: search %g not clearly below rtn %g",
                  asym ? "asym" : "sym", tot1, tot0);
    }
    p3_free(x);
    p3_free(y0);
    p3_free(y1);
}

P3_TEST(quant_act_q8g_exact) {
    float x[130] = {0};
    x[0] = 127.0f;  /* amax 127: d = 1 exactly, 1/d = 1 */
    x[1] = -63.5f;  /* tie: even -64 */
    x[2] = 0.5f;    /* tie: 0 */
    x[3] = 1.5f;    /* tie: 2 */
    x[4] = 2.5f;    /* tie: 2 */
    x[5] = -3.25f;  /* -3 */
    x[127] = 99.7f; /* 100 */
    x[128] = -2.0f; /* second group: amax 2, d = 2/127 */
    x[129] = 1.0f;
    p3_block_q8g b[2];
    memset(b, 0x55, sizeof b); /* the quantizer must write every byte it owns */
    p3_quantize_act_q8g(x, 130, b);
    CHECK(b[0].d == 1.0f);
    CHECK_EQ_INT(b[0].qs[0], 127);
    CHECK_EQ_INT(b[0].qs[1], -64);
    CHECK_EQ_INT(b[0].qs[2], 0);
    CHECK_EQ_INT(b[0].qs[3], 2);
    CHECK_EQ_INT(b[0].qs[4], 2);
    CHECK_EQ_INT(b[0].qs[5], -3);
    CHECK_EQ_INT(b[0].qs[6], 0);
    CHECK_EQ_INT(b[0].qs[127], 100);
    CHECK_EQ_INT(b[0].sum, 127 - 64 + 0 + 2 + 2 - 3 + 100);
    CHECK(b[1].d == 2.0f / 127.0f);
    CHECK_EQ_INT(b[1].qs[0], -127);
    /* 1 * (1/d) = 63.5 up to rounding of 1/d: computed here in double from the f32 values */
    float inv = 1.0f / b[1].d;
    CHECK_EQ_INT(b[1].qs[1], (int)nearbyint((double)(1.0f * inv)));
    CHECK_EQ_INT(b[1].sum, -127 + b[1].qs[1]);
    bool pad_zero = true;
    for (int j = 2; j < 128; j++) pad_zero &= b[1].qs[j] == 0;
    CHECK(pad_zero);
    float z[128] = {0};
    p3_quantize_act_q8g(z, 128, b);
    CHECK(b[0].d == 0.0f && b[0].sum == 0 && b[0].qs[0] == 0 && b[0].qs[127] == 0);
}

/* Reference values in double from the dequantized weights (and, for w4a8, the dequantized
 * activations); the f32 results must agree within the f32 accumulation error bound
 * K * 2^-24 * sum|x w| (a generous multiple of the worst-case bound's constant). */
static void check_matmuls(p3_test_ctx *t, p3_dtype fmt, int64_t n_out, int64_t k, int64_t n_tok) {
    p3_test_rng r;
    p3_test_rng_seed(&r, (uint64_t)(k * 31 + n_out + fmt));
    size_t block = fmt == P3_DT_I4G128S ? sizeof(p3_block_i4s) : sizeof(p3_block_i4a);
    size_t row_bytes = (size_t)p3_groups(k) * block;
    float *wf = p3_malloc((size_t)(n_out * k) * sizeof *wf);
    float *wd = p3_malloc((size_t)(n_out * k) * sizeof *wd);
    float *x = p3_malloc((size_t)(n_tok * k) * sizeof *x);
    float *xd = p3_malloc((size_t)k * sizeof *xd);
    float *y32 = p3_malloc((size_t)(n_tok * n_out) * sizeof *y32);
    float *y8 = p3_malloc((size_t)(n_tok * n_out) * sizeof *y8);
    uint8_t *w = p3_malloc((size_t)n_out * row_bytes);
    p3_block_q8g *xa = p3_malloc((size_t)p3_groups(k) * sizeof *xa);
    fill_normal(&r, wf, (size_t)(n_out * k), 0.02f);
    fill_normal(&r, x, (size_t)(n_tok * k), 1.0f);
    for (int64_t o = 0; o < n_out; o++) {
        uint8_t *row = w + (size_t)o * row_bytes;
        if (fmt == P3_DT_I4G128S) {
            p3_quantize_row_i4s(wf + o * k, k, (p3_block_i4s *)row, P3_QUANT_SEARCH);
            p3_dequantize_row_i4s((p3_block_i4s *)row, k, wd + o * k);
        } else {
            p3_quantize_row_i4a(wf + o * k, k, (p3_block_i4a *)row, P3_QUANT_SEARCH);
            p3_dequantize_row_i4a((p3_block_i4a *)row, k, wd + o * k);
        }
    }
    CHECK_STATUS(p3_matmul_w4a32_ref(y32, x, w, fmt, n_out, k, n_tok), PHI3C_OK);
    CHECK_STATUS(p3_matmul_w4a8_ref(y8, x, w, fmt, n_out, k, n_tok), PHI3C_OK);
    double diff = 0, norm = 0;
    for (int64_t tk = 0; tk < n_tok; tk++) {
        p3_quantize_act_q8g(x + tk * k, k, xa);
        for (int64_t j = 0; j < k; j++) xd[j] = xa[j / 128].d * xa[j / 128].qs[j % 128];
        for (int64_t o = 0; o < n_out; o++) {
            double ref32 = 0, ref8 = 0, mag32 = 0, mag8 = 0;
            for (int64_t j = 0; j < k; j++) {
                ref32 += (double)x[tk * k + j] * wd[o * k + j];
                mag32 += fabs((double)x[tk * k + j] * wd[o * k + j]);
                ref8 += (double)xd[j] * wd[o * k + j];
                mag8 += fabs((double)xd[j] * wd[o * k + j]);
            }
            double eps = 1.0 / (1 << 24);
            float v32 = y32[tk * n_out + o], v8 = y8[tk * n_out + o];
            if (!CHECK_MSG(fabs(v32 - ref32) <= 2.0 * (double)k * eps * mag32 + 1e-30,
                           "w4a32 k=%lld [%lld,%lld] %g vs %g", (long long)k, (long long)tk,
                           (long long)o, v32, ref32))
                goto done;
            /* w4a8: exact int32 dots; f32 only in the per-group products and sums. */
            if (!CHECK_MSG(fabs(v8 - ref8) <= 4.0 * (double)(p3_groups(k) + 2) * eps * mag8 + 1e-30,
                           "w4a8 k=%lld [%lld,%lld] %g vs %g", (long long)k, (long long)tk,
                           (long long)o, v8, ref8))
                goto done;
            diff += (v8 - ref32) * (v8 - ref32);
            norm += ref32 * ref32;
        }
    }
    /* The two kinds differ by activation rounding only: NMSE ~ (1/127)^2 / 3 / E[x^2]-ish. */
    CHECK_MSG(diff / norm < 1e-3, "w4a8 vs w4a32 NMSE %g", diff / norm);
done:
    p3_free(wf);
    p3_free(wd);
    p3_free(x);
    p3_free(xd);
    p3_free(y32);
    p3_free(y8);
    p3_free(w);
    p3_free(xa);
}

P3_TEST(quant_matmul_refs_vs_double) {
    static const int64_t ks[] = {128, 384, 200, 130, 64};
    for (size_t i = 0; i < P3_ARRAY_LEN(ks); i++) {
        check_matmuls(t, P3_DT_I4G128S, 9, ks[i], 3);
        check_matmuls(t, P3_DT_I4G128A, 9, ks[i], 3);
    }
}

P3_TEST(quant_matmul_rejects_bad_args) {
    float y[1] = {0}, x[1] = {0};
    p3_block_i4s b = {0};
    CHECK_STATUS(p3_matmul_w4a32_ref(y, x, &b, P3_DT_F32, 1, 1, 1), PHI3C_ERR_UNSUPPORTED);
    CHECK_STATUS(p3_matmul_w4a8_ref(y, x, &b, P3_DT_I4G128S, 1, 0, 1), PHI3C_ERR_INVALID_ARG);
    CHECK_STATUS(p3_matmul_w4a8_ref(NULL, x, &b, P3_DT_I4G128S, 1, 1, 1), PHI3C_ERR_INVALID_ARG);
}

/* The threaded quantizer gives the same bytes as row-by-row quantization for any thread count. */
P3_TEST(quant_matrix_threads_identical) {
    enum { ROWS = 77, COLS = 200 };
    p3_test_rng r;
    p3_test_rng_seed(&r, 3);
    float *src = p3_malloc(ROWS * COLS * sizeof *src);
    fill_normal(&r, src, ROWS * COLS, 0.1f);
    for (int asym = 0; asym < 2; asym++) {
        p3_dtype fmt = asym ? P3_DT_I4G128A : P3_DT_I4G128S;
        size_t bytes;
        CHECK(p3_quant_matrix_bytes(fmt, ROWS, COLS, &bytes));
        CHECK_EQ_INT(bytes, (size_t)ROWS * 2 * (asym ? 68 : 66));
        uint8_t *want = p3_malloc(bytes), *got = p3_malloc(bytes);
        size_t row_bytes = bytes / ROWS;
        for (int i = 0; i < ROWS; i++) {
            if (asym)
                p3_quantize_row_i4a(src + i * COLS, COLS, (void *)(want + i * row_bytes),
                                    P3_QUANT_SEARCH);
            else
                p3_quantize_row_i4s(src + i * COLS, COLS, (void *)(want + i * row_bytes),
                                    P3_QUANT_SEARCH);
        }
        static const int threads[] = {1, 2, 3, 8};
        for (size_t i = 0; i < P3_ARRAY_LEN(threads); i++) {
            memset(got, 0xa5, bytes);
            p3_error err = {0};
            CHECK_OK(p3_quantize_matrix_f32(src, ROWS, COLS, fmt, P3_QUANT_SEARCH, threads[i], got,
                                            &err),
                     &err);
            CHECK_MSG(memcmp(want, got, bytes) == 0, "%d threads differ", threads[i]);
        }
        p3_free(want);
        p3_free(got);
    }
    p3_free(src);
}

static bool cancel_at_once(void *user, int64_t done, int64_t total) {
    (void)done;
    (void)total;
    *(int *)user += 1;
    return false;
}

static p3_status fetch_zero_row(void *user, int64_t row, float *out, p3_error *err) {
    (void)user;
    (void)err;
    (void)row;
    memset(out, 0, 128 * sizeof *out);
    return PHI3C_OK;
}

static p3_status fetch_fail_row_40(void *user, int64_t row, float *out, p3_error *err) {
    if (row == 40) return p3_fail(err, PHI3C_ERR_IO, "row %lld unreadable", (long long)row);
    return fetch_zero_row(user, row, out, err);
}

P3_TEST(quant_matrix_cancel_and_errors) {
    enum { ROWS = 512, COLS = 128 };
    uint8_t *out = p3_malloc(ROWS * 66);
    int calls = 0;
    p3_quant_matrix_args a = {.rows = ROWS, .cols = COLS, .fmt = P3_DT_I4G128S, .n_threads = 2};
    p3_error err = {0};
    CHECK_STATUS(p3_quantize_matrix(&a, out, &err), PHI3C_ERR_INVALID_ARG); /* no fetch */
    a.fetch = fetch_zero_row;
    a.progress = cancel_at_once;
    a.progress_user = &calls;
    CHECK_STATUS(p3_quantize_matrix(&a, out, &err), PHI3C_ERR_INTERRUPTED);
    CHECK_EQ_INT(calls, 1);
    a.progress = NULL;
    a.fetch = fetch_fail_row_40;
    CHECK_STATUS(p3_quantize_matrix(&a, out, &err), PHI3C_ERR_IO);
    CHECK(strstr(err.message, "row 40") != NULL);
    a.fmt = P3_DT_F16;
    CHECK_STATUS(p3_quantize_matrix(&a, out, &err), PHI3C_ERR_INVALID_ARG);
    p3_free(out);
}
