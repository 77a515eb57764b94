/* test_backend_probe.c: backends are probed lazily (issue 15, item 3). A CPU run, named or
 * `auto`, must not load a GPU driver library; `phi3c info`, which probes every backend, must, so
 * the check can see a load when one happens. Watched with glibc's LD_DEBUG=libs, which reports
 * every library search, dlopen included, on stderr. */
#include "harness.h"

#include <stdio.h>
#include <string.h>

static const char *const gpu_libraries[] = {"libOpenCL", "libze_loader"};

/* Runs `phi3c ARGS` under LD_DEBUG=libs; returns the first GPU library its loader searched for,
 * or NULL. *ok is false when the command itself failed. */
static const char *gpu_library_loaded(p3_test_ctx *t, const char *args, bool *ok) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "LD_DEBUG=libs %s %s", p3_test_cli(), args);
    p3_cmd_result r;
    *ok = false;
    if (!p3_test_run(t, cmd, &r)) return NULL;
    *ok = CHECK_MSG(r.exit_code == 0, "%s: exit %d: %.500s", cmd, r.exit_code, r.err ? r.err : "");
    const char *found = NULL;
    for (size_t i = 0; i < P3_ARRAY_LEN(gpu_libraries) && !found; i++)
        if (r.err && strstr(r.err, gpu_libraries[i])) found = gpu_libraries[i];
    p3_cmd_result_free(&r);
    return found;
}

P3_TEST(backend_cpu_run_loads_no_gpu_library) {
    static const char *const backends[] = {"cpu", "auto"};
    for (size_t i = 0; i < P3_ARRAY_LEN(backends); i++) {
        char args[512];
        snprintf(args, sizeof args,
                 "run -m tests/fixtures/mini4k/model-f32.gguf --prompt-ids \"1 2 3\" -n 2 "
                 "--greedy -t 1 --backend %s",
                 backends[i]);
        bool ok;
        const char *lib = gpu_library_loaded(t, args, &ok);
        CHECK_MSG(ok && !lib, "run --backend %s searched for %s", backends[i], lib ? lib : "-");
    }
}

/* The control: the probes of `info` do search for the GPU libraries (found or not). */
P3_TEST(backend_info_probes_the_gpu_libraries) {
    bool ok;
    const char *lib = gpu_library_loaded(t, "info", &ok);
    CHECK_MSG(ok && lib, "phi3c info searched for no GPU library: LD_DEBUG sees nothing?");
}
