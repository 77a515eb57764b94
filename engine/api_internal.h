/* api_internal.h: what the public handles hold, shared by api.c (models, sessions, generation)
 * and api_text.c (tokenizer, chat template, streaming text). */
#ifndef P3_API_INTERNAL_H
#define P3_API_INTERNAL_H

#include "engine.h"
#include "lookup.h"
#include "tokenizer.h"

#include <pthread.h>

struct phi3c_model {
    p3_model *m;
    p3_tokenizer *tok;    /* NULL when the model came without a usable tokenizer */
    char tok_error[512];  /* why tok is NULL */
    p3_status tok_status; /* and its status (UNSUPPORTED: none; FORMAT, NOMEM, IO: a bad one) */
    /* Held around every call that reaches the backend (feeds, batches, session create/free): a
     * backend context has one thread pool and one set of scratch buffers (quantized activations,
     * attention scores), so concurrent sessions of one model take turns on it. */
    pthread_mutex_t lock;
};

struct phi3c_session {
    phi3c_model *model;
    p3_session *s;
    float *scratch;   /* [vocab] logits the sampler may modify */
    p3_lookup lookup; /* prompt-lookup drafting state (max_draft 0 = off) */
    /* The rendered chat text whose tokens the cache holds (phi3c_chat_prepare, extended by
     * generation), valid while the cache holds exactly chat_npast positions. */
    char *chat_text;
    size_t chat_len, chat_cap;
    int chat_npast;
};

/* Loads the tokenizer that comes with an open source; failure only leaves model->tok NULL. */
void p3_api_load_tokenizer(phi3c_model *model, const p3_model_source *src);
/* The engine's sampler options for the public sampler parameters (also what the CLI fuzzer checks
 * its accepted flags against). */
p3_sampler_options p3_api_sampler_options(const phi3c_sampler_params *p);
/* Starts the streaming decoder of a generation (*active false when there is no tokenizer). */
p3_status p3_api_stream_begin(phi3c_session *session, p3_detok_stream *stream, bool *active,
                              p3_error *err);

/* p3_session_feed under the model's lock. */
p3_status p3_api_feed(phi3c_session *session, const int32_t *ids, int n, float *logits,
                      p3_error *err);
/* Appends a reported piece of generated text (its token is, or is about to be, in the cache) to
 * the session's chat text, counting one more position. */
void p3_api_chat_extend(phi3c_session *session, const char *text, size_t len);
/* Forgets the chat text (the cache no longer matches a rendered conversation). */
void p3_api_chat_forget(phi3c_session *session);

#endif /* P3_API_INTERNAL_H */
