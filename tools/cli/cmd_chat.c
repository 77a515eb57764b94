/* cmd_chat.c: `phi3c chat`: interactive multi-turn chat with the model's template. The KV cache
 * is kept across turns, so only the new turn's tokens are prefilled; when the context is full the
 * oldest turns are dropped and what remains is prefilled again (both by phi3c_chat_prepare).
 * Works with piped stdin; on a terminal lines are edited with libedit (chat_input.c). */
#include "chat_file.h"
#include "chat_input.h"
#include "cli_args.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "usage: phi3c chat -m MODEL [-sys TEXT] [options]\n"
    "\n"
    "Reads one user message per line from stdin and streams the answers to stdout; per-turn\n"
    "statistics (tokens prefilled, cache use, speed) go to stderr. On a terminal, lines are\n"
    "edited with libedit (arrows, history); piped input is read as it is. A message between\n"
    "two \"\"\" spans lines (\"\"\" on its own line, or at the start of the first line and the\n"
    "end of the last). Ctrl-C stops the current answer; Ctrl-D or /exit quits.\n"
    "\n"
    "%s"
    "\n"
    "  -sys, --system-prompt TEXT  system message (also --system)\n"
    "  -n, --n-predict N     tokens per answer at most (default: the context's free space,\n"
    "                        at most 1024; -1 = until a stop token or the context is full)\n";

static const char commands_help[] =
    "Commands (a line starting with /):\n"
    "  /help          this list\n"
    "  /reset         start a new conversation (the system message stays)\n"
    "  /save FILE     write the conversation as JSON ({\"messages\": [{\"role\", \"content\"}]})\n"
    "  /load FILE     replace the conversation with one written by /save\n"
    "  /exit, /quit   leave (as Ctrl-D does)\n";

enum { DEFAULT_ANSWER_LIMIT = 1024 };

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
    size_t n_fixed; /* leading messages never dropped (the system message) */
    char *answer;   /* the answer being generated */
    size_t answer_len, answer_cap;
    int n_predict; /* 0: the default limit */
    int turn;
    bool color; /* --color on a terminal: answers in green */
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

/* Renders the conversation and finds the tokens to prefill (phi3c_chat_prepare), dropping the
 * oldest turns while they do not fit (keeping room for an answer); the same turns go from c. */
static phi3c_status prepare_turn(chat *c, phi3c_chat_turn *turn, phi3c_error *err) {
    int n_ctx = phi3c_session_n_ctx(c->s);
    phi3c_chat_params params = {.reserve = P3_MIN(64, n_ctx / 4), .drop_turns = true};
    phi3c_status st = phi3c_chat_prepare(c->s, c->msgs, c->n_msgs, &params, turn, err);
    if (st == PHI3C_OK && turn->n_dropped > 0) {
        drop_messages(c, c->n_fixed, turn->n_dropped);
        fprintf(stderr, "[context full: dropped the oldest turn; the rest is prefilled again]\n");
    }
    return st;
}

static int run_turn(chat *c, const char *line) {
    phi3c_error err = {0};
    if (!add_message(c, "user", line)) {
        fprintf(stderr, "phi3c chat: out of memory\n");
        return CLI_EXIT_FAIL;
    }
    phi3c_chat_turn turn;
    phi3c_status st = prepare_turn(c, &turn, &err);
    if (st == PHI3C_ERR_CONTEXT_FULL) {
        cli_fail("chat", &err);
        drop_messages(c, c->n_msgs - 1, 1);
        return CLI_EXIT_OK; /* the conversation goes on */
    }
    phi3c_session_stats before, after;
    phi3c_session_get_stats(c->s, &before);
    double t0 = p3_time_now();
    if (st == PHI3C_OK) st = phi3c_session_feed_tokens(c->s, turn.ids, turn.n_ids, NULL, &err);
    phi3c_session_get_stats(c->s, &after);
    double prefill_s = p3_time_now() - t0;
    phi3c_free(turn.ids);
    if (st != PHI3C_OK) {
        phi3c_session_reset(c->s);
        return cli_fail("chat", &err);
    }
    c->answer_len = 0;
    if (c->answer) c->answer[0] = '\0';
    interrupted = 0;
    phi3c_generate_result r;
    int room = phi3c_session_n_ctx(c->s) - phi3c_session_n_past(c->s);
    int n_predict = c->n_predict > 0    ? c->n_predict
                    : c->n_predict == 0 ? P3_MIN(room, DEFAULT_ANSWER_LIMIT)
                                        : phi3c_session_n_ctx(c->s);
    fputs(c->color ? "\033[32m" : "", stdout);
    st = phi3c_generate(c->s, &c->o->sampler, n_predict, collect_answer, c, &r, &err);
    printf("%s\n", c->color ? CLI_COLOR_OFF : "");
    cli_flush_stdout();
    if (st != PHI3C_OK) {
        phi3c_session_reset(c->s);
        return cli_fail("chat", &err);
    }
    if (r.stop == PHI3C_STOP_CALLBACK) fprintf(stderr, "[stopped]\n");
    if (r.stop == PHI3C_STOP_LENGTH)
        fprintf(stderr, "[the answer reached the limit of %d tokens (-n changes it)]\n", n_predict);
    if (r.stop == PHI3C_STOP_CONTEXT_FULL)
        fprintf(stderr, "[context full: the answer was cut; the oldest turns will be dropped]\n");
    const char *answer = c->answer ? c->answer : "";
    add_message(c, "assistant", answer);
    c->turn++;
    char lookup[128];
    cli_lookup_stats(lookup, sizeof lookup, c->o, &r);
    fprintf(stderr,
            "[turn %d: prefilled %lld tokens in %.3f s, cache %d/%d | generated %d tokens in "
            "%.3f s (%.1f tok/s)%s]\n",
            c->turn, after.n_prefilled - before.n_prefilled, prefill_s, phi3c_session_n_past(c->s),
            phi3c_session_n_ctx(c->s), r.n_generated, r.seconds,
            r.n_generated / (r.seconds > 0 ? r.seconds : 1e-9), lookup);
    return CLI_EXIT_OK;
}

static void reset_conversation(chat *c) {
    drop_messages(c, c->n_fixed, c->n_msgs - c->n_fixed);
    phi3c_session_reset(c->s);
    c->turn = 0;
}

/* /save FILE and /load FILE. */
static void save_or_load(chat *c, const char *cmd, const char *path) {
    p3_error err = {0};
    if (!*path) {
        fprintf(stderr, "[%s needs a file name]\n", cmd);
        return;
    }
    if (strcmp(cmd, "/save") == 0) {
        if (chat_file_save(path, c->msgs, c->n_msgs, &err) != PHI3C_OK)
            fprintf(stderr, "[%s]\n", err.message);
        else
            fprintf(stderr, "[saved %zu messages to %s]\n", c->n_msgs, path);
        return;
    }
    phi3c_chat_message *msgs = NULL;
    size_t n = 0;
    if (chat_file_load(path, &msgs, &n, &err) != PHI3C_OK) {
        fprintf(stderr, "[%s]\n", err.message);
        return;
    }
    drop_messages(c, 0, c->n_msgs);
    free(c->msgs);
    c->msgs = msgs;
    c->n_msgs = c->cap = n;
    c->n_fixed = n > 0 && strcmp(msgs[0].role, "system") == 0;
    phi3c_session_reset(c->s);
    c->turn = 0;
    fprintf(stderr, "[loaded %zu messages from %s; the next message continues that conversation]\n",
            n, path);
}

typedef enum { CMD_NONE, CMD_DONE, CMD_EXIT } chat_cmd;

/* A line starting with '/' is a command, never sent to the model. */
static chat_cmd run_command(chat *c, const char *line) {
    if (line[0] != '/') return CMD_NONE;
    char name[16] = "";
    size_t n = strcspn(line, " \t");
    const char *arg = line + n + strspn(line + n, " \t");
    if (n < sizeof name) memcpy(name, line, n);
    if (strcmp(name, "/exit") == 0 || strcmp(name, "/quit") == 0 || strcmp(name, "/bye") == 0)
        return CMD_EXIT;
    if (strcmp(name, "/help") == 0 || strcmp(name, "/?") == 0) {
        fputs(commands_help, stderr);
    } else if (strcmp(name, "/reset") == 0 || strcmp(name, "/clear") == 0) {
        reset_conversation(c);
        fprintf(stderr, "[new conversation]\n");
    } else if (strcmp(name, "/save") == 0 || strcmp(name, "/load") == 0) {
        save_or_load(c, name, arg);
    } else {
        fprintf(stderr, "[unknown command %s: /help lists them]\n", name[0] ? name : line);
    }
    return CMD_DONE;
}

static int chat_loop(chat *c) {
    chat_input in;
    chat_input_init(&in, &interrupted);
    int rc = CLI_EXIT_OK;
    for (;;) {
        char *msg = NULL;
        chat_read got = chat_input_read(&in, &msg);
        if (got == CHAT_READ_INTERRUPTED) {
            printf("\n(Ctrl-D or /exit quits)\n");
            continue;
        }
        if (got == CHAT_READ_END) {
            if (in.tty) printf("\n"); /* leave the shell prompt on a line of its own */
            break;
        }
        chat_cmd cmd = msg[0] ? run_command(c, msg) : CMD_DONE;
        if (cmd == CMD_NONE) rc = run_turn(c, msg);
        free(msg);
        if (cmd == CMD_EXIT || rc != CLI_EXIT_OK || ferror(stdout)) break; /* main reports it */
    }
    cli_flush_stdout();
    chat_input_free(&in);
    return rc;
}

static void print_banner(const chat *c) {
    fprintf(stderr,
            "phi3c chat: %s | context %d of %d | seed %llu | /help for commands, Ctrl-D or "
            "/exit to quit\n",
            c->o->model_path, phi3c_session_n_ctx(c->s), phi3c_model_context_length(c->model),
            (unsigned long long)c->o->sampler.seed);
}

int cli_chat_parse(int argc, char **argv, cli_chat_args *a) {
    memset(a, 0, sizeof *a);
    cli_engine_opts_init(&a->o);
    for (int i = 1; i < argc; i++) {
        int r = cli_engine_flag("chat", argc, argv, &i, &a->o);
        if (r == CLI_FLAG_NOT_MINE) r = cli_sampler_flag("chat", argc, argv, &i, &a->o);
        if (r == CLI_FLAG_BAD) return CLI_EXIT_USAGE;
        if (r == CLI_FLAG_TAKEN) continue;
        const char *f = argv[i];
        bool sys = cli_is(f, "--system", "-sys") || cli_is(f, "--system-prompt", NULL);
        if (sys || cli_is(f, "-n", "--n-predict")) {
            const char *v = cli_value("chat", argc, argv, &i);
            if (!v) return CLI_EXIT_USAGE;
            if (sys)
                a->system = v;
            else if (!cli_int("chat", f, v, -1, 1 << 24, &a->n_predict))
                return CLI_EXIT_USAGE;
        } else {
            return cli_usage_error("chat", "unknown option '%s'", f);
        }
    }
    if (!a->o.model_path) return cli_usage_error("chat", "-m MODEL is required");
    return CLI_EXIT_OK;
}

int cmd_chat(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        printf(usage, commands_help);
        printf("%s%s%s", cli_engine_help, cli_ctx_help, cli_sampler_help);
        return CLI_EXIT_OK;
    }
    cli_chat_args a;
    if (cli_chat_parse(argc, argv, &a) != CLI_EXIT_OK) return CLI_EXIT_USAGE;
    cli_engine_opts o = a.o;
    const char *system = a.system;
    long n_predict = a.n_predict;
    chat c = {.o = &o, .n_predict = (int)n_predict, .color = o.color && isatty(STDOUT_FILENO)};
    if (!cli_engine_open("chat", &o, &c.model, &c.s)) return CLI_EXIT_FAIL;
    int rc = CLI_EXIT_FAIL;
    if (!cli_need_tokenizer("chat", c.model, o.model_path)) {
    } else if (system && !add_message(&c, "system", system)) {
        fprintf(stderr, "phi3c chat: out of memory\n");
    } else {
        c.n_fixed = c.n_msgs;
        print_banner(&c);
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_sigint; /* no SA_RESTART: Ctrl-C interrupts a pending read */
        sigaction(SIGINT, &sa, NULL);
        rc = chat_loop(&c);
        signal(SIGINT, SIG_DFL);
    }
    drop_messages(&c, 0, c.n_msgs);
    free(c.msgs);
    free(c.answer);
    phi3c_session_free(c.s);
    phi3c_model_free(c.model);
    return rc;
}
