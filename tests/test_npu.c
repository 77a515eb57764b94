/* test_npu.c: the NPU backend's clear errors, seen through `phi3c info` in a child process whose
 * environment takes away the loader, the driver, the NPU device or the graph extension (the last
 * two need the test driver of tests/l0driver/, which tests/stages/npu.sh names in
 * ZE_ENABLE_ALT_DRIVERS), and opening the backend by name. No NPU exists here: nothing in this
 * file runs a graph. */
#include "backend.h"
#include "harness.h"
#include "int4.h"
#include "ref.h"

#include <stdlib.h>
#include <string.h>

/* The level-zero-npu line of `phi3c info` run with extra environment assignments (heap). */
static char *npu_info_line(p3_test_ctx *t, const char *env) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "env %s %s info", env, p3_test_cli());
    p3_cmd_result res;
    if (!p3_test_run(t, cmd, &res)) return NULL;
    CHECK_MSG(res.exit_code == 0, "%s: %s", cmd, res.err ? res.err : "");
    char *line = res.out ? strstr(res.out, "level-zero-npu") : NULL;
    char *copy = NULL;
    if (CHECK_MSG(line != NULL, "phi3c info does not list level-zero-npu: %s",
                  res.out ? res.out : "")) {
        size_t n = strcspn(line, "\n");
        copy = p3_malloc(n + 1);
        if (copy) {
            memcpy(copy, line, n);
            copy[n] = '\0';
        }
    }
    p3_cmd_result_free(&res);
    return copy;
}

static bool sanitizer_skip(p3_test_ctx *t, const char *line) {
    if (!strstr(line, "sanitizer build")) return false;
    p3_test_skip(t, "sanitizer build probes only ZE_ENABLE_ALT_DRIVERS");
    return true;
}

static const char *test_driver(void) {
    const char *d = getenv("ZE_ENABLE_ALT_DRIVERS");
    return d && strstr(d, "libp3_l0_test_driver") ? d : NULL;
}

P3_TEST(npu_probe_without_loader) {
    char *line = npu_info_line(t, "PHI3C_ZE_LOADER=libze_loader_phi3c_missing.so.1");
    if (!line) return;
    CHECK_MSG(strstr(line, "not available") && strstr(line, "libze_loader_phi3c_missing.so.1") &&
                  strstr(line, "not found"),
              "%s", line);
    p3_free(line);
}

P3_TEST(npu_probe_without_driver) {
    char *line = npu_info_line(t, "ZE_ENABLE_ALT_DRIVERS=/nonexistent/libze_phi3c_none.so");
    if (!line) return;
    if (strstr(line, "Level Zero loader") && strstr(line, "not found")) {
        p3_test_skip(t, "no Level Zero loader installed (libze1)");
    } else if (!strstr(line, "without the Level Zero headers")) {
        CHECK_MSG(strstr(line, "not available") && strstr(line, "no Level Zero driver found") &&
                      strstr(line, "libze_intel_npu.so") && strstr(line, "ZE_ENABLE_ALT_DRIVERS"),
                  "%s", line);
    }
    p3_free(line);
}

P3_TEST(npu_probe_driver_without_npu) {
    const char *drv = test_driver();
    if (!drv) {
        p3_test_skip(t, "needs the test driver (tests/stages/npu.sh)");
        return;
    }
    char env[1024];
    snprintf(env, sizeof env, "ZE_ENABLE_ALT_DRIVERS='%s'", drv);
    char *line = npu_info_line(t, env);
    if (!line) return;
    if (!sanitizer_skip(t, line))
        CHECK_MSG(strstr(line, "not available") && strstr(line, "1 Level Zero driver(s) found") &&
                      strstr(line, "no NPU (VPU-type) device"),
                  "%s", line);
    p3_free(line);
}

P3_TEST(npu_probe_without_graph_extension) {
    const char *drv = test_driver();
    if (!drv) {
        p3_test_skip(t, "needs the test driver (tests/stages/npu.sh)");
        return;
    }
    char env[1024];
    snprintf(env, sizeof env, "P3_L0DRV_DEVICE_TYPE=vpu ZE_ENABLE_ALT_DRIVERS='%s'", drv);
    char *line = npu_info_line(t, env);
    if (!line) return;
    if (!sanitizer_skip(t, line))
        CHECK_MSG(strstr(line, "not available") &&
                      strstr(line, "does not offer the graph extension (ZE_extension_graph)"),
                  "%s", line);
    p3_free(line);
}

P3_TEST(npu_open_unavailable_is_clear) {
    p3_backend_info info;
    bool listed = false;
    for (size_t i = 0; i < p3_backend_count(); i++) {
        p3_backend_info_at(i, &info);
        if (info.name && strcmp(info.name, "level-zero-npu") == 0) {
            listed = true;
            break;
        }
    }
    if (!CHECK_MSG(listed, "level-zero-npu is not in the registry")) return;
    if (info.available) {
        p3_test_skip(t, "an NPU is present: %s", info.devices);
        return;
    }
    p3_backend be;
    p3_error err = {0};
    CHECK_STATUS(p3_backend_open("level-zero-npu", NULL, &be, &err), PHI3C_ERR_UNAVAILABLE);
    CHECK_MSG(strstr(err.message, "level-zero-npu is not available") &&
                  strstr(err.message, info.why),
              "%s", err.message);
    /* auto never picks it: cpu comes first */
    p3_backend_info first;
    p3_backend_info_at(0, &first);
    CHECK(strcmp(first.name, "cpu") == 0);
}

/* ---- the host code's success path, against the mock graph extension of tests/l0driver/l0graph.c
 * (P3_L0DRV_GRAPH_EXT=1, set by tests/stages/npu.sh for the npu_mock tests): the mock executes
 * the matmul the IR describes, so these check what the backend sends (IR shapes, NGRAPH_LITE
 * header, build flags, argument order, 4-bit layout, f16 staging, token chunking) and the CPU
 * placement of everything else. */
extern const p3_backend_iface p3_backend_level_zero_npu;

static bool open_mock(p3_test_ctx *t, p3_backend *be) {
    if (!test_driver() || !getenv("P3_L0DRV_GRAPH_EXT")) {
        p3_test_skip(t, "needs the test driver's mock graph extension (tests/stages/npu.sh)");
        return false;
    }
    char why[256] = "", devices[256] = "";
    if (!CHECK_MSG(p3_backend_level_zero_npu.probe(why, sizeof why, devices, sizeof devices),
                   "probe with the mock: %s", why))
        return false;
    p3_error err = {0};
    p3_backend_options opt = {.n_threads = 1};
    be->iface = &p3_backend_level_zero_npu;
    return CHECK_OK(p3_backend_level_zero_npu.create(&opt, &be->ctx, &err), &err);
}

static uint64_t rng = 88172645463325252u;
static float urand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static double nmse(const float *y, const float *ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num += ((double)y[i] - ref[i]) * ((double)y[i] - ref[i]);
        den += (double)ref[i] * ref[i];
    }
    return den > 0 ? num / den : num;
}

P3_TEST(npu_mock_int4_matmul_chunks) {
    p3_backend be;
    if (!open_mock(t, &be)) return;
    enum { O = 200, K = 256, MAXT = 40 };
    p3_block_i4s *blocks = p3_malloc(O * (K / P3_QK) * sizeof *blocks);
    float *row = p3_malloc(K * sizeof(float)), *x = p3_malloc(MAXT * K * sizeof(float));
    float *y = p3_malloc(MAXT * O * sizeof(float)), *ref = p3_malloc(MAXT * O * sizeof(float));
    p3_error err = {0};
    p3_weight *w = NULL;
    p3_buffer *bx = NULL, *by = NULL;
    if (!CHECK(blocks && row && x && y && ref)) goto out;
    for (int o = 0; o < O; o++) {
        for (int k = 0; k < K; k++) row[k] = urand() * 0.1f;
        p3_quantize_row_i4s(row, K, blocks + o * (K / P3_QK), P3_QUANT_RTN);
    }
    for (int i = 0; i < MAXT * K; i++) x[i] = urand() * 2.0f;
    p3_weight_desc d = {"w", P3_DT_I4G128S, O, K, blocks, P3_ACT_F32};
    if (!CHECK_OK(p3_be_weight_upload(&be, &d, &w, &err), &err) ||
        !CHECK_OK(p3_be_buffer_alloc(&be, MAXT * K * sizeof(float), &bx, &err), &err) ||
        !CHECK_OK(p3_be_buffer_alloc(&be, MAXT * O * sizeof(float), &by, &err), &err) ||
        !CHECK_OK(p3_be_write(&be, p3_ref_at(bx, 0), x, MAXT * K * sizeof(float), &err), &err))
        goto out;
    /* 1: decode graph; 5: padded to 16; 40: a 32-token graph, then 8 padded to 16 */
    static const int counts[] = {1, 5, 40};
    for (size_t c = 0; c < P3_ARRAY_LEN(counts); c++) {
        int n = counts[c];
        if (!CHECK_OK(p3_be_matmul(&be, p3_ref_at(by, 0), p3_ref_at(bx, 0), w, n, &err), &err) ||
            !CHECK_OK(p3_be_read(&be, p3_ref_at(by, 0), y, (size_t)n * O * sizeof(float), &err),
                      &err))
            break;
        CHECK_OK(p3_matmul_w4a32_ref(ref, x, blocks, P3_DT_I4G128S, O, K, n), &err);
        double e = nmse(y, ref, (size_t)n * O);
        CHECK_MSG(e <= 1e-6, "%d tokens: NMSE %.3e against w4a32 (f16 bound 1e-6)", n, e);
    }
    /* the INT4 table as an embedding: rows dequantized on the host, exactly */
    int32_t ids[2] = {3, O - 1};
    p3_buffer *bid = NULL;
    if (CHECK_OK(p3_be_buffer_alloc(&be, sizeof ids, &bid, &err), &err) &&
        CHECK_OK(p3_be_write(&be, p3_ref_at(bid, 0), ids, sizeof ids, &err), &err) &&
        CHECK_OK(p3_be_embed(&be, p3_ref_at(bx, 0), w, p3_ref_at(bid, 0), 2, &err), &err) &&
        CHECK_OK(p3_be_read(&be, p3_ref_at(bx, 0), y, 2 * K * sizeof(float), &err), &err)) {
        p3_dequantize_row_i4s(blocks + 3 * (K / P3_QK), K, ref);
        p3_dequantize_row_i4s(blocks + (O - 1) * (K / P3_QK), K, ref + K);
        CHECK(memcmp(y, ref, 2 * K * sizeof(float)) == 0);
        ids[0] = O; /* out of the table */
        CHECK_OK(p3_be_write(&be, p3_ref_at(bid, 0), ids, sizeof ids, &err), &err);
        CHECK_STATUS(p3_be_embed(&be, p3_ref_at(bx, 0), w, p3_ref_at(bid, 0), 2, &err),
                     PHI3C_ERR_INVALID_ARG);
    }
    p3_be_buffer_free(&be, bid);
out:
    p3_be_buffer_free(&be, bx);
    p3_be_buffer_free(&be, by);
    p3_be_weight_free(&be, w);
    p3_backend_close(&be);
    p3_free(blocks);
    p3_free(row);
    p3_free(x);
    p3_free(y);
    p3_free(ref);
}

P3_TEST(npu_mock_other_ops_on_cpu) {
    p3_backend be;
    if (!open_mock(t, &be)) return;
    enum { O = 3, K = 5, N = 2 };
    float w32[O * K], x[N * K], y[N * O], ref[N * K], norm[N * K], gain[K]; /* K > O */
    for (int i = 0; i < O * K; i++) w32[i] = urand();
    for (int i = 0; i < N * K; i++) x[i] = urand();
    for (int i = 0; i < K; i++) gain[i] = 1.0f + urand() * 0.5f;
    p3_error err = {0};
    p3_weight *w = NULL;
    p3_buffer *bx = NULL, *by = NULL, *bg = NULL;
    p3_weight_desc d = {"w_f32", P3_DT_F32, O, K, w32, P3_ACT_F32};
    char desc[256] = "";
    be.iface->describe(be.ctx, desc, sizeof desc);
    CHECK_MSG(strstr(desc, "level-zero-npu") && strstr(desc, "cpu"), "%s", desc);
    if (CHECK_OK(p3_be_weight_upload(&be, &d, &w, &err), &err) &&
        CHECK_OK(p3_be_buffer_alloc(&be, sizeof x, &bx, &err), &err) &&
        CHECK_OK(p3_be_buffer_alloc(&be, sizeof y, &by, &err), &err) &&
        CHECK_OK(p3_be_buffer_alloc(&be, sizeof gain, &bg, &err), &err) &&
        CHECK_OK(p3_be_write(&be, p3_ref_at(bx, 0), x, sizeof x, &err), &err) &&
        CHECK_OK(p3_be_write(&be, p3_ref_at(bg, 0), gain, sizeof gain, &err), &err) &&
        CHECK_OK(p3_be_matmul(&be, p3_ref_at(by, 0), p3_ref_at(bx, 0), w, N, &err), &err) &&
        CHECK_OK(p3_be_read(&be, p3_ref_at(by, 0), y, sizeof y, &err), &err)) {
        CHECK_OK(p3_ref_matmul(ref, x, w32, P3_DT_F32, O, K, N), &err);
        CHECK_MSG(nmse(y, ref, N * O) < 1e-12, "F32 matmul on the CPU: NMSE %.3e",
                  nmse(y, ref, N * O));
        p3_ref_rmsnorm(ref, x, gain, N, K, 1e-5f);
        if (CHECK_OK(p3_be_rmsnorm(&be, p3_ref_at(bx, 0), p3_ref_at(bx, 0), p3_ref_at(bg, 0), N, K,
                                   1e-5f, &err),
                     &err) &&
            CHECK_OK(p3_be_read(&be, p3_ref_at(bx, 0), norm, sizeof norm, &err), &err))
            CHECK_MSG(nmse(norm, ref, N * K) < 1e-12, "rmsnorm on the CPU: NMSE %.3e",
                      nmse(norm, ref, N * K));
    }
    p3_be_buffer_free(&be, bx);
    p3_be_buffer_free(&be, by);
    p3_be_buffer_free(&be, bg);
    p3_be_weight_free(&be, w);
    p3_backend_close(&be);
}
