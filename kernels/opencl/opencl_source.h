/* opencl_source.h: the backend's OpenCL C kernels (the .cl files of kernels/clk/), embedded at
 * build time by kernels/opencl/build.mk into build/gen/opencl_source.c. */
#ifndef P3_OPENCL_SOURCE_H
#define P3_OPENCL_SOURCE_H

#include <stddef.h>

extern const char p3_opencl_source[];     /* NUL-terminated */
extern const size_t p3_opencl_source_len; /* without the NUL */

#endif /* P3_OPENCL_SOURCE_H */
