/* api_text.c: the text side of the public API: the model's tokenizer (found beside the weights or
 * in the GGUF), tokenize / detokenize, the chat template, and the streaming decoder generation
 * uses to hand out UTF-8-safe text pieces. */
#include "api_internal.h"

#include <stdio.h>
#include <string.h>

void phi3c_free(void *ptr) {
    p3_free(ptr);
}

/* Loads the tokenizer that comes with an open source, from what the loader already parsed (the
 * GGUF metadata, the native file's blobs, the folder it found). A missing or unusable tokenizer is
 * not an error for the model (logits need none): the reason is kept for the text functions. */
void p3_api_load_tokenizer(phi3c_model *model, const p3_model_source *src) {
    p3_error err = {0};
    p3_status st = p3_tokenizer_load_source(src, &model->tok, &err);
    if (st != PHI3C_OK) {
        model->tok = NULL;
        model->tok_status = st;
        memcpy(model->tok_error, err.message, sizeof model->tok_error);
    }
}

phi3c_status phi3c_model_tokenizer_status(const phi3c_model *model, phi3c_error *err) {
    if (model->tok) return PHI3C_OK;
    return p3_fail(err, model->tok_status ? model->tok_status : PHI3C_ERR_UNSUPPORTED, "%s",
                   model->tok_error);
}

bool phi3c_model_has_tokenizer(const phi3c_model *model) {
    return model->tok != NULL;
}

static p3_status need_tokenizer(const phi3c_model *model, p3_error *err) {
    if (model->tok) return PHI3C_OK;
    return p3_fail(err, PHI3C_ERR_UNSUPPORTED, "the model has no usable tokenizer (%s)",
                   model->tok_error);
}

phi3c_status phi3c_tokenize(const phi3c_model *model, const char *text, size_t len, bool add_bos,
                            int32_t **ids, size_t *n_ids, phi3c_error *err) {
    *ids = NULL;
    *n_ids = 0;
    p3_status st = need_tokenizer(model, err);
    if (st != PHI3C_OK) return st;
    unsigned flags = add_bos && p3_tokenizer_add_bos(model->tok) ? P3_ENCODE_ADD_BOS : 0;
    return p3_tokenizer_encode(model->tok, text, len, flags, ids, n_ids, err);
}

phi3c_status phi3c_detokenize(const phi3c_model *model, const int32_t *ids, size_t n_ids,
                              char **text, phi3c_error *err) {
    *text = NULL;
    p3_status st = need_tokenizer(model, err);
    if (st != PHI3C_OK) return st;
    size_t len;
    return p3_tokenizer_decode(model->tok, ids, n_ids, 0, text, &len, err);
}

phi3c_status phi3c_chat_render(const phi3c_model *model, const phi3c_chat_message *messages,
                               size_t n_messages, bool add_generation_prompt, char **text,
                               size_t *len, phi3c_error *err) {
    *text = NULL;
    p3_status st = need_tokenizer(model, err);
    if (st != PHI3C_OK) return st;
    /* phi3c_chat_message and p3_chat_message have the same two fields */
    p3_chat_message *msgs = p3_calloc(n_messages ? n_messages : 1, sizeof *msgs);
    if (!msgs) return p3_fail(err, PHI3C_ERR_NOMEM, "out of memory rendering the chat");
    for (size_t i = 0; i < n_messages; i++)
        msgs[i] = (p3_chat_message){messages[i].role, messages[i].content};
    st = p3_tokenizer_apply_chat(model->tok, msgs, n_messages, add_generation_prompt, text, len,
                                 err);
    p3_free(msgs);
    return st;
}

/* Starts the text stream of a generation. HF drops the leading space of a decoded text; phi3c does
 * that only when the text starts fresh (after a special token such as <|assistant|> or BOS), so
 * a continuation of plain text keeps its space. */
p3_status p3_api_stream_begin(phi3c_session *session, p3_detok_stream *stream, bool *active,
                              p3_error *err) {
    const phi3c_model *model = session->model;
    *active = false;
    if (!model->tok) return PHI3C_OK;
    p3_status st = p3_detok_stream_init(stream, model->tok, 0, err);
    if (st != PHI3C_OK) return st;
    const p3_session *s = session->s;
    int32_t last = s->n_past > 0 ? s->history[s->n_past - 1] : -1;
    stream->at_start = last < 0 || p3_tokenizer_is_special(model->tok, last);
    *active = true;
    return PHI3C_OK;
}

phi3c_status phi3c_session_feed_text(phi3c_session *session, const char *text, size_t len,
                                     bool add_bos, size_t *n_fed, phi3c_error *err) {
    int32_t *ids = NULL;
    size_t n = 0;
    if (n_fed) *n_fed = 0;
    p3_status st = phi3c_tokenize(session->model, text, len, add_bos, &ids, &n, err);
    if (st == PHI3C_OK && n == 0) st = p3_fail(err, PHI3C_ERR_INVALID_ARG, "feed_text: empty text");
    if (st == PHI3C_OK) st = phi3c_session_feed_tokens(session, ids, n, NULL, err);
    if (st == PHI3C_OK && n_fed) *n_fed = n;
    p3_free(ids);
    return st;
}
