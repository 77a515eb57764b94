/* engine.h: the Phi-3 model as the engine holds it (weights uploaded to one backend) and a session
 * (KV cache, activation buffers, token history) that runs the forward pass. The public API in
 * include/phi3c.h is a thin layer over these. */
#ifndef P3_ENGINE_H
#define P3_ENGINE_H

#include "backend.h"
#include "int4.h"
#include "source.h"

/* How the model's linear weights are stored on the backend. */
typedef enum p3_weight_quant {
    P3_WQ_NONE = 0,  /* the checkpoint's own F32/F16/BF16 (other formats converted to f32) */
    P3_WQ_INT4_SYM,  /* int4-g128 symmetric, quantized at load (P3_DT_I4G128S) */
    P3_WQ_INT4_ASYM, /* int4-g128 asymmetric (P3_DT_I4G128A) */
} p3_weight_quant;

typedef struct p3_load_options {
    const char *backend; /* "cpu", "opencl", "level-zero", NULL or "auto" = best available */
    const char *variant; /* backend-specific (CPU ISA), NULL = best */
    int device;          /* device index for GPU backends */
    int n_threads;       /* backend threads and load-time quantizer threads; 0 = all cores */
    p3_weight_quant quant;
    p3_quant_method quant_method;
    p3_act_mode act;            /* INT4 activation mode (w4a8 default; w4a32 when unsupported) */
    bool act_given;             /* the caller chose `act`: fail instead of falling back */
    phi3c_progress_fn progress; /* per weight tensor uploaded (phi3c.h); NULL: none */
    void *progress_user;
} p3_load_options;

void p3_load_options_init(p3_load_options *opt);

/* One transformer block's weights. Norm weights are f32 device buffers; shapes HF [out, in]. */
typedef struct p3_layer_weights {
    p3_buffer *attn_norm; /* [hidden] f32 */
    p3_weight *qkv;       /* [(n_heads + 2 n_kv_heads) head_dim, hidden] */
    p3_weight *o;         /* [hidden, n_heads head_dim] */
    p3_buffer *ffn_norm;  /* [hidden] f32 */
    p3_weight *gate_up;   /* [2 inter, hidden]: gate rows first, then up */
    p3_weight *down;      /* [hidden, inter] */
} p3_layer_weights;

typedef struct p3_model {
    p3_config cfg;
    p3_backend be;
    p3_load_options opt;
    p3_weight *embed;          /* [vocab, hidden] */
    p3_weight *lm_head;        /* [vocab, hidden]; == embed when tie_word_embeddings */
    p3_buffer *final_norm;     /* [hidden] f32 */
    p3_layer_weights *layers;  /* [num_layers] */
    p3_buffer *inv_freq_short; /* [rot_dim/2] f32: plain RoPE, or LongRoPE short factors */
    p3_buffer *inv_freq_long;  /* [rot_dim/2] f32: LongRoPE long factors; NULL without LongRoPE */
    p3_act_mode act;           /* activation mode actually used by INT4 weights */
    size_t weight_bytes;       /* device bytes of all weights */
    double load_seconds;
} p3_model;

/* Opens `path` with the loaders and uploads its weights. */
p3_status p3_model_load(const char *path, const p3_load_options *opt, p3_model **out,
                        p3_error *err);
/* Uploads the weights of an already open source (which may live only in memory); the source is
 * only read during the call. */
p3_status p3_model_from_source(const p3_model_source *src, const p3_load_options *opt,
                               p3_model **out, p3_error *err);
void p3_model_free(p3_model *m);
const char *p3_weight_quant_name(p3_weight_quant q);

typedef struct p3_session_options {
    int n_ctx;       /* KV cache positions; 0 = min(max_position_embeddings, 4096) */
    int n_batch;     /* tokens per forward chunk (bounds the activation buffers); 0 = 256 */
    p3_kv_dtype kv;  /* KV cache element type */
    bool kv_given;   /* false: f32 for unquantized weights (matches the oracle), f16 with INT4 */
    bool all_logits; /* keep logits of every position of a chunk, not only the last */
} p3_session_options;

void p3_session_options_init(p3_session_options *opt);

typedef struct p3_session {
    const p3_model *model;
    p3_session_options opt;
    int n_ctx, n_batch;
    p3_kv_cache *kv;  /* [layers][n_ctx][n_kv_heads][head_dim] K and V (backend layout) */
    int32_t *history; /* [n_ctx] token ids whose keys/values are in the cache */
    int n_past;       /* positions filled in the cache */
    bool long_rope;   /* the cache was computed with LongRoPE's long factors */
    int n_reprefills; /* times the whole history was re-run with the long factors */
    /* activations of one chunk of T <= n_batch tokens (device buffers, f32 unless noted) */
    p3_buffer *ids;     /* [n_batch] int32 */
    p3_buffer *x;       /* [n_batch, hidden] residual stream */
    p3_buffer *xb;      /* [n_batch, hidden] normed input of a block, then its output */
    p3_buffer *qkv;     /* [n_batch, (n_heads + 2 n_kv_heads) head_dim] */
    p3_buffer *att;     /* [n_batch, n_heads head_dim] attention output before o_proj */
    p3_buffer *gate_up; /* [n_batch, 2 inter] */
    p3_buffer *hb;      /* [n_batch, inter] silu(gate) * up */
    p3_buffer *logits;  /* [logit_rows, vocab] */
    int logit_rows;     /* n_batch with all_logits, else 1 or what reserve_logits asked for */
    float *host_logits; /* [vocab] logits of the last fed position */
    /* statistics */
    long long n_prefilled; /* tokens run through the forward pass (including re-prefills) */
} p3_session;

p3_status p3_session_create(const p3_model *m, const p3_session_options *opt, p3_session **out,
                            p3_error *err);
void p3_session_free(p3_session *s);
/* Forgets every cached position. */
void p3_session_reset(p3_session *s);
/* Runs n tokens at positions n_past.. through the model and appends them to the cache. The logits
 * of the last token are left in s->host_logits; when `logits` is not NULL (requires all_logits) it
 * receives n rows of vocab_size, one per fed token. Fails with PHI3C_ERR_CONTEXT_FULL, changing
 * nothing, when the tokens do not fit. With LongRoPE, when the sequence first grows beyond
 * original_max_position_embeddings, the whole history is re-run with the long factors (what
 * transformers' generate does; only re-rotating cached keys is not equivalent). */
p3_status p3_session_feed(p3_session *s, const int32_t *ids, int n, float *logits, p3_error *err);
/* Lets a session without all_logits return the logits of up to `rows` positions per feed (e.g.
 * the verification of draft tokens); rows <= n_batch. */
p3_status p3_session_reserve_logits(p3_session *s, int rows, p3_error *err);
/* Rolls the cache back to its first n_past positions (no copy: the later ones are overwritten by
 * the next feed, and attention never reads past the fed positions). Refuses to go back below the
 * LongRoPE switch once it happened (the kept keys would carry the long factors). host_logits is
 * left as it was: the caller restores the row of the new last position. */
p3_status p3_session_truncate(p3_session *s, int n_past, p3_error *err);

/* ---- Batches (engine/forward.c): one forward pass advances several sessions of one model, each
 * at its own position with its own KV cache; the weights are read once for all their tokens. */
typedef struct p3_batch p3_batch;

/* Activation buffers for n_tokens rows per step (0 = 256), logits for as many rows. */
p3_status p3_batch_create(const p3_model *m, int n_tokens, p3_batch **out, p3_error *err);
void p3_batch_free(p3_batch *b);
int p3_batch_capacity(const p3_batch *b);

/* One sequence of a step: n tokens appended to session s at its n_past. */
typedef struct p3_batch_seq {
    p3_session *s;
    const int32_t *ids;
    int n;
    float *logits; /* NULL, or n rows of vocab: the logits of every fed position */
} p3_batch_seq;

/* Runs every sequence through the model in one pass (the sessions must differ and the tokens fit
 * in the batch), appends them to the caches and leaves each session's last logits in its
 * host_logits, as p3_session_feed would, with the same results. Checks everything first
 * (nothing changes on a bad sequence); a sequence that crosses the LongRoPE switch is fed alone.
 * Speculative verification may pass draft tokens as a sequence with `logits`. */
p3_status p3_batch_feed(p3_batch *b, const p3_batch_seq *seqs, int n_seqs, p3_error *err);

/* ---- Sampling (engine/sample.c). */
typedef struct p3_sampler_options {
    float temperature;    /* <= 0: greedy */
    int top_k;            /* 0 = off; 1 = greedy */
    float top_p;          /* 1 = off */
    float min_p;          /* 0 = off: drop tokens with p < min_p * p_max */
    float repeat_penalty; /* 1 = off; HF rule: positive logits divided, negative multiplied */
    int repeat_last_n;    /* tokens of history the penalty looks at; -1 = all */
    uint64_t seed;
} p3_sampler_options;

void p3_sampler_options_init(p3_sampler_options *opt);

/* The documented PRNG: xorshift64* seeded through splitmix64(seed); uniform floats take the top
 * 24 bits, so a seed gives the same stream on every machine and thread count. */
typedef struct p3_rng {
    uint64_t state;
} p3_rng;
void p3_rng_seed(p3_rng *r, uint64_t seed);
uint64_t p3_rng_next(p3_rng *r);
float p3_rng_uniform(p3_rng *r); /* [0, 1) */

typedef struct p3_sampler {
    p3_sampler_options opt;
    p3_rng rng;
    int vocab;
    float *probs;   /* [vocab] scratch */
    uint64_t *keys; /* [vocab] candidates as sort keys (probability, id) */
} p3_sampler;

p3_status p3_sampler_create(const p3_sampler_options *opt, int vocab, p3_sampler **out,
                            p3_error *err);
void p3_sampler_free(p3_sampler *s);
/* Picks the next token from logits [vocab] (modified in place by the penalty); `recent` are the
 * previous tokens the repetition penalty looks at. */
int32_t p3_sampler_pick(p3_sampler *s, float *logits, const int32_t *recent, int n_recent);
int32_t p3_argmax(const float *x, int n);

#endif /* P3_ENGINE_H */
