/* l0_kernels.cl: the Level Zero GPU backend's kernels, OpenCL C compiled offline to SPIR-V
 * (kernels/level_zero/build.mk). Every pointer argument is the element where the op starts (the host
 * adds the byte offsets), every scalar is an int, and the launch grid may overshoot dimension 0
 * (group size 64), so each kernel checks its bounds. No helper takes a pointer: the offline
 * pipeline does not inline, and generic address-space calls would not survive SPIR 1.2. */

#define P3_QK 128

/* Results must match the scalar reference's rounding: no a*b+c contraction into fma. */
#pragma OPENCL FP_CONTRACT OFF

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

/* One work-group of 64 lanes per token row: strided partial sums of squares, added in local
 * memory, then every lane scales its elements. Grid: (n_tokens * 64), groups of exactly 64. */
__kernel __attribute__((reqd_work_group_size(64, 1, 1))) void
p3_rmsnorm(__global float *out, __global const float *x, __global const float *w, int n_tokens,
           int dim, float eps) {
    __local float partial[64];
    int t = (int)get_group_id(0), lane = (int)get_local_id(0);
    __global const float *xr = x + (size_t)t * dim;
    float ss = 0.0f;
    for (int i = lane; i < dim; i += 64) ss += xr[i] * xr[i];
    partial[lane] = ss;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int span = 32; span > 0; span /= 2) {
        if (lane < span) partial[lane] += partial[lane + span];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    float r = 1.0f / sqrt(partial[0] / (float)dim + eps);
    __global float *yr = out + (size_t)t * dim;
    for (int i = lane; i < dim; i += 64) yr[i] = xr[i] * r * w[i];
}

/* Matmuls, y[t][n] = sum_k x[t][k] * W[n][k]: one work-group of 64 lanes per output row and up
 * to 4 tokens (weights are read once for those tokens). Lane l takes k = l, l + 64, ... so a
 * row's weights and an activation row are read with consecutive addresses, then the 64 partial
 * sums are added in local memory. Grid: (rows * 64, ceil(n_tokens / 4)), groups of exactly 64. */
#define P3_MM_LANES 64
#define P3_MM_TOKENS 4

/* Adds the lanes' partial sums (partial[tt][lane]) and lets lane 0 store the row's outputs. */
#define P3_MM_REDUCE_STORE(y, rows, n, t0, n_tokens, acc)                                          \
    __local float partial[P3_MM_TOKENS][P3_MM_LANES];                                              \
    int lane_ = (int)get_local_id(0);                                                              \
    for (int tt = 0; tt < P3_MM_TOKENS; tt++) partial[tt][lane_] = acc[tt];                        \
    barrier(CLK_LOCAL_MEM_FENCE);                                                                  \
    for (int span = P3_MM_LANES / 2; span > 0; span /= 2) {                                        \
        if (lane_ < span)                                                                          \
            for (int tt = 0; tt < P3_MM_TOKENS; tt++)                                              \
                partial[tt][lane_] += partial[tt][lane_ + span];                                   \
        barrier(CLK_LOCAL_MEM_FENCE);                                                              \
    }                                                                                              \
    if (lane_ == 0)                                                                                \
        for (int tt = 0; tt < P3_MM_TOKENS && t0 + tt < n_tokens; tt++)                            \
            y[(size_t)(t0 + tt) * rows + n] = partial[tt][0];

#define P3_MATMUL_KERNEL(name, type, load)                                                         \
    __kernel __attribute__((reqd_work_group_size(P3_MM_LANES, 1, 1))) void name(                  \
        __global float *y, __global const float *x, __global const type *w, int rows, int cols,    \
        int n_tokens) {                                                                            \
        int n = (int)get_group_id(0), lane = (int)get_local_id(0);                                 \
        int t0 = (int)get_global_id(1) * P3_MM_TOKENS;                                             \
        int nt = min(P3_MM_TOKENS, n_tokens - t0);                                                 \
        float acc[P3_MM_TOKENS] = {0.0f, 0.0f, 0.0f, 0.0f};                                        \
        size_t base = (size_t)n * cols;                                                            \
        for (int k = lane; k < cols; k += P3_MM_LANES) {                                           \
            float wk = load(w, base + k);                                                          \
            for (int tt = 0; tt < nt; tt++) acc[tt] += x[(size_t)(t0 + tt) * cols + k] * wk;       \
        }                                                                                          \
        P3_MM_REDUCE_STORE(y, rows, n, t0, n_tokens, acc)                                          \
    }

P3_MATMUL_KERNEL(p3_matmul_f32, float, P3_LOAD_F32)
P3_MATMUL_KERNEL(p3_matmul_f16, ushort, P3_LOAD_F16)
P3_MATMUL_KERNEL(p3_matmul_bf16, ushort, P3_LOAD_BF16)

/* w4a32 on the repacked INT4 layout: each weight dequantized exactly (d * (q - z)) as
 * p3_matmul_w4a32_ref does. Lane l reads byte l of each 64-byte group: its low nibble is weight l,
 * its high nibble weight l + 64, so a group is one coalesced 64-byte read. */
__kernel __attribute__((reqd_work_group_size(P3_MM_LANES, 1, 1))) void
p3_matmul_i4(__global float *y, __global const float *x, __global const uchar *qs,
             __global const float *scale, __global const uchar *zero, int rows, int cols,
             int n_tokens) {
    int n = (int)get_group_id(0), lane = (int)get_local_id(0);
    int t0 = (int)get_global_id(1) * P3_MM_TOKENS;
    int nt = min(P3_MM_TOKENS, n_tokens - t0);
    int groups = (cols + P3_QK - 1) / P3_QK;
    float acc[P3_MM_TOKENS] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int g = 0; g < groups; g++) {
        size_t gi = (size_t)n * groups + g;
        float d = scale[gi];
        int z = (int)zero[gi];
        uint byte = qs[gi * (P3_QK / 2) + lane];
        int k_lo = g * P3_QK + lane, k_hi = k_lo + 64;
        float w_lo = d * (float)((int)(byte & 15u) - z);
        float w_hi = d * (float)((int)(byte >> 4) - z);
        for (int tt = 0; tt < nt; tt++) {
            __global const float *xr = x + (size_t)(t0 + tt) * cols;
            if (k_lo < cols) acc[tt] += xr[k_lo] * w_lo;
            if (k_hi < cols) acc[tt] += xr[k_hi] * w_hi;
        }
    }
    P3_MM_REDUCE_STORE(y, rows, n, t0, n_tokens, acc)
}

/* w4a8, step 1: activations quantized per 128-group as p3_quantize_act_q8g does (d = max|x| / 127,
 * int8 rint(x / d), 0 past the row's end). xq: [n_tokens][groups * 128], xd: [n_tokens][groups].
 * Grid: (groups, n_tokens). */
__kernel void p3_quantize_q8(__global char *xq, __global float *xd, __global const float *x,
                             int cols) {
    int g = (int)get_global_id(0), t = (int)get_global_id(1);
    int groups = (cols + P3_QK - 1) / P3_QK;
    if (g >= groups) return;
    __global const float *src = x + (size_t)t * cols + (size_t)g * P3_QK;
    __global char *dst = xq + ((size_t)t * groups + g) * P3_QK;
    int len = min(P3_QK, cols - g * P3_QK);
    float amax = 0.0f;
    for (int j = 0; j < len; j++) amax = fmax(amax, fabs(src[j]));
    float d = amax / 127.0f;
    float inv = amax > 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < P3_QK; j++) dst[j] = j < len ? (char)(int)rint(src[j] * inv) : (char)0;
    xd[(size_t)t * groups + g] = d;
}

/* w4a8, step 2: exact integer products of weight nibbles (minus the zero point) and quantized
 * activations; each lane scales its share of a group's dot by d_w * d_x (the reference scales
 * the group's whole dot once: the sums differ only in f32 rounding). Same grid and lanes as
 * p3_matmul_i4. */
__kernel __attribute__((reqd_work_group_size(P3_MM_LANES, 1, 1))) void
p3_matmul_i4_q8(__global float *y, __global const char *xq, __global const float *xd,
                __global const uchar *qs, __global const float *scale,
                __global const uchar *zero, int rows, int cols, int n_tokens) {
    int n = (int)get_group_id(0), lane = (int)get_local_id(0);
    int t0 = (int)get_global_id(1) * P3_MM_TOKENS;
    int nt = min(P3_MM_TOKENS, n_tokens - t0);
    int groups = (cols + P3_QK - 1) / P3_QK;
    float acc[P3_MM_TOKENS] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int g = 0; g < groups; g++) {
        size_t gi = (size_t)n * groups + g;
        float d = scale[gi];
        int z = (int)zero[gi];
        uint byte = qs[gi * (P3_QK / 2) + lane];
        int w_lo = (int)(byte & 15u) - z, w_hi = (int)(byte >> 4) - z;
        for (int tt = 0; tt < nt; tt++) {
            size_t xg = (size_t)(t0 + tt) * groups + g;
            __global const char *a = xq + xg * P3_QK;
            int dot = w_lo * (int)a[lane] + w_hi * (int)a[lane + 64];
            acc[tt] += (d * xd[xg]) * (float)dot;
        }
    }
    P3_MM_REDUCE_STORE(y, rows, n, t0, n_tokens, acc)
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

/* float to IEEE half bits, round to nearest even (p3_f32_to_f16's rounding), without fp16. */
static ushort p3_float_to_half(float f) {
    uint x = as_uint(f);
    uint sign = (x >> 16) & 0x8000u;
    uint ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) /* inf or NaN (NaN stays NaN) */
        return (ushort)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u | ((ax >> 13) & 0x3ffu) : 0u));
    if (ax >= 0x477ff000u) return (ushort)(sign | 0x7c00u); /* rounds past the largest half */
    if (ax < 0x38800000u) {                                  /* half subnormal or zero */
        if (ax < 0x33000000u) return (ushort)sign;           /* below half the smallest */
        uint e = ax >> 23, man = (ax & 0x7fffffu) | 0x800000u;
        uint shift = 126u - e; /* 14..24 */
        uint h = man >> shift, rem = man & ((1u << shift) - 1u), mid = 1u << (shift - 1u);
        if (rem > mid || (rem == mid && (h & 1u))) h++;
        return (ushort)(sign | h);
    }
    uint h = ((ax >> 13) - (112u << 10));
    uint rem = ax & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++;
    return (ushort)(sign | h);
}

/* K and V rows of token t of the qkv rows. */
#define P3_KV_ROWS                                                                                 \
    int kv_dim = n_kv_heads * head_dim;                                                            \
    size_t stride = (size_t)(n_heads * head_dim + 2 * kv_dim);                                     \
    __global const float *krow = qkv + (size_t)t * stride + (size_t)n_heads * head_dim;            \
    __global const float *vrow = krow + kv_dim;

/* Stores K and V of token t at position pos0 + t of the layer's caches [n_ctx][kv_dim] (f32 or
 * f16). Grid: (n_kv_heads * head_dim, n_tokens). */
#define P3_KV_WRITE_KERNEL(name, type, convert)                                                    \
    __kernel void name(__global type *k_cache, __global type *v_cache, __global const float *qkv,  \
                       int pos0, int n_heads, int n_kv_heads, int head_dim) {                      \
        int i = (int)get_global_id(0), t = (int)get_global_id(1);                                  \
        P3_KV_ROWS                                                                                 \
        if (i >= kv_dim) return;                                                                   \
        size_t dst = (size_t)(pos0 + t) * kv_dim + i;                                              \
        k_cache[dst] = convert(krow[i]);                                                           \
        v_cache[dst] = convert(vrow[i]);                                                           \
    }

#define P3_AS_IS(x) (x)
P3_KV_WRITE_KERNEL(p3_kv_write_f32, float, P3_AS_IS)
P3_KV_WRITE_KERNEL(p3_kv_write_f16, ushort, p3_float_to_half)

/* q8 cache: per (position, KV head) an f32 scale d = max|x| / 127 and int8 values rint(x / d),
 * as p3_ref_kv_round_q8. One work-item per (KV head, token, K or V): head_dim values each.
 * Grid: (n_kv_heads, n_tokens, 2). */
__kernel void p3_kv_write_q8(__global char *k_cache, __global float *k_scale,
                             __global char *v_cache, __global float *v_scale,
                             __global const float *qkv, int pos0, int n_heads, int n_kv_heads,
                             int head_dim) {
    int h = (int)get_global_id(0), t = (int)get_global_id(1), which = (int)get_global_id(2);
    if (h >= n_kv_heads) return;
    P3_KV_ROWS
    __global const float *src = (which ? vrow : krow) + (size_t)h * head_dim;
    __global char *dst = (which ? v_cache : k_cache) + (size_t)(pos0 + t) * kv_dim +
                         (size_t)h * head_dim;
    float amax = 0.0f;
    for (int d = 0; d < head_dim; d++) amax = fmax(amax, fabs(src[d]));
    float scale = amax / 127.0f;
    float inv = amax > 0.0f ? 1.0f / scale : 0.0f;
    for (int d = 0; d < head_dim; d++) dst[d] = (char)(int)rint(src[d] * inv);
    (which ? v_scale : k_scale)[(size_t)(pos0 + t) * n_kv_heads + h] = scale;
}

/* Causal attention, one kernel per cache type (l0_attention.clh). */
#define P3_KV_LOAD(c, s, j, idx, kvh) (c)[idx]
#define P3_ATTENTION_NAME p3_attention_f32
#define P3_KV_TYPE float
#include "l0_attention.clh"
#undef P3_KV_LOAD
#undef P3_ATTENTION_NAME
#undef P3_KV_TYPE

#define P3_KV_LOAD(c, s, j, idx, kvh) p3_half_to_float((uint)(c)[idx])
#define P3_ATTENTION_NAME p3_attention_f16
#define P3_KV_TYPE ushort
#include "l0_attention.clh"
#undef P3_KV_LOAD
#undef P3_ATTENTION_NAME
#undef P3_KV_TYPE

#define P3_KV_LOAD(c, s, j, idx, kvh) ((float)(c)[idx] * (s)[(size_t)(j) * n_kv_heads + (kvh)])
#define P3_ATTENTION_NAME p3_attention_q8
#define P3_KV_TYPE char
#include "l0_attention.clh"
#undef P3_KV_LOAD
#undef P3_ATTENTION_NAME
#undef P3_KV_TYPE

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
