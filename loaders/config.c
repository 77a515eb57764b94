/* config.c: the model configuration: config.json (transformers 4.x rope_theta/rope_scaling and 5.x
 * rope_parameters forms) and generation_config.json into p3_config, the derived values and range
 * checks every loader shares, and the tensor table a config implies. */
#include "arch.h"
#include "json.h"
#include "source.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void p3_config_init(p3_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->rms_norm_eps = 1e-5f;
    cfg->rope.type = P3_ROPE_DEFAULT;
    cfg->rope.theta = 10000.0f;
    cfg->rope.partial_rotary_factor = 1.0f;
    cfg->bos_id = cfg->eos_id = cfg->pad_id = -1;
}

/* ---- typed fields with messages naming the file and the key ---- */

typedef struct cfg_reader {
    const char *what;
    p3_error *err;
} cfg_reader;

/* Absent or null keys leave *out alone (the default stays) unless required. */
static p3_status read_int(const cfg_reader *r, const json_value *obj, const char *key,
                          bool required, int64_t lo, int64_t hi, int *out) {
    const json_value *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        if (required)
            return p3_fail(r->err, PHI3C_ERR_FORMAT, "%s: required field \"%s\" is missing",
                           r->what, key);
        return PHI3C_OK;
    }
    int64_t x;
    if (!json_get_int(v, &x))
        return p3_fail(r->err, PHI3C_ERR_FORMAT, "%s: \"%s\" must be a whole number", r->what, key);
    if (x < lo || x > hi)
        return p3_fail(r->err, PHI3C_ERR_FORMAT, "%s: \"%s\" = %lld is out of range [%lld, %lld]",
                       r->what, key, (long long)x, (long long)lo, (long long)hi);
    *out = (int)x;
    return PHI3C_OK;
}

static p3_status read_float(const cfg_reader *r, const json_value *obj, const char *key,
                            float *out) {
    const json_value *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return PHI3C_OK;
    double x;
    if (!json_get_double(v, &x))
        return p3_fail(r->err, PHI3C_ERR_FORMAT, "%s: \"%s\" must be a number", r->what, key);
    if (!(fabs(x) <= 3.4e38))
        return p3_fail(r->err, PHI3C_ERR_FORMAT, "%s: \"%s\" = %g is out of float range", r->what,
                       key, x);
    *out = (float)x;
    return PHI3C_OK;
}

static p3_status read_bool(const cfg_reader *r, const json_value *obj, const char *key, bool *out) {
    const json_value *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return PHI3C_OK;
    if (!json_get_bool(v, out))
        return p3_fail(r->err, PHI3C_ERR_FORMAT, "%s: \"%s\" must be true or false", r->what, key);
    return PHI3C_OK;
}

/* A token id field that may be an int or a list of ints (eos_token_id): the first goes to *id,
 * all of them to ids[] when ids is not NULL. */
static p3_status read_token_ids(const cfg_reader *r, const json_value *obj, const char *key,
                                int *id, int *ids, int *n_ids) {
    const json_value *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return PHI3C_OK;
    size_t n = json_typeof(v) == JSON_ARRAY ? json_array_len(v) : 1;
    if (ids && n > P3_MAX_STOP_IDS)
        return p3_fail(r->err, PHI3C_ERR_FORMAT, "%s: \"%s\" lists %zu ids (at most %d)", r->what,
                       key, n, P3_MAX_STOP_IDS);
    for (size_t i = 0; i < n; i++) {
        const json_value *item = json_typeof(v) == JSON_ARRAY ? json_array_at(v, i) : v;
        int64_t x;
        if (!json_get_int(item, &x) || x < 0 || x > INT32_MAX)
            return p3_fail(r->err, PHI3C_ERR_FORMAT,
                           "%s: \"%s\" must be a token id or a list of token ids", r->what, key);
        if (i == 0) *id = (int)x;
        if (ids) ids[i] = (int)x;
    }
    if (ids) *n_ids = (int)n;
    return PHI3C_OK;
}

static p3_status read_factors(const cfg_reader *r, const json_value *obj, const char *key,
                              float *dst, int *n_out) {
    const json_value *v = json_object_get(obj, key);
    if (json_typeof(v) != JSON_ARRAY)
        return p3_fail(r->err, PHI3C_ERR_FORMAT,
                       "%s: LongRoPE scaling needs \"%s\" as a list of numbers", r->what, key);
    size_t n = json_array_len(v);
    if (n == 0 || n > P3_MAX_ROPE_FACTORS)
        return p3_fail(r->err, PHI3C_ERR_FORMAT, "%s: \"%s\" has %zu entries (1..%d allowed)",
                       r->what, key, n, P3_MAX_ROPE_FACTORS);
    for (size_t i = 0; i < n; i++) {
        double x;
        if (!json_get_double(json_array_at(v, i), &x) || !(x > 0 && x < 1e30))
            return p3_fail(r->err, PHI3C_ERR_FORMAT, "%s: \"%s\"[%zu] must be a positive number",
                           r->what, key, i);
        dst[i] = (float)x;
    }
    if (*n_out && *n_out != (int)n)
        return p3_fail(r->err, PHI3C_ERR_FORMAT,
                       "%s: short_factor and long_factor differ in length (%d vs %zu)", r->what,
                       *n_out, n);
    *n_out = (int)n;
    return PHI3C_OK;
}

/* ---- architecture ---- */

static const struct {
    const char *name;
    const char *why;
} refused_architectures[] = {
    {"Phi3SmallForCausalLM", "Phi-3-small: blocksparse attention and a tiktoken vocabulary"},
    {"PhimoeForCausalLM", "Phi-3.5-MoE: mixture of experts"},
    {"Phi3VForCausalLM", "Phi-3-vision: an image encoder"},
    {"Phi4MMForCausalLM", "Phi-4-multimodal: vision and audio encoders"},
    {"PhiForCausalLM", "Phi-1/1.5/2: a different transformer (partial rotary, dense biases)"},
};

static p3_status read_architecture(const cfg_reader *r, const json_value *root, p3_config *cfg) {
    const json_value *archs = json_object_get(root, "architectures");
    if (archs && (json_typeof(archs) != JSON_ARRAY || json_array_len(archs) == 0 ||
                  !json_string(json_array_at(archs, 0))))
        return p3_fail(r->err, PHI3C_ERR_FORMAT,
                       "%s: \"architectures\" must be a list of one string (Phi3ForCausalLM)",
                       r->what);
    const char *arch = json_string(json_array_at(archs, 0));
    const char *model_type = json_string(json_object_get(root, "model_type"));
    if (!arch && model_type && strcmp(model_type, "phi3") == 0) arch = "Phi3ForCausalLM";
    if (!arch)
        return p3_fail(r->err, PHI3C_ERR_FORMAT,
                       "%s: no \"architectures\" list (is this a model config.json?)", r->what);
    if (json_array_len(archs) > 1)
        return p3_fail(r->err, PHI3C_ERR_UNSUPPORTED,
                       "%s: %zu architectures listed; phi3c reads "
                       "configs with exactly one (Phi3ForCausalLM)",
                       r->what, json_array_len(archs));
    if (strcmp(arch, "Phi3ForCausalLM") != 0) {
        for (size_t i = 0; i < P3_ARRAY_LEN(refused_architectures); i++)
            if (strcmp(arch, refused_architectures[i].name) == 0)
                return p3_fail(r->err, PHI3C_ERR_UNSUPPORTED,
                               "%s: architecture %s (%s) is not supported; phi3c runs "
                               "Phi3ForCausalLM",
                               r->what, arch, refused_architectures[i].why);
        return p3_fail(r->err, PHI3C_ERR_UNSUPPORTED,
                       "%s: architecture %.64s is not supported; phi3c runs Phi3ForCausalLM",
                       r->what, arch);
    }
    snprintf(cfg->architecture, sizeof cfg->architecture, "%s", arch);
    const json_value *act_value = json_object_get(root, "hidden_act");
    const char *act = json_string(act_value);
    if (act_value && !act)
        return p3_fail(r->err, PHI3C_ERR_FORMAT, "%s: \"hidden_act\" must be a string (\"silu\")",
                       r->what);
    if (act && strcmp(act, "silu") != 0)
        return p3_fail(r->err, PHI3C_ERR_UNSUPPORTED,
                       "%s: hidden_act \"%.32s\" is not supported (Phi-3 uses silu)", r->what, act);
    bool bias = false;
    p3_status st = read_bool(r, root, "attention_bias", &bias);
    if (st == PHI3C_OK && bias)
        return p3_fail(r->err, PHI3C_ERR_UNSUPPORTED,
                       "%s: attention_bias true is not supported (Phi-3 has no biases)", r->what);
    return st;
}

/* ---- RoPE: 4.x rope_theta + rope_scaling, 5.x rope_parameters ---- */

/* The scaling type named in a rope_scaling / rope_parameters object, mapped to phi3c's. */
static p3_status rope_type_of(const cfg_reader *r, const json_value *obj, const char *field,
                              p3_rope_type *type) {
    const json_value *tv = json_object_get(obj, "rope_type");
    if (!tv) tv = json_object_get(obj, "type");
    const char *name = json_string(tv);
    if (tv && !name)
        return p3_fail(r->err, PHI3C_ERR_FORMAT, "%s: %s type must be a string", r->what, field);
    if (!name || strcmp(name, "default") == 0) {
        /* factors without a type would be LongRoPE read as plain RoPE: refuse */
        if (json_object_get(obj, "short_factor") || json_object_get(obj, "long_factor"))
            return p3_fail(r->err, PHI3C_ERR_FORMAT,
                           "%s: %s has short/long factors but its type is not longrope", r->what,
                           field);
        *type = P3_ROPE_DEFAULT;
        return PHI3C_OK;
    }
    /* "su" and "yarn" are the names the first Phi-3 128k configs used for LongRoPE */
    if (strcmp(name, "longrope") == 0 || strcmp(name, "su") == 0 || strcmp(name, "yarn") == 0) {
        *type = P3_ROPE_LONGROPE;
        return PHI3C_OK;
    }
    return p3_fail(r->err, PHI3C_ERR_UNSUPPORTED,
                   "%s: %s type \"%.32s\" is not supported (Phi-3 uses longrope or none)", r->what,
                   field, name);
}

static p3_status read_rope_object(const cfg_reader *r, const json_value *obj, const char *field,
                                  p3_config *cfg) {
    if (json_typeof(obj) != JSON_OBJECT)
        return p3_fail(r->err, PHI3C_ERR_FORMAT, "%s: %s must be an object or null", r->what,
                       field);
    p3_rope_type type = P3_ROPE_DEFAULT;
    p3_status st = rope_type_of(r, obj, field, &type);
    if (st == PHI3C_OK) st = read_float(r, obj, "rope_theta", &cfg->rope.theta);
    if (st == PHI3C_OK)
        st = read_float(r, obj, "partial_rotary_factor", &cfg->rope.partial_rotary_factor);
    if (st == PHI3C_OK)
        st = read_int(r, obj, "original_max_position_embeddings", false, 1, INT32_MAX,
                      &cfg->original_max_position_embeddings);
    if (st != PHI3C_OK || type != P3_ROPE_LONGROPE) {
        if (st == PHI3C_OK && cfg->rope.type == P3_ROPE_LONGROPE)
            return p3_fail(r->err, PHI3C_ERR_FORMAT,
                           "%s: %s says plain RoPE but rope_scaling says longrope", r->what, field);
        return st;
    }
    cfg->rope.type = P3_ROPE_LONGROPE;
    cfg->rope.n_factors = 0;
    st = read_factors(r, obj, "short_factor", cfg->rope.short_factor, &cfg->rope.n_factors);
    if (st == PHI3C_OK)
        st = read_factors(r, obj, "long_factor", cfg->rope.long_factor, &cfg->rope.n_factors);
    if (st == PHI3C_OK) st = read_float(r, obj, "attention_factor", &cfg->rope.attn_factor);
    if (st == PHI3C_OK && json_object_get(obj, "attention_factor") && !(cfg->rope.attn_factor > 0))
        return p3_fail(r->err, PHI3C_ERR_FORMAT, "%s: attention_factor must be positive", r->what);
    return st;
}

static p3_status read_rope(const cfg_reader *r, const json_value *root, p3_config *cfg) {
    p3_status st = read_float(r, root, "rope_theta", &cfg->rope.theta);
    if (st == PHI3C_OK)
        st = read_float(r, root, "partial_rotary_factor", &cfg->rope.partial_rotary_factor);
    const json_value *scaling = json_object_get(root, "rope_scaling");
    if (st == PHI3C_OK && scaling && !json_is_null(scaling))
        st = read_rope_object(r, scaling, "rope_scaling", cfg);
    const json_value *params = json_object_get(root, "rope_parameters");
    if (st == PHI3C_OK && params && !json_is_null(params))
        st = read_rope_object(r, params, "rope_parameters", cfg);
    /* transformers takes the top-level original_max_position_embeddings when there is one
     * (getattr(config, ...) in its longrope code), whatever rope_scaling/rope_parameters say */
    if (st == PHI3C_OK)
        st = read_int(r, root, "original_max_position_embeddings", false, 1, INT32_MAX,
                      &cfg->original_max_position_embeddings);
    return st;
}

/* ---- config.json ---- */

static p3_status read_dims(const cfg_reader *r, const json_value *root, p3_config *c) {
    const int64_t big = 1 << 20; /* generous: Phi-3 dims are a few thousand */
    p3_status st = read_int(r, root, "hidden_size", true, 1, big, &c->hidden_size);
    if (st == PHI3C_OK) st = read_int(r, root, "num_hidden_layers", true, 1, 4096, &c->num_layers);
    if (st == PHI3C_OK) st = read_int(r, root, "num_attention_heads", true, 1, 4096, &c->num_heads);
    c->num_kv_heads = c->num_heads;
    if (st == PHI3C_OK)
        st = read_int(r, root, "num_key_value_heads", false, 1, 4096, &c->num_kv_heads);
    if (st == PHI3C_OK)
        st = read_int(r, root, "head_dim", false, 1, 2 * P3_MAX_ROPE_FACTORS, &c->head_dim);
    if (st == PHI3C_OK)
        st = read_int(r, root, "intermediate_size", true, 1, big, &c->intermediate_size);
    if (st == PHI3C_OK) st = read_int(r, root, "vocab_size", true, 1, 1 << 24, &c->vocab_size);
    if (st == PHI3C_OK)
        st = read_int(r, root, "max_position_embeddings", true, 1, INT32_MAX,
                      &c->max_position_embeddings);
    if (st == PHI3C_OK)
        st = read_int(r, root, "original_max_position_embeddings", false, 1, INT32_MAX,
                      &c->original_max_position_embeddings);
    if (st == PHI3C_OK) st = read_float(r, root, "rms_norm_eps", &c->rms_norm_eps);
    if (st == PHI3C_OK)
        st = read_int(r, root, "sliding_window", false, 0, INT32_MAX, &c->sliding_window);
    if (st == PHI3C_OK) st = read_bool(r, root, "tie_word_embeddings", &c->tie_word_embeddings);
    return st;
}

p3_status p3_config_parse_json(const char *json, size_t len, const char *what, p3_config *cfg,
                               p3_error *err) {
    if (!what) what = "config.json";
    p3_config_init(cfg);
    json_doc *doc = NULL;
    p3_status st = json_parse(json, len, what, &doc, err);
    if (st != PHI3C_OK) return st;
    const json_value *root = json_root(doc);
    cfg_reader r = {what, err};
    if (json_typeof(root) != JSON_OBJECT)
        st = p3_fail(err, PHI3C_ERR_FORMAT, "%s: the top level must be an object", what);
    if (st == PHI3C_OK) st = read_architecture(&r, root, cfg);
    if (st == PHI3C_OK) st = read_dims(&r, root, cfg);
    if (st == PHI3C_OK) st = read_rope(&r, root, cfg);
    if (st == PHI3C_OK) st = read_token_ids(&r, root, "bos_token_id", &cfg->bos_id, NULL, NULL);
    if (st == PHI3C_OK) st = read_token_ids(&r, root, "pad_token_id", &cfg->pad_id, NULL, NULL);
    if (st == PHI3C_OK)
        st =
            read_token_ids(&r, root, "eos_token_id", &cfg->eos_id, cfg->stop_ids, &cfg->n_stop_ids);
    json_free(doc);
    return st;
}

p3_status p3_config_read_generation(const char *path, p3_config *cfg, p3_error *err) {
    bool present = false;
    p3_status st = p3_file_probe(path, &present, err);
    if (st != PHI3C_OK || !present) return st; /* optional, but not when something else is there */
    json_doc *doc = NULL;
    st = json_parse_file(path, &doc, err);
    if (st != PHI3C_OK) return st;
    cfg_reader r = {path, err};
    const json_value *root = json_root(doc);
    int eos = cfg->eos_id, ids[P3_MAX_STOP_IDS], n = 0;
    if (json_typeof(root) != JSON_OBJECT)
        st = p3_fail(err, PHI3C_ERR_FORMAT, "%s: the top level must be an object", path);
    if (st == PHI3C_OK) st = read_token_ids(&r, root, "eos_token_id", &eos, ids, &n);
    if (st == PHI3C_OK && n > 0) {
        memcpy(cfg->stop_ids, ids, (size_t)n * sizeof ids[0]);
        cfg->n_stop_ids = n;
    }
    json_free(doc);
    return st;
}

/* ---- derived values and checks ---- */

static p3_status check_positive(const char *what, const char *name, long long v, p3_error *err) {
    if (v > 0) return PHI3C_OK;
    return p3_fail(err, PHI3C_ERR_FORMAT, "%s: %s must be positive (got %lld)", what, name, v);
}

static p3_status finish_rope(p3_config *c, const char *what, p3_error *err) {
    p3_rope_config *rope = &c->rope;
    if (!(rope->theta > 0) || !isfinite(rope->theta))
        return p3_fail(err, PHI3C_ERR_FORMAT, "%s: rope_theta must be positive", what);
    if (!(rope->partial_rotary_factor > 0 && rope->partial_rotary_factor <= 1))
        return p3_fail(err, PHI3C_ERR_FORMAT, "%s: partial_rotary_factor %g is not in (0, 1]", what,
                       (double)rope->partial_rotary_factor);
    /* transformers: int(head_dim * partial_rotary_factor), the product in double precision */
    rope->rot_dim = (int)((double)c->head_dim * (double)rope->partial_rotary_factor);
    if (rope->rot_dim < 2 || rope->rot_dim % 2)
        return p3_fail(err, PHI3C_ERR_UNSUPPORTED,
                       "%s: rotary dims int(%d * %g) = %d must be even and at least 2", what,
                       c->head_dim, (double)rope->partial_rotary_factor, rope->rot_dim);
    if (rope->type == P3_ROPE_DEFAULT) {
        rope->n_factors = 0;
        rope->attn_factor = 1.0f;
        return PHI3C_OK;
    }
    if (rope->n_factors != rope->rot_dim / 2)
        return p3_fail(err, PHI3C_ERR_FORMAT,
                       "%s: LongRoPE short/long factors have %d entries but rotary dims %d need "
                       "%d",
                       what, rope->n_factors, rope->rot_dim, rope->rot_dim / 2);
    if (rope->attn_factor == 0) {
        double s = (double)c->max_position_embeddings / c->original_max_position_embeddings;
        double orig = c->original_max_position_embeddings;
        rope->attn_factor = s > 1 ? (float)sqrt(1 + log(s) / log(orig)) : 1.0f;
    }
    if (!(rope->attn_factor > 0) || !isfinite(rope->attn_factor))
        return p3_fail(err, PHI3C_ERR_FORMAT, "%s: attention factor must be positive", what);
    return PHI3C_OK;
}

p3_status p3_config_finish(p3_config *c, const char *what, p3_error *err) {
    if (!what) what = "config";
    struct {
        const char *name;
        long long v;
    } dims[] = {
        {"hidden_size", c->hidden_size},
        {"num_hidden_layers", c->num_layers},
        {"num_attention_heads", c->num_heads},
        {"num_key_value_heads", c->num_kv_heads},
        {"intermediate_size", c->intermediate_size},
        {"vocab_size", c->vocab_size},
        {"max_position_embeddings", c->max_position_embeddings},
    };
    for (size_t i = 0; i < P3_ARRAY_LEN(dims); i++) {
        p3_status st = check_positive(what, dims[i].name, dims[i].v, err);
        if (st != PHI3C_OK) return st;
    }
    if (c->num_heads % c->num_kv_heads)
        return p3_fail(err, PHI3C_ERR_FORMAT,
                       "%s: num_key_value_heads %d does not divide num_attention_heads %d", what,
                       c->num_kv_heads, c->num_heads);
    if (c->head_dim == 0) {
        if (c->hidden_size % c->num_heads)
            return p3_fail(err, PHI3C_ERR_FORMAT,
                           "%s: num_attention_heads %d does not divide hidden_size %d", what,
                           c->num_heads, c->hidden_size);
        c->head_dim = c->hidden_size / c->num_heads;
    }
    if (c->head_dim < 2 || c->head_dim > 2 * P3_MAX_ROPE_FACTORS)
        return p3_fail(err, PHI3C_ERR_UNSUPPORTED, "%s: head_dim %d is not in [2, %d]", what,
                       c->head_dim, 2 * P3_MAX_ROPE_FACTORS);
    if (c->original_max_position_embeddings == 0)
        c->original_max_position_embeddings = c->max_position_embeddings;
    if (c->original_max_position_embeddings < 0 || c->sliding_window < 0)
        return p3_fail(err, PHI3C_ERR_FORMAT, "%s: negative context or window size", what);
    if (!(c->rms_norm_eps > 0) || !isfinite(c->rms_norm_eps))
        return p3_fail(err, PHI3C_ERR_FORMAT, "%s: rms_norm_eps must be positive", what);
    if (c->architecture[0] == '\0')
        snprintf(c->architecture, sizeof c->architecture, "%s", "Phi3ForCausalLM");
    if (c->n_stop_ids == 0 && c->eos_id >= 0) c->stop_ids[c->n_stop_ids++] = c->eos_id;
    return finish_rope(c, what, err);
}

/* ---- the tensor table a config implies (loaders/arch.h) ---- */

static void add_spec(p3_tensor_spec *spec, const p3_config *cfg, const p3_arch_tensor *t,
                     int layer) {
    memset(spec, 0, sizeof *spec);
    p3_arch_hf_name(t, layer, spec->hf_name, sizeof spec->hf_name);
    spec->n_dims = t->cols == P3_DIM_NONE ? 1 : 2;
    spec->shape[0] = p3_arch_dim(cfg, t->rows);
    spec->shape[1] = p3_arch_dim(cfg, t->cols);
}

p3_status p3_config_expected_tensors(const p3_config *cfg, p3_tensor_spec **specs, size_t *n,
                                     p3_error *err) {
    *specs = NULL;
    *n = 0;
    if (cfg->num_layers <= 0 || cfg->num_layers > 4096 || cfg->head_dim <= 0)
        return p3_fail(err, PHI3C_ERR_INVALID_ARG, "expected tensors: config not finished");
    const p3_arch *arch = p3_arch_of(cfg);
    p3_tensor_spec *s = p3_calloc(arch->n_tensors * (size_t)cfg->num_layers, sizeof *s);
    if (!s) return p3_fail(err, PHI3C_ERR_NOMEM, "expected tensors: out of memory");
    size_t k = 0;
    for (size_t i = 0; i < arch->n_tensors; i++) {
        const p3_arch_tensor *t = &arch->tensors[i];
        if (!t->per_layer) {
            if (p3_arch_has(cfg, t)) add_spec(&s[k++], cfg, t, 0);
            continue;
        }
        if (i > 0 && arch->tensors[i - 1].per_layer) continue; /* the block is done */
        size_t end = i;
        while (end < arch->n_tensors && arch->tensors[end].per_layer) end++;
        for (int l = 0; l < cfg->num_layers; l++)
            for (size_t j = i; j < end; j++) add_spec(&s[k++], cfg, &arch->tensors[j], l);
    }
    *specs = s;
    *n = k;
    return PHI3C_OK;
}
