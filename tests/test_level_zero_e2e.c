/* test_level_zero_e2e.c: whole models on the Level Zero backend (through the loader and, in
 * tests/stages/level_zero.sh, the test driver): every tiny fixture's logits against transformers'
 * (tests/fixtures), prefill and token by token, and INT4 (w4a32) logits against the CPU backend's
 * with the same quantized weights. Skipped when no Level Zero GPU is available. */
#include "backend.h"
#include "fixture_util.h"
#include "harness.h"
#include "phi3c.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

extern const p3_backend_iface p3_backend_level_zero;

static bool l0_available(p3_test_ctx *t) {
    char why[256] = "", devices[256] = "";
    if (p3_backend_level_zero.probe(why, sizeof why, devices, sizeof devices)) return true;
    p3_test_skip(t, "level-zero unavailable: %s", why);
    return false;
}

static phi3c_model *load(p3_test_ctx *t, const char *path, const char *backend, phi3c_quant q,
                         phi3c_act act) {
    phi3c_model_params mp = phi3c_model_params_default();
    mp.backend = backend;
    mp.quant = q;
    mp.act = act;
    mp.n_threads = 2;
    phi3c_model *m = NULL;
    phi3c_error err = {0};
    CHECK_OK(phi3c_model_load(path, &mp, &m, &err), &err);
    return m;
}

/* Logits of every position of ids: one prefill (decode = false) or one token at a time. */
static float *run_logits(p3_test_ctx *t, phi3c_model *m, const int32_t *ids, int n, bool decode) {
    size_t vocab = (size_t)phi3c_model_vocab_size(m);
    phi3c_session_params sp = phi3c_session_params_default();
    sp.n_ctx = n;
    sp.kv = PHI3C_KV_F32;
    sp.all_logits = true;
    phi3c_session *s = NULL;
    phi3c_error err = {0};
    float *logits = p3_malloc((size_t)n * vocab * sizeof(float));
    bool ok = logits && CHECK_OK(phi3c_session_create(m, &sp, &s, &err), &err);
    for (int p = 0; ok && p < n; p += decode ? 1 : n)
        ok = CHECK_OK(phi3c_session_feed_tokens(s, ids + p, decode ? 1 : (size_t)n,
                                                logits + (size_t)p * vocab, &err),
                      &err);
    phi3c_session_free(s);
    if (!ok) {
        p3_free(logits);
        return NULL;
    }
    return logits;
}

/* A fixture's sequence through the Level Zero backend against transformers' logits, within the
 * bound the engine's own fixture tests use (relative to max|logit|). */
static void check_seq(p3_test_ctx *t, const char *variant, const char *model, const char *prec,
                      int seq, bool decode, double rel_bound) {
    char path[256];
    snprintf(path, sizeof path, "tests/fixtures/%s/seq%d.ids", variant, seq);
    int n = 0;
    int32_t *ids = p3_fixture_read_ids(t, path, &n);
    snprintf(path, sizeof path, "tests/fixtures/%s/%s.seq%d.logits", variant, prec, seq);
    size_t size = 0;
    float *want = p3_test_read_file(t, path, &size);
    snprintf(path, sizeof path, "tests/fixtures/%s/%s", variant, model);
    phi3c_model *m =
        ids && want ? load(t, path, "level-zero", PHI3C_QUANT_NONE, PHI3C_ACT_DEFAULT) : NULL;
    if (m) {
        size_t count = (size_t)n * (size_t)phi3c_model_vocab_size(m);
        float *got = CHECK(size == count * sizeof(float)) ? run_logits(t, m, ids, n, decode) : NULL;
        if (got) {
            double err = p3_max_abs_diff(got, want, count),
                   bound = rel_bound * p3_max_abs(want, count);
            printf("    level-zero %s %s seq%d%s: max|phi3c - transformers| %.3g (bound %.3g)\n",
                   variant, model, seq, decode ? " decode" : "", err, bound);
            CHECK_MSG(err <= bound, "%s%s: error %g > %g", path, decode ? " decode" : "", err,
                      bound);
        }
        p3_free(got);
    }
    phi3c_model_free(m);
    p3_free(ids);
    p3_free(want);
}

static void check_fixture(p3_test_ctx *t, const char *variant, const char *model, const char *prec,
                          bool decode, double rel_bound) {
    check_seq(t, variant, model, prec, 0, decode, rel_bound);
}

#define F32_BOUND  1e-4
#define BF16_BOUND 2e-3

P3_TEST(level_zero_e2e_mini4k_logits_match_transformers) {
    if (!l0_available(t)) return;
    check_fixture(t, "mini4k", "hf-f32", "f32", false, F32_BOUND);
    check_fixture(t, "mini4k", "hf-f32", "f32", true, F32_BOUND);
    check_fixture(t, "mini4k", "model-f32.gguf", "f32", false, F32_BOUND);
    check_fixture(t, "mini4k", "hf-bf16", "bf16", false, BF16_BOUND);
}

P3_TEST(level_zero_e2e_other_fixtures_match_transformers) {
    if (!l0_available(t)) return;
    check_fixture(t, "longrope", "hf-bf16", "bf16", false, BF16_BOUND);
    check_seq(t, "longrope", "hf-bf16", "bf16", 1, false, BF16_BOUND); /* past the switch */
    check_fixture(t, "medium", "hf-bf16", "bf16", false, BF16_BOUND);
    check_fixture(t, "medium", "hf-bf16", "bf16", true, BF16_BOUND);
    check_fixture(t, "phi4mini", "hf-bf16", "bf16", false, BF16_BOUND);
}

/* INT4 weights quantize identically on both backends (and, for w4a8, so do the activations),
 * so the logits differ only by f32 summation order: NMSE bound 1e-8 against the CPU backend. */
P3_TEST(level_zero_e2e_int4_matches_cpu_backend) {
    if (!l0_available(t)) return;
    const char *path = "tests/fixtures/medium/hf-bf16";
    int n = 0;
    int32_t *ids = p3_fixture_read_ids(t, "tests/fixtures/medium/seq0.ids", &n);
    const phi3c_quant quants[] = {PHI3C_QUANT_INT4_G128, PHI3C_QUANT_INT4_G128_ASYM};
    const phi3c_act acts[] = {PHI3C_ACT_W4A32, PHI3C_ACT_W4A8};
    for (size_t i = 0; ids && i < 4; i++) {
        phi3c_quant q = quants[i / 2];
        phi3c_act act = acts[i % 2];
        phi3c_model *gpu = load(t, path, "level-zero", q, act);
        phi3c_model *cpu = load(t, path, "cpu", q, act);
        float *a = gpu ? run_logits(t, gpu, ids, n, false) : NULL;
        float *b = cpu ? run_logits(t, cpu, ids, n, false) : NULL;
        const char *what = i == 0   ? "sym w4a32"
                           : i == 1 ? "sym w4a8"
                           : i == 2 ? "asym w4a32"
                                    : "asym w4a8";
        if (a && b) {
            size_t count = (size_t)n * (size_t)phi3c_model_vocab_size(cpu);
            double e = p3_nmse(a, b, count);
            printf("    level-zero vs cpu, medium int4 %s: NMSE %.3g\n", what, e);
            CHECK_MSG(e <= 1e-8, "int4 %s: NMSE %g against the CPU backend", what, e);
        }
        p3_free(a);
        p3_free(b);
        phi3c_model_free(gpu);
        phi3c_model_free(cpu);
    }
    p3_free(ids);
}

/* Greedy decoding on the Level Zero backend reproduces transformers' greedy generation (the
 * fixture guarantees every step's top-2 gap is >= 0.01, far above the logit error). */
P3_TEST(level_zero_e2e_greedy_matches_transformers) {
    if (!l0_available(t)) return;
    int n_prompt = 0, n_want = 0;
    int32_t *prompt = p3_fixture_read_ids(t, "tests/fixtures/mini4k/gen.prompt.ids", &n_prompt);
    int32_t *want = p3_fixture_read_ids(t, "tests/fixtures/mini4k/f32.gen.out.ids", &n_want);
    phi3c_model *m = prompt && want ? load(t, "tests/fixtures/mini4k/hf-f32", "level-zero",
                                           PHI3C_QUANT_NONE, PHI3C_ACT_DEFAULT)
                                    : NULL;
    phi3c_session_params sp = phi3c_session_params_default();
    sp.n_ctx = n_prompt + n_want;
    sp.kv = PHI3C_KV_F32;
    phi3c_session *s = NULL;
    phi3c_error err = {0};
    if (m && CHECK_OK(phi3c_session_create(m, &sp, &s, &err), &err) &&
        CHECK_OK(phi3c_session_feed_tokens(s, prompt, (size_t)n_prompt, NULL, &err), &err)) {
        int vocab = phi3c_model_vocab_size(m), same = 0;
        for (int i = 0; i < n_want; i++) {
            const float *l = phi3c_session_logits(s);
            int32_t best = 0;
            for (int v = 1; v < vocab; v++)
                if (l[v] > l[best]) best = v;
            same += best == want[i];
            if (!CHECK_MSG(best == want[i], "token %d: %d, transformers %d", i, best, want[i]))
                break;
            if (!CHECK_OK(phi3c_session_feed_tokens(s, &best, 1, NULL, &err), &err)) break;
        }
        printf("    level-zero greedy: %d/%d tokens equal to transformers'\n", same, n_want);
    }
    phi3c_session_free(s);
    phi3c_model_free(m);
    p3_free(prompt);
    p3_free(want);
}
