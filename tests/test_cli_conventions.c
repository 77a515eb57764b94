/* test_cli_conventions.c: the command-line conventions llama.cpp users expect (issue 14):
 * --opt=value, the -s/--ctx-size/-sys aliases, random seeds printed in the stats line, -c capped
 * by the model's max_position_embeddings, -t above the core count, detokenize usage, the model's
 * vocabulary size in messages, quantize refusing a .gguf name, and perplexity
 * --llama-compatible against transformers' logits. Expected numbers come from the model files
 * (config.json) and the oracle fixtures, not from phi3c. */
#include "harness.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEMO "tools/demo-model"

/* Runs `phi3c ARGS` and returns its result (exit code, stdout, stderr). */
static bool cli(p3_test_ctx *t, const char *args, p3_cmd_result *r) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s %s", p3_test_cli(), args);
    return p3_test_run(t, cmd, r);
}

/* The number after "seed " in the stats line, or -1. */
static long long stats_seed(const char *err) {
    const char *p = err ? strstr(err, "| seed ") : NULL;
    return p ? atoll(p + 7) : -1;
}

P3_TEST(cli_option_equals_value_and_seed_alias_give_the_spaced_form) {
    p3_cmd_result a = {0}, b = {0};
    if (cli(t, "run -m " DEMO " -p 'And God said' -n 8 --temp=0.9 --top-k=20 --seed=7 -t 1", &a) &&
        cli(t, "run -m " DEMO " -p 'And God said' -n 8 --temp 0.9 --top-k 20 -s 7 --threads 1",
            &b)) {
        CHECK_MSG(a.exit_code == 0 && b.exit_code == 0, "%s / %s", a.err ? a.err : "",
                  b.err ? b.err : "");
        CHECK_MSG(a.out && b.out && strcmp(a.out, b.out) == 0, "'%s' vs '%s'", a.out, b.out);
        CHECK_MSG(stats_seed(a.err) == 7 && stats_seed(b.err) == 7, "stats: %s", a.err);
    }
    p3_cmd_result_free(&a);
    p3_cmd_result_free(&b);
}

P3_TEST(cli_no_seed_or_minus_one_is_random_and_printed) {
    long long seeds[3] = {-1, -1, -1};
    const char *args[] = {"", "", "--seed -1"};
    for (int i = 0; i < 3; i++) {
        char a[512];
        snprintf(a, sizeof a, "run -m " DEMO " -p 'And God said' -n 2 %s", args[i]);
        p3_cmd_result r = {0};
        if (cli(t, a, &r)) {
            CHECK_MSG(r.exit_code == 0, "%s", r.err ? r.err : "");
            seeds[i] = stats_seed(r.err);
        }
        p3_cmd_result_free(&r);
    }
    CHECK_MSG(seeds[0] >= 0 && seeds[1] >= 0 && seeds[2] >= 0, "seeds %lld %lld %lld", seeds[0],
              seeds[1], seeds[2]);
    CHECK_MSG(seeds[0] != seeds[1] && seeds[1] != seeds[2], "seeds %lld %lld %lld", seeds[0],
              seeds[1], seeds[2]);
}

/* The demo model's config.json says max_position_embeddings 512. */
P3_TEST(cli_ctx_above_the_trained_positions_is_refused_with_the_limit) {
    p3_cmd_result r = {0};
    if (cli(t, "run -m " DEMO " -p hi -n 1 --ctx-size=100000", &r)) {
        CHECK_EQ_INT(r.exit_code, 1);
        CHECK_MSG(r.err && strstr(r.err, "max_position_embeddings 512"), "%s", r.err);
    }
    p3_cmd_result_free(&r);
    if (cli(t, "run -m " DEMO " -p hi -n 1 -c 512 --greedy", &r))
        CHECK_MSG(r.exit_code == 0, "-c 512: %s", r.err ? r.err : "");
    p3_cmd_result_free(&r);
}

P3_TEST(cli_threads_above_the_core_count_warn) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    char a[512];
    snprintf(a, sizeof a, "run -m " DEMO " -p hi -n 1 --greedy -t %ld", cores + 1);
    p3_cmd_result r = {0};
    if (cli(t, a, &r)) {
        CHECK_MSG(r.exit_code == 0, "%s", r.err ? r.err : "");
        CHECK_MSG(r.err && strstr(r.err, "warning") && strstr(r.err, "cores"), "%s", r.err);
    }
    p3_cmd_result_free(&r);
    snprintf(a, sizeof a, "run -m " DEMO " -p hi -n 1 --greedy -t %ld", cores);
    if (cli(t, a, &r)) CHECK_MSG(r.err && !strstr(r.err, "warning"), "%s", r.err);
    p3_cmd_result_free(&r);
}

/* The demo model's config.json says vocab_size 32064 (its tokenizer has 32011 tokens). */
P3_TEST(cli_detokenize_usage_and_the_model_vocabulary_size) {
    p3_cmd_result r = {0};
    if (cli(t, "detokenize -m " DEMO, &r)) CHECK_EQ_INT(r.exit_code, 2);
    p3_cmd_result_free(&r);
    if (cli(t, "detokenize -m " DEMO " 99999", &r)) {
        CHECK_EQ_INT(r.exit_code, 1);
        CHECK_MSG(r.err && strstr(r.err, "vocabulary size 32064"), "%s", r.err);
    }
    p3_cmd_result_free(&r);
    /* a padding row of the model (no token): valid, decodes to nothing, as HF */
    if (cli(t, "detokenize -m " DEMO " 32050", &r))
        CHECK_MSG(r.exit_code == 0 && r.out_len == 0, "exit %d", r.exit_code);
    p3_cmd_result_free(&r);
}

P3_TEST(cli_quantize_refuses_a_gguf_output_name) {
    char a[1024], out[512];
    snprintf(out, sizeof out, "%s/out.gguf", p3_test_tmpdir(t));
    snprintf(a, sizeof a, "quantize -m tests/fixtures/mini4k/hf-bf16 -o %s", out);
    p3_cmd_result r = {0};
    if (cli(t, a, &r)) {
        CHECK_EQ_INT(r.exit_code, 2);
        CHECK_MSG(r.err && strstr(r.err, "not GGUF"), "%s", r.err);
        CHECK(!p3_file_exists(out));
    }
    p3_cmd_result_free(&r);
}

P3_TEST(cli_system_prompt_aliases_and_quant_note) {
    const char *forms[] = {"-sys 'Answer briefly.'", "--system-prompt='Answer briefly.'"};
    for (int i = 0; i < 2; i++) {
        char a[512];
        snprintf(a, sizeof a,
                 "run -m " DEMO " --chat %s -p 'In the beginning' -n 1 --greedy --verbose-prompt",
                 forms[i]);
        p3_cmd_result r = {0};
        /* transformers' apply_chat_template ids (as in test_cli_run.c) */
        if (cli(t, a, &r))
            CHECK_MSG(r.err && strstr(r.err, "prompt ids: 32006 673 23359 29889 32007 32010 512 "
                                             "278 6763 32007 32001\n"),
                      "%s: %s", forms[i], r.err);
        p3_cmd_result_free(&r);
    }
    p3_cmd_result r = {0};
    if (cli(t, "run -m " DEMO " -p hi -n 1 --greedy --quant int4-g128", &r))
        CHECK_MSG(r.err && strstr(r.err, "note: --quant rounds to nearest"), "%s", r.err);
    p3_cmd_result_free(&r);
    if (cli(t, "run -m " DEMO " -p hi -n 1 --greedy --quant int4-g128 --quant-method rtn", &r))
        CHECK_MSG(r.err && !strstr(r.err, "note:"), "%s", r.err);
    p3_cmd_result_free(&r);
}

/* llama-perplexity's estimate from transformers' logits: the second half of the window scored,
 * PPL = exp(mean NLL), +/- PPL * sqrt((mean(NLL^2) - mean^2) / (count - 1)). */
static void oracle_llama_ppl(const float *logits, const int32_t *ids, int n, int vocab, double *ppl,
                             double *se) {
    double nll = 0.0, nll2 = 0.0;
    int count = 0;
    for (int p = n / 2; p + 1 < n; p++, count++) {
        const float *row = logits + (size_t)p * (size_t)vocab;
        double max = row[0], sum = 0.0;
        for (int v = 1; v < vocab; v++) max = row[v] > max ? row[v] : max;
        for (int v = 0; v < vocab; v++) sum += exp(row[v] - max);
        double x = log(sum) + max - row[ids[p + 1]];
        nll += x;
        nll2 += x * x;
    }
    double mean = nll / count;
    *ppl = exp(mean);
    *se = *ppl * sqrt((nll2 / count - mean * mean) / (count - 1));
}

P3_TEST(cli_perplexity_llama_compatible_matches_transformers_logits) {
    size_t size = 0, lsize = 0;
    char *text = p3_test_read_file(t, "tests/fixtures/mini4k/seq0.ids", &size);
    float *logits = p3_test_read_file(t, "tests/fixtures/mini4k/f32.seq0.logits", &lsize);
    int32_t ids[256];
    int n = 0;
    char *p = text, *end;
    for (long v = text ? strtol(p, &end, 10) : 0; text && end != p && n < 256;
         v = strtol(p, &end, 10)) {
        ids[n++] = (int32_t)v;
        p = end;
    }
    char a[512];
    snprintf(a, sizeof a,
             "perplexity -m tests/fixtures/mini4k/model-f32.gguf --ids-file "
             "tests/fixtures/mini4k/seq0.ids -c %d --llama-compatible",
             n);
    p3_cmd_result r = {0};
    if (text && logits && CHECK(lsize == (size_t)n * 256 * sizeof(float)) && cli(t, a, &r)) {
        CHECK_MSG(r.exit_code == 0, "%s", r.err ? r.err : "");
        double ppl = 0, se = 0, want_ppl, want_se;
        const char *at = r.out ? strstr(r.out, "PPL = ") : NULL;
        CHECK_MSG(at && sscanf(at, "PPL = %lf +/- %lf", &ppl, &se) == 2, "%s", r.out);
        oracle_llama_ppl(logits, ids, n, 256, &want_ppl, &want_se);
        CHECK_MSG(fabs(ppl - want_ppl) <= 1e-4 * want_ppl + 1e-4, "PPL %.4f, oracle %.4f", ppl,
                  want_ppl);
        CHECK_MSG(fabs(se - want_se) <= 1e-3 * want_se + 1e-5, "+/- %.5f, oracle %.5f", se,
                  want_se);
    }
    p3_cmd_result_free(&r);
    p3_free(text);
    p3_free(logits);
}
