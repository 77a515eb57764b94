/* cmd_perplexity.c: `phi3c perplexity`: perplexity of a text file in non-overlapping windows. The
 * default is the convention of tools/demo-model/TRAINING.md: the file tokenized as one string
 * without BOS, windows of CTX tokens from token 0, the trailing partial window dropped, every
 * token of a window but the first predicted from the ones before it; exp(mean NLL), NLL summed in
 * double. --llama-compatible scores as llama.cpp's llama-perplexity does instead: BOS as the
 * tokenizer asks, each window's first token replaced by BOS, only the second half of each window
 * scored, and "PPL = X +/- Y" with Y the delta-method standard error of exp(mean NLL). */
#include "cli_args.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { DEFAULT_WINDOW = 512 };

static const char usage[] =
    "usage: phi3c perplexity -m MODEL -f FILE [-c CTX] [--llama-compatible] [options]\n"
    "\n"
    "Tokenizes FILE as one string (no BOS), cuts it into non-overlapping windows of CTX tokens,\n"
    "drops the trailing partial window, and predicts every token of a window except the first\n"
    "from the tokens before it. Prints the perplexity exp(mean negative log-likelihood) on "
    "stdout.\n"
    "\n"
    "  -f, --file FILE       the text\n"
    "  --ids-file FILE       token ids instead of text (no tokenizer needed, used as they are)\n"
    "  -c, --ctx-size N      window size in tokens (default 512, as llama-perplexity; at most\n"
    "                        the model's max_position_embeddings)\n"
    "  --llama-compatible    score as llama.cpp's llama-perplexity: BOS first when the tokenizer\n"
    "                        adds one, each window's first token replaced by BOS, only the\n"
    "                        second half of each window scored (every scored token has at least\n"
    "                        CTX/2 tokens before it); prints \"PPL = X +/- Y\" (Y: standard "
    "error)\n";

/* -log softmax(logits)[target], in double. */
static double token_nll(const float *logits, int vocab, int32_t target) {
    float max = logits[0];
    for (int i = 1; i < vocab; i++) max = logits[i] > max ? logits[i] : max;
    double sum = 0.0;
    for (int i = 0; i < vocab; i++) sum += exp((double)logits[i] - max);
    return log(sum) + max - (double)logits[target];
}

typedef struct ppl_plan {
    int window;
    int first;   /* logits rows from this position on are scored */
    int32_t bos; /* replaces each window's first token when >= 0 */
    bool llama;
} ppl_plan;

typedef struct ppl_sums {
    double nll, nll2; /* sums of the NLL and of its square */
    long long count;
} ppl_sums;

/* Runs one window and adds the NLL of its scored tokens. */
static phi3c_status score_window(phi3c_session *s, int vocab, const ppl_plan *p, int32_t *win,
                                 float *logits, ppl_sums *sums, phi3c_error *err) {
    if (p->bos >= 0) win[0] = p->bos;
    phi3c_session_reset(s);
    phi3c_status st = phi3c_session_feed_tokens(s, win, (size_t)p->window, logits, err);
    if (st != PHI3C_OK) return st;
    for (int pos = p->first; pos + 1 < p->window; pos++, sums->count++) {
        double v = token_nll(logits + (size_t)pos * (size_t)vocab, vocab, win[pos + 1]);
        sums->nll += v;
        sums->nll2 += v * v;
    }
    return PHI3C_OK;
}

static void print_result(const ppl_plan *p, const ppl_sums *sums, size_t n_windows) {
    double mean = sums->nll / (double)sums->count, ppl = exp(mean);
    if (!p->llama) {
        printf("perplexity %.6f over %lld predicted tokens (%zu windows of %d tokens)\n", ppl,
               sums->count, n_windows, p->window);
        return;
    }
    /* the standard error of the mean NLL, carried to exp() to first order */
    double var = sums->nll2 / (double)sums->count - mean * mean;
    double se = var > 0 && sums->count > 1 ? sqrt(var / (double)(sums->count - 1)) : 0.0;
    printf("PPL = %.4f +/- %.5f\n", ppl, se * ppl);
    printf("(%lld scored tokens: the second half of %zu windows of %d tokens)\n", sums->count,
           n_windows, p->window);
}

static int evaluate(phi3c_model *model, phi3c_session *s, int32_t *ids, size_t n,
                    const ppl_plan *p) {
    phi3c_error err = {0};
    int vocab = phi3c_model_vocab_size(model);
    if (p->window - 1 - p->first < 1) { /* nothing scored: the mean would be 0/0 = -nan */
        fprintf(stderr, "phi3c perplexity: windows of %d tokens leave no token to score\n",
                p->window);
        return CLI_EXIT_FAIL;
    }
    size_t n_windows = n / (size_t)p->window;
    if (n_windows == 0) {
        fprintf(stderr, "phi3c perplexity: the text has %zu tokens, fewer than one window of %d\n",
                n, p->window);
        return CLI_EXIT_FAIL;
    }
    float *logits = malloc((size_t)p->window * (size_t)vocab * sizeof(float));
    if (!logits) {
        fprintf(stderr, "phi3c perplexity: out of memory\n");
        return CLI_EXIT_FAIL;
    }
    ppl_sums sums = {0};
    double t0 = p3_time_now();
    for (size_t w = 0; w < n_windows; w++) {
        if (score_window(s, vocab, p, ids + w * (size_t)p->window, logits, &sums, &err) !=
            PHI3C_OK) {
            free(logits);
            return cli_fail("perplexity", &err);
        }
        fprintf(stderr, "[window %zu/%zu: running perplexity %.4f]\n", w + 1, n_windows,
                exp(sums.nll / (double)sums.count));
    }
    free(logits);
    double secs = p3_time_now() - t0;
    print_result(p, &sums, n_windows);
    fprintf(stderr, "phi3c perplexity: %zu tokens in %.2f s (%.1f tok/s)\n", n_windows * p->window,
            secs, (double)(n_windows * (size_t)p->window) / (secs > 0 ? secs : 1e-9));
    return CLI_EXIT_OK;
}

/* The text's ids; with --llama-compatible BOS first when the tokenizer adds one (then also the
 * token every window starts with). */
static phi3c_status text_ids(phi3c_model *model, const char *text, size_t len, ppl_plan *p,
                             int32_t **ids, size_t *n, phi3c_error *err) {
    p->bos = -1;
    if (!p->llama) return phi3c_tokenize(model, text, len, false, ids, n, err);
    int32_t *bos = NULL;
    size_t n_bos = 0;
    phi3c_status st = phi3c_tokenize(model, "", 0, true, &bos, &n_bos, err);
    if (st == PHI3C_OK && n_bos == 1) p->bos = bos[0];
    phi3c_free(bos);
    if (st == PHI3C_OK) st = phi3c_tokenize(model, text, len, true, ids, n, err);
    return st;
}

int cli_perplexity_parse(int argc, char **argv, cli_perplexity_args *a) {
    memset(a, 0, sizeof *a);
    cli_engine_opts *o = &a->o;
    cli_engine_opts_init(o);
    for (int i = 1; i < argc; i++) {
        int r = cli_engine_flag("perplexity", argc, argv, &i, o);
        if (r == CLI_FLAG_BAD) return CLI_EXIT_USAGE;
        if (r == CLI_FLAG_TAKEN) continue;
        if (cli_is(argv[i], "-f", "--file")) {
            if (!(a->file = cli_value("perplexity", argc, argv, &i))) return CLI_EXIT_USAGE;
        } else if (cli_is(argv[i], "--ids-file", NULL)) {
            if (!(a->ids_file = cli_value("perplexity", argc, argv, &i))) return CLI_EXIT_USAGE;
        } else if (cli_is(argv[i], "--llama-compatible", NULL)) {
            a->llama = true;
        } else {
            return cli_usage_error("perplexity", "unknown option '%s'", argv[i]);
        }
    }
    if (!o->model_path) return cli_usage_error("perplexity", "-m MODEL is required");
    int min_window = a->llama ? 3 : 2; /* at least one scored token per window */
    if (o->ctx_given && o->session.n_ctx < min_window)
        return cli_usage_error("perplexity",
                               "-c must be at least %d: smaller windows leave no token to score",
                               min_window);
    if (!a->file == !a->ids_file)
        return cli_usage_error("perplexity", "give one of -f FILE, --ids-file FILE");
    return CLI_EXIT_OK;
}

int cmd_perplexity(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        printf("%s%s", usage, cli_engine_help);
        return CLI_EXIT_OK;
    }
    cli_perplexity_args a;
    int rc = cli_perplexity_parse(argc, argv, &a);
    if (rc != CLI_EXIT_OK) return rc;
    cli_engine_opts o = a.o;
    char *text = NULL;
    size_t len = 0;
    p3_error err = {0};
    const char *path = a.file ? a.file : a.ids_file;
    if (p3_file_read_all(path, &text, &len, &err) != PHI3C_OK) return cli_fail("perplexity", &err);
    int32_t *given = NULL;
    size_t n_given = 0;
    if (a.ids_file && !cli_parse_ids(text, &given, &n_given)) {
        p3_free(text);
        fprintf(stderr, "phi3c perplexity: %s: expected decimal token ids\n", a.ids_file);
        return CLI_EXIT_FAIL;
    }
    o.session.all_logits = true;
    phi3c_model *model;
    phi3c_session *s;
    rc = CLI_EXIT_FAIL;
    if (!o.ctx_given) o.session.n_ctx = DEFAULT_WINDOW; /* capped below by the model's context */
    if (cli_engine_open("perplexity", &o, &model, &s)) {
        int32_t *ids = NULL;
        size_t n = 0;
        ppl_plan p = {.window = phi3c_session_n_ctx(s), .llama = a.llama, .bos = -1};
        p.first = p.llama ? p.window / 2 : 0;
        if (given)
            rc = evaluate(model, s, given, n_given, &p);
        else if (!cli_need_tokenizer("perplexity", model, o.model_path))
            ;
        else if (text_ids(model, text, len, &p, &ids, &n, &err) != PHI3C_OK)
            cli_fail("perplexity", &err);
        else
            rc = evaluate(model, s, ids, n, &p);
        phi3c_free(ids);
        phi3c_session_free(s);
        phi3c_model_free(model);
    }
    p3_free(text);
    free(given);
    return rc;
}
