/* test_cpu_levels.c: the whole forward pass through every CPU ISA level reachable here: the f32
 * path against transformers' logits (tests/fixtures), and the INT4 paths (w4a8 and w4a32, sym and
 * asym, f16/q8/f32 KV) against the scalar level, which is the reference of the same kind (NMSE
 * 1e-6; the w4a8 path is bit-identical up to an unquantized tied lm_head). */
#include "engine.h"
#include "fixture_util.h"
#include "harness.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const levels[] = {"scalar", "avx2", "avx2-novnni", "avx512", "amx", "neon"};

static bool level_available(const char *level) {
    p3_backend be;
    p3_error err = {0};
    p3_backend_options opt = {.n_threads = 1, .variant = level};
    if (p3_backend_open("cpu", &opt, &be, &err) != PHI3C_OK) return false;
    p3_backend_close(&be);
    return true;
}

/* All logits of one prefill of ids on a model loaded from path with the given level. */
static float *run_level(p3_test_ctx *t, const char *path, const char *level, p3_weight_quant q,
                        p3_act_mode act, p3_kv_dtype kv, const int32_t *ids, int n, int *vocab) {
    p3_load_options lo;
    p3_load_options_init(&lo);
    lo.backend = "cpu";
    lo.variant = level;
    lo.n_threads = 2;
    lo.quant = q;
    lo.act = act;
    lo.act_given = true;
    p3_model *m = NULL;
    p3_session *s = NULL;
    p3_error err = {0};
    float *logits = NULL;
    if (!CHECK_OK(p3_model_load(path, &lo, &m, &err), &err)) return NULL;
    p3_session_options so;
    p3_session_options_init(&so);
    so.kv = kv;
    so.kv_given = true;
    so.all_logits = true;
    so.n_batch = 5; /* several chunks: prefill and pos0 > 0 */
    *vocab = m->cfg.vocab_size;
    if (CHECK_OK(p3_session_create(m, &so, &s, &err), &err)) {
        logits = p3_malloc((size_t)n * (size_t)*vocab * sizeof(float));
        if (!CHECK_OK(p3_session_feed(s, ids, n, logits, &err), &err)) {
            p3_free(logits);
            logits = NULL;
        }
    }
    p3_session_free(s);
    p3_model_free(m);
    return logits;
}

P3_TEST(cpu_levels_f32_logits_match_transformers) {
    int n = 0, vocab = 0;
    int32_t *ids = p3_fixture_read_ids(t, "tests/fixtures/mini4k/seq0.ids", &n);
    size_t size = 0;
    float *want = p3_test_read_file(t, "tests/fixtures/mini4k/f32.seq0.logits", &size);
    for (size_t l = 0; ids && want && l < P3_ARRAY_LEN(levels); l++) {
        if (!level_available(levels[l])) continue;
        float *got = run_level(t, "tests/fixtures/mini4k/hf-f32", levels[l], P3_WQ_NONE, P3_ACT_F32,
                               P3_KV_F32, ids, n, &vocab);
        if (!got) continue;
        size_t count = (size_t)n * (size_t)vocab;
        CHECK(size == count * sizeof(float));
        double e = p3_max_abs_diff(got, want, count), bound = 1e-4 * p3_max_abs(want, count);
        printf("    cpu/%-11s f32 mini4k: max|phi3c - transformers| %.3g (bound %.3g)\n", levels[l],
               e, bound);
        CHECK_MSG(e <= bound, "cpu/%s: f32 logits differ from transformers by %g > %g", levels[l],
                  e, bound);
        p3_free(got);
    }
    p3_free(ids);
    p3_free(want);
}

typedef struct int4_case {
    const char *variant; /* fixture folder */
    p3_weight_quant q;
    p3_act_mode act;
    p3_kv_dtype kv;
} int4_case;

P3_TEST(cpu_levels_int4_logits_equal_scalar_reference) {
    const int4_case cases[] = {
        {"mini4k", P3_WQ_INT4_SYM, P3_ACT_Q8, P3_KV_F16},
        {"mini4k", P3_WQ_INT4_SYM, P3_ACT_F32, P3_KV_Q8},
        {"medium", P3_WQ_INT4_ASYM, P3_ACT_Q8, P3_KV_F16}, /* GQA, partial groups */
        {"phi4mini", P3_WQ_INT4_SYM, P3_ACT_Q8, P3_KV_Q8}, /* partial rotary, tied embedding */
        {"phi4mini", P3_WQ_INT4_SYM, P3_ACT_Q8, P3_KV_F32},
        {"phi4mini", P3_WQ_INT4_SYM, P3_ACT_F32, P3_KV_F32},
        {"phi4mini", P3_WQ_NONE, P3_ACT_F32, P3_KV_F32},
    };
    for (size_t c = 0; c < P3_ARRAY_LEN(cases); c++) {
        const int4_case *k = &cases[c];
        char path[256];
        snprintf(path, sizeof path, "tests/fixtures/%s/seq0.ids", k->variant);
        int n = 0, vocab = 0;
        int32_t *ids = p3_fixture_read_ids(t, path, &n);
        snprintf(path, sizeof path, "tests/fixtures/%s/hf-bf16", k->variant);
        float *ref = ids ? run_level(t, path, "scalar", k->q, k->act, k->kv, ids, n, &vocab) : NULL;
        for (size_t l = 1; ref && l < P3_ARRAY_LEN(levels); l++) {
            if (!level_available(levels[l])) continue;
            float *got = run_level(t, path, levels[l], k->q, k->act, k->kv, ids, n, &vocab);
            if (!got) continue;
            double e = p3_nmse(got, ref, (size_t)n * (size_t)vocab);
            printf("    cpu/%-11s %-8s %s %s kv %s: logits NMSE vs scalar %.3g\n", levels[l],
                   k->variant, p3_weight_quant_name(k->q), k->act == P3_ACT_Q8 ? "w4a8" : "w4a32",
                   k->kv == P3_KV_F16  ? "f16"
                   : k->kv == P3_KV_Q8 ? "q8"
                                       : "f32",
                   e);
            CHECK_MSG(e <= 1e-6, "cpu/%s %s: INT4 logits NMSE %g vs the scalar level > 1e-6",
                      levels[l], k->variant, e);
            p3_free(got);
        }
        p3_free(ref);
        p3_free(ids);
    }
}
