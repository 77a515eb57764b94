/* attention.cl: causal attention of query rows over the device-resident KV cache (decode and
 * prefill alike, sliding window, GQA), f32 or f16 cache storage.
 *
 * One work-group of 64 per (query head, token), flash-attention style: keys are visited in tiles
 * of 64, one key per lane (score = q.k with q in local memory), the tile's maximum updates a
 * running maximum, earlier sums are rescaled by exp(old - new), and each lane accumulates the
 * output dimensions d = lane, lane + 64, ... (head_dim <= 256), so V rows are read by consecutive
 * lanes (coalesced) and no scratch the size of the context is needed.
 * Cache layout: [layer][kv_head][n_ctx][head_dim] (layer_off = element offset of the layer), so a
 * work-group reads one contiguous stretch; f32, f16 or q8 (int8 values with one f32 scale per
 * head and position in ks/vs [layer][kv_head][n_ctx], scale_off = the layer's offset; the f32
 * and f16 kernels never read ks/vs). Grid: (64 * n_heads, n_tokens, n_chunks).
 *
 * Split decode (flash-decoding): one token has only n_heads work-groups, too few to fill a GPU
 * at long contexts, so with chunk > 0 work-group z takes keys [lo + z*chunk, +chunk) and writes
 * its unnormalised partial (max, sum, acc[head_dim]) to part [n_heads][n_chunks][2 + head_dim];
 * p3_attention_merge then combines the chunks. */

#define P3_AT_WG   64
#define P3_AT_MAXD 4 /* head_dim <= P3_AT_WG * P3_AT_MAXD */

#define P3_LOAD_F32(p, i)   ((p)[i])
#define P3_LOAD_F16(p, i)   vload_half((i), (p))
#define P3_LOAD_Q8(p, i)    ((float)(p)[i])
#define P3_SCALE_NONE(s, i) 1.0f
#define P3_SCALE_Q8(s, i)   ((s)[i])

#define P3_ATTENTION(name, type, load, kv_scale)                                                   \
    __kernel __attribute__((reqd_work_group_size(P3_AT_WG, 1, 1))) void name(                      \
        __global float *out, ulong out_off, __global const float *qkv, ulong qkv_off,              \
        __global const type *kc, __global const type *vc, ulong layer_off,                         \
        __global const float *ks, __global const float *vs, ulong scale_off, int n_ctx,            \
        int n_heads, int n_kv_heads, int head_dim, int pos0, int window, float scale, int chunk,   \
        __global float *part) {                                                                    \
        __local float q[P3_AT_WG * P3_AT_MAXD];                                                    \
        __local float p[P3_AT_WG];                                                                 \
        int lid = (int)get_local_id(0), h = (int)get_group_id(0), t = (int)get_group_id(1);        \
        int pos = pos0 + t, lo = window > 0 ? max(0, pos - window + 1) : 0;                        \
        int z = (int)get_group_id(2);                                                              \
        if (chunk > 0) {                                                                           \
            lo += z * chunk;                                                                       \
            pos = min(pos, lo + chunk - 1);                                                        \
        }                                                                                          \
        ulong width = (ulong)(n_heads + 2 * n_kv_heads) * (ulong)head_dim;                         \
        ulong qo = qkv_off + (ulong)t * width + (ulong)h * (ulong)head_dim;                        \
        int kvh = h / (n_heads / n_kv_heads);                                                      \
        ulong base = layer_off + (ulong)kvh * (ulong)n_ctx * (ulong)head_dim;                      \
        ulong sbase = scale_off + (ulong)kvh * (ulong)n_ctx;                                       \
        for (int d = lid; d < head_dim; d += P3_AT_WG) q[d] = qkv[qo + d];                         \
        barrier(CLK_LOCAL_MEM_FENCE);                                                              \
        float m = -INFINITY, l = 0.0f, acc[P3_AT_MAXD];                                            \
        for (int i = 0; i < P3_AT_MAXD; i++) acc[i] = 0.0f;                                        \
        for (int j0 = lo; j0 <= pos; j0 += P3_AT_WG) {                                             \
            int j = j0 + lid, n = min(P3_AT_WG, pos - j0 + 1);                                     \
            float s = -INFINITY;                                                                   \
            if (lid < n) {                                                                         \
                ulong kr = base + (ulong)j * (ulong)head_dim;                                      \
                float dotv = 0.0f;                                                                 \
                for (int d = 0; d < head_dim; d++) dotv += q[d] * load(kc, kr + d);                \
                s = dotv * kv_scale(ks, sbase + j) * scale;                                        \
            }                                                                                      \
            p[lid] = s;                                                                            \
            barrier(CLK_LOCAL_MEM_FENCE);                                                          \
            float tile_max = p[0];                                                                 \
            for (int i = 1; i < n; i++) tile_max = fmax(tile_max, p[i]);                           \
            float m_new = fmax(m, tile_max), corr = exp(m - m_new);                                \
            barrier(CLK_LOCAL_MEM_FENCE);                                                          \
            p[lid] = lid < n ? exp(s - m_new) : 0.0f;                                              \
            barrier(CLK_LOCAL_MEM_FENCE);                                                          \
            float tile_sum = 0.0f;                                                                 \
            for (int i = 0; i < n; i++) tile_sum += p[i];                                          \
            l = l * corr + tile_sum;                                                               \
            for (int r = 0; r < P3_AT_MAXD && lid + r * P3_AT_WG < head_dim; r++) {                \
                int d = lid + r * P3_AT_WG;                                                        \
                float a = acc[r] * corr;                                                           \
                for (int i = 0; i < n; i++)                                                        \
                    a += p[i] * kv_scale(vs, sbase + j0 + i) *                                     \
                         load(vc, base + (ulong)(j0 + i) * (ulong)head_dim + d);                   \
                acc[r] = a;                                                                        \
            }                                                                                      \
            m = m_new;                                                                             \
            barrier(CLK_LOCAL_MEM_FENCE);                                                          \
        }                                                                                          \
        if (chunk > 0) {                                                                           \
            ulong po = ((ulong)h * get_num_groups(2) + (ulong)z) * (ulong)(head_dim + 2);          \
            if (lid == 0) {                                                                        \
                part[po] = m;                                                                      \
                part[po + 1] = l;                                                                  \
            }                                                                                      \
            for (int r = 0; r < P3_AT_MAXD; r++) {                                                 \
                int d = lid + r * P3_AT_WG;                                                        \
                if (d < head_dim) part[po + 2 + d] = acc[r];                                       \
            }                                                                                      \
        } else {                                                                                   \
            ulong oo = out_off + ((ulong)t * (ulong)n_heads + (ulong)h) * (ulong)head_dim;         \
            for (int r = 0; r < P3_AT_MAXD; r++) {                                                 \
                int d = lid + r * P3_AT_WG;                                                        \
                if (d < head_dim) out[oo + d] = acc[r] / l;                                        \
            }                                                                                      \
        }                                                                                          \
    }

P3_ATTENTION(p3_attention_f32, float, P3_LOAD_F32, P3_SCALE_NONE)
P3_ATTENTION(p3_attention_f16, half, P3_LOAD_F16, P3_SCALE_NONE)
P3_ATTENTION(p3_attention_q8, char, P3_LOAD_Q8, P3_SCALE_Q8)

/* Combines the n_chunks partials of a split decode: out = sum_z acc_z e^(m_z - M) / sum_z l_z
 * e^(m_z - M), M = max_z m_z. Grid: (64 * n_heads) for the one token. */
__kernel __attribute__((reqd_work_group_size(P3_AT_WG, 1, 1))) void
p3_attention_merge(__global float *out, ulong out_off, __global const float *part, int head_dim,
                   int n_chunks) {
    int lid = (int)get_local_id(0), h = (int)get_group_id(0);
    ulong stride = (ulong)(head_dim + 2), base = (ulong)h * (ulong)n_chunks * stride;
    float mx = -INFINITY;
    for (int z = 0; z < n_chunks; z++) mx = fmax(mx, part[base + z * stride]);
    float l = 0.0f;
    for (int z = 0; z < n_chunks; z++)
        l += part[base + z * stride + 1] * exp(part[base + z * stride] - mx);
    for (int d = lid; d < head_dim; d += P3_AT_WG) {
        float a = 0.0f;
        for (int z = 0; z < n_chunks; z++)
            a += part[base + z * stride + 2 + d] * exp(part[base + z * stride] - mx);
        out[out_off + (ulong)h * (ulong)head_dim + d] = a / l;
    }
}
