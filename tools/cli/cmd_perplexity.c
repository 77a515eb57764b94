/* cmd_perplexity.c: `phi3c perplexity`: perplexity of a text file in non-overlapping windows, the
 * convention of tools/demo-model/TRAINING.md: the file tokenized as one string without BOS,
 * windows of CTX tokens from token 0, the trailing partial window dropped, every token of a window
 * but the first predicted from the ones before it; exp(mean NLL), NLL summed in double. */
#include "cli_engine.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: phi3c perplexity -m MODEL -f FILE [-c CTX] [options]\n"
    "\n"
    "Tokenizes FILE as one string (no BOS), cuts it into non-overlapping windows of CTX tokens\n"
    "(default: min(model context, 512)), drops the trailing partial window, and predicts every\n"
    "token of a window except the first from the tokens before it. Prints the perplexity\n"
    "exp(mean negative log-likelihood) on stdout.\n"
    "\n"
    "  -f, --file FILE       the text\n"
    "  --ids-file FILE       token ids instead of text (no tokenizer needed)\n";

/* -log softmax(logits)[target], in double. */
static double token_nll(const float *logits, int vocab, int32_t target) {
    float max = logits[0];
    for (int i = 1; i < vocab; i++) max = logits[i] > max ? logits[i] : max;
    double sum = 0.0;
    for (int i = 0; i < vocab; i++) sum += exp((double)logits[i] - max);
    return log(sum) + max - (double)logits[target];
}

static int evaluate(phi3c_model *model, phi3c_session *s, const int32_t *ids, size_t n,
                    int window) {
    phi3c_error err = {0};
    int vocab = phi3c_model_vocab_size(model);
    if (window < 2) { /* a window of one token predicts nothing: the mean would be 0/0 */
        fprintf(stderr,
                "phi3c perplexity: windows of %d token predict nothing (use -c 2 or more)\n",
                window);
        return CLI_EXIT_FAIL;
    }
    size_t n_windows = n / (size_t)window;
    if (n_windows == 0) {
        fprintf(stderr, "phi3c perplexity: the text has %zu tokens, fewer than one window of %d\n",
                n, window);
        return CLI_EXIT_FAIL;
    }
    float *logits = malloc((size_t)window * (size_t)vocab * sizeof(float));
    if (!logits) {
        fprintf(stderr, "phi3c perplexity: out of memory\n");
        return CLI_EXIT_FAIL;
    }
    double nll = 0.0, t0 = p3_time_now();
    long long count = 0;
    for (size_t w = 0; w < n_windows; w++) {
        const int32_t *win = ids + w * (size_t)window;
        phi3c_session_reset(s);
        if (phi3c_session_feed_tokens(s, win, (size_t)window, logits, &err) != PHI3C_OK) {
            free(logits);
            return cli_fail("perplexity", &err);
        }
        for (int p = 0; p + 1 < window; p++, count++)
            nll += token_nll(logits + (size_t)p * (size_t)vocab, vocab, win[p + 1]);
        fprintf(stderr, "[window %zu/%zu: running perplexity %.4f]\n", w + 1, n_windows,
                exp(nll / (double)count));
    }
    free(logits);
    double secs = p3_time_now() - t0;
    printf("perplexity %.6f over %lld predicted tokens (%zu windows of %d tokens)\n",
           exp(nll / (double)count), count, n_windows, window);
    fprintf(stderr, "phi3c perplexity: %zu tokens in %.2f s (%.1f tok/s)\n", n_windows * window,
            secs, (double)(n_windows * (size_t)window) / (secs > 0 ? secs : 1e-9));
    return CLI_EXIT_OK;
}

int cmd_perplexity(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        printf("%s%s", usage, cli_engine_help);
        return CLI_EXIT_OK;
    }
    cli_engine_opts o;
    cli_engine_opts_init(&o);
    const char *file = NULL, *ids_file = NULL;
    for (int i = 1; i < argc; i++) {
        int r = cli_engine_flag("perplexity", argc, argv, &i, &o);
        if (r == CLI_FLAG_BAD) return CLI_EXIT_USAGE;
        if (r == CLI_FLAG_TAKEN) continue;
        if (cli_is(argv[i], "-f", "--file")) {
            if (!(file = cli_value("perplexity", argc, argv, &i))) return CLI_EXIT_USAGE;
        } else if (cli_is(argv[i], "--ids-file", NULL)) {
            if (!(ids_file = cli_value("perplexity", argc, argv, &i))) return CLI_EXIT_USAGE;
        } else {
            return cli_usage_error("perplexity", "unknown option '%s'", argv[i]);
        }
    }
    if (!o.model_path) return cli_usage_error("perplexity", "-m MODEL is required");
    if (o.ctx_given && o.session.n_ctx < 2)
        return cli_usage_error("perplexity", "-c must be at least 2: a window of one token "
                                             "predicts nothing");
    if (!file == !ids_file)
        return cli_usage_error("perplexity", "give one of -f FILE, --ids-file FILE");
    char *text = NULL;
    size_t len = 0;
    p3_error err = {0};
    if (p3_file_read_all(file ? file : ids_file, &text, &len, &err) != PHI3C_OK)
        return cli_fail("perplexity", &err);
    int32_t *given = NULL;
    size_t n_given = 0;
    if (ids_file && !cli_parse_ids(text, &given, &n_given)) {
        p3_free(text);
        fprintf(stderr, "phi3c perplexity: %s: expected decimal token ids\n", ids_file);
        return CLI_EXIT_FAIL;
    }
    o.session.all_logits = true;
    phi3c_model *model;
    phi3c_session *s;
    int rc = CLI_EXIT_FAIL;
    if (cli_engine_open("perplexity", &o, &model, &s)) {
        int32_t *ids = NULL;
        size_t n = 0;
        int window = o.ctx_given ? phi3c_session_n_ctx(s) : P3_MIN(phi3c_session_n_ctx(s), 512);
        if (given)
            rc = evaluate(model, s, given, n_given, window);
        else if (!phi3c_model_has_tokenizer(model))
            fprintf(stderr, "phi3c perplexity: %s has no tokenizer\n", o.model_path);
        else if (phi3c_tokenize(model, text, len, false, &ids, &n, &err) != PHI3C_OK)
            cli_fail("perplexity", &err);
        else
            rc = evaluate(model, s, ids, n, window);
        phi3c_free(ids);
        phi3c_session_free(s);
        phi3c_model_free(model);
    }
    p3_free(text);
    free(given);
    return rc;
}
