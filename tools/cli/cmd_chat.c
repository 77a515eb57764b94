/* cmd_chat.c: `phi3c chat`: interactive multi-turn chat with the model's template. The KV cache
 * is kept across turns, so only the new turn's tokens are prefilled; when the context is full the
 * oldest turns are dropped and what remains is prefilled again. Works with piped stdin. */
#include "cli_engine.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "usage: phi3c chat -m MODEL [--system TEXT] [options]\n"
    "\n"
    "Reads one user message per line from stdin and streams the answers to stdout; per-turn\n"
    "statistics (tokens prefilled, cache use, speed) go to stderr. Ctrl-C stops the current\n"
    "answer; Ctrl-D or /exit quits; /reset starts a new conversation.\n"
    "\n"
    "  --system TEXT         system message\n"
    "  -n, --n-predict N     tokens per answer at most (default: until a stop token)\n";

static volatile sig_atomic_t interrupted;
static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

typedef struct chat {
    phi3c_model *model;
    phi3c_session *s;
    const cli_engine_opts *o;
    phi3c_chat_message *msgs; /* contents are owned copies; a system message first if given */
    size_t n_msgs, cap;
    size_t n_fixed;    /* leading messages never dropped (the system message) */
    char *cached_text; /* the text whose tokens the KV cache holds, or NULL */
    char *answer;      /* the answer being generated */
    size_t answer_len, answer_cap;
    int n_predict;
    int turn;
} chat;

static bool add_message(chat *c, const char *role, const char *content) {
    if (c->n_msgs == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 8;
        phi3c_chat_message *grown = realloc(c->msgs, cap * sizeof *grown);
        if (!grown) return false;
        c->msgs = grown;
        c->cap = cap;
    }
    char *copy = strdup(content);
    if (!copy) return false;
    c->msgs[c->n_msgs++] = (phi3c_chat_message){role, copy};
    return true;
}

static void drop_messages(chat *c, size_t first, size_t count) {
    if (count == 0) return; /* msgs is NULL before the first message: no memmove on it */
    for (size_t i = first; i < first + count; i++) free((char *)c->msgs[i].content);
    memmove(&c->msgs[first], &c->msgs[first + count],
            (c->n_msgs - first - count) * sizeof *c->msgs);
    c->n_msgs -= count;
}

static void forget_cache(chat *c) {
    phi3c_session_reset(c->s);
    free(c->cached_text);
    c->cached_text = NULL;
}

static bool collect_answer(void *user, int32_t token, const char *text, size_t len) {
    chat *c = user;
    (void)token;
    if (text && len) {
        fwrite(text, 1, len, stdout);
        cli_flush_stdout();
        if (c->answer_len + len + 1 > c->answer_cap) {
            size_t cap = 2 * (c->answer_len + len + 1);
            char *grown = realloc(c->answer, cap);
            if (!grown) return false;
            c->answer = grown;
            c->answer_cap = cap;
        }
        memcpy(c->answer + c->answer_len, text, len);
        c->answer_len += len;
        c->answer[c->answer_len] = '\0';
    }
    return !interrupted && !ferror(stdout); /* nobody reads what follows a failed write */
}

/* The tokens that bring the cache from cached_text to `text`: only the new part when the cache
 * holds a prefix of it, else (after a reset) all of it. */
static phi3c_status tokens_to_feed(chat *c, const char *text, size_t len, int32_t **ids, size_t *n,
                                   phi3c_error *err) {
    size_t cached = c->cached_text ? strlen(c->cached_text) : 0;
    if (c->cached_text && cached <= len && memcmp(text, c->cached_text, cached) == 0 &&
        phi3c_session_n_past(c->s) > 0)
        return phi3c_tokenize(c->model, text + cached, len - cached, false, ids, n, err);
    forget_cache(c);
    return phi3c_tokenize(c->model, text, len, false, ids, n, err);
}

/* Renders the conversation and finds the tokens to prefill; drops the oldest turns while they do
 * not fit (keeping room for an answer). */
static phi3c_status prepare_turn(chat *c, char **text, int32_t **ids, size_t *n, phi3c_error *err) {
    int n_ctx = phi3c_session_n_ctx(c->s);
    int reserve = P3_MIN(64, n_ctx / 4);
    for (;;) {
        size_t len = 0;
        phi3c_status st = phi3c_chat_render(c->model, c->msgs, c->n_msgs, true, text, &len, err);
        if (st == PHI3C_OK) st = tokens_to_feed(c, *text, len, ids, n, err);
        if (st != PHI3C_OK) return st;
        if ((int)*n + phi3c_session_n_past(c->s) + reserve <= n_ctx) return PHI3C_OK;
        phi3c_free(*ids);
        phi3c_free(*text);
        *ids = NULL;
        *text = NULL;
        bool cache_was_used = phi3c_session_n_past(c->s) > 0;
        if (cache_was_used) {
            forget_cache(c); /* first try the whole conversation from scratch */
            continue;
        }
        if (c->n_msgs - c->n_fixed <= 1)
            return p3_fail(err, PHI3C_ERR_CONTEXT_FULL,
                           "the message does not fit in the context of %d tokens (raise "
                           "-c/--ctx)",
                           n_ctx);
        /* drop the oldest user turn and its answer */
        size_t count = c->n_msgs - c->n_fixed >= 3 ? 2 : 1;
        drop_messages(c, c->n_fixed, count);
        fprintf(stderr, "[context full: dropped the oldest turn; the rest is prefilled again]\n");
    }
}

static int run_turn(chat *c, const char *line) {
    phi3c_error err = {0};
    if (!add_message(c, "user", line)) {
        fprintf(stderr, "phi3c chat: out of memory\n");
        return CLI_EXIT_FAIL;
    }
    char *text = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    phi3c_status st = prepare_turn(c, &text, &ids, &n, &err);
    if (st == PHI3C_ERR_CONTEXT_FULL) {
        cli_fail("chat", &err);
        drop_messages(c, c->n_msgs - 1, 1);
        return CLI_EXIT_OK; /* the conversation goes on */
    }
    phi3c_session_stats before, after;
    phi3c_session_get_stats(c->s, &before);
    double t0 = p3_time_now();
    if (st == PHI3C_OK && n > 0) st = phi3c_session_feed_tokens(c->s, ids, n, NULL, &err);
    phi3c_session_get_stats(c->s, &after);
    double prefill_s = p3_time_now() - t0;
    phi3c_free(ids);
    if (st != PHI3C_OK) {
        phi3c_free(text);
        forget_cache(c);
        return cli_fail("chat", &err);
    }
    c->answer_len = 0;
    if (c->answer) c->answer[0] = '\0';
    interrupted = 0;
    phi3c_generate_result r;
    int n_predict = c->n_predict > 0 ? c->n_predict : phi3c_session_n_ctx(c->s);
    st = phi3c_generate(c->s, &c->o->sampler, n_predict, collect_answer, c, &r, &err);
    printf("\n");
    cli_flush_stdout();
    if (st != PHI3C_OK) {
        phi3c_free(text);
        forget_cache(c);
        return cli_fail("chat", &err);
    }
    if (r.stop == PHI3C_STOP_CALLBACK) fprintf(stderr, "[stopped]\n");
    if (r.stop == PHI3C_STOP_CONTEXT_FULL)
        fprintf(stderr, "[context full: the answer was cut; the oldest turns will be dropped]\n");
    const char *answer = c->answer ? c->answer : "";
    add_message(c, "assistant", answer);
    /* the cache now holds the rendered prompt plus the answer's tokens */
    free(c->cached_text);
    c->cached_text = malloc(strlen(text) + strlen(answer) + 1);
    if (c->cached_text) strcat(strcpy(c->cached_text, text), answer);
    phi3c_free(text);
    c->turn++;
    fprintf(stderr,
            "[turn %d: prefilled %lld tokens in %.3f s, cache %d/%d | generated %d tokens in "
            "%.3f s (%.1f tok/s)]\n",
            c->turn, after.n_prefilled - before.n_prefilled, prefill_s, phi3c_session_n_past(c->s),
            phi3c_session_n_ctx(c->s), r.n_generated, r.seconds,
            r.n_generated / (r.seconds > 0 ? r.seconds : 1e-9));
    return CLI_EXIT_OK;
}

static void reset_conversation(chat *c) {
    drop_messages(c, c->n_fixed, c->n_msgs - c->n_fixed);
    forget_cache(c);
    c->turn = 0;
}

static int chat_loop(chat *c) {
    bool tty = isatty(STDIN_FILENO);
    char *line = NULL;
    size_t cap = 0;
    int rc = CLI_EXIT_OK;
    for (;;) {
        if (tty) {
            printf("> ");
            cli_flush_stdout();
        }
        interrupted = 0;
        errno = 0;
        ssize_t len = getline(&line, &cap, stdin);
        if (len < 0 && errno == EINTR) {
            clearerr(stdin);
            printf("\n(Ctrl-D or /exit quits)\n");
            continue;
        }
        if (len < 0) break; /* Ctrl-D / end of input */
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
        if (len == 0) continue;
        if (strcmp(line, "/exit") == 0 || strcmp(line, "/quit") == 0) break;
        if (strcmp(line, "/reset") == 0) {
            reset_conversation(c);
            fprintf(stderr, "[new conversation]\n");
            continue;
        }
        rc = run_turn(c, line);
        if (rc != CLI_EXIT_OK || ferror(stdout)) break; /* main reports the failed write */
    }
    free(line);
    return rc;
}

int cmd_chat(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        printf("%s%s%s", usage, cli_engine_help, cli_sampler_help);
        return CLI_EXIT_OK;
    }
    cli_engine_opts o;
    cli_engine_opts_init(&o);
    const char *system = NULL;
    long n_predict = -1;
    for (int i = 1; i < argc; i++) {
        int r = cli_engine_flag("chat", argc, argv, &i, &o);
        if (r == CLI_FLAG_NOT_MINE) r = cli_sampler_flag("chat", argc, argv, &i, &o);
        if (r == CLI_FLAG_BAD) return CLI_EXIT_USAGE;
        if (r == CLI_FLAG_TAKEN) continue;
        const char *a = argv[i];
        if (cli_is(a, "--system", NULL) || cli_is(a, "-n", "--n-predict")) {
            const char *v = cli_value("chat", argc, argv, &i);
            if (!v) return CLI_EXIT_USAGE;
            if (cli_is(a, "--system", NULL))
                system = v;
            else if (!cli_int("chat", a, v, -1, 1 << 24, &n_predict))
                return CLI_EXIT_USAGE;
        } else {
            return cli_usage_error("chat", "unknown option '%s'", a);
        }
    }
    if (!o.model_path) return cli_usage_error("chat", "-m MODEL is required");
    chat c = {.o = &o, .n_predict = (int)n_predict};
    if (!cli_engine_open("chat", &o, &c.model, &c.s)) return CLI_EXIT_FAIL;
    int rc = CLI_EXIT_FAIL;
    if (!phi3c_model_has_tokenizer(c.model)) {
        fprintf(stderr, "phi3c chat: %s has no tokenizer\n", o.model_path);
    } else if (system && !add_message(&c, "system", system)) {
        fprintf(stderr, "phi3c chat: out of memory\n");
    } else {
        c.n_fixed = c.n_msgs;
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_sigint; /* no SA_RESTART: Ctrl-C interrupts a pending read */
        sigaction(SIGINT, &sa, NULL);
        rc = chat_loop(&c);
        signal(SIGINT, SIG_DFL);
    }
    drop_messages(&c, 0, c.n_msgs);
    free(c.msgs);
    free(c.cached_text);
    free(c.answer);
    phi3c_session_free(c.s);
    phi3c_model_free(c.model);
    return rc;
}
