/* test_overlay.c: the generic overlay backend (kernels/overlay.h) routes correctly: a weight the
 * primary refuses lives on the fallback, the matmul of each weight runs where the weight lives,
 * ops the primary's table leaves NULL run on the fallback ("cpu"), all against the scalar
 * reference. The test primary marks its work: its matmul returns twice the reference product, so
 * a result says which backend computed it. */
#include "harness.h"
#include "overlay.h"
#include "ref.h"

#include <string.h>

enum { ROWS = 5, COLS = 7, TOKENS = 3, PRIMARY_ROWS = 5 };

typedef struct mark_weight {
    p3_weight pub;
    float w[ROWS * COLS];
} mark_weight;

static p3_status mark_create(const p3_backend_options *opt, void **ctx, p3_error *err) {
    (void)opt;
    (void)err;
    *ctx = (void *)1; /* no state */
    return PHI3C_OK;
}
static void mark_destroy(void *ctx) {
    (void)ctx;
}
/* Takes only f32 weights of PRIMARY_ROWS rows named "primary". */
static p3_status mark_upload(void *ctx, const p3_weight_desc *d, p3_weight **out, p3_error *err) {
    (void)ctx;
    if (strcmp(d->name, "primary") != 0 || d->dtype != P3_DT_F32 || d->rows != PRIMARY_ROWS ||
        d->cols != COLS)
        return p3_fail(err, PHI3C_ERR_UNSUPPORTED, "mark: not mine");
    mark_weight *w = p3_calloc(1, sizeof *w);
    if (!w) return p3_fail(err, PHI3C_ERR_NOMEM, "mark: out of memory");
    memcpy(w->w, d->data, sizeof w->w);
    w->pub = (p3_weight){.dtype = d->dtype, .rows = d->rows, .cols = d->cols, .act = d->act};
    *out = &w->pub;
    return PHI3C_OK;
}
static void mark_weight_free(void *ctx, p3_weight *w) {
    (void)ctx;
    p3_free(w);
}
static p3_status mark_matmul(void *ctx, p3_ref y, p3_ref x, const p3_weight *pw, int n_tokens,
                             p3_error *err) {
    (void)ctx;
    (void)err;
    float *out = (float *)((uint8_t *)y.buf->host + y.offset);
    const float *in = (const float *)((const uint8_t *)x.buf->host + x.offset);
    p3_status st = p3_ref_matmul(out, in, ((const mark_weight *)pw)->w, P3_DT_F32, pw->rows,
                                 pw->cols, n_tokens);
    for (int64_t i = 0; i < n_tokens * pw->rows; i++) out[i] *= 2; /* the mark */
    return st;
}

static const p3_backend_iface mark_primary = {
    .version = P3_BACKEND_IFACE_VERSION,
    .name = "mark",
    .create = mark_create,
    .destroy = mark_destroy,
    .weight_upload = mark_upload,
    .weight_free = mark_weight_free,
    .matmul = mark_matmul,
};

static const p3_backend_iface mark_over_cpu = {
    .version = P3_BACKEND_IFACE_VERSION,
    .name = "mark-over-cpu",
    P3_OVERLAY_METHODS,
};

/* y = x W^T through the overlay for a weight named `name`; NMSE of y against scale * reference. */
static double overlay_matmul_error(p3_test_ctx *t, p3_backend *be, const char *name, const float *w,
                                   const float *x, float scale) {
    p3_weight_desc d = {name, P3_DT_F32, ROWS, COLS, w, P3_ACT_F32};
    p3_weight *pw = NULL;
    p3_buffer *bx = NULL, *by = NULL;
    p3_error err = {0};
    double e = -1;
    float y[TOKENS * ROWS], want[TOKENS * ROWS];
    if (CHECK_OK(p3_be_weight_upload(be, &d, &pw, &err), &err) &&
        CHECK_OK(p3_be_buffer_alloc(be, sizeof(float) * TOKENS * COLS, &bx, &err), &err) &&
        CHECK_OK(p3_be_buffer_alloc(be, sizeof y, &by, &err), &err) &&
        CHECK_OK(p3_be_write(be, p3_ref_at(bx, 0), x, sizeof(float) * TOKENS * COLS, &err), &err) &&
        CHECK_OK(p3_be_matmul(be, p3_ref_at(by, 0), p3_ref_at(bx, 0), pw, TOKENS, &err), &err) &&
        CHECK_OK(p3_be_read(be, p3_ref_at(by, 0), y, sizeof y, &err), &err)) {
        p3_ref_matmul(want, x, w, P3_DT_F32, ROWS, COLS, TOKENS);
        for (int i = 0; i < TOKENS * ROWS; i++) want[i] *= scale;
        e = p3_nmse(y, want, TOKENS * ROWS);
    }
    p3_be_weight_free(be, pw);
    p3_be_buffer_free(be, bx);
    p3_be_buffer_free(be, by);
    return e;
}

P3_TEST(overlay_routes_weights_and_ops) {
    p3_test_rng r;
    p3_test_rng_seed(&r, 17);
    float w[ROWS * COLS], x[TOKENS * COLS], norm[COLS];
    for (int i = 0; i < ROWS * COLS; i++) w[i] = p3_test_rng_normal(&r);
    for (int i = 0; i < TOKENS * COLS; i++) x[i] = p3_test_rng_normal(&r);
    for (int i = 0; i < COLS; i++) norm[i] = 1 + 0.1f * p3_test_rng_normal(&r);
    p3_backend be = {&mark_over_cpu, NULL};
    p3_error err = {0};
    p3_backend_options opt = {.n_threads = 1};
    if (!CHECK_OK(p3_overlay_create(&mark_primary, "cpu", &opt, &be.ctx, &err), &err)) return;
    char desc[512];
    p3_be_describe(&be, desc, sizeof desc);
    CHECK_MSG(strstr(desc, "mark") && strstr(desc, "cpu") && strstr(desc, "(other ops)"), "%s",
              desc);
    /* the primary's weight: its matmul (marked x2); a refused one: the fallback's (exact x1) */
    double e_primary = overlay_matmul_error(t, &be, "primary", w, x, 2.0f);
    double e_fallback = overlay_matmul_error(t, &be, "other", w, x, 1.0f);
    CHECK_MSG(e_primary >= 0 && e_primary < 1e-12, "primary matmul NMSE %g", e_primary);
    CHECK_MSG(e_fallback >= 0 && e_fallback < 1e-10, "fallback matmul NMSE %g", e_fallback);
    /* rmsnorm is NULL in the primary's table: the fallback runs it, bit-exact with the reference */
    p3_buffer *bx = NULL, *bw = NULL, *bo = NULL;
    float got[TOKENS * COLS], want[TOKENS * COLS];
    if (CHECK_OK(p3_be_buffer_alloc(&be, sizeof x, &bx, &err), &err) &&
        CHECK_OK(p3_be_buffer_alloc(&be, sizeof norm, &bw, &err), &err) &&
        CHECK_OK(p3_be_buffer_alloc(&be, sizeof got, &bo, &err), &err) &&
        CHECK_OK(p3_be_write(&be, p3_ref_at(bx, 0), x, sizeof x, &err), &err) &&
        CHECK_OK(p3_be_write(&be, p3_ref_at(bw, 0), norm, sizeof norm, &err), &err) &&
        CHECK_OK(p3_be_rmsnorm(&be, p3_ref_at(bo, 0), p3_ref_at(bx, 0), p3_ref_at(bw, 0), TOKENS,
                               COLS, 1e-5f, &err),
                 &err) &&
        CHECK_OK(p3_be_read(&be, p3_ref_at(bo, 0), got, sizeof got, &err), &err)) {
        p3_ref_rmsnorm(want, x, norm, TOKENS, COLS, 1e-5f);
        CHECK(memcmp(got, want, sizeof got) == 0);
    }
    p3_be_buffer_free(&be, bx);
    p3_be_buffer_free(&be, bw);
    p3_be_buffer_free(&be, bo);
    CHECK(p3_be_supports(&be, P3_OP_ATTENTION, P3_DT_F32, P3_ACT_F32, P3_KV_F16));
    p3_backend_close(&be);
}

P3_TEST(overlay_fallback_must_exist) {
    void *ctx = NULL;
    p3_error err = {0};
    CHECK_STATUS(p3_overlay_create(&mark_primary, "no-such-backend", NULL, &ctx, &err),
                 PHI3C_ERR_INVALID_ARG);
    CHECK(ctx == NULL);
    CHECK_MSG(strstr(err.message, "mark: fallback backend") && strstr(err.message, "no-such"), "%s",
              err.message);
}
