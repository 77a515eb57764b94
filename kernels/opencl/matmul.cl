/* matmul.cl: the OpenCL backend's matmuls y[t][n] = sum_k x[t][k] W[n][k], for INT4 group-128
 * weights (w4a32: dequantized in-kernel, f32 accumulation) and plain f32/f16/bf16 weights.
 *
 * Layout (the host repacks at upload, kernels/opencl/opencl_backend.c): weights are stored
 * K-major ("transposed"), so the lanes of a work-group, which walk consecutive output rows,
 * read consecutive addresses at every step:
 *   INT4:  qw    uint  [cols/8][rows]  word (k8, n) = weights 8*k8 .. 8*k8+7 of row n, low
 *                                     nibble first, unsigned (0..15)
 *          scale float [groups][rows]  the f16 group scale, widened exactly
 *          zero  uchar [groups][rows]  the group's zero point (8 for symmetric weights)
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
    __kernel __attribute__((reqd_work_group_size(P3_MM_LR, P3_MM_LK, 1))) void name(               \
        __global float *y, ulong y_off, __global const float *x, ulong x_off,                      \
        __global const uint *qw, __global const float *scale, __global const uchar *zero,          \
        int rows, int cols, int n_tokens) {                                                        \
        __local float part[P3_MM_LK][TT][P3_MM_LR];                                                \
        int lx = (int)get_local_id(0), ly = (int)get_local_id(1), row = (int)get_global_id(0);     \
        int t0 = (int)get_group_id(2) * TT, nt = min(TT, n_tokens - t0);                           \
        int groups = (cols + 127) / 128;                                                           \
        const uint8 shifts = (uint8)(0, 4, 8, 12, 16, 20, 24, 28);                                 \
        float acc[TT];                                                                             \
        for (int t = 0; t < TT; t++) acc[t] = 0.0f;                                                \
        for (int g = ly; g < groups && row < rows; g += P3_MM_LK) {                                \
            ulong gi = (ulong)g * (ulong)rows + (ulong)row;                                        \
            float d = scale[gi];                                                                   \
            int z = (int)zero[gi];                                                                 \
            int kn = min(128, cols - g * 128), nw = kn / 8;                                        \
            float ga[TT];                                                                          \
            for (int t = 0; t < TT; t++) ga[t] = 0.0f;                                             \
            for (int j = 0; j < nw; j++) {                                                         \
                uint w = qw[((ulong)g * 16 + (ulong)j) * (ulong)rows + (ulong)row];                \
                float8 wf = convert_float8(as_int8(((uint8)(w) >> shifts) & (uint8)(15u)) -       \
                                           (int8)(z));                                             \
                for (int t = 0; t < TT && t < nt; t++) {                                           \
                    float8 xv = vload8(0, x + x_off + (ulong)(t0 + t) * (ulong)cols +              \
                                              (ulong)(g * 128 + j * 8));                           \
                    ga[t] += dot(wf.lo, xv.lo) + dot(wf.hi, xv.hi);                                \
                }                                                                                  \
            }                                                                                      \
            for (int k = nw * 8; k < kn; k++) { /* only a partial last group gets here */          \
                uint w = qw[((ulong)g * 16 + (ulong)(k / 8)) * (ulong)rows + (ulong)row];          \
                float wk = (float)((int)((w >> (4 * (k % 8))) & 15u) - z);                         \
                for (int t = 0; t < TT; t++)                                                       \
                    if (t < nt)                                                                    \
                        ga[t] += wk * x[x_off + (ulong)(t0 + t) * (ulong)cols + (ulong)(g * 128 + k)]; \
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
                    if (t < nt) acc[t] += wk * x[x_off + (ulong)(t0 + t) * (ulong)cols + (ulong)k]; \
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
