/* ocl_api.c: loads the OpenCL ICD loader with dlopen and names OpenCL error codes. */
#include "ocl_api.h"

#include <CL/cl_ext.h>
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

bool p3_ocl_api_load(p3_ocl_api *api, char *why, size_t why_len) {
    memset(api, 0, sizeof *api);
    api->lib = dlopen("libOpenCL.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!api->lib) {
        snprintf(why, why_len,
                 "libOpenCL.so.1 not found (install an OpenCL ICD loader, e.g. "
                 "Debian ocl-icd-libopencl1, and a driver such as pocl-opencl-icd)");
        return false;
    }
    /* dlsym returns void *; ISO C has no cast to function pointers, so copy the bits. */
#define P3_OCL_RESOLVE(name)                                                                       \
    {                                                                                              \
        void *sym = dlsym(api->lib, #name);                                                        \
        if (!sym) {                                                                                \
            snprintf(why, why_len, "libOpenCL.so.1 lacks %s (an OpenCL 1.2 loader is needed)",     \
                     #name);                                                                       \
            p3_ocl_api_unload(api);                                                                \
            return false;                                                                          \
        }                                                                                          \
        memcpy(&api->name, &sym, sizeof sym);                                                      \
    }
    P3_OCL_FUNCS(P3_OCL_RESOLVE)
#undef P3_OCL_RESOLVE
    return true;
}

void p3_ocl_api_unload(p3_ocl_api *api) {
    if (api->lib) dlclose(api->lib);
    memset(api, 0, sizeof *api);
}

const char *p3_ocl_strerror(cl_int code) {
    switch (code) {
#define P3_CL_CASE(c)                                                                              \
    case c:                                                                                        \
        return #c;
        P3_CL_CASE(CL_SUCCESS)
        P3_CL_CASE(CL_DEVICE_NOT_FOUND)
        P3_CL_CASE(CL_DEVICE_NOT_AVAILABLE)
        P3_CL_CASE(CL_COMPILER_NOT_AVAILABLE)
        P3_CL_CASE(CL_MEM_OBJECT_ALLOCATION_FAILURE)
        P3_CL_CASE(CL_OUT_OF_RESOURCES)
        P3_CL_CASE(CL_OUT_OF_HOST_MEMORY)
        P3_CL_CASE(CL_BUILD_PROGRAM_FAILURE)
        P3_CL_CASE(CL_INVALID_VALUE)
        P3_CL_CASE(CL_INVALID_PLATFORM)
        P3_CL_CASE(CL_INVALID_DEVICE)
        P3_CL_CASE(CL_INVALID_CONTEXT)
        P3_CL_CASE(CL_INVALID_COMMAND_QUEUE)
        P3_CL_CASE(CL_INVALID_MEM_OBJECT)
        P3_CL_CASE(CL_INVALID_BUILD_OPTIONS)
        P3_CL_CASE(CL_INVALID_PROGRAM)
        P3_CL_CASE(CL_INVALID_PROGRAM_EXECUTABLE)
        P3_CL_CASE(CL_INVALID_KERNEL_NAME)
        P3_CL_CASE(CL_INVALID_KERNEL)
        P3_CL_CASE(CL_INVALID_ARG_INDEX)
        P3_CL_CASE(CL_INVALID_ARG_VALUE)
        P3_CL_CASE(CL_INVALID_ARG_SIZE)
        P3_CL_CASE(CL_INVALID_KERNEL_ARGS)
        P3_CL_CASE(CL_INVALID_WORK_DIMENSION)
        P3_CL_CASE(CL_INVALID_WORK_GROUP_SIZE)
        P3_CL_CASE(CL_INVALID_WORK_ITEM_SIZE)
        P3_CL_CASE(CL_INVALID_GLOBAL_OFFSET)
        P3_CL_CASE(CL_INVALID_BUFFER_SIZE)
        P3_CL_CASE(CL_INVALID_GLOBAL_WORK_SIZE)
        P3_CL_CASE(CL_INVALID_OPERATION)
        P3_CL_CASE(CL_PLATFORM_NOT_FOUND_KHR)
#undef P3_CL_CASE
    default:
        return "unknown OpenCL error";
    }
}
