/* lookup.h: prompt-lookup speculative decoding: draft tokens copied from where the last n-gram
 * occurred earlier in the session's history, and their verification in one multi-token forward,
 * exact for greedy and seeded sampling (a draft is kept only when it equals the sampler's pick). */
#ifndef P3_LOOKUP_H
#define P3_LOOKUP_H

#include "engine.h"

enum { P3_LOOKUP_MAX = PHI3C_LOOKUP_MAX }; /* largest draft length a caller may ask for */

/* A source of drafts: up to cap tokens to follow seq[0..n); returns how many. */
typedef int (*p3_draft_fn)(void *user, const int32_t *seq, int n, int cap, int32_t *draft);

enum { P3_LOOKUP_NGRAM = 4 }; /* the longest suffix looked up */

/* Drafting state of one session. The draft length is chosen for the most tokens per second: from
 * the measured cost of verifying k drafts (relative to a one-token decode step, for each k: the
 * kernels' token tiles make it far from linear) and
 * the observed chance that the i-th draft token is kept once the ones before it were, learned
 * separately for each n-gram length (a 4-token match is far more often right than a 1-token one).
 * So drafts grow while they are kept, shrink when they are not, and stop (bar a rare one-token
 * probe) where they do not pay; the output never depends on any of it. */
typedef struct p3_lookup {
    int max_draft;     /* the caller's limit; 0 = lookup off */
    p3_draft_fn draft; /* NULL: the n-gram lookup below; another source (a draft model, a test's
                        * oracle) may be plugged in and goes through the same verification */
    void *draft_user;
    float keep[P3_LOOKUP_NGRAM + 1][P3_LOOKUP_MAX]; /* [match length (0: plugged source)][i] */
    /* Times, each tracking its undisturbed value (see follow() in lookup.c): the cost of k drafts
     * is verify_sec[k] / step_sec at the time of the decision, so a slow first step (cold caches)
     * does not leave a cost ratio that is too low behind. */
    double verify_sec[P3_LOOKUP_MAX + 1]; /* [k]: a forward of the token and k drafts */
    int verify_seen[P3_LOOKUP_MAX + 1];   /* [k]: verifications of k drafts timed */
    double cost_fixed;   /* > 0: cost[k] = 1 + cost_fixed k instead of measured (reproducible) */
    double step_sec;     /* a one-token decode step, seconds (0: unseen) */
    int last_match;      /* match length of the last draft */
    int skipped;         /* matches in a row not drafted because they did not pay */
    int probe_after;     /* matches to skip before a one-token probe; doubles while probes fail */
    bool probing;        /* the last draft was a probe */
    int n_steps;         /* plain steps timed */
    int drafts_in_a_row; /* verifications since the last plain step */
    /* statistics since the session was made */
    long long n_drafted, n_accepted, n_verifies;
} p3_lookup;

void p3_lookup_init(p3_lookup *lk, int max_draft);

/* Drafts up to `cap` tokens to follow seq[0..n) (the history plus the token about to be fed):
 * the tokens after the latest earlier occurrence of its last 4, 3, 2 or 1 tokens (longest match
 * first), as many as pay. Returns how many (0: no match, not worth it, or cap 0). */
int p3_lookup_draft(p3_lookup *lk, const int32_t *seq, int n, int cap, int32_t *draft);

/* Learns from a step: `drafted` tokens verified (0: a plain one-token decode), `accepted` of them
 * kept; `seconds`: the forward pass only (the picks are the same with or without drafts). */
void p3_lookup_update(p3_lookup *lk, int drafted, int accepted, double seconds);

/* How many draft tokens the session can verify after feeding one more token: bounded by the
 * context, the batch, and (LongRoPE) by original_max until the switch happened, so that the
 * switch happens on a one-token feed exactly as without lookup. */
int p3_lookup_room(const p3_session *s);

typedef bool (*p3_stop_fn)(const void *user, int32_t id);

/* One verification: feeds id and draft[0..k) in one forward (rows: (k+1) x vocab host floats)
 * and picks, with the sampler, the token after each fed position in turn until a pick differs
 * from the next draft or is a stop id: picks[0..*n_picks) (the first *n_picks - 1 equal the
 * accepted drafts, the last is the model's own next token, not fed). The cache keeps id and the
 * accepted drafts, and host_logits holds the row the last pick was made from. `scratch` is
 * [vocab] for the sampler, which may modify the logits it is given. *feed_seconds: the time of
 * the forward pass. */
p3_status p3_lookup_verify(p3_session *s, p3_sampler *smp, int32_t id, const int32_t *draft, int k,
                           p3_stop_fn is_stop, const void *stop_user, float *rows, float *scratch,
                           int32_t *picks, int *n_picks, double *feed_seconds, p3_error *err);

/* The picks of a verification whose k + 1 tokens (the token, then draft[0..k)) were already fed
 * with the logits of every row (a batch step): as p3_lookup_verify after its feed. */
p3_status p3_lookup_pick(p3_session *s, p3_sampler *smp, const int32_t *draft, int k,
                         p3_stop_fn is_stop, const void *stop_user, float *rows, float *scratch,
                         int32_t *picks, int *n_picks, p3_error *err);

#endif /* P3_LOOKUP_H */
