/* kernels_avx2.c: the CPU backend's avx2 level (compiled with its own ISA flags, used only when
 * cpuid reports the features). */
#include "cpu.h"
#include "ref.h"

static void rmsnorm_row_avx2(float *out, const float *x, const float *w, int dim, float eps) {
    p3_ref_rmsnorm(out, x, w, 1, dim, eps);
}

static void swiglu_row_avx2(float *out, const float *gate_up, int dim) {
    p3_ref_swiglu(out, gate_up, 1, dim);
}

static void store_f16_avx2(uint16_t *dst, const float *src, int n) {
    for (int i = 0; i < n; i++) dst[i] = p3_f32_to_f16(src[i]);
}

const cpu_isa cpu_isa_avx2 = {
    .name = "avx2",
    .matmul_plain = cpu_matmul_plain_scalar,
    .matmul_w4a32 = cpu_matmul_w4a32_scalar,
    .quantize_act = cpu_quantize_act_scalar,
    .matmul_w4a8 = cpu_matmul_w4a8_panels_c,
    .attend = cpu_attend_scalar,
    .rmsnorm_row = rmsnorm_row_avx2,
    .swiglu_row = swiglu_row_avx2,
    .add = p3_ref_add,
    .store_f16 = store_f16_avx2,
};
