/* matmul.cl: the OpenCL backend's matmuls y[t][n] = sum_k x[t][k] W[n][k], for INT4 group-128
 * weights (w4a32: dequantized in-kernel, f32 accumulation) and plain f32/f16/bf16 weights.
 *
 * Layout (the host repacks at upload, kernels/clk/clk_ops.c): weights are stored
 * K-major ("transposed"), so the lanes of a work-group, which walk consecutive output rows,
 * read consecutive addresses at every step:
 *   INT4:  qw    uint  [cols/8][stride]  word (k8, n) = weights 8*k8 .. 8*k8+7 of row n, low
 *                                       nibble first, unsigned (0..15)
 *          scale half  [groups][stride]  the f16 group scale as stored (vload_half widens it
 *                                       exactly and needs no cl_khr_fp16)
 *          zero  uchar [groups][stride]  the group's zero point (8 for symmetric weights)
 *          stride = rows rounded up to 16, padding rows all zero (they add 0), so every 16-row
 *          block is whole and 64-byte aligned: Intel sub-group block reads need that.
 *   plain: w     type  [cols][rows]
 * Nibbles and scales live in separate arrays so the 4-byte weight words stay aligned and a
 * sub-group of 16 lanes reads one 64-byte line per step; activations are the same for every lane
 * (a broadcast load that the cache serves).
 *
 * Work-group: 16 rows x 4 K-slices (reqd size 16x4). Each K-slice walks every 4th group of 128
 * inputs, and the 4 partial sums meet in local memory: this gives 4x more work-items than one per
 * row, which decode needs to fill a GPU (3072 rows = 12288 work-items). A work-item computes TT
 * tokens at once (1 for decode, 4 for prefill), reusing each weight word TT times. Grid: (rows
 * rounded up to 16, 4, ceil(n_tokens / TT)). */

#define P3_MM_LR 16
#define P3_MM_LK 4

/* The 16 weight words of a 16-row block at element `base` (row 0 of the block), one per lane.
 * P3_INTEL_SG (the backend sets it when the device has cl_intel_subgroups): one block-read
 * message per sub-group of 16 (its lanes are the 16 rows of one K-slice), instead of a gather the
 * compiler cannot prove contiguous. Otherwise each lane loads its own word: the same addresses. */
#ifdef P3_INTEL_SG
#ifdef P3_DECLARE_INTEL_SG
/* Offline SPIR-V builds (kernels/level_zero/cl2spv.sh): clang-14's default header leaves Intel's
 * sub-group built-ins undeclared, and llvm-spirv turns this declaration into the
 * SPV_INTEL_subgroups block read. */
uint __attribute__((overloadable)) intel_sub_group_block_read(const __global uint *p);
#endif
#define P3_MM_SG_ATTR           __attribute__((intel_reqd_sub_group_size(16)))
#define P3_LOAD_WORDS(qw, base) intel_sub_group_block_read((const __global uint *)((qw) + (base)))
#else
#define P3_MM_SG_ATTR
#define P3_LOAD_WORDS(qw, base) ((qw)[(base) + (ulong)lx])
#endif

/* Writes the TT sums of the K-slices: every work-item reaches the barrier, even past the rows. */
#define P3_MM_REDUCE(TT)                                                                           \
    for (int t = 0; t < TT; t++) part[ly][t][lx] = acc[t];                                         \
    barrier(CLK_LOCAL_MEM_FENCE);                                                                  \
    if (ly == 0 && row < rows)                                                                     \
        for (int t = 0; t < TT; t++)                                                               \
            if (t < nt)                                                                            \
                y[y_off + (ulong)(t0 + t) * (ulong)rows + (ulong)row] =                            \
                    (part[0][t][lx] + part[1][t][lx]) + (part[2][t][lx] + part[3][t][lx]);

#define P3_MM_I4(name, TT)                                                                         \
    __kernel __attribute__((reqd_work_group_size(P3_MM_LR, P3_MM_LK, 1))) P3_MM_SG_ATTR void name( \
        __global float *y, ulong y_off, __global const float *x, ulong x_off,                      \
        __global const uint *qw, __global const half *scale, __global const uchar *zero, int rows, \
        int stride, int cols, int n_tokens) {                                                      \
        __local float part[P3_MM_LK][TT][P3_MM_LR];                                                \
        int lx = (int)get_local_id(0), ly = (int)get_local_id(1), row = (int)get_global_id(0);     \
        int t0 = (int)get_group_id(2) * TT, nt = min(TT, n_tokens - t0);                           \
        int groups = (cols + 127) / 128;                                                           \
        const uint8 shifts = (uint8)(0, 4, 8, 12, 16, 20, 24, 28);                                 \
        float acc[TT];                                                                             \
        for (int t = 0; t < TT; t++) acc[t] = 0.0f;                                                \
        ulong row0 = (ulong)get_group_id(0) * P3_MM_LR;                                            \
        for (int g = ly; g < groups; g += P3_MM_LK) { /* uniform per sub-group: no row test */     \
            ulong gi = (ulong)g * (ulong)stride + (ulong)row;                                      \
            float d = vload_half(gi, scale);                                                       \
            int z = (int)zero[gi];                                                                 \
            int kn = min(128, cols - g * 128), nw = kn / 8;                                        \
            float ga[TT];                                                                          \
            for (int t = 0; t < TT; t++) ga[t] = 0.0f;                                             \
            for (int j = 0; j < nw; j++) {                                                         \
                uint w = P3_LOAD_WORDS(qw, ((ulong)g * 16 + (ulong)j) * (ulong)stride + row0);     \
                float8 wf =                                                                        \
                    convert_float8(as_int8(((uint8)(w) >> shifts) & (uint8)(15u)) - (int8)(z));    \
                for (int t = 0; t < TT && t < nt; t++) {                                           \
                    float8 xv = vload8(0, x + x_off + (ulong)(t0 + t) * (ulong)cols +              \
                                              (ulong)(g * 128 + j * 8));                           \
                    ga[t] += dot(wf.lo, xv.lo) + dot(wf.hi, xv.hi);                                \
                }                                                                                  \
            }                                                                                      \
            for (int k = nw * 8; k < kn; k++) { /* only a partial last group gets here */          \
                uint w = qw[((ulong)g * 16 + (ulong)(k / 8)) * (ulong)stride + (ulong)row];        \
                float wk = (float)((int)((w >> (4 * (k % 8))) & 15u) - z);                         \
                for (int t = 0; t < TT; t++)                                                       \
                    if (t < nt)                                                                    \
                        ga[t] +=                                                                   \
                            wk * x[x_off + (ulong)(t0 + t) * (ulong)cols + (ulong)(g * 128 + k)];  \
            }                                                                                      \
            for (int t = 0; t < TT; t++) acc[t] += d * ga[t];                                      \
        }                                                                                          \
        P3_MM_REDUCE(TT)                                                                           \
    }

P3_MM_I4(p3_mm_i4_t1, 1)
P3_MM_I4(p3_mm_i4_t4, 4)

/* Plain weights [cols][rows]; K-slice s walks the 128-wide chunks s, s+4, ... */
#define P3_MM_PLAIN(name, type, load, TT)                                                          \
    __kernel __attribute__((reqd_work_group_size(P3_MM_LR, P3_MM_LK, 1))) void name(               \
        __global float *y, ulong y_off, __global const float *x, ulong x_off,                      \
        __global const type *w, int rows, int cols, int n_tokens) {                                \
        __local float part[P3_MM_LK][TT][P3_MM_LR];                                                \
        int lx = (int)get_local_id(0), ly = (int)get_local_id(1), row = (int)get_global_id(0);     \
        int t0 = (int)get_group_id(2) * TT, nt = min(TT, n_tokens - t0);                           \
        float acc[TT];                                                                             \
        for (int t = 0; t < TT; t++) acc[t] = 0.0f;                                                \
        for (int k0 = ly * 128; k0 < cols && row < rows; k0 += P3_MM_LK * 128) {                   \
            int kn = min(128, cols - k0);                                                          \
            for (int k = k0; k < k0 + kn; k++) {                                                   \
                ulong wi = (ulong)k * (ulong)rows + (ulong)row;                                    \
                float wk = load;                                                                   \
                for (int t = 0; t < TT; t++)                                                       \
                    if (t < nt)                                                                    \
                        acc[t] += wk * x[x_off + (ulong)(t0 + t) * (ulong)cols + (ulong)k];        \
            }                                                                                      \
        }                                                                                          \
        P3_MM_REDUCE(TT)                                                                           \
    }

P3_MM_PLAIN(p3_mm_f32_t1, float, w[wi], 1)
P3_MM_PLAIN(p3_mm_f32_t4, float, w[wi], 4)
P3_MM_PLAIN(p3_mm_f16_t1, half, vload_half(wi, w), 1)
P3_MM_PLAIN(p3_mm_f16_t4, half, vload_half(wi, w), 4)
P3_MM_PLAIN(p3_mm_bf16_t1, ushort, as_float((uint)w[wi] << 16), 1)
P3_MM_PLAIN(p3_mm_bf16_t4, ushort, as_float((uint)w[wi] << 16), 4)

/* ---- w4a8: activations quantized per 128-group to int8 (quant/int4.h p3_quantize_act_q8g),
 * exact int32 dot per group, one f32 multiply-add per group.
 * Quantized activations, written by p3_quant_act into backend scratch: qx char [T][groups*128]
 * (zero padded, so the padded weight nibbles add nothing and no tail loop is needed), xd float
 * [T][groups] (d), xs int [T][groups] (sum of qx). One work-group of 64 per (group, token); the
 * division is exact when the device rounds it correctly (the backend then builds with
 * -cl-fp32-correctly-rounded-divide-sqrt), which keeps qx identical to the reference. */
__kernel __attribute__((reqd_work_group_size(64, 1, 1))) void
p3_quant_act(__global char *qx, __global float *xd, __global int *xs, __global const float *x,
             ulong x_off, int cols) {
    __local float red[64];
    __local int sums[64];
    int lid = (int)get_local_id(0), g = (int)get_group_id(0), t = (int)get_group_id(1);
    int groups = (cols + 127) / 128, k0 = g * 128;
    ulong xo = x_off + (ulong)t * (ulong)cols;
    float v0 = k0 + lid < cols ? x[xo + k0 + lid] : 0.0f;
    float v1 = k0 + lid + 64 < cols ? x[xo + k0 + lid + 64] : 0.0f;
    red[lid] = fmax(fabs(v0), fabs(v1));
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = 32; s > 0; s >>= 1) {
        if (lid < s) red[lid] = fmax(red[lid], red[lid + s]);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    float amax = red[0], d = amax / 127.0f;
    float inv = amax > 0.0f ? 1.0f / d : 0.0f;
    int q0 = (int)rint(v0 * inv), q1 = (int)rint(v1 * inv);
    ulong qo = (ulong)t * (ulong)groups * 128 + (ulong)k0;
    qx[qo + lid] = (char)q0;
    qx[qo + lid + 64] = (char)q1;
    sums[lid] = q0 + q1;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = 32; s > 0; s >>= 1) {
        if (lid < s) sums[lid] += sums[lid + s];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lid == 0) {
        xd[(ulong)t * (ulong)groups + g] = d;
        xs[(ulong)t * (ulong)groups + g] = sums[0];
    }
}

/* Integer dot of one weight word (8 unsigned nibbles, weight k + i in nibble i) with the 8 int8
 * activations k .. k+7. With cl_khr_integer_dot_product (P3_INT_DOT, set by the backend from the
 * device's extensions; its built-ins need OpenCL C 3.0) it is two packed 4x8-bit dot instructions
 * (DP4A on Intel Xe): the even nibbles meet activations 0, 2, 4, 6 and the odd ones 1, 3, 5, 7. */
#ifdef P3_INT_DOT
#ifdef P3_INT_DOT_EMULATE
/* The built-in's definition (unsigned bytes of a times signed bytes of b), so the packing below
 * is tested on devices without the extension (backend variant "int-dot-emulated"). */
static int p3_dot4_us(uint a, uint b) {
    int4 bs = convert_int4(as_char4(b));
    int4 as = convert_int4(as_uchar4(a));
    return as.s0 * bs.s0 + as.s1 * bs.s1 + as.s2 * bs.s2 + as.s3 * bs.s3;
}
#else
#define p3_dot4_us dot_4x8packed_us_int
#endif
static int p3_dot8(uint w, char8 xa) {
    return p3_dot4_us(w & 0x0f0f0f0fu, as_uint(xa.s0246)) +
           p3_dot4_us((w >> 4) & 0x0f0f0f0fu, as_uint(xa.s1357));
}
#else
static int p3_dot8(uint w, char8 xa) {
    int8 q = as_int8(((uint8)(w) >> (uint8)(0, 4, 8, 12, 16, 20, 24, 28)) & (uint8)(15u));
    int8 p = q * convert_int8(xa);
    return (p.s0 + p.s1) + (p.s2 + p.s3) + (p.s4 + p.s5) + (p.s6 + p.s7);
}
#endif

/* y[t][n] = sum_g (d_w * d_x) * (sum_k qx * q - z * xs): the same integers and the same per-group
 * f32 expression as the reference (sym weights use z = 8, which equals summing qx * (q - 8)). */
#define P3_MM_I4Q8(name, TT)                                                                       \
    __kernel __attribute__((reqd_work_group_size(P3_MM_LR, P3_MM_LK, 1))) P3_MM_SG_ATTR void name( \
        __global float *y, ulong y_off, __global const char *qx, __global const float *xd,         \
        __global const int *xs, __global const uint *qw, __global const half *scale,               \
        __global const uchar *zero, int rows, int stride, int cols, int n_tokens) {                \
        __local float part[P3_MM_LK][TT][P3_MM_LR];                                                \
        int lx = (int)get_local_id(0), ly = (int)get_local_id(1), row = (int)get_global_id(0);     \
        int t0 = (int)get_group_id(2) * TT, nt = min(TT, n_tokens - t0);                           \
        int groups = (cols + 127) / 128;                                                           \
        float acc[TT];                                                                             \
        for (int t = 0; t < TT; t++) acc[t] = 0.0f;                                                \
        ulong row0 = (ulong)get_group_id(0) * P3_MM_LR;                                            \
        for (int g = ly; g < groups; g += P3_MM_LK) { /* uniform per sub-group: no row test */     \
            ulong gi = (ulong)g * (ulong)stride + (ulong)row;                                      \
            float d = vload_half(gi, scale);                                                       \
            int z = (int)zero[gi];                                                                 \
            int idot[TT];                                                                          \
            for (int t = 0; t < TT; t++) idot[t] = 0;                                              \
            for (int j = 0; j < 16; j++) {                                                         \
                uint w = P3_LOAD_WORDS(qw, ((ulong)g * 16 + (ulong)j) * (ulong)stride + row0);     \
                for (int t = 0; t < TT && t < nt; t++)                                             \
                    idot[t] +=                                                                     \
                        p3_dot8(w, vload8(0, qx + ((ulong)(t0 + t) * (ulong)groups + g) * 128 +    \
                                                 (ulong)(j * 8)));                                 \
            }                                                                                      \
            for (int t = 0; t < TT && t < nt; t++) {                                               \
                ulong xg = (ulong)(t0 + t) * (ulong)groups + (ulong)g;                             \
                acc[t] += d * xd[xg] * (float)(idot[t] - z * xs[xg]);                              \
            }                                                                                      \
        }                                                                                          \
        P3_MM_REDUCE(TT)                                                                           \
    }

P3_MM_I4Q8(p3_mm_i4q8_t1, 1)
P3_MM_I4Q8(p3_mm_i4q8_t4, 4)
