/* kernels_scalar.c: the CPU backend's scalar level, which is the reference itself (kernels/ref.h,
 * quant/int4.h) applied to the row range a thread owns, plus portable pieces other levels reuse. */
#include "cpu.h"
#include "ref.h"

#include <math.h>

void cpu_matmul_plain_scalar(float *y, const float *x, const cpu_weight *w, int n_tokens,
                             int64_t n0, int64_t n1) {
    size_t rows = (size_t)w->pub.rows, cols = (size_t)w->pub.cols;
    for (int t = 0; t < n_tokens; t++)
        p3_ref_matmul(y + (size_t)t * rows + (size_t)n0, x + (size_t)t * cols,
                      w->data + (size_t)n0 * w->row_bytes, w->pub.dtype, n1 - n0, w->pub.cols, 1);
}

void cpu_matmul_w4a32_scalar(float *y, const float *x, const cpu_weight *w, int n_tokens,
                             int64_t n0, int64_t n1) {
    size_t rows = (size_t)w->pub.rows, cols = (size_t)w->pub.cols;
    for (int t = 0; t < n_tokens; t++)
        p3_matmul_w4a32_ref(y + (size_t)t * rows + (size_t)n0, x + (size_t)t * cols,
                            w->data + (size_t)n0 * w->row_bytes, w->pub.dtype, n1 - n0, w->pub.cols,
                            1);
}

void cpu_quantize_act_scalar(const float *x, int64_t k, p3_block_q8g *out) {
    p3_quantize_act_q8g(x, k, out);
}

/* Two passes exactly like the reference, reading one cache row at a time in any cache format. */
void cpu_attend_scalar(const cpu_attn_job *job) {
    const cpu_kv *kv = job->kv;
    int hd = kv->pub.desc.head_dim;
    float row[512];
    float m = -INFINITY, sum = 0.0f;
    for (int j = job->lo; j <= job->hi; j++) {
        cpu_kv_load_row(kv, false, job->layer, job->kv_head, j, row);
        float s = p3_ref_dot(job->q, row, hd) * job->scale;
        if (s > m) m = s;
    }
    for (int d = 0; d < hd; d++) job->out[d] = 0.0f;
    for (int j = job->lo; j <= job->hi; j++) {
        cpu_kv_load_row(kv, false, job->layer, job->kv_head, j, row);
        float e = p3_ref_attn_weight(p3_ref_dot(job->q, row, hd) * job->scale - m);
        sum += e;
        cpu_kv_load_row(kv, true, job->layer, job->kv_head, j, row);
        for (int d = 0; d < hd; d++) job->out[d] += e * row[d];
    }
    for (int d = 0; d < hd; d++) job->out[d] /= sum;
}

static void rmsnorm_row_scalar(float *out, const float *x, const float *w, int dim, float eps) {
    p3_ref_rmsnorm(out, x, w, 1, dim, eps);
}

static void swiglu_row_scalar(float *out, const float *gate_up, int dim) {
    p3_ref_swiglu(out, gate_up, 1, dim);
}

static void store_f16_scalar(uint16_t *dst, const float *src, int n) {
    for (int i = 0; i < n; i++) dst[i] = p3_f32_to_f16(src[i]);
}

const cpu_isa cpu_isa_scalar = {
    .name = "scalar",
    .matmul_plain = cpu_matmul_plain_scalar,
    .matmul_w4a32 = cpu_matmul_w4a32_scalar,
    .quantize_act = cpu_quantize_act_scalar,
    .matmul_w4a8 = NULL,
    .attend = cpu_attend_scalar,
    .rmsnorm_row = rmsnorm_row_scalar,
    .swiglu_row = swiglu_row_scalar,
    .add = p3_ref_add,
    .store_f16 = store_f16_scalar,
};

/* Portable C version of the panel kernel (layout in cpu.h): what the SIMD levels compute, in the
 * same order, bit-identical to p3_matmul_w4a8_ref. */
void cpu_matmul_w4a8_panels_c(float *y, const p3_block_q8g *xa, const cpu_weight *w, int n_tokens,
                              int64_t p0, int64_t p1) {
    int64_t rows = w->pub.rows, ng = w->n_groups;
    for (int64_t p = p0; p < p1; p++)
        for (int t = 0; t < n_tokens; t++) {
            float acc[CPU_PANEL] = {0};
            for (int64_t g = 0; g < ng; g++) {
                size_t pg = (size_t)(p * ng + g);
                const uint8_t *src = w->data + pg * CPU_GROUP_BYTES;
                const p3_block_q8g *a = &xa[(size_t)t * (size_t)ng + (size_t)g];
                int32_t dot[CPU_PANEL] = {0};
                for (int c = 0; c < P3_QK / 8; c++)
                    for (int r = 0; r < CPU_PANEL; r++)
                        for (int b = 0; b < 4; b++) {
                            uint8_t byte = src[c * CPU_CHUNK + r * 4 + b];
                            dot[r] += (byte & 0x0f) * a->qs[4 * c + b];
                            dot[r] += (byte >> 4) * a->qs[64 + 4 * c + b];
                        }
                for (int r = 0; r < CPU_PANEL; r++) {
                    int32_t z = w->zeros ? w->zeros[pg * CPU_PANEL + r] : 8;
                    float d = p3_f16_to_f32(w->scales[pg * CPU_PANEL + r]);
                    acc[r] += d * a->d * (float)(dot[r] - z * a->sum);
                }
            }
            for (int r = 0; r < CPU_PANEL && p * CPU_PANEL + r < rows; r++)
                y[(size_t)t * (size_t)rows + (size_t)(p * CPU_PANEL + r)] = acc[r];
        }
}
