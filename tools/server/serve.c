/* serve.c: `phi3c serve`: options, start-up (HTTP first, so /health answers 503 while the model
 * loads), and a clean stop on SIGINT/SIGTERM: no new connections, running streams ended with
 * their last chunks, exit 0. */
#include "serve.h"
#include "server.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: phi3c serve -m MODEL [options]\n"
    "\n"
    "An OpenAI-compatible HTTP server: POST /v1/chat/completions, /v1/completions, /tokenize,\n"
    "/detokenize; GET /v1/models, /health, /metrics, and a chat page at /. Up to --parallel\n"
    "requests are generated together, one forward pass per step for all of them.\n"
    "\n"
    "  -m, --model PATH      model folder, GGUF or native .phi3c file (with a tokenizer)\n"
    "  --host ADDR           IPv4 address to listen on (default 127.0.0.1)\n"
    "  --port N              port (default 8080)\n"
    "  --parallel N          slots generating at once (default 4, at most 64)\n"
    "  --queue N             requests waiting for a slot at most (default 64); beyond: 503\n"
    "  -c, --ctx N           KV cache positions per slot (default: the model's, at most 4096)\n"
    "  --batch N             tokens per forward pass, all slots together (default 256)\n"
    "  --lookup N            prompt-lookup decoding: up to N draft tokens (0..64) checked in\n"
    "                        the step's forward pass, same output (default 0 = off; a request's\n"
    "                        \"lookup\" field overrides it)\n"
    "  --api-key KEY         require 'Authorization: Bearer KEY' (not for / and /health)\n"
    "  --alias NAME          the model's id in the API (default: the path's last part)\n"
    "  --timeout S           seconds a connection may idle, and headers or a body may take "
    "(default 30)\n"
    "  --max-body BYTES      largest request body (default 1048576); beyond: 413\n"
    "  --backend NAME        cpu, opencl, level-zero or auto (default)\n"
    "  -t, --threads N       CPU threads (default: all cores)\n"
    "  --quant Q             none (default), int4-g128, int4-g128-asym\n";

static bool arg_is(const char *a, const char *x, const char *y) {
    return strcmp(a, x) == 0 || (y && strcmp(a, y) == 0);
}

static bool parse_int(const char *flag, const char *v, long lo, long hi, long *out) {
    char *end = NULL;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || !end || *end || end == v || n < lo || n > hi) {
        fprintf(stderr, "phi3c serve: %s wants an integer in %ld..%ld, got '%s'\n", flag, lo, hi,
                v);
        return false;
    }
    *out = n;
    return true;
}

static bool set_quant(server_opts *o, const char *v) {
    if (strcmp(v, "none") == 0)
        o->model.quant = PHI3C_QUANT_NONE;
    else if (strcmp(v, "int4-g128") == 0)
        o->model.quant = PHI3C_QUANT_INT4_G128;
    else if (strcmp(v, "int4-g128-asym") == 0)
        o->model.quant = PHI3C_QUANT_INT4_G128_ASYM;
    else
        return false;
    return true;
}

/* One option with its value; false (message printed) on a bad one. */
static bool take_option(server_opts *o, const char *a, const char *v) {
    long n = 0;
    if (arg_is(a, "-m", "--model")) {
        o->model_path = v;
    } else if (arg_is(a, "--host", NULL)) {
        o->host = v;
    } else if (arg_is(a, "--alias", NULL)) {
        o->alias = v;
    } else if (arg_is(a, "--api-key", NULL)) {
        o->api_key = v;
    } else if (arg_is(a, "--backend", NULL)) {
        o->model.backend = v;
    } else if (arg_is(a, "--quant", NULL)) {
        if (set_quant(o, v)) return true;
        fprintf(stderr, "phi3c serve: --quant wants none, int4-g128 or int4-g128-asym\n");
        return false;
    } else if (arg_is(a, "--port", NULL)) {
        if (!parse_int(a, v, 1, 65535, &n)) return false;
        o->port = (int)n;
    } else if (arg_is(a, "--parallel", "-np")) {
        if (!parse_int(a, v, 1, 64, &n)) return false;
        o->parallel = (int)n;
    } else if (arg_is(a, "--queue", NULL)) {
        if (!parse_int(a, v, 1, 4096, &n)) return false;
        o->queue = (int)n;
    } else if (arg_is(a, "-c", "--ctx")) {
        if (!parse_int(a, v, 16, 1 << 20, &n)) return false;
        o->n_ctx = (int)n;
    } else if (arg_is(a, "--batch", NULL)) {
        if (!parse_int(a, v, 1, 256, &n)) return false;
        o->n_batch = (int)n;
    } else if (arg_is(a, "--lookup", NULL)) {
        if (!parse_int(a, v, 0, PHI3C_LOOKUP_MAX, &n)) return false;
        o->lookup = (int)n;
    } else if (arg_is(a, "--timeout", NULL)) {
        if (!parse_int(a, v, 1, 3600, &n)) return false;
        o->timeout = (int)n;
    } else if (arg_is(a, "--max-body", NULL)) {
        if (!parse_int(a, v, 1024, 1L << 30, &n)) return false;
        o->max_body = (size_t)n;
    } else if (arg_is(a, "-t", "--threads")) {
        if (!parse_int(a, v, 0, 1024, &n)) return false;
        o->model.n_threads = (int)n;
    } else {
        fprintf(stderr, "phi3c serve: unknown option '%s' (see phi3c serve --help)\n", a);
        return false;
    }
    return true;
}

/* The last part of the model path, without a trailing slash. */
static void default_alias(server_opts *o, char *buf, size_t len) {
    snprintf(buf, len, "%s", o->model_path);
    size_t n = strlen(buf);
    while (n > 1 && buf[n - 1] == '/') buf[--n] = '\0';
    const char *slash = strrchr(buf, '/');
    if (slash) memmove(buf, slash + 1, strlen(slash + 1) + 1);
    o->alias = buf;
}

static int parse_args(int argc, char **argv, server_opts *o) {
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->port = 8080;
    o->parallel = 4;
    o->queue = 64;
    o->timeout = 30;
    o->max_body = 1 << 20;
    o->model = phi3c_model_params_default();
    for (int i = 1; i < argc; i++) {
        if (arg_is(argv[i], "-h", "--help")) {
            printf("%s", usage);
            return -1;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "phi3c serve: %s needs a value\n", argv[i]);
            return 2;
        }
        if (!take_option(o, argv[i], argv[i + 1])) return 2;
        i++;
    }
    if (!o->model_path) {
        fprintf(stderr, "phi3c serve: -m MODEL is required (see phi3c serve --help)\n");
        return 2;
    }
    return 0;
}

int serve_main(int argc, char **argv) {
    server_opts o;
    int rc = parse_args(argc, argv, &o);
    if (rc) return rc < 0 ? 0 : rc;
    char alias[256];
    if (!o.alias) default_alias(&o, alias, sizeof alias);
    /* SIGINT/SIGTERM are taken by sigwait below: blocked in every thread started from here */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);
    server *srv = server_new(&o);
    if (!srv) {
        fprintf(stderr, "phi3c serve: out of memory\n");
        return 1;
    }
    char why[256];
    http_server *d = http_start(srv, why, sizeof why);
    if (!d) {
        fprintf(stderr, "phi3c serve: %s\n", why);
        server_free(srv);
        return 1;
    }
    fprintf(stderr, "phi3c serve: listening on http://%s:%d (loading %s)\n", o.host, o.port,
            o.model_path);
    pthread_t sched;
    pthread_create(&sched, NULL, server_run, srv);
    /* wait for a stop signal, or for the load to fail */
    int sig = 0;
    struct timespec tick = {0, 200 * 1000 * 1000};
    bool announced = false;
    for (;;) {
        siginfo_t info;
        sig = sigtimedwait(&stop_signals, &info, &tick);
        if (sig > 0 || server_load_error(srv)) break;
        if (!announced && server_ready(srv)) {
            char desc[512];
            phi3c_model_describe(server_model(srv), desc, sizeof desc);
            fprintf(stderr, "phi3c serve: ready: %s; %d slots of %d positions\n", desc, o.parallel,
                    server_n_ctx(srv));
            announced = true;
        }
    }
    server_stop(srv);
    pthread_join(sched, NULL);
    http_stop(d);
    const char *load_error = server_load_error(srv);
    rc = load_error && sig <= 0 ? 1 : 0;
    if (rc)
        fprintf(stderr, "phi3c serve: %s\n", load_error);
    else
        fprintf(stderr, "phi3c serve: stopped\n");
    server_free(srv);
    return rc;
}
