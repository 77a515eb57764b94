/* cmd_run.c: `phi3c run`: one prompt in, generated text streamed to stdout as it is produced,
 * timing statistics (load, prompt and generation speed, time to first token) to stderr. */
#include "cli_args.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "usage: phi3c run -m MODEL (-p TEXT | -f FILE) [options]\n"
    "\n"
    "Generates text after a prompt and streams it to stdout; statistics go to stderr.\n"
    "\n"
    "  -p, --prompt TEXT     the prompt\n"
    "  -f, --file FILE       read the prompt from a file, byte for byte (NUL bytes too, as\n"
    "                        tokenize --file; at most 256 MiB)\n"
    "  --prompt-ids \"IDS\"    the prompt as token ids (no tokenizer needed; implies --ids)\n"
    "  --chat                wrap the prompt in the model's chat template (as a user turn)\n"
    "  -sys, --system-prompt TEXT  system message for --chat (also --system)\n"
    "  -n, --n-predict N     tokens to generate at most (default 256; -1 = until the context\n"
    "                        is full); generation also stops on the model's stop ids\n"
    "  --no-echo             do not print the prompt before the generated text\n"
    "  --ids                 print the generated token ids (one line) instead of text\n"
    "  --verbose-prompt      print the prompt's token ids to stderr\n";

static volatile sig_atomic_t interrupted;
static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

typedef struct run_state {
    bool print_ids;
    int n_printed;
} run_state;

static bool print_token(void *user, int32_t token, const char *text, size_t len) {
    run_state *st = user;
    if (st->print_ids) {
        if (token >= 0) printf("%s%d", st->n_printed++ ? " " : "", (int)token);
    } else if (text && len) {
        fwrite(text, 1, len, stdout);
    }
    cli_flush_stdout();
    return !interrupted && !ferror(stdout); /* nobody reads what follows a failed write */
}

/* The file byte for byte, NUL bytes included (as `tokenize --file`): size, not strlen. */
static bool read_prompt_file(const char *path, char **text, size_t *size) {
    p3_error err = {0};
    if (p3_file_read_all(path, text, size, &err) != PHI3C_OK) {
        cli_fail("run", &err);
        return false;
    }
    return true;
}

/* The prompt's ids: plain text (BOS as the tokenizer config says) or a rendered chat turn. */
static phi3c_status prompt_ids(phi3c_model *model, const char *prompt, size_t prompt_len, bool chat,
                               const char *system, int32_t **ids, size_t *n, phi3c_error *err) {
    if (!chat) return phi3c_tokenize(model, prompt, prompt_len, true, ids, n, err);
    if (memchr(prompt, '\0', prompt_len)) /* a chat message is a C string: it would be cut */
        return p3_fail(err, PHI3C_ERR_INVALID_ARG,
                       "the prompt has a NUL byte at offset %zu; --chat takes text only",
                       (size_t)((const char *)memchr(prompt, '\0', prompt_len) - prompt));
    phi3c_chat_message msgs[2];
    size_t n_msgs = 0;
    if (system) msgs[n_msgs++] = (phi3c_chat_message){"system", system};
    msgs[n_msgs++] = (phi3c_chat_message){"user", prompt};
    char *text = NULL;
    size_t len = 0;
    phi3c_status st = phi3c_chat_render(model, msgs, n_msgs, true, &text, &len, err);
    if (st == PHI3C_OK) st = phi3c_tokenize(model, text, len, false, ids, n, err);
    phi3c_free(text);
    return st;
}

static const char *stop_name(phi3c_stop_reason r) {
    switch (r) {
    case PHI3C_STOP_EOS:
        return "stop token";
    case PHI3C_STOP_CALLBACK:
        return "interrupted";
    case PHI3C_STOP_CONTEXT_FULL:
        return "context full";
    default:
        return "length";
    }
}

typedef struct run_prompt {
    const char *text; /* text_len bytes (a file's may hold NUL bytes), or */
    size_t text_len;
    const int32_t *ids; /* given with --prompt-ids */
    size_t n_ids;
    bool chat;
    const char *system;
    bool verbose; /* print the prompt's ids to stderr */
} run_prompt;

static int generate(phi3c_model *model, phi3c_session *s, const cli_engine_opts *o,
                    const run_prompt *p, int n_predict, bool echo, bool print_ids) {
    phi3c_error err = {0};
    int32_t *ids = NULL;
    size_t n = 0;
    if (p->ids) {
        n = p->n_ids;
    } else if (prompt_ids(model, p->text, p->text_len, p->chat, p->system, &ids, &n, &err) !=
               PHI3C_OK) {
        return cli_fail("run", &err);
    }
    if (n == 0) {
        phi3c_free(ids);
        fprintf(stderr, "phi3c run: the prompt is empty\n");
        return CLI_EXIT_FAIL;
    }
    char desc[256];
    phi3c_model_describe(model, desc, sizeof desc);
    fprintf(stderr, "phi3c run: %s\n", desc);
    if (p->verbose) {
        fprintf(stderr, "prompt ids:");
        for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", (int)(p->ids ? p->ids : ids)[i]);
        fprintf(stderr, "\n");
    }
    bool color = o->color && isatty(STDOUT_FILENO);
    if (echo && !p->chat && !print_ids) {
        fputs(color ? CLI_COLOR_PROMPT : "", stdout);
        fwrite(p->text, 1, p->text_len, stdout);
        fputs(color ? CLI_COLOR_OFF : "", stdout);
        cli_flush_stdout();
    }
    double t0 = p3_time_now();
    phi3c_status st = phi3c_session_feed_tokens(s, p->ids ? p->ids : ids, n, NULL, &err);
    phi3c_free(ids);
    if (st != PHI3C_OK) return cli_fail("run", &err);
    double prompt_s = p3_time_now() - t0;
    if (n_predict < 0) n_predict = phi3c_session_n_ctx(s);
    run_state rs = {.print_ids = print_ids};
    phi3c_generate_result r;
    signal(SIGINT, on_sigint);
    fputs(color ? CLI_COLOR_MODEL : "", stdout);
    st = phi3c_generate(s, &o->sampler, n_predict, print_token, &rs, &r, &err);
    signal(SIGINT, SIG_DFL);
    printf("%s\n", color ? CLI_COLOR_OFF : "");
    cli_flush_stdout();
    if (st != PHI3C_OK) return cli_fail("run", &err);
    double load_s = phi3c_model_load_seconds(model);
    char lookup[128];
    cli_lookup_stats(lookup, sizeof lookup, o, &r);
    fprintf(stderr,
            "phi3c run: load %.2f s | prompt %zu tokens in %.3f s (%.1f tok/s) | generated %d "
            "tokens in %.3f s (%.1f tok/s) | time to first token %.3f s | stopped: %s%s | "
            "seed %llu\n",
            load_s, n, prompt_s, (double)n / (prompt_s > 0 ? prompt_s : 1e-9), r.n_generated,
            r.seconds, r.n_generated / (r.seconds > 0 ? r.seconds : 1e-9),
            prompt_s + r.first_token_seconds, stop_name(r.stop), lookup,
            (unsigned long long)o->sampler.seed);
    return CLI_EXIT_OK;
}

int cli_run_parse(int argc, char **argv, cli_run_args *a) {
    memset(a, 0, sizeof *a);
    cli_engine_opts_init(&a->o);
    a->echo = true;
    a->n_predict = 256;
    for (int i = 1; i < argc; i++) {
        int r = cli_engine_flag("run", argc, argv, &i, &a->o);
        if (r == CLI_FLAG_NOT_MINE) r = cli_sampler_flag("run", argc, argv, &i, &a->o);
        if (r == CLI_FLAG_BAD) return CLI_EXIT_USAGE;
        if (r == CLI_FLAG_TAKEN) continue;
        const char *f = argv[i];
        if (cli_is(f, "--chat", NULL)) {
            a->chat = true;
        } else if (cli_is(f, "--no-echo", NULL)) {
            a->echo = false;
        } else if (cli_is(f, "--ids", NULL)) {
            a->print_ids = true;
        } else if (cli_is(f, "--verbose-prompt", NULL)) {
            a->verbose = true;
        } else if (cli_is(f, "-p", "--prompt") || cli_is(f, "-f", "--file") ||
                   cli_is(f, "--system", "-sys") || cli_is(f, "--system-prompt", NULL) ||
                   cli_is(f, "-n", "--n-predict") || cli_is(f, "--prompt-ids", NULL)) {
            const char *v = cli_value("run", argc, argv, &i);
            if (!v) return CLI_EXIT_USAGE;
            if (cli_is(f, "-p", "--prompt"))
                a->prompt = v;
            else if (cli_is(f, "-f", "--file"))
                a->file = v;
            else if (cli_is(f, "--system", "-sys") || cli_is(f, "--system-prompt", NULL))
                a->system = v;
            else if (cli_is(f, "--prompt-ids", NULL))
                a->ids_text = v;
            else if (!cli_int("run", f, v, -1, 1 << 24, &a->n_predict))
                return CLI_EXIT_USAGE;
        } else {
            return cli_usage_error("run", "unknown option '%s'", f);
        }
    }
    if (!a->o.model_path) return cli_usage_error("run", "-m MODEL is required");
    if ((a->prompt != NULL) + (a->file != NULL) + (a->ids_text != NULL) != 1)
        return cli_usage_error("run", "give one of -p TEXT, -f FILE, --prompt-ids IDS");
    if (a->system && !a->chat) return cli_usage_error("run", "--system-prompt needs --chat");
    if (a->ids_text && a->chat) return cli_usage_error("run", "--chat needs a text prompt");
    if (a->ids_text && !cli_parse_ids(a->ids_text, &a->ids, &a->n_ids))
        return cli_usage_error("run", "--prompt-ids wants decimal token ids, got '%s'",
                               a->ids_text);
    a->print_ids = a->print_ids || a->ids_text;
    return CLI_EXIT_OK;
}

int cmd_run(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        printf("%s%s%s%s", usage, cli_engine_help, cli_ctx_help, cli_sampler_help);
        return CLI_EXIT_OK;
    }
    cli_run_args a;
    if (cli_run_parse(argc, argv, &a) != CLI_EXIT_OK) return CLI_EXIT_USAGE;
    cli_engine_opts *o = &a.o;
    run_prompt rp = {.chat = a.chat, .system = a.system, .verbose = a.verbose};
    rp.ids = a.ids;
    rp.n_ids = a.n_ids;
    const char *prompt = a.prompt;
    char *file_text = NULL;
    if (a.file) {
        if (!read_prompt_file(a.file, &file_text, &rp.text_len)) return CLI_EXIT_FAIL;
        prompt = file_text;
    } else if (prompt) {
        rp.text_len = strlen(prompt);
    }
    rp.text = prompt;
    cli_note_quant_method("run", o);
    phi3c_model *model;
    phi3c_session *s;
    int rc = CLI_EXIT_FAIL;
    if (cli_engine_open("run", o, &model, &s)) {
        if (rp.ids || cli_need_tokenizer("run", model, o->model_path))
            rc = generate(model, s, o, &rp, (int)a.n_predict, a.echo, a.print_ids);
        phi3c_session_free(s);
        phi3c_model_free(model);
    }
    p3_free(file_text);
    free(a.ids);
    return rc;
}
