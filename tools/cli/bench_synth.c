/* bench_synth.c: a full-shape Phi-3-mini (3072 hidden, 32 layers, 32 heads, 8192 intermediate,
 * 32064 vocabulary) built in memory for `phi3c bench`: random symmetric INT4-g128 linear weights
 * with sane scales, a random f16 embedding and unit norms. Every layer views the same bytes (the
 * backend copies and repacks each upload), so the source costs ~300 MB, not 2 GB. */
#include "bench.h"

#include <string.h>

enum { HIDDEN = 3072, INTER = 8192, VOCAB = 32064 };

/* xorshift64*: reproducible filler, not statistics. */
static uint64_t next_random(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545f4914f6cdd1dull;
}

/* Random nibbles; scales between 0.002 and 0.006, what trained Phi-3 weights look like (their
 * absmax per group of 128 is a few hundredths). */
static void fill_int4(p3_block_i4s *b, size_t n_blocks, uint64_t seed) {
    uint64_t s = seed | 1;
    uint16_t scales[16];
    for (int i = 0; i < 16; i++) scales[i] = p3_f32_to_f16(0.002f + 0.00025f * (float)i);
    for (size_t i = 0; i < n_blocks; i++) {
        uint64_t r = next_random(&s);
        b[i].d = scales[r & 15];
        for (int j = 0; j < P3_QK / 2; j += 8) {
            uint64_t q = next_random(&s);
            memcpy(b[i].qs + j, &q, 8);
        }
    }
}

static void fill_f16(uint16_t *v, size_t n, uint64_t seed) {
    uint64_t s = seed | 1;
    uint16_t table[256];
    for (int i = 0; i < 256; i++) table[i] = p3_f32_to_f16(((float)i - 127.5f) * 0.0004f);
    for (size_t i = 0; i + 8 <= n; i += 8) {
        uint64_t r = next_random(&s);
        for (int j = 0; j < 8; j++) v[i + (size_t)j] = table[(r >> (8 * j)) & 255];
    }
}

static const char config_json[] =
    "{\"architectures\": [\"Phi3ForCausalLM\"], \"hidden_size\": 3072, \"intermediate_size\": 8192,"
    " \"num_attention_heads\": 32, \"num_key_value_heads\": 32, \"vocab_size\": 32064,"
    " \"max_position_embeddings\": 4096, \"original_max_position_embeddings\": 4096,"
    " \"rms_norm_eps\": 1e-05, \"rope_theta\": 10000.0, \"sliding_window\": 2047,"
    " \"tie_word_embeddings\": false, \"bos_token_id\": 1, \"eos_token_id\": 32000,"
    " \"num_hidden_layers\": %d}";

/* The blobs every layer shares, by role. */
enum { B_EMBED, B_NORM, B_QKV, B_O, B_GATE_UP, B_DOWN, B_LM_HEAD, B_COUNT };

static p3_status alloc_int4(bench_synth *s, int which, int64_t rows, int64_t cols, p3_error *err) {
    size_t n = (size_t)rows * (size_t)p3_groups(cols);
    s->blobs[which] = p3_malloc(n * sizeof(p3_block_i4s));
    if (!s->blobs[which])
        return p3_fail(err, PHI3C_ERR_NOMEM, "synthetic phi3-mini: out of memory (%zu blocks)", n);
    fill_int4(s->blobs[which], n, 0x9e3779b97f4a7c15ull * (uint64_t)(which + 1));
    return PHI3C_OK;
}

static p3_status alloc_blobs(bench_synth *s, p3_error *err) {
    size_t n_embed = (size_t)VOCAB * HIDDEN;
    s->blobs[B_EMBED] = p3_malloc(n_embed * sizeof(uint16_t));
    s->blobs[B_NORM] = p3_malloc(INTER * sizeof(float));
    if (!s->blobs[B_EMBED] || !s->blobs[B_NORM])
        return p3_fail(err, PHI3C_ERR_NOMEM, "synthetic phi3-mini: out of memory (embedding)");
    fill_f16(s->blobs[B_EMBED], n_embed, 7);
    float *ones = s->blobs[B_NORM];
    for (int i = 0; i < INTER; i++) ones[i] = 1.0f;
    P3_TRY(alloc_int4(s, B_QKV, 3 * HIDDEN, HIDDEN, err));
    P3_TRY(alloc_int4(s, B_O, HIDDEN, HIDDEN, err));
    P3_TRY(alloc_int4(s, B_GATE_UP, 2 * INTER, HIDDEN, err));
    P3_TRY(alloc_int4(s, B_DOWN, HIDDEN, INTER, err));
    return alloc_int4(s, B_LM_HEAD, VOCAB, HIDDEN, err);
}

/* The blob (and dtype) of an expected tensor: norms share the ones, linear weights by role. */
static void blob_of(const char *hf_name, int *blob, p3_dtype *dtype) {
    static const struct {
        const char *suffix;
        int blob;
        p3_dtype dtype;
    } roles[] = {{"embed_tokens.weight", B_EMBED, P3_DT_F16},
                 {"qkv_proj.weight", B_QKV, P3_DT_I4G128S},
                 {"o_proj.weight", B_O, P3_DT_I4G128S},
                 {"gate_up_proj.weight", B_GATE_UP, P3_DT_I4G128S},
                 {"down_proj.weight", B_DOWN, P3_DT_I4G128S},
                 {"lm_head.weight", B_LM_HEAD, P3_DT_I4G128S}};
    size_t len = strlen(hf_name);
    for (size_t i = 0; i < P3_ARRAY_LEN(roles); i++) {
        size_t n = strlen(roles[i].suffix);
        if (len >= n && strcmp(hf_name + len - n, roles[i].suffix) == 0) {
            *blob = roles[i].blob;
            *dtype = roles[i].dtype;
            return;
        }
    }
    *blob = B_NORM;
    *dtype = P3_DT_F32;
}

/* Every tensor the config implies (p3_config_expected_tensors), viewing the shared blobs. */
static p3_status add_tensors(bench_synth *s, p3_error *err) {
    p3_tensor_spec *specs = NULL;
    size_t n = 0;
    P3_TRY(p3_config_expected_tensors(&s->src.config, &specs, &n, err));
    s->src.tensors = p3_calloc(n, sizeof(p3_tensor));
    if (!s->src.tensors) {
        p3_free(specs);
        return p3_fail(err, PHI3C_ERR_NOMEM, "synthetic phi3-mini: out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        int blob;
        p3_dtype dtype;
        blob_of(specs[i].hf_name, &blob, &dtype);
        p3_tensor_set(&s->src.tensors[i], specs[i].hf_name, dtype, specs[i].shape[0],
                      specs[i].n_dims == 2 ? specs[i].shape[1] : 0, s->blobs[blob]);
    }
    s->src.n_tensors = n;
    p3_free(specs);
    return PHI3C_OK;
}

p3_status bench_synth_phi3_mini(int layers, bench_synth *out, p3_error *err) {
    memset(out, 0, sizeof *out);
    if (layers < 1 || layers > 32)
        return p3_fail(err, PHI3C_ERR_INVALID_ARG, "synthetic phi3-mini: %d layers (1..32)",
                       layers);
    char json[sizeof config_json + 16];
    snprintf(json, sizeof json, config_json, layers);
    p3_model_source *src = &out->src;
    snprintf(out->path, sizeof out->path, "synthetic:phi3-mini");
    src->path = out->path;
    src->has_config = true;
    P3_TRY(p3_config_parse_json(json, strlen(json), src->path, &src->config, err));
    P3_TRY(p3_config_finish(&src->config, src->path, err));
    p3_status st = alloc_blobs(out, err);
    if (st == PHI3C_OK) st = add_tensors(out, err);
    if (st != PHI3C_OK) bench_synth_free(out);
    return st;
}

void bench_synth_free(bench_synth *s) {
    for (int i = 0; i < B_COUNT; i++) p3_free(s->blobs[i]);
    p3_free(s->src.tensors);
    memset(s, 0, sizeof *s);
}
