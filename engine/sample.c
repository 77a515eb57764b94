/* sample.c: choosing the next token from logits: greedy, or repetition penalty -> temperature ->
 * softmax -> top-k -> top-p -> min-p -> a draw from the documented PRNG (transformers' order of
 * the warpers). Host-side and single-threaded, so a seed gives the same tokens on any thread count.
 */
#include "engine.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void p3_sampler_options_init(p3_sampler_options *opt) {
    memset(opt, 0, sizeof *opt);
    opt->temperature = 0.8f;
    opt->top_k = 40;
    opt->top_p = 0.95f;
    opt->min_p = 0.05f;
    opt->repeat_penalty = 1.0f;
    opt->repeat_last_n = 64;
    opt->seed = 0;
}

/* splitmix64 spreads any seed (0 included) over the state; xorshift64* (Marsaglia/Vigna) then
 * produces the stream. */
void p3_rng_seed(p3_rng *r, uint64_t seed) {
    uint64_t z = seed + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    r->state = z ? z : 0x2545f4914f6cdd1dull; /* xorshift must not start at 0 */
}

uint64_t p3_rng_next(p3_rng *r) {
    r->state ^= r->state >> 12;
    r->state ^= r->state << 25;
    r->state ^= r->state >> 27;
    return r->state * 0x2545f4914f6cdd1dull;
}

float p3_rng_uniform(p3_rng *r) {
    return (float)(p3_rng_next(r) >> 40) / 16777216.0f;
}

/* Values outside these ranges give NaN or infinite probabilities (a penalty of 0 divides by zero),
 * so they are refused rather than sampled from. */
static p3_status check_options(const p3_sampler_options *o, p3_error *err) {
    if (!(o->repeat_penalty > 0.0f) || !isfinite(o->repeat_penalty))
        return p3_fail(err, PHI3C_ERR_INVALID_ARG,
                       "sampler: repeat_penalty must be a finite number > 0 (1 = off), got %g",
                       (double)o->repeat_penalty);
    if (!isfinite(o->temperature))
        return p3_fail(err, PHI3C_ERR_INVALID_ARG, "sampler: temperature %g is not finite",
                       (double)o->temperature);
    if (!(o->top_p >= 0.0f && o->top_p <= 1.0f) || !(o->min_p >= 0.0f && o->min_p <= 1.0f))
        return p3_fail(err, PHI3C_ERR_INVALID_ARG,
                       "sampler: top_p and min_p must be in [0, 1], got %g and %g",
                       (double)o->top_p, (double)o->min_p);
    return PHI3C_OK;
}

p3_status p3_sampler_create(const p3_sampler_options *opt, int vocab, p3_sampler **out,
                            p3_error *err) {
    *out = NULL;
    if (vocab <= 0) return p3_fail(err, PHI3C_ERR_INVALID_ARG, "sampler: vocab %d", vocab);
    p3_status st = opt ? check_options(opt, err) : PHI3C_OK;
    if (st != PHI3C_OK) return st;
    p3_sampler *s = p3_calloc(1, sizeof *s);
    if (s) {
        s->probs = p3_malloc((size_t)vocab * sizeof(float));
        s->keys = p3_malloc((size_t)vocab * sizeof(uint64_t));
    }
    if (!s || !s->probs || !s->keys) {
        p3_sampler_free(s);
        return p3_fail(err, PHI3C_ERR_NOMEM, "out of memory for the sampler");
    }
    if (opt)
        s->opt = *opt;
    else
        p3_sampler_options_init(&s->opt);
    s->vocab = vocab;
    p3_rng_seed(&s->rng, s->opt.seed);
    *out = s;
    return PHI3C_OK;
}

void p3_sampler_free(p3_sampler *s) {
    if (!s) return;
    p3_free(s->probs);
    p3_free(s->keys);
    p3_free(s);
}

/* The first index of the largest value (ties go to the smaller id, as torch.argmax). */
/* The first index of the largest value (NaNs are never larger; x[0] NaN gives 0), as the plain
 * scan `if (x[i] > x[best]) best = i` would find it. The scan's loop-carried compare on a 32k
 * vocabulary is a tenth of a small model's decode step, so the value is found first with
 * independent partial maxima (the compiler vectorizes them; the maximum of non-NaN floats does
 * not depend on the order), then its first index. */
int32_t p3_argmax(const float *x, int n) {
    enum { LANES = 16 };
    if (n <= 0 || x[0] != x[0]) return 0;
    float part[LANES];
    for (int j = 0; j < LANES; j++) part[j] = x[0];
    int i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++) part[j] = x[i + j] > part[j] ? x[i + j] : part[j];
    float max = x[0];
    for (int j = 0; j < LANES; j++) max = part[j] > max ? part[j] : max;
    for (; i < n; i++) max = x[i] > max ? x[i] : max;
    for (i = 0; i < n; i++)
        if (x[i] == max) break;
    return i;
}

/* transformers' RepetitionPenaltyLogitsProcessor: each distinct recent id once, positive logits
 * divided by the penalty, negative ones multiplied. `probs` marks ids already penalised. */
static void apply_repeat_penalty(p3_sampler *s, float *logits, const int32_t *recent, int n) {
    float penalty = s->opt.repeat_penalty;
    if (penalty == 1.0f || n <= 0) return;
    int window = s->opt.repeat_last_n < 0 ? n : P3_MIN(n, s->opt.repeat_last_n);
    const int32_t *ids = recent + (n - window);
    for (int i = 0; i < window; i++)
        if (ids[i] >= 0 && ids[i] < s->vocab) s->probs[ids[i]] = 0.0f;
    for (int i = 0; i < window; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= s->vocab || s->probs[id] != 0.0f) continue;
        s->probs[id] = 1.0f;
        logits[id] = logits[id] > 0 ? logits[id] / penalty : logits[id] * penalty;
    }
}

/* Sort key: for p >= 0 the IEEE bits order like the values, so (~bits << 32 | id) ascending is
 * probability descending, then id ascending: a total order, so the result is unique. */
static uint64_t sort_key(float p, int32_t id) {
    uint32_t bits;
    memcpy(&bits, &p, sizeof bits);
    return (uint64_t)(~bits) << 32 | (uint32_t)id;
}

static int compare_keys(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Restores the max-heap property below node i of heap[0..n). */
static void sift_down(uint64_t *heap, int n, int i) {
    for (;;) {
        int largest = i, l = 2 * i + 1, r = l + 1;
        if (l < n && heap[l] > heap[largest]) largest = l;
        if (r < n && heap[r] > heap[largest]) largest = r;
        if (largest == i) return;
        uint64_t tmp = heap[i];
        heap[i] = heap[largest];
        heap[largest] = tmp;
        i = largest;
    }
}

/* Keeps the k smallest keys (the k most likely tokens) in keys[0..k), sorted: a max-heap of the
 * k best so far, so a top-k of 40 over 32064 tokens does not sort the whole vocabulary. */
static void select_smallest(uint64_t *keys, int n, int k) {
    for (int i = k / 2 - 1; i >= 0; i--) sift_down(keys, k, i);
    for (int i = k; i < n; i++) {
        if (keys[i] >= keys[0]) continue;
        keys[0] = keys[i];
        sift_down(keys, k, 0);
    }
    qsort(keys, (size_t)k, sizeof *keys, compare_keys);
}

/* probs = softmax(logits / temperature) */
static void softmax_with_temperature(float *probs, const float *logits, int n, float temperature) {
    float max = logits[p3_argmax(logits, n)];
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        probs[i] = expf((logits[i] - max) / temperature);
        sum += probs[i];
    }
    for (int i = 0; i < n; i++) probs[i] = (float)(probs[i] / sum);
}

/* How many of the sorted candidates survive top-k, top-p and min-p (at least one). */
static int truncate_candidates(const p3_sampler *s, const uint64_t *keys, int n) {
    const p3_sampler_options *o = &s->opt;
    if (o->top_k > 0) n = P3_MIN(n, o->top_k);
    if (o->top_p < 1.0f) {
        double cum = 0.0;
        for (int i = 0; i < n; i++) {
            cum += s->probs[(int32_t)(keys[i] & 0xffffffffu)];
            if (cum >= o->top_p) {
                n = i + 1;
                break;
            }
        }
    }
    if (o->min_p > 0.0f) {
        float threshold = o->min_p * s->probs[(int32_t)(keys[0] & 0xffffffffu)];
        int keep = 1;
        while (keep < n && s->probs[(int32_t)(keys[keep] & 0xffffffffu)] >= threshold) keep++;
        n = keep;
    }
    return n;
}

int32_t p3_sampler_pick(p3_sampler *s, float *logits, const int32_t *recent, int n_recent) {
    apply_repeat_penalty(s, logits, recent, n_recent);
    if (s->opt.temperature <= 0.0f || s->opt.top_k == 1) return p3_argmax(logits, s->vocab);
    softmax_with_temperature(s->probs, logits, s->vocab, s->opt.temperature);
    /* top-k, top-p and min-p each keep a prefix of the sorted candidates, so min-p can drop its
     * tokens before the sort (a 200k vocabulary then sorts a few dozen) without changing the result
     */
    float threshold =
        s->opt.min_p > 0.0f ? s->opt.min_p * s->probs[p3_argmax(s->probs, s->vocab)] : 0.0f;
    int n = 0;
    for (int i = 0; i < s->vocab; i++)
        if (s->probs[i] >= threshold) s->keys[n++] = sort_key(s->probs[i], i);
    if (n == 0) return p3_argmax(s->probs, s->vocab); /* min_p > 1 keeps nothing: take the best */
    if (s->opt.top_k > 0 && s->opt.top_k < n) {
        select_smallest(s->keys, n, s->opt.top_k);
        n = s->opt.top_k;
    } else {
        qsort(s->keys, (size_t)n, sizeof *s->keys, compare_keys);
    }
    n = truncate_candidates(s, s->keys, n);
    double total = 0.0;
    for (int i = 0; i < n; i++) total += s->probs[(int32_t)(s->keys[i] & 0xffffffffu)];
    double r = p3_rng_uniform(&s->rng) * total, cum = 0.0;
    for (int i = 0; i < n; i++) {
        int32_t id = (int32_t)(s->keys[i] & 0xffffffffu);
        cum += s->probs[id];
        if (r < cum) return id;
    }
    return (int32_t)(s->keys[n - 1] & 0xffffffffu);
}
