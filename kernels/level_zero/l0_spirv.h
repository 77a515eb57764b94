/* l0_spirv.h: the Level Zero backend's SPIR-V module, generated at build time into build/gen/ by
 * kernels/level_zero/build.mk from l0_kernels.cl. */
#ifndef P3_L0_SPIRV_H
#define P3_L0_SPIRV_H

#include <stddef.h>

extern const unsigned char p3_l0_spirv[];
extern const size_t p3_l0_spirv_size;    /* 0 when the build had no SPIR-V toolchain */
extern const char p3_l0_spirv_missing[]; /* which tools were missing, "" otherwise */

#endif /* P3_L0_SPIRV_H */
