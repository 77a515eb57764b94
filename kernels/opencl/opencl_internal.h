/* opencl_internal.h: test hooks of the OpenCL backend (not part of the engine's interface). */
#ifndef P3_OPENCL_INTERNAL_H
#define P3_OPENCL_INTERNAL_H

#include "p3.h"

/* Opens device `device` as the backend does and builds `source` with the backend's build path,
 * so tests can check how a kernel that fails to build is reported. */
p3_status p3_opencl_build_test(int device, const char *source, p3_error *err);

#endif /* P3_OPENCL_INTERNAL_H */
