/* l0_spirv.h: the Level Zero backend's SPIR-V modules, generated at build time into build/gen/ by
 * kernels/level_zero/build.mk: the .cl files of kernels/clk/ compiled offline once per
 * variant (kernels/level_zero/cl2spv.sh). */
#ifndef P3_L0_SPIRV_H
#define P3_L0_SPIRV_H

#include <stddef.h>

typedef struct p3_l0_module {
    const char *variant; /* "portable", "int-dot-emulated", "intel-sg" */
    const unsigned char *spirv;
    size_t size;
} p3_l0_module;

extern const p3_l0_module p3_l0_modules[]; /* ends with a zero entry */
extern const size_t p3_l0_module_count;    /* 0 when the build had no SPIR-V toolchain */
extern const char p3_l0_spirv_missing[];   /* which tools were missing, "" otherwise */

#endif /* P3_L0_SPIRV_H */
