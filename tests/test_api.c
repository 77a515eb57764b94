/* test_api.c: the public API of include/phi3c.h: logits of a session against transformers,
 * generation stop reasons, clear errors, and the example program (tools/examples/) run as a user
 * would, its output compared with transformers' greedy ids. */
#include "api_internal.h"
#include "fixture_util.h"
#include "harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

P3_TEST(api_session_logits_match_transformers) {
    phi3c_error err = {0};
    phi3c_model *m = NULL;
    phi3c_session *s = NULL;
    size_t size = 0;
    int n_ids = 0;
    int32_t *ids = p3_fixture_read_ids(t, "tests/fixtures/mini4k/seq0.ids", &n_ids);
    size_t n = (size_t)n_ids;
    float *want = p3_test_read_file(t, "tests/fixtures/mini4k/f32.seq0.logits", &size);
    phi3c_session_params sp = phi3c_session_params_default();
    sp.all_logits = true;
    if (ids && want &&
        CHECK_OK(phi3c_model_load("tests/fixtures/mini4k/hf-f32", NULL, &m, &err), &err) &&
        CHECK_OK(phi3c_session_create(m, &sp, &s, &err), &err)) {
        int vocab = phi3c_model_vocab_size(m);
        CHECK_EQ_INT(vocab, 256);
        CHECK_EQ_INT(size, n * (size_t)vocab * sizeof(float));
        float *got = p3_malloc(size);
        if (CHECK_OK(phi3c_session_feed_tokens(s, ids, n, got, &err), &err)) {
            double bound = 1e-4 * p3_max_abs(want, n * (size_t)vocab);
            CHECK(p3_max_abs_diff(got, want, n * (size_t)vocab) <= bound);
            const float *last = phi3c_session_logits(s);
            CHECK(p3_max_abs_diff(last, want + (n - 1) * (size_t)vocab, (size_t)vocab) <= bound);
            CHECK_EQ_INT(phi3c_session_n_past(s), n);
        }
        p3_free(got);
        char desc[256];
        phi3c_model_describe(m, desc, sizeof desc);
        CHECK(strstr(desc, "2 layers") != NULL);
    }
    phi3c_session_free(s);
    phi3c_model_free(m);
    p3_free(ids);
    p3_free(want);
}

typedef struct stopper {
    int seen, stop_after;
} stopper;

static bool stop_after(void *user, int32_t token, const char *text, size_t len) {
    stopper *st = user;
    (void)token;
    (void)text;
    (void)len;
    return ++st->seen < st->stop_after;
}

P3_TEST(api_generate_stops_on_callback_and_on_full_context) {
    phi3c_error err = {0};
    phi3c_model *m = NULL;
    phi3c_session *s = NULL;
    phi3c_session_params sp = phi3c_session_params_default();
    sp.n_ctx = 13;
    const int32_t prompt[8] = {21, 236, 23, 107, 251, 183, 12, 95};
    phi3c_sampler_params greedy = phi3c_sampler_params_greedy();
    phi3c_generate_result r;
    if (!CHECK_OK(phi3c_model_load("tests/fixtures/mini4k/hf-bf16", NULL, &m, &err), &err) ||
        !CHECK_OK(phi3c_session_create(m, &sp, &s, &err), &err)) {
        phi3c_model_free(m);
        return;
    }
    CHECK_STATUS(phi3c_generate(s, &greedy, 4, NULL, NULL, &r, &err), PHI3C_ERR_INVALID_ARG);
    CHECK(strstr(err.message, "prompt") != NULL);
    CHECK_OK(phi3c_session_feed_tokens(s, prompt, 8, NULL, &err), &err);
    stopper st = {0, 3};
    CHECK_OK(phi3c_generate(s, &greedy, 10, stop_after, &st, &r, &err), &err);
    CHECK_EQ_INT(r.n_generated, 3);
    CHECK_EQ_INT(r.stop, PHI3C_STOP_CALLBACK);
    CHECK_EQ_INT(phi3c_session_n_past(s), 8 + 3); /* the cache holds what the caller saw */
    phi3c_session_reset(s);
    CHECK_EQ_INT(phi3c_session_n_past(s), 0);
    CHECK_OK(phi3c_session_feed_tokens(s, prompt, 8, NULL, &err), &err);
    CHECK_OK(phi3c_generate(s, &greedy, 100, NULL, NULL, &r, &err), &err);
    CHECK_EQ_INT(r.stop, PHI3C_STOP_CONTEXT_FULL);
    CHECK_EQ_INT(phi3c_session_n_past(s), 13);
    CHECK_EQ_INT(r.n_generated, 6); /* 5 fed after the prompt, the 6th fills nothing */
    CHECK_STATUS(phi3c_session_feed_tokens(s, prompt, 1, NULL, &err), PHI3C_ERR_CONTEXT_FULL);
    /* the library states the problem and the value; flag advice is the CLI's (tools/cli/cli.c) */
    CHECK_MSG(strstr(err.message, "context of 13 positions") && !strstr(err.message, "--"), "%s",
              err.message);
    phi3c_session_free(s);
    phi3c_model_free(m);
}

P3_TEST(api_errors_name_the_problem) {
    phi3c_error err = {0};
    phi3c_model *m = NULL;
    phi3c_status st = phi3c_model_load("tests/fixtures/no-such-model", NULL, &m, &err);
    CHECK(st != PHI3C_OK && m == NULL);
    CHECK(strstr(err.message, "no-such-model") != NULL);
    phi3c_model_params mp = phi3c_model_params_default();
    mp.backend = "no-such-backend";
    CHECK_STATUS(phi3c_model_load("tests/fixtures/mini4k/hf-bf16", &mp, &m, &err),
                 PHI3C_ERR_INVALID_ARG);
    CHECK(strstr(err.message, "no-such-backend") != NULL);
}

/* build/phi3c or build/asan/phi3c -> build/examples/NAME (only the release build has it). */
static void example_path(char *out, size_t len, const char *name) {
    char dir[256];
    snprintf(dir, sizeof dir, "%s", p3_test_cli());
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    size_t n = strlen(dir);
    if (n >= 5 && strcmp(dir + n - 5, "/asan") == 0) dir[n - 5] = '\0';
    snprintf(out, len, "%s/examples/%s", dir, name);
}

P3_TEST(api_example_program_generates_transformers_greedy_ids) {
    char exe[300], cmd[1024];
    example_path(exe, sizeof exe, "phi3c_generate");
    if (!p3_file_exists(exe)) {
        p3_test_skip(t, "%s not built (make builds it)", exe);
        return;
    }
    int n_prompt = 0, n_want_ids = 0;
    int32_t *prompt = p3_fixture_read_ids(t, "tests/fixtures/mini4k/gen.prompt.ids", &n_prompt);
    int32_t *want = p3_fixture_read_ids(t, "tests/fixtures/mini4k/f32.gen.out.ids", &n_want_ids);
    size_t n = (size_t)n_prompt, n_want = (size_t)n_want_ids;
    if (prompt && want) {
        int len = snprintf(cmd, sizeof cmd, "%s tests/fixtures/mini4k/hf-f32 --ids \"", exe);
        for (size_t i = 0; i < n; i++)
            len +=
                snprintf(cmd + len, sizeof cmd - (size_t)len, "%s%d", i ? " " : "", (int)prompt[i]);
        snprintf(cmd + len, sizeof cmd - (size_t)len, "\" %zu", n_want);
        p3_cmd_result r;
        if (p3_test_run(t, cmd, &r)) {
            CHECK_EQ_INT(r.exit_code, 0);
            size_t n_got = 0;
            int32_t got[64];
            char *p = r.out, *end;
            for (long v = strtol(p, &end, 10); p && end != p && n_got < 64;
                 v = strtol(p, &end, 10)) {
                got[n_got++] = (int32_t)v;
                p = end;
            }
            CHECK_EQ_INT(n_got, n_want);
            CHECK_MSG(n_got == n_want && memcmp(got, want, n_want * sizeof *want) == 0,
                      "example output '%s' differs from transformers' greedy ids", r.out);
        }
        p3_cmd_result_free(&r);
    }
    p3_free(prompt);
    p3_free(want);
}

/* The API takes the tokenizer from what the loader already parsed (p3_tokenizer_load_source), not
 * by reopening the path: with the file renamed away after the open, the tokenizer still loads. */
P3_TEST(api_tokenizer_comes_from_the_open_source) {
    char path[512], moved[512];
    snprintf(path, sizeof path, "%s/vocab.gguf", p3_test_tmpdir(t));
    snprintf(moved, sizeof moved, "%s/moved.gguf", p3_test_tmpdir(t));
    size_t size = 0;
    void *bytes = p3_test_read_file(t, "tests/fuzz/corpus/fuzz_gguf_tokenizer/small.gguf", &size);
    FILE *f = bytes ? fopen(path, "wb") : NULL;
    if (!CHECK(f && fwrite(bytes, 1, size, f) == size)) {
        if (f) fclose(f);
        p3_free(bytes);
        return;
    }
    fclose(f);
    p3_free(bytes);
    p3_model_source *src = NULL;
    p3_error err = {0};
    if (!CHECK_OK(p3_source_open(path, &src, &err), &err)) return;
    CHECK(rename(path, moved) == 0);
    phi3c_model model = {0};
    p3_api_load_tokenizer(&model, src);
    CHECK_MSG(model.tok != NULL, "tokenizer not loaded: %s", model.tok_error);
    p3_tokenizer_free(model.tok);
    p3_source_close(src);
}
