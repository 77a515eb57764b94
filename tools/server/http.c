/* http.c: the HTTP side on libmicrohttpd (a thread per connection): headers and bodies collected
 * under deadlines (a watchdog cuts sockets whose headers trickle in) and a size limit, the API
 * key, routing with 404/405, OpenAI-shaped JSON errors, streamed answers (server-sent events)
 * written as the scheduler produces them, and non-streamed ones whose client may leave. */
#include "routes.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* Per socket: when its current request's headers began and whether they are complete. MHD's
 * idle timeout restarts with every byte, so a client sending a header byte now and then would
 * hold its connection for ever; the watchdog shuts down sockets whose headers take longer than
 * --timeout in total (the body has its own total deadline: 408). */
typedef struct sock_watch {
    int fd;
    double t0;
    bool headers_done, cut;
    struct sock_watch *prev, *next;
} sock_watch;

struct http_server {
    struct MHD_Daemon *d;
    server *srv;
    pthread_mutex_t mu; /* guards the list and every sock_watch */
    pthread_cond_t wake;
    bool stopping, watching;
    pthread_t watchdog;
    sock_watch *socks;
};

/* Per request: the body as it arrives. */
typedef struct conn {
    sbuf body;
    bool too_large;
    double t0;
    request *req; /* a non-streaming completion waiting for its answer */
} conn;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static enum MHD_Result send_bytes(struct MHD_Connection *c, unsigned status, const char *type,
                                  const char *data, size_t len, const char *allow,
                                  const char *retry_after) {
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    if (allow) MHD_add_response_header(r, "Allow", allow);
    if (retry_after) MHD_add_response_header(r, "Retry-After", retry_after);
    enum MHD_Result ok = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, const sbuf *b) {
    if (b->failed) return MHD_NO;
    return send_bytes(c, status, "application/json", b->data ? b->data : "", b->len, NULL, NULL);
}

static const char *error_type(unsigned status) {
    switch (status) {
    case 401:
        return "authentication_error";
    case 404:
        return "not_found_error";
    case 503:
        return "server_overloaded";
    default:
        return status >= 500 ? "server_error" : "invalid_request_error";
    }
}

/* {"error": {"message", "type", "param", "code"}} as OpenAI writes it. */
static enum MHD_Result send_error_h(struct MHD_Connection *c, unsigned status, const char *msg,
                                    const char *allow, const char *retry_after) {
    sbuf b = {0};
    sb_puts(&b, "{\"error\":{\"message\":");
    sb_json_str(&b, msg, strlen(msg));
    sb_printf(&b, ",\"type\":\"%s\",\"param\":null,\"code\":%u}}", error_type(status), status);
    enum MHD_Result r =
        b.failed ? MHD_NO
                 : send_bytes(c, status, "application/json", b.data, b.len, allow, retry_after);
    sb_free(&b);
    return r;
}

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, const char *msg) {
    return send_error_h(c, status, msg, NULL, NULL);
}

/* ---- streaming */

typedef struct stream_ctx {
    server *srv;
    request *req;
} stream_ctx;

/* Blocks until the scheduler has bytes for this stream (or it ended). */
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    stream_ctx *sc = cls;
    request *req = sc->req;
    server_lock(sc->srv);
    while (req->sse_pos == req->sse.len && !req->done) server_wait(sc->srv, req);
    size_t n = req->sse.len - req->sse_pos;
    if (n > max) n = max;
    if (n) memcpy(buf, req->sse.data + req->sse_pos, n);
    req->sse_pos += n;
    bool end = n == 0 && req->done;
    server_unlock(sc->srv);
    return end ? MHD_CONTENT_READER_END_OF_STREAM : (ssize_t)n;
}

/* The connection closed (finished, or the client went away mid-stream): the scheduler frees the
 * slot at its next step. */
static void stream_free(void *cls) {
    stream_ctx *sc = cls;
    server_lock(sc->srv);
    sc->req->gone = true;
    server_unlock(sc->srv);
    request_release(sc->srv, sc->req);
    free(sc);
}

static enum MHD_Result send_stream(server *srv, struct MHD_Connection *c, request *req) {
    stream_ctx *sc = malloc(sizeof *sc);
    if (!sc) return MHD_NO;
    *sc = (stream_ctx){srv, req};
    server_lock(srv);
    req->refs++;
    server_unlock(srv);
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, sc, stream_free);
    if (!r) {
        stream_free(sc);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    enum MHD_Result ok = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ok;
}

/* ---- completions */

static request *new_request(bool chat) {
    static unsigned long long counter; /* ids only; guarded by the caller's lock */
    request *req = calloc(1, sizeof *req);
    if (!req) return NULL;
    req->refs = 1;
    pthread_cond_init(&req->cv, NULL);
    req->created = (long long)time(NULL);
    snprintf(req->id, sizeof req->id, "%s-%llx%llx", chat ? "chatcmpl" : "cmpl",
             (unsigned long long)req->created, ++counter);
    return req;
}

/* The client of a non-streamed answer closed its socket (nothing else reads it meanwhile: the
 * connection's thread is here). */
static bool client_gone(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return false;
    char byte;
    ssize_t n = recv(ci->connect_fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* Waits for a non-streamed answer, looking at the socket every 50 ms; false when the client left
 * (the scheduler then frees the slot at its next step). */
static bool wait_answer(server *srv, struct MHD_Connection *c, request *req) {
    server_lock(srv);
    bool gone = false;
    while (!req->done && !gone) {
        server_wait_for(srv, req, 0.05);
        if (!req->done && client_gone(c)) gone = true;
    }
    server_unlock(srv);
    if (gone) server_cancel(srv, req);
    return !gone;
}

static enum MHD_Result completion(server *srv, struct MHD_Connection *c, const js_node *body,
                                  bool chat) {
    phi3c_model *model = server_model(srv);
    server_lock(srv);
    request *req = new_request(chat);
    server_unlock(srv);
    if (!req) return send_error(c, 500, "out of memory");
    char why[600] = "";
    int st = chat ? route_parse_chat(model, server_n_ctx(srv), body, req, why, sizeof why)
                  : route_parse_completion(model, server_n_ctx(srv), body, req, why, sizeof why);
    if (st) {
        request_release(srv, req);
        return send_error(c, (unsigned)st, st == 500 ? "out of memory" : why);
    }
    if (!server_submit(srv, req)) {
        request_release(srv, req);
        return send_error_h(c, 503, "all slots are busy and the queue is full; retry later", NULL,
                            "1");
    }
    /* the answer may take longer than the idle timeout (which is for clients that stall) */
    MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned)0);
    enum MHD_Result r;
    if (req->stream) {
        /* the status is sent at once; a failure inside the scheduler becomes an error event */
        r = send_stream(srv, c, req);
    } else if (!wait_answer(srv, c, req)) {
        r = MHD_NO; /* nobody to answer: close */
    } else {
        sbuf b = {0};
        if (req->err_status) {
            r = send_error(c, (unsigned)req->err_status, req->err_msg);
        } else {
            route_request_json(req, server_options(srv)->alias, &b);
            r = send_json(c, 200, &b);
        }
        sb_free(&b);
    }
    request_release(srv, req);
    return r;
}

/* ---- routing */

typedef enum route_id {
    R_PAGE,
    R_HEALTH,
    R_METRICS,
    R_MODELS,
    R_CHAT,
    R_COMPLETIONS,
    R_TOKENIZE,
    R_DETOKENIZE,
    R_NONE
} route_id;

static const struct {
    const char *path;
    const char *method;
    bool needs_key;
} routes[R_NONE] = {
    [R_PAGE] = {"/", "GET", false},
    [R_HEALTH] = {"/health", "GET", false},
    [R_METRICS] = {"/metrics", "GET", true},
    [R_MODELS] = {"/v1/models", "GET", true},
    [R_CHAT] = {"/v1/chat/completions", "POST", true},
    [R_COMPLETIONS] = {"/v1/completions", "POST", true},
    [R_TOKENIZE] = {"/tokenize", "POST", true},
    [R_DETOKENIZE] = {"/detokenize", "POST", true},
};

static route_id find_route(const char *url) {
    for (int i = 0; i < R_NONE; i++)
        if (strcmp(url, routes[i].path) == 0) return (route_id)i;
    return R_NONE;
}

static bool key_ok(server *srv, struct MHD_Connection *c) {
    const char *key = server_options(srv)->api_key;
    if (!key) return true;
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    return auth && strncmp(auth, "Bearer ", 7) == 0 && strcmp(auth + 7, key) == 0;
}

static enum MHD_Result get_route(server *srv, struct MHD_Connection *c, route_id r) {
    sbuf b = {0};
    enum MHD_Result res;
    if (r == R_PAGE) {
        size_t len;
        const char *page = chat_page(&len);
        return send_bytes(c, 200, "text/html; charset=utf-8", page, len, NULL, NULL);
    }
    if (r == R_HEALTH) {
        if (server_ready(srv))
            return send_bytes(c, 200, "application/json", "{\"status\":\"ok\"}", 15, NULL, NULL);
        const char *why = server_load_error(srv);
        return send_error(c, 503, why ? why : "loading the model");
    }
    if (r == R_METRICS) {
        server_metrics(srv, &b);
        res = b.failed ? MHD_NO
                       : send_bytes(c, 200, "text/plain; version=0.0.4", b.data, b.len, NULL, NULL);
    } else {
        route_models(server_options(srv)->alias, (long long)time(NULL), &b);
        res = send_json(c, 200, &b);
    }
    sb_free(&b);
    return res;
}

static enum MHD_Result post_route(server *srv, struct MHD_Connection *c, route_id r, conn *cn) {
    char why[600] = "";
    js_node *body = js_parse(cn->body.data ? cn->body.data : "", cn->body.len, why, sizeof why);
    if (!body) {
        char msg[700];
        snprintf(msg, sizeof msg, "the body is not valid JSON: %s", why);
        return send_error(c, 400, msg);
    }
    enum MHD_Result res;
    if (r == R_CHAT || r == R_COMPLETIONS) {
        res = completion(srv, c, body, r == R_CHAT);
    } else {
        sbuf b = {0};
        phi3c_model *model = server_model(srv);
        int st = body->type != JS_OBJECT ? (snprintf(why, sizeof why,
                                                     "the body must be a JSON "
                                                     "object"),
                                            400)
                 : r == R_TOKENIZE       ? route_tokenize(model, body, &b, why, sizeof why)
                                         : route_detokenize(model, body, &b, why, sizeof why);
        res = st ? send_error(c, (unsigned)st, why) : send_json(c, 200, &b);
        sb_free(&b);
    }
    js_free(body);
    return res;
}

/* ---- the headers' deadline */

static sock_watch *watch_of(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* done: the headers of the socket's request are in; !done: a request ended, the next one's
 * headers have until --timeout from now. */
static void watch_headers_done(http_server *hs, struct MHD_Connection *c, bool done) {
    pthread_mutex_lock(&hs->mu);
    sock_watch *w = watch_of(c);
    if (w) {
        w->headers_done = done;
        if (!done) w->t0 = now();
    }
    pthread_mutex_unlock(&hs->mu);
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe) {
    http_server *hs = cls;
    pthread_mutex_lock(&hs->mu);
    sock_watch *w = *socket_context;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        w = ci ? calloc(1, sizeof *w) : NULL; /* none: this socket is only under the idle limit */
        if (w) {
            *w = (sock_watch){.fd = ci->connect_fd, .t0 = now(), .next = hs->socks};
            if (hs->socks) hs->socks->prev = w;
            hs->socks = w;
        }
        *socket_context = w;
    } else if (w) { /* closed; MHD closes the descriptor after this returns */
        if (w->prev)
            w->prev->next = w->next;
        else
            hs->socks = w->next;
        if (w->next) w->next->prev = w->prev;
        free(w);
        *socket_context = NULL;
    }
    pthread_mutex_unlock(&hs->mu);
}

/* Every 250 ms: shuts down the sockets whose headers are late (their thread then sees the end
 * of the stream and closes them). Holding the lock keeps each descriptor open meanwhile. */
static void *watchdog(void *arg) {
    http_server *hs = arg;
    double limit = server_options(hs->srv)->timeout;
    pthread_mutex_lock(&hs->mu);
    while (!hs->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 250000000L;
        if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&hs->wake, &hs->mu, &until);
        double t = now();
        for (sock_watch *w = hs->socks; w; w = w->next)
            if (!w->headers_done && !w->cut && t - w->t0 > limit) {
                shutdown(w->fd, SHUT_RDWR);
                w->cut = true;
            }
    }
    pthread_mutex_unlock(&hs->mu);
    return NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls) {
    (void)version;
    http_server *hs = cls;
    server *srv = hs->srv;
    const server_opts *o = server_options(srv);
    conn *cn = *con_cls;
    if (!cn) { /* first call: the headers are complete */
        watch_headers_done(hs, c, true);
        cn = calloc(1, sizeof *cn);
        if (!cn) return MHD_NO;
        cn->t0 = now();
        *con_cls = cn;
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > o->max_body) {
            cn->too_large = true;
            char msg[128];
            snprintf(msg, sizeof msg, "the body exceeds %zu bytes", o->max_body);
            return send_error(c, 413, msg);
        }
        return MHD_YES;
    }
    if (*upload_data_size) { /* more of the body */
        if (now() - cn->t0 > o->timeout)
            return send_error(c, 408, "the request body came too slowly");
        if (cn->too_large || cn->body.len + *upload_data_size > o->max_body)
            cn->too_large = true;
        else
            sb_add(&cn->body, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (cn->too_large) {
        char msg[128];
        snprintf(msg, sizeof msg, "the body exceeds %zu bytes", o->max_body);
        return send_error(c, 413, msg);
    }
    route_id r = find_route(url);
    if (r == R_NONE) return send_error(c, 404, "unknown path");
    if (strcmp(method, routes[r].method) != 0) {
        char msg[96];
        snprintf(msg, sizeof msg, "%s takes %s", routes[r].path, routes[r].method);
        return send_error_h(c, 405, msg, routes[r].method, NULL);
    }
    if (routes[r].needs_key && !key_ok(srv, c))
        return send_error(c, 401, "missing or wrong API key (Authorization: Bearer KEY)");
    if (r != R_PAGE && r != R_HEALTH && !server_ready(srv))
        return send_error_h(c, 503, "the model is loading", NULL, "1");
    if (cn->body.failed) return send_error(c, 500, "out of memory");
    return strcmp(method, "GET") == 0 ? get_route(srv, c, r) : post_route(srv, c, r, cn);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    (void)toe;
    watch_headers_done(cls, c, false); /* the next request's headers (keep-alive) start now */
    conn *cn = *con_cls;
    if (!cn) return;
    sb_free(&cn->body);
    free(cn);
    *con_cls = NULL;
}

http_server *http_start(server *srv, char *why, size_t why_len) {
    const server_opts *o = server_options(srv);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)o->port);
    if (inet_pton(AF_INET, o->host, &addr.sin_addr) != 1) {
        snprintf(why, why_len, "--host %s is not an IPv4 address", o->host);
        return NULL;
    }
    http_server *hs = calloc(1, sizeof *hs);
    if (!hs) {
        snprintf(why, why_len, "out of memory");
        return NULL;
    }
    hs->srv = srv;
    pthread_mutex_init(&hs->mu, NULL);
    pthread_cond_init(&hs->wake, NULL);
    hs->watching = pthread_create(&hs->watchdog, NULL, watchdog, hs) == 0;
    hs->d = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL,
        (uint16_t)o->port, NULL, NULL, on_request, hs, MHD_OPTION_SOCK_ADDR, &addr,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)o->timeout, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)512, MHD_OPTION_NOTIFY_COMPLETED, on_completed, hs, MHD_OPTION_NOTIFY_CONNECTION,
        on_connection, hs, MHD_OPTION_END);
    if (!hs->watching || !hs->d) {
        snprintf(why, why_len,
                 hs->watching ? "cannot listen on %s:%d (in use?)"
                              : "cannot start the header watchdog (%s:%d)",
                 o->host, o->port);
        http_stop(hs);
        return NULL;
    }
    return hs;
}

void http_stop(http_server *hs) {
    if (!hs) return;
    if (hs->d) MHD_stop_daemon(hs->d); /* closes every connection: the list empties */
    pthread_mutex_lock(&hs->mu);
    hs->stopping = true;
    pthread_cond_signal(&hs->wake);
    pthread_mutex_unlock(&hs->mu);
    if (hs->watching) pthread_join(hs->watchdog, NULL);
    pthread_mutex_destroy(&hs->mu);
    pthread_cond_destroy(&hs->wake);
    free(hs);
}
