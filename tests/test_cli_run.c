/* test_cli_run.c: the engine commands as a user runs them: `phi3c logits` files against
 * transformers' logits, `phi3c run` greedy ids against transformers' generate, usage errors, and
 * a piped 3-turn `phi3c chat` whose stats show that turn 2 prefills only the new turn. */
#include "harness.h"

#include <math.h>
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
    for (int lookup = 0; prompt && want && lookup <= 8; lookup += 8) {
        snprintf(cmd, sizeof cmd,
                 "%s run -m tests/fixtures/longrope/model-bf16.gguf --prompt-ids \"%s\" -n 32 "
                 "--greedy -t 2 --lookup %d",
                 p3_test_cli(), prompt, lookup);
        p3_cmd_result r;
        if (p3_test_run(t, cmd, &r)) {
            CHECK_MSG(r.exit_code == 0, "%s", r.err ? r.err : "");
            char *got = r.out ? r.out : (char *)"";
            size_t len = strlen(got);
            while (len && (got[len - 1] == '\n' || got[len - 1] == ' ')) got[--len] = '\0';
            CHECK_MSG(strcmp(got, want) == 0, "run --lookup %d printed '%s', transformers '%s'",
                      lookup, got, want);
            CHECK(r.err && strstr(r.err, "tok/s") && strstr(r.err, "time to first token"));
            CHECK(r.err && (strstr(r.err, "tokens/forward") != NULL) == (lookup > 0));
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
        "run -m tests/fixtures/mini4k/hf-bf16 -p hi --lookup 65",                /* too long */
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

/* exp(mean over p of -log softmax(logits[p])[ids[p+1]]) from transformers' logits rows. */
static double oracle_perplexity(const float *logits, const int32_t *ids, int n, int vocab) {
    double nll = 0.0;
    for (int p = 0; p + 1 < n; p++) {
        const float *row = logits + (size_t)p * (size_t)vocab;
        double max = row[0], sum = 0.0;
        for (int v = 1; v < vocab; v++) max = row[v] > max ? row[v] : max;
        for (int v = 0; v < vocab; v++) sum += exp(row[v] - max);
        nll += log(sum) + max - row[ids[p + 1]];
    }
    return exp(nll / (n - 1));
}

P3_TEST(cli_perplexity_equals_the_one_from_transformers_logits) {
    size_t size = 0, lsize = 0;
    char *text = p3_test_read_file(t, "tests/fixtures/mini4k/seq0.ids", &size);
    float *logits = p3_test_read_file(t, "tests/fixtures/mini4k/f32.seq0.logits", &lsize);
    int32_t ids[64];
    int n = 0;
    char *p = text, *end;
    for (long v = text ? strtol(p, &end, 10) : 0; text && end != p && n < 64;
         v = strtol(p, &end, 10)) {
        ids[n++] = (int32_t)v;
        p = end;
    }
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "%s perplexity -m tests/fixtures/mini4k/model-f32.gguf --ids-file "
             "tests/fixtures/mini4k/seq0.ids -c %d",
             p3_test_cli(), n);
    p3_cmd_result r;
    if (text && logits && p3_test_run(t, cmd, &r)) {
        CHECK_MSG(r.exit_code == 0, "%s", r.err ? r.err : "");
        const char *at = r.out ? strstr(r.out, "perplexity ") : NULL;
        double got = at ? atof(at + 11) : 0.0;
        double want = oracle_perplexity(logits, ids, n, 256);
        CHECK_MSG(fabs(got - want) <= 1e-4 * want,
                  "perplexity %.6f, transformers' logits give %.6f", got, want);
    }
    p3_cmd_result_free(&r);
    p3_free(text);
    p3_free(logits);
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

/* A small random Phi-3 with the real Phi-3 tokenizer (vocab 32064, head_dim 32, intermediate
 * 2 x hidden, tied embeddings) in a fresh folder: enough to drive run/chat through the tokenizer
 * and the template. */
typedef struct tiny_tensor {
    char name[96];
    int64_t rows, cols; /* cols 0: a 1-D [rows] norm weight (ones) */
} tiny_tensor;

static int tiny_tensors(tiny_tensor *out, int hidden, int layers) {
    int n = 0;
    out[n++] = (tiny_tensor){"model.embed_tokens.weight", 32064, hidden};
    for (int l = 0; l < layers; l++) {
        const struct {
            const char *suffix;
            int64_t rows, cols;
        } per_layer[] = {
            {"input_layernorm.weight", hidden, 0},
            {"self_attn.qkv_proj.weight", 3 * hidden, hidden},
            {"self_attn.o_proj.weight", hidden, hidden},
            {"post_attention_layernorm.weight", hidden, 0},
            {"mlp.gate_up_proj.weight", 4 * hidden, hidden},
            {"mlp.down_proj.weight", hidden, 2 * hidden},
        };
        for (size_t i = 0; i < P3_ARRAY_LEN(per_layer); i++) {
            snprintf(out[n].name, sizeof out[n].name, "model.layers.%d.%s", l, per_layer[i].suffix);
            out[n].rows = per_layer[i].rows;
            out[n++].cols = per_layer[i].cols;
        }
    }
    out[n++] = (tiny_tensor){"model.norm.weight", hidden, 0};
    return n;
}

static bool write_chat_model(p3_test_ctx *t, const char *dir, int hidden, int layers) {
    tiny_tensor tensors[2 + 6 * 8];
    if (!CHECK(layers <= 8)) return false;
    int n_tensors = tiny_tensors(tensors, hidden, layers);
    char path[512], header[16384];
    size_t hl = 0, offset = 0;
    hl += (size_t)snprintf(header + hl, sizeof header - hl, "{");
    for (int i = 0; i < n_tensors; i++) {
        const tiny_tensor *tt = &tensors[i];
        size_t bytes = (size_t)tt->rows * (size_t)(tt->cols ? tt->cols : 1) * 2;
        if (tt->cols)
            hl += (size_t)snprintf(header + hl, sizeof header - hl,
                                   "%s\"%s\":{\"dtype\":\"BF16\",\"shape\":[%lld,%lld],"
                                   "\"data_offsets\":[%zu,%zu]}",
                                   i ? "," : "", tt->name, (long long)tt->rows, (long long)tt->cols,
                                   offset, offset + bytes);
        else
            hl += (size_t)snprintf(header + hl, sizeof header - hl,
                                   "%s\"%s\":{\"dtype\":\"BF16\",\"shape\":[%lld],"
                                   "\"data_offsets\":[%zu,%zu]}",
                                   i ? "," : "", tt->name, (long long)tt->rows, offset,
                                   offset + bytes);
        offset += bytes;
    }
    hl += (size_t)snprintf(header + hl, sizeof header - hl, "}");
    while (hl % 8) header[hl++] = ' ';
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    FILE *f = fopen(path, "wb");
    if (!CHECK_MSG(f != NULL, "cannot create %s", path)) return false;
    uint64_t len = hl;
    fwrite(&len, 8, 1, f);
    fwrite(header, 1, hl, f);
    p3_test_rng rng;
    p3_test_rng_seed(&rng, 11);
    for (int i = 0; i < n_tensors; i++) {
        const tiny_tensor *tt = &tensors[i];
        size_t n = (size_t)tt->rows * (size_t)(tt->cols ? tt->cols : 1);
        for (size_t j = 0; j < n; j++) {
            uint16_t v = p3_f32_to_bf16(tt->cols ? 0.1f * p3_test_rng_normal(&rng) : 1.0f);
            fwrite(&v, 2, 1, f);
        }
    }
    fclose(f);
    snprintf(path, sizeof path, "%s/config.json", dir);
    f = fopen(path, "w");
    if (!CHECK(f != NULL)) return false;
    fprintf(f,
            "{\"architectures\": [\"Phi3ForCausalLM\"], \"hidden_size\": %d, "
            "\"intermediate_size\": %d, \"num_hidden_layers\": %d, \"num_attention_heads\": %d, "
            "\"num_key_value_heads\": %d, \"vocab_size\": 32064, \"max_position_embeddings\": "
            "4096, \"rms_norm_eps\": 1e-05, \"rope_theta\": 10000.0, \"rope_scaling\": null, "
            "\"sliding_window\": 2047, \"tie_word_embeddings\": true, \"bos_token_id\": 1, "
            "\"eos_token_id\": 32000}\n",
            hidden, 2 * hidden, layers, hidden / 32, hidden / 32);
    fclose(f);
    const char *files[] = {"tokenizer.json", "tokenizer_config.json"};
    for (size_t i = 0; i < P3_ARRAY_LEN(files); i++) {
        char from[512], cmd[1200];
        snprintf(from, sizeof from, "%s/data/phi3/tokenizer-phi-3-mini/%s", p3_test_shared_dir(),
                 files[i]);
        snprintf(cmd, sizeof cmd, "cp '%s' '%s/'", from, dir);
        if (!CHECK_MSG(system(cmd) == 0, "%s", cmd)) return false;
    }
    return true;
}

static bool write_tiny_chat_model(p3_test_ctx *t, const char *dir) {
    return write_chat_model(t, dir, 64, 1);
}

P3_TEST(cli_run_streams_text_through_the_tokenizer) {
    const char *dir = p3_test_tmpdir(t);
    if (!write_tiny_chat_model(t, dir)) return;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s run -m %s -p 'In the beginning' -n 12 --seed 5 -t 2",
             p3_test_cli(), dir);
    p3_cmd_result r;
    if (p3_test_run(t, cmd, &r)) {
        CHECK_MSG(r.exit_code == 0, "%s", r.err ? r.err : "");
        CHECK(r.out && strncmp(r.out, "In the beginning", 16) == 0);
        CHECK(r.out && p3_utf8_valid(r.out, r.out_len));
        /* "▁In ▁the ▁beginning", no BOS (add_bos_token false in the current tokenizer_config) */
        CHECK_MSG(r.err && strstr(r.err, "prompt 3 tokens"), "stats: %s", r.err ? r.err : "");
    }
    p3_cmd_result_free(&r);
}

/* `run --chat` renders the Phi-3 template and tokenizes it as transformers does. The expected ids
 * were computed with transformers 4.57.6: AutoTokenizer.from_pretrained(tokenizer-phi-3-mini)
 * .apply_chat_template([system "Answer briefly.", user "In the beginning"],
 * add_generation_prompt=True). */
P3_TEST(cli_run_chat_prompt_ids_equal_transformers_template) {
    const char *dir = p3_test_tmpdir(t);
    if (!write_tiny_chat_model(t, dir)) return;
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "%s run -m %s --chat --system 'Answer briefly.' -p 'In the beginning' -n 1 "
             "--greedy --verbose-prompt",
             p3_test_cli(), dir);
    p3_cmd_result r;
    if (p3_test_run(t, cmd, &r)) {
        CHECK_MSG(r.exit_code == 0, "%s", r.err ? r.err : "");
        const char *want =
            "prompt ids: 32006 673 23359 29889 32007 32010 512 278 6763 32007 32001\n";
        CHECK_MSG(r.err && strstr(r.err, want), "stderr: %s", r.err ? r.err : "");
    }
    p3_cmd_result_free(&r);
}

P3_TEST(cli_chat_piped_three_turns_keeps_the_cache) {
    const char *dir = p3_test_tmpdir(t);
    if (!write_tiny_chat_model(t, dir)) return;
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "printf 'In the beginning\\nAnd the earth\\nwas without form\\n/reset\\nLet there "
             "be light\\n' | %s chat -m %s --system 'Answer briefly.' -n 6 --greedy -t 2",
             p3_test_cli(), dir);
    p3_cmd_result r;
    if (p3_test_run(t, cmd, &r)) {
        CHECK_MSG(r.exit_code == 0, "%s", r.err ? r.err : "");
        int p1 = 0, c1 = 0, p2 = 0, c2 = 0, p3 = 0, c3 = 0, p4 = 0, c4 = 0;
        bool ok = CHECK(turn_stats(r.err, 1, &p1, &c1)) && CHECK(turn_stats(r.err, 2, &p2, &c2)) &&
                  CHECK(turn_stats(r.err, 3, &p3, &c3));
        if (ok) {
            /* turn 2 prefills only its own tokens, the cache grows by them and the answer */
            CHECK_MSG(p2 < c1, "turn 2 prefilled %d tokens, turn 1 left %d in the cache", p2, c1);
            CHECK(c2 > c1 && c3 > c2);
            CHECK_MSG(p1 + p2 + p3 < c3, "prefilled %d+%d+%d of %d cached", p1, p2, p3, c3);
        }
        /* after /reset a whole new conversation is prefilled, from an empty cache */
        const char *after = r.err ? strstr(r.err, "[new conversation]") : NULL;
        if (CHECK(after != NULL) && CHECK(turn_stats(after, 1, &p4, &c4))) CHECK(c4 < c3);
    }
    p3_cmd_result_free(&r);
}

P3_TEST(cli_chat_drops_the_oldest_turns_when_the_context_is_full) {
    const char *dir = p3_test_tmpdir(t);
    if (!write_tiny_chat_model(t, dir)) return;
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "printf 'In the beginning God created\\nthe heaven and the earth\\nAnd the earth "
             "was without form\\nand void and darkness\\n' | %s chat -m %s -c 48 -n 6 --greedy",
             p3_test_cli(), dir);
    p3_cmd_result r;
    if (p3_test_run(t, cmd, &r)) {
        CHECK_MSG(r.exit_code == 0, "%s", r.err ? r.err : "");
        CHECK_MSG(r.err && strstr(r.err, "context full"), "no context-full notice: %s",
                  r.err ? r.err : "");
        int p4 = 0, c4 = 0;
        CHECK(turn_stats(r.err, 4, &p4, &c4) && c4 <= 48);
    }
    p3_cmd_result_free(&r);
}

/* Ctrl-C during an answer stops that answer only: the chat goes on reading commands. */
P3_TEST_SLOW(cli_chat_ctrl_c_stops_the_answer_not_the_chat) {
    const char *dir = p3_test_tmpdir(t);
    if (!write_chat_model(t, dir, 256, 2)) return;
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "{ echo 'tell me a story'; sleep 2; echo /reset; echo /exit; } | "
             "%s chat -m %s -n 100000 -c 2048 --greedy -t 2 > %s/out 2> %s/err & pid=$!; "
             "n=0; while [ ! -s %s/out ] && [ $n -lt 600 ]; do sleep 0.05; n=$((n+1)); done; "
             "sleep 0.3; kill -INT $pid; "
             "wait $pid; echo \"exit=$?\"; cat %s/err",
             p3_test_cli(), dir, dir, dir, dir, dir);
    p3_cmd_result r;
    if (p3_test_run(t, cmd, &r)) {
        const char *out = r.out ? r.out : "";
        CHECK_MSG(strstr(out, "exit=0") && strstr(out, "[stopped]"), "%s", out);
        int p = 0, c = 0;
        CHECK(turn_stats(out, 1, &p, &c) && c < 2000); /* stopped before the context was full */
        CHECK_MSG(strstr(out, "[new conversation]"), "the chat did not go on: %s", out);
    }
    p3_cmd_result_free(&r);
}

/* The number after `marker` and "**" in TRAINING.md (the demo model's transformers perplexity). */
static double training_md_number(const char *text, const char *marker) {
    const char *p = text ? strstr(text, marker) : NULL;
    p = p ? strstr(p, "**") : NULL;
    return p ? atof(p + 2) : 0.0;
}

/* The demo model's held-out perplexity through phi3c's f32 path equals transformers' (recorded in
 * its TRAINING.md by tools/train_demo.py) within 0.1%. PHI3C_DEMO_MODEL overrides the folder. */
P3_TEST_SLOW(cli_perplexity_of_the_demo_model_matches_transformers) {
    const char *env = getenv("PHI3C_DEMO_MODEL");
    const char *dir = env && *env ? env : "tools/demo-model";
    char path[512], cmd[1024];
    snprintf(path, sizeof path, "%s/TRAINING.md", dir);
    if (!p3_file_exists(path)) {
        p3_test_skip(t, "%s is not there (the demo model is trained by tools/train_demo.py)", path);
        return;
    }
    size_t size;
    char *md = p3_test_read_file(t, path, &size);
    double want = training_md_number(md, "bf16-rounded weights");
    p3_free(md);
    if (!CHECK_MSG(want > 1.0, "%s: no reference perplexity for the bf16 weights", path)) return;
    snprintf(cmd, sizeof cmd, "%s perplexity -m %s -f %s/heldout.txt -c 256", p3_test_cli(), dir,
             dir);
    p3_cmd_result r;
    if (p3_test_run(t, cmd, &r)) {
        const char *at = r.out ? strstr(r.out, "perplexity ") : NULL;
        double got = at ? atof(at + 11) : 0.0;
        printf("    demo model held-out perplexity: phi3c %.4f, transformers %.4f\n", got, want);
        CHECK_MSG(fabs(got - want) <= 1e-3 * want, "phi3c %.4f vs transformers %.4f (%s)", got,
                  want, r.err ? r.err : "");
    }
    p3_cmd_result_free(&r);
}

/* The demo model's greedy samples in TRAINING.md come from transformers' generate on the stored
 * weights in f32: `phi3c run --greedy` must print the same text for each prompt. */
P3_TEST_SLOW(cli_run_greedy_text_of_the_demo_model_matches_transformers) {
    const char *env = getenv("PHI3C_DEMO_MODEL");
    const char *dir = env && *env ? env : "tools/demo-model";
    char path[512];
    snprintf(path, sizeof path, "%s/TRAINING.md", dir);
    if (!p3_file_exists(path)) {
        p3_test_skip(t, "%s is not there", path);
        return;
    }
    size_t size;
    char *md = p3_test_read_file(t, path, &size);
    const char *samples = md ? strstr(md, "## Samples") : NULL;
    int compared = 0;
    /* blocks: "Prompt `P`" ... "Greedy:\n```\nTEXT\n```" */
    for (const char *p = samples; p && (p = strstr(p, "Prompt `")) != NULL;) {
        const char *ps = p + 8, *pe = strchr(ps, '`');
        const char *g = pe ? strstr(pe, "Greedy:\n```\n") : NULL;
        const char *ge = g ? strstr(g + 12, "\n```") : NULL;
        if (!ge) break;
        char prompt[256], cmd[1024];
        snprintf(prompt, sizeof prompt, "%.*s", (int)(pe - ps), ps);
        snprintf(cmd, sizeof cmd, "%s run -m %s -p '%s' -n 60 --greedy", p3_test_cli(), dir,
                 prompt);
        p3_cmd_result r;
        if (p3_test_run(t, cmd, &r)) {
            size_t want_len = (size_t)(ge - (g + 12)), got_len = r.out ? r.out_len : 0;
            if (got_len && r.out[got_len - 1] == '\n') got_len--; /* run ends with a newline */
            CHECK_MSG(got_len == want_len && memcmp(r.out, g + 12, want_len) == 0,
                      "prompt '%s': phi3c printed\n%s\ntransformers\n%.*s", prompt,
                      r.out ? r.out : "", (int)want_len, g + 12);
            compared++;
        }
        p3_cmd_result_free(&r);
        p = ge;
    }
    CHECK_MSG(compared >= 1, "%s: no greedy samples found", path);
    p3_free(md);
}
