/* bench_verify.c: `phi3c bench --e2e --verify-cost`: the time of one forward of k tokens at a
 * given depth of the KV cache, as a ratio to one token: what verifying k - 1 draft tokens
 * (prompt lookup) costs over a plain decode step. */
#include "bench.h"

#include <string.h>

static const int ks[BENCH_VERIFY_KS] = {1, 2, 4, 8, 16};

/* One timed forward of k tokens after `depth` cached positions (with the logits of every row,
 * as a verification needs), then the cache rolled back to depth. */
static p3_status timed_forward(p3_session *s, const int32_t *ids, int depth, int k, float *logits,
                               double *sec, p3_error *err) {
    double t0 = p3_time_now();
    p3_status st = p3_session_feed(s, ids + depth, k, logits, err);
    *sec = p3_time_now() - t0;
    return st != PHI3C_OK ? st : p3_session_truncate(s, depth, err);
}

p3_status bench_verify_cost(p3_session *s, int depth, int reps, bench_verify *out, p3_error *err) {
    int kmax = ks[BENCH_VERIFY_KS - 1], vocab = s->model->cfg.vocab_size;
    memset(out, 0, sizeof *out);
    if (depth + kmax > s->n_ctx || kmax > s->n_batch || reps > BENCH_VERIFY_REPS)
        return p3_fail(err, PHI3C_ERR_INVALID_ARG, "verify cost: depth %d + %d tokens do not fit",
                       depth, kmax);
    int32_t *ids = p3_malloc((size_t)(depth + kmax) * sizeof *ids);
    float *logits = p3_malloc((size_t)kmax * (size_t)vocab * sizeof(float));
    p3_status st = ids && logits ? p3_session_reserve_logits(s, kmax, err)
                                 : p3_fail(err, PHI3C_ERR_NOMEM, "out of memory for verify cost");
    for (int i = 0; ids && i < depth + kmax; i++) ids[i] = (int32_t)((i * 7919 + 13) % 32000);
    p3_session_reset(s);
    if (st == PHI3C_OK) st = p3_session_feed(s, ids, depth, NULL, err);
    double t[BENCH_VERIFY_KS][BENCH_VERIFY_REPS], warm;
    for (int i = 0; i < BENCH_VERIFY_KS && st == PHI3C_OK; i++) /* warm-up, not counted */
        st = timed_forward(s, ids, depth, ks[i], logits, &warm, err);
    /* the sizes alternate within each repetition, so a busy spell hits all of them alike */
    for (int r = 0; r < reps && st == PHI3C_OK; r++)
        for (int i = 0; i < BENCH_VERIFY_KS && st == PHI3C_OK; i++)
            st = timed_forward(s, ids, depth, ks[i], logits, &t[i][r], err);
    for (int i = 0; i < BENCH_VERIFY_KS && st == PHI3C_OK; i++) {
        out->k[i] = ks[i];
        out->sec[i] = bench_median(t[i], reps); /* sorts t[i] */
        out->best[i] = t[i][0];
        out->ratio[i] = out->sec[i] / out->sec[0];
        out->best_ratio[i] = out->best[i] / out->best[0];
    }
    out->depth = depth;
    p3_free(ids);
    p3_free(logits);
    return st;
}
