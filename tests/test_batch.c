/* test_batch.c: phi3c_batch_decode, several sessions in one forward pass: its logits against
 * transformers' (the fixtures) and against each session fed alone; greedy and seeded generation
 * stepped through batches (prefill chunks mixed with other sessions' decode tokens) equal to
 * transformers' greedy ids and to phi3c_generate alone, on f32 and INT4 weights; bad batches
 * refused with nothing changed. */
#include "fixture_util.h"
#include "harness.h"

#include <string.h>

static phi3c_model *load(p3_test_ctx *t, const char *path, phi3c_quant quant) {
    phi3c_model_params mp = phi3c_model_params_default();
    mp.quant = quant;
    mp.n_threads = 2;
    phi3c_model *m = NULL;
    phi3c_error err = {0};
    CHECK_OK(phi3c_model_load(path, &mp, &m, &err), &err);
    return m;
}

static phi3c_session *session(p3_test_ctx *t, phi3c_model *m, bool all_logits) {
    phi3c_session_params sp = phi3c_session_params_default();
    sp.all_logits = all_logits;
    sp.n_ctx = 512;
    phi3c_session *s = NULL;
    phi3c_error err = {0};
    CHECK_OK(phi3c_session_create(m, &sp, &s, &err), &err);
    return s;
}

/* Sessions holding seq0[0..start[i]) get seq0[start[i]..start[i]+n[i]) in one batch (every
 * position's logits for some); each row must match transformers' row of that position and the
 * same session fed alone. */
P3_TEST(batch_logits_match_transformers_and_each_session_alone) {
    phi3c_error err = {0};
    int n_ids = 0;
    size_t size = 0;
    int32_t *ids = p3_fixture_read_ids(t, "tests/fixtures/mini4k/seq0.ids", &n_ids);
    float *want = p3_test_read_file(t, "tests/fixtures/mini4k/f32.seq0.logits", &size);
    phi3c_model *m = load(t, "tests/fixtures/mini4k/hf-f32", PHI3C_QUANT_NONE);
    phi3c_batch *b = NULL;
    enum { NS = 4 };
    const int start[NS] = {5, 9, 0, 12}, n[NS] = {1, 4, 6, 1};
    const bool all[NS] = {false, true, true, false};
    phi3c_session *s[NS] = {0}, *alone[NS] = {0};
    if (ids && want && m && CHECK(n_ids >= 16) &&
        CHECK_OK(phi3c_batch_create(m, 16, &b, &err), &err)) {
        int vocab = phi3c_model_vocab_size(m);
        double bound = 1e-4 * p3_max_abs(want, (size_t)n_ids * (size_t)vocab);
        float *rows[NS] = {0};
        phi3c_batch_seq seqs[NS];
        for (int i = 0; i < NS; i++) {
            s[i] = session(t, m, true);
            alone[i] = session(t, m, true);
            if (!s[i] || !alone[i]) goto done;
            if (start[i] > 0) {
                CHECK_OK(phi3c_session_feed_tokens(s[i], ids, (size_t)start[i], NULL, &err), &err);
                CHECK_OK(phi3c_session_feed_tokens(alone[i], ids, (size_t)start[i], NULL, &err),
                         &err);
            }
            rows[i] = all[i] ? p3_malloc((size_t)n[i] * (size_t)vocab * sizeof(float)) : NULL;
            seqs[i] = (phi3c_batch_seq){s[i], ids + start[i], (size_t)n[i], rows[i]};
        }
        if (CHECK_OK(phi3c_batch_decode(b, seqs, NS, &err), &err)) {
            for (int i = 0; i < NS; i++) {
                float *one = p3_malloc((size_t)n[i] * (size_t)vocab * sizeof(float));
                CHECK_OK(
                    phi3c_session_feed_tokens(alone[i], ids + start[i], (size_t)n[i], one, &err),
                    &err);
                CHECK_EQ_INT(phi3c_session_n_past(s[i]), start[i] + n[i]);
                const float *last = phi3c_session_logits(s[i]);
                const float *oracle = want + (size_t)(start[i] + n[i] - 1) * (size_t)vocab;
                CHECK_MSG(p3_max_abs_diff(last, oracle, (size_t)vocab) <= bound,
                          "sequence %d: last logits differ from transformers", i);
                CHECK_MSG(p3_max_abs_diff(last, phi3c_session_logits(alone[i]), (size_t)vocab) <=
                              1e-6 * bound,
                          "sequence %d: batched logits differ from the session alone", i);
                if (rows[i]) {
                    size_t count = (size_t)n[i] * (size_t)vocab;
                    CHECK(p3_max_abs_diff(rows[i], want + (size_t)start[i] * (size_t)vocab,
                                          count) <= bound);
                    CHECK(p3_max_abs_diff(rows[i], one, count) <= 1e-6 * bound);
                }
                p3_free(one);
            }
        }
        for (int i = 0; i < NS; i++) p3_free(rows[i]);
    }
done:
    for (int i = 0; i < NS; i++) {
        phi3c_session_free(s[i]);
        phi3c_session_free(alone[i]);
    }
    phi3c_batch_free(b);
    phi3c_model_free(m);
    p3_free(ids);
    p3_free(want);
}

enum { MAX_NEW = 32, NSEQ = 5, CHUNK = 8, LOOKUP = 6 };

typedef struct seq_run {
    const int32_t *prompt;
    int n_prompt, fed; /* prompt tokens fed so far */
    int start_step;    /* joins the batch at this step */
    phi3c_session *s;
    phi3c_stream *g;
    int32_t next;                /* picked, to feed in the next step (-1 none) */
    int32_t fed_ids[1 + LOOKUP]; /* with lookup: next and its draft, fed together */
    int k;                       /* drafts fed in this step */
    float *rows;                 /* [1 + LOOKUP] x vocab: their logits */
    int32_t out[MAX_NEW];
    int n_out;
    bool done;
} seq_run;

static bool collect(void *user, int32_t token, const char *text, size_t len) {
    seq_run *r = user;
    (void)text;
    (void)len;
    if (token >= 0 && r->n_out < MAX_NEW) r->out[r->n_out++] = token;
    return true;
}

/* The sequence's decode token, with a lookup draft when the session drafts. */
static phi3c_batch_seq decode_seq(seq_run *r, int n_new) {
    r->fed_ids[0] = r->next;
    int cap = n_new - r->n_out < LOOKUP ? n_new - r->n_out : LOOKUP;
    r->k = r->rows ? phi3c_stream_draft(r->g, r->next, cap, r->fed_ids + 1) : 0;
    return (phi3c_batch_seq){r->s, r->fed_ids, (size_t)(1 + r->k), r->k ? r->rows : NULL};
}

/* After a step that fed the sequence's decode token: the drafts kept, then the model's own pick,
 * each taken as phi3c_generate would report it. */
static bool take_picks(p3_test_ctx *t, seq_run *r, bool decoded, int n_new) {
    phi3c_error err = {0};
    int kept = 0;
    /* seconds 0: the draft lengths stay at the prior, so the run is reproducible */
    if (decoded && r->rows &&
        !CHECK_OK(phi3c_stream_verify(r->g, r->fed_ids + 1, r->k, r->rows, 0.0, &kept, &err), &err))
        return false;
    for (int j = 0; j <= kept && !r->done; j++) {
        const char *text;
        size_t len;
        if (!CHECK_OK(phi3c_stream_next(r->g, &r->next, &text, &len, &err), &err)) return false;
        if (j < kept) CHECK_EQ_INT(r->next, r->fed_ids[1 + j]);
        if (r->next >= 0) r->out[r->n_out++] = r->next;
        r->done = r->next < 0 || r->n_out == n_new;
    }
    return true;
}

/* One step: each running sequence contributes a prompt chunk or its picked token (and draft). */
static bool step(p3_test_ctx *t, phi3c_batch *b, seq_run *runs, int n_runs, int stepno,
                 const phi3c_sampler_params *sp, int n_new) {
    phi3c_error err = {0};
    phi3c_batch_seq seqs[NSEQ];
    bool decoded[NSEQ] = {0};
    size_t n = 0;
    for (int i = 0; i < n_runs; i++) {
        seq_run *r = &runs[i];
        if (r->done || stepno < r->start_step) continue;
        if (r->fed < r->n_prompt) {
            int k = r->n_prompt - r->fed < CHUNK ? r->n_prompt - r->fed : CHUNK;
            seqs[n++] = (phi3c_batch_seq){r->s, r->prompt + r->fed, (size_t)k, NULL};
            r->fed += k;
        } else if (r->next >= 0) {
            seqs[n++] = decode_seq(r, n_new);
            decoded[i] = true;
        }
    }
    if (n > 0 && !CHECK_OK(phi3c_batch_decode(b, seqs, n, &err), &err)) return false;
    /* the sequences whose prompt is in pick their next token */
    for (int i = 0; i < n_runs; i++) {
        seq_run *r = &runs[i];
        if (r->done || stepno < r->start_step || r->fed < r->n_prompt) continue;
        if (!r->g && !CHECK_OK(phi3c_stream_begin(r->s, sp, &r->g, &err), &err)) return false;
        if (!take_picks(t, r, decoded[i], n_new)) return false;
    }
    return true;
}

/* NSEQ prompts (prefixes of one id list) generated alone with phi3c_generate and together
 * through batches, sequences joining at different steps. */
static void check_batched_generation(p3_test_ctx *t, phi3c_model *m, const int32_t *ids, int n_ids,
                                     const phi3c_sampler_params *sp, int n_new,
                                     const int32_t *oracle, bool lookup) {
    phi3c_error err = {0};
    phi3c_batch *b = NULL;
    seq_run runs[NSEQ];
    memset(runs, 0, sizeof runs);
    if (!CHECK_OK(phi3c_batch_create(m, 64, &b, &err), &err)) return;
    for (int i = 0; i < NSEQ; i++) {
        seq_run *r = &runs[i];
        r->prompt = ids;
        r->n_prompt = n_ids - i; /* sequence 0: the oracle's prompt */
        r->start_step = i == 0 ? 0 : 3 * i - 2;
        r->next = -1;
        r->s = session(t, m, false);
        if (lookup && r->s) {
            CHECK_OK(phi3c_session_set_lookup(r->s, LOOKUP, &err), &err);
            r->rows =
                p3_malloc((size_t)(1 + LOOKUP) * (size_t)phi3c_model_vocab_size(m) * sizeof(float));
        }
    }
    for (int stepno = 0; stepno < 4 * MAX_NEW + 64; stepno++) {
        bool all_done = true;
        for (int i = 0; i < NSEQ; i++) all_done = all_done && runs[i].done;
        if (all_done || !step(t, b, runs, NSEQ, stepno, sp, n_new)) break;
    }
    for (int i = 0; i < NSEQ; i++) {
        seq_run *r = &runs[i];
        CHECK_MSG(r->done, "sequence %d did not finish", i);
        seq_run ref = {.n_out = 0};
        phi3c_session *s = session(t, m, false);
        if (s && CHECK_OK(phi3c_session_feed_tokens(s, ids, (size_t)r->n_prompt, NULL, &err), &err))
            CHECK_OK(phi3c_generate(s, sp, n_new, collect, &ref, NULL, &err), &err);
        CHECK_EQ_INT(r->n_out, ref.n_out);
        CHECK_MSG(memcmp(r->out, ref.out, (size_t)ref.n_out * sizeof(int32_t)) == 0,
                  "sequence %d: batched ids differ from the session alone", i);
        if (i == 0 && oracle)
            CHECK_MSG(r->n_out == n_new &&
                          memcmp(r->out, oracle, (size_t)n_new * sizeof(int32_t)) == 0,
                      "batched greedy ids differ from transformers'");
        if (lookup) {
            phi3c_session_stats st;
            phi3c_session_get_stats(r->s, &st);
            CHECK_MSG(st.n_drafted > 0, "sequence %d: lookup drafted nothing", i);
            if (i == 0)
                printf("    lookup, sequence 0: %lld drafts verified, %lld kept\n", st.n_drafted,
                       st.n_accepted);
        }
        phi3c_session_free(s);
        phi3c_stream_free(r->g);
        phi3c_session_free(r->s);
        p3_free(r->rows);
    }
    phi3c_batch_free(b);
}

P3_TEST(batch_greedy_generation_equals_transformers_and_each_session_alone) {
    int n_prompt = 0, n_want = 0;
    int32_t *prompt = p3_fixture_read_ids(t, "tests/fixtures/mini4k/gen.prompt.ids", &n_prompt);
    int32_t *want = p3_fixture_read_ids(t, "tests/fixtures/mini4k/f32.gen.out.ids", &n_want);
    phi3c_model *m = load(t, "tests/fixtures/mini4k/hf-f32", PHI3C_QUANT_NONE);
    phi3c_sampler_params greedy = phi3c_sampler_params_greedy();
    if (prompt && want && m && CHECK(n_want == 32 && n_prompt > NSEQ)) {
        check_batched_generation(t, m, prompt, n_prompt, &greedy, 32, want, false);
        check_batched_generation(t, m, prompt, n_prompt, &greedy, 32, want, true);
    }
    phi3c_model_free(m);
    p3_free(prompt);
    p3_free(want);
}

/* INT4 weights with int8 activations (the server's usual setting) on the demo model: greedy and
 * seeded sampling in batches give each session's own ids. */
P3_TEST(batch_int4_greedy_and_seeded_generation_equal_each_session_alone) {
    phi3c_error err = {0};
    phi3c_model *m = load(t, "tools/demo-model", PHI3C_QUANT_INT4_G128);
    int32_t *ids = NULL;
    size_t n = 0;
    const char *text = "<|user|>\nOnce upon a time there was a little dog who lived in a small "
                       "house by the sea.<|end|>\n<|assistant|>\n";
    if (m && CHECK_OK(phi3c_tokenize(m, text, strlen(text), false, &ids, &n, &err), &err)) {
        phi3c_sampler_params greedy = phi3c_sampler_params_greedy();
        check_batched_generation(t, m, ids, (int)n, &greedy, 24, NULL, false);
        check_batched_generation(t, m, ids, (int)n, &greedy, 24, NULL, true);
        phi3c_sampler_params seeded = phi3c_sampler_params_default();
        seeded.seed = 7;
        check_batched_generation(t, m, ids, (int)n, &seeded, 24, NULL, false);
        check_batched_generation(t, m, ids, (int)n, &seeded, 24, NULL, true);
    }
    phi3c_free(ids);
    phi3c_model_free(m);
}

P3_TEST(batch_bad_sequences_are_refused_with_nothing_changed) {
    phi3c_error err = {0};
    phi3c_model *m = load(t, "tests/fixtures/mini4k/hf-f32", PHI3C_QUANT_NONE);
    phi3c_batch *b = NULL;
    phi3c_session *a = m ? session(t, m, false) : NULL, *c = m ? session(t, m, false) : NULL;
    if (a && c && CHECK_OK(phi3c_batch_create(m, 8, &b, &err), &err)) {
        int32_t ids[600] = {0};
        ids[3] = 5;
        CHECK_OK(phi3c_session_feed_tokens(a, ids, 4, NULL, &err), &err);
        phi3c_batch_seq twice[] = {{a, ids, 1, NULL}, {a, ids, 1, NULL}};
        CHECK_STATUS(phi3c_batch_decode(b, twice, 2, &err), PHI3C_ERR_INVALID_ARG);
        CHECK(strstr(err.message, "same session") != NULL);
        phi3c_batch_seq big[] = {{a, ids, 5, NULL}, {c, ids, 4, NULL}};
        CHECK_STATUS(phi3c_batch_decode(b, big, 2, &err), PHI3C_ERR_INVALID_ARG);
        CHECK(strstr(err.message, "exceed the batch of 8") != NULL);
        int32_t bad = 9999;
        phi3c_batch_seq oov[] = {{c, ids, 1, NULL}, {a, &bad, 1, NULL}};
        CHECK_STATUS(phi3c_batch_decode(b, oov, 2, &err), PHI3C_ERR_INVALID_ARG);
        CHECK(strstr(err.message, "sequence 1") != NULL);
        /* a full context: c filled to 508 of 512 */
        for (int k = 0; k < 63; k++)
            CHECK_OK(phi3c_session_feed_tokens(c, ids, 8, NULL, &err), &err);
        CHECK_OK(phi3c_session_feed_tokens(c, ids, 4, NULL, &err), &err);
        phi3c_batch_seq full[] = {{a, ids, 1, NULL}, {c, ids, 5, NULL}};
        CHECK_STATUS(phi3c_batch_decode(b, full, 2, &err), PHI3C_ERR_CONTEXT_FULL);
        CHECK_EQ_INT(phi3c_session_n_past(a), 4);
        CHECK_EQ_INT(phi3c_session_n_past(c), 508);
    }
    phi3c_session_free(a);
    phi3c_session_free(c);
    phi3c_batch_free(b);
    phi3c_model_free(m);
}
