/* test_config.c: config.json / generation_config.json parsing and p3_config_finish, checked against
 * Microsoft's published configs (values from phi3-facts and the files themselves, read with
 * Python), the fixture table (tests/fixtures/README.md) and transformers' rules (LongRoPE
 * attention factor, rope_scaling validation). */
#include "harness.h"
#include "source.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static p3_status parse_text(const char *json, p3_config *cfg, p3_error *err) {
    p3_status st = p3_config_parse_json(json, strlen(json), "cfg.json", cfg, err);
    if (st == PHI3C_OK) st = p3_config_finish(cfg, "cfg.json", err);
    return st;
}

static bool parse_file(p3_test_ctx *t, const char *path, p3_config *cfg) {
    size_t size;
    char *text = p3_test_read_file(t, path, &size);
    if (!text) return false;
    p3_error err = {0};
    p3_status st = p3_config_parse_json(text, size, path, cfg, &err);
    if (st == PHI3C_OK) st = p3_config_finish(cfg, path, &err);
    free(text);
    return CHECK_MSG(st == PHI3C_OK, "%s: %s", path, err.message);
}

static const char *shared_path(char *buf, size_t size, const char *rel) {
    snprintf(buf, size, "%s/data/phi3/configs/%s", p3_test_shared_dir(), rel);
    return buf;
}

P3_TEST(config_real_phi3_configs) {
    static const struct {
        const char *file;
        int hidden, layers, heads, kv, hd, inter, max, orig, window, n_factors;
        p3_rope_type rope;
        double attn;
    } want[] = {
        /* phi3-facts.md table; attention factor sqrt(1 + ln(32)/ln(4096)) = 1.190238 */
        {"phi-3-mini-4k-instruct-config.json", 3072, 32, 32, 32, 96, 8192, 4096, 4096, 2047, 0,
         P3_ROPE_DEFAULT, 1.0},
        {"phi-3-mini-128k-instruct-config.json", 3072, 32, 32, 32, 96, 8192, 131072, 4096, 262144,
         48, P3_ROPE_LONGROPE, 1.190238},
        {"phi-3-medium-4k-instruct-config.json", 5120, 40, 40, 10, 128, 17920, 4096, 4096, 2047, 0,
         P3_ROPE_DEFAULT, 1.0},
        {"phi-3-medium-128k-instruct-config.json", 5120, 40, 40, 10, 128, 17920, 131072, 4096,
         131072, 64, P3_ROPE_LONGROPE, 1.190238},
    };
    for (size_t i = 0; i < P3_ARRAY_LEN(want); i++) {
        char path[512];
        p3_config c;
        if (!parse_file(t, shared_path(path, sizeof path, want[i].file), &c)) continue;
        CHECK(strcmp(c.architecture, "Phi3ForCausalLM") == 0);
        CHECK_EQ_INT(c.hidden_size, want[i].hidden);
        CHECK_EQ_INT(c.num_layers, want[i].layers);
        CHECK_EQ_INT(c.num_heads, want[i].heads);
        CHECK_EQ_INT(c.num_kv_heads, want[i].kv);
        CHECK_EQ_INT(c.head_dim, want[i].hd);
        CHECK_EQ_INT(c.intermediate_size, want[i].inter);
        CHECK_EQ_INT(c.vocab_size, 32064);
        CHECK_EQ_INT(c.max_position_embeddings, want[i].max);
        CHECK_EQ_INT(c.original_max_position_embeddings, want[i].orig);
        CHECK_EQ_INT(c.sliding_window, want[i].window);
        CHECK_EQ_INT(c.rope.type, want[i].rope);
        CHECK_EQ_INT(c.rope.n_factors, want[i].n_factors);
        CHECK_EQ_INT(c.rope.rot_dim, want[i].hd);
        CHECK_NEAR(c.rope.attn_factor, want[i].attn, 1e-6);
        CHECK(c.rope.theta == 10000.0f && c.rms_norm_eps == 1e-5f);
        CHECK(!c.tie_word_embeddings);
        CHECK(c.bos_id == 1 && c.eos_id == 32000);
        CHECK(c.n_stop_ids == 1 && c.stop_ids[0] == 32000);
    }
    /* spot values of the mini-128k factors (Python: json.load(...)["rope_scaling"]) */
    char path[512];
    p3_config c;
    if (parse_file(t, shared_path(path, sizeof path, "phi-3-mini-128k-instruct-config.json"), &c)) {
        CHECK(c.rope.long_factor[0] == 1.0299999713897705f);
        CHECK(c.rope.long_factor[16] == 9.09000015258789f);
        CHECK(c.rope.short_factor[0] == 1.05f);
        CHECK_EQ_INT(c.pad_id, 32000);
    }
}

/* tests/fixtures/README.md's table */
P3_TEST(config_fixture_variants) {
    static const struct {
        const char *variant;
        int vocab, hidden, inter, heads, kv, hd, rot, window;
        bool longrope, tied;
        double attn;
    } want[] = {
        {"mini4k", 256, 128, 256, 4, 4, 32, 32, 8, false, false, 1.0},
        {"longrope", 512, 64, 128, 2, 2, 32, 32, 262144, true, false, 1.18322},
        {"medium", 256, 160, 200, 8, 2, 20, 20, 16, false, false, 1.0},
        {"phi4mini", 512, 128, 128, 4, 2, 32, 24, 0, true, true, 1.26491},
    };
    for (size_t i = 0; i < P3_ARRAY_LEN(want); i++) {
        char path[256];
        snprintf(path, sizeof path, "tests/fixtures/%s/hf-bf16/config.json", want[i].variant);
        p3_config c;
        if (!parse_file(t, path, &c)) continue;
        CHECK_EQ_INT(c.vocab_size, want[i].vocab);
        CHECK_EQ_INT(c.hidden_size, want[i].hidden);
        CHECK_EQ_INT(c.intermediate_size, want[i].inter);
        CHECK_EQ_INT(c.num_heads, want[i].heads);
        CHECK_EQ_INT(c.num_kv_heads, want[i].kv);
        CHECK_EQ_INT(c.head_dim, want[i].hd);
        CHECK_EQ_INT(c.rope.rot_dim, want[i].rot);
        CHECK_EQ_INT(c.sliding_window, want[i].window);
        CHECK_EQ_INT(c.rope.type == P3_ROPE_LONGROPE, want[i].longrope);
        CHECK_EQ_INT(c.tie_word_embeddings, want[i].tied);
        CHECK_NEAR(c.rope.attn_factor, want[i].attn, 1e-5);
        if (want[i].longrope) CHECK_EQ_INT(c.rope.n_factors, want[i].rot / 2);
        CHECK(c.num_layers == 2 && c.bos_id == 1 && c.eos_id == 2 && c.pad_id == -1);
    }
}

static int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

P3_TEST(config_expected_tensors_match_real_checkpoint) {
    char path[512];
    p3_config c;
    if (!parse_file(t, shared_path(path, sizeof path, "phi-3-mini-128k-instruct-config.json"), &c))
        return;
    p3_tensor_spec *specs;
    size_t n;
    p3_error err = {0};
    if (!CHECK_OK(p3_config_expected_tensors(&c, &specs, &n, &err), &err)) return;
    size_t size;
    char *text = p3_test_read_file(
        t, shared_path(path, sizeof path, "phi-3-mini-128k-tensor-shapes.txt"), &size);
    if (!text) {
        p3_free(specs);
        return;
    }
    /* lines "N: name shape: [a, b]" */
    int lines = count_lines(text), matched = 0;
    CHECK_EQ_INT(lines, (int)n);
    bool *seen = calloc(n, 1);
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        char name[128];
        long long d0 = -1, d1 = -1;
        int k = sscanf(line, "%*d: %127s shape: [%lld, %lld]", name, &d0, &d1);
        if (!CHECK_MSG(k >= 2, "unparsed line '%s'", line)) continue;
        int dims = k - 1;
        size_t j = 0;
        while (j < n && strcmp(specs[j].hf_name, name) != 0) j++;
        if (!CHECK_MSG(j < n, "checkpoint tensor %s not expected", name)) continue;
        CHECK_MSG(!seen[j], "%s twice", name);
        seen[j] = true;
        bool same = specs[j].n_dims == dims && specs[j].shape[0] == d0 &&
                    (dims == 1 || specs[j].shape[1] == d1);
        CHECK_MSG(same, "%s: expected [%lld, %lld] (%d dims), checkpoint [%lld, %lld]", name,
                  (long long)specs[j].shape[0], (long long)specs[j].shape[1], specs[j].n_dims, d0,
                  d1);
        matched += same;
    }
    CHECK_EQ_INT(matched, 195);
    free(seen);
    free(text);
    p3_free(specs);
}

static const char *const base_json =
    "{\"architectures\": [\"Phi3ForCausalLM\"], \"hidden_size\": 256, \"num_hidden_layers\": 2, "
    "\"num_attention_heads\": 2, \"intermediate_size\": 512, \"vocab_size\": 100, "
    "\"max_position_embeddings\": 1024, \"original_max_position_embeddings\": 64%s}";

static p3_status parse_with(const char *extra, p3_config *cfg, p3_error *err) {
    char buf[8192];
    snprintf(buf, sizeof buf, base_json, extra);
    return parse_text(buf, cfg, err);
}

/* head_dim 128 -> rot_dim 128 -> 64 factors; n of them as a JSON list of 1.5 */
static const char *factors(int n, double v) {
    static char buf[2][2048];
    static int which;
    char *b = buf[which++ & 1];
    size_t k = (size_t)snprintf(b, 2048, "[");
    for (int i = 0; i < n; i++) k += (size_t)snprintf(b + k, 2048 - k, "%s%g", i ? "," : "", v);
    snprintf(b + k, 2048 - k, "]");
    return b;
}

P3_TEST(config_longrope_never_read_as_plain_rope) {
    p3_config c;
    p3_error err = {0};
    char extra[6000];
    /* transformers 5.x form */
    snprintf(extra, sizeof extra,
             ", \"rope_parameters\": {\"rope_type\": \"longrope\", "
             "\"rope_theta\": 250000.0, \"short_factor\": %s, \"long_factor\": %s}",
             factors(64, 1.0), factors(64, 2.5));
    if (CHECK_OK(parse_with(extra, &c, &err), &err)) {
        CHECK_EQ_INT(c.rope.type, P3_ROPE_LONGROPE);
        CHECK_EQ_INT(c.rope.n_factors, 64);
        CHECK(c.rope.long_factor[63] == 2.5f && c.rope.short_factor[0] == 1.0f);
        CHECK(c.rope.theta == 250000.0f);
        CHECK_NEAR(c.rope.attn_factor, sqrt(1 + log(16.0) / log(64.0)), 1e-6);
    }
    /* 5.x with the original context, the attention factor and a partial rotary factor inside */
    snprintf(extra, sizeof extra,
             ", \"rope_parameters\": {\"rope_type\": \"longrope\", "
             "\"partial_rotary_factor\": 0.75, \"original_max_position_embeddings\": 32, "
             "\"attention_factor\": 1.5, \"short_factor\": %s, \"long_factor\": %s}",
             factors(48, 1.0), factors(48, 2.0));
    if (CHECK_OK(parse_with(extra, &c, &err), &err)) {
        CHECK_EQ_INT(c.rope.rot_dim, 96);
        /* base_json has a top-level original_max_position_embeddings (64): transformers takes
         * that one over the nested 32 (issue 15 item 10) */
        CHECK_EQ_INT(c.original_max_position_embeddings, 64);
        CHECK(c.rope.attn_factor == 1.5f);
    }
    /* 4.x forms, legacy names */
    const char *names[] = {"longrope", "su", "yarn"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(extra, sizeof extra,
                 ", \"rope_scaling\": {\"type\": \"%s\", \"short_factor\": "
                 "%s, \"long_factor\": %s}",
                 names[i], factors(64, 1.0), factors(64, 3.0));
        CHECK_MSG(parse_with(extra, &c, &err) == PHI3C_OK && c.rope.type == P3_ROPE_LONGROPE,
                  "%s: %s", names[i], err.message);
    }
    /* factors whose length does not match rot_dim/2 = 64 are refused, naming both numbers */
    snprintf(extra, sizeof extra,
             ", \"rope_scaling\": {\"type\": \"longrope\", \"short_factor\": "
             "%s, \"long_factor\": %s}",
             factors(48, 1.0), factors(48, 3.0));
    CHECK_STATUS(parse_with(extra, &c, &err), PHI3C_ERR_FORMAT);
    CHECK(strstr(err.message, "cfg.json") && strstr(err.message, "48") &&
          strstr(err.message, "64"));
    /* factors without a longrope type, or a default type contradicting rope_scaling */
    snprintf(extra, sizeof extra, ", \"rope_scaling\": {\"short_factor\": %s, \"long_factor\": %s}",
             factors(64, 1.0), factors(64, 3.0));
    CHECK_STATUS(parse_with(extra, &c, &err), PHI3C_ERR_FORMAT);
    snprintf(extra, sizeof extra,
             ", \"rope_scaling\": {\"type\": \"longrope\", \"short_factor\": "
             "%s, \"long_factor\": %s}, \"rope_parameters\": {\"rope_type\": \"default\"}",
             factors(64, 1.0), factors(64, 3.0));
    CHECK_STATUS(parse_with(extra, &c, &err), PHI3C_ERR_FORMAT);
    /* longrope without factors, mismatched lengths, other scalings */
    CHECK_STATUS(parse_with(", \"rope_scaling\": {\"type\": \"longrope\"}", &c, &err),
                 PHI3C_ERR_FORMAT);
    snprintf(extra, sizeof extra,
             ", \"rope_scaling\": {\"type\": \"longrope\", \"short_factor\": "
             "%s, \"long_factor\": %s}",
             factors(64, 1.0), factors(63, 3.0));
    CHECK_STATUS(parse_with(extra, &c, &err), PHI3C_ERR_FORMAT);
    CHECK_STATUS(
        parse_with(", \"rope_scaling\": {\"type\": \"linear\", \"factor\": 2.0}", &c, &err),
        PHI3C_ERR_UNSUPPORTED);
    CHECK(strstr(err.message, "linear") != NULL);
    /* plain RoPE stays plain */
    CHECK_OK(parse_with(", \"rope_scaling\": null, \"rope_theta\": 500.0", &c, &err), &err);
    CHECK(c.rope.type == P3_ROPE_DEFAULT && c.rope.theta == 500.0f && c.rope.attn_factor == 1.0f);
}

P3_TEST(config_refuses_other_architectures_by_name) {
    const char *archs[] = {"Phi3SmallForCausalLM", "PhimoeForCausalLM", "Phi3VForCausalLM",
                           "PhiForCausalLM", "LlamaForCausalLM"};
    for (size_t i = 0; i < P3_ARRAY_LEN(archs); i++) {
        char buf[512];
        snprintf(buf, sizeof buf, "{\"architectures\": [\"%s\"], \"hidden_size\": 64}", archs[i]);
        p3_config c;
        p3_error err = {0};
        CHECK_STATUS(parse_text(buf, &c, &err), PHI3C_ERR_UNSUPPORTED);
        CHECK_MSG(strstr(err.message, archs[i]) && strstr(err.message, "cfg.json"), "%s",
                  err.message);
    }
    p3_config c;
    p3_error err = {0};
    CHECK_STATUS(parse_text("{\"model_type\": \"llama\"}", &c, &err), PHI3C_ERR_FORMAT);
    CHECK_STATUS(parse_text("[1, 2]", &c, &err), PHI3C_ERR_FORMAT);
    CHECK_STATUS(parse_with(", \"hidden_act\": \"gelu\"", &c, &err), PHI3C_ERR_UNSUPPORTED);
}

P3_TEST(config_finish_defaults_and_range_checks) {
    p3_config c;
    p3_error err = {0};
    /* no original_max: = max; no window; attn factor 1 */
    const char *plain = "{\"architectures\": [\"Phi3ForCausalLM\"], \"hidden_size\": 96, "
                        "\"num_hidden_layers\": 1, \"num_attention_heads\": 3, "
                        "\"intermediate_size\": 8, \"vocab_size\": 10, "
                        "\"max_position_embeddings\": 77, \"sliding_window\": null, "
                        "\"eos_token_id\": [5, 6]}";
    if (CHECK_OK(parse_text(plain, &c, &err), &err)) {
        CHECK_EQ_INT(c.original_max_position_embeddings, 77);
        CHECK_EQ_INT(c.sliding_window, 0);
        CHECK_EQ_INT(c.head_dim, 32);
        CHECK_EQ_INT(c.num_kv_heads, 3);
        CHECK(c.rope.attn_factor == 1.0f && c.rope.partial_rotary_factor == 1.0f);
        CHECK(c.eos_id == 5 && c.n_stop_ids == 2 && c.stop_ids[1] == 6);
    }
    struct {
        const char *extra;
        const char *needle;
    } bad[] = {
        {", \"num_key_value_heads\": 3", "num_key_value_heads 3"},
        {", \"vocab_size\": 0", "vocab_size"},
        {", \"hidden_size\": 255", "hidden_size 255"},
        {", \"num_attention_heads\": 0", "num_attention_heads"},
        {", \"rms_norm_eps\": -1", "rms_norm_eps"},
        {", \"partial_rotary_factor\": 1.5", "partial_rotary_factor"},
        {", \"hidden_size\": \"big\"", "hidden_size"},
        {", \"num_hidden_layers\": 2.5", "num_hidden_layers"},
        {", \"tie_word_embeddings\": 1", "tie_word_embeddings"},
    };
    for (size_t i = 0; i < P3_ARRAY_LEN(bad); i++) {
        /* later keys win (duplicate JSON keys), so each extra overrides the base */
        p3_status st = parse_with(bad[i].extra, &c, &err);
        CHECK_MSG(st != PHI3C_OK && strstr(err.message, bad[i].needle) &&
                      strstr(err.message, "cfg.json"),
                  "%s: %s", bad[i].extra, err.message);
    }
    CHECK_STATUS(parse_text("{\"architectures\": [\"Phi3ForCausalLM\"]}", &c, &err),
                 PHI3C_ERR_FORMAT);
    CHECK(strstr(err.message, "hidden_size") != NULL);
    CHECK_STATUS(parse_with(", \"attention_bias\": true", &c, &err), PHI3C_ERR_UNSUPPORTED);
}

P3_TEST(config_generation_stop_ids) {
    const char *dir = p3_test_tmpdir(t);
    char path[512];
    snprintf(path, sizeof path, "%s/generation_config.json", dir);
    p3_config c;
    p3_config_init(&c);
    c.eos_id = 32000;
    p3_error err = {0};
    CHECK_OK(p3_config_read_generation(path, &c, &err), &err); /* missing file is fine */
    CHECK_EQ_INT(c.n_stop_ids, 0);
    FILE *f = fopen(path, "w");
    fputs("{\"bos_token_id\": 1, \"eos_token_id\": [32000, 32001, 32007]}", f);
    fclose(f);
    if (CHECK_OK(p3_config_read_generation(path, &c, &err), &err)) {
        CHECK_EQ_INT(c.n_stop_ids, 3);
        CHECK(c.stop_ids[0] == 32000 && c.stop_ids[1] == 32001 && c.stop_ids[2] == 32007);
    }
    f = fopen(path, "w");
    fputs("{\"eos_token_id\": 7}", f);
    fclose(f);
    CHECK(p3_config_read_generation(path, &c, &err) == PHI3C_OK && c.n_stop_ids == 1 &&
          c.stop_ids[0] == 7);
    f = fopen(path, "w");
    fputs("{\"eos_token_id\": \"x\"}", f);
    fclose(f);
    CHECK_STATUS(p3_config_read_generation(path, &c, &err), PHI3C_ERR_FORMAT);
    CHECK(strstr(err.message, path) != NULL);
}
