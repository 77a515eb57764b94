/* api.c: the public model / session / generation API of include/phi3c.h over the engine's
 * p3_model and p3_session, and the generation loop (sample, report, feed back). */
#include "api_internal.h"

#include <stdio.h>
#include <string.h>

phi3c_model_params phi3c_model_params_default(void) {
    phi3c_model_params p;
    memset(&p, 0, sizeof p);
    return p;
}

static p3_status to_load_options(const phi3c_model_params *p, p3_load_options *o, p3_error *err) {
    p3_load_options_init(o);
    if (!p) return PHI3C_OK;
    o->backend = p->backend;
    o->device = p->device;
    o->n_threads = p->n_threads;
    o->quant_method = p->quant_search ? P3_QUANT_SEARCH : P3_QUANT_RTN;
    o->progress = p->progress;
    o->progress_user = p->progress_user;
    switch (p->quant) {
    case PHI3C_QUANT_NONE:
        o->quant = P3_WQ_NONE;
        break;
    case PHI3C_QUANT_INT4_G128:
        o->quant = P3_WQ_INT4_SYM;
        break;
    case PHI3C_QUANT_INT4_G128_ASYM:
        o->quant = P3_WQ_INT4_ASYM;
        break;
    default:
        return p3_fail(err, PHI3C_ERR_INVALID_ARG, "unknown quantization %d", (int)p->quant);
    }
    switch (p->act) {
    case PHI3C_ACT_DEFAULT:
        break;
    case PHI3C_ACT_W4A8:
        o->act = P3_ACT_Q8, o->act_given = true;
        break;
    case PHI3C_ACT_W4A32:
        o->act = P3_ACT_F32, o->act_given = true;
        break;
    default:
        return p3_fail(err, PHI3C_ERR_INVALID_ARG, "unknown activation mode %d", (int)p->act);
    }
    return PHI3C_OK;
}

phi3c_status phi3c_model_load(const char *path, const phi3c_model_params *params, phi3c_model **out,
                              phi3c_error *err) {
    if (!out || !path) return p3_fail(err, PHI3C_ERR_INVALID_ARG, "model_load: NULL argument");
    *out = NULL;
    p3_load_options o;
    p3_status st = to_load_options(params, &o, err);
    if (st != PHI3C_OK) return st;
    phi3c_model *model = p3_calloc(1, sizeof *model);
    if (!model) return p3_fail(err, PHI3C_ERR_NOMEM, "out of memory for the model");
    pthread_mutex_init(&model->lock, NULL);
    double t0 = p3_time_now();
    p3_model_source *src = NULL;
    st = p3_source_open(path, &src, err);
    if (st == PHI3C_OK) st = p3_model_from_source(src, &o, &model->m, err);
    if (st == PHI3C_OK) {
        p3_api_load_tokenizer(model, src);
        model->m->load_seconds = p3_time_now() - t0;
    }
    p3_source_close(src);
    if (st != PHI3C_OK) {
        phi3c_model_free(model);
        return st;
    }
    *out = model;
    return PHI3C_OK;
}

void phi3c_model_free(phi3c_model *model) {
    if (!model) return;
    p3_model_free(model->m);
    p3_tokenizer_free(model->tok);
    pthread_mutex_destroy(&model->lock);
    p3_free(model);
}

int phi3c_model_vocab_size(const phi3c_model *model) {
    return model->m->cfg.vocab_size;
}
int phi3c_model_context_length(const phi3c_model *model) {
    return model->m->cfg.max_position_embeddings;
}
double phi3c_model_load_seconds(const phi3c_model *model) {
    return model->m->load_seconds;
}

void phi3c_model_describe(const phi3c_model *model, char *buf, size_t len) {
    const p3_model *m = model->m;
    const p3_config *c = &m->cfg;
    char be[128] = "";
    p3_be_describe((p3_backend *)&m->be, be, sizeof be);
    snprintf(buf, len,
             "%d layers, hidden %d, heads %d/%d, vocab %d, weights %s (%.1f MiB)%s, backend %s",
             c->num_layers, c->hidden_size, c->num_heads, c->num_kv_heads, c->vocab_size,
             p3_dtype_name(m->layers[0].qkv->dtype), (double)m->weight_bytes / (1024.0 * 1024.0),
             !p3_dtype_is_int4(m->layers[0].qkv->dtype) ? ""
             : m->act == P3_ACT_Q8                      ? " w4a8"
                                                        : " w4a32",
             be);
}

int phi3c_model_stop_ids(const phi3c_model *model, int32_t *ids, int cap) {
    const p3_config *c = &model->m->cfg;
    for (int i = 0; i < c->n_stop_ids && i < cap; i++) ids[i] = c->stop_ids[i];
    return c->n_stop_ids;
}

phi3c_session_params phi3c_session_params_default(void) {
    phi3c_session_params p;
    memset(&p, 0, sizeof p);
    return p;
}

phi3c_status phi3c_session_create(phi3c_model *model, const phi3c_session_params *params,
                                  phi3c_session **out, phi3c_error *err) {
    if (!model || !out) return p3_fail(err, PHI3C_ERR_INVALID_ARG, "session_create: NULL argument");
    *out = NULL;
    p3_session_options o;
    p3_session_options_init(&o);
    if (params) {
        o.n_ctx = params->n_ctx;
        o.n_batch = params->n_batch;
        o.all_logits = params->all_logits;
        o.kv_given = params->kv != PHI3C_KV_DEFAULT;
        o.kv = params->kv == PHI3C_KV_F16  ? P3_KV_F16
               : params->kv == PHI3C_KV_Q8 ? P3_KV_Q8
                                           : P3_KV_F32;
        if (params->n_ctx < 0 || params->n_batch < 0)
            return p3_fail(err, PHI3C_ERR_INVALID_ARG, "session: negative n_ctx or n_batch");
        if (params->lookup < 0 || params->lookup > P3_LOOKUP_MAX)
            return p3_fail(err, PHI3C_ERR_INVALID_ARG, "session: lookup %d is not in 0..%d",
                           params->lookup, P3_LOOKUP_MAX);
    }
    phi3c_session *s = p3_calloc(1, sizeof *s);
    if (!s) return p3_fail(err, PHI3C_ERR_NOMEM, "out of memory for the session");
    s->model = model;
    p3_lookup_init(&s->lookup, params ? params->lookup : 0);
    s->scratch = p3_malloc((size_t)model->m->cfg.vocab_size * sizeof(float));
    p3_status st = PHI3C_OK;
    if (!s->scratch) st = p3_fail(err, PHI3C_ERR_NOMEM, "out of memory for the session");
    if (st == PHI3C_OK) {
        pthread_mutex_lock(&model->lock); /* the KV allocation may grow backend scratch */
        st = p3_session_create(model->m, &o, &s->s, err);
        pthread_mutex_unlock(&model->lock);
    }
    if (st != PHI3C_OK) {
        phi3c_session_free(s);
        return st;
    }
    *out = s;
    return PHI3C_OK;
}

void phi3c_session_free(phi3c_session *session) {
    if (!session) return;
    pthread_mutex_lock(&session->model->lock);
    p3_session_free(session->s);
    pthread_mutex_unlock(&session->model->lock);
    p3_free(session->scratch);
    p3_free(session->chat_text);
    p3_free(session);
}

phi3c_status phi3c_session_set_lookup(phi3c_session *session, int lookup, phi3c_error *err) {
    if (lookup < 0 || lookup > P3_LOOKUP_MAX)
        return p3_fail(err, PHI3C_ERR_INVALID_ARG, "lookup %d is not in 0..%d", lookup,
                       P3_LOOKUP_MAX);
    session->lookup.max_draft = lookup; /* what was learned about drafts and costs stays */
    return PHI3C_OK;
}

void phi3c_session_reset(phi3c_session *session) {
    p3_session_reset(session->s);
    p3_api_chat_forget(session);
}

p3_status p3_api_feed(phi3c_session *session, const int32_t *ids, int n, float *logits,
                      p3_error *err) {
    pthread_mutex_lock(&session->model->lock);
    p3_status st = p3_session_feed(session->s, ids, n, logits, err);
    pthread_mutex_unlock(&session->model->lock);
    return st;
}
int phi3c_session_n_past(const phi3c_session *session) {
    return session->s->n_past;
}
int phi3c_session_n_ctx(const phi3c_session *session) {
    return session->s->n_ctx;
}
const float *phi3c_session_logits(const phi3c_session *session) {
    return session->s->host_logits;
}

void phi3c_session_get_stats(const phi3c_session *session, phi3c_session_stats *stats) {
    stats->n_prefilled = session->s->n_prefilled;
    stats->n_reprefills = session->s->n_reprefills;
    stats->n_drafted = session->lookup.n_drafted;
    stats->n_accepted = session->lookup.n_accepted;
}

phi3c_status phi3c_session_feed_tokens(phi3c_session *session, const int32_t *ids, size_t n,
                                       float *logits, phi3c_error *err) {
    if (n > (size_t)session->s->n_ctx)
        return p3_fail(err, PHI3C_ERR_CONTEXT_FULL,
                       "context full: %zu tokens exceed the context of %d positions", n,
                       session->s->n_ctx);
    return p3_api_feed(session, ids, (int)n, logits, err);
}

p3_sampler_options p3_api_sampler_options(const phi3c_sampler_params *p) {
    p3_sampler_options o = {.temperature = p->temperature,
                            .top_k = p->top_k,
                            .top_p = p->top_p,
                            .min_p = p->min_p,
                            .repeat_penalty = p->repeat_penalty,
                            .repeat_last_n = p->repeat_last_n,
                            .seed = p->seed};
    return o;
}

phi3c_sampler_params phi3c_sampler_params_default(void) {
    p3_sampler_options o;
    p3_sampler_options_init(&o);
    phi3c_sampler_params p = {.temperature = o.temperature,
                              .top_k = o.top_k,
                              .top_p = o.top_p,
                              .min_p = o.min_p,
                              .repeat_penalty = o.repeat_penalty,
                              .repeat_last_n = o.repeat_last_n,
                              .seed = o.seed};
    return p;
}

phi3c_sampler_params phi3c_sampler_params_greedy(void) {
    phi3c_sampler_params p = phi3c_sampler_params_default();
    p.temperature = 0.0f;
    return p;
}

/* The config's stop ids (generation_config.json / GGUF) and the tokenizer's (its eos, <|end|>,
 * <|endoftext|>), so an instruct model stops at the end of its turn either way. */
static bool is_stop_id(const void *user, int32_t id) {
    const phi3c_model *model = user;
    const p3_config *c = &model->m->cfg;
    for (int i = 0; i < c->n_stop_ids; i++)
        if (c->stop_ids[i] == id) return true;
    return model->tok && p3_tokenizer_is_stop(model->tok, id);
}

/* Tokens picked by a lookup verification and not reported yet: ids[pos..n); all but the last are
 * accepted drafts already in the cache, the last is the model's own next token (not fed). */
typedef struct pick_queue {
    int32_t ids[P3_LOOKUP_MAX + 1];
    int n, pos;
    float *rows; /* the verification's logit rows, (max_draft + 1) x vocab */
} pick_queue;

/* Drops the accepted drafts that were not reported (the caller stopped before them), so the
 * cache holds exactly what the caller saw, and restores the logits of its last position. */
static p3_status drop_unreported(p3_session *s, pick_queue *q, p3_error *err) {
    int unreported = q->n - 1 - q->pos;
    if (unreported <= 0) return PHI3C_OK;
    size_t row_bytes = (size_t)s->model->cfg.vocab_size * sizeof(float);
    memcpy(s->host_logits, q->rows + (size_t)q->pos * (row_bytes / sizeof(float)), row_bytes);
    q->n = q->pos + 1;
    return p3_session_truncate(s, s->n_past - unreported, err);
}

/* Drafts up to `cap` tokens to follow the history plus `token` (history[n_past] is free: the
 * callers checked n_past < n_ctx). */
static int draft_after(phi3c_session *session, int32_t token, int cap, int32_t *draft) {
    p3_session *s = session->s;
    s->history[s->n_past] = token;
    return p3_lookup_draft(&session->lookup, s->history, s->n_past + 1,
                           P3_MIN(cap, p3_lookup_room(s)), draft);
}

/* Feeds the reported token id, with a draft to verify when lookup finds one (at most `left`
 * tokens: the rest of max_tokens); the picks of a verification go to the queue. */
static p3_status feed_next(phi3c_session *session, p3_sampler *smp, int32_t id, int left,
                           pick_queue *q, phi3c_generate_result *r, p3_error *err) {
    p3_session *s = session->s;
    int32_t draft[P3_LOOKUP_MAX];
    int k = q->rows ? draft_after(session, id, left, draft) : 0;
    r->n_forwards++;
    double t0 = p3_time_now();
    if (k == 0) {
        p3_status st = p3_session_feed(s, &id, 1, NULL, err);
        if (q->rows) p3_lookup_update(&session->lookup, 0, 0, p3_time_now() - t0);
        return st;
    }
    double feed_seconds = 0;
    p3_status st = p3_lookup_verify(s, smp, id, draft, k, is_stop_id, session->model, q->rows,
                                    session->scratch, q->ids, &q->n, &feed_seconds, err);
    if (st != PHI3C_OK) return st;
    q->pos = 0;
    p3_lookup_update(&session->lookup, k, q->n - 1, feed_seconds);
    r->n_drafted += k;
    r->n_accepted += q->n - 1;
    return PHI3C_OK;
}

/* Sets up the lookup queue when the session drafts (rows NULL otherwise). */
static p3_status queue_begin(phi3c_session *session, pick_queue *q, p3_error *err) {
    memset(q, 0, sizeof *q);
    int max = session->lookup.max_draft;
    if (max <= 0) return PHI3C_OK;
    p3_session *s = session->s;
    pthread_mutex_lock(&session->model->lock); /* a device buffer may be reallocated */
    p3_status st = p3_session_reserve_logits(s, P3_MIN(max + 1, s->n_batch), err);
    pthread_mutex_unlock(&session->model->lock);
    if (st != PHI3C_OK) return st;
    size_t bytes = (size_t)(max + 1) * (size_t)s->model->cfg.vocab_size * sizeof(float);
    q->rows = p3_malloc(bytes);
    if (!q->rows) return p3_fail(err, PHI3C_ERR_NOMEM, "out of memory for lookup logits");
    memset(q->rows, 0, bytes); /* touched now, not inside the timed verifications */
    return PHI3C_OK;
}

phi3c_status phi3c_generate(phi3c_session *session, const phi3c_sampler_params *sampler,
                            int max_tokens, phi3c_token_fn on_token, void *user,
                            phi3c_generate_result *result, phi3c_error *err) {
    phi3c_generate_result r;
    memset(&r, 0, sizeof r);
    if (result) *result = r;
    p3_session *s = session->s;
    const p3_config *c = &s->model->cfg;
    if (s->n_past == 0) return p3_fail(err, PHI3C_ERR_INVALID_ARG, "generate: feed a prompt first");
    phi3c_sampler_params greedy = phi3c_sampler_params_greedy();
    p3_sampler_options so = p3_api_sampler_options(sampler ? sampler : &greedy);
    p3_sampler *smp = NULL;
    p3_status st = p3_sampler_create(&so, c->vocab_size, &smp, err);
    if (st != PHI3C_OK) return st;
    p3_detok_stream stream;
    bool text = false;
    pick_queue q;
    st = queue_begin(session, &q, err);
    if (st == PHI3C_OK) st = p3_api_stream_begin(session, &stream, &text, err);
    if (st != PHI3C_OK) {
        p3_free(q.rows);
        p3_sampler_free(smp);
        return st;
    }
    double t0 = p3_time_now();
    r.stop = PHI3C_STOP_LENGTH;
    while (r.n_generated < max_tokens) {
        int32_t id;
        bool fed = false; /* an accepted draft: already in the cache */
        if (q.pos < q.n) {
            id = q.ids[q.pos++];
            fed = q.pos < q.n;
        } else {
            /* the logits of the last fed position predict the next token */
            memcpy(session->scratch, s->host_logits, (size_t)c->vocab_size * sizeof(float));
            id = p3_sampler_pick(smp, session->scratch, s->history, s->n_past);
        }
        if (is_stop_id(session->model, id)) {
            r.stop = PHI3C_STOP_EOS;
            break;
        }
        r.n_generated++;
        if (r.n_generated == 1) r.first_token_seconds = p3_time_now() - t0;
        const char *piece = NULL;
        size_t piece_len = 0;
        if (text && (st = p3_detok_stream_push(&stream, id, &piece, &piece_len, err)) != PHI3C_OK)
            break;
        p3_api_chat_extend(session, piece, piece_len);
        bool go_on = !on_token || on_token(user, id, piece, piece_len);
        /* every reported token is fed (the one the callback stops at too), so the cache holds
         * exactly the conversation the caller saw */
        if (!fed) {
            if (s->n_past >= s->n_ctx) {
                r.stop = PHI3C_STOP_CONTEXT_FULL;
                break;
            }
            int left = go_on ? max_tokens - r.n_generated : 0;
            pthread_mutex_lock(&session->model->lock);
            st = feed_next(session, smp, id, left, &q, &r, err);
            pthread_mutex_unlock(&session->model->lock);
            if (st != PHI3C_OK) break;
        }
        if (!go_on) {
            r.stop = PHI3C_STOP_CALLBACK;
            break;
        }
    }
    if (st == PHI3C_OK) st = drop_unreported(s, &q, err);
    if (text) {
        const char *rest = NULL;
        size_t rest_len = 0;
        p3_detok_stream_finish(&stream, &rest, &rest_len);
        if (rest_len) p3_api_chat_forget(session); /* bytes of a token the text cannot show */
        if (st == PHI3C_OK && rest_len && on_token) on_token(user, -1, rest, rest_len);
        p3_detok_stream_free(&stream);
    }
    r.seconds = p3_time_now() - t0;
    p3_free(q.rows);
    p3_sampler_free(smp);
    if (result) *result = r;
    return st;
}

/* ---- Step-by-step generation and batches (for servers running many sessions at once). */

struct phi3c_stream {
    phi3c_session *session;
    p3_sampler *smp;
    p3_detok_stream detok;
    bool text;    /* the model has a tokenizer: pieces are produced */
    pick_queue q; /* picks of the last verification not returned yet (q.rows unused) */
};

phi3c_status phi3c_stream_begin(phi3c_session *session, const phi3c_sampler_params *sampler,
                                phi3c_stream **out, phi3c_error *err) {
    if (!session || !out) return p3_fail(err, PHI3C_ERR_INVALID_ARG, "stream_begin: NULL argument");
    *out = NULL;
    phi3c_stream *g = p3_calloc(1, sizeof *g);
    if (!g) return p3_fail(err, PHI3C_ERR_NOMEM, "out of memory for the stream");
    g->session = session;
    phi3c_sampler_params greedy = phi3c_sampler_params_greedy();
    p3_sampler_options so = p3_api_sampler_options(sampler ? sampler : &greedy);
    p3_status st = p3_sampler_create(&so, session->model->m->cfg.vocab_size, &g->smp, err);
    if (st == PHI3C_OK) st = p3_api_stream_begin(session, &g->detok, &g->text, err);
    if (st != PHI3C_OK) {
        p3_sampler_free(g->smp);
        p3_free(g);
        return st;
    }
    *out = g;
    return PHI3C_OK;
}

phi3c_status phi3c_stream_next(phi3c_stream *g, int32_t *token, const char **text, size_t *len,
                               phi3c_error *err) {
    phi3c_session *session = g->session;
    p3_session *s = session->s;
    *token = -1;
    *text = NULL;
    *len = 0;
    if (s->n_past == 0) return p3_fail(err, PHI3C_ERR_INVALID_ARG, "stream: feed a prompt first");
    int32_t id;
    if (g->q.pos < g->q.n) {
        id = g->q.ids[g->q.pos++]; /* picked by phi3c_stream_verify */
    } else {
        /* the logits of the last fed position predict the next token, as in phi3c_generate */
        memcpy(session->scratch, s->host_logits, (size_t)s->model->cfg.vocab_size * sizeof(float));
        id = p3_sampler_pick(g->smp, session->scratch, s->history, s->n_past);
    }
    if (is_stop_id(session->model, id)) return PHI3C_OK;
    if (g->text) {
        p3_status st = p3_detok_stream_push(&g->detok, id, text, len, err);
        if (st != PHI3C_OK) return st;
    }
    p3_api_chat_extend(session, *text, *len);
    *token = id;
    return PHI3C_OK;
}

int phi3c_stream_draft(phi3c_stream *g, int32_t token, int cap, int32_t *draft) {
    const p3_session *s = g->session->s;
    if (!draft || token < 0 || s->n_past >= s->n_ctx || g->q.pos < g->q.n) return 0;
    return draft_after(g->session, token, cap, draft);
}

phi3c_status phi3c_stream_verify(phi3c_stream *g, const int32_t *draft, int k, float *rows,
                                 double seconds, int *n_accepted, phi3c_error *err) {
    phi3c_session *session = g->session;
    if (n_accepted) *n_accepted = 0;
    if (k == 0) {
        p3_lookup_update(&session->lookup, 0, 0, seconds);
        return PHI3C_OK;
    }
    if (k < 0 || !draft || !rows || g->q.pos < g->q.n)
        return p3_fail(err, PHI3C_ERR_INVALID_ARG, "stream_verify: bad draft or picks pending");
    p3_status st = p3_lookup_pick(session->s, g->smp, draft, k, is_stop_id, session->model, rows,
                                  session->scratch, g->q.ids, &g->q.n, err);
    if (st != PHI3C_OK) return st;
    g->q.pos = 0;
    p3_lookup_update(&session->lookup, k, g->q.n - 1, seconds);
    if (n_accepted) *n_accepted = g->q.n - 1;
    return PHI3C_OK;
}

void phi3c_stream_finish(phi3c_stream *g, const char **text, size_t *len) {
    *text = NULL;
    *len = 0;
    if (!g->text) return;
    p3_detok_stream_finish(&g->detok, text, len);
    if (*len) p3_api_chat_forget(g->session); /* bytes of a token the text cannot show */
}

void phi3c_stream_free(phi3c_stream *g) {
    if (!g) return;
    if (g->text) p3_detok_stream_free(&g->detok);
    p3_sampler_free(g->smp);
    p3_free(g);
}

struct phi3c_batch {
    phi3c_model *model;
    p3_batch *b;
    p3_batch_seq *seqs; /* [capacity] */
};

phi3c_status phi3c_batch_create(phi3c_model *model, int n_tokens, phi3c_batch **out,
                                phi3c_error *err) {
    if (!model || !out) return p3_fail(err, PHI3C_ERR_INVALID_ARG, "batch_create: NULL argument");
    *out = NULL;
    phi3c_batch *b = p3_calloc(1, sizeof *b);
    if (!b) return p3_fail(err, PHI3C_ERR_NOMEM, "out of memory for the batch");
    b->model = model;
    pthread_mutex_lock(&model->lock);
    p3_status st = p3_batch_create(model->m, n_tokens, &b->b, err);
    pthread_mutex_unlock(&model->lock);
    if (st == PHI3C_OK) {
        b->seqs = p3_calloc((size_t)p3_batch_capacity(b->b), sizeof *b->seqs);
        if (!b->seqs) st = p3_fail(err, PHI3C_ERR_NOMEM, "out of memory for the batch");
    }
    if (st != PHI3C_OK) {
        phi3c_batch_free(b);
        return st;
    }
    *out = b;
    return PHI3C_OK;
}

void phi3c_batch_free(phi3c_batch *batch) {
    if (!batch) return;
    pthread_mutex_lock(&batch->model->lock);
    p3_batch_free(batch->b);
    pthread_mutex_unlock(&batch->model->lock);
    p3_free(batch->seqs);
    p3_free(batch);
}

int phi3c_batch_n_tokens(const phi3c_batch *batch) {
    return p3_batch_capacity(batch->b);
}

phi3c_status phi3c_batch_decode(phi3c_batch *batch, const phi3c_batch_seq *seqs, size_t n_seqs,
                                phi3c_error *err) {
    int cap = p3_batch_capacity(batch->b);
    if (!seqs || n_seqs == 0 || n_seqs > (size_t)cap)
        return p3_fail(err, PHI3C_ERR_INVALID_ARG, "batch: %zu sequences (1..%d)", n_seqs, cap);
    for (size_t i = 0; i < n_seqs; i++) {
        const phi3c_batch_seq *q = &seqs[i];
        if (!q->session || q->session->model != batch->model || q->n > (size_t)cap)
            return p3_fail(err, PHI3C_ERR_INVALID_ARG,
                           "batch: sequence %zu: no session, another model's, or %zu tokens "
                           "beyond the batch of %d",
                           i, q->n, cap);
        batch->seqs[i] = (p3_batch_seq){q->session->s, q->ids, (int)q->n, q->logits};
    }
    pthread_mutex_lock(&batch->model->lock);
    p3_status st = p3_batch_feed(batch->b, batch->seqs, (int)n_seqs, err);
    pthread_mutex_unlock(&batch->model->lock);
    return st;
}
