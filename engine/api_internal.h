/* api_internal.h: what the public handles hold, shared by api.c (models, sessions, generation)
 * and api_text.c (tokenizer, chat template, streaming text). */
#ifndef P3_API_INTERNAL_H
#define P3_API_INTERNAL_H

#include "engine.h"
#include "lookup.h"
#include "tokenizer.h"

struct phi3c_model {
    p3_model *m;
    p3_tokenizer *tok;   /* NULL when the model came without a usable tokenizer */
    char tok_error[512]; /* why tok is NULL */
};

struct phi3c_session {
    phi3c_model *model;
    p3_session *s;
    float *scratch;   /* [vocab] logits the sampler may modify */
    p3_lookup lookup; /* prompt-lookup drafting state (max_draft 0 = off) */
};

/* Loads the tokenizer that comes with an open source; failure only leaves model->tok NULL. */
void p3_api_load_tokenizer(phi3c_model *model, const p3_model_source *src);
/* Starts the streaming decoder of a generation (*active false when there is no tokenizer). */
p3_status p3_api_stream_begin(phi3c_session *session, p3_detok_stream *stream, bool *active,
                              p3_error *err);

#endif /* P3_API_INTERNAL_H */
