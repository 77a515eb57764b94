/* gguf_phi3.c: a GGUF file as a Phi-3 model source: llama.cpp's phi3 tensor names mapped to
 * transformers' (through the architecture's tensor table, arch.h) and its phi3.* keys read into a
 * p3_config. The container itself is gguf.c. */
#include "arch.h"
#include "gguf_phi3.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- llama.cpp phi3 names and keys ---- */

/* blk.<decimal>.<rest>: the layer number and the rest, or false. */
static bool split_layer_name(const char *name, unsigned long *layer, const char **rest) {
    if (strncmp(name, "blk.", 4) != 0 || name[4] < '0' || name[4] > '9') return false;
    unsigned long n = 0;
    const char *p = name + 4;
    while (*p >= '0' && *p <= '9' && n < 100000) n = n * 10 + (unsigned long)(*p++ - '0');
    if (*p != '.') return false;
    *layer = n;
    *rest = p + 1;
    return true;
}

void p3_gguf_hf_name(const char *name, char *hf, size_t size) {
    const p3_arch *arch = p3_arch_of(NULL);
    unsigned long layer = 0;
    const char *rest = NULL;
    bool in_layer = split_layer_name(name, &layer, &rest);
    for (size_t i = 0; i < arch->n_tensors; i++) {
        const p3_arch_tensor *t = &arch->tensors[i];
        if (t->per_layer ? in_layer && strcmp(rest, t->gguf) == 0 : strcmp(name, t->gguf) == 0) {
            p3_arch_hf_name(t, (int)layer, hf, size);
            return;
        }
    }
    snprintf(hf, size, "%s", name);
}

static const p3_tensor *gguf_tensor(const p3_gguf *g, const char *name) {
    for (size_t i = 0; i < g->n_tensors; i++)
        if (strcmp(g->tensors[i].name, name) == 0) return &g->tensors[i];
    return NULL;
}

static p3_status key_int(const p3_gguf *g, const char *what, const char *key, bool required,
                         int64_t lo, int64_t hi, int *out, p3_error *err) {
    const p3_gguf_kv *kv = p3_gguf_find(g, key);
    int64_t v;
    if (!kv) {
        if (!required) return PHI3C_OK;
        return p3_fail(err, PHI3C_ERR_FORMAT, "%s: metadata %s is missing", what, key);
    }
    if (!p3_gguf_get_int(g, key, &v))
        return p3_fail(err, PHI3C_ERR_FORMAT, "%s: metadata %s must be an integer (is %s)", what,
                       key, p3_gguf_type_name(kv->value.type));
    if (v < lo || v > hi)
        return p3_fail(err, PHI3C_ERR_FORMAT, "%s: metadata %s = %lld is out of range", what, key,
                       (long long)v);
    *out = (int)v;
    return PHI3C_OK;
}

static p3_status key_float(const p3_gguf *g, const char *what, const char *key, float *out,
                           p3_error *err) {
    double v;
    if (!p3_gguf_find(g, key)) return PHI3C_OK;
    if (!p3_gguf_get_float(g, key, &v) || !(fabs(v) < 3e38))
        return p3_fail(err, PHI3C_ERR_FORMAT, "%s: metadata %s must be a finite number", what, key);
    *out = (float)v;
    return PHI3C_OK;
}

/* rope_factors_long/short (F32 [rot_dim/2]) make the model LongRoPE. */
static p3_status read_rope_factors(const p3_gguf *g, const char *what, p3_config *cfg,
                                   p3_error *err) {
    const p3_tensor *lf = gguf_tensor(g, "rope_factors_long.weight");
    const p3_tensor *sf = gguf_tensor(g, "rope_factors_short.weight");
    if (!lf && !sf) return PHI3C_OK;
    if (!lf || !sf)
        return p3_fail(err, PHI3C_ERR_FORMAT, "%s: has only one of rope_factors_long/short", what);
    for (int k = 0; k < 2; k++) {
        const p3_tensor *t = k ? lf : sf;
        if (t->n_dims != 1 || t->shape[0] > P3_MAX_ROPE_FACTORS || t->shape[0] != lf->shape[0])
            return p3_fail(err, PHI3C_ERR_FORMAT,
                           "%s: tensor %s must be 1-D with at most %d "
                           "entries (like its partner)",
                           what, t->name, P3_MAX_ROPE_FACTORS);
        p3_status st = p3_tensor_to_f32(t, 0, (size_t)t->shape[0],
                                        k ? cfg->rope.long_factor : cfg->rope.short_factor, err);
        if (st != PHI3C_OK) return st;
    }
    cfg->rope.type = P3_ROPE_LONGROPE;
    cfg->rope.n_factors = (int)lf->shape[0];
    return PHI3C_OK;
}

static p3_status read_phi3_keys(const p3_gguf *g, const char *what, p3_config *c, int *rot,
                                p3_error *err) {
    const int64_t big = 1 << 20;
    p3_status st = key_int(g, what, "phi3.embedding_length", true, 1, big, &c->hidden_size, err);
    if (st == PHI3C_OK)
        st = key_int(g, what, "phi3.block_count", true, 1, 4096, &c->num_layers, err);
    if (st == PHI3C_OK)
        st = key_int(g, what, "phi3.attention.head_count", true, 1, 4096, &c->num_heads, err);
    c->num_kv_heads = c->num_heads;
    if (st == PHI3C_OK)
        st =
            key_int(g, what, "phi3.attention.head_count_kv", false, 1, 4096, &c->num_kv_heads, err);
    if (st == PHI3C_OK)
        st = key_int(g, what, "phi3.attention.key_length", false, 1, 2 * P3_MAX_ROPE_FACTORS,
                     &c->head_dim, err);
    if (st == PHI3C_OK)
        st = key_int(g, what, "phi3.feed_forward_length", true, 1, big, &c->intermediate_size, err);
    if (st == PHI3C_OK)
        st = key_int(g, what, "phi3.context_length", true, 1, INT32_MAX,
                     &c->max_position_embeddings, err);
    if (st == PHI3C_OK)
        st = key_int(g, what, "phi3.rope.scaling.original_context_length", false, 1, INT32_MAX,
                     &c->original_max_position_embeddings, err);
    if (st == PHI3C_OK)
        st = key_int(g, what, "phi3.rope.dimension_count", false, 2, 2 * P3_MAX_ROPE_FACTORS, rot,
                     err);
    if (st == PHI3C_OK)
        st = key_int(g, what, "phi3.attention.sliding_window", false, 0, INT32_MAX,
                     &c->sliding_window, err);
    if (st == PHI3C_OK)
        st = key_float(g, what, "phi3.attention.layer_norm_rms_epsilon", &c->rms_norm_eps, err);
    if (st == PHI3C_OK) st = key_float(g, what, "phi3.rope.freq_base", &c->rope.theta, err);
    if (st == PHI3C_OK)
        st = key_float(g, what, "phi3.rope.scaling.attn_factor", &c->rope.attn_factor, err);
    return st;
}

static void read_token_ids(const p3_gguf *g, p3_config *c) {
    int64_t v;
    if (p3_gguf_get_int(g, "tokenizer.ggml.bos_token_id", &v) && v >= 0 && v <= INT32_MAX)
        c->bos_id = (int)v;
    if (p3_gguf_get_int(g, "tokenizer.ggml.eos_token_id", &v) && v >= 0 && v <= INT32_MAX)
        c->eos_id = (int)v;
    if (p3_gguf_get_int(g, "tokenizer.ggml.padding_token_id", &v) && v >= 0 && v <= INT32_MAX)
        c->pad_id = (int)v;
    if (c->eos_id >= 0) c->stop_ids[c->n_stop_ids++] = c->eos_id;
    if (p3_gguf_get_int(g, "tokenizer.ggml.eot_token_id", &v) && v >= 0 && v <= INT32_MAX &&
        v != c->eos_id)
        c->stop_ids[c->n_stop_ids++] = (int)v;
}

p3_status p3_gguf_config(const p3_gguf *g, const char *what, p3_config *c, p3_error *err) {
    p3_config_init(c);
    p3_gguf_str arch = {0};
    if (!p3_gguf_get_string(g, "general.architecture", &arch))
        return p3_fail(err, PHI3C_ERR_FORMAT, "%s: no general.architecture", what);
    if (arch.len != 4 || memcmp(arch.s, "phi3", 4) != 0)
        return p3_fail(err, PHI3C_ERR_UNSUPPORTED,
                       "%s: GGUF architecture \"%.*s\" is not supported; phi3c runs phi3", what,
                       (int)P3_MIN(arch.len, 64), arch.s);
    snprintf(c->architecture, sizeof c->architecture, "Phi3ForCausalLM");
    int rot = 0;
    p3_status st = read_phi3_keys(g, what, c, &rot, err);
    if (st == PHI3C_OK) st = read_rope_factors(g, what, c, err);
    if (st != PHI3C_OK) return st;
    const p3_tensor *embd = gguf_tensor(g, "token_embd.weight");
    int64_t vocab = 0;
    if (embd && embd->n_dims == 2)
        vocab = embd->shape[0];
    else if (!p3_gguf_get_int(g, "phi3.vocab_size", &vocab))
        vocab = (int64_t)p3_gguf_array_len(p3_gguf_get_array(g, "tokenizer.ggml.tokens"));
    if (vocab <= 0 || vocab > (1 << 24))
        return p3_fail(err, PHI3C_ERR_FORMAT, "%s: cannot tell the vocabulary size", what);
    c->vocab_size = (int)vocab;
    c->tie_word_embeddings = gguf_tensor(g, "output.weight") == NULL;
    read_token_ids(g, c);
    if (rot) {
        /* rotary dims as a partial factor of head_dim, nudged so int(hd * f) gives rot back */
        int hd = c->head_dim ? c->head_dim : c->hidden_size / c->num_heads;
        if (hd <= 0 || rot > hd)
            return p3_fail(err, PHI3C_ERR_FORMAT,
                           "%s: rope.dimension_count %d exceeds head "
                           "dim %d",
                           what, rot, hd);
        float f = (float)rot / (float)hd;
        while ((int)((double)hd * (double)f) < rot) f = nextafterf(f, 2.0f);
        c->rope.partial_rotary_factor = f;
    }
    return p3_config_finish(c, what, err);
}

/* ---- opening a file as a model source ---- */

p3_status p3_gguf_open_file(const char *path, p3_model_source *src, p3_error *err) {
    p3_mapped_file *files = p3_realloc(src->files, (src->n_files + 1) * sizeof *files);
    if (!files) return p3_fail(err, PHI3C_ERR_NOMEM, "%s: out of memory", path);
    src->files = files;
    p3_status st = p3_file_map(&files[src->n_files], path, err);
    if (st != PHI3C_OK) return st;
    const p3_mapped_file *f = &files[src->n_files++];
    src->file_bytes += f->size;
    src->format = P3_FORMAT_GGUF;
    st = p3_gguf_parse(f->data, f->size, path, &src->gguf, err);
    if (st != PHI3C_OK) return st;
    const p3_gguf *g = src->gguf;
    if (g->n_tensors) {
        src->tensors = p3_malloc(g->n_tensors * sizeof *src->tensors);
        if (!src->tensors) return p3_fail(err, PHI3C_ERR_NOMEM, "%s: out of memory", path);
        memcpy(src->tensors, g->tensors, g->n_tensors * sizeof *src->tensors);
        src->n_tensors = g->n_tensors;
        for (size_t i = 0; i < src->n_tensors; i++)
            p3_gguf_hf_name(src->tensors[i].name, src->tensors[i].hf_name,
                            sizeof src->tensors[i].hf_name);
        /* a file with weights must describe a model phi3c can run */
        st = p3_gguf_config(g, path, &src->config, err);
        src->has_config = st == PHI3C_OK;
    }
    return st;
}
