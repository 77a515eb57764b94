/* test_level_zero.c: the Level Zero backend through the real loader. The ops run when a driver
 * with a GPU device is present (tests/stages/level_zero.sh loads the test driver of
 * tests/l0driver/ with ZE_ENABLE_ALT_DRIVERS); the clear-error tests run the probe in a child
 * process with the loader, the driver or the device taken away. */
#include "backend.h"
#include "harness.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern const p3_backend_iface p3_backend_level_zero;

/* PHI3C_L0_PROBE_ONLY=1 turns the test binary into a probe reporter (one line, then exit), so a
 * test can look at the probe in a process whose environment it chose: the loader caches zeInit. */
__attribute__((constructor)) static void probe_only_mode(void) {
    if (!getenv("PHI3C_L0_PROBE_ONLY")) return;
    char why[256] = "", devices[256] = "";
    bool ok = p3_backend_level_zero.probe(why, sizeof why, devices, sizeof devices);
    printf("available=%d why=%s devices=%s\n", ok, why, devices);
    fflush(stdout);
    _exit(0);
}

/* Runs the probe reporter with extra environment assignments; returns its stdout (heap). */
static char *probe_in_child(p3_test_ctx *t, const char *env) {
    char self[512];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (!CHECK(n > 0)) return NULL;
    self[n] = '\0';
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "env PHI3C_L0_PROBE_ONLY=1 %s '%s'", env, self);
    p3_cmd_result res;
    if (!p3_test_run(t, cmd, &res)) return NULL;
    CHECK_EQ_INT(res.exit_code, 0);
    char *out = res.out;
    res.out = NULL;
    p3_cmd_result_free(&res);
    return out;
}

/* The test driver's path, when the stage set it up. */
static const char *test_driver(void) {
    const char *d = getenv("ZE_ENABLE_ALT_DRIVERS");
    return d && strstr(d, "libp3_l0_test_driver") ? d : NULL;
}

P3_TEST(level_zero_probe_without_loader) {
    char *out = probe_in_child(t, "PHI3C_ZE_LOADER=libze_loader_phi3c_missing.so.1");
    if (!out) return;
    CHECK_MSG(strstr(out, "available=0") && strstr(out, "libze_loader_phi3c_missing.so.1") &&
                  strstr(out, "not found"),
              "probe output: %s", out);
    p3_free(out);
}

P3_TEST(level_zero_probe_without_driver) {
    char *out = probe_in_child(t, "ZE_ENABLE_ALT_DRIVERS=/nonexistent/libze_phi3c_none.so");
    if (!out) return;
    if (strstr(out, "sanitizer build")) {
        p3_test_skip(t, "sanitizer build probes only ZE_ENABLE_ALT_DRIVERS");
    } else if (strstr(out, "Level Zero loader") && strstr(out, "not found")) {
        p3_test_skip(t, "no Level Zero loader installed (libze1)");
    } else if (strstr(out, "without SPIR-V")) {
        p3_test_skip(t, "built without SPIR-V modules");
    } else {
        CHECK_MSG(strstr(out, "available=0") && strstr(out, "no Level Zero driver found") &&
                      strstr(out, "ZE_ENABLE_ALT_DRIVERS"),
                  "probe output: %s", out);
    }
    p3_free(out);
}

P3_TEST(level_zero_probe_without_device) {
    const char *drv = test_driver();
    if (!drv) {
        p3_test_skip(t, "needs the test driver (tests/stages/level_zero.sh)");
        return;
    }
    char env[1024];
    snprintf(env, sizeof env, "P3_L0DRV_NO_DEVICE=1 ZE_ENABLE_ALT_DRIVERS='%s'", drv);
    char *out = probe_in_child(t, env);
    if (!out) return;
    CHECK_MSG(strstr(out, "available=0") && strstr(out, "no GPU device"), "probe output: %s", out);
    p3_free(out);
}

/* Opens the backend or skips the test, saying why. */
static bool open_l0(p3_test_ctx *t, p3_backend *be) {
    char why[256] = "", devices[256] = "";
    if (!p3_backend_level_zero.probe(why, sizeof why, devices, sizeof devices)) {
        p3_test_skip(t, "level-zero unavailable: %s", why);
        return false;
    }
    p3_error err = {0};
    be->iface = &p3_backend_level_zero;
    p3_backend_options opt = {0};
    return CHECK_OK(p3_backend_level_zero.create(&opt, &be->ctx, &err), &err);
}

P3_TEST(level_zero_first_op_add) {
    p3_backend be;
    if (!open_l0(t, &be)) return;
    enum { N = 1000 };
    float x[N], y[N], want[N], got[N];
    p3_test_rng rng;
    p3_test_rng_seed(&rng, 7);
    for (int i = 0; i < N; i++) {
        x[i] = p3_test_rng_normal(&rng);
        y[i] = p3_test_rng_normal(&rng);
        want[i] = x[i] + y[i];
    }
    p3_error err = {0};
    p3_buffer *bx = NULL, *by = NULL;
    CHECK_OK(p3_be_buffer_alloc(&be, sizeof x, &bx, &err), &err);
    CHECK_OK(p3_be_buffer_alloc(&be, sizeof y, &by, &err), &err);
    if (bx && by) {
        CHECK_OK(p3_be_write(&be, p3_ref_at(bx, 0), x, sizeof x, &err), &err);
        CHECK_OK(p3_be_write(&be, p3_ref_at(by, 0), y, sizeof y, &err), &err);
        CHECK_OK(p3_be_add(&be, p3_ref_at(bx, 0), p3_ref_at(by, 0), N, &err), &err);
        CHECK_OK(p3_be_read(&be, p3_ref_at(bx, 0), got, sizeof got, &err), &err);
        CHECK_MSG(memcmp(got, want, sizeof got) == 0, "add differs: got[0]=%g want %g", got[0],
                  want[0]);
    }
    p3_be_buffer_free(&be, bx);
    p3_be_buffer_free(&be, by);
    p3_backend_close(&be);
}

/* The driver's build log must reach the error message (test driver hook P3_L0DRV_FAIL_BUILD). */
P3_TEST(level_zero_build_log_reported) {
    char why[256] = "", devices[256] = "";
    if (!test_driver() || !p3_backend_level_zero.probe(why, sizeof why, devices, sizeof devices)) {
        p3_test_skip(t, "needs the test driver (tests/stages/level_zero.sh)");
        return;
    }
    setenv("P3_L0DRV_FAIL_BUILD", "1", 1);
    void *ctx = NULL;
    p3_error err = {0};
    p3_backend_options opt = {0};
    CHECK_STATUS(p3_backend_level_zero.create(&opt, &ctx, &err), PHI3C_ERR_BACKEND);
    unsetenv("P3_L0DRV_FAIL_BUILD");
    CHECK_MSG(strstr(err.message, "build log") && strstr(err.message, "injected build failure"),
              "message: %s", err.message);
    CHECK(ctx == NULL);
}

P3_TEST(level_zero_device_oom_is_clear) {
    p3_backend be;
    if (!open_l0(t, &be)) return;
    p3_error err = {0};
    p3_buffer *b = NULL;
    CHECK_STATUS(p3_be_buffer_alloc(&be, (size_t)1 << 46, &b, &err), PHI3C_ERR_DEVICE_OOM);
    CHECK_MSG(strstr(err.message, "device memory") != NULL, "message: %s", err.message);
    CHECK(b == NULL);
    p3_backend_close(&be);
}

P3_TEST(level_zero_device_index_checked) {
    char why[256] = "", devices[256] = "";
    if (!p3_backend_level_zero.probe(why, sizeof why, devices, sizeof devices)) {
        p3_test_skip(t, "level-zero unavailable: %s", why);
        return;
    }
    void *ctx = NULL;
    p3_error err = {0};
    p3_backend_options opt = {.device = 99};
    CHECK_STATUS(p3_backend_level_zero.create(&opt, &ctx, &err), PHI3C_ERR_INVALID_ARG);
    CHECK_MSG(strstr(err.message, "device 99") != NULL, "message: %s", err.message);
}

/* The backend runs the OpenCL backend's kernels: the module it built is one of the embedded
 * variants of the .cl files of kernels/clk/, the test driver (not an Intel device) gets the
 * portable one, and an unknown variant is refused by name. */
P3_TEST(level_zero_runs_the_opencl_kernels_module) {
    p3_backend be;
    if (!open_l0(t, &be)) return;
    char desc[256];
    be.iface->describe(be.ctx, desc, sizeof desc);
    CHECK_MSG(strstr(desc, "kernels/clk as SPIR-V") && strstr(desc, "portable variant"),
              "describe: %s", desc);
    p3_backend_close(&be);
    void *ctx = NULL;
    p3_error err = {0};
    p3_backend_options opt = {.variant = "no-such-variant"};
    CHECK_STATUS(p3_backend_level_zero.create(&opt, &ctx, &err), PHI3C_ERR_INVALID_ARG);
    CHECK_MSG(strstr(err.message, "no-such-variant") && strstr(err.message, "int-dot-emulated"),
              "message: %s", err.message);
    CHECK(ctx == NULL);
}
