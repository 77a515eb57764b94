/* l0_loader.c: opening the Level Zero loader with dlopen and the checks both Level Zero backends
 * (GPU and NPU) make before probing; see l0_loader.h. */
#if defined(__has_include)
#if __has_include(<level_zero/ze_api.h>)
#define P3_HAVE_ZE_HEADERS 1
#endif
#endif

#ifdef P3_HAVE_ZE_HEADERS
#include "l0_loader.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char p3_l0_no_driver_hint[] =
    "Intel GPUs need libze_intel_gpu.so.1 (intel-level-zero-gpu); an NPU driver installing "
    "libze_intel_npu.so needs ZE_ENABLE_ALT_DRIVERS=/path/libze_intel_npu.so";

const char *p3_ze_result_name(ze_result_t r) {
    switch (r) {
    case ZE_RESULT_SUCCESS:
        return "ZE_RESULT_SUCCESS";
    case ZE_RESULT_NOT_READY:
        return "ZE_RESULT_NOT_READY";
    case ZE_RESULT_ERROR_DEVICE_LOST:
        return "ZE_RESULT_ERROR_DEVICE_LOST";
    case ZE_RESULT_ERROR_OUT_OF_HOST_MEMORY:
        return "ZE_RESULT_ERROR_OUT_OF_HOST_MEMORY";
    case ZE_RESULT_ERROR_OUT_OF_DEVICE_MEMORY:
        return "ZE_RESULT_ERROR_OUT_OF_DEVICE_MEMORY";
    case ZE_RESULT_ERROR_MODULE_BUILD_FAILURE:
        return "ZE_RESULT_ERROR_MODULE_BUILD_FAILURE";
    case ZE_RESULT_ERROR_UNINITIALIZED:
        return "ZE_RESULT_ERROR_UNINITIALIZED";
    case ZE_RESULT_ERROR_UNSUPPORTED_FEATURE:
        return "ZE_RESULT_ERROR_UNSUPPORTED_FEATURE";
    case ZE_RESULT_ERROR_UNSUPPORTED_SIZE:
        return "ZE_RESULT_ERROR_UNSUPPORTED_SIZE";
    case ZE_RESULT_ERROR_INVALID_ARGUMENT:
        return "ZE_RESULT_ERROR_INVALID_ARGUMENT";
    case ZE_RESULT_ERROR_INVALID_NULL_POINTER:
        return "ZE_RESULT_ERROR_INVALID_NULL_POINTER";
    case ZE_RESULT_ERROR_INVALID_KERNEL_NAME:
        return "ZE_RESULT_ERROR_INVALID_KERNEL_NAME";
    default:
        return "Level Zero error";
    }
}

static const char *loader_name(void) {
    const char *env = getenv("PHI3C_ZE_LOADER");
    return env && *env ? env : "libze_loader.so.1";
}

p3_status p3_ze_fail(p3_error *err, const char *who, ze_result_t r, const char *what) {
    p3_status st = r == ZE_RESULT_ERROR_OUT_OF_DEVICE_MEMORY ? PHI3C_ERR_DEVICE_OOM
                   : r == ZE_RESULT_ERROR_OUT_OF_HOST_MEMORY ? PHI3C_ERR_NOMEM
                                                             : PHI3C_ERR_BACKEND;
    return p3_fail(err, st, "%s: %s failed (%s, 0x%x)", who, what, p3_ze_result_name(r),
                   (unsigned)r);
}

bool p3_l0_api_load(l0_api *api, char *why, size_t why_len) {
    const char *name = loader_name();
    void *lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        const char *e = dlerror();
        snprintf(why, why_len, "Level Zero loader %s not found (install libze1): %s", name,
                 e ? e : "dlopen failed");
        return false;
    }
#define P3_ZE_RESOLVE(fn, type)                                                                    \
    {                                                                                              \
        void *sym = dlsym(lib, #fn);                                                               \
        if (!sym) {                                                                                \
            snprintf(why, why_len, "Level Zero loader %s lacks %s", name, #fn);                    \
            return false;                                                                          \
        }                                                                                          \
        memcpy(&api->fn, &sym, sizeof sym);                                                        \
    }
    P3_ZE_FUNCS(P3_ZE_RESOLVE)
#undef P3_ZE_RESOLVE
    return true;
}

ze_result_t p3_l0_init(const l0_api *api) {
    return api->zeInit(0);
}

#if defined(__SANITIZE_ADDRESS__)
#define P3_ASAN_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define P3_ASAN_BUILD 1
#endif
#endif

bool p3_l0_sanitizer_may_probe(char *why, size_t why_len) {
#ifdef P3_ASAN_BUILD
    const char *alt = getenv("ZE_ENABLE_ALT_DRIVERS");
    if (!alt || !*alt) {
        snprintf(why, why_len,
                 "not probed in a sanitizer build unless ZE_ENABLE_ALT_DRIVERS names the drivers "
                 "(Intel's drivers dlopen with RTLD_DEEPBIND, which ASan refuses)");
        return false;
    }
#else
    (void)why;
    (void)why_len;
#endif
    return true;
}
#else
/* Built without libze-dev: nothing to share (both backends report it in their probe). */
typedef int p3_l0_loader_unused;
#endif
