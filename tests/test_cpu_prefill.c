/* test_cpu_prefill.c: prefill-sized cases the conformance suite's small shapes miss.
 * Attention with peaked scores, where many softmax weights fall under P3_ATTN_MIN_ARG and are
 * exactly 0 (kernels/ref.h): every CPU level still reproduces the reference bit for bit, other
 * backends within the conformance suite's attention bound. A w4a8 matmul with enough tokens and
 * groups that the AMX GEMM splits its token tiles into several L2 blocks, plus a remainder. */
#include "conformance.h"
#include "int4.h"
#include "ref.h"

#include <math.h>
#include <string.h>

enum { NH = 4, NKV = 2, HD = 96, CTX = 80, TOK1 = 37, TOK2 = 29 };

/* Share of (query, key) pairs of the reference whose weight is cut (s - max < P3_ATTN_MIN_ARG). */
static double cut_share(const float *qkv, const float *kc, int n_tokens, int pos0,
                        const p3_attn_params *p) {
    size_t width = (size_t)(NH + 2 * NKV) * HD, stride = (size_t)NKV * HD;
    long cut = 0, all = 0;
    for (int t = 0; t < n_tokens; t++)
        for (int h = 0; h < NH; h++) {
            const float *q = qkv + (size_t)t * width + (size_t)h * HD;
            const float *k = kc + (size_t)(h / (NH / NKV)) * HD;
            float s[CTX], m = -INFINITY;
            for (int j = 0; j <= pos0 + t; j++) {
                s[j] = p3_ref_dot(q, k + (size_t)j * stride, HD) * p->scale;
                m = fmaxf(m, s[j]);
            }
            for (int j = 0; j <= pos0 + t; j++, all++) cut += s[j] - m < P3_ATTN_MIN_ARG;
        }
    return (double)cut / (double)all;
}

static void peaked_case(p3_test_ctx *t, conf_target *tg, p3_kv_dtype kvt, p3_test_rng *rng) {
    p3_backend *be = &tg->be;
    p3_error err = {0};
    p3_attn_params p = {NH, NKV, HD, 0, 1.0f / sqrtf((float)HD)};
    p3_kv_desc kd = {1, CTX, NKV, HD, kvt};
    size_t width = (size_t)(NH + 2 * NKV) * HD, cache = (size_t)CTX * NKV * HD;
    float *kc = p3_calloc(cache, 4), *vc = p3_calloc(cache, 4);
    p3_kv_cache *kv = NULL;
    if (!CHECK_OK(p3_be_kv_alloc(be, &kd, &kv, &err), &err)) goto done;
    const int chunks[] = {TOK1, 1, TOK2};
    for (int c = 0, pos0 = 0; c < 3; pos0 += chunks[c], c++) {
        int nt = chunks[c];
        size_t nq = (size_t)nt * width, no = (size_t)nt * NH * HD;
        float *qkv = p3_malloc(nq * 4), *ref = p3_malloc(no * 4), *got = p3_malloc(no * 4);
        for (size_t i = 0; i < nq; i++) qkv[i] = p3_test_rng_normal(rng) * 8.0f;
        p3_ref_kv_write(kc, vc, qkv, nt, pos0, &p);
        for (int r = pos0 * NKV; r < (pos0 + nt) * NKV; r++) {
            if (kvt == P3_KV_F16) p3_ref_kv_round_f16(kc + (size_t)r * HD, HD);
            if (kvt == P3_KV_F16) p3_ref_kv_round_f16(vc + (size_t)r * HD, HD);
            if (kvt == P3_KV_Q8) p3_ref_kv_round_q8(kc + (size_t)r * HD, HD);
            if (kvt == P3_KV_Q8) p3_ref_kv_round_q8(vc + (size_t)r * HD, HD);
        }
        p3_ref_attention(ref, qkv, kc, vc, nt, pos0, &p);
        if (nt > 1) /* the case must exercise the cut, or it proves nothing */
            CHECK_MSG(cut_share(qkv, kc, nt, pos0, &p) > 0.2, "only %.2f of the weights are cut",
                      cut_share(qkv, kc, nt, pos0, &p));
        conf_buf qb, ob;
        char what[96];
        snprintf(what, sizeof what, "peaked scores, kv %d, %d tokens at %d", (int)kvt, nt, pos0);
        if (conf_buf_alloc(t, be, nq * 4, qkv, &qb) && conf_buf_alloc(t, be, no * 4, NULL, &ob)) {
            CHECK_OK(p3_be_kv_write(be, kv, 0, qb.ref, nt, pos0, &p, &err), &err);
            CHECK_OK(p3_be_attention(be, ob.ref, qb.ref, kv, 0, nt, pos0, &p, &err), &err);
            if (conf_buf_read(t, be, &ob, got, what)) {
                bool cpu = strncmp(tg->label, "cpu", 3) == 0;
                conf_expect(t, "attention", tg->label, what, got, ref, no, cpu ? 0.0 : 1e-10);
                if (cpu)
                    CHECK_MSG(memcmp(got, ref, no * 4) == 0, "%s %s: not bit-identical", tg->label,
                              what);
            }
        }
        conf_buf_free(be, &qb);
        conf_buf_free(be, &ob);
        p3_free(qkv);
        p3_free(ref);
        p3_free(got);
    }
done:
    p3_be_kv_free(be, kv);
    p3_free(kc);
    p3_free(vc);
}

static void peaked_all_caches(p3_test_ctx *t, conf_target *tg, p3_test_rng *rng) {
    for (p3_kv_dtype kvt = P3_KV_F32; kvt <= P3_KV_Q8; kvt++)
        if (p3_be_supports(&tg->be, P3_OP_ATTENTION, P3_DT_F32, P3_ACT_F32, kvt))
            peaked_case(t, tg, kvt, rng);
}

/* Runs fn on every backend target (every CPU level) with one random stream. */
static void each_target(p3_test_ctx *t, uint64_t seed,
                        void (*fn)(p3_test_ctx *, conf_target *, p3_test_rng *)) {
    conf_target targets[CONF_MAX_TARGETS];
    p3_test_rng rng;
    p3_test_rng_seed(&rng, seed);
    int n_targets = conf_open_all(t, targets, 2);
    for (int i = 0; i < n_targets; i++) fn(t, &targets[i], &rng);
    conf_close_all(targets, n_targets);
}

P3_TEST(cpu_prefill_attention_peaked_scores) {
    each_target(t, 64, peaked_all_caches);
}

/* 309 tokens (19 tiles of 16 and 5 more) x 5120 inputs (40 groups): 2 blocks of token tiles. */
static void blocked_matmul_case(p3_test_ctx *t, conf_target *tg, p3_dtype dt, p3_test_rng *rng) {
    enum { ROWS = 40, COLS = 5120, TOKENS = 309 };
    p3_backend *be = &tg->be;
    p3_error err = {0};
    size_t bb = dt == P3_DT_I4G128S ? sizeof(p3_block_i4s) : sizeof(p3_block_i4a);
    size_t row_bytes = (size_t)p3_groups(COLS) * bb, ny = (size_t)TOKENS * ROWS;
    uint8_t *wd = p3_malloc(row_bytes * ROWS);
    float *row = p3_malloc(COLS * 4), *x = p3_malloc((size_t)TOKENS * COLS * 4);
    float *ref = p3_malloc(ny * 4), *got = p3_malloc(ny * 4);
    for (int r = 0; r < ROWS; r++) {
        for (int i = 0; i < COLS; i++) row[i] = p3_test_rng_normal(rng) * 0.5f;
        if (dt == P3_DT_I4G128S)
            p3_quantize_row_i4s(row, COLS, (p3_block_i4s *)(wd + r * row_bytes), P3_QUANT_RTN);
        else
            p3_quantize_row_i4a(row, COLS, (p3_block_i4a *)(wd + r * row_bytes), P3_QUANT_RTN);
    }
    for (size_t i = 0; i < (size_t)TOKENS * COLS; i++) x[i] = p3_test_rng_normal(rng);
    p3_matmul_w4a8_ref(ref, x, wd, dt, ROWS, COLS, TOKENS);
    p3_weight_desc desc = {"w", dt, ROWS, COLS, wd, P3_ACT_Q8};
    p3_weight *w = NULL;
    conf_buf xb, yb;
    if (CHECK_OK(p3_be_weight_upload(be, &desc, &w, &err), &err) &&
        conf_buf_alloc(t, be, (size_t)TOKENS * COLS * 4, x, &xb) &&
        conf_buf_alloc(t, be, ny * 4, NULL, &yb)) {
        CHECK_OK(p3_be_matmul(be, yb.ref, xb.ref, w, TOKENS, &err), &err);
        if (conf_buf_read(t, be, &yb, got, "blocked matmul")) {
            bool cpu = strncmp(tg->label, "cpu", 3) == 0;
            conf_expect(t, "matmul w4a8", tg->label, "40x5120, 309 tokens", got, ref, ny,
                        cpu ? 0.0 : 1e-12);
        }
    }
    conf_buf_free(be, &xb);
    conf_buf_free(be, &yb);
    p3_be_weight_free(be, w);
    p3_free(wd);
    p3_free(row);
    p3_free(x);
    p3_free(ref);
    p3_free(got);
}

static void blocked_both_kinds(p3_test_ctx *t, conf_target *tg, p3_test_rng *rng) {
    const p3_dtype dts[] = {P3_DT_I4G128S, P3_DT_I4G128A};
    for (size_t d = 0; d < P3_ARRAY_LEN(dts); d++)
        if (p3_be_supports(&tg->be, P3_OP_MATMUL, dts[d], P3_ACT_Q8, P3_KV_F32))
            blocked_matmul_case(t, tg, dts[d], rng);
}

P3_TEST_SLOW(cpu_prefill_matmul_token_blocks) {
    each_target(t, 65, blocked_both_kinds);
}
