/* l0_loader.h: the Level Zero loader opened with dlopen, shared by the GPU backend
 * (backend_level_zero.c) and the NPU backend (npu_backend.c): the entry points both resolve,
 * result names, the hint printed when no driver is found, and the checks made before probing. */
#ifndef P3_L0_LOADER_H
#define P3_L0_LOADER_H

#include <level_zero/ze_ddi.h>

#include "p3.h"
#include <stdbool.h>
#include <stddef.h>

#define P3_ZE_FUNCS(X)                                                                             \
    X(zeInit, ze_pfnInit_t)                                                                        \
    X(zeDriverGet, ze_pfnDriverGet_t)                                                              \
    X(zeDriverGetExtensionProperties, ze_pfnDriverGetExtensionProperties_t)                        \
    X(zeDriverGetExtensionFunctionAddress, ze_pfnDriverGetExtensionFunctionAddress_t)              \
    X(zeDeviceGet, ze_pfnDeviceGet_t)                                                              \
    X(zeDeviceGetProperties, ze_pfnDeviceGetProperties_t)                                          \
    X(zeDeviceGetCommandQueueGroupProperties, ze_pfnDeviceGetCommandQueueGroupProperties_t)        \
    X(zeContextCreate, ze_pfnContextCreate_t)                                                      \
    X(zeContextDestroy, ze_pfnContextDestroy_t)                                                    \
    X(zeCommandQueueCreate, ze_pfnCommandQueueCreate_t)                                            \
    X(zeCommandQueueDestroy, ze_pfnCommandQueueDestroy_t)                                          \
    X(zeCommandQueueExecuteCommandLists, ze_pfnCommandQueueExecuteCommandLists_t)                  \
    X(zeCommandListCreate, ze_pfnCommandListCreate_t)                                              \
    X(zeCommandListDestroy, ze_pfnCommandListDestroy_t)                                            \
    X(zeCommandListClose, ze_pfnCommandListClose_t)                                                \
    X(zeCommandListReset, ze_pfnCommandListReset_t)                                                \
    X(zeCommandListAppendLaunchKernel, ze_pfnCommandListAppendLaunchKernel_t)                      \
    X(zeCommandListAppendMemoryCopy, ze_pfnCommandListAppendMemoryCopy_t)                          \
    X(zeCommandListAppendMemoryFill, ze_pfnCommandListAppendMemoryFill_t)                          \
    X(zeCommandListAppendBarrier, ze_pfnCommandListAppendBarrier_t)                                \
    X(zeFenceCreate, ze_pfnFenceCreate_t)                                                          \
    X(zeFenceDestroy, ze_pfnFenceDestroy_t)                                                        \
    X(zeFenceHostSynchronize, ze_pfnFenceHostSynchronize_t)                                        \
    X(zeFenceReset, ze_pfnFenceReset_t)                                                            \
    X(zeMemAllocDevice, ze_pfnMemAllocDevice_t)                                                    \
    X(zeMemAllocHost, ze_pfnMemAllocHost_t)                                                        \
    X(zeMemFree, ze_pfnMemFree_t)                                                                  \
    X(zeModuleCreate, ze_pfnModuleCreate_t)                                                        \
    X(zeModuleDestroy, ze_pfnModuleDestroy_t)                                                      \
    X(zeModuleBuildLogGetString, ze_pfnModuleBuildLogGetString_t)                                  \
    X(zeModuleBuildLogDestroy, ze_pfnModuleBuildLogDestroy_t)                                      \
    X(zeKernelCreate, ze_pfnKernelCreate_t)                                                        \
    X(zeKernelDestroy, ze_pfnKernelDestroy_t)                                                      \
    X(zeKernelSetGroupSize, ze_pfnKernelSetGroupSize_t)                                            \
    X(zeKernelSetArgumentValue, ze_pfnKernelSetArgumentValue_t)

typedef struct l0_api {
#define P3_ZE_FIELD(name, type) type name;
    P3_ZE_FUNCS(P3_ZE_FIELD)
#undef P3_ZE_FIELD
} l0_api;

/* Kept under the registry's 256-byte `why`. Debian's loader 1.8 probes libze_intel_gpu.so.1 and
 * libze_intel_vpu.so.1 only; current NPU drivers install libze_intel_npu.so. */
extern const char p3_l0_no_driver_hint[];

const char *p3_ze_result_name(ze_result_t r);

/* Fails with "<who>: <what> failed (NAME, 0x...)", out-of-memory results mapped to their
 * statuses; P3_ZE_TRY returns it from a function that has `p3_error *err`. */
p3_status p3_ze_fail(p3_error *err, const char *who, ze_result_t r, const char *what);
#define P3_ZE_TRY(who, call, what)                                                                 \
    do {                                                                                           \
        ze_result_t r_ = (call);                                                                   \
        if (r_ != ZE_RESULT_SUCCESS) return p3_ze_fail(err, who, r_, what);                        \
    } while (0)

/* Opens the loader (libze_loader.so.1, or PHI3C_ZE_LOADER) and resolves every entry point. The
 * handle is never closed: drivers keep process-wide state that does not survive reloading. */
bool p3_l0_api_load(l0_api *api, char *why, size_t why_len);

/* zeInit for every driver type. The loader calls each driver's zeInit once per process and
 * drops a driver that refused the flags, so a GPU-only init would hide the NPU from a later
 * probe in the same process (and the reverse): both backends init with no flags and filter the
 * devices by type. */
ze_result_t p3_l0_init(const l0_api *api);

/* Intel's GPU and NPU drivers (and OpenCL ICD) dlopen with RTLD_DEEPBIND, which AddressSanitizer
 * refuses by aborting: a sanitizer build only probes drivers named in ZE_ENABLE_ALT_DRIVERS. */
bool p3_l0_sanitizer_may_probe(char *why, size_t why_len);

#endif /* P3_L0_LOADER_H */
