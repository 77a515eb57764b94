/* cli_engine.c: parsing of the model, session and sampling flags shared by the engine commands. */
#include "cli_engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char cli_engine_help[] =
    "  -m, --model PATH      Hugging Face folder, .gguf or .phi3c file (required)\n"
    "  --backend NAME        cpu, opencl, level-zero, level-zero-npu or auto (default: auto)\n"
    "  --device N            device index for GPU backends (phi3c info lists them; default 0)\n"
    "  -t, --threads N       CPU threads (default: all cores)\n"
    "  --quant Q             none (default), int4-g128 (symmetric) or int4-g128-asym:\n"
    "                        quantize the linear weights at load (the embedding stays 16-bit)\n"
    "  --quant-method M      rtn (default: round to nearest, fast) or search (per-group scale\n"
    "                        with the least squared error, as `phi3c quantize`; slower)\n"
    "  --act A               INT4 activations: w4a8 (default on the CPU) or w4a32\n"
    "  --kv T                KV cache type f32, f16 or q8 (default: f32, f16 with --quant)\n"
    "  --batch N             prompt tokens per forward chunk (default: 256)\n";

const char cli_ctx_help[] =
    "  -c, --ctx-size N      KV cache positions (default: min(model context, 4096); more than\n"
    "                        the model's max_position_embeddings is refused)\n";

const char cli_sampler_help[] =
    "  --greedy              always take the most likely token (same as --temp 0)\n"
    "  --temp T              temperature (default 0.8; 0 = greedy)\n"
    "  --top-k K             keep the K most likely tokens (default 40; 0 = off)\n"
    "  --top-p P             keep the smallest set with probability >= P (default 0.95)\n"
    "  --min-p P             drop tokens below P x the top probability (default 0.05)\n"
    "  --repeat-penalty R    transformers' repetition penalty, > 0 (default 1 = off)\n"
    "  --repeat-last-n N     tokens the penalty looks back at (default 64, -1 = all)\n"
    "  -s, --seed S          PRNG seed (xorshift64* via splitmix64); -1 or none = random, and\n"
    "                        the seed used is printed with the statistics: the same seed and\n"
    "                        input give the same text on any thread count\n"
    "  --lookup N            prompt-lookup decoding: draft up to N tokens (1..64; default 0 =\n"
    "                        off) from where the last tokens occurred in the prompt or output,\n"
    "                        checked in one forward; same output, faster on text that quotes\n"
    "                        its input\n"
    "  --color               show the prompt and the model's text in different colours (on a\n"
    "                        terminal)\n"
    "\n"
    "Every --option VALUE may also be written --option=VALUE.\n";

void cli_engine_opts_init(cli_engine_opts *o) {
    memset(o, 0, sizeof *o);
    o->model = phi3c_model_params_default();
    o->session = phi3c_session_params_default();
    o->sampler = phi3c_sampler_params_default();
    o->sampler.seed = cli_random_seed();
}

static int bad_value(const char *cmd, const char *flag, const char *value, const char *choices) {
    cli_usage_error(cmd, "%s: unknown value '%s' (choose %s)", flag, value, choices);
    return CLI_FLAG_BAD;
}

static bool is_engine_flag(const char *arg) {
    static const char *const flags[] = {"-m",         "--model",   "--backend", "--device",
                                        "-t",         "--threads", "--quant",   "--quant-method",
                                        "--act",      "--kv",      "-c",        "--ctx",
                                        "--ctx-size", "--batch"};
    for (size_t i = 0; i < P3_ARRAY_LEN(flags); i++)
        if (strcmp(arg, flags[i]) == 0) return true;
    return false;
}

int cli_engine_flag(const char *cmd, int argc, char **argv, int *i, cli_engine_opts *o) {
    const char *a = argv[*i], *v;
    long n;
    if (!is_engine_flag(a)) return CLI_FLAG_NOT_MINE;
    if (!(v = cli_value(cmd, argc, argv, i))) return CLI_FLAG_BAD;
    if (cli_is(a, "-m", "--model")) {
        o->model_path = v;
    } else if (cli_is(a, "--backend", NULL)) {
        o->model.backend = v;
    } else if (cli_is(a, "--device", NULL)) {
        if (!cli_int(cmd, a, v, 0, 1024, &n)) return CLI_FLAG_BAD;
        o->model.device = (int)n;
    } else if (cli_is(a, "-t", "--threads")) {
        if (!cli_int(cmd, a, v, 0, 1024, &n)) return CLI_FLAG_BAD;
        o->model.n_threads = (int)n;
    } else if (cli_is(a, "--quant", NULL)) {
        if (strcmp(v, "none") == 0)
            o->model.quant = PHI3C_QUANT_NONE;
        else if (strcmp(v, "int4-g128") == 0 || strcmp(v, "int4-g128-sym") == 0)
            o->model.quant = PHI3C_QUANT_INT4_G128;
        else if (strcmp(v, "int4-g128-asym") == 0)
            o->model.quant = PHI3C_QUANT_INT4_G128_ASYM;
        else
            return bad_value(cmd, a, v, "none, int4-g128, int4-g128-asym");
    } else if (cli_is(a, "--quant-method", NULL)) {
        if (strcmp(v, "rtn") && strcmp(v, "search")) return bad_value(cmd, a, v, "rtn, search");
        o->model.quant_search = strcmp(v, "search") == 0;
        o->quant_method_given = true;
    } else if (cli_is(a, "--act", NULL)) {
        if (strcmp(v, "w4a8") == 0)
            o->model.act = PHI3C_ACT_W4A8;
        else if (strcmp(v, "w4a32") == 0)
            o->model.act = PHI3C_ACT_W4A32;
        else
            return bad_value(cmd, a, v, "w4a8, w4a32");
    } else if (cli_is(a, "--kv", NULL)) {
        if (strcmp(v, "f32") == 0)
            o->session.kv = PHI3C_KV_F32;
        else if (strcmp(v, "f16") == 0)
            o->session.kv = PHI3C_KV_F16;
        else if (strcmp(v, "q8") == 0)
            o->session.kv = PHI3C_KV_Q8;
        else
            return bad_value(cmd, a, v, "f32, f16, q8");
    } else if (cli_is(a, "-c", "--ctx") || cli_is(a, "--ctx-size", NULL)) {
        if (!cli_int(cmd, a, v, 1, 1 << 24, &n)) return CLI_FLAG_BAD;
        o->session.n_ctx = (int)n;
        o->ctx_given = true;
    } else {
        if (!cli_int(cmd, a, v, 1, 1 << 16, &n)) return CLI_FLAG_BAD;
        o->session.n_batch = (int)n;
    }
    return CLI_FLAG_TAKEN;
}

int cli_sampler_flag(const char *cmd, int argc, char **argv, int *i, cli_engine_opts *o) {
    const char *a = argv[*i], *v;
    phi3c_sampler_params *p = &o->sampler;
    long n;
    double d;
    if (cli_is(a, "--greedy", NULL)) {
        p->temperature = 0.0f;
        return CLI_FLAG_TAKEN;
    }
    if (cli_is(a, "--color", "--colour")) {
        o->color = true;
        return CLI_FLAG_TAKEN;
    }
    if (!cli_is(a, "--temp", "--temperature") && !cli_is(a, "--top-k", NULL) &&
        !cli_is(a, "--top-p", NULL) && !cli_is(a, "--min-p", NULL) &&
        !cli_is(a, "--repeat-penalty", NULL) && !cli_is(a, "--repeat-last-n", NULL) &&
        !cli_is(a, "--seed", "-s") && !cli_is(a, "--lookup", NULL))
        return CLI_FLAG_NOT_MINE;
    if (!(v = cli_value(cmd, argc, argv, i))) return CLI_FLAG_BAD;
    if (cli_is(a, "--top-k", NULL) || cli_is(a, "--repeat-last-n", NULL)) {
        if (!cli_int(cmd, a, v, -1, 1 << 30, &n)) return CLI_FLAG_BAD;
        if (cli_is(a, "--top-k", NULL))
            p->top_k = (int)(n < 0 ? 0 : n);
        else
            p->repeat_last_n = (int)n;
    } else if (cli_is(a, "--lookup", NULL)) {
        if (!cli_int(cmd, a, v, 0, 64, &n)) return CLI_FLAG_BAD;
        o->session.lookup = (int)n;
    } else if (cli_is(a, "--seed", "-s")) {
        if (!cli_int(cmd, a, v, -1, 0x7fffffffffffffffL, &n)) return CLI_FLAG_BAD;
        p->seed = n < 0 ? cli_random_seed() : (uint64_t)n;
    } else {
        bool unit = cli_is(a, "--top-p", NULL) || cli_is(a, "--min-p", NULL);
        if (!cli_float(cmd, a, v, 0.0, unit ? 1.0 : 100.0, &d)) return CLI_FLAG_BAD;
        if (cli_is(a, "--temp", "--temperature"))
            p->temperature = (float)d;
        else if (cli_is(a, "--top-p", NULL))
            p->top_p = (float)d;
        else if (cli_is(a, "--min-p", NULL))
            p->min_p = (float)d;
        else if ((float)d > 0.0f) /* 0 (also a tiny value that is 0 as a float) would divide
                                     the logits by zero */
            p->repeat_penalty = (float)d;
        else
            return cli_usage_error(cmd, "%s must be > 0 (1 = off), got '%s'", a, v), CLI_FLAG_BAD;
    }
    return CLI_FLAG_TAKEN;
}

void cli_note_quant_method(const char *cmd, const cli_engine_opts *o) {
    if (o->model.quant == PHI3C_QUANT_NONE || o->quant_method_given) return;
    fprintf(stderr,
            "phi3c %s: note: --quant rounds to nearest at load (seconds); `phi3c quantize` "
            "searches per-group scales (13-14%% less squared error, minutes), so the two give "
            "different text; --quant-method search matches the file\n",
            cmd);
}

void cli_lookup_stats(char *buf, size_t len, const cli_engine_opts *o,
                      const phi3c_generate_result *r) {
    if (o->session.lookup <= 0) {
        snprintf(buf, len, "%s", "");
        return;
    }
    snprintf(buf, len, " | lookup: %d drafted, %d accepted (%.0f%%), %.2f tokens/forward",
             r->n_drafted, r->n_accepted, r->n_drafted ? 100.0 * r->n_accepted / r->n_drafted : 0.0,
             r->n_forwards ? (double)r->n_generated / r->n_forwards : 0.0);
}

bool cli_engine_open(const char *cmd, const cli_engine_opts *o, phi3c_model **model,
                     phi3c_session **session) {
    phi3c_error err = {0};
    *model = NULL;
    *session = NULL;
    int cores = cli_core_count();
    if (o->model.n_threads > cores)
        fprintf(stderr,
                "phi3c %s: warning: -t %d is more threads than the %d cores here (slower)\n", cmd,
                o->model.n_threads, cores);
    phi3c_model_params mp = o->model;
    cli_progress bar;
    cli_progress_init(&bar, "loading");
    mp.progress = cli_progress_tensors;
    mp.progress_user = &bar;
    phi3c_status st = phi3c_model_load(o->model_path, &mp, model, &err);
    cli_progress_end(&bar, false);
    if (st != PHI3C_OK) {
        cli_fail(cmd, &err);
        return false;
    }
    int trained = phi3c_model_context_length(*model);
    if (o->ctx_given && o->session.n_ctx > trained) {
        fprintf(stderr,
                "phi3c %s: -c %d is more than the %d positions the model was trained for "
                "(max_position_embeddings %d)\n",
                cmd, o->session.n_ctx, trained, trained);
        phi3c_model_free(*model);
        *model = NULL;
        return false;
    }
    phi3c_session_params sp = o->session;
    if (sp.n_ctx > trained) sp.n_ctx = trained; /* a command's own default (perplexity's 512) */
    if (phi3c_session_create(*model, &sp, session, &err) != PHI3C_OK) {
        cli_fail(cmd, &err);
        phi3c_model_free(*model);
        *model = NULL;
        return false;
    }
    return true;
}

bool cli_need_tokenizer(const char *cmd, const phi3c_model *model, const char *model_path) {
    phi3c_error err = {0};
    phi3c_status st = phi3c_model_tokenizer_status(model, &err);
    if (st == PHI3C_OK) return true;
    if (st == PHI3C_ERR_UNSUPPORTED)
        fprintf(stderr,
                "phi3c %s: %s has no tokenizer (tokenizer.json, tokenizer.model or GGUF "
                "tokenizer metadata); `phi3c logits` works on ids\n",
                cmd, model_path);
    else /* the cause, not "has no tokenizer": the file is there but unusable */
        fprintf(stderr, "phi3c %s: the tokenizer cannot be loaded: %s\n", cmd, err.message);
    return false;
}

bool cli_parse_ids(const char *text, int32_t **out, size_t *n_out) {
    size_t cap = 0, n = 0;
    int32_t *ids = NULL;
    for (const char *p = text;;) {
        while (*p == ' ' || *p == ',' || *p == '\n' || *p == '\t' || *p == '\r') p++;
        if (!*p) {
            if (n == 0) break;
            *out = ids;
            *n_out = n;
            return true;
        }
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v > INT32_MAX) break;
        if (n == cap) {
            /* running out of memory must not pass a shortened prompt on as the whole one */
            size_t grown_cap = cap ? 2 * cap : 16;
            int32_t *grown = realloc(ids, grown_cap * sizeof *ids);
            if (!grown) break;
            ids = grown;
            cap = grown_cap;
        }
        ids[n++] = (int32_t)v;
        p = end;
    }
    free(ids);
    return false;
}
