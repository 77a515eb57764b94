/* lookup.c: prompt-lookup speculative decoding: n-gram drafts from the session's history, the
 * adaptive draft length, and the verification of a draft in one multi-token forward. */
#include "lookup.h"

#include <string.h>

enum {
    NGRAM_MIN = 1, /* the shortest suffix looked up */
    /* matches skipped before a one-token probe keeps the estimates fresh: 16 at first, twice as
     * many after each probe that was not kept (sampled text can keep failing), back to 16 when
     * one is */
    PROBE_FIRST = 16,
    PROBE_MAX = 512,
    /* A plain step's time is only measured on plain steps, which text that keeps matching never
     * takes: one is taken after STEP_REFRESH drafts in a row, and the first STEP_WARMUP steps are
     * plain (the first one runs on cold caches, and the costs of drafts are relative to it). */
    STEP_REFRESH = 32,
    STEP_WARMUP = 2,
};

static const float KEEP_PRIOR = 0.5f;  /* chance a draft token is kept, before any evidence */
static const float KEEP_RATE = 0.15f;  /* weight of a new observation in the keep estimates */
static const double COST_PRIOR = 0.15; /* cost per draft token before any measurement */
/* Timings on a busy machine are only ever inflated (preemption), so the estimates follow a
 * faster time quickly and a slower one slowly: they track the undisturbed cost. */
static const double TIME_DOWN = 0.3, TIME_UP = 0.03;

/* A draft must promise this many times the tokens per second of a plain step: the estimates are
 * noisy, and a draft that only breaks even on paper loses once they are off. */
static const double MIN_GAIN = 1.1;

static double follow(double estimate, double observed) {
    return estimate + (observed < estimate ? TIME_DOWN : TIME_UP) * (observed - estimate);
}

void p3_lookup_init(p3_lookup *lk, int max_draft) {
    memset(lk, 0, sizeof *lk);
    lk->max_draft = max_draft;
    for (int g = 0; g <= P3_LOOKUP_NGRAM; g++)
        for (int i = 0; i < P3_LOOKUP_MAX; i++) lk->keep[g][i] = KEEP_PRIOR;
    lk->probe_after = PROBE_FIRST;
}

/* The next step is plain so that its time is measured (not with fixed costs). */
static bool step_due(const p3_lookup *lk) {
    return lk->cost_fixed <= 0 &&
           (lk->n_steps < STEP_WARMUP || lk->drafts_in_a_row >= STEP_REFRESH);
}

/* What verifying k drafts costs, in decode steps: measured once both times were seen, else the
 * optimistic prior (so longer drafts get tried when they are kept). */
static double draft_cost(const p3_lookup *lk, int k) {
    if (lk->cost_fixed > 0) return 1.0 + lk->cost_fixed * k;
    if (lk->verify_seen[k] >= 2 && lk->step_sec > 0)
        return P3_MAX(1.0, lk->verify_sec[k] / lk->step_sec);
    return 1.0 + COST_PRIOR * k;
}

/* The latest start i < n - g of seq[n-g..n) earlier in seq, or -1. */
static int latest_match(const int32_t *seq, int n, int g) {
    const int32_t *suffix = seq + n - g;
    for (int i = n - g - 1; i >= 0; i--)
        if (memcmp(seq + i, suffix, (size_t)g * sizeof *seq) == 0) return i;
    return -1;
}

/* The draft length (0..avail) with the most expected tokens per unit of time, if that beats a
 * plain step by MIN_GAIN: a verification of k drafts costs draft_cost(k) decode steps and yields
 * 1 + sum over i <= k of P(first i kept). */
static int best_length(const p3_lookup *lk, int match, int avail) {
    double p = 1.0, tokens = 1.0, best_rate = MIN_GAIN;
    int best = 0;
    for (int k = 1; k <= avail; k++) {
        p *= lk->keep[match][k - 1];
        tokens += p;
        double rate = tokens / draft_cost(lk, k);
        if (rate > best_rate) best_rate = rate, best = k;
    }
    return best;
}

int p3_lookup_draft(p3_lookup *lk, const int32_t *seq, int n, int cap, int32_t *draft) {
    int want = P3_MIN(cap, lk->max_draft), k = 0, match = 0;
    if (want <= 0) return 0;
    if (lk->draft) {
        k = P3_MAX(0, P3_MIN(want, lk->draft(lk->draft_user, seq, n, want, draft)));
    } else {
        for (match = P3_MIN(P3_LOOKUP_NGRAM, n - 1); match >= NGRAM_MIN; match--) {
            int i = latest_match(seq, n, match);
            if (i < 0) continue;
            /* the continuation may run into the suffix itself */
            k = P3_MIN(want, n - (i + match));
            memcpy(draft, seq + i + match, (size_t)k * sizeof *draft);
            break;
        }
        if (match < NGRAM_MIN) return 0;
    }
    if (k == 0 || step_due(lk)) return 0;
    lk->last_match = match;
    int len = best_length(lk, match, k);
    if (len == 0 && ++lk->skipped >= lk->probe_after) len = -1; /* a probe */
    if (len != 0) lk->skipped = 0;
    lk->probing = len < 0;
    return len < 0 ? 1 : len;
}

void p3_lookup_update(p3_lookup *lk, int drafted, int accepted, double seconds) {
    if (drafted <= 0) {
        /* the first steps take the fastest: the very first is slowed by cold caches */
        bool warm = lk->n_steps >= STEP_WARMUP;
        lk->step_sec = lk->step_sec <= 0 ? seconds
                       : warm            ? follow(lk->step_sec, seconds)
                                         : P3_MIN(lk->step_sec, seconds);
        lk->n_steps++;
        lk->drafts_in_a_row = 0;
        return;
    }
    lk->drafts_in_a_row++;
    if (lk->probing)
        lk->probe_after = accepted > 0 ? PROBE_FIRST : P3_MIN(2 * lk->probe_after, PROBE_MAX);
    lk->probing = false;
    lk->n_drafted += drafted;
    lk->n_accepted += accepted;
    lk->n_verifies++;
    /* position i was tried only when the ones before it were kept */
    float *keep = lk->keep[lk->last_match];
    for (int i = 0; i < drafted && i <= accepted; i++)
        keep[i] += KEEP_RATE * ((i < accepted ? 1.0f : 0.0f) - keep[i]);
    /* the first verification of k drafts may touch fresh memory (logit rows): it is trusted only
     * once a second one, faster or not, was seen; till then the optimistic prior stands */
    double *v = &lk->verify_sec[drafted];
    int seen = lk->verify_seen[drafted]++;
    *v = seen == 0 ? seconds : seen == 1 ? P3_MIN(*v, seconds) : follow(*v, seconds);
}

int p3_lookup_room(const p3_session *s) {
    const p3_config *c = &s->model->cfg;
    int room = P3_MIN(s->n_ctx - s->n_past - 1, s->n_batch - 1);
    if (c->rope.type == P3_ROPE_LONGROPE && !s->long_rope)
        room = P3_MIN(room, c->original_max_position_embeddings - s->n_past - 1);
    return P3_MAX(0, P3_MIN(room, P3_LOOKUP_MAX));
}

p3_status p3_lookup_verify(p3_session *s, p3_sampler *smp, int32_t id, const int32_t *draft, int k,
                           p3_stop_fn is_stop, const void *stop_user, float *rows, float *scratch,
                           int32_t *picks, int *n_picks, double *feed_seconds, p3_error *err) {
    int32_t fed[P3_LOOKUP_MAX + 1];
    if (k < 1 || k > P3_LOOKUP_MAX || k > p3_lookup_room(s))
        return p3_fail(err, PHI3C_ERR_INVALID_ARG, "lookup: %d draft tokens do not fit", k);
    fed[0] = id;
    memcpy(fed + 1, draft, (size_t)k * sizeof *fed);
    double t0 = p3_time_now();
    p3_status st = p3_session_feed(s, fed, k + 1, rows, err);
    *feed_seconds = p3_time_now() - t0;
    if (st != PHI3C_OK) return st;
    return p3_lookup_pick(s, smp, draft, k, is_stop, stop_user, rows, scratch, picks, n_picks, err);
}

p3_status p3_lookup_pick(p3_session *s, p3_sampler *smp, const int32_t *draft, int k,
                         p3_stop_fn is_stop, const void *stop_user, float *rows, float *scratch,
                         int32_t *picks, int *n_picks, p3_error *err) {
    int vocab = s->model->cfg.vocab_size, base = s->n_past - k - 1;
    size_t row_bytes = (size_t)vocab * sizeof(float);
    if (k < 0 || k > P3_LOOKUP_MAX || base < 0 ||
        memcmp(s->history + base + 1, draft, (size_t)k * sizeof *draft) != 0)
        return p3_fail(err, PHI3C_ERR_INVALID_ARG,
                       "lookup: the last %d fed tokens are not the draft", k);
    /* the same picks, in the same order and with the same history, as one token at a time */
    int i = 0;
    bool in_place = smp->opt.repeat_penalty == 1.0f; /* only the penalty writes the logits */
    for (;; i++) {
        float *row = rows + (size_t)i * (size_t)vocab;
        if (!in_place) row = memcpy(scratch, row, row_bytes);
        picks[i] = p3_sampler_pick(smp, row, s->history, base + 1 + i);
        if (i == k || picks[i] != draft[i] || is_stop(stop_user, picks[i])) break;
    }
    *n_picks = i + 1;
    memcpy(s->host_logits, rows + (size_t)i * (size_t)vocab, row_bytes);
    return p3_session_truncate(s, base + 1 + i, err);
}
