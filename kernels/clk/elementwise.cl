/* elementwise.cl: the OpenCL backend's light ops (embed, rmsnorm, rope, swiglu, add, kv_write).
 * Portable OpenCL C 1.2, also compiled to SPIR-V for Level Zero: no extensions, no helpers taking
 * pointers, no `break` in loops (Debian's llvm-spirv-14 rejects the odd-width integers that
 * instcombine makes of them). Buffers arrive as (pointer, element offset) pairs; grids may
 * overshoot dimension 0, so every kernel checks its bounds. f16 data goes through vload_half /
 * vstore_half_rte, which need no cl_khr_fp16. */

/* Embedding gather from the uploaded (transposed, [cols][rows]) tables: out[t][c] = W[ids[t]][c].
 * A bad id writes zeros and raises *bad_id, which the host checks at the next read/sync.
 * Grid: (cols, n_tokens). Transposed tables make this gather strided, but it runs once per token,
 * while the same table serves the lm_head matmul, where the layout matters. */
#define P3_EMBED_PLAIN(name, type, load)                                                           \
    __kernel void name(__global float *out, ulong out_off, __global const type *w,                 \
                       __global const int *ids, ulong ids_off, int rows, int cols,                 \
                       __global int *bad_id) {                                                     \
        int c = (int)get_global_id(0), t = (int)get_global_id(1);                                  \
        if (c >= cols) return;                                                                     \
        int id = ids[ids_off + t];                                                                 \
        ulong o = out_off + (ulong)t * (ulong)cols + (ulong)c;                                     \
        if (id < 0 || id >= rows) {                                                                \
            out[o] = 0.0f;                                                                         \
            *bad_id = 1;                                                                           \
            return;                                                                                \
        }                                                                                          \
        out[o] = load;                                                                             \
    }

P3_EMBED_PLAIN(p3_embed_f32, float, w[(ulong)c * (ulong)rows + (ulong)id])
P3_EMBED_PLAIN(p3_embed_f16, half, vload_half((ulong)c *(ulong)rows + (ulong)id, w))
P3_EMBED_PLAIN(p3_embed_bf16, ushort, as_float((uint)w[(ulong)c * (ulong)rows + (ulong)id] << 16))

/* INT4 tables in the matmul layout (matmul.cl): qw uint [cols/8][stride], scale half
 * [groups][stride], zero uchar [groups][stride]. */
__kernel void p3_embed_i4(__global float *out, ulong out_off, __global const uint *qw,
                          __global const half *scale, __global const uchar *zero,
                          __global const int *ids, ulong ids_off, int rows, int stride, int cols,
                          __global int *bad_id) {
    int c = (int)get_global_id(0), t = (int)get_global_id(1);
    if (c >= cols) return;
    int id = ids[ids_off + t];
    ulong o = out_off + (ulong)t * (ulong)cols + (ulong)c;
    if (id < 0 || id >= rows) {
        out[o] = 0.0f;
        *bad_id = 1;
        return;
    }
    ulong g = (ulong)(c / 128) * (ulong)stride + (ulong)id;
    uint word = qw[(ulong)(c / 8) * (ulong)stride + (ulong)id];
    int q = (int)((word >> (4 * (c % 8))) & 15u);
    out[o] = (float)(q - (int)zero[g]) * vload_half(g, scale);
}

/* out[t] = x[t] * rsqrt(mean(x[t]^2) + eps) * w. One work-group of 64 per token (grid (64,
 * n_tokens)); the sum of squares is reduced in local memory. */
__kernel __attribute__((reqd_work_group_size(64, 1, 1))) void
p3_rmsnorm(__global float *out, ulong out_off, __global const float *x, ulong x_off,
           __global const float *w, ulong w_off, int dim, float eps) {
    __local float part[64];
    int lid = (int)get_local_id(0), t = (int)get_group_id(1);
    ulong xo = x_off + (ulong)t * (ulong)dim, oo = out_off + (ulong)t * (ulong)dim;
    float ss = 0.0f;
    for (int i = lid; i < dim; i += 64) ss += x[xo + i] * x[xo + i];
    part[lid] = ss;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = 32; s > 0; s >>= 1) {
        if (lid < s) part[lid] += part[lid + s];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    float r = 1.0f / sqrt(part[0] / (float)dim + eps);
    for (int i = lid; i < dim; i += 64) out[oo + i] = x[xo + i] * r * w[w_off + i];
}

/* Rotate-half RoPE on the Q and K heads of qkv rows, in place: pairs (i, i + rot_dim/2), angle
 * (pos0 + t) * inv_freq[i], cos and sin scaled by mscale (LongRoPE). Grid: (rot_dim/2,
 * n_heads + n_kv_heads, n_tokens). Precise cos/sin (not native_): angles reach 1e5 radians. */
__kernel void p3_rope(__global float *qkv, ulong qkv_off, __global const float *inv_freq,
                      ulong freq_off, int pos0, int n_heads, int n_kv_heads, int head_dim,
                      int rot_dim, float mscale) {
    int i = (int)get_global_id(0), h = (int)get_global_id(1), t = (int)get_global_id(2);
    int half_rot = rot_dim / 2;
    if (i >= half_rot) return;
    ulong width = (ulong)(n_heads + 2 * n_kv_heads) * (ulong)head_dim;
    ulong base = qkv_off + (ulong)t * width + (ulong)h * (ulong)head_dim;
    float angle = (float)(pos0 + t) * inv_freq[freq_off + i];
    float c = cos(angle) * mscale, s = sin(angle) * mscale;
    float x0 = qkv[base + i], x1 = qkv[base + i + half_rot];
    qkv[base + i] = x0 * c - x1 * s;
    qkv[base + i + half_rot] = x1 * c + x0 * s;
}

/* out[t][i] = silu(g) * u with g = gate_up[t][i], u = gate_up[t][dim + i].
 * Grid: (dim, n_tokens). */
__kernel void p3_swiglu(__global float *out, ulong out_off, __global const float *gu, ulong gu_off,
                        int dim) {
    int i = (int)get_global_id(0), t = (int)get_global_id(1);
    if (i >= dim) return;
    ulong g = gu_off + (ulong)t * 2 * (ulong)dim + (ulong)i;
    float gate = gu[g];
    out[out_off + (ulong)t * (ulong)dim + (ulong)i] = gate / (1.0f + exp(-gate)) * gu[g + dim];
}

/* x[i] += y[i]. Grid: (n). */
__kernel void p3_add(__global float *x, ulong x_off, __global const float *y, ulong y_off,
                     ulong n) {
    ulong i = get_global_id(0);
    if (i < n) x[x_off + i] += y[y_off + i];
}

/* Stores K and V of qkv rows into the cache. The cache is head-major, [layer][kv_head][n_ctx]
 * [head_dim], so one attention work-group streams contiguous memory; layer_off is the element
 * offset of the layer. Grid: (n_kv_heads * head_dim, n_tokens). */
#define P3_KV_WRITE(name, type, store)                                                             \
    __kernel void name(__global type *kc, __global type *vc, ulong layer_off,                      \
                       __global const float *qkv, ulong qkv_off, int pos0, int n_ctx, int n_heads, \
                       int n_kv_heads, int head_dim) {                                             \
        int i = (int)get_global_id(0), t = (int)get_global_id(1);                                  \
        int kv_width = n_kv_heads * head_dim;                                                      \
        if (i >= kv_width) return;                                                                 \
        ulong width = (ulong)(n_heads * head_dim + 2 * kv_width);                                  \
        ulong src = qkv_off + (ulong)t * width + (ulong)(n_heads * head_dim + i);                  \
        int kvh = i / head_dim, d = i % head_dim;                                                  \
        ulong row = (ulong)kvh * (ulong)n_ctx + (ulong)(pos0 + t);                                 \
        ulong dst = layer_off + row * (ulong)head_dim + (ulong)d;                                  \
        store(qkv[src], dst, kc);                                                                  \
        store(qkv[src + kv_width], dst, vc);                                                       \
    }

#define P3_STORE_F32(v, i, p) ((p)[i] = (v))
P3_KV_WRITE(p3_kv_write_f32, float, P3_STORE_F32)
P3_KV_WRITE(p3_kv_write_f16, half, vstore_half_rte)

/* q8 cache: per head and position, d = max|x| / 127 and int8 values rint(x / d) (the reference's
 * p3_ref_kv_round_q8). One work-group of 64 per (kv head, token), head_dim <= 256; scales go to
 * ks/vs [layer][kv_head][n_ctx] at scale_off. Grid: (64 * n_kv_heads, n_tokens). */
__kernel __attribute__((reqd_work_group_size(64, 1, 1))) void
p3_kv_write_q8(__global char *kc, __global char *vc, ulong layer_off, __global float *ks,
               __global float *vs, ulong scale_off, __global const float *qkv, ulong qkv_off,
               int pos0, int n_ctx, int n_heads, int n_kv_heads, int head_dim) {
    __local float red[2][64];
    int lid = (int)get_local_id(0), kvh = (int)get_group_id(0), t = (int)get_group_id(1);
    int kv_width = n_kv_heads * head_dim;
    ulong width = (ulong)(n_heads * head_dim + 2 * kv_width);
    ulong src = qkv_off + (ulong)t * width + (ulong)(n_heads * head_dim + kvh * head_dim);
    float km = 0.0f, vm = 0.0f;
    for (int d = lid; d < head_dim; d += 64) {
        km = fmax(km, fabs(qkv[src + d]));
        vm = fmax(vm, fabs(qkv[src + kv_width + d]));
    }
    red[0][lid] = km;
    red[1][lid] = vm;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = 32; s > 0; s >>= 1) {
        if (lid < s) {
            red[0][lid] = fmax(red[0][lid], red[0][lid + s]);
            red[1][lid] = fmax(red[1][lid], red[1][lid + s]);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    float kd = red[0][0] / 127.0f, vd = red[1][0] / 127.0f;
    float kinv = red[0][0] > 0.0f ? 1.0f / kd : 0.0f, vinv = red[1][0] > 0.0f ? 1.0f / vd : 0.0f;
    ulong row = (ulong)kvh * (ulong)n_ctx + (ulong)(pos0 + t);
    ulong dst = layer_off + row * (ulong)head_dim;
    for (int d = lid; d < head_dim; d += 64) {
        kc[dst + d] = (char)(int)rint(qkv[src + d] * kinv);
        vc[dst + d] = (char)(int)rint(qkv[src + kv_width + d] * vinv);
    }
    if (lid == 0) {
        ks[scale_off + row] = kd;
        vs[scale_off + row] = vd;
    }
}
