/* sched.c: the server's scheduler: --parallel slots (one phi3c session each), a bounded queue,
 * and the step loop that advances every busy slot in one phi3c_batch_decode per step (decode
 * tokens first, then prompt chunks in the room left), so requests join the running batch between
 * steps and a client that went away frees its slot at the next step. */
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
    int32_t next; /* picked, fed in the next step; -1 none */
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

/* Prepares the slot's session for the request (outside the lock: tokenizing and rendering). */
static bool start_request(slot *sl, request *req, char *why, size_t why_len) {
    phi3c_error err = {0};
    phi3c_status st;
    if (req->chat) {
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
        bool ok = start_request(sl, req, why, sizeof why);
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

/* Takes the token picked for a slot: text, stop strings, limits. Lock held. */
static void take_token(server *srv, slot *sl, int32_t id, const char *piece, size_t len) {
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
    int n_past = phi3c_session_n_past(sl->s);
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

/* Decode tokens first (one each), then prompt chunks in the room left. */
static void plan_step(server *srv, step_plan *p) {
    int room = phi3c_batch_n_tokens(srv->batch);
    p->n = 0;
    for (int i = 0; i < srv->o.parallel && room > 0; i++) {
        slot *sl = &srv->slots[i];
        if (!sl->req || sl->next < 0) continue;
        p->seqs[p->n] = (phi3c_batch_seq){sl->s, &sl->next, 1, NULL};
        p->of[p->n++] = sl;
        room--;
    }
    for (int i = 0; i < srv->o.parallel && room > 0; i++) {
        slot *sl = &srv->slots[i];
        if (!sl->req || sl->fed >= sl->n_feed) continue;
        size_t k = sl->n_feed - sl->fed < (size_t)room ? sl->n_feed - sl->fed : (size_t)room;
        p->seqs[p->n] = (phi3c_batch_seq){sl->s, sl->feed + sl->fed, k, NULL};
        p->of[p->n++] = sl;
        room -= (int)k;
    }
}

static void run_step(server *srv, step_plan *p) {
    phi3c_error err = {0};
    double t0 = now();
    phi3c_status st = phi3c_batch_decode(srv->batch, p->seqs, p->n, &err);
    /* pick the next token of every slot whose prompt is in (outside the lock) */
    int32_t ids[256];
    const char *pieces[256];
    size_t lens[256];
    bool picked[256];
    for (size_t i = 0; i < p->n; i++) {
        slot *sl = p->of[i];
        picked[i] = false;
        if (st != PHI3C_OK) continue;
        if (sl->next < 0) sl->fed += p->seqs[i].n;
        sl->next = -1;
        if (sl->fed < sl->n_feed) continue;
        /* the stream starts once the prompt is in: its text decoder looks at the last token */
        phi3c_status ps = PHI3C_OK;
        if (!sl->g) ps = phi3c_stream_begin(sl->s, &sl->req->sampler, &sl->g, &err);
        if (ps == PHI3C_OK) ps = phi3c_stream_next(sl->g, &ids[i], &pieces[i], &lens[i], &err);
        if (ps != PHI3C_OK) {
            st = ps;
            break;
        }
        picked[i] = true;
    }
    server_lock(srv);
    srv->busy_seconds += now() - t0;
    for (size_t i = 0; i < p->n; i++) {
        slot *sl = p->of[i];
        if (st != PHI3C_OK)
            fail_locked(srv, sl->req, 500, err.message);
        else if (picked[i])
            take_token(srv, sl, ids[i], pieces[i], lens[i]);
    }
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
              "# TYPE phi3c_tokens_per_second gauge\nphi3c_tokens_per_second %.3f\n",
              srv->n_requests, srv->n_prompt_tokens, srv->n_generated_tokens, srv->n_active,
              srv->q_len, tps);
    server_unlock(srv);
}
