/* ocl_api.h: the OpenCL entry points the backend uses, loaded at run time from the ICD loader
 * (libOpenCL.so.1) with dlopen, so phi3c has no link-time dependency on OpenCL. */
#ifndef P3_OCL_API_H
#define P3_OCL_API_H

#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>

#include "p3.h"

/* X(name): every cl* function in the table, typed by the Khronos header's own prototype. */
#define P3_OCL_FUNCS(X)                                                                            \
    X(clGetPlatformIDs)                                                                            \
    X(clGetPlatformInfo)                                                                           \
    X(clGetDeviceIDs)                                                                              \
    X(clGetDeviceInfo)                                                                             \
    X(clCreateContext)                                                                             \
    X(clReleaseContext)                                                                            \
    X(clCreateCommandQueue)                                                                        \
    X(clReleaseCommandQueue)                                                                       \
    X(clCreateBuffer)                                                                              \
    X(clReleaseMemObject)                                                                          \
    X(clEnqueueWriteBuffer)                                                                        \
    X(clEnqueueReadBuffer)                                                                         \
    X(clEnqueueCopyBuffer)                                                                         \
    X(clEnqueueFillBuffer)                                                                         \
    X(clCreateProgramWithSource)                                                                   \
    X(clBuildProgram)                                                                              \
    X(clGetProgramBuildInfo)                                                                       \
    X(clReleaseProgram)                                                                            \
    X(clCreateKernel)                                                                              \
    X(clReleaseKernel)                                                                             \
    X(clSetKernelArg)                                                                              \
    X(clEnqueueNDRangeKernel)                                                                      \
    X(clFinish)

typedef struct p3_ocl_api {
    void *lib; /* dlopen handle */
#define P3_OCL_FIELD(name) __typeof__(&name) name;
    P3_OCL_FUNCS(P3_OCL_FIELD)
#undef P3_OCL_FIELD
} p3_ocl_api;

/* Opens the ICD loader and resolves every function; on failure fills why and returns false. */
bool p3_ocl_api_load(p3_ocl_api *api, char *why, size_t why_len);
void p3_ocl_api_unload(p3_ocl_api *api);
/* "CL_OUT_OF_RESOURCES (-5)" style names for messages. */
const char *p3_ocl_strerror(cl_int code);

#endif /* P3_OCL_API_H */
