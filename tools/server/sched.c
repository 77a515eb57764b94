/* sched.c: the server's scheduler: --parallel slots (one phi3c session each), a bounded queue,
 * and the step loop that advances every busy slot in one phi3c_batch_decode per step (decode
 * tokens first, each with its prompt-lookup draft when the request drafts, then prompt chunks in
 * the room left), so requests join the running batch between steps and a client that went away
 * frees its slot at the next step. */
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct slot {
    phi3c_session *s;
    phi3c_stream *g;
    request *req;
    int32_t *feed; /* prompt tokens still to feed: feed[fed..n_feed) */
    size_t n_feed, fed;
    int32_t next;                          /* picked, fed in the next step; -1 none */
    int32_t fed_ids[1 + PHI3C_LOOKUP_MAX]; /* next and its draft, fed together */
    int k;                                 /* draft tokens fed in this step */
    float *rows; /* [1 + rows_cap] x vocab: the logits of next and its draft */
    int rows_cap;
} slot;

struct server {
    server_opts o;
    pthread_mutex_t mu;
    pthread_cond_t work; /* the scheduler waits here for requests */
    bool stopping, ready;
    char load_error[600];
    phi3c_model *model;
    phi3c_batch *batch;
    slot *slots;
    request **queue; /* FIFO ring of o.queue */
    int q_head, q_len;
    int n_ctx;
    /* metrics */
    long long n_requests, n_prompt_tokens, n_generated_tokens;
    long long n_decode_feeds, n_drafted, n_accepted; /* a slot's decode token (and draft) fed */
    double busy_seconds;
    int n_active;
};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

server *server_new(const server_opts *o) {
    server *srv = calloc(1, sizeof *srv);
    if (!srv) return NULL;
    srv->o = *o;
    srv->slots = calloc((size_t)o->parallel, sizeof *srv->slots);
    srv->queue = calloc((size_t)(o->queue > 0 ? o->queue : 1), sizeof *srv->queue);
    if (!srv->slots || !srv->queue) {
        free(srv->slots);
        free(srv->queue);
        free(srv);
        return NULL;
    }
    pthread_mutex_init(&srv->mu, NULL);
    pthread_cond_init(&srv->work, NULL);
    return srv;
}

void server_free(server *srv) {
    if (!srv) return;
    for (int i = 0; i < srv->o.parallel; i++) {
        phi3c_stream_free(srv->slots[i].g);
        phi3c_session_free(srv->slots[i].s);
        free(srv->slots[i].feed);
        free(srv->slots[i].rows);
    }
    phi3c_batch_free(srv->batch);
    phi3c_model_free(srv->model);
    pthread_mutex_destroy(&srv->mu);
    pthread_cond_destroy(&srv->work);
    free(srv->slots);
    free(srv->queue);
    free(srv);
}

void server_lock(server *srv) {
    pthread_mutex_lock(&srv->mu);
}
void server_unlock(server *srv) {
    pthread_mutex_unlock(&srv->mu);
}
void server_wait(server *srv, request *req) {
    pthread_cond_wait(&req->cv, &srv->mu);
}
void server_wait_for(server *srv, request *req, double seconds) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    long long ns = (long long)until.tv_nsec + (long long)(seconds * 1e9);
    until.tv_sec += (time_t)(ns / 1000000000LL);
    until.tv_nsec = (long)(ns % 1000000000LL);
    pthread_cond_timedwait(&req->cv, &srv->mu, &until);
}
void server_cancel(server *srv, request *req) {
    server_lock(srv);
    req->gone = true;
    pthread_cond_signal(&srv->work);
    server_unlock(srv);
}

bool server_ready(server *srv) {
    server_lock(srv);
    bool r = srv->ready;
    server_unlock(srv);
    return r;
}
const char *server_load_error(server *srv) {
    return srv->load_error[0] ? srv->load_error : NULL;
}
phi3c_model *server_model(server *srv) {
    return server_ready(srv) ? srv->model : NULL;
}
const server_opts *server_options(server *srv) {
    return &srv->o;
}
int server_n_ctx(server *srv) {
    return srv->n_ctx;
}

static void request_free(request *req) {
    for (size_t i = 0; i < req->n_msgs; i++) {
        free((char *)req->msgs[i].role);
        free((char *)req->msgs[i].content);
    }
    free(req->msgs);
    free(req->prompt);
    for (size_t i = 0; i < req->n_stops; i++) free(req->stops[i]);
    free(req->stops);
    sb_free(&req->text);
    sb_free(&req->sse);
    pthread_cond_destroy(&req->cv);
    free(req);
}

void request_release(server *srv, request *req) {
    server_lock(srv);
    bool last = --req->refs == 0;
    server_unlock(srv);
    if (last) request_free(req);
}

bool server_submit(server *srv, request *req) {
    server_lock(srv);
    bool ok = !srv->stopping && srv->q_len < srv->o.queue;
    if (ok) {
        req->refs++;
        req->t_queued = now();
        srv->queue[(srv->q_head + srv->q_len++) % srv->o.queue] = req;
        srv->n_requests++;
        pthread_cond_signal(&srv->work);
    }
    server_unlock(srv);
    return ok;
}

void server_stop(server *srv) {
    server_lock(srv);
    srv->stopping = true;
    pthread_cond_broadcast(&srv->work);
    server_unlock(srv);
}

/* ---- finishing requests (lock held) */

static const char *model_id(server *srv) {
    return srv->o.alias;
}

/* Ends a request: its last stream chunks, or the error; wakes its connection. */
static void finish_locked(server *srv, request *req, const char *reason) {
    if (req->done) return;
    req->finish = reason;
    req->done = true;
    if (req->stream && req->err_status) {
        sb_puts(&req->sse, "data: {\"error\":{\"message\":");
        sb_json_str(&req->sse, req->err_msg, strlen(req->err_msg));
        sb_printf(&req->sse, ",\"type\":\"server_error\",\"code\":%d}}\n\ndata: [DONE]\n\n",
                  req->err_status);
    } else if (req->stream) {
        route_stream_end(req, model_id(srv));
    }
    pthread_cond_broadcast(&req->cv);
}

static void fail_locked(server *srv, request *req, int status, const char *msg) {
    req->err_status = status;
    snprintf(req->err_msg, sizeof req->err_msg, "%s", msg);
    finish_locked(srv, req, "stop");
}

static void free_slot(server *srv, slot *sl) {
    phi3c_stream_free(sl->g);
    sl->g = NULL;
    free(sl->feed);
    sl->feed = NULL;
    sl->n_feed = sl->fed = 0;
    sl->next = -1;
    if (sl->req && --sl->req->refs == 0) {
        /* the connection is gone too: nobody else holds it */
        request *r = sl->req;
        sl->req = NULL;
        server_unlock(srv);
        request_free(r);
        server_lock(srv);
    }
    sl->req = NULL;
    srv->n_active--;
}

/* ---- admitting requests */

/* The free slot whose cache shares the most with the prompt is not known without tokenizing;
 * the first free slot is used, and phi3c_chat_prepare / phi3c_session_keep_prefix reuse what
 * its cache holds. */
static slot *free_slot_for(server *srv) {
    for (int i = 0; i < srv->o.parallel; i++)
        if (!srv->slots[i].req) return &srv->slots[i];
    return NULL;
}

/* Sets the slot's lookup for the request: the session's draft length and room for the logits of
 * a token and its draft. */
static phi3c_status slot_lookup(server *srv, slot *sl, const request *req, phi3c_error *err) {
    int lookup = req->lookup >= 0 ? req->lookup : srv->o.lookup;
    if (lookup > sl->rows_cap) {
        size_t vocab = (size_t)phi3c_model_vocab_size(srv->model);
        float *rows = realloc(sl->rows, (size_t)(1 + lookup) * vocab * sizeof *rows);
        if (!rows) {
            snprintf(err->message, sizeof err->message, "out of memory for lookup logits");
            return PHI3C_ERR_NOMEM;
        }
        sl->rows = rows;
        sl->rows_cap = lookup;
    }
    return phi3c_session_set_lookup(sl->s, lookup, err);
}

/* Prepares the slot's session for the request (outside the lock: tokenizing and rendering). */
static bool start_request(server *srv, slot *sl, request *req, char *why, size_t why_len) {
    phi3c_error err = {0};
    phi3c_status st = slot_lookup(srv, sl, req, &err);
    if (st != PHI3C_OK) {
        snprintf(why, why_len, "%s", err.message);
        return false;
    } else if (req->chat) {
        phi3c_chat_params cp = {.reserve = 1, .drop_turns = false};
        phi3c_chat_turn turn;
        st = phi3c_chat_prepare(sl->s, req->msgs, req->n_msgs, &cp, &turn, &err);
        if (st == PHI3C_OK) {
            sl->feed = turn.ids;
            sl->n_feed = turn.n_ids;
            req->n_prompt = turn.n_prompt;
        }
    } else {
        int kept = phi3c_session_keep_prefix(sl->s, req->prompt, req->n_prompt);
        sl->n_feed = req->n_prompt - (size_t)kept;
        sl->feed = malloc(sl->n_feed * sizeof *sl->feed);
        st = sl->feed ? PHI3C_OK : PHI3C_ERR_NOMEM;
        if (sl->feed) memcpy(sl->feed, req->prompt + kept, sl->n_feed * sizeof *sl->feed);
        snprintf(err.message, sizeof err.message, "out of memory");
    }
    if (st != PHI3C_OK) snprintf(why, why_len, "%s", err.message);
    sl->fed = 0;
    sl->next = -1;
    return st == PHI3C_OK;
}

/* Moves queued requests into free slots; drops the ones whose client left while queued. */
static void admit(server *srv) {
    for (;;) {
        server_lock(srv);
        slot *sl = srv->q_len ? free_slot_for(srv) : NULL;
        request *req = NULL;
        if (sl) {
            req = srv->queue[srv->q_head];
            srv->q_head = (srv->q_head + 1) % srv->o.queue;
            srv->q_len--;
            if (req->gone) {
                bool last = --req->refs == 0;
                server_unlock(srv);
                if (last) request_free(req);
                continue;
            }
            sl->req = req;
            srv->n_active++;
        }
        server_unlock(srv);
        if (!sl) return;
        char why[512];
        bool ok = start_request(srv, sl, req, why, sizeof why);
        server_lock(srv);
        if (!ok) {
            fail_locked(srv, req, 400, why);
            free_slot(srv, sl);
        } else {
            srv->n_prompt_tokens += (long long)req->n_prompt;
            req->started = true;
            if (req->stream) route_stream_delta(req, model_id(srv), NULL, 0); /* the role chunk */
            pthread_cond_broadcast(&req->cv);
        }
        server_unlock(srv);
    }
}

/* ---- generated text: stop strings and what may be streamed (lock held) */

/* Bytes at the end of text that could be the start of a stop string (held back). */
static size_t stop_prefix_len(const request *req) {
    size_t best = 0, len = req->text.len;
    for (size_t i = 0; i < req->n_stops; i++) {
        size_t sl = strlen(req->stops[i]);
        for (size_t k = sl > 1 ? sl - 1 : 0; k > best; k--)
            if (k <= len && memcmp(req->text.data + len - k, req->stops[i], k) == 0) {
                best = k;
                break;
            }
    }
    return best;
}

/* Cuts the text at the first stop string that appears from `from` on; true when one did. */
static bool cut_at_stop(request *req, size_t from) {
    size_t cut = req->text.len;
    bool found = false;
    for (size_t i = 0; i < req->n_stops; i++) {
        size_t sl = strlen(req->stops[i]);
        size_t start = from > sl ? from - sl : 0;
        for (size_t p = start; p + sl <= req->text.len; p++)
            if (memcmp(req->text.data + p, req->stops[i], sl) == 0) {
                if (p < cut) cut = p;
                found = true;
                break;
            }
    }
    if (found) {
        req->text.len = cut;
        if (req->text.data) req->text.data[cut] = '\0';
    }
    return found;
}

static void emit(server *srv, request *req, bool final) {
    size_t safe = req->text.len - (final ? 0 : stop_prefix_len(req));
    if (safe > req->emitted) {
        if (req->stream) {
            route_stream_delta(req, model_id(srv), req->text.data + req->emitted,
                               safe - req->emitted);
            pthread_cond_broadcast(&req->cv); /* its connection writes the chunk now */
        }
        req->emitted = safe;
    }
}

/* Takes the token picked for a slot: text, stop strings, limits. `ahead`: positions the cache holds
 * beyond this token's (kept lookup drafts not taken yet). Lock held. */
static void take_token(server *srv, slot *sl, int32_t id, const char *piece, size_t len,
                       int ahead) {
    request *req = sl->req;
    if (req->gone) return;
    if (id < 0) {
        emit(srv, req, true);
        finish_locked(srv, req, "stop");
        return;
    }
    if (req->n_generated++ == 0) req->t_first = now();
    srv->n_generated_tokens++;
    size_t before = req->text.len;
    sb_add(&req->text, piece ? piece : "", piece ? len : 0);
    if (req->n_stops && cut_at_stop(req, before)) {
        emit(srv, req, true);
        finish_locked(srv, req, "stop");
        return;
    }
    int n_past = phi3c_session_n_past(sl->s) - ahead;
    bool at_max = req->max_tokens > 0 && req->n_generated >= req->max_tokens;
    if (at_max || n_past + 1 > phi3c_session_n_ctx(sl->s)) {
        const char *rest;
        size_t rest_len;
        phi3c_stream_finish(sl->g, &rest, &rest_len);
        sb_add(&req->text, rest ? rest : "", rest ? rest_len : 0);
        emit(srv, req, true);
        finish_locked(srv, req, "length");
        return;
    }
    emit(srv, req, false);
    sl->next = id;
}

/* ---- the step */

typedef struct step_plan {
    phi3c_batch_seq seqs[256];
    slot *of[256];
    bool decode[256]; /* the slot's picked token (and draft), not a prompt chunk */
    size_t n;
} step_plan;

/* Frees the slots whose request is done or whose client went away. */
static void reap(server *srv) {
    server_lock(srv);
    for (int i = 0; i < srv->o.parallel; i++) {
        slot *sl = &srv->slots[i];
        if (!sl->req) continue;
        if (sl->req->gone && !sl->req->done) finish_locked(srv, sl->req, "stop");
        if (sl->req->done) free_slot(srv, sl);
    }
    server_unlock(srv);
}

/* The slot's picked token with a lookup draft of at most `cap` tokens (and no more than the
 * request may still generate; none when its session does not draft). */
static phi3c_batch_seq decode_seq(slot *sl, int cap) {
    const request *req = sl->req;
    if (req->max_tokens > 0 && req->max_tokens - req->n_generated < cap)
        cap = req->max_tokens - req->n_generated;
    sl->fed_ids[0] = sl->next;
    sl->k = phi3c_stream_draft(sl->g, sl->next, cap, sl->fed_ids + 1);
    return (phi3c_batch_seq){sl->s, sl->fed_ids, (size_t)(1 + sl->k), sl->k ? sl->rows : NULL};
}

/* Decode tokens first (one each, drafts in the room the others leave), then prompt chunks in the
 * room left. */
static void plan_step(server *srv, step_plan *p) {
    int room = phi3c_batch_n_tokens(srv->batch), waiting = 0;
    p->n = 0;
    for (int i = 0; i < srv->o.parallel; i++)
        waiting += srv->slots[i].req && srv->slots[i].next >= 0;
    for (int i = 0; i < srv->o.parallel && room > 0; i++) {
        slot *sl = &srv->slots[i];
        if (!sl->req || sl->next < 0) continue;
        waiting--;
        p->seqs[p->n] = decode_seq(sl, room - 1 - waiting);
        p->decode[p->n] = true;
        p->of[p->n++] = sl;
        room -= (int)p->seqs[p->n - 1].n;
    }
    for (int i = 0; i < srv->o.parallel && room > 0; i++) {
        slot *sl = &srv->slots[i];
        if (!sl->req || sl->fed >= sl->n_feed) continue;
        size_t k = sl->n_feed - sl->fed < (size_t)room ? sl->n_feed - sl->fed : (size_t)room;
        p->seqs[p->n] = (phi3c_batch_seq){sl->s, sl->feed + sl->fed, k, NULL};
        p->decode[p->n] = false;
        p->of[p->n++] = sl;
        room -= (int)k;
    }
}

/* After a step: the slot's kept drafts (if it drafted), then its next token, each taken as it
 * would be one step at a time. */
static phi3c_status advance_slot(server *srv, slot *sl, bool decoded, size_t n_fed, double seconds,
                                 phi3c_error *err) {
    if (!decoded) sl->fed += n_fed;
    sl->next = -1;
    if (sl->fed < sl->n_feed) return PHI3C_OK;
    /* the stream starts once the prompt is in: its text decoder looks at the last token */
    phi3c_status st = sl->g ? PHI3C_OK : phi3c_stream_begin(sl->s, &sl->req->sampler, &sl->g, err);
    int kept = 0;
    if (st == PHI3C_OK && decoded) /* k = 0: the step's time, what drafts are measured against */
        st = phi3c_stream_verify(sl->g, sl->fed_ids + 1, sl->k, sl->rows, seconds, &kept, err);
    if (st != PHI3C_OK) return st;
    server_lock(srv);
    if (decoded) {
        srv->n_decode_feeds++;
        srv->n_drafted += sl->k, srv->n_accepted += kept;
        sl->req->n_drafted += sl->k, sl->req->n_accepted += kept;
    }
    server_unlock(srv);
    for (int j = 0; j <= kept; j++) {
        int32_t id;
        const char *piece;
        size_t len;
        if ((st = phi3c_stream_next(sl->g, &id, &piece, &len, err)) != PHI3C_OK) return st;
        server_lock(srv);
        take_token(srv, sl, id, piece, len, kept - j);
        bool over = sl->req->done || sl->req->gone;
        server_unlock(srv);
        if (over) break;
    }
    return PHI3C_OK;
}

static void run_step(server *srv, step_plan *p) {
    phi3c_error err = {0};
    double t0 = now();
    phi3c_status st = phi3c_batch_decode(srv->batch, p->seqs, p->n, &err);
    double seconds = now() - t0;
    for (size_t i = 0; i < p->n && st == PHI3C_OK; i++)
        st = advance_slot(srv, p->of[i], p->decode[i], p->seqs[i].n, seconds, &err);
    server_lock(srv);
    srv->busy_seconds += now() - t0;
    for (size_t i = 0; i < p->n && st != PHI3C_OK; i++)
        fail_locked(srv, p->of[i]->req, 500, err.message);
    server_unlock(srv);
    if (st != PHI3C_OK) /* the slots' caches may be inconsistent: start them afresh */
        for (size_t i = 0; i < p->n; i++) phi3c_session_reset(p->of[i]->s);
}

static bool load(server *srv) {
    phi3c_error err = {0};
    phi3c_model *m = NULL;
    phi3c_status st = phi3c_model_load(srv->o.model_path, &srv->o.model, &m, &err);
    if (st == PHI3C_OK && !phi3c_model_has_tokenizer(m))
        st = PHI3C_ERR_UNSUPPORTED,
        snprintf(err.message, sizeof err.message, "%s has no tokenizer", srv->o.model_path);
    phi3c_session_params sp = phi3c_session_params_default();
    sp.n_ctx = srv->o.n_ctx;
    for (int i = 0; st == PHI3C_OK && i < srv->o.parallel; i++) {
        st = phi3c_session_create(m, &sp, &srv->slots[i].s, &err);
        srv->slots[i].next = -1;
    }
    int n_batch = srv->o.n_batch > 0 ? srv->o.n_batch : 256;
    if (n_batch < srv->o.parallel) n_batch = srv->o.parallel;
    if (n_batch > 256) n_batch = 256;
    if (st == PHI3C_OK) st = phi3c_batch_create(m, n_batch, &srv->batch, &err);
    server_lock(srv);
    srv->model = m;
    if (st == PHI3C_OK) {
        srv->n_ctx = phi3c_session_n_ctx(srv->slots[0].s);
        srv->ready = true;
    } else {
        snprintf(srv->load_error, sizeof srv->load_error, "%s", err.message);
    }
    server_unlock(srv);
    return st == PHI3C_OK;
}

/* Ends everything still running or queued at shutdown. */
static void drain(server *srv) {
    server_lock(srv);
    for (int i = 0; i < srv->o.parallel; i++) {
        slot *sl = &srv->slots[i];
        if (!sl->req) continue;
        emit(srv, sl->req, true);
        finish_locked(srv, sl->req, "length");
        free_slot(srv, sl);
    }
    while (srv->q_len) {
        request *req = srv->queue[srv->q_head];
        srv->q_head = (srv->q_head + 1) % srv->o.queue;
        srv->q_len--;
        fail_locked(srv, req, 503, "the server is shutting down");
        if (--req->refs == 0) {
            server_unlock(srv);
            request_free(req);
            server_lock(srv);
        }
    }
    server_unlock(srv);
}

void *server_run(void *arg) {
    server *srv = arg;
    if (!load(srv)) return NULL;
    step_plan *plan = calloc(1, sizeof *plan);
    while (plan) {
        reap(srv);
        admit(srv);
        plan_step(srv, plan);
        server_lock(srv);
        bool stop = srv->stopping;
        if (!stop && plan->n == 0 && srv->q_len == 0) {
            pthread_cond_wait(&srv->work, &srv->mu);
            stop = srv->stopping;
        }
        server_unlock(srv);
        if (stop) break;
        if (plan->n > 0) run_step(srv, plan);
    }
    free(plan);
    drain(srv);
    return NULL;
}

void server_metrics(server *srv, sbuf *out) {
    server_lock(srv);
    double tps = srv->busy_seconds > 0 ? (double)srv->n_generated_tokens / srv->busy_seconds : 0;
    sb_printf(out,
              "# HELP phi3c_requests_total Completion requests accepted.\n"
              "# TYPE phi3c_requests_total counter\nphi3c_requests_total %lld\n"
              "# HELP phi3c_prompt_tokens_total Prompt tokens of started requests.\n"
              "# TYPE phi3c_prompt_tokens_total counter\nphi3c_prompt_tokens_total %lld\n"
              "# HELP phi3c_generated_tokens_total Tokens generated.\n"
              "# TYPE phi3c_generated_tokens_total counter\nphi3c_generated_tokens_total %lld\n"
              "# HELP phi3c_slots_active Slots generating.\n"
              "# TYPE phi3c_slots_active gauge\nphi3c_slots_active %d\n"
              "# HELP phi3c_requests_queued Requests waiting for a slot.\n"
              "# TYPE phi3c_requests_queued gauge\nphi3c_requests_queued %d\n"
              "# HELP phi3c_tokens_per_second Generated tokens per second of busy time.\n"
              "# TYPE phi3c_tokens_per_second gauge\nphi3c_tokens_per_second %.3f\n"
              "# HELP phi3c_decode_feeds_total A slot's picked token fed to the model (with its "
              "lookup draft, if any); generated / feeds = tokens per forward pass.\n"
              "# TYPE phi3c_decode_feeds_total counter\nphi3c_decode_feeds_total %lld\n"
              "# HELP phi3c_lookup_drafted_tokens_total Prompt-lookup draft tokens verified.\n"
              "# TYPE phi3c_lookup_drafted_tokens_total counter\n"
              "phi3c_lookup_drafted_tokens_total %lld\n"
              "# HELP phi3c_lookup_accepted_tokens_total Prompt-lookup draft tokens kept.\n"
              "# TYPE phi3c_lookup_accepted_tokens_total counter\n"
              "phi3c_lookup_accepted_tokens_total %lld\n",
              srv->n_requests, srv->n_prompt_tokens, srv->n_generated_tokens, srv->n_active,
              srv->q_len, tps, srv->n_decode_feeds, srv->n_drafted, srv->n_accepted);
    server_unlock(srv);
}
