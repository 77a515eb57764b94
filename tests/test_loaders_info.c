/* test_loaders_info.c: `phi3c info` text and --json on the fixtures (values from config.json and
 * tests/fixtures/README.md, sizes from stat), on llama.cpp's vocab-only Phi-3 GGUF, and without a
 * model (backends only). The JSON is read back with the JSON reader (tested on its own). */
#include "backend.h"
#include "json.h"
#include "test_loaders_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static json_doc *info_json(p3_test_ctx *t, const char *model) {
    char cmd[1024];
    if (model)
        snprintf(cmd, sizeof cmd, "%s info -m '%s' --json", p3_test_cli(), model);
    else
        snprintf(cmd, sizeof cmd, "%s info --json", p3_test_cli());
    p3_cmd_result r;
    if (!p3_test_run(t, cmd, &r)) return NULL;
    json_doc *doc = NULL;
    p3_error err = {0};
    if (CHECK_MSG(r.exit_code == 0 && r.err_len == 0, "%s: exit %d, stderr %s", cmd, r.exit_code,
                  r.err ? r.err : ""))
        CHECK_MSG(json_parse(r.out, r.out_len, "info --json", &doc, &err) == PHI3C_OK, "%s",
                  err.message);
    p3_cmd_result_free(&r);
    return doc;
}

static int64_t get_int(const json_value *obj, const char *key) {
    int64_t v = -12345;
    json_get_int(json_object_get(obj, key), &v);
    return v;
}

static uint64_t file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static void check_backends(p3_test_ctx *t, const json_value *root) {
    const json_value *be = json_object_get(root, "backends");
    CHECK(json_typeof(be) == JSON_ARRAY);
    CHECK_EQ_INT(json_array_len(be), p3_backend_count());
    for (size_t i = 0; i < json_array_len(be); i++) {
        const json_value *b = json_array_at(be, i);
        bool avail;
        CHECK(json_string(json_object_get(b, "name")) &&
              json_get_bool(json_object_get(b, "available"), &avail));
        CHECK(json_string(json_object_get(b, avail ? "devices" : "why")) != NULL);
    }
}

P3_TEST(info_json_longrope_folder) {
    json_doc *doc = info_json(t, "tests/fixtures/longrope/hf-bf16");
    if (!doc) return;
    const json_value *root = json_root(doc);
    /* tests/fixtures/README.md: longrope 512 vocab, hidden 64, inter 128, 2/2 heads (32), 2 layers,
     * LongRoPE orig 32 max 128, window 262144, attention factor 1.18322 */
    CHECK(strcmp(json_string(json_object_get(root, "architecture")), "Phi3ForCausalLM") == 0);
    CHECK_EQ_INT(get_int(root, "hidden_size"), 64);
    CHECK_EQ_INT(get_int(root, "num_layers"), 2);
    CHECK_EQ_INT(get_int(root, "num_heads"), 2);
    CHECK_EQ_INT(get_int(root, "num_kv_heads"), 2);
    CHECK_EQ_INT(get_int(root, "head_dim"), 32);
    CHECK_EQ_INT(get_int(root, "intermediate_size"), 128);
    CHECK_EQ_INT(get_int(root, "vocab_size"), 512);
    CHECK_EQ_INT(get_int(root, "max_position_embeddings"), 128);
    CHECK_EQ_INT(get_int(root, "sliding_window"), 262144);
    bool tie = true;
    CHECK(json_get_bool(json_object_get(root, "tie_word_embeddings"), &tie) && !tie);
    const json_value *rope = json_object_get(root, "rope");
    double attn = 0, theta = 0, prf = 0;
    CHECK(strcmp(json_string(json_object_get(rope, "type")), "longrope") == 0);
    CHECK(json_get_double(json_object_get(rope, "theta"), &theta) && theta == 10000);
    CHECK(json_get_double(json_object_get(rope, "partial_rotary_factor"), &prf) && prf == 1);
    CHECK_EQ_INT(get_int(rope, "original_max_position_embeddings"), 32);
    CHECK(json_get_double(json_object_get(rope, "attn_factor"), &attn) &&
          fabs(attn - 1.18322) < 1e-5);
    /* the factors equal config.json's lists */
    json_doc *cfg = NULL;
    p3_error err = {0};
    if (CHECK_OK(json_parse_file("tests/fixtures/longrope/hf-bf16/config.json", &cfg, &err),
                 &err)) {
        const json_value *scaling = json_object_get(json_root(cfg), "rope_scaling");
        const char *lists[] = {"short_factor", "long_factor"};
        for (int k = 0; k < 2; k++) {
            const json_value *want = json_object_get(scaling, lists[k]);
            const json_value *got = json_object_get(rope, lists[k]);
            CHECK_EQ_INT(json_array_len(got), json_array_len(want));
            for (size_t i = 0; i < json_array_len(want); i++) {
                double a = -1, b = -2;
                json_get_double(json_array_at(want, i), &a);
                json_get_double(json_array_at(got, i), &b);
                CHECK_MSG(a == b, "%s[%zu]: %g vs %g", lists[k], i, a, b);
            }
        }
    }
    json_free(cfg);
    /* 15 tensors (embed, 6 per layer, norm, lm_head) in HF order, BF16 */
    const json_value *tensors = json_object_get(root, "tensors");
    CHECK_EQ_INT(json_array_len(tensors), 15);
    bool found_qkv = false;
    for (size_t i = 0; i < json_array_len(tensors); i++) {
        const json_value *x = json_array_at(tensors, i);
        CHECK(strcmp(json_string(json_object_get(x, "dtype")), "BF16") == 0);
        if (strcmp(json_string(json_object_get(x, "name")),
                   "model.layers.1.self_attn.qkv_proj.weight") == 0) {
            const json_value *shape = json_object_get(x, "shape");
            found_qkv = json_array_len(shape) == 2;
            int64_t d0 = 0, d1 = 0;
            json_get_int(json_array_at(shape, 0), &d0);
            json_get_int(json_array_at(shape, 1), &d1);
            CHECK(d0 == 192 && d1 == 64);
        }
    }
    CHECK(found_qkv);
    CHECK_EQ_INT(get_int(root, "file_bytes"),
                 file_size("tests/fixtures/longrope/hf-bf16/model.safetensors"));
    check_backends(t, root);
    json_free(doc);
}

P3_TEST(info_json_gguf_and_vocab_only) {
    json_doc *doc = info_json(t, "tests/fixtures/phi4mini/model-bf16.gguf");
    if (doc) {
        const json_value *root = json_root(doc);
        CHECK(strcmp(json_string(json_object_get(root, "format")), "gguf") == 0);
        bool tie = false;
        CHECK(json_get_bool(json_object_get(root, "tie_word_embeddings"), &tie) && tie);
        CHECK(json_is_null(json_object_get(root, "sliding_window")));
        const json_value *rope = json_object_get(root, "rope");
        double prf = 0;
        CHECK(json_get_double(json_object_get(rope, "partial_rotary_factor"), &prf) && prf == 0.75);
        CHECK_EQ_INT(json_array_len(json_object_get(rope, "short_factor")), 12);
        /* the file's own (llama.cpp) names, HF-order shapes: token_embd [512, 128] */
        const json_value *tensors = json_object_get(root, "tensors");
        bool embd = false;
        for (size_t i = 0; i < json_array_len(tensors); i++) {
            const json_value *x = json_array_at(tensors, i);
            if (strcmp(json_string(json_object_get(x, "name")), "token_embd.weight") != 0) continue;
            int64_t d0 = 0, d1 = 0;
            json_get_int(json_array_at(json_object_get(x, "shape"), 0), &d0);
            json_get_int(json_array_at(json_object_get(x, "shape"), 1), &d1);
            embd = d0 == 512 && d1 == 128;
        }
        CHECK(embd);
        CHECK(json_array_len(json_object_get(root, "metadata")) > 10);
        CHECK_EQ_INT(get_int(root, "file_bytes"),
                     file_size("tests/fixtures/phi4mini/model-bf16.gguf"));
        json_free(doc);
    }
    char vocab[512];
    snprintf(vocab, sizeof vocab, "%s/data/llamacpp/ggml-vocab-phi-3.gguf", p3_test_shared_dir());
    doc = info_json(t, vocab);
    if (doc) {
        const json_value *root = json_root(doc);
        CHECK(json_is_null(json_object_get(root, "architecture")));
        CHECK_EQ_INT(json_array_len(json_object_get(root, "tensors")), 0);
        const json_value *md = json_object_get(root, "metadata");
        CHECK_EQ_INT(json_array_len(md), 26); /* gguf.GGUFReader: 26 keys */
        bool tokens = false;
        for (size_t i = 0; i < json_array_len(md); i++) {
            const json_value *kv = json_array_at(md, i);
            if (strcmp(json_string(json_object_get(kv, "key")), "tokenizer.ggml.tokens") != 0)
                continue;
            const json_value *v = json_object_get(kv, "value");
            tokens = get_int(v, "length") == 32064 &&
                     strcmp(json_string(json_array_at(json_object_get(v, "first"), 1)), "<s>") == 0;
        }
        CHECK(tokens);
        json_free(doc);
    }
}

P3_TEST(info_text_and_backends_only) {
    char vocab[512], cmd[1024];
    snprintf(vocab, sizeof vocab, "%s/data/llamacpp/ggml-vocab-phi-3.gguf", p3_test_shared_dir());
    snprintf(cmd, sizeof cmd, "%s info -m '%s'", p3_test_cli(), vocab);
    p3_cmd_result r;
    if (p3_test_run(t, cmd, &r)) {
        CHECK(r.exit_code == 0 && r.out);
        CHECK(r.out && strstr(r.out, "no tensors") && strstr(r.out, "tokenizer.ggml.tokens") &&
              strstr(r.out, "[32064 x STRING]") && strstr(r.out, "backends"));
        p3_cmd_result_free(&r);
    }
    snprintf(cmd, sizeof cmd, "%s info -m tests/fixtures/medium/hf-bf16", p3_test_cli());
    if (p3_test_run(t, cmd, &r)) {
        CHECK(r.exit_code == 0 && r.out && strstr(r.out, "num_kv_heads             2") &&
              strstr(r.out, "model.layers.1.mlp.gate_up_proj.weight") &&
              strstr(r.out, "[400, 160]") && strstr(r.out, "sliding_window           16"));
        p3_cmd_result_free(&r);
    }
    json_doc *doc = info_json(t, NULL);
    if (doc) {
        CHECK_EQ_INT(json_object_size(json_root(doc)), 1);
        check_backends(t, json_root(doc));
        json_free(doc);
    }
    snprintf(cmd, sizeof cmd, "%s info", p3_test_cli());
    if (p3_test_run(t, cmd, &r)) {
        CHECK(r.exit_code == 0 && r.out && strncmp(r.out, "backends", 8) == 0);
        p3_cmd_result_free(&r);
    }
    snprintf(cmd, sizeof cmd, "%s info --bogus", p3_test_cli());
    if (p3_test_run(t, cmd, &r)) {
        CHECK_EQ_INT(r.exit_code, 2);
        p3_cmd_result_free(&r);
    }
    snprintf(cmd, sizeof cmd, "%s info --help", p3_test_cli());
    if (p3_test_run(t, cmd, &r)) {
        CHECK(r.exit_code == 0 && r.out && strstr(r.out, "--json"));
        p3_cmd_result_free(&r);
    }
}
