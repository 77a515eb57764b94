/* test_loaders_gguf.c: the GGUF reader: dequantization of every ggml type against the gguf
 * package's own dequantization (tests/fixtures/gguf-quant), the fixture models' configs against
 * their config.json, llama.cpp's vocab-only Phi-3 GGUF (values read with gguf.GGUFReader), and
 * metadata of every type in a file built byte by byte from the GGUF spec. */
#include "gguf_phi3.h"
#include "source.h"
#include "test_loaders_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

P3_TEST(gguf_dequantization_matches_gguf_package) {
    static const struct {
        const char *name;
        p3_dtype dtype;
        int64_t rows, cols;
    } want[] = {
        /* tests/fixtures/README.md */
        {"t_f32", P3_DT_F32, 3, 40},    {"t_f16", P3_DT_F16, 4, 36},
        {"t_bf16", P3_DT_BF16, 5, 24},  {"t_q8_0", P3_DT_Q8_0, 3, 96},
        {"t_q4_0", P3_DT_Q4_0, 4, 64},  {"t_q4_k", P3_DT_Q4_K, 3, 512},
        {"t_q5_k", P3_DT_Q5_K, 2, 512}, {"t_q6_k", P3_DT_Q6_K, 3, 256},
    };
    p3_mapped_file f;
    p3_error err = {0};
    if (!CHECK_OK(p3_file_map(&f, "tests/fixtures/gguf-quant/quant-types.gguf", &err), &err))
        return;
    p3_gguf *g = NULL;
    if (CHECK_OK(p3_gguf_parse(f.data, f.size, f.path, &g, &err), &err)) {
        CHECK_EQ_INT(g->n_tensors, 8);
        for (size_t i = 0; i < P3_ARRAY_LEN(want); i++) {
            const p3_tensor *x = NULL;
            for (size_t k = 0; k < g->n_tensors; k++)
                if (strcmp(g->tensors[k].name, want[i].name) == 0) x = &g->tensors[k];
            if (!CHECK_MSG(x != NULL, "%s missing", want[i].name)) continue;
            CHECK(x->dtype == want[i].dtype && x->n_dims == 2 && x->shape[0] == want[i].rows &&
                  x->shape[1] == want[i].cols);
            char path[256];
            snprintf(path, sizeof path, "tests/fixtures/gguf-quant/%s.f32", want[i].name);
            size_t size, n = (size_t)(want[i].rows * want[i].cols);
            float *ref = p3_test_read_file(t, path, &size);
            if (!ref || !CHECK(size == n * 4)) {
                free(ref);
                continue;
            }
            float *got = malloc(n * sizeof *got);
            if (CHECK_OK(p3_tensor_to_f32(x, 0, n, got, &err), &err)) {
                size_t bad = 0;
                for (size_t k = 0; k < n; k++) bad += memcmp(&got[k], &ref[k], 4) != 0;
                CHECK_MSG(bad == 0, "%s: %zu of %zu values differ (max diff %g)", want[i].name, bad,
                          n, p3_max_abs_diff(got, ref, n));
                /* the second row alone, from its first element */
                size_t cols = (size_t)want[i].cols;
                if (CHECK_OK(p3_tensor_to_f32(x, cols, cols, got, &err), &err))
                    CHECK(memcmp(got, ref + cols, cols * 4) == 0);
            }
            free(got);
            free(ref);
        }
    }
    p3_gguf_free(g);
    p3_file_unmap(&f);
}

P3_TEST(gguf_dtype_names_and_row_bytes) {
    /* ggml block sizes: Q8_0 34 B / 32, Q4_0 18 B / 32, Q4_K 144, Q5_K 176, Q6_K 210 per 256;
     * phi3c INT4: 66 / 68 B per 128 (quant/int4.h) */
    static const struct {
        p3_dtype dt;
        const char *name;
        int64_t cols;
        size_t bytes;
    } want[] = {
        {P3_DT_F32, "F32", 10, 40},
        {P3_DT_F16, "F16", 10, 20},
        {P3_DT_BF16, "BF16", 10, 20},
        {P3_DT_Q8_0, "Q8_0", 64, 68},
        {P3_DT_Q4_0, "Q4_0", 64, 36},
        {P3_DT_Q4_K, "Q4_K", 512, 288},
        {P3_DT_Q5_K, "Q5_K", 256, 176},
        {P3_DT_Q6_K, "Q6_K", 3072, 2520},
        {P3_DT_I4G128S, "I4G128S", 3072, 1584},
        {P3_DT_I4G128A, "I4G128A", 200, 136},
        {P3_DT_I32, "I32", 3, 12},
    };
    for (size_t i = 0; i < P3_ARRAY_LEN(want); i++) {
        size_t bytes = 0;
        CHECK(strcmp(p3_dtype_name(want[i].dt), want[i].name) == 0);
        CHECK_MSG(p3_dtype_row_bytes(want[i].dt, want[i].cols, &bytes) && bytes == want[i].bytes,
                  "%s: %zu", want[i].name, bytes);
    }
    size_t bytes;
    CHECK(!p3_dtype_row_bytes(P3_DT_Q4_K, 100, &bytes)); /* not whole super-blocks */
    CHECK(!p3_dtype_row_bytes(P3_DT_F32, INT64_MAX, &bytes));
    CHECK(!p3_dtype_row_bytes(P3_DT_COUNT, 4, &bytes));
}

static void check_same_config(p3_test_ctx *t, const p3_config *a, const p3_config *b) {
    CHECK_EQ_INT(a->hidden_size, b->hidden_size);
    CHECK_EQ_INT(a->num_layers, b->num_layers);
    CHECK_EQ_INT(a->num_heads, b->num_heads);
    CHECK_EQ_INT(a->num_kv_heads, b->num_kv_heads);
    CHECK_EQ_INT(a->head_dim, b->head_dim);
    CHECK_EQ_INT(a->intermediate_size, b->intermediate_size);
    CHECK_EQ_INT(a->vocab_size, b->vocab_size);
    CHECK_EQ_INT(a->max_position_embeddings, b->max_position_embeddings);
    CHECK_EQ_INT(a->original_max_position_embeddings, b->original_max_position_embeddings);
    CHECK_EQ_INT(a->sliding_window, b->sliding_window);
    CHECK_EQ_INT(a->tie_word_embeddings, b->tie_word_embeddings);
    CHECK_EQ_INT(a->rope.type, b->rope.type);
    CHECK_EQ_INT(a->rope.rot_dim, b->rope.rot_dim);
    CHECK_EQ_INT(a->rope.n_factors, b->rope.n_factors);
    CHECK(a->rope.theta == b->rope.theta);
    CHECK(a->rms_norm_eps == b->rms_norm_eps);
    CHECK_NEAR(a->rope.attn_factor, b->rope.attn_factor, 1e-6);
    for (int i = 0; i < a->rope.n_factors; i++)
        CHECK(a->rope.short_factor[i] == b->rope.short_factor[i] &&
              a->rope.long_factor[i] == b->rope.long_factor[i]);
}

P3_TEST(gguf_fixture_configs_match_config_json) {
    static const char *const variants[] = {"mini4k", "longrope", "medium", "phi4mini"};
    for (size_t v = 0; v < P3_ARRAY_LEN(variants); v++) {
        char dir[256], gguf[256];
        snprintf(dir, sizeof dir, "tests/fixtures/%s/hf-bf16", variants[v]);
        snprintf(gguf, sizeof gguf, "tests/fixtures/%s/model-bf16.gguf", variants[v]);
        p3_model_source *hf = NULL, *gg = NULL;
        p3_error err = {0};
        CHECK_OK(p3_source_open(dir, &hf, &err), &err);
        CHECK_OK(p3_source_open(gguf, &gg, &err), &err);
        if (hf && gg) {
            CHECK(gg->format == P3_FORMAT_GGUF && gg->has_config && gg->gguf);
            check_same_config(t, &hf->config, &gg->config);
            CHECK_OK(p3_source_check_tensors(gg, &err), &err);
            /* names: llama.cpp's in name, HF's in hf_name */
            const p3_tensor *qkv = p3_source_find(gg, "model.layers.1.self_attn.qkv_proj.weight");
            CHECK(qkv && strcmp(qkv->name, "blk.1.attn_qkv.weight") == 0);
            CHECK_EQ_INT(gg->file_bytes, gg->files[0].size);
        }
        p3_source_close(hf);
        p3_source_close(gg);
    }
}

P3_TEST(gguf_vocab_only_phi3) {
    char path[512];
    snprintf(path, sizeof path, "%s/data/llamacpp/ggml-vocab-phi-3.gguf", p3_test_shared_dir());
    p3_model_source *src = NULL;
    p3_error err = {0};
    if (!CHECK_OK(p3_source_open(path, &src, &err), &err)) return;
    CHECK(!src->has_config && src->n_tensors == 0 && src->gguf);
    CHECK_STATUS(p3_source_check_tensors(src, &err), PHI3C_ERR_FORMAT);
    const p3_gguf *g = src->gguf;
    /* gguf.GGUFReader: v3, 26 keys, tokens[1] "<s>", tokens[278] "▁the", tokens[32010]
     * "<|user|>", scores[300] -41, token_type[32007] 3, bos 1, eos 32000, add_bos true */
    CHECK_EQ_INT(g->version, 3);
    CHECK_EQ_INT(g->n_kvs, 26);
    CHECK_EQ_INT(g->alignment, 32);
    const p3_gguf_value *tokens = p3_gguf_get_array(g, "tokenizer.ggml.tokens");
    CHECK_EQ_INT(p3_gguf_array_len(tokens), 32064);
    p3_gguf_str s;
    CHECK(p3_gguf_array_string(tokens, 1, &s) && s.len == 3 && memcmp(s.s, "<s>", 3) == 0);
    CHECK(p3_gguf_array_string(tokens, 278, &s) && s.len == 6 &&
          memcmp(s.s, "\xe2\x96\x81the", 6) == 0);
    CHECK(p3_gguf_array_string(tokens, 32010, &s) && s.len == 8 && memcmp(s.s, "<|user|>", 8) == 0);
    CHECK(!p3_gguf_array_string(tokens, 32064, &s));
    double score;
    int64_t type, id;
    CHECK(p3_gguf_array_float(p3_gguf_get_array(g, "tokenizer.ggml.scores"), 300, &score) &&
          score == -41.0);
    CHECK(p3_gguf_array_int(p3_gguf_get_array(g, "tokenizer.ggml.token_type"), 32007, &type) &&
          type == 3);
    CHECK(p3_gguf_get_int(g, "tokenizer.ggml.eos_token_id", &id) && id == 32000);
    bool add_bos = false;
    CHECK(p3_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &add_bos) && add_bos);
    CHECK(p3_gguf_get_string(g, "tokenizer.ggml.model", &s) && s.len == 5 &&
          memcmp(s.s, "llama", 5) == 0);
    CHECK(!p3_gguf_get_int(g, "tokenizer.ggml.model", &id)); /* wrong type */
    CHECK(p3_gguf_find(g, "no.such.key") == NULL);
    p3_source_close(src);
}

/* Every metadata type, nested arrays, alignment 64 and a Q8_0 tensor, laid out by hand. */
P3_TEST(gguf_all_metadata_types) {
    bytebuf b = {0};
    bb_bytes(&b, "GGUF", 4);
    bb_u32(&b, 2); /* v2 */
    bb_u64(&b, 1);
    bb_u64(&b, 15);
    const struct {
        const char *key;
        uint32_t type;
        uint64_t raw;
        int size;
    } scalars[] = {
        {"u8", 0, 200, 1},     {"i8", 1, 0xfe, 1},         {"u16", 2, 65535, 2},
        {"i16", 3, 0x8000, 2}, {"u32", 4, 4000000000u, 4}, {"i32", 5, 0xffffffffu, 4},
        {"bool", 7, 1, 1},     {"u64", 10, 1ull << 40, 8}, {"i64", 11, (uint64_t)-5, 8},
    };
    for (size_t i = 0; i < P3_ARRAY_LEN(scalars); i++) {
        bb_gguf_str(&b, scalars[i].key);
        bb_u32(&b, scalars[i].type);
        for (int k = 0; k < scalars[i].size; k++) bb_u8(&b, (uint8_t)(scalars[i].raw >> (8 * k)));
    }
    bb_gguf_str(&b, "f32");
    bb_u32(&b, 6);
    bb_f32(&b, 0.25f);
    bb_gguf_str(&b, "f64");
    bb_u32(&b, 12);
    double d = -1.5e300;
    uint64_t bits;
    memcpy(&bits, &d, 8);
    bb_u64(&b, bits);
    bb_gguf_str(&b, "str");
    bb_u32(&b, 8);
    bb_gguf_str(&b, "h\xc3\xa9");
    bb_gguf_str(&b, "nested"); /* [[1, 2], [], [3]] as arrays of i32 */
    bb_u32(&b, 9);
    bb_u32(&b, 9);
    bb_u64(&b, 3);
    int32_t groups[3][2] = {{1, 2}, {0, 0}, {3, 0}};
    const int lens[3] = {2, 0, 1};
    for (int i = 0; i < 3; i++) {
        bb_u32(&b, 5);
        bb_u64(&b, (uint64_t)lens[i]);
        for (int k = 0; k < lens[i]; k++) bb_u32(&b, (uint32_t)groups[i][k]);
    }
    bb_gguf_str(&b, "strs");
    bb_u32(&b, 9);
    bb_u32(&b, 8);
    bb_u64(&b, 2);
    bb_gguf_str(&b, "");
    bb_gguf_str(&b, "xy");
    bb_gguf_str(&b, "general.alignment");
    bb_u32(&b, 4);
    bb_u32(&b, 64);
    /* tensor: Q8_0, ne = {32, 2} -> HF [2, 32] */
    bb_gguf_str(&b, "blk.0.ffn_down.weight");
    bb_u32(&b, 2);
    bb_u64(&b, 32);
    bb_u64(&b, 2);
    bb_u32(&b, 8);
    bb_u64(&b, 0);
    bb_pad(&b, 64);
    size_t data_start = b.n;
    for (int blk = 0; blk < 2; blk++) { /* d = 0.5 (f16 0x3800), q = j - 16 */
        bb_u8(&b, 0x00);
        bb_u8(&b, 0x38);
        for (int j = 0; j < 32; j++) bb_u8(&b, (uint8_t)(int8_t)(j - 16 + blk));
    }
    p3_gguf *g = NULL;
    p3_error err = {0};
    if (CHECK_OK(p3_gguf_parse(b.p, b.n, "all.gguf", &g, &err), &err)) {
        int64_t i;
        double f;
        bool flag;
        p3_gguf_str s;
        CHECK(p3_gguf_get_int(g, "u8", &i) && i == 200);
        CHECK(p3_gguf_get_int(g, "i8", &i) && i == -2);
        CHECK(p3_gguf_get_int(g, "u16", &i) && i == 65535);
        CHECK(p3_gguf_get_int(g, "i16", &i) && i == -32768);
        CHECK(p3_gguf_get_int(g, "u32", &i) && i == 4000000000ll);
        CHECK(p3_gguf_get_int(g, "i32", &i) && i == -1);
        CHECK(p3_gguf_get_bool(g, "bool", &flag) && flag);
        CHECK(p3_gguf_get_int(g, "u64", &i) && i == 1ll << 40);
        CHECK(p3_gguf_get_int(g, "i64", &i) && i == -5);
        CHECK(p3_gguf_get_float(g, "f32", &f) && f == 0.25);
        CHECK(p3_gguf_get_float(g, "f64", &f) && f == -1.5e300);
        CHECK(p3_gguf_get_float(g, "u8", &f) && f == 200.0);
        CHECK(p3_gguf_get_string(g, "str", &s) && s.len == 3 && memcmp(s.s, "h\xc3\xa9", 3) == 0);
        const p3_gguf_value *nested = p3_gguf_get_array(g, "nested");
        CHECK_EQ_INT(p3_gguf_array_len(nested), 3);
        for (size_t k = 0; k < 3; k++) {
            const p3_gguf_value *inner = p3_gguf_array_item(nested, k);
            CHECK_EQ_INT(p3_gguf_array_len(inner), lens[k]);
            for (int j = 0; j < lens[k]; j++)
                CHECK(p3_gguf_array_int(inner, (size_t)j, &i) && i == groups[k][j]);
        }
        CHECK(p3_gguf_array_item(nested, 3) == NULL);
        const p3_gguf_value *strs = p3_gguf_get_array(g, "strs");
        CHECK(p3_gguf_array_string(strs, 0, &s) && s.len == 0);
        CHECK(p3_gguf_array_string(strs, 1, &s) && s.len == 2 && memcmp(s.s, "xy", 2) == 0);
        CHECK(!p3_gguf_array_int(strs, 0, &i));
        CHECK_EQ_INT(g->alignment, 64);
        CHECK_EQ_INT(g->data_offset, data_start);
        const p3_tensor *x = &g->tensors[0];
        char hf[P3_TENSOR_NAME_MAX];
        p3_gguf_hf_name(x->name, hf, sizeof hf); /* the container keeps the file's name */
        CHECK(strcmp(x->name, "blk.0.ffn_down.weight") == 0 &&
              strcmp(hf, "model.layers.0.mlp.down_proj.weight") == 0);
        CHECK(x->dtype == P3_DT_Q8_0 && x->shape[0] == 2 && x->shape[1] == 32 && x->nbytes == 68);
        float out[64];
        if (CHECK_OK(p3_tensor_to_f32(x, 0, 64, out, &err), &err))
            for (int j = 0; j < 64; j++)
                CHECK_MSG(out[j] == 0.5f * (float)((j % 32) - 16 + j / 32), "q8_0 [%d] = %g", j,
                          out[j]);
        /* the phi3 config needs phi3.* keys this file lacks */
        p3_config c;
        CHECK_STATUS(p3_gguf_config(g, "all.gguf", &c, &err), PHI3C_ERR_FORMAT);
    }
    p3_gguf_free(g);
    bb_free(&b);
}

P3_TEST(gguf_hf_names) {
    static const char *const pairs[][2] = {
        {"token_embd.weight", "model.embed_tokens.weight"},
        {"output_norm.weight", "model.norm.weight"},
        {"output.weight", "lm_head.weight"},
        {"blk.0.attn_norm.weight", "model.layers.0.input_layernorm.weight"},
        {"blk.31.attn_qkv.weight", "model.layers.31.self_attn.qkv_proj.weight"},
        {"blk.7.attn_output.weight", "model.layers.7.self_attn.o_proj.weight"},
        {"blk.2.ffn_norm.weight", "model.layers.2.post_attention_layernorm.weight"},
        {"blk.2.ffn_up.weight", "model.layers.2.mlp.gate_up_proj.weight"},
        {"blk.10.ffn_down.weight", "model.layers.10.mlp.down_proj.weight"},
        {"rope_factors_long.weight", "rope_factors_long.weight"},
        {"blk.x.ffn_down.weight", "blk.x.ffn_down.weight"},
        {"blk.3.unknown.weight", "blk.3.unknown.weight"},
    };
    for (size_t i = 0; i < P3_ARRAY_LEN(pairs); i++) {
        char hf[P3_TENSOR_NAME_MAX];
        p3_gguf_hf_name(pairs[i][0], hf, sizeof hf);
        CHECK_MSG(strcmp(hf, pairs[i][1]) == 0, "%s -> %s", pairs[i][0], hf);
    }
}

/* ---- a Q4_K_M-style phi3 model: k-quant blocks of random bytes with finite f16 scales ---- */

typedef struct kq_tensor {
    const char *name;
    uint32_t ggml_type; /* 0 F32, 2 Q4_0, 8 Q8_0, 12 Q4_K, 13 Q5_K, 14 Q6_K */
    uint64_t ne0, ne1;  /* ggml order: ne0 innermost; ne1 0 for 1-D */
    size_t block_bytes, block_elems;
    size_t scale_at[2]; /* f16 scale positions inside a block (SIZE_MAX: none) */
} kq_tensor;

static void kq_metadata(bytebuf *b, const char *key, uint32_t type, uint32_t value) {
    bb_gguf_str(b, key);
    bb_u32(b, type);
    bb_u32(b, value); /* UINT32 or FLOAT32 bits */
}

static void build_kquant_model(bytebuf *b, const kq_tensor *ts, size_t n) {
    float eps = 1e-5f, theta = 10000.0f;
    uint32_t eps_bits, theta_bits;
    memcpy(&eps_bits, &eps, 4);
    memcpy(&theta_bits, &theta, 4);
    bb_bytes(b, "GGUF", 4);
    bb_u32(b, 3);
    bb_u64(b, n);
    bb_u64(b, 10);
    bb_gguf_str(b, "general.architecture");
    bb_u32(b, 8);
    bb_gguf_str(b, "phi3");
    kq_metadata(b, "phi3.context_length", 4, 64);
    kq_metadata(b, "phi3.embedding_length", 4, 256);
    kq_metadata(b, "phi3.feed_forward_length", 4, 256);
    kq_metadata(b, "phi3.block_count", 4, 1);
    kq_metadata(b, "phi3.attention.head_count", 4, 2);
    kq_metadata(b, "phi3.attention.head_count_kv", 4, 2);
    kq_metadata(b, "phi3.attention.layer_norm_rms_epsilon", 6, eps_bits);
    kq_metadata(b, "phi3.rope.dimension_count", 4, 128);
    kq_metadata(b, "phi3.rope.freq_base", 6, theta_bits);
    uint64_t offset = 0;
    for (size_t i = 0; i < n; i++) {
        bb_gguf_str(b, ts[i].name);
        bb_u32(b, ts[i].ne1 ? 2 : 1);
        bb_u64(b, ts[i].ne0);
        if (ts[i].ne1) bb_u64(b, ts[i].ne1);
        bb_u32(b, ts[i].ggml_type);
        bb_u64(b, offset);
        uint64_t elems = ts[i].ne0 * (ts[i].ne1 ? ts[i].ne1 : 1);
        offset += (elems / ts[i].block_elems * ts[i].block_bytes + 31) / 32 * 32;
    }
    bb_pad(b, 32);
    p3_test_rng rng;
    p3_test_rng_seed(&rng, 7);
    for (size_t i = 0; i < n; i++) {
        uint64_t elems = ts[i].ne0 * (ts[i].ne1 ? ts[i].ne1 : 1);
        for (uint64_t blk = 0; blk < elems / ts[i].block_elems; blk++) {
            uint8_t block[256];
            for (size_t k = 0; k < ts[i].block_bytes; k++)
                block[k] = (uint8_t)p3_test_rng_u64(&rng);
            if (ts[i].ggml_type == 0) { /* F32 norm weights: 1.0 */
                float one = 1.0f;
                memcpy(block, &one, 4);
            }
            for (int s = 0; s < 2; s++) /* f16 scales: 0x2c00 + small mantissa: finite, ~0.06 */
                if (ts[i].scale_at[s] != SIZE_MAX) {
                    block[ts[i].scale_at[s]] = (uint8_t)p3_test_rng_u64(&rng);
                    block[ts[i].scale_at[s] + 1] = 0x2c;
                }
            bb_bytes(b, block, ts[i].block_bytes);
        }
        bb_pad(b, 32);
    }
}

P3_TEST(gguf_kquant_phi3_model) {
    const size_t none = SIZE_MAX;
    const kq_tensor ts[] = {
        {"token_embd.weight", 12, 256, 16, 144, 256, {0, 2}},
        {"blk.0.attn_norm.weight", 0, 256, 0, 4, 1, {none, none}},
        {"blk.0.attn_qkv.weight", 2, 256, 768, 18, 32, {0, none}},
        {"blk.0.attn_output.weight", 13, 256, 256, 176, 256, {0, 2}},
        {"blk.0.ffn_norm.weight", 0, 256, 0, 4, 1, {none, none}},
        {"blk.0.ffn_up.weight", 12, 256, 512, 144, 256, {0, 2}},
        {"blk.0.ffn_down.weight", 8, 256, 256, 34, 32, {0, none}},
        {"output_norm.weight", 0, 256, 0, 4, 1, {none, none}},
        {"output.weight", 14, 256, 16, 210, 256, {208, none}},
    };
    const p3_dtype want[] = {P3_DT_Q4_K, P3_DT_F32,  P3_DT_Q4_0, P3_DT_Q5_K, P3_DT_F32,
                             P3_DT_Q4_K, P3_DT_Q8_0, P3_DT_F32,  P3_DT_Q6_K};
    bytebuf b = {0};
    build_kquant_model(&b, ts, P3_ARRAY_LEN(ts));
    const char *path = write_test_file(t, p3_test_tmpdir(t), "kquant.gguf", b.p, b.n, 0);
    bb_free(&b);
    p3_model_source *src = NULL;
    p3_error err = {0};
    if (!CHECK_OK(p3_source_open(path, &src, &err), &err)) return;
    CHECK(src->has_config && src->config.hidden_size == 256 && src->config.vocab_size == 16 &&
          src->config.head_dim == 128 && src->config.rope.rot_dim == 128 &&
          !src->config.tie_word_embeddings);
    CHECK_OK(p3_source_check_tensors(src, &err), &err);
    for (size_t i = 0; i < src->n_tensors; i++) {
        const p3_tensor *x = &src->tensors[i];
        CHECK_MSG(x->dtype == want[i], "%s: %s", x->name, p3_dtype_name(x->dtype));
        size_t n = (size_t)x->shape[0] * (x->n_dims == 2 ? (size_t)x->shape[1] : 1);
        float *f = malloc(n * sizeof *f);
        if (CHECK_OK(p3_tensor_to_f32(x, 0, n, f, &err), &err)) {
            size_t finite = 0, nonzero = 0;
            for (size_t k = 0; k < n; k++) finite += isfinite(f[k]), nonzero += f[k] != 0;
            CHECK_MSG(finite == n && nonzero > n / 2, "%s: %zu finite, %zu non-zero of %zu",
                      x->name, finite, nonzero, n);
        }
        free(f);
    }
    p3_source_close(src);
    /* phi3c info lists the ggml dtypes and HF-order shapes */
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s info -m '%s'", p3_test_cli(), path);
    p3_cmd_result r;
    if (p3_test_run(t, cmd, &r)) {
        CHECK(r.exit_code == 0 && r.out && strstr(r.out, "Q4_K     [16, 256]") &&
              strstr(r.out, "Q6_K     [16, 256]") && strstr(r.out, "Q4_0     [768, 256]") &&
              strstr(r.out, "Q5_K     [256, 256]") && strstr(r.out, "Q8_0     [256, 256]"));
        p3_cmd_result_free(&r);
    }
}
