/* phi3c.h: the one public header of phi3c, a C11 inference engine for the Phi-3 family.
 * Opaque handles, one prefix, every call returns a phi3c_status; the library never prints or exits.
 */
#ifndef PHI3C_H
#define PHI3C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PHI3C_VERSION "0.1.0"

typedef enum phi3c_status {
    PHI3C_OK = 0,
    PHI3C_ERR_INVALID_ARG,  /* the caller passed something impossible (NULL, bad size, bad flag) */
    PHI3C_ERR_IO,           /* open/read/write/mmap/rename failed; the message names the file */
    PHI3C_ERR_FORMAT,       /* a file is malformed, truncated or hostile; the message says where */
    PHI3C_ERR_UNSUPPORTED,  /* valid input this build cannot handle (architecture, dtype, op) */
    PHI3C_ERR_NOMEM,        /* host allocation failed */
    PHI3C_ERR_CHECKSUM,     /* a checksum of the native file did not match */
    PHI3C_ERR_CONTEXT_FULL, /* the sequence would not fit in the KV cache */
    PHI3C_ERR_BACKEND,     /* a device runtime failed (build log or runtime error in the message) */
    PHI3C_ERR_UNAVAILABLE, /* a backend, library, device or extension is not present */
    PHI3C_ERR_EXISTS,      /* refusing to overwrite an existing file */
    PHI3C_ERR_INTERRUPTED, /* stopped by the user (signal) or by a callback */
    PHI3C_ERR_DEVICE_OOM,  /* a device allocation failed */
    PHI3C_STATUS_COUNT
} phi3c_status;

/* Every failing call fills one of these (when the caller passes one): status and a message that
 * names the file or object and the problem, e.g. "model.safetensors: header length 9e9 exceeds
 * file size 1234". */
typedef struct phi3c_error {
    phi3c_status status;
    char message[512];
} phi3c_error;

/* A short constant description of a status code ("file format error", ...). */
const char *phi3c_strerror(phi3c_status status);

/* ---- Models, sessions and generation (engine/api.c) ----------------------------------------- */

/* Threads: one model may be shared by any number of sessions used from different threads at the
 * same time; each session (and each phi3c_batch) must be used by one thread at a time. Calls
 * that run the model (feeds, generation, batches) and session creation/freeing take turns on the
 * model's backend (its thread pool and per-context scratch are never shared between concurrent
 * calls); tokenizing, rendering and sampling run concurrently. Free the model after all its
 * sessions. */

typedef struct phi3c_model phi3c_model;     /* weights on one backend (+ tokenizer when found) */
typedef struct phi3c_session phi3c_session; /* one conversation: KV cache and token history */

typedef enum phi3c_quant {
    PHI3C_QUANT_NONE = 0,       /* the checkpoint's own precision (F32/F16/BF16) */
    PHI3C_QUANT_INT4_G128,      /* linear weights quantized at load, symmetric int4 groups of 128 */
    PHI3C_QUANT_INT4_G128_ASYM, /* same with a zero point per group */
} phi3c_quant;

typedef enum phi3c_act {
    PHI3C_ACT_DEFAULT = 0, /* w4a8, or w4a32 when the backend has no w4a8 kernel */
    PHI3C_ACT_W4A8,        /* int4 weights times activations quantized to int8 per 128-group */
    PHI3C_ACT_W4A32,       /* int4 weights times f32 activations */
} phi3c_act;

typedef enum phi3c_kv_type {
    PHI3C_KV_DEFAULT = 0, /* f32 for unquantized weights (matches the f32 oracle), f16 with INT4 */
    PHI3C_KV_F32,
    PHI3C_KV_F16,
    PHI3C_KV_Q8,
} phi3c_kv_type;

/* Progress of long work (phi3c_model_load): `done` of `total` steps (weight tensors uploaded, and
 * quantized with PHI3C_QUANT_*); return false to cancel (the call then fails with
 * PHI3C_ERR_INTERRUPTED). The library never prints: the caller draws a bar or ignores it. */
typedef bool (*phi3c_progress_fn)(void *user, uint64_t done, uint64_t total);

typedef struct phi3c_model_params {
    const char *backend; /* "cpu", "opencl", "level-zero"; NULL or "auto" = best available */
    int device;          /* device index for GPU backends */
    int n_threads;       /* 0 = all cores */
    phi3c_quant quant;
    bool quant_search; /* per-group scales minimising the squared error (what `phi3c quantize`
                        * uses; slower) instead of round-to-nearest with the absmax scale */
    phi3c_act act;
    phi3c_progress_fn progress; /* NULL: no calls */
    void *progress_user;
} phi3c_model_params;

phi3c_model_params phi3c_model_params_default(void);
/* Loads a Hugging Face folder, a GGUF file or a native .phi3c file. */
phi3c_status phi3c_model_load(const char *path, const phi3c_model_params *params, phi3c_model **out,
                              phi3c_error *err);
void phi3c_model_free(phi3c_model *model);
int phi3c_model_vocab_size(const phi3c_model *model);
/* The positions the model was trained for (config max_position_embeddings; LongRoPE models: the
 * long context). */
int phi3c_model_context_length(const phi3c_model *model);
/* One line: layers, sizes, weight format, backend. */
void phi3c_model_describe(const phi3c_model *model, char *buf, size_t len);
/* Seconds phi3c_model_load took. */
double phi3c_model_load_seconds(const phi3c_model *model);
/* The config's stop ids (generation_config.json / GGUF; generation also stops on the tokenizer's
 * eos, <|end|> and <|endoftext|>); returns how many, writes up to cap. */
int phi3c_model_stop_ids(const phi3c_model *model, int32_t *ids, int cap);

enum { PHI3C_LOOKUP_MAX = 64 }; /* the longest lookup draft (phi3c_session_params.lookup) */

typedef struct phi3c_session_params {
    int n_ctx;   /* KV cache positions; 0 = min(max_position_embeddings, 4096) */
    int n_batch; /* tokens per forward chunk; 0 = 256 */
    phi3c_kv_type kv;
    bool all_logits; /* phi3c_session_feed_tokens may return the logits of every position */
    int lookup;      /* prompt-lookup decoding in phi3c_generate: up to `lookup` draft tokens
                      * (0..64; 0 = off) copied from where the last few tokens occurred before in
                      * the prompt or the generated text, checked in one forward pass. The output
                      * is the same as without it, greedy or seeded sampling alike. */
} phi3c_session_params;

phi3c_session_params phi3c_session_params_default(void);
phi3c_status phi3c_session_create(phi3c_model *model, const phi3c_session_params *params,
                                  phi3c_session **out, phi3c_error *err);
void phi3c_session_free(phi3c_session *session);
/* Changes the session's lookup (see phi3c_session_params; 0 = off). */
phi3c_status phi3c_session_set_lookup(phi3c_session *session, int lookup, phi3c_error *err);
/* Forgets the conversation (the KV cache is reused). */
void phi3c_session_reset(phi3c_session *session);
/* Positions in the KV cache, and its capacity. */
int phi3c_session_n_past(const phi3c_session *session);
int phi3c_session_n_ctx(const phi3c_session *session);
/* Appends tokens to the conversation and runs them through the model. `logits` may be NULL, or
 * (with all_logits) receive n rows of vocab_size floats, one per token. PHI3C_ERR_CONTEXT_FULL,
 * with nothing changed, when they do not fit. */
phi3c_status phi3c_session_feed_tokens(phi3c_session *session, const int32_t *ids, size_t n,
                                       float *logits, phi3c_error *err);
/* The logits [vocab_size] of the last fed position (valid until the next feed). */
const float *phi3c_session_logits(const phi3c_session *session);

typedef struct phi3c_session_stats {
    long long n_prefilled; /* tokens run through the model so far (re-prefills included) */
    int n_reprefills;      /* whole-history re-runs (LongRoPE switch to the long factors) */
    long long n_drafted;   /* lookup: draft tokens verified so far */
    long long n_accepted;  /* lookup: draft tokens that were kept */
} phi3c_session_stats;
void phi3c_session_get_stats(const phi3c_session *session, phi3c_session_stats *stats);

typedef struct phi3c_sampler_params {
    float temperature;    /* <= 0: greedy (argmax) */
    int top_k;            /* 0 = off; 1 = greedy */
    float top_p;          /* 1 = off */
    float min_p;          /* 0 = off: drops tokens with p < min_p * max p */
    float repeat_penalty; /* > 0 (else phi3c_generate refuses); 1 = off; transformers' rule */
    int repeat_last_n;    /* history the penalty looks at; -1 = all */
    uint64_t seed;        /* xorshift64* seeded via splitmix64: same seed, same tokens */
} phi3c_sampler_params;

/* temperature 0.8, top-k 40, top-p 0.95, min-p 0.05, no repetition penalty, seed 0. */
phi3c_sampler_params phi3c_sampler_params_default(void);
phi3c_sampler_params phi3c_sampler_params_greedy(void);

typedef enum phi3c_stop_reason {
    PHI3C_STOP_LENGTH = 0,   /* max_tokens generated */
    PHI3C_STOP_EOS,          /* a stop id was sampled (not fed, not reported) */
    PHI3C_STOP_CALLBACK,     /* the callback returned false */
    PHI3C_STOP_CONTEXT_FULL, /* the KV cache is full */
} phi3c_stop_reason;

/* Called for every generated token with its text piece (UTF-8; complete characters only, so a
 * piece may be empty while a multi-byte character is incomplete; NULL when the model has no
 * tokenizer). Return false to stop. A last call with token -1 may deliver bytes of an unfinished
 * character (as U+FFFD) when generation ends. The leading space of the first piece is dropped
 * (as HF's decode does) when the text starts fresh, i.e. after a special token such as
 * <|assistant|>; after ordinary text it is kept. */
typedef bool (*phi3c_token_fn)(void *user, int32_t token, const char *text, size_t len);

typedef struct phi3c_generate_result {
    int n_generated;
    phi3c_stop_reason stop;
    double seconds;             /* generation time (sampling + feeding) */
    double first_token_seconds; /* from the call to the first token */
    int n_forwards;             /* forward passes (n_generated / n_forwards: tokens per forward) */
    int n_drafted, n_accepted;  /* lookup: draft tokens verified and kept in this call */
} phi3c_generate_result;

/* ---- Text: needs the model's tokenizer (tokenizer.json / tokenizer.model beside the weights, or
 * the GGUF's tokenizer metadata). */
bool phi3c_model_has_tokenizer(const phi3c_model *model);
/* Why there is no tokenizer: PHI3C_OK when there is one; PHI3C_ERR_UNSUPPORTED when the model
 * came without any; else the load's own error (a corrupt tokenizer.json: PHI3C_ERR_FORMAT with
 * the parser's position; out of memory: PHI3C_ERR_NOMEM), with its message in err. */
phi3c_status phi3c_model_tokenizer_status(const phi3c_model *model, phi3c_error *err);
/* UTF-8 text to ids in a new array (free with phi3c_free). Special tokens written in the text
 * (<|user|>, ...) are recognised; with add_bos, BOS is added when the tokenizer config asks for it.
 */
phi3c_status phi3c_tokenize(const phi3c_model *model, const char *text, size_t len, bool add_bos,
                            int32_t **ids, size_t *n_ids, phi3c_error *err);
/* Ids to UTF-8 text (NUL-terminated, free with phi3c_free), as HF's decode. */
phi3c_status phi3c_detokenize(const phi3c_model *model, const int32_t *ids, size_t n_ids,
                              char **text, phi3c_error *err);

typedef struct phi3c_chat_message {
    const char *role; /* "system", "user" or "assistant" */
    const char *content;
} phi3c_chat_message;

/* Renders a conversation with the model's chat template (Phi-3: "<|user|>\n...<|end|>\n
 * <|assistant|>\n"), ending with the assistant prompt when add_generation_prompt; tokenize the
 * result with add_bos false (the template writes any BOS itself). Free with phi3c_free. */
phi3c_status phi3c_chat_render(const phi3c_model *model, const phi3c_chat_message *messages,
                               size_t n_messages, bool add_generation_prompt, char **text,
                               size_t *len, phi3c_error *err);
void phi3c_free(void *ptr);
/* Tokenizes text (special tokens recognised; BOS as the tokenizer config says when add_bos) and
 * feeds it; *n_fed (may be NULL) receives the token count. */
phi3c_status phi3c_session_feed_text(phi3c_session *session, const char *text, size_t len,
                                     bool add_bos, size_t *n_fed, phi3c_error *err);

/* ---- Chat turns over a session's cache (engine/api_chat.c), shared by `phi3c chat` and the
 * server. */
typedef struct phi3c_chat_params {
    int reserve;     /* positions the prompt must leave free for the answer */
    bool drop_turns; /* when the prompt does not fit, drop the oldest turns (a message and the
                      * assistant answer after it) behind the leading system messages; false:
                      * PHI3C_ERR_CONTEXT_FULL */
} phi3c_chat_params;

typedef struct phi3c_chat_turn {
    int32_t *ids;     /* tokens still to feed, in order (free with phi3c_free) */
    size_t n_ids;     /* >= 1 on success */
    int n_reused;     /* cached positions kept: the session now holds exactly these */
    size_t n_prompt;  /* tokens of the whole rendered prompt (n_reused + n_ids); also set when
                       * it did not fit */
    size_t n_dropped; /* messages dropped from the front (after the system messages) */
} phi3c_chat_turn;

/* Prepares the session for the assistant's answer to `messages` (rendered with the chat template
 * and the generation prompt): keeps the longest part of its cache that the new prompt starts
 * with (the session is truncated to turn->n_reused positions) and returns the tokens still to
 * feed (with phi3c_session_feed_tokens or phi3c_batch_decode). After a previous turn's answer
 * was generated in this session, a conversation that repeats it prefills only the new turn.
 * params NULL: reserve min(64, n_ctx/4), no dropping. A prompt that does not fit (after dropping
 * what may be dropped) fails with PHI3C_ERR_CONTEXT_FULL and the numbers, the cache unchanged. */
phi3c_status phi3c_chat_prepare(phi3c_session *session, const phi3c_chat_message *messages,
                                size_t n_messages, const phi3c_chat_params *params,
                                phi3c_chat_turn *turn, phi3c_error *err);

/* Prompt caching for raw token prompts: keeps the longest part of the session's cache that ids
 * start with, leaving at least one of them to feed (the session is truncated to that many
 * positions, returned; feed ids from there). */
int phi3c_session_keep_prefix(phi3c_session *session, const int32_t *ids, size_t n);

/* Generates up to max_tokens tokens after what the session holds (feed a prompt first), feeding
 * each reported token back (also the one the callback stops at; not a sampled stop id), so the
 * cache holds exactly the text the caller saw. Stops on the model's stop ids. */
phi3c_status phi3c_generate(phi3c_session *session, const phi3c_sampler_params *sampler,
                            int max_tokens, phi3c_token_fn on_token, void *user,
                            phi3c_generate_result *result, phi3c_error *err);

/* ---- Step by step generation and batches: a server advances many sessions of one model in one
 * forward pass per step (the weights are read once for all of them). */

/* A generation in progress in one session: its sampler and its text decoder. */
typedef struct phi3c_stream phi3c_stream;
/* sampler NULL = greedy. The session must hold a prompt before the first phi3c_stream_next. */
phi3c_status phi3c_stream_begin(phi3c_session *session, const phi3c_sampler_params *sampler,
                                phi3c_stream **out, phi3c_error *err);
/* Picks the next token from the session's last logits, exactly as phi3c_generate does (same
 * sampler, same seed, same result). *token is -1 when a stop id was picked (the generation is
 * over; nothing to feed). Otherwise text and len give its piece (as phi3c_token_fn gets it;
 * valid until the next call); the caller feeds the token (phi3c_session_feed_tokens or
 * phi3c_batch_decode) before the next pick. */
phi3c_status phi3c_stream_next(phi3c_stream *stream, int32_t *token, const char **text, size_t *len,
                               phi3c_error *err);
/* Prompt lookup in step-by-step generation, with the session's lookup setting (see
 * phi3c_session_params.lookup). After phi3c_stream_next gave a token to feed,
 * phi3c_stream_draft drafts up to `cap` tokens to follow it (also bounded by the session's
 * lookup, its context and LongRoPE's switch); returns how many, 0: feed the token alone. Feed
 * the token and the k drafts as one sequence with the logits of its k + 1 rows
 * (phi3c_batch_seq.logits), then call phi3c_stream_verify. */
int phi3c_stream_draft(phi3c_stream *stream, int32_t token, int cap, int32_t *draft);
/* Picks through the rows exactly as phi3c_stream_next would one position at a time, keeps the
 * drafts up to the first pick that differs in the cache, drops the rest, and says how many were
 * kept. The next *n_accepted calls of phi3c_stream_next return them (they are in the cache: do
 * not feed them) and the call after them the model's own next token (feed it). `rows` may be
 * overwritten. `seconds` is how long the step took: the draft length adapts to the measured cost
 * of drafts (k = 0 only records the time of a plain step; draft and rows may be NULL). If the
 * caller stops before taking every kept draft, the cache holds more than it was given;
 * phi3c_chat_prepare and phi3c_session_keep_prefix compare tokens and drop them. */
phi3c_status phi3c_stream_verify(phi3c_stream *stream, const int32_t *draft, int k, float *rows,
                                 double seconds, int *n_accepted, phi3c_error *err);
/* Bytes of an unfinished character at the end, as U+FFFD (valid until the stream is freed). */
void phi3c_stream_finish(phi3c_stream *stream, const char **text, size_t *len);
void phi3c_stream_free(phi3c_stream *stream);

/* Activation buffers for one forward pass over several sessions of a model. */
typedef struct phi3c_batch phi3c_batch;
/* n_tokens: tokens per step, all sequences together (0 = 256). */
phi3c_status phi3c_batch_create(phi3c_model *model, int n_tokens, phi3c_batch **out,
                                phi3c_error *err);
void phi3c_batch_free(phi3c_batch *batch);
int phi3c_batch_n_tokens(const phi3c_batch *batch);

typedef struct phi3c_batch_seq {
    phi3c_session *session;
    const int32_t *ids; /* appended at the session's n_past: one decode token or a prefill chunk */
    size_t n;
    float *logits; /* NULL, or n rows of vocab_size: the logits of every fed position (e.g. the
                    * verification of draft tokens) */
} phi3c_batch_seq;

/* Runs every sequence through the model in ONE forward pass: the matmuls over all their tokens
 * (weights read once), rotary embedding, cache write and attention per sequence at its own
 * positions in its own KV cache. Each session then holds its tokens and its last position's
 * logits (phi3c_session_logits), the same as feeding it alone. The sessions must differ and
 * their tokens fit in the batch; everything is checked first (PHI3C_ERR_CONTEXT_FULL or
 * INVALID_ARG naming the sequence, nothing changed). */
phi3c_status phi3c_batch_decode(phi3c_batch *batch, const phi3c_batch_seq *seqs, size_t n_seqs,
                                phi3c_error *err);

#ifdef __cplusplus
}
#endif
#endif /* PHI3C_H */
