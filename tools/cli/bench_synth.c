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

static void set_tensor(p3_tensor *t, const char *name, p3_dtype dt, int64_t rows, int64_t cols,
                       const void *data) {
    snprintf(t->name, sizeof t->name, "%s", name);
    snprintf(t->hf_name, sizeof t->hf_name, "%s", name);
    t->dtype = dt;
    t->n_dims = cols ? 2 : 1;
    t->shape[0] = rows;
    t->shape[1] = cols;
    t->data = data;
    size_t row_bytes = 0;
    p3_dtype_row_bytes(dt, cols ? cols : rows, &row_bytes);
    t->nbytes = cols ? row_bytes * (size_t)rows : row_bytes;
}

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

static void add_layer(bench_synth *s, size_t *n, int l) {
    static const struct {
        const char *suffix;
        int blob;
        int64_t rows, cols;
    } parts[] = {{"input_layernorm.weight", B_NORM, HIDDEN, 0},
                 {"self_attn.qkv_proj.weight", B_QKV, 3 * HIDDEN, HIDDEN},
                 {"self_attn.o_proj.weight", B_O, HIDDEN, HIDDEN},
                 {"post_attention_layernorm.weight", B_NORM, HIDDEN, 0},
                 {"mlp.gate_up_proj.weight", B_GATE_UP, 2 * INTER, HIDDEN},
                 {"mlp.down_proj.weight", B_DOWN, HIDDEN, INTER}};
    char name[P3_TENSOR_NAME_MAX];
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        snprintf(name, sizeof name, "model.layers.%d.%s", l, parts[i].suffix);
        p3_dtype dt = parts[i].cols ? P3_DT_I4G128S : P3_DT_F32;
        set_tensor(&s->src.tensors[(*n)++], name, dt, parts[i].rows, parts[i].cols,
                   s->blobs[parts[i].blob]);
    }
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
    src->tensors = p3_calloc((size_t)layers * 6 + 3, sizeof(p3_tensor));
    if (!src->tensors) return p3_fail(err, PHI3C_ERR_NOMEM, "synthetic phi3-mini: out of memory");
    p3_status st = alloc_blobs(out, err);
    if (st != PHI3C_OK) {
        bench_synth_free(out);
        return st;
    }
    size_t n = 0;
    set_tensor(&src->tensors[n++], "model.embed_tokens.weight", P3_DT_F16, VOCAB, HIDDEN,
               out->blobs[B_EMBED]);
    for (int l = 0; l < layers; l++) add_layer(out, &n, l);
    set_tensor(&src->tensors[n++], "model.norm.weight", P3_DT_F32, HIDDEN, 0, out->blobs[B_NORM]);
    set_tensor(&src->tensors[n++], "lm_head.weight", P3_DT_I4G128S, VOCAB, HIDDEN,
               out->blobs[B_LM_HEAD]);
    src->n_tensors = n;
    return PHI3C_OK;
}

void bench_synth_free(bench_synth *s) {
    for (int i = 0; i < B_COUNT; i++) p3_free(s->blobs[i]);
    p3_free(s->src.tensors);
    memset(s, 0, sizeof *s);
}
