/* lookup.c: prompt-lookup speculative decoding: n-gram drafts from the session's history, the
 * adaptive draft length, and the verification of a draft in one multi-token forward. */
#include "lookup.h"

#include <string.h>

enum {
    NGRAM_MAX = 4,      /* the longest suffix looked up */
    NGRAM_MIN = 1,      /* the shortest */
    START_LEN = 4,      /* first draft length (at most max_draft) */
    PAUSE_AFTER = 2,    /* failed drafts in a row before drafting pauses */
    PAUSE_LONGEST = 32, /* decode steps of the longest pause */
};

void p3_lookup_init(p3_lookup *lk, int max_draft) {
    memset(lk, 0, sizeof *lk);
    lk->max_draft = max_draft;
    lk->len = P3_MIN(max_draft, START_LEN);
}

/* The latest start i < n - g of seq[n-g..n) earlier in seq, or -1. */
static int latest_match(const int32_t *seq, int n, int g) {
    const int32_t *suffix = seq + n - g;
    for (int i = n - g - 1; i >= 0; i--)
        if (memcmp(seq + i, suffix, (size_t)g * sizeof *seq) == 0) return i;
    return -1;
}

int p3_lookup_draft(p3_lookup *lk, const int32_t *seq, int n, int cap, int32_t *draft) {
    int want = P3_MIN(cap, lk->len);
    if (lk->max_draft <= 0 || want <= 0) return 0;
    if (lk->pause > 0) {
        lk->pause--;
        return 0;
    }
    if (lk->draft) return P3_MAX(0, P3_MIN(want, lk->draft(lk->draft_user, seq, n, want, draft)));
    for (int g = P3_MIN(NGRAM_MAX, n - 1); g >= NGRAM_MIN; g--) {
        int i = latest_match(seq, n, g);
        if (i < 0) continue;
        int k = P3_MIN(want, n - (i + g)); /* the continuation may run into the suffix itself */
        memcpy(draft, seq + i + g, (size_t)k * sizeof *draft);
        return k;
    }
    return 0;
}

void p3_lookup_update(p3_lookup *lk, int drafted, int accepted) {
    if (drafted <= 0) return;
    lk->n_drafted += drafted;
    lk->n_accepted += accepted;
    lk->n_verifies++;
    if (accepted == drafted) {
        lk->len = P3_MIN(lk->max_draft, 2 * lk->len);
        lk->misses = 0;
    } else if (accepted > 0) {
        lk->len = P3_MAX(1, P3_MIN(lk->len, accepted + 1));
        lk->misses = 0;
    } else {
        lk->len = P3_MAX(1, lk->len / 2);
        lk->misses++;
        if (lk->misses >= PAUSE_AFTER)
            lk->pause = P3_MIN(PAUSE_LONGEST, 1 << P3_MIN(lk->misses - PAUSE_AFTER, 5));
    }
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
                           int32_t *picks, int *n_picks, p3_error *err) {
    int vocab = s->model->cfg.vocab_size, base = s->n_past;
    size_t row_bytes = (size_t)vocab * sizeof(float);
    int32_t fed[P3_LOOKUP_MAX + 1];
    if (k < 1 || k > P3_LOOKUP_MAX || k > p3_lookup_room(s))
        return p3_fail(err, PHI3C_ERR_INVALID_ARG, "lookup: %d draft tokens do not fit", k);
    fed[0] = id;
    memcpy(fed + 1, draft, (size_t)k * sizeof *fed);
    p3_status st = p3_session_feed(s, fed, k + 1, rows, err);
    if (st != PHI3C_OK) return st;
    /* the same picks, in the same order and with the same history, as one token at a time */
    int i = 0;
    for (;; i++) {
        memcpy(scratch, rows + (size_t)i * (size_t)vocab, row_bytes);
        picks[i] = p3_sampler_pick(smp, scratch, s->history, base + 1 + i);
        if (i == k || picks[i] != draft[i] || is_stop(stop_user, picks[i])) break;
    }
    *n_picks = i + 1;
    memcpy(s->host_logits, rows + (size_t)i * (size_t)vocab, row_bytes);
    return p3_session_truncate(s, base + 1 + i, err);
}
