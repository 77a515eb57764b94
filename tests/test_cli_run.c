/* test_cli_run.c: the engine commands as a user runs them: `phi3c logits` files against
 * transformers' logits, `phi3c run` greedy ids against transformers' generate, usage errors, and
 * a piped 3-turn `phi3c chat` whose stats show that turn 2 prefills only the new turn. */
#include "harness.h"

#include <stdlib.h>
#include <string.h>

static char *read_text(p3_test_ctx *t, const char *path) {
    size_t size;
    char *s = p3_test_read_file(t, path, &size);
    if (s) /* drop the trailing newline */
        while (size && (s[size - 1] == '\n' || s[size - 1] == ' ')) s[--size] = '\0';
    return s;
}

static void check_logits_file(p3_test_ctx *t, const char *model, const char *oracle,
                              const char *extra, double rel_bound) {
    char cmd[1024], out[512];
    snprintf(out, sizeof out, "%s/logits.bin", p3_test_tmpdir(t));
    snprintf(cmd, sizeof cmd,
             "%s logits -m %s --ids-file tests/fixtures/mini4k/seq0.ids --out %s -t 2 %s",
             p3_test_cli(), model, out, extra);
    p3_cmd_result r;
    if (!p3_test_run(t, cmd, &r)) return;
    CHECK_MSG(r.exit_code == 0, "%s: %s", cmd, r.err ? r.err : "");
    size_t n_got = 0, n_want = 0;
    float *got = r.exit_code == 0 ? p3_test_read_file(t, out, &n_got) : NULL;
    float *want = p3_test_read_file(t, oracle, &n_want);
    if (got && want && CHECK_MSG(n_got == n_want, "%zu bytes, oracle %zu", n_got, n_want)) {
        size_t n = n_want / sizeof(float);
        double e = p3_max_abs_diff(got, want, n), bound = rel_bound * p3_max_abs(want, n);
        CHECK_MSG(e <= bound, "%s: max error %g > %g", cmd, e, bound);
    }
    p3_free(got);
    p3_free(want);
    p3_cmd_result_free(&r);
}

P3_TEST(cli_logits_prefill_and_decode_match_transformers) {
    check_logits_file(t, "tests/fixtures/mini4k/model-f32.gguf",
                      "tests/fixtures/mini4k/f32.seq0.logits", "", 1e-4);
    check_logits_file(t, "tests/fixtures/mini4k/hf-f32", "tests/fixtures/mini4k/f32.seq0.logits",
                      "--decode", 1e-4);
    check_logits_file(t, "tests/fixtures/mini4k/hf-bf16", "tests/fixtures/mini4k/bf16.seq0.logits",
                      "--kv f32", 2e-3);
}

P3_TEST(cli_run_greedy_ids_equal_transformers_across_the_longrope_switch) {
    char *prompt = read_text(t, "tests/fixtures/longrope/gen.prompt.ids");
    char *want = read_text(t, "tests/fixtures/longrope/bf16.gen.out.ids");
    char cmd[2048];
    if (prompt && want) {
        snprintf(cmd, sizeof cmd,
                 "%s run -m tests/fixtures/longrope/model-bf16.gguf --prompt-ids \"%s\" -n 32 "
                 "--greedy -t 2",
                 p3_test_cli(), prompt);
        p3_cmd_result r;
        if (p3_test_run(t, cmd, &r)) {
            CHECK_MSG(r.exit_code == 0, "%s", r.err ? r.err : "");
            char *got = r.out ? r.out : (char *)"";
            size_t len = strlen(got);
            while (len && (got[len - 1] == '\n' || got[len - 1] == ' ')) got[--len] = '\0';
            CHECK_MSG(strcmp(got, want) == 0, "run printed '%s', transformers '%s'", got, want);
            CHECK(r.err && strstr(r.err, "tok/s") && strstr(r.err, "time to first token"));
        }
        p3_cmd_result_free(&r);
    }
    p3_free(prompt);
    p3_free(want);
}

P3_TEST(cli_engine_commands_reject_bad_usage) {
    const char *bad[] = {
        "logits --ids \"1 2\" --out /dev/null",                                  /* no model */
        "logits -m tests/fixtures/mini4k/hf-bf16 --ids \"1 x\" --out /dev/null", /* bad ids */
        "run -m tests/fixtures/mini4k/hf-bf16",                                  /* no prompt */
        "run -m tests/fixtures/mini4k/hf-bf16 -p hi --quant int3",               /* bad quant */
        "chat -m tests/fixtures/mini4k/hf-bf16 --kv f8",                         /* bad kv */
        "perplexity -m tests/fixtures/mini4k/hf-bf16",                           /* no file */
    };
    for (size_t i = 0; i < P3_ARRAY_LEN(bad); i++) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "%s %s", p3_test_cli(), bad[i]);
        p3_cmd_result r;
        if (p3_test_run(t, cmd, &r))
            CHECK_MSG(r.exit_code == 2, "'%s' exited %d", bad[i], r.exit_code);
        p3_cmd_result_free(&r);
    }
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "%s logits -m tests/fixtures/mini4k/hf-bf16 --ids \"1 2 3\" -c 2 --out %s/x.bin",
             p3_test_cli(), p3_test_tmpdir(t));
    p3_cmd_result r;
    if (p3_test_run(t, cmd, &r)) {
        CHECK_EQ_INT(r.exit_code, 1);
        CHECK(r.err && strstr(r.err, "context full"));
    }
    p3_cmd_result_free(&r);
}

/* "[turn N: prefilled P tokens ... cache C/..." -> P and C of turn N, or false. */
static bool turn_stats(const char *err, int turn, int *prefilled, int *cache) {
    char key[32];
    snprintf(key, sizeof key, "[turn %d: prefilled ", turn);
    const char *p = err ? strstr(err, key) : NULL;
    if (!p) return false;
    *prefilled = atoi(p + strlen(key));
    const char *c = strstr(p, "cache ");
    *cache = c ? atoi(c + 6) : -1;
    return c != NULL;
}

P3_TEST(cli_chat_piped_three_turns_keeps_the_cache) {
    const char *model = "tools/demo-model";
    if (!p3_is_directory(model)) {
        p3_test_skip(t, "%s (the demo model with a tokenizer) is not in this tree", model);
        return;
    }
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "printf 'In the beginning\\nAnd the earth\\n/reset\\nLet there be light\\nAnd God "
             "saw\\n' | "
             "%s chat -m %s --system 'Answer briefly.' -n 8 --greedy -t 2",
             p3_test_cli(), model);
    p3_cmd_result r;
    if (p3_test_run(t, cmd, &r)) {
        CHECK_MSG(r.exit_code == 0, "%s", r.err ? r.err : "");
        int p1, c1, p2, c2, p3, c3;
        bool ok = CHECK(turn_stats(r.err, 1, &p1, &c1)) && CHECK(turn_stats(r.err, 2, &p2, &c2));
        if (ok) {
            /* turn 2 prefills only its own tokens: the cache grows by them plus the answer */
            CHECK_MSG(p2 < c1, "turn 2 prefilled %d tokens, turn 1 left %d in the cache", p2, c1);
            CHECK(c2 > c1);
        }
        /* after /reset the count starts again and a whole new conversation is prefilled */
        const char *after = r.err ? strstr(r.err, "[new conversation]") : NULL;
        CHECK(after != NULL);
        if (after && CHECK(turn_stats(after, 1, &p3, &c3))) CHECK(c3 < c2);
        CHECK(r.out && strlen(r.out) > 0);
    }
    p3_cmd_result_free(&r);
}
