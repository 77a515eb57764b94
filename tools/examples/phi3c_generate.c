/* phi3c_generate.c: the smallest complete program on phi3c's public API (include/phi3c.h only):
 * load a model, create a session, feed a prompt, generate with a per-token callback, free.
 *
 *   build/examples/phi3c_generate MODEL "prompt text" [N]     (needs the model's tokenizer)
 *   build/examples/phi3c_generate MODEL --ids "1 2 3" [N]     (token ids in and out)
 *
 * Generation is greedy, so the output is reproducible. Outside this repository, build it with
 *   cc phi3c_generate.c $(pkg-config --cflags --libs phi3c) */
#include <phi3c.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct printer {
    bool ids; /* print ids instead of text */
    int count;
} printer;

/* Prints each token as it arrives: its text, or its id (--ids, or no tokenizer). */
static bool print_token(void *user, int32_t token, const char *text, size_t len) {
    printer *p = user;
    if (text && !p->ids)
        fwrite(text, 1, len, stdout);
    else if (token >= 0)
        printf("%s%d", p->count++ ? " " : "", (int)token);
    fflush(stdout);
    return true; /* false would stop the generation */
}

/* "1 2 3" -> ids; returns how many (at most cap). */
static size_t parse_ids(const char *text, int32_t *ids, size_t cap) {
    size_t n = 0;
    char *end;
    for (long v = strtol(text, &end, 10); end != text && n < cap; v = strtol(text, &end, 10)) {
        ids[n++] = (int32_t)v;
        text = end;
    }
    return n;
}

int main(int argc, char **argv) {
    bool use_ids = argc >= 4 && strcmp(argv[2], "--ids") == 0;
    if (argc < 3 || (strcmp(argv[2], "--ids") == 0 && argc < 4)) {
        fprintf(stderr, "usage: %s MODEL (\"prompt\" | --ids \"1 2 3\") [N]\n", argv[0]);
        return 2;
    }
    const char *prompt = argv[use_ids ? 3 : 2];
    int n_new = argc > (use_ids ? 4 : 3) ? atoi(argv[use_ids ? 4 : 3]) : 32;

    phi3c_error err = {0};
    phi3c_model *model = NULL;
    phi3c_session *session = NULL;
    phi3c_model_params mp = phi3c_model_params_default();
    if (phi3c_model_load(argv[1], &mp, &model, &err) != PHI3C_OK) {
        fprintf(stderr, "load failed: %s\n", err.message);
        return 1;
    }
    phi3c_session_params sp = phi3c_session_params_default();
    int rc = 1;
    int32_t given[1024];
    size_t n = 0;
    if (phi3c_session_create(model, &sp, &session, &err) != PHI3C_OK) goto done;
    if (use_ids) {
        n = parse_ids(prompt, given, sizeof given / sizeof given[0]);
        if (phi3c_session_feed_tokens(session, given, n, NULL, &err) != PHI3C_OK) goto done;
    } else if (phi3c_session_feed_text(session, prompt, strlen(prompt), true, &n, &err) !=
               PHI3C_OK) {
        goto done;
    }

    phi3c_sampler_params greedy = phi3c_sampler_params_greedy();
    phi3c_generate_result result;
    printer pr = {.ids = use_ids};
    if (!use_ids) fputs(prompt, stdout);
    if (phi3c_generate(session, &greedy, n_new, print_token, &pr, &result, &err) != PHI3C_OK)
        goto done;
    printf("\n");
    fprintf(stderr, "%d tokens in %.3f s\n", result.n_generated, result.seconds);
    rc = 0;
done:
    if (rc) fprintf(stderr, "error: %s\n", err.message);
    phi3c_session_free(session);
    phi3c_model_free(model);
    return rc;
}
