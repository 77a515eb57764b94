/* test_lookup.c: prompt-lookup decoding is exact: greedy ids equal transformers' generate on every
 * fixture (sliding window, LongRoPE switch) on every CPU level, OpenCL and Level Zero (the test
 * driver of tests/stages/level_zero.sh), with the n-gram drafter and with an oracle drafter that
 * proposes the right continuation with planted errors (so full, partial and no acceptance,
 * rollback and the switch are all exercised); seeded sampling gives the same ids as without
 * lookup; a callback stop or max_tokens inside accepted drafts leaves the cache holding exactly
 * the reported tokens. */
#include "api_internal.h"
#include "fixture_util.h"
#include "harness.h"

#include <stdlib.h>
#include <string.h>

enum { MAX_IDS = 256 };

typedef struct collected {
    int32_t ids[MAX_IDS];
    int n, stop_after; /* stop_after > 0: the callback says stop at that many tokens */
} collected;

static bool collect(void *user, int32_t token, const char *text, size_t len) {
    collected *c = user;
    (void)text;
    (void)len;
    if (token >= 0 && c->n < MAX_IDS) c->ids[c->n++] = token;
    return c->stop_after <= 0 || c->n < c->stop_after;
}

/* Drafts the known continuation want[] of a prompt of n_prompt tokens, with every `every`-th
 * draft wrong at one position (0: never), so verifications accept all, some and none. */
typedef struct oracle {
    const int32_t *want;
    int n_prompt, n_want, every, calls;
} oracle;

static int oracle_draft(void *user, const int32_t *seq, int n, int cap, int32_t *draft) {
    oracle *o = user;
    int at = n - o->n_prompt; /* seq ends with generated token at - 1 */
    int k = P3_MAX(0, P3_MIN(cap, o->n_want - at));
    memcpy(draft, o->want + at, (size_t)k * sizeof *draft);
    o->calls++;
    if (k > 0 && o->every > 0 && o->calls % o->every == 0) {
        int j = k == 1 ? 0 : o->calls / o->every % 2 ? k - 1 : k / 2;
        draft[j] = (draft[j] + 1) % 5; /* a real but wrong id */
    }
    (void)seq;
    return k;
}

/* A phi3c_model over a p3_model loaded on a given backend and CPU level (no tokenizer). */
static phi3c_model *load(p3_test_ctx *t, const char *path, const char *backend, const char *level) {
    p3_load_options lo;
    p3_load_options_init(&lo);
    lo.backend = backend;
    lo.variant = level;
    lo.n_threads = 2;
    phi3c_model *pm = p3_calloc(1, sizeof *pm);
    p3_error err = {0};
    if (pm && CHECK_OK(p3_model_load(path, &lo, &pm->m, &err), &err)) return pm;
    p3_free(pm);
    return NULL;
}

typedef struct run_opts {
    const phi3c_sampler_params *sp;
    int n_new, lookup, stop_after;
    oracle *drafter; /* NULL: the n-gram lookup */
} run_opts;

/* Feeds the prompt (batch 8: several chunks) and generates; the session is returned for more
 * checks (NULL on failure). */
static phi3c_session *run(p3_test_ctx *t, phi3c_model *m, const int32_t *prompt, int n_prompt,
                          const run_opts *o, collected *out, phi3c_generate_result *r) {
    phi3c_session *s = NULL;
    phi3c_error err = {0};
    phi3c_session_params par = phi3c_session_params_default();
    par.n_batch = 8;
    par.lookup = o->lookup;
    memset(out, 0, sizeof *out);
    out->stop_after = o->stop_after;
    if (!CHECK_OK(phi3c_session_create(m, &par, &s, &err), &err)) return NULL;
    s->lookup.cost_fixed = 0.05; /* draft lengths that do not depend on this machine's timing */
    if (o->drafter) {
        s->lookup.draft = oracle_draft;
        s->lookup.draft_user = o->drafter;
    }
    phi3c_sampler_params greedy = phi3c_sampler_params_greedy();
    if (CHECK_OK(phi3c_session_feed_tokens(s, prompt, (size_t)n_prompt, NULL, &err), &err) &&
        CHECK_OK(phi3c_generate(s, o->sp ? o->sp : &greedy, o->n_new, collect, out, r, &err), &err))
        return s;
    phi3c_session_free(s);
    return NULL;
}

typedef struct fixture_case {
    const char *variant, *file, *prec;
    int reprefills; /* 1 where generation crosses LongRoPE's original_max */
} fixture_case;

static const fixture_case cases[] = {
    {"mini4k", "hf-f32", "f32", 0},
    {"mini4k", "model-f32.gguf", "f32", 0},
    {"mini4k", "hf-bf16", "bf16", 0},
    {"longrope", "hf-bf16", "bf16", 1},
    {"longrope", "model-bf16.gguf", "bf16", 1},
    {"medium", "hf-bf16", "bf16", 0},
    {"phi4mini", "hf-bf16", "bf16", 1},
    {"phi4mini", "model-bf16.gguf", "bf16", 1},
};

/* Greedy with the n-gram drafter and with the oracle drafter equals transformers' ids. */
static void check_case(p3_test_ctx *t, const fixture_case *c, const char *backend,
                       const char *level) {
    char path[256];
    int n_prompt = 0, n_want = 0;
    snprintf(path, sizeof path, "tests/fixtures/%s/gen.prompt.ids", c->variant);
    int32_t *prompt = p3_fixture_read_ids(t, path, &n_prompt);
    snprintf(path, sizeof path, "tests/fixtures/%s/%s.gen.out.ids", c->variant, c->prec);
    int32_t *want = p3_fixture_read_ids(t, path, &n_want);
    snprintf(path, sizeof path, "tests/fixtures/%s/%s", c->variant, c->file);
    phi3c_model *m = prompt && want ? load(t, path, backend, level) : NULL;
    for (int d = 0; m && d < 3; d++) {
        oracle orc = {want, n_prompt, n_want, d == 1 ? 3 : 2, 0};
        run_opts o = {.n_new = n_want, .lookup = d == 2 ? 16 : 8, .drafter = d ? &orc : NULL};
        collected got;
        phi3c_generate_result r;
        phi3c_session *s = run(t, m, prompt, n_prompt, &o, &got, &r);
        if (!s) break;
        int diff = -1;
        for (int i = 0; i < n_want && diff < 0; i++)
            if (i >= got.n || got.ids[i] != want[i]) diff = i;
        CHECK_MSG(got.n == n_want && diff < 0,
                  "%s on %s/%s, %s drafts: ids differ from transformers at new token %d", path,
                  backend, level ? level : "-", d ? "oracle" : "n-gram", diff);
        CHECK_EQ_INT(s->s->n_reprefills, c->reprefills);
        CHECK_EQ_INT(s->s->n_past, n_prompt + n_want);
        if (d) /* the oracle's drafts are mostly right: verification really keeps tokens */
            CHECK_MSG(r.n_accepted >= n_want / 3 && r.n_accepted < r.n_drafted &&
                          r.n_forwards < n_want * 3 / 4,
                      "%s: oracle drafts: %d of %d accepted in %d forwards", path, r.n_accepted,
                      r.n_drafted, r.n_forwards);
        phi3c_session_free(s);
    }
    phi3c_model_free(m);
    p3_free(prompt);
    p3_free(want);
}

static bool cpu_level_available(const char *level) {
    p3_backend be;
    p3_error err = {0};
    p3_backend_options opt = {.n_threads = 1, .variant = level};
    if (p3_backend_open("cpu", &opt, &be, &err) != PHI3C_OK) return false;
    p3_backend_close(&be);
    return true;
}

P3_TEST(lookup_greedy_equals_transformers_on_every_fixture_and_cpu_level) {
    static const char *const levels[] = {"scalar", "avx2", "avx2-novnni", "avx512", "amx", "neon"};
    int n_levels = 0;
    for (size_t l = 0; l < P3_ARRAY_LEN(levels); l++) {
        if (!cpu_level_available(levels[l])) continue;
        n_levels++;
        for (size_t i = 0; i < P3_ARRAY_LEN(cases); i++) check_case(t, &cases[i], "cpu", levels[l]);
    }
    printf("    %zu fixture models x %d CPU levels x 3 drafters\n", P3_ARRAY_LEN(cases), n_levels);
}

static void check_device_backend(p3_test_ctx *t, const char *backend) {
    p3_backend be;
    p3_error err = {0};
    p3_backend_options opt = {0};
    if (p3_backend_open(backend, &opt, &be, &err) != PHI3C_OK) {
        p3_test_skip(t, "%s", err.message);
        return;
    }
    p3_backend_close(&be);
    for (size_t i = 0; i < P3_ARRAY_LEN(cases); i++) check_case(t, &cases[i], backend, NULL);
}

P3_TEST(opencl_lookup_greedy_equals_transformers_on_every_fixture) {
    check_device_backend(t, "opencl");
}

/* Run by tests/stages/level_zero.sh through the test driver (skipped without a driver). */
P3_TEST(level_zero_lookup_greedy_equals_transformers_on_every_fixture) {
    check_device_backend(t, "level-zero");
}

/* Seeded sampling (flat distribution, repetition penalty on) draws the same ids with lookup. */
static void check_sampling(p3_test_ctx *t, const char *variant, const char *file) {
    char path[256];
    int n_prompt = 0;
    snprintf(path, sizeof path, "tests/fixtures/%s/gen.prompt.ids", variant);
    int32_t *prompt = p3_fixture_read_ids(t, path, &n_prompt);
    snprintf(path, sizeof path, "tests/fixtures/%s/%s", variant, file);
    phi3c_model *m = prompt ? load(t, path, "cpu", NULL) : NULL;
    phi3c_sampler_params sp = phi3c_sampler_params_default();
    sp.temperature = 1.2f;
    sp.repeat_penalty = 1.3f;
    sp.repeat_last_n = 16;
    sp.seed = 77;
    enum { N_NEW = 48 };
    collected plain, with;
    phi3c_generate_result r;
    run_opts o = {.sp = &sp, .n_new = N_NEW};
    phi3c_session *s = m ? run(t, m, prompt, n_prompt, &o, &plain, &r) : NULL;
    phi3c_session_free(s);
    for (int d = 0; s && d < 3; d++) {
        oracle orc = {plain.ids, n_prompt, plain.n, d == 1 ? 4 : 0, 0};
        run_opts ol = {.sp = &sp, .n_new = N_NEW, .lookup = 8, .drafter = d ? &orc : NULL};
        phi3c_session *sl = run(t, m, prompt, n_prompt, &ol, &with, &r);
        CHECK_MSG(sl && with.n == plain.n && memcmp(with.ids, plain.ids, sizeof plain.ids) == 0,
                  "%s: seeded sampling with lookup (%s drafts) differs", path,
                  d ? "oracle" : "n-gram");
        /* all-right drafts are all kept; planted errors are not */
        if (sl && d)
            CHECK_MSG(d == 2 ? r.n_accepted == r.n_drafted && r.n_accepted >= plain.n / 2
                             : r.n_accepted > 0 && r.n_accepted < r.n_drafted,
                      "%s: %d of %d drafts accepted, %d tokens", path, r.n_accepted, r.n_drafted,
                      plain.n);
        phi3c_session_free(sl);
    }
    phi3c_model_free(m);
    p3_free(prompt);
}

P3_TEST(lookup_seeded_sampling_draws_the_same_ids) {
    check_sampling(t, "mini4k", "hf-f32");    /* sliding window */
    check_sampling(t, "longrope", "hf-bf16"); /* LongRoPE switch */
    check_sampling(t, "phi4mini", "hf-bf16"); /* GQA, partial rotary, 200k-like vocab path */
}

/* A stop (callback or max_tokens) inside a run of accepted drafts: the cache holds exactly the
 * reported tokens, so the next generate call goes on with transformers' ids. */
P3_TEST(lookup_stop_inside_accepted_drafts_keeps_exactly_the_reported_tokens) {
    int n_prompt = 0, n_want = 0;
    int32_t *prompt = p3_fixture_read_ids(t, "tests/fixtures/mini4k/gen.prompt.ids", &n_prompt);
    int32_t *want = p3_fixture_read_ids(t, "tests/fixtures/mini4k/f32.gen.out.ids", &n_want);
    phi3c_model *m = prompt && want ? load(t, "tests/fixtures/mini4k/hf-f32", "cpu", NULL) : NULL;
    for (int mode = 0; m && mode < 2; mode++) {
        oracle orc = {want, n_prompt, n_want, 0, 0};
        /* mode 0: the callback stops at token 3 (drafts 3 and 4 of the first verification were
         * accepted and are dropped); mode 1: max_tokens 6 */
        run_opts o = {
            .n_new = mode ? 6 : n_want, .lookup = 8, .stop_after = mode ? 0 : 3, .drafter = &orc};
        collected got, rest;
        phi3c_generate_result r;
        phi3c_error err = {0};
        phi3c_session *s = run(t, m, prompt, n_prompt, &o, &got, &r);
        if (!s) break;
        int n = mode ? 6 : 3;
        CHECK_EQ_INT(got.n, n);
        CHECK(r.n_accepted > 0 && got.n > r.n_forwards); /* the stop fell inside a verification */
        CHECK_EQ_INT(phi3c_session_n_past(s), n_prompt + n);
        CHECK_EQ_INT(p3_argmax(phi3c_session_logits(s), phi3c_model_vocab_size(m)), want[n]);
        memset(&rest, 0, sizeof rest);
        phi3c_sampler_params greedy = phi3c_sampler_params_greedy();
        s->lookup.draft = NULL; /* plain decoding from here: the cache must be right */
        phi3c_session_set_lookup(s, 0, &err);
        if (CHECK_OK(phi3c_generate(s, &greedy, n_want - n, collect, &rest, &r, &err), &err))
            CHECK(rest.n == n_want - n &&
                  memcmp(rest.ids, want + n, (size_t)rest.n * sizeof *want) == 0);
        phi3c_session_free(s);
    }
    phi3c_model_free(m);
    p3_free(prompt);
    p3_free(want);
}

P3_TEST(lookup_bad_lengths_and_truncation_below_the_longrope_switch_are_refused) {
    phi3c_model *m = load(t, "tests/fixtures/longrope/hf-bf16", "cpu", NULL);
    if (!m) return;
    phi3c_session_params par = phi3c_session_params_default();
    phi3c_session *s = NULL;
    phi3c_error err = {0};
    par.lookup = 65;
    CHECK_EQ_INT(phi3c_session_create(m, &par, &s, &err), PHI3C_ERR_INVALID_ARG);
    par.lookup = -1;
    CHECK_EQ_INT(phi3c_session_create(m, &par, &s, &err), PHI3C_ERR_INVALID_ARG);
    par.lookup = 0;
    if (CHECK_OK(phi3c_session_create(m, &par, &s, &err), &err)) {
        CHECK_EQ_INT(phi3c_session_set_lookup(s, 100, &err), PHI3C_ERR_INVALID_ARG);
        int32_t ids[40];
        for (int i = 0; i < 40; i++) ids[i] = 3 + i;
        p3_error perr = {0};
        /* 40 > original_max 32: the switch happened; going back to 32 would undo it */
        if (CHECK_OK(phi3c_session_feed_tokens(s, ids, 40, NULL, &err), &err)) {
            CHECK_EQ_INT(p3_session_truncate(s->s, 32, &perr), PHI3C_ERR_INVALID_ARG);
            CHECK_EQ_INT(p3_session_truncate(s->s, 41, &perr), PHI3C_ERR_INVALID_ARG);
            CHECK_OK(p3_session_truncate(s->s, 33, &perr), &perr);
            CHECK_EQ_INT(phi3c_session_n_past(s), 33);
        }
        phi3c_session_free(s);
    }
    phi3c_model_free(m);
}
