/* server.h: `phi3c serve`, an OpenAI-compatible HTTP server over include/phi3c.h only. The
 * pieces: serve.c (options, start-up, signals), http.c (libmicrohttpd: routing, limits, errors,
 * streaming), routes.c (the endpoints' JSON), sched.c (slots, queue and the batched step loop),
 * json.c (a small JSON reader/writer) and page.c (the embedded chat page). */
#ifndef P3_SERVER_H
#define P3_SERVER_H

#include "json.h"
#include "phi3c.h"

#include <pthread.h>
#include <stdint.h>

typedef struct server_opts {
    const char *model_path;
    const char *alias; /* model id in the API (default: the path's last component) */
    const char *host;
    int port;
    int parallel;    /* slots: sequences generated together */
    int queue;       /* requests waiting for a slot at most; beyond: 503 */
    int n_ctx;       /* KV positions per slot (0: the model's, at most 4096) */
    int n_batch;     /* tokens per forward pass, all slots together */
    int timeout;     /* seconds: idle connection / whole request body */
    int lookup;      /* prompt-lookup draft length of requests that do not say (0: off) */
    size_t max_body; /* bytes */
    const char *api_key;
    phi3c_model_params model;
} server_opts;

/* One completion request, shared by its HTTP connection and the scheduler (refcounted; every
 * field after the inputs is guarded by the server's mutex). */
typedef struct request {
    int refs;
    /* inputs, fixed once queued */
    bool chat, stream, include_usage;
    phi3c_chat_message *msgs; /* chat: the conversation (strings owned) */
    size_t n_msgs;
    int32_t *prompt; /* completions: the prompt's ids */
    size_t n_prompt; /* tokens of the whole prompt (chat: as rendered) */
    int max_tokens;  /* 0: until the context is full */
    int lookup;      /* prompt-lookup draft length; -1: the server's --lookup */
    phi3c_sampler_params sampler;
    char **stops;
    size_t n_stops;
    char id[48];
    long long created;
    /* progress */
    sbuf text;      /* generated text (stop string cut away once found) */
    size_t emitted; /* bytes of text already streamed */
    sbuf sse;       /* streaming: bytes waiting to be written */
    size_t sse_pos;
    int n_generated;
    int n_drafted, n_accepted; /* lookup: draft tokens verified and kept */
    const char *finish;        /* "stop" / "length" when done */
    bool done, gone, started;
    int err_status; /* failed inside the scheduler: HTTP status and message */
    char err_msg[512];
    pthread_cond_t cv;
    double t_queued, t_first;
} request;

typedef struct server server;

/* ---- sched.c */
server *server_new(const server_opts *o);
void server_free(server *srv);
/* Loads the model and runs the step loop until server_stop (call from its own thread). */
void *server_run(void *srv);
void server_stop(server *srv);
bool server_ready(server *srv); /* the model is loaded */
const char *server_load_error(server *srv);
phi3c_model *server_model(server *srv); /* NULL until ready */
const server_opts *server_options(server *srv);
int server_n_ctx(server *srv);
/* Queues a request (takes a reference); false when the queue is full. */
bool server_submit(server *srv, request *req);
/* Waits until the request is done (non-streaming) or has bytes to stream; with the lock held. */
void server_lock(server *srv);
void server_unlock(server *srv);
void server_wait(server *srv, request *req);
void server_wait_for(server *srv, request *req, double seconds); /* at most that long */
/* The client left before its answer: the slot is freed at the next step (or it leaves the queue).
 */
void server_cancel(server *srv, request *req);
void request_release(server *srv, request *req); /* drops a reference (locks) */
void server_metrics(server *srv, sbuf *out);

/* ---- routes.c: builds the response of a finished request; the SSE chunks of a running one. */
void route_request_json(const request *req, const char *model, sbuf *out);
void route_stream_delta(request *req, const char *model, const char *text, size_t len);
void route_stream_end(request *req, const char *model);

/* ---- http.c */
typedef struct http_server http_server;
http_server *http_start(server *srv, char *why, size_t why_len);
void http_stop(http_server *hs);

/* ---- page.c: the chat page served at GET / */
const char *chat_page(size_t *len);

#endif /* P3_SERVER_H */
