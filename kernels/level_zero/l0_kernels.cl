/* l0_kernels.cl: the Level Zero GPU backend's kernels, OpenCL C compiled offline to SPIR-V
 * (kernels/level_zero/build.mk). Every pointer argument is the element where the op starts (the host
 * adds the byte offsets), every scalar is an int, and the launch grid may overshoot dimension 0
 * (group size 64), so each kernel checks its bounds. No helper takes a pointer: the offline
 * pipeline does not inline, and generic address-space calls would not survive SPIR 1.2. */

#define P3_QK 128

/* IEEE half bits to float, exactly (subnormals, inf, NaN), without needing cl_khr_fp16. */
static float p3_half_to_float(uint h) {
    uint sign = (h & 0x8000u) << 16;
    uint exp = (h >> 10) & 0x1fu;
    uint man = h & 0x3ffu;
    if (exp == 0x1fu) return as_float(sign | 0x7f800000u | (man << 13));
    if (exp != 0) return as_float(sign | ((exp + 112u) << 23) | (man << 13));
    /* zero or subnormal: man * 2^-24 is exact in f32 */
    float v = (float)man * 5.9604644775390625e-8f;
    return (h & 0x8000u) ? -v : v;
}

/* Weight element decode for the three float weight layouts (0 = f32, 1 = f16, 2 = bf16). */
#define P3_LOAD_F32(p, i) ((p)[i])
#define P3_LOAD_F16(p, i) p3_half_to_float((uint)(p)[i])
#define P3_LOAD_BF16(p, i) as_float(((uint)(p)[i]) << 16)

/* out[t][c] = table[ids[t]][c]; ids outside [0, rows) give zeros and raise *bad_id (checked by
 * the host at the next sync). Grid: (cols, n_tokens). */
#define P3_EMBED_KERNEL(name, type, load)                                                          \
    __kernel void name(__global float *out, __global const type *table, __global const int *ids,  \
                       int rows, int cols, __global int *bad_id) {                                 \
        int c = (int)get_global_id(0), t = (int)get_global_id(1);                                  \
        if (c >= cols) return;                                                                     \
        int id = ids[t];                                                                           \
        if (id < 0 || id >= rows) {                                                                \
            out[(size_t)t * cols + c] = 0.0f;                                                      \
            *bad_id = 1;                                                                           \
            return;                                                                                \
        }                                                                                          \
        out[(size_t)t * cols + c] = load(table, (size_t)id * cols + c);                            \
    }

P3_EMBED_KERNEL(p3_embed_f32, float, P3_LOAD_F32)
P3_EMBED_KERNEL(p3_embed_f16, ushort, P3_LOAD_F16)
P3_EMBED_KERNEL(p3_embed_bf16, ushort, P3_LOAD_BF16)

/* INT4 g128 repacked by the host: qs [rows][groups][64] nibble pairs (low = j, high = j + 64),
 * scale f32 [rows][groups], zero uchar [rows][groups] (8 for symmetric weights). */
__kernel void p3_embed_i4(__global float *out, __global const uchar *qs, __global const float *scale,
                          __global const uchar *zero, __global const int *ids, int rows, int cols,
                          __global int *bad_id) {
    int c = (int)get_global_id(0), t = (int)get_global_id(1);
    if (c >= cols) return;
    int id = ids[t];
    if (id < 0 || id >= rows) {
        out[(size_t)t * cols + c] = 0.0f;
        *bad_id = 1;
        return;
    }
    int groups = (cols + P3_QK - 1) / P3_QK;
    size_t g = (size_t)id * groups + c / P3_QK;
    int j = c % P3_QK;
    uint byte = qs[g * (P3_QK / 2) + (j & 63)];
    int q = (int)(j < 64 ? (byte & 15u) : (byte >> 4));
    out[(size_t)t * cols + c] = scale[g] * (float)(q - (int)zero[g]);
}

/* One work-item per token row; sum of squares in element order. Grid: (n_tokens). */
__kernel void p3_rmsnorm(__global float *out, __global const float *x, __global const float *w,
                         int n_tokens, int dim, float eps) {
    int t = (int)get_global_id(0);
    if (t >= n_tokens) return;
    __global const float *xr = x + (size_t)t * dim;
    float ss = 0.0f;
    for (int i = 0; i < dim; i++) ss += xr[i] * xr[i];
    float r = 1.0f / sqrt(ss / (float)dim + eps);
    __global float *yr = out + (size_t)t * dim;
    for (int i = 0; i < dim; i++) yr[i] = xr[i] * r * w[i];
}

/* y[t][n] = sum_k x[t][k] * W[n][k], f32 accumulation in k order. Grid: (rows, n_tokens). */
#define P3_MATMUL_KERNEL(name, type, load)                                                         \
    __kernel void name(__global float *y, __global const float *x, __global const type *w,        \
                       int rows, int cols) {                                                       \
        int n = (int)get_global_id(0), t = (int)get_global_id(1);                                  \
        if (n >= rows) return;                                                                     \
        __global const float *xr = x + (size_t)t * cols;                                           \
        size_t base = (size_t)n * cols;                                                            \
        float acc = 0.0f;                                                                          \
        for (int k = 0; k < cols; k++) acc += xr[k] * load(w, base + k);                           \
        y[(size_t)t * rows + n] = acc;                                                             \
    }

P3_MATMUL_KERNEL(p3_matmul_f32, float, P3_LOAD_F32)
P3_MATMUL_KERNEL(p3_matmul_f16, ushort, P3_LOAD_F16)
P3_MATMUL_KERNEL(p3_matmul_bf16, ushort, P3_LOAD_BF16)

/* w4a32 on the repacked INT4 layout: each weight dequantized exactly (d * (q - z)) and
 * accumulated in k order, as p3_matmul_w4a32_ref does. Grid: (rows, n_tokens). */
__kernel void p3_matmul_i4(__global float *y, __global const float *x, __global const uchar *qs,
                           __global const float *scale, __global const uchar *zero, int rows,
                           int cols) {
    int n = (int)get_global_id(0), t = (int)get_global_id(1);
    if (n >= rows) return;
    int groups = (cols + P3_QK - 1) / P3_QK;
    __global const float *xr = x + (size_t)t * cols;
    float acc = 0.0f;
    for (int g = 0; g < groups; g++) {
        size_t gi = (size_t)n * groups + g;
        float d = scale[gi];
        int z = (int)zero[gi];
        __global const uchar *q = qs + gi * (P3_QK / 2);
        int len = min(P3_QK, cols - g * P3_QK);
        for (int j = 0; j < len; j++) {
            uint byte = q[j & 63];
            int v = (int)(j < 64 ? (byte & 15u) : (byte >> 4));
            acc += xr[g * P3_QK + j] * (d * (float)(v - z));
        }
    }
    y[(size_t)t * rows + n] = acc;
}

/* Rotates pair (i, i + rot_dim/2) of every Q and K head of token t at position pos0 + t.
 * Grid: (rot_dim / 2, n_heads + n_kv_heads, n_tokens). */
__kernel void p3_rope(__global float *qkv, __global const float *inv_freq, int pos0, int n_heads,
                      int n_kv_heads, int head_dim, int rot_dim, float mscale) {
    int i = (int)get_global_id(0), h = (int)get_global_id(1), t = (int)get_global_id(2);
    int half_rot = rot_dim / 2;
    if (i >= half_rot) return;
    size_t stride = (size_t)(n_heads + 2 * n_kv_heads) * head_dim;
    __global float *v = qkv + (size_t)t * stride + (size_t)h * head_dim;
    float angle = (float)(pos0 + t) * inv_freq[i];
    float c = cos(angle) * mscale, s = sin(angle) * mscale;
    float x0 = v[i], x1 = v[i + half_rot];
    v[i] = x0 * c - x1 * s;
    v[i + half_rot] = x1 * c + x0 * s;
}

/* Copies K and V of token t into the layer's f32 caches [n_ctx][n_kv_heads * head_dim].
 * Grid: (n_kv_heads * head_dim, n_tokens). */
__kernel void p3_kv_write(__global float *k_cache, __global float *v_cache,
                          __global const float *qkv, int pos0, int n_heads, int n_kv_heads,
                          int head_dim) {
    int i = (int)get_global_id(0), t = (int)get_global_id(1);
    int kv_dim = n_kv_heads * head_dim;
    if (i >= kv_dim) return;
    size_t stride = (size_t)(n_heads * head_dim + 2 * kv_dim);
    __global const float *row = qkv + (size_t)t * stride + (size_t)n_heads * head_dim;
    size_t dst = (size_t)(pos0 + t) * kv_dim + i;
    k_cache[dst] = row[i];
    v_cache[dst] = row[kv_dim + i];
}

/* Causal attention, one work-item per (query head, token): a pass for the score maximum, then a
 * pass accumulating exp(score - max) * V straight into out, divided by the sum at the end.
 * Grid: (n_heads, n_tokens). */
__kernel void p3_attention(__global float *out, __global const float *qkv,
                           __global const float *k_cache, __global const float *v_cache, int pos0,
                           int n_heads, int n_kv_heads, int head_dim, int window, float scale) {
    int h = (int)get_global_id(0), t = (int)get_global_id(1);
    if (h >= n_heads) return;
    int kv_dim = n_kv_heads * head_dim;
    size_t stride = (size_t)(n_heads * head_dim + 2 * kv_dim);
    __global const float *q = qkv + (size_t)t * stride + (size_t)h * head_dim;
    int kvh = h / (n_heads / n_kv_heads);
    int pos = pos0 + t;
    int lo = window > 0 ? max(0, pos - window + 1) : 0;
    float m = -INFINITY;
    for (int j = lo; j <= pos; j++) {
        __global const float *k = k_cache + (size_t)j * kv_dim + (size_t)kvh * head_dim;
        float s = 0.0f;
        for (int d = 0; d < head_dim; d++) s += q[d] * k[d];
        m = fmax(m, s * scale);
    }
    __global float *o = out + (size_t)t * n_heads * head_dim + (size_t)h * head_dim;
    for (int d = 0; d < head_dim; d++) o[d] = 0.0f;
    float sum = 0.0f;
    for (int j = lo; j <= pos; j++) {
        __global const float *k = k_cache + (size_t)j * kv_dim + (size_t)kvh * head_dim;
        __global const float *v = v_cache + (size_t)j * kv_dim + (size_t)kvh * head_dim;
        float s = 0.0f;
        for (int d = 0; d < head_dim; d++) s += q[d] * k[d];
        float e = exp(s * scale - m);
        sum += e;
        for (int d = 0; d < head_dim; d++) o[d] += e * v[d];
    }
    float inv = 1.0f / sum;
    for (int d = 0; d < head_dim; d++) o[d] *= inv;
}

/* out[t][i] = silu(gate) * up with gate_up rows [gate | up]. Grid: (dim, n_tokens). */
__kernel void p3_swiglu(__global float *out, __global const float *gate_up, int dim) {
    int i = (int)get_global_id(0), t = (int)get_global_id(1);
    if (i >= dim) return;
    float g = gate_up[(size_t)t * 2 * dim + i];
    float u = gate_up[(size_t)t * 2 * dim + dim + i];
    out[(size_t)t * dim + i] = g / (1.0f + exp(-g)) * u;
}

/* x[i] += y[i]. Grid: (n) in groups of 64, with a tail check (n may exceed INT_MAX / 2 only for
 * absurd sizes, which the host refuses). */
__kernel void p3_add(__global float *x, __global const float *y, int n) {
    int i = (int)get_global_id(0);
    if (i < n) x[i] += y[i];
}
