/* test_cli_conventions.c: the command-line conventions llama.cpp users expect (issue 14):
 * --opt=value, the -s/--ctx-size/-sys aliases, random seeds printed in the stats line, -c capped
 * by the model's max_position_embeddings, -t above the core count, detokenize usage, the model's
 * vocabulary size in messages, quantize refusing a .gguf name, and perplexity
 * --llama-compatible against transformers' logits. Expected numbers come from the model files
 * (config.json) and the oracle fixtures, not from phi3c. */
#include "harness.h"
#include "int4.h"
#include "phi3c_file.h"
#include "source.h"

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

/* ||x - dequant(q)||^2 / ||x||^2 of one INT4 tensor of the native file against the source's f32
 * values, recomputed here from the two files. */
static double tensor_nmse(p3_test_ctx *t, const p3_tensor *src, const p3_tensor *q) {
    int64_t rows = src->shape[0], cols = src->shape[1];
    size_t rb = (size_t)p3_groups(cols) *
                (q->dtype == P3_DT_I4G128A ? sizeof(p3_block_i4a) : sizeof(p3_block_i4s));
    float *x = p3_malloc((size_t)cols * sizeof *x);
    float *y = p3_malloc((size_t)p3_groups(cols) * P3_QK * sizeof *y);
    double e2 = 0, r2 = 0;
    p3_error err = {0};
    for (int64_t r = 0; x && y && r < rows; r++) {
        if (!CHECK_OK(p3_tensor_to_f32(src, (size_t)(r * cols), (size_t)cols, x, &err), &err))
            break;
        const uint8_t *row = (const uint8_t *)q->data + (size_t)r * rb;
        if (q->dtype == P3_DT_I4G128A)
            p3_dequantize_row_i4a((const p3_block_i4a *)row, cols, y);
        else
            p3_dequantize_row_i4s((const p3_block_i4s *)row, cols, y);
        for (int64_t i = 0; i < cols; i++) {
            e2 += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
            r2 += (double)x[i] * x[i];
        }
    }
    p3_free(x);
    p3_free(y);
    return r2 > 0 ? e2 / r2 : 0.0;
}

/* The closing summary of `phi3c quantize` against the files: tensor counts, output size, bits per
 * INT4 weight (4.125 = 16 + 128 x 4 bits per 128 weights) and the mean weight NMSE. */
P3_TEST(cli_quantize_summary_matches_the_files) {
    char out[512], a[1024];
    snprintf(out, sizeof out, "%s/q.phi3c", p3_test_tmpdir(t));
    snprintf(a, sizeof a, "quantize -m tests/fixtures/mini4k/hf-f32 -o %s -t 2", out);
    p3_cmd_result r = {0};
    p3_model_source *src = NULL, *nat = NULL;
    p3_error err = {0};
    if (!cli(t, a, &r) || !CHECK_MSG(r.exit_code == 0, "%s", r.err ? r.err : "")) goto done;
    size_t n_tensors = 0, n_int4 = 0;
    double bpw = 0, nmse = 0, size_out = 0;
    char unit[3] = "";
    const char *s = r.err ? strstr(r.err, "quantize: wrote ") : NULL;
    s = s ? strstr(s + 16, ": ") : NULL;
    if (!CHECK_MSG(s && sscanf(s, ": %zu tensors (%zu INT4-g128", &n_tensors, &n_int4) == 2, "%s",
                   r.err))
        goto done;
    const char *p = strstr(s, "-> "), *b = strstr(s, " bits per"), *m = strstr(s, "NMSE ");
    CHECK(p && sscanf(p, "-> %lf %2s", &size_out, unit) == 2);
    size_out *= strcmp(unit, "GB") == 0 ? 1e9 : 1e6;
    CHECK(b && sscanf(b - 6, "%lf", &bpw) == 1);
    CHECK(m && sscanf(m, "NMSE %lf", &nmse) == 1);
    if (!CHECK_OK(p3_source_open("tests/fixtures/mini4k/hf-f32", &src, &err), &err) ||
        !CHECK_OK(p3_source_open(out, &nat, &err), &err))
        goto done;
    double sum = 0;
    size_t want_int4 = 0;
    for (size_t i = 0; i < nat->n_tensors; i++) {
        const p3_tensor *q = &nat->tensors[i], *x = p3_source_find(src, q->hf_name);
        if (!p3_dtype_is_int4(q->dtype) || !CHECK(x != NULL)) continue;
        sum += tensor_nmse(t, x, q);
        want_int4++;
    }
    CHECK_EQ_INT((int)n_tensors, (int)nat->n_tensors);
    CHECK_EQ_INT((int)n_int4, (int)want_int4);
    CHECK_MSG(fabs(bpw - 4.125) < 1e-3, "bits per weight %f", bpw);
    CHECK_MSG(fabs(size_out - (double)nat->file_bytes) <= 0.01 * (double)nat->file_bytes,
              "%.0f bytes, the file has %llu", size_out, (unsigned long long)nat->file_bytes);
    double want = want_int4 ? sum / (double)want_int4 : -1;
    CHECK_MSG(fabs(nmse - want) <= 1e-3 * want, "NMSE %.4e, from the files %.4e", nmse, want);
done:
    p3_source_close(src);
    p3_source_close(nat);
    p3_cmd_result_free(&r);
}

typedef struct progress_log {
    uint64_t calls, last_done, total, stop_at;
    bool monotonic;
} progress_log;

static bool log_progress(void *user, uint64_t done, uint64_t total) {
    progress_log *l = user;
    l->monotonic = l->monotonic && done > l->last_done && done <= total;
    l->calls++;
    l->last_done = done;
    l->total = total;
    return l->stop_at == 0 || done < l->stop_at;
}

/* phi3c_model_load reports one step per weight tensor (the fixture's safetensors holds exactly the
 * tensors the model uploads), and a false return cancels the load. */
P3_TEST(api_model_load_reports_progress_and_can_be_cancelled) {
    const char *path = "tests/fixtures/mini4k/hf-f32";
    p3_model_source *src = NULL;
    p3_error err = {0};
    if (!CHECK_OK(p3_source_open(path, &src, &err), &err)) return;
    uint64_t n_tensors = src->n_tensors;
    p3_source_close(src);
    progress_log log = {.monotonic = true};
    phi3c_model_params mp = phi3c_model_params_default();
    mp.progress = log_progress;
    mp.progress_user = &log;
    mp.quant = PHI3C_QUANT_INT4_G128; /* quantizing at load is part of the work reported */
    phi3c_model *m = NULL;
    phi3c_error e = {0};
    if (CHECK_OK(phi3c_model_load(path, &mp, &m, &e), &e)) {
        CHECK(log.monotonic);
        CHECK_MSG(log.total == n_tensors && log.last_done == log.total && log.calls == log.total,
                  "%llu calls, last %llu of %llu; the file has %llu tensors",
                  (unsigned long long)log.calls, (unsigned long long)log.last_done,
                  (unsigned long long)log.total, (unsigned long long)n_tensors);
    }
    phi3c_model_free(m);
    progress_log stop = {.monotonic = true, .stop_at = 3};
    mp.progress_user = &stop;
    m = NULL;
    CHECK_STATUS(phi3c_model_load(path, &mp, &m, &e), PHI3C_ERR_INTERRUPTED);
    CHECK(m == NULL && stop.calls == 3);
}
