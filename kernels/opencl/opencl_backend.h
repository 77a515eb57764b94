/* opencl_backend.h: the OpenCL backend's method table (kernels/opencl/opencl_backend.c), listed
 * in kernels/registry.c. */
#ifndef P3_OPENCL_BACKEND_H
#define P3_OPENCL_BACKEND_H

#include "backend.h"

extern const p3_backend_iface p3_backend_opencl;

#endif /* P3_OPENCL_BACKEND_H */
