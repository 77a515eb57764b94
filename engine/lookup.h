/* lookup.h: prompt-lookup speculative decoding: draft tokens copied from where the last n-gram
 * occurred earlier in the session's history, and their verification in one multi-token forward,
 * exact for greedy and seeded sampling (a draft is kept only when it equals the sampler's pick). */
#ifndef P3_LOOKUP_H
#define P3_LOOKUP_H

#include "engine.h"

enum { P3_LOOKUP_MAX = 64 }; /* largest draft length a caller may ask for */

/* A source of drafts: up to cap tokens to follow seq[0..n); returns how many. */
typedef int (*p3_draft_fn)(void *user, const int32_t *seq, int n, int cap, int32_t *draft);

/* Drafting state of one session: the adaptive draft length and the back-off after failures. */
typedef struct p3_lookup {
    int max_draft;     /* the caller's limit; 0 = lookup off */
    p3_draft_fn draft; /* NULL: the n-gram lookup below; another source (a draft model, a test's
                        * oracle) may be plugged in and goes through the same verification */
    void *draft_user;
    int len;    /* current draft length, 1..max_draft */
    int misses; /* drafts in a row with nothing accepted */
    int pause;  /* decode steps left without drafting (back-off) */
    /* statistics since the session was made */
    long long n_drafted, n_accepted, n_verifies;
} p3_lookup;

void p3_lookup_init(p3_lookup *lk, int max_draft);

/* Drafts up to `cap` tokens to follow seq[0..n) (the history plus the token about to be fed):
 * the tokens after the latest earlier occurrence of its last 4, 3, 2 or 1 tokens (longest match
 * first), at most the adaptive length. Returns how many (0: no match, paused, or cap 0). */
int p3_lookup_draft(p3_lookup *lk, const int32_t *seq, int n, int cap, int32_t *draft);

/* Adapts the draft length after a verification that accepted `accepted` of `drafted` tokens:
 * grows when all were kept, shrinks to what was kept otherwise, and pauses drafting for longer
 * and longer after drafts that keep failing. */
void p3_lookup_update(p3_lookup *lk, int drafted, int accepted);

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
 * [vocab] for the sampler, which may modify the logits it is given. */
p3_status p3_lookup_verify(p3_session *s, p3_sampler *smp, int32_t id, const int32_t *draft, int k,
                           p3_stop_fn is_stop, const void *stop_user, float *rows, float *scratch,
                           int32_t *picks, int *n_picks, p3_error *err);

#endif /* P3_LOOKUP_H */
