/* test_generate.c: generation against transformers' greedy `generate` (tests/fixtures/<v>/
 * gen.prompt.ids -> <prec>.gen.out.ids), incl. LongRoPE crossing original_max during decoding;
 * the documented PRNG's stream; the sampler's filters against hand-computed expectations; seeded
 * sampling reproducible on any thread count; top-k 1 equal to greedy. */
#include "engine.h"
#include "fixture_util.h"
#include "harness.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct collected {
    int32_t ids[256];
    int n;
} collected;

static bool collect(void *user, int32_t token, const char *text, size_t len) {
    collected *c = user;
    (void)text;
    (void)len;
    if (token >= 0 && c->n < 256) c->ids[c->n++] = token;
    return true;
}

/* Generates n_new tokens after the prompt; fills out (must hold n_new). */
static bool generate_ids(p3_test_ctx *t, phi3c_model *model, const int32_t *prompt, int n_prompt,
                         const phi3c_sampler_params *sp, int n_new, collected *out,
                         phi3c_session_stats *stats) {
    phi3c_session *s = NULL;
    phi3c_error err = {0};
    phi3c_session_params par = phi3c_session_params_default();
    par.n_batch = 8; /* the prompt in several chunks */
    bool ok = CHECK_OK(phi3c_session_create(model, &par, &s, &err), &err) &&
              CHECK_OK(phi3c_session_feed_tokens(s, prompt, (size_t)n_prompt, NULL, &err), &err);
    phi3c_generate_result r;
    memset(out, 0, sizeof *out);
    ok = ok && CHECK_OK(phi3c_generate(s, sp, n_new, collect, out, &r, &err), &err);
    if (ok) CHECK_EQ_INT(r.n_generated, out->n);
    if (ok && stats) phi3c_session_get_stats(s, stats);
    phi3c_session_free(s);
    return ok;
}

static phi3c_model *load(p3_test_ctx *t, const char *path, int n_threads) {
    phi3c_model_params mp = phi3c_model_params_default();
    mp.n_threads = n_threads;
    phi3c_model *m = NULL;
    phi3c_error err = {0};
    CHECK_OK(phi3c_model_load(path, &mp, &m, &err), &err);
    return m;
}

static void check_greedy(p3_test_ctx *t, const char *variant, const char *file, const char *prec) {
    char path[256];
    int n_prompt = 0, n_want = 0;
    snprintf(path, sizeof path, "tests/fixtures/%s/gen.prompt.ids", variant);
    int32_t *prompt = p3_fixture_read_ids(t, path, &n_prompt);
    snprintf(path, sizeof path, "tests/fixtures/%s/%s.gen.out.ids", variant, prec);
    int32_t *want = p3_fixture_read_ids(t, path, &n_want);
    snprintf(path, sizeof path, "tests/fixtures/%s/%s", variant, file);
    phi3c_model *m = prompt && want ? load(t, path, 2) : NULL;
    collected got;
    phi3c_session_stats stats = {0};
    phi3c_sampler_params greedy = phi3c_sampler_params_greedy();
    if (m && generate_ids(t, m, prompt, n_prompt, &greedy, n_want, &got, &stats)) {
        int first_diff = -1;
        for (int i = 0; i < n_want && first_diff < 0; i++)
            if (i >= got.n || got.ids[i] != want[i]) first_diff = i;
        CHECK_MSG(got.n == n_want && first_diff < 0,
                  "%s: greedy ids differ from transformers at new token %d of %d (got %d)", path,
                  first_diff, n_want, got.n);
        printf("    %-8s %-15s greedy: %d/%d ids equal transformers, %d re-prefill(s)\n", variant,
               file, first_diff < 0 ? n_want : first_diff, n_want, stats.n_reprefills);
        /* crossing original_max during decoding must re-run the history once with long factors */
        bool crosses = strcmp(variant, "longrope") == 0 || strcmp(variant, "phi4mini") == 0;
        CHECK_EQ_INT(stats.n_reprefills, crosses ? 1 : 0);
    }
    phi3c_model_free(m);
    p3_free(prompt);
    p3_free(want);
}

P3_TEST(generate_greedy_equals_transformers_mini4k) {
    check_greedy(t, "mini4k", "hf-f32", "f32");
    check_greedy(t, "mini4k", "model-f32.gguf", "f32");
    check_greedy(t, "mini4k", "hf-bf16", "bf16");
}

P3_TEST(generate_greedy_equals_transformers_longrope_across_original_max) {
    check_greedy(t, "longrope", "hf-bf16", "bf16");
    check_greedy(t, "longrope", "model-bf16.gguf", "bf16");
}

P3_TEST(generate_greedy_equals_transformers_medium_and_phi4mini) {
    check_greedy(t, "medium", "hf-bf16", "bf16");
    check_greedy(t, "phi4mini", "hf-bf16", "bf16");
    check_greedy(t, "phi4mini", "model-bf16.gguf", "bf16");
}

P3_TEST(generate_seeded_sampling_reproducible_on_any_thread_count_and_top_k_1_is_greedy) {
    int n_prompt = 0;
    int32_t *prompt = p3_fixture_read_ids(t, "tests/fixtures/longrope/gen.prompt.ids", &n_prompt);
    phi3c_model *m1 = prompt ? load(t, "tests/fixtures/longrope/hf-bf16", 1) : NULL;
    phi3c_model *m2 = prompt ? load(t, "tests/fixtures/longrope/hf-bf16", 2) : NULL;
    if (m1 && m2) {
        phi3c_sampler_params sp = phi3c_sampler_params_default();
        sp.temperature = 1.5f; /* flat enough that different seeds really differ */
        sp.top_k = 0;
        sp.top_p = 1.0f;
        sp.min_p = 0.0f;
        sp.seed = 1234;
        collected a, b, c, other;
        generate_ids(t, m1, prompt, n_prompt, &sp, 24, &a, NULL);
        generate_ids(t, m1, prompt, n_prompt, &sp, 24, &b, NULL);
        generate_ids(t, m2, prompt, n_prompt, &sp, 24, &c, NULL);
        sp.seed = 99;
        generate_ids(t, m1, prompt, n_prompt, &sp, 24, &other, NULL);
        CHECK(a.n == 24 && memcmp(a.ids, b.ids, sizeof a.ids) == 0);
        CHECK_MSG(memcmp(a.ids, c.ids, sizeof a.ids) == 0, "1 and 2 threads sample differently");
        CHECK_MSG(memcmp(a.ids, other.ids, sizeof a.ids) != 0, "seeds 1234 and 99 agree");

        collected greedy_ids, top1;
        phi3c_sampler_params greedy = phi3c_sampler_params_greedy();
        sp.top_k = 1;
        sp.temperature = 1.0f;
        generate_ids(t, m2, prompt, n_prompt, &greedy, 24, &greedy_ids, NULL);
        generate_ids(t, m2, prompt, n_prompt, &sp, 24, &top1, NULL);
        CHECK(greedy_ids.n == 24 && memcmp(greedy_ids.ids, top1.ids, sizeof top1.ids) == 0);
    }
    phi3c_model_free(m1);
    phi3c_model_free(m2);
    p3_free(prompt);
}

/* ---- The sampler on fixed logits. */

P3_TEST(sampler_prng_is_the_documented_xorshift64star_after_splitmix64) {
    /* values computed independently (Python) from the definitions in engine.h */
    p3_rng r;
    p3_rng_seed(&r, 0);
    CHECK(p3_rng_next(&r) == 0x7bbcb40d550682d0ull);
    CHECK(p3_rng_next(&r) == 0xde7fe413d00cc9fdull);
    CHECK(p3_rng_next(&r) == 0xb3c638353c668c91ull);
    p3_rng_seed(&r, 42);
    CHECK(p3_rng_next(&r) == 0x31b0ece7c4f697a2ull);
    CHECK(p3_rng_next(&r) == 0x9008a3b1cb686f03ull);
}

static p3_sampler *sampler(p3_test_ctx *t, float temp, int top_k, float top_p, float min_p,
                           int vocab) {
    p3_sampler_options o;
    p3_sampler_options_init(&o);
    o.temperature = temp;
    o.top_k = top_k;
    o.top_p = top_p;
    o.min_p = min_p;
    o.seed = 7;
    p3_sampler *s = NULL;
    p3_error err = {0};
    CHECK_OK(p3_sampler_create(&o, vocab, &s, &err), &err);
    return s;
}

/* Draws n tokens from fixed logits; counts[vocab]. */
static void draw(p3_sampler *s, const float *logits, int vocab, int n, int *counts) {
    float work[16];
    memset(counts, 0, (size_t)vocab * sizeof *counts);
    for (int i = 0; i < n; i++) {
        memcpy(work, logits, (size_t)vocab * sizeof(float));
        counts[p3_sampler_pick(s, work, NULL, 0)]++;
    }
}

P3_TEST(sampler_filters_keep_the_tokens_they_should) {
    /* probabilities at T=1: softmax of log(p) is p itself */
    const float p[6] = {0.05f, 0.40f, 0.25f, 0.15f, 0.10f, 0.05f};
    float logits[6];
    for (int i = 0; i < 6; i++) logits[i] = logf(p[i]);
    int counts[6];
    enum { N = 20000 };

    p3_sampler *s = sampler(t, 1.0f, 0, 1.0f, 0.0f, 6);
    if (s) {
        draw(s, logits, 6, N, counts);
        for (int i = 0; i < 6; i++) /* 5 sigma of a binomial */
            CHECK_MSG(fabs(counts[i] / (double)N - p[i]) < 5 * sqrt(p[i] * (1 - p[i]) / N),
                      "token %d drawn %d of %d times, p = %g", i, counts[i], N, p[i]);
    }
    p3_sampler_free(s);

    s = sampler(t, 1.0f, 2, 1.0f, 0.0f, 6); /* top-k 2: ids 1 and 2, renormalised 0.4 : 0.25 */
    if (s) {
        draw(s, logits, 6, N, counts);
        CHECK(counts[0] + counts[3] + counts[4] + counts[5] == 0);
        CHECK_NEAR(counts[1] / (double)N, 0.40 / 0.65, 0.02);
    }
    p3_sampler_free(s);

    s = sampler(t, 1.0f, 0, 0.7f, 0.0f, 6); /* top-p 0.7: 0.40 + 0.25 < 0.7, + 0.15 reaches it */
    if (s) {
        draw(s, logits, 6, N, counts);
        CHECK(counts[1] && counts[2] && counts[3]);
        CHECK(counts[0] + counts[4] + counts[5] == 0);
    }
    p3_sampler_free(s);

    s = sampler(t, 1.0f, 0, 1.0f, 0.3f, 6); /* min-p 0.3: p >= 0.12 keeps 0.40, 0.25, 0.15 */
    if (s) {
        draw(s, logits, 6, N, counts);
        CHECK(counts[1] && counts[2] && counts[3]);
        CHECK(counts[0] + counts[4] + counts[5] == 0);
    }
    p3_sampler_free(s);

    s = sampler(t, 0.0f, 0, 1.0f, 0.0f, 6); /* greedy */
    if (s) {
        draw(s, logits, 6, 10, counts);
        CHECK_EQ_INT(counts[1], 10);
    }
    p3_sampler_free(s);
}

P3_TEST(sampler_repetition_penalty_follows_transformers_rule) {
    p3_sampler_options o;
    p3_sampler_options_init(&o);
    o.temperature = 0.0f;
    o.repeat_penalty = 2.0f;
    o.repeat_last_n = -1;
    p3_sampler *s = NULL;
    p3_error err = {0};
    if (!CHECK_OK(p3_sampler_create(&o, 4, &s, &err), &err)) return;
    /* transformers: score < 0 -> score * penalty, else score / penalty; once per distinct id */
    float logits[4] = {3.0f, 2.0f, -1.0f, 1.9f};
    const int32_t recent[3] = {0, 2, 0};
    int32_t id = p3_sampler_pick(s, logits, recent, 3);
    CHECK(logits[0] == 1.5f && logits[1] == 2.0f && logits[2] == -2.0f && logits[3] == 1.9f);
    CHECK_EQ_INT(id, 1);
    p3_sampler_free(s);
}

/* The plain scan p3_argmax must agree with: the first index of the largest value, NaNs never
 * larger, x[0] NaN giving 0. */
static int32_t argmax_scan(const float *x, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

P3_TEST(argmax_equals_the_plain_scan_with_ties_nans_signed_zeros_and_odd_lengths) {
    enum { N = 300 };
    float x[N];
    p3_test_rng rng;
    p3_test_rng_seed(&rng, 42);
    const float specials[] = {0.0f, -0.0f, -INFINITY, INFINITY, NAN, 3.0f, -3.0f};
    for (int trial = 0; trial < 2000; trial++) {
        int n = 1 + (int)(p3_test_rng_u64(&rng) % N);
        for (int i = 0; i < n; i++) {
            uint64_t r = p3_test_rng_u64(&rng);
            /* few distinct values, so ties are common */
            x[i] = r % 4 == 0 ? specials[(r >> 8) % P3_ARRAY_LEN(specials)]
                              : (float)((int)((r >> 16) % 9) - 4);
        }
        if (trial % 7 == 0) x[0] = NAN;
        CHECK_EQ_INT(p3_argmax(x, n), argmax_scan(x, n));
    }
}
