/* test_opencl.c: the OpenCL backend against the scalar reference (kernels/ref.h, quant/int4.h) on
 * whatever OpenCL device is present (PoCL's CPU device in CI), plus its error paths: impossible
 * allocations, bad device index, misaligned offsets, token ids outside the table. Skipped when no
 * OpenCL platform is available. */
#include "harness.h"

#include "backend.h"
#include "int4.h"
#include "opencl_internal.h"
#include "ref.h"

#include <math.h>
#include <string.h>

/* f32 kernels differ from the reference only in summation order: rounding-level error. */
#define NMSE_F32  1e-10
#define NMSE_W4A8 1e-12

static bool open_ocl_variant(p3_test_ctx *t, p3_backend *be, const char *variant) {
    p3_error err = {0};
    for (size_t i = 0; i < p3_backend_count(); i++) {
        p3_backend_info info;
        p3_backend_info_at(i, &info);
        if (info.name && strcmp(info.name, "opencl") == 0 && !info.available) {
            p3_test_skip(t, "OpenCL unavailable: %s", info.why);
            return false;
        }
    }
    p3_backend_options opt = {0};
    opt.variant = variant;
    if (p3_backend_open("opencl", &opt, be, &err) != PHI3C_OK) {
        CHECK_MSG(false, "opening opencl: %s", err.message);
        return false;
    }
    return true;
}

static bool open_ocl(p3_test_ctx *t, p3_backend *be) {
    return open_ocl_variant(t, be, NULL);
}

static void fill_normal(p3_test_rng *r, float *x, size_t n, float sd) {
    for (size_t i = 0; i < n; i++) x[i] = sd * p3_test_rng_normal(r);
}

/* A device buffer holding n host floats. */
static p3_buffer *dev_floats(p3_test_ctx *t, p3_backend *be, const float *x, size_t n) {
    p3_error err = {0};
    p3_buffer *b = NULL;
    if (!CHECK_OK(p3_be_buffer_alloc(be, n * sizeof(float), &b, &err), &err)) return NULL;
    if (x) CHECK_OK(p3_be_write(be, p3_ref_at(b, 0), x, n * sizeof(float), &err), &err);
    return b;
}

static void read_floats(p3_test_ctx *t, p3_backend *be, p3_buffer *b, size_t off, float *x,
                        size_t n) {
    p3_error err = {0};
    CHECK_OK(p3_be_read(be, p3_ref_at(b, off), x, n * sizeof(float), &err), &err);
}

static void check_nmse(p3_test_ctx *t, const char *what, const float *got, const float *want,
                       size_t n, double bound) {
    double e = p3_nmse(got, want, n);
    CHECK_MSG(e <= bound && !isnan(e), "%s: NMSE %.3g > %.3g", what, e, bound);
}

P3_TEST(opencl_probe_lists_devices) {
    for (size_t i = 0; i < p3_backend_count(); i++) {
        p3_backend_info info;
        p3_backend_info_at(i, &info);
        if (!info.name || strcmp(info.name, "opencl") != 0) continue;
        if (!info.available) {
            CHECK_MSG(info.why[0] != 0, "unavailable without a reason");
            p3_test_skip(t, "OpenCL unavailable: %s", info.why);
            return;
        }
        CHECK_MSG(strncmp(info.devices, "0: ", 3) == 0, "devices '%s'", info.devices);
        return;
    }
    CHECK_MSG(false, "opencl is not in the registry");
}

P3_TEST(opencl_elementwise_ops_match_reference) {
    p3_backend be;
    if (!open_ocl(t, &be)) return;
    p3_test_rng r;
    p3_test_rng_seed(&r, 11);
    enum { T = 3, D = 200, N = T * 2 * D };
    float x[N], w[D], got[N], want[N], y[N];
    fill_normal(&r, x, N, 1.0f);
    fill_normal(&r, y, N, 1.0f);
    fill_normal(&r, w, D, 0.5f);
    p3_buffer *bx = dev_floats(t, &be, x, N), *by = dev_floats(t, &be, y, N);
    p3_buffer *bw = dev_floats(t, &be, w, D), *bo = dev_floats(t, &be, NULL, N + 8);
    p3_error err = {0};
    if (!bx || !by || !bw || !bo) goto done;

    /* rmsnorm, into an offset output row (byte offset 16) */
    CHECK_OK(p3_be_rmsnorm(&be, p3_ref_at(bo, 16), p3_ref_at(bx, 0), p3_ref_at(bw, 0), T, D, 1e-5f,
                           &err),
             &err);
    read_floats(t, &be, bo, 16, got, (size_t)T * D);
    p3_ref_rmsnorm(want, x, w, T, D, 1e-5f);
    check_nmse(t, "rmsnorm", got, want, (size_t)T * D, NMSE_F32);

    /* swiglu */
    CHECK_OK(p3_be_swiglu(&be, p3_ref_at(bo, 0), p3_ref_at(bx, 0), T, D, &err), &err);
    read_floats(t, &be, bo, 0, got, (size_t)T * D);
    p3_ref_swiglu(want, x, T, D);
    check_nmse(t, "swiglu", got, want, (size_t)T * D, NMSE_F32);

    /* add with element offsets, then copy */
    CHECK_OK(p3_be_copy(&be, p3_ref_at(bo, 0), p3_ref_at(bx, 0), N * sizeof(float), &err), &err);
    CHECK_OK(p3_be_add(&be, p3_ref_at(bo, 4), p3_ref_at(by, 8), N - 2, &err), &err);
    read_floats(t, &be, bo, 0, got, N);
    memcpy(want, x, sizeof x);
    p3_ref_add(want + 1, y + 2, N - 2);
    check_nmse(t, "add", got, want, N, 0.0);

    /* a misaligned offset is refused with a clear error */
    CHECK_STATUS(p3_be_add(&be, p3_ref_at(bo, 2), p3_ref_at(by, 0), 4, &err),
                 PHI3C_ERR_INVALID_ARG);
done:
    p3_be_buffer_free(&be, bx);
    p3_be_buffer_free(&be, by);
    p3_be_buffer_free(&be, bw);
    p3_be_buffer_free(&be, bo);
    p3_backend_close(&be);
}

P3_TEST(opencl_rope_partial_longrope_matches_reference) {
    p3_backend be;
    if (!open_ocl(t, &be)) return;
    p3_test_rng r;
    p3_test_rng_seed(&r, 12);
    enum { T = 4, H = 4, KVH = 2, HD = 16, ROT = 12, W = (H + 2 * KVH) * HD, N = T * W };
    float qkv[N], got[N], want[N], factors[ROT / 2], inv[ROT / 2];
    fill_normal(&r, qkv, N, 1.0f);
    for (int i = 0; i < ROT / 2; i++) factors[i] = 1.0f + 0.7f * (float)i;
    p3_rope_inv_freq(inv, ROT, 10000.0f, factors);
    p3_buffer *bq = dev_floats(t, &be, qkv, N), *bf = dev_floats(t, &be, inv, ROT / 2);
    p3_error err = {0};
    if (bq && bf) {
        p3_rope_params p = {H, KVH, HD, ROT, p3_ref_at(bf, 0), 1.19f};
        int pos0 = 70000; /* large angles: precise cos/sin needed */
        CHECK_OK(p3_be_rope(&be, p3_ref_at(bq, 0), T, pos0, &p, &err), &err);
        read_floats(t, &be, bq, 0, got, N);
        memcpy(want, qkv, sizeof qkv);
        p3_ref_rope(want, T, pos0, inv, 1.19f, H, KVH, HD, ROT);
        check_nmse(t, "rope", got, want, N, 1e-9);
        bool v_untouched = true;
        for (int tk = 0; tk < T; tk++)
            for (int i = (H + KVH) * HD; i < W; i++)
                v_untouched &= got[tk * W + i] == qkv[tk * W + i];
        CHECK_MSG(v_untouched, "rope changed V");
    }
    p3_be_buffer_free(&be, bq);
    p3_be_buffer_free(&be, bf);
    p3_backend_close(&be);
}

/* Uploads `data` as a weight of dtype dt and checks matmul (n_tokens 1 and 5) and embed. */
static void check_weight(p3_test_ctx *t, p3_backend *be, p3_dtype dt, p3_act_mode act,
                         const void *data, int rows, int cols, double bound) {
    p3_error err = {0};
    p3_weight_desc d = {"test", dt, rows, cols, data, act};
    p3_weight *w = NULL;
    if (!CHECK_OK(p3_be_weight_upload(be, &d, &w, &err), &err)) return;
    p3_test_rng r;
    p3_test_rng_seed(&r, 13);
    enum { TMAX = 5 };
    size_t nx = (size_t)TMAX * (size_t)cols, ny = (size_t)TMAX * (size_t)rows;
    float *x = p3_malloc(nx * 4), *got = p3_malloc((ny + nx) * 4), *want = p3_malloc((ny + nx) * 4);
    fill_normal(&r, x, nx, 1.0f);
    p3_buffer *bx = dev_floats(t, be, x, nx), *by = dev_floats(t, be, NULL, ny + nx);
    for (int nt = 1; nt <= TMAX && bx && by; nt += TMAX - 1) {
        CHECK_OK(p3_be_matmul(be, p3_ref_at(by, 0), p3_ref_at(bx, 0), w, nt, &err), &err);
        read_floats(t, be, by, 0, got, (size_t)nt * (size_t)rows);
        if (act == P3_ACT_Q8)
            p3_matmul_w4a8_ref(want, x, data, dt, rows, cols, nt);
        else if (p3_dtype_is_int4(dt))
            p3_matmul_w4a32_ref(want, x, data, dt, rows, cols, nt);
        else
            p3_ref_matmul(want, x, data, dt, rows, cols, nt);
        char what[64];
        snprintf(what, sizeof what, "matmul dtype %d act %d %dx%d, %d tokens", (int)dt, (int)act,
                 rows, cols, nt);
        check_nmse(t, what, got, want, (size_t)nt * (size_t)rows, bound);
    }
    int32_t ids[3] = {rows - 1, 0, rows / 2};
    p3_buffer *bi = NULL;
    if (bx && by && CHECK_OK(p3_be_buffer_alloc(be, sizeof ids, &bi, &err), &err)) {
        CHECK_OK(p3_be_write(be, p3_ref_at(bi, 0), ids, sizeof ids, &err), &err);
        CHECK_OK(p3_be_embed(be, p3_ref_at(by, 0), w, p3_ref_at(bi, 0), 3, &err), &err);
        read_floats(t, be, by, 0, got, 3 * (size_t)cols);
        CHECK_OK(p3_ref_embed(want, data, dt, rows, cols, ids, 3, &err), &err);
        CHECK_MSG(memcmp(got, want, 3 * (size_t)cols * 4) == 0, "embed dtype %d not exact",
                  (int)dt);
        /* an id outside the table is reported at the next read */
        ids[1] = rows;
        CHECK_OK(p3_be_write(be, p3_ref_at(bi, 0), ids, sizeof ids, &err), &err);
        CHECK_OK(p3_be_embed(be, p3_ref_at(by, 0), w, p3_ref_at(bi, 0), 3, &err), &err);
        CHECK_STATUS(p3_be_sync(be, &err), PHI3C_ERR_INVALID_ARG);
        CHECK_OK(p3_be_sync(be, &err), &err);
    }
    p3_be_buffer_free(be, bi);
    p3_be_buffer_free(be, bx);
    p3_be_buffer_free(be, by);
    p3_free(x);
    p3_free(got);
    p3_free(want);
    p3_be_weight_free(be, w);
}

P3_TEST(opencl_matmul_and_embed_match_reference) {
    p3_backend be;
    if (!open_ocl(t, &be)) return;
    p3_test_rng r;
    p3_test_rng_seed(&r, 14);
    /* 37 rows (not a multiple of 16), partial last groups (300, 203: odd tail), more groups than
     * K-slices (1000) */
    static const int shapes[][2] = {{37, 300}, {19, 203}, {21, 1000}};
    for (size_t s = 0; s < P3_ARRAY_LEN(shapes); s++) {
        int rows = shapes[s][0], cols = shapes[s][1];
        size_t n = (size_t)rows * (size_t)cols, g = (size_t)p3_groups(cols);
        float *wf = p3_malloc(n * 4);
        uint16_t *h = p3_malloc(n * 2), *bf = p3_malloc(n * 2);
        p3_block_i4s *qs = p3_malloc((size_t)rows * g * sizeof *qs);
        p3_block_i4a *qa = p3_malloc((size_t)rows * g * sizeof *qa);
        fill_normal(&r, wf, n, 0.1f);
        for (size_t i = 0; i < n; i++) {
            h[i] = p3_f32_to_f16(wf[i]);
            bf[i] = p3_f32_to_bf16(wf[i]);
        }
        for (int row = 0; row < rows; row++) {
            p3_quantize_row_i4s(wf + (size_t)row * cols, cols, qs + (size_t)row * g, P3_QUANT_RTN);
            p3_quantize_row_i4a(wf + (size_t)row * cols, cols, qa + (size_t)row * g, P3_QUANT_RTN);
        }
        check_weight(t, &be, P3_DT_F32, P3_ACT_F32, wf, rows, cols, NMSE_F32);
        check_weight(t, &be, P3_DT_F16, P3_ACT_F32, h, rows, cols, NMSE_F32);
        check_weight(t, &be, P3_DT_BF16, P3_ACT_F32, bf, rows, cols, NMSE_F32);
        check_weight(t, &be, P3_DT_I4G128S, P3_ACT_F32, qs, rows, cols, NMSE_F32);
        check_weight(t, &be, P3_DT_I4G128A, P3_ACT_F32, qa, rows, cols, NMSE_F32);
        /* w4a8: same integers and per-group f32 terms as the reference, groups summed in
         * another order */
        check_weight(t, &be, P3_DT_I4G128S, P3_ACT_Q8, qs, rows, cols, NMSE_W4A8);
        check_weight(t, &be, P3_DT_I4G128A, P3_ACT_Q8, qa, rows, cols, NMSE_W4A8);
        p3_free(wf);
        p3_free(h);
        p3_free(bf);
        p3_free(qs);
        p3_free(qa);
    }
    p3_backend_close(&be);
}

/* Prefill of n1 tokens then decode of one more, against the reference on an f32 cache rounded
 * like the device's. */
static void check_attention(p3_test_ctx *t, p3_backend *be, p3_kv_dtype kvt, int window, int hd) {
    enum { H = 4, KVH = 2, NCTX = 150, LAYERS = 2, T1 = 130 };
    p3_attn_params p = {H, KVH, hd, window, 1.0f / sqrtf((float)hd)};
    size_t width = (size_t)(H + 2 * KVH) * (size_t)hd, kvw = (size_t)KVH * (size_t)hd;
    size_t nq = (size_t)(T1 + 1) * width, no = (size_t)(T1 + 1) * H * (size_t)hd;
    float *qkv = p3_malloc(nq * 4), *got = p3_malloc(no * 4), *want = p3_malloc(no * 4);
    float *kc = p3_calloc(NCTX * kvw, 4), *vc = p3_calloc(NCTX * kvw, 4);
    p3_test_rng r;
    p3_test_rng_seed(&r, 15);
    fill_normal(&r, qkv, nq, 1.0f);
    p3_kv_desc kd = {LAYERS, NCTX, KVH, hd, kvt};
    p3_kv_cache *kv = NULL;
    p3_error err = {0};
    p3_buffer *bq = dev_floats(t, be, qkv, nq), *bo = dev_floats(t, be, NULL, no);
    if (bq && bo && CHECK_OK(p3_be_kv_alloc(be, &kd, &kv, &err), &err)) {
        /* layer 1, so the layer offset is exercised; prefill T1 tokens, then decode one */
        CHECK_OK(p3_be_kv_write(be, kv, 1, p3_ref_at(bq, 0), T1, 0, &p, &err), &err);
        CHECK_OK(p3_be_attention(be, p3_ref_at(bo, 0), p3_ref_at(bq, 0), kv, 1, T1, 0, &p, &err),
                 &err);
        size_t last = (size_t)T1 * width * 4;
        CHECK_OK(p3_be_kv_write(be, kv, 1, p3_ref_at(bq, last), 1, T1, &p, &err), &err);
        CHECK_OK(p3_be_attention(be, p3_ref_at(bo, (size_t)T1 * H * (size_t)hd * 4),
                                 p3_ref_at(bq, last), kv, 1, 1, T1, &p, &err),
                 &err);
        read_floats(t, be, bo, 0, got, no);
        p3_ref_kv_write(kc, vc, qkv, T1 + 1, 0, &p);
        if (kvt == P3_KV_F16) {
            p3_ref_kv_round_f16(kc, (int)((T1 + 1) * kvw));
            p3_ref_kv_round_f16(vc, (int)((T1 + 1) * kvw));
        }
        for (size_t row = 0; kvt == P3_KV_Q8 && row < (size_t)(T1 + 1) * KVH; row++) {
            p3_ref_kv_round_q8(kc + row * (size_t)hd, hd); /* one scale per head and position */
            p3_ref_kv_round_q8(vc + row * (size_t)hd, hd);
        }
        p3_ref_attention(want, qkv, kc, vc, T1 + 1, 0, &p);
        char what[80];
        snprintf(what, sizeof what, "attention kv %d window %d head_dim %d", (int)kvt, window, hd);
        check_nmse(t, what, got, want, no, NMSE_F32);
    }
    p3_be_kv_free(be, kv);
    p3_be_buffer_free(be, bq);
    p3_be_buffer_free(be, bo);
    p3_free(qkv);
    p3_free(got);
    p3_free(want);
    p3_free(kc);
    p3_free(vc);
}

P3_TEST(opencl_attention_matches_reference) {
    p3_backend be;
    if (!open_ocl(t, &be)) return;
    check_attention(t, &be, P3_KV_F32, 0, 96);
    check_attention(t, &be, P3_KV_F32, 37, 16);
    check_attention(t, &be, P3_KV_F16, 0, 80);
    check_attention(t, &be, P3_KV_F16, 100, 128);
    check_attention(t, &be, P3_KV_Q8, 0, 96);
    check_attention(t, &be, P3_KV_Q8, 50, 200);
    p3_backend_close(&be);
}

P3_TEST(opencl_errors_are_clear) {
    p3_backend be;
    if (!open_ocl(t, &be)) return;
    p3_error err = {0};
    p3_buffer *b = NULL;
    CHECK_STATUS(p3_be_buffer_alloc(&be, (size_t)1 << 62, &b, &err), PHI3C_ERR_DEVICE_OOM);
    CHECK_MSG(strstr(err.message, "opencl") && strstr(err.message, "bytes"), "message: %s",
              err.message);
    p3_kv_desc kd = {1 << 20, 1 << 20, 8, 128, P3_KV_F32};
    p3_kv_cache *kv = NULL;
    p3_status st = p3_be_kv_alloc(&be, &kd, &kv, &err);
    CHECK_MSG(st == PHI3C_ERR_DEVICE_OOM || st == PHI3C_ERR_INVALID_ARG, "huge KV: %s",
              err.message);
    p3_backend_close(&be);

    p3_backend_options opt = {0};
    opt.device = 999;
    CHECK_STATUS(p3_backend_open("opencl", &opt, &be, &err), PHI3C_ERR_INVALID_ARG);
    /* the library names the device; the CLI adds the --device advice (tools/cli/cli.c) */
    CHECK_MSG(strstr(err.message, "device 999 does not exist") && !strstr(err.message, "--"),
              "message: %s", err.message);
}

/* The integer-dot-product variant's packing (even nibbles with activations 0, 2, 4, 6...) with
 * the built-in emulated, since PoCL lacks cl_khr_integer_dot_product. */
P3_TEST(opencl_int_dot_variant_matches_w4a8_reference) {
    p3_backend be;
    if (!open_ocl_variant(t, &be, "int-dot-emulated")) return;
    p3_test_rng r;
    p3_test_rng_seed(&r, 16);
    enum { ROWS = 37, COLS = 1000 };
    size_t g = (size_t)p3_groups(COLS);
    float *wf = p3_malloc((size_t)ROWS * COLS * 4);
    p3_block_i4s *qs = p3_malloc(ROWS * g * sizeof *qs);
    p3_block_i4a *qa = p3_malloc(ROWS * g * sizeof *qa);
    fill_normal(&r, wf, (size_t)ROWS * COLS, 0.1f);
    for (int row = 0; row < ROWS; row++) {
        p3_quantize_row_i4s(wf + (size_t)row * COLS, COLS, qs + (size_t)row * g, P3_QUANT_RTN);
        p3_quantize_row_i4a(wf + (size_t)row * COLS, COLS, qa + (size_t)row * g, P3_QUANT_RTN);
    }
    check_weight(t, &be, P3_DT_I4G128S, P3_ACT_Q8, qs, ROWS, COLS, NMSE_W4A8);
    check_weight(t, &be, P3_DT_I4G128A, P3_ACT_Q8, qa, ROWS, COLS, NMSE_W4A8);
    char desc[256];
    be.iface->describe(be.ctx, desc, sizeof desc);
    CHECK_MSG(strstr(desc, "emulated") != NULL, "describe: %s", desc);
    p3_free(wf);
    p3_free(qs);
    p3_free(qa);
    p3_backend_close(&be);

    p3_error err = {0};
    p3_backend_options opt = {0};
    opt.variant = "no-such-variant";
    CHECK_STATUS(p3_backend_open("opencl", &opt, &be, &err), PHI3C_ERR_INVALID_ARG);
}

/* Decode at a long context (split over work-groups, then merged), with and without a window. */
P3_TEST(opencl_split_decode_attention_matches_reference) {
    p3_backend be;
    if (!open_ocl(t, &be)) return;
    enum { H = 4, KVH = 2, HD = 64, NCTX = 1300, POS = 1100 };
    size_t width = (size_t)(H + 2 * KVH) * HD, kvw = (size_t)KVH * HD;
    float *qkv = p3_malloc((POS + 1) * width * 4), *kc = p3_calloc(NCTX * kvw, 4);
    float *vc = p3_calloc(NCTX * kvw, 4), got[H * HD], want[H * HD];
    p3_test_rng r;
    p3_test_rng_seed(&r, 17);
    fill_normal(&r, qkv, (POS + 1) * width, 1.0f);
    p3_kv_desc kd = {1, NCTX, KVH, HD, P3_KV_F32};
    p3_kv_cache *kv = NULL;
    p3_error err = {0};
    p3_buffer *bq = dev_floats(t, &be, qkv, (POS + 1) * width),
              *bo = dev_floats(t, &be, NULL, H * HD);
    if (bq && bo && CHECK_OK(p3_be_kv_alloc(&be, &kd, &kv, &err), &err)) {
        p3_ref_kv_write(kc, vc, qkv, POS + 1, 0, &(p3_attn_params){H, KVH, HD, 0, 0.125f});
        static const int windows[] = {0, 700, 513};
        for (size_t w = 0; w < P3_ARRAY_LEN(windows); w++) {
            p3_attn_params p = {H, KVH, HD, windows[w], 0.125f};
            CHECK_OK(p3_be_kv_write(&be, kv, 0, p3_ref_at(bq, 0), POS + 1, 0, &p, &err), &err);
            p3_ref last = p3_ref_at(bq, (size_t)POS * width * 4);
            CHECK_OK(p3_be_attention(&be, p3_ref_at(bo, 0), last, kv, 0, 1, POS, &p, &err), &err);
            read_floats(t, &be, bo, 0, got, H * HD);
            p3_ref_attention(want, qkv + (size_t)POS * width, kc, vc, 1, POS, &p);
            char what[64];
            snprintf(what, sizeof what, "split decode at %d, window %d", POS, windows[w]);
            check_nmse(t, what, got, want, H * HD, NMSE_F32);
        }
    }
    p3_be_kv_free(&be, kv);
    p3_be_buffer_free(&be, bq);
    p3_be_buffer_free(&be, bo);
    p3_free(qkv);
    p3_free(kc);
    p3_free(vc);
    p3_backend_close(&be);
}

/* A kernel that fails to build is reported with the build log (here: an undeclared name). */
P3_TEST(opencl_build_failure_shows_the_log) {
    p3_backend be;
    if (!open_ocl(t, &be)) return;
    p3_backend_close(&be);
    p3_error err = {0};
    const char *bad = "__kernel void p3_broken(__global float *x) {\n"
                      "    x[0] = no_such_name;\n"
                      "}\n";
    CHECK_STATUS(p3_opencl_build_test(0, bad, &err), PHI3C_ERR_BACKEND);
    CHECK_MSG(strstr(err.message, "failed to build") && strstr(err.message, "no_such_name"),
              "message: %s", err.message);
    CHECK_OK(
        p3_opencl_build_test(0, "__kernel void p3_fine(__global float *x) { x[0] = 1.0f; }", &err),
        &err);
}
