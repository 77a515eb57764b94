/* kernels_amx.c: the CPU backend's AMX level: the AVX-512 level with its prefill GEMM (INT4 panels
 * x int8 activations, 16 tokens at a time) done by AMX-INT8 tile multiplies (tdpbssd: signed int8
 * activations x nibbles made signed at unpacking). The panel layout's 64-byte chunks (16 rows x 4
 * consecutive K) are exactly the rows of an AMX B tile, so a group unpacks into two B tiles (K
 * 0..63 from the low nibbles, 64..127 from the high ones) with one AND or shift per 64 bytes.
 * Results are exact int32 dots, scaled per group in the reference's order: bit-identical to
 * p3_matmul_w4a8_ref. The activations are first repacked into aligned A tiles (cpu.h,
 * CPU_ACT_TILE_BYTES): read in place, every 64-byte tile row of a p3_block_q8g straddles two cache
 * lines and the tile loads took a third of the GEMM's time. */
#include "cpu.h"

#include <immintrin.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA  18
#define AMX_TOKENS          CPU_ACT_TILE_TOKENS /* rows of the A and C tiles */
#define AMX_L2_BUDGET       (3 << 19)           /* bytes of activation tiles kept in L2 */
#define SEG_GROUPS          16 /* groups unpacked at a time: 2 panels x 32 KiB of B tiles on the stack */

typedef struct tile_config {
    uint8_t palette, start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config;

/* Linux hands out the AMX tile state only on request (once per process). */
bool cpu_amx_request(void) {
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
}

/* A and C tiles have `tokens` rows (1..16: a partial last token tile, or a verification / batch
 * of a few tokens, costs only its own rows); B tiles are always 16 K-quads x 64 bytes. Tiles: 0, 5
 * C int32; 1, 2 A (K 0..63, 64..127); 3, 4 and 6, 7 B of the first and second panel. */
static void configure_tiles(int tokens) {
    tile_config c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int t = 0; t < 8; t++) {
        bool token_rows = t == 0 || t == 1 || t == 2 || t == 5;
        c.rows[t] = (uint8_t)(token_rows ? tokens : 16);
        c.colsb[t] = 64;
    }
    /* GCC does not model ldtilecfg as reading all 64 bytes and dropped part of the memset (the
     * zeros of tiles 8..15): the compiler barrier keeps every store. */
    __asm__ volatile("" : : "r"(&c) : "memory");
    _tile_loadconfig(&c);
}

static inline int tile_tokens(int64_t n_tokens, int64_t tile) {
    return (int)P3_MIN((int64_t)AMX_TOKENS, n_tokens - tile * AMX_TOKENS);
}

void cpu_pack_act_tiles(uint8_t *dst, const p3_block_q8g *xa, int64_t ng, int64_t n_tokens,
                        int64_t tile0, int64_t tile1) {
    for (int64_t tt = tile0; tt < tile1; tt++) {
        int nt = tile_tokens(n_tokens, tt);
        for (int64_t g = 0; g < ng; g++) {
            uint8_t *o = dst + (size_t)(tt * ng + g) * CPU_ACT_TILE_BYTES;
            float *d = (float *)(o + 2 * AMX_TOKENS * 64);
            int32_t *sum8 = (int32_t *)(o + 2 * AMX_TOKENS * 64 + 64);
            for (int i = 0; i < nt; i++) { /* rows past nt are never loaded (A tile rows = nt) */
                const p3_block_q8g *a = xa + (size_t)(tt * AMX_TOKENS + i) * (size_t)ng + g;
                memcpy(o + i * 64, a->qs, 64);
                memcpy(o + (AMX_TOKENS + i) * 64, a->qs + 64, 64);
                d[i] = a->d;
                sum8[i] = 8 * a->sum;
            }
        }
    }
}

/* One group of one panel as two B tiles: b[0] from the low nibbles (K 0..63), b[1] from the high
 * ones (K 64..127). Symmetric weights (zeros NULL): the nibbles as they are (0..15), multiplied
 * as unsigned bytes (tdpbsud), and the offset 8 is taken off in the epilogue as 8 * the token's
 * activation sum, exactly as the reference does: the unpack, which is most of the tile path's
 * work, is then one AND or shift + AND per 64 bytes. Asymmetric: nibble - zero point per row as
 * signed bytes (tdpbssd), whose dot is the reference's dot - z*sum exactly. The high nibbles
 * come down by one GF(2) affine byte op (gf2p8affineqb with a shift-right-by-4 bit matrix) instead
 * of a 16-bit shift and a mask: the unpack is load, AND, affine, two stores. With `prefetch` (the
 * one-token-tile stream), every line GEMV_PREFETCH bytes ahead is requested as the AVX-512 GEMV
 * does, so the unpack reads from L1 and the weight stream never waits for the tile work. */
#define GEMV_PREFETCH 2048
static inline __attribute__((always_inline)) void unpack_group(uint8_t (*b)[CPU_GROUP_BYTES],
                                                               const uint8_t *src,
                                                               const uint8_t *zeros,
                                                               bool prefetch) {
    const __m512i low4 = _mm512_set1_epi8(0x0f);
    /* row i of the 8x8 bit matrix (byte 7 - i) picks input bit i + 4 for output bits 0..3 */
    const __m512i shr4 = _mm512_set1_epi64(0x1020408000000000LL);
    __m512i z = _mm512_setzero_si512();
    if (zeros) /* byte r*4 + b of a chunk belongs to row r */
        z = _mm512_mullo_epi32(_mm512_cvtepu8_epi32(_mm_load_si128((const __m128i *)zeros)),
                               _mm512_set1_epi32(0x01010101));
#pragma GCC unroll 16
    for (int c = 0; c < P3_QK / 8; c++) {
        if (prefetch) _mm_prefetch((const char *)src + c * CPU_CHUNK + GEMV_PREFETCH, _MM_HINT_T0);
        __m512i v = _mm512_load_si512((const void *)(src + c * CPU_CHUNK));
        __m512i lo = _mm512_and_si512(v, low4);
        __m512i hi = _mm512_gf2p8affine_epi64_epi8(v, shr4, 0);
        if (zeros) {
            lo = _mm512_sub_epi8(lo, z);
            hi = _mm512_sub_epi8(hi, z);
        }
        _mm512_store_si512((void *)(b[0] + c * CPU_CHUNK), lo);
        _mm512_store_si512((void *)(b[1] + c * CPU_CHUNK), hi);
    }
}

/* Scales one panel's int32 tile (NT tokens x 16 rows) of group gg into the f32 sums, in the
 * reference's order: acc += (d_w * d_x) * (float)dot, with dot = c - 8 * sum for symmetric
 * weights (sum8 of the activation tile; NULL when the tile already holds the corrected dot). */
static inline __attribute__((always_inline)) void scale_tile(__m512 *acc, int32_t (*c)[16],
                                                             const float *dx, const int32_t *sum8,
                                                             int64_t gg, const uint16_t *scales,
                                                             int NT) {
    __m512 dw = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(scales + gg * CPU_PANEL)));
#pragma GCC unroll 16
    for (int i = 0; i < NT; i++) {
        __m512 s = _mm512_mul_ps(dw, _mm512_set1_ps(dx[i]));
        __m512i d = _mm512_load_si512((const void *)c[i]);
        if (sum8) d = _mm512_sub_epi32(d, _mm512_set1_epi32(sum8[i]));
        acc[i] = _mm512_add_ps(acc[i], _mm512_mul_ps(s, _mm512_cvtepi32_ps(d)));
    }
}

typedef struct amx_panel {
    float *y;
    uint8_t (*b)[2][CPU_GROUP_BYTES]; /* unpacked B tiles: a segment, or a ring of 2 groups */
    const uint8_t *data;
    const uint16_t *scales;
    const uint8_t *zeros;
    __mmask16 mask;
} amx_panel;

/* Unpacks group g0 + g of each panel into ring slot g & 1 (the one-token-tile stream). */
static inline __attribute__((always_inline)) void stream_unpack(const amx_panel *pn, int NP,
                                                                int64_t g0, int64_t g) {
    for (int p = 0; p < NP; p++)
        unpack_group(pn[p].b[g & 1], pn[p].data + (size_t)(g0 + g) * CPU_GROUP_BYTES,
                     pn[p].zeros ? pn[p].zeros + (g0 + g) * CPU_PANEL : NULL, true);
}

/* NT tokens (one token tile) x NP panels (1 or 2) over groups [g0, g0 + n): the activation tiles
 * are loaded once for both panels. Software-pipelined by one group: the int32 tiles of group g
 * are stored to c[g & 1] and scaled (AVX-512) while the tile multiplies of group g + 1 run. acc is
 * carried in y between segments. STREAM (one token tile: nothing to share an unpacked segment
 * with): the B tiles of group g + 1 are unpacked into ring slot b[(g + 1) & 1] while group g's tile
 * loads wait for nothing (its slot was written one group earlier, so its stores have reached L1),
 * and the weight stream, unpack, tile work and scaling of three groups overlap. Otherwise b[g - g0]
 * was unpacked before for every token tile. */
static inline __attribute__((always_inline)) void tile_groups(const amx_panel *pn, int NP, int NT,
                                                              bool STREAM, size_t ys,
                                                              const uint8_t *at, int64_t g0,
                                                              int64_t n) {
    __attribute__((aligned(64))) int32_t c[2][2][AMX_TOKENS][16];
    __m512 acc[2][AMX_TOKENS];
    bool sym = !pn[0].zeros; /* a weight's panels are all symmetric or all not */
    for (int p = 0; p < NP; p++)
#pragma GCC unroll 16
        for (int i = 0; i < NT; i++)
            acc[p][i] = g0 ? _mm512_maskz_loadu_ps(pn[p].mask, pn[p].y + (size_t)i * ys)
                           : _mm512_setzero_ps();
    if (STREAM) stream_unpack(pn, NP, g0, 0);
    for (int64_t g = 0; g <= n; g++) {
        if (g < n) {
            int64_t slot = STREAM ? (g & 1) : g;
            if (STREAM && g + 1 < n) stream_unpack(pn, NP, g0, g + 1);
            const uint8_t *a = at + (size_t)(g0 + g) * CPU_ACT_TILE_BYTES;
            _tile_loadd(1, a, 64);
            _tile_loadd(3, pn[0].b[slot][0], 64);
            _tile_zero(0);
            if (sym)
                _tile_dpbsud(0, 1, 3);
            else
                _tile_dpbssd(0, 1, 3);
            if (NP == 2) {
                _tile_loadd(6, pn[1].b[slot][0], 64);
                _tile_zero(5);
                if (sym)
                    _tile_dpbsud(5, 1, 6);
                else
                    _tile_dpbssd(5, 1, 6);
            }
            _tile_loadd(2, a + AMX_TOKENS * 64, 64);
            _tile_loadd(4, pn[0].b[slot][1], 64);
            if (sym)
                _tile_dpbsud(0, 2, 4);
            else
                _tile_dpbssd(0, 2, 4);
            if (NP == 2) {
                _tile_loadd(7, pn[1].b[slot][1], 64);
                if (sym)
                    _tile_dpbsud(5, 2, 7);
                else
                    _tile_dpbssd(5, 2, 7);
            }
        }
        if (g > 0) { /* group g - 1, whose tiles were stored last time round */
            const uint8_t *ag =
                at + (size_t)(g0 + g - 1) * CPU_ACT_TILE_BYTES + 2 * AMX_TOKENS * 64;
            const int32_t *sum8 = sym ? (const int32_t *)(ag + 64) : NULL;
            for (int p = 0; p < NP; p++)
                scale_tile(acc[p], c[(g - 1) & 1][p], (const float *)ag, sum8, g0 + g - 1,
                           pn[p].scales, NT);
        }
        if (g < n) {
            _tile_stored(0, c[g & 1][0], 64);
            if (NP == 2) _tile_stored(5, c[g & 1][1], 64);
        }
    }
    for (int p = 0; p < NP; p++)
#pragma GCC unroll 16
        for (int i = 0; i < NT; i++)
            _mm512_mask_storeu_ps(pn[p].y + (size_t)i * ys, pn[p].mask, acc[p][i]);
}

/* tile_groups with NP, NT and STREAM as constants, so acc stays in registers (NT rows). */
#define TILE_CASE(NT)                                                                              \
    case NT:                                                                                       \
        if (np == 2)                                                                               \
            tile_groups(pn, 2, NT, stream, ys, at, g0, n);                                         \
        else                                                                                       \
            tile_groups(pn, 1, NT, stream, ys, at, g0, n);                                         \
        break;
#define TILE_SWITCH(nt)                                                                            \
    switch (nt) {                                                                                  \
        TILE_CASE(1)                                                                               \
        TILE_CASE(2)                                                                               \
        TILE_CASE(3)                                                                               \
        TILE_CASE(4)                                                                               \
        TILE_CASE(5)                                                                               \
        TILE_CASE(6)                                                                               \
        TILE_CASE(7)                                                                               \
        TILE_CASE(8)                                                                               \
        TILE_CASE(9)                                                                               \
        TILE_CASE(10)                                                                              \
        TILE_CASE(11)                                                                              \
        TILE_CASE(12)                                                                              \
        TILE_CASE(13)                                                                              \
        TILE_CASE(14)                                                                              \
        TILE_CASE(15)                                                                              \
    default:                                                                                       \
        TILE_CASE(16)                                                                              \
    }

static void tiles_streamed(const amx_panel *pn, int np, int nt, size_t ys, const uint8_t *at,
                           int64_t g0, int64_t n) {
    const bool stream = true;
    TILE_SWITCH(nt)
}

static void tiles_unpacked(const amx_panel *pn, int np, int nt, size_t ys, const uint8_t *at,
                           int64_t g0, int64_t n) {
    const bool stream = false;
    TILE_SWITCH(nt)
}

/* Panel pairs [p0, p1) of the token tiles [t0, t1) (n_tokens in all; the last tile may be
 * partial). Several token tiles: each segment of B tiles is unpacked once and used by every token
 * tile. One token tile: the groups stream through a 2-group ring of B tiles (4 KiB per panel,
 * L1-resident), which keeps the weights flowing at the GEMV's pace. */
static void panel_range(float *y, const uint8_t *tiles, const cpu_weight *w, int64_t n_tokens,
                        int64_t t0, int64_t t1, int64_t p0, int64_t p1) {
    int64_t ng = w->n_groups, rows = w->pub.rows;
    size_t ys = (size_t)rows;
    __attribute__((aligned(64))) uint8_t b[2][SEG_GROUPS][2][CPU_GROUP_BYTES];
    int configured = 0;
    for (int64_t p = p0; p < p1; p += 2) {
        int np = p + 1 < p1 ? 2 : 1;
        amx_panel pn[2];
        for (int k = 0; k < np; k++) {
            cpu_panel src = cpu_panel_of(w, p + k);
            pn[k].y = y + (size_t)((p + k) * CPU_PANEL);
            pn[k].b = b[k];
            pn[k].data = src.data;
            pn[k].scales = src.scales;
            pn[k].zeros = src.zeros;
            pn[k].mask = (__mmask16)((1u << src.rows) - 1);
        }
        if (t1 - t0 == 1) {
            int nt = tile_tokens(n_tokens, t0);
            if (nt != configured) configure_tiles(configured = nt);
            for (int k = 0; k < np; k++) pn[k].y += (size_t)(t0 * AMX_TOKENS) * ys;
            tiles_streamed(pn, np, nt, ys, tiles + (size_t)(t0 * ng) * CPU_ACT_TILE_BYTES, 0, ng);
            continue;
        }
        for (int64_t g0 = 0; g0 < ng; g0 += SEG_GROUPS) {
            int64_t n = P3_MIN((int64_t)SEG_GROUPS, ng - g0);
            for (int k = 0; k < np; k++)
                for (int64_t g = 0; g < n; g++)
                    unpack_group(b[k][g], pn[k].data + (size_t)(g0 + g) * CPU_GROUP_BYTES,
                                 pn[k].zeros ? pn[k].zeros + (g0 + g) * CPU_PANEL : NULL, false);
            for (int64_t t = t0; t < t1; t++) {
                int nt = tile_tokens(n_tokens, t);
                if (nt != configured) configure_tiles(configured = nt);
                amx_panel pt[2] = {pn[0], pn[1 % np]};
                for (int k = 0; k < np; k++) pt[k].y += (size_t)(t * AMX_TOKENS) * ys;
                tiles_unpacked(pt, np, nt, ys, tiles + (size_t)(t * ng) * CPU_ACT_TILE_BYTES, g0,
                               n);
            }
        }
    }
    if (configured) _tile_release();
}

int64_t cpu_amx_block_tiles(const cpu_weight *w, int64_t n_tiles) {
    int64_t fit = P3_MAX(1, AMX_L2_BUDGET / (w->n_groups * CPU_ACT_TILE_BYTES));
    int64_t blocks = (n_tiles + fit - 1) / fit;
    return (n_tiles + blocks - 1) / blocks;
}

void cpu_matmul_w4a8_amx(float *y, const uint8_t *tiles, const cpu_weight *w, int64_t n_tokens,
                         int64_t tile0, int64_t tile1, int64_t p0, int64_t p1) {
    panel_range(y, tiles, w, n_tokens, tile0, tile1, p0, p1);
}
