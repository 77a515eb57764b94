/* test_npu.c: the NPU backend's clear errors, seen through `phi3c info` in a child process whose
 * environment takes away the loader, the driver, the NPU device or the graph extension (the last
 * two need the test driver of tests/l0driver/, which tests/stages/npu.sh names in
 * ZE_ENABLE_ALT_DRIVERS), and opening the backend by name. No NPU exists here: nothing in this
 * file runs a graph. */
#include "backend.h"
#include "harness.h"

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
