/* model.c: loading a Phi-3 model onto a backend, tensor by tensor as the architecture's table
 * lists them (loaders/arch.h): weights handed over in the checkpoint's own F32/F16/BF16 when the
 * backend takes them (else converted to f32), optional INT4-g128 quantization of the linear
 * weights at load on several threads, and the RoPE frequency tables. */
#include "engine.h"

#include "arch.h"
#include "quantize.h"
#include "ref.h"

#include <stdio.h>
#include <string.h>

void p3_load_options_init(p3_load_options *opt) {
    memset(opt, 0, sizeof *opt);
    opt->quant = P3_WQ_NONE;
    opt->quant_method = P3_QUANT_RTN;
    opt->act = P3_ACT_Q8;
}

const char *p3_weight_quant_name(p3_weight_quant q) {
    switch (q) {
    case P3_WQ_NONE:
        return "none";
    case P3_WQ_INT4_SYM:
        return "int4-g128 (symmetric)";
    case P3_WQ_INT4_ASYM:
        return "int4-g128 (asymmetric)";
    }
    return "?";
}

/* The tensor `name` as a 2-D [rows, cols] matrix, or a message saying what is wrong. */
static p3_status find_matrix(const p3_model_source *src, const char *name, int64_t rows,
                             int64_t cols, const p3_tensor **out, p3_error *err) {
    const p3_tensor *t = p3_source_find(src, name);
    if (!t) return p3_fail(err, PHI3C_ERR_FORMAT, "%s: tensor %s is missing", src->path, name);
    if (t->n_dims != 2 || t->shape[0] != rows || t->shape[1] != cols)
        return p3_fail(err, PHI3C_ERR_FORMAT, "%s: tensor %s should be [%lld, %lld]", src->path,
                       name, (long long)rows, (long long)cols);
    *out = t;
    return PHI3C_OK;
}

/* Converts a whole tensor to a new host f32 array of `count` elements. */
static p3_status tensor_to_f32_alloc(const p3_tensor *t, size_t count, float **out, p3_error *err) {
    size_t bytes;
    if (!p3_mul_size(count, sizeof(float), &bytes))
        return p3_fail(err, PHI3C_ERR_NOMEM, "tensor %s is too large", t->hf_name);
    float *f = p3_malloc(bytes);
    if (!f)
        return p3_fail(err, PHI3C_ERR_NOMEM, "out of memory converting %s to f32 (%zu bytes)",
                       t->hf_name, bytes);
    p3_status st = p3_tensor_to_f32(t, 0, count, f, err);
    if (st != PHI3C_OK) {
        p3_free(f);
        return st;
    }
    *out = f;
    return PHI3C_OK;
}

/* A norm weight [dim] as an f32 device buffer. */
static p3_status upload_vector(p3_model *m, const p3_model_source *src, const char *name, int dim,
                               p3_buffer **out, p3_error *err) {
    const p3_tensor *t = p3_source_find(src, name);
    if (!t) return p3_fail(err, PHI3C_ERR_FORMAT, "%s: tensor %s is missing", src->path, name);
    if (t->n_dims != 1 || t->shape[0] != dim)
        return p3_fail(err, PHI3C_ERR_FORMAT, "%s: tensor %s should be [%d]", src->path, name, dim);
    float *host = NULL;
    P3_TRY(tensor_to_f32_alloc(t, (size_t)dim, &host, err));
    p3_status st = p3_be_buffer_alloc(&m->be, (size_t)dim * sizeof(float), out, err);
    if (st == PHI3C_OK)
        st = p3_be_write(&m->be, p3_ref_at(*out, 0), host, (size_t)dim * sizeof(float), err);
    p3_free(host);
    return st;
}

/* Rows of a source tensor as f32, for the threaded quantizer (quant/quantize.h). */
static p3_status fetch_tensor_row(void *user, int64_t row, float *out, p3_error *err) {
    const p3_tensor *t = user;
    int64_t cols = t->shape[1];
    return p3_tensor_to_f32(t, (size_t)(row * cols), (size_t)cols, out, err);
}

static p3_status quantize_tensor(const p3_model *m, const p3_tensor *t, int64_t rows, int64_t cols,
                                 p3_dtype fmt, void **out, p3_error *err) {
    size_t bytes;
    if (!p3_quant_matrix_bytes(fmt, rows, cols, &bytes))
        return p3_fail(err, PHI3C_ERR_NOMEM, "tensor %s is too large", t->hf_name);
    void *blocks = p3_malloc(bytes);
    if (!blocks)
        return p3_fail(err, PHI3C_ERR_NOMEM, "out of memory quantizing %s (%zu bytes)", t->hf_name,
                       bytes);
    p3_quant_matrix_args a = {.rows = rows,
                              .cols = cols,
                              .fmt = fmt,
                              .method = m->opt.quant_method,
                              .fetch = fetch_tensor_row,
                              .fetch_user = (void *)t,
                              .n_threads = m->opt.n_threads};
    p3_status st = p3_quantize_matrix(&a, blocks, err);
    if (st != PHI3C_OK) {
        p3_free(blocks);
        return st;
    }
    *out = blocks;
    return PHI3C_OK;
}

/* Whether the backend runs `dtype` weights in every op of `ops` (a tied embedding serves two). */
static bool backend_takes(p3_model *m, p3_dtype dtype, const p3_op *ops, int n_ops) {
    if (!p3_dtype_is_float(dtype) && !p3_dtype_is_int4(dtype)) return false;
    for (int i = 0; i < n_ops; i++)
        if (!p3_be_supports(&m->be, ops[i], dtype, m->act, P3_KV_F32)) return false;
    return true;
}

/* Hands one weight to the backend: as INT4 (quantized here, or already INT4 in the source), in
 * its own dtype when the backend takes it (no conversion: the backend copies or wraps the mapped
 * bytes), else converted to f32. */
static p3_status upload_weight(p3_model *m, const p3_tensor *t, int64_t rows, int64_t cols,
                               const p3_op *ops, int n_ops, bool quantize, p3_weight **out,
                               p3_error *err) {
    p3_weight_desc d = {.name = t->hf_name,
                        .dtype = t->dtype,
                        .rows = rows,
                        .cols = cols,
                        .data = t->data,
                        .act = m->act};
    void *owned = NULL;
    p3_status st = PHI3C_OK;
    if (quantize) {
        d.dtype = m->opt.quant == P3_WQ_INT4_ASYM ? P3_DT_I4G128A : P3_DT_I4G128S;
        st = quantize_tensor(m, t, rows, cols, d.dtype, &owned, err);
        d.data = owned;
    } else if (!backend_takes(m, t->dtype, ops, n_ops)) {
        d.dtype = P3_DT_F32;
        st = tensor_to_f32_alloc(t, (size_t)rows * (size_t)cols, (float **)&owned, err);
        d.data = owned;
    }
    if (st == PHI3C_OK && !backend_takes(m, d.dtype, ops, n_ops))
        st = p3_fail(err, PHI3C_ERR_UNSUPPORTED, "backend %s cannot use %s weights for %s",
                     p3_be_name(&m->be), p3_dtype_name(d.dtype), t->hf_name);
    if (st == PHI3C_OK) st = p3_be_weight_upload(&m->be, &d, out, err);
    p3_free(owned);
    if (st == PHI3C_OK) m->weight_bytes += p3_be_weight_bytes(&m->be, *out);
    return st;
}

static p3_status upload_linear(p3_model *m, const p3_model_source *src, const char *name,
                               int64_t rows, int64_t cols, p3_weight **out, p3_error *err) {
    const p3_tensor *t = NULL;
    P3_TRY(find_matrix(src, name, rows, cols, &t, err));
    static const p3_op matmul[] = {P3_OP_MATMUL};
    return upload_weight(m, t, rows, cols, matmul, 1, m->opt.quant != P3_WQ_NONE, out, err);
}

/* Where a slot of the tensor table (loaders/arch.h) lands: a norm in a buffer field, a matrix in
 * a weight field (exactly one is set). `layer` matters for per-layer slots only. */
typedef struct slot_ref {
    p3_buffer **vector;
    p3_weight **matrix;
} slot_ref;

static slot_ref slot_in(p3_model *m, int layer, p3_slot slot) {
    p3_layer_weights *w = m->layers && layer >= 0 ? &m->layers[layer] : NULL;
    if (slot >= P3_SLOT_ATTN_NORM && !w) return (slot_ref){0}; /* per-layer slots follow */
    switch (slot) {
    case P3_SLOT_EMBED:
        return (slot_ref){.matrix = &m->embed};
    case P3_SLOT_FINAL_NORM:
        return (slot_ref){.vector = &m->final_norm};
    case P3_SLOT_LM_HEAD:
        return (slot_ref){.matrix = &m->lm_head};
    case P3_SLOT_ATTN_NORM:
        return (slot_ref){.vector = &w->attn_norm};
    case P3_SLOT_QKV:
        return (slot_ref){.matrix = &w->qkv};
    case P3_SLOT_O:
        return (slot_ref){.matrix = &w->o};
    case P3_SLOT_FFN_NORM:
        return (slot_ref){.vector = &w->ffn_norm};
    case P3_SLOT_GATE_UP:
        return (slot_ref){.matrix = &w->gate_up};
    case P3_SLOT_DOWN:
        return (slot_ref){.matrix = &w->down};
    default:
        return (slot_ref){0};
    }
}

/* The embedding table stays in its checkpoint precision (it is read one row per token); a tied
 * one also serves as the lm_head matmul. */
static p3_status upload_embedding(p3_model *m, const p3_model_source *src, const char *name,
                                  int64_t rows, int64_t cols, p3_error *err) {
    const p3_tensor *t = NULL;
    P3_TRY(find_matrix(src, name, rows, cols, &t, err));
    static const p3_op embed_and_matmul[] = {P3_OP_EMBED, P3_OP_MATMUL};
    int n_ops = m->cfg.tie_word_embeddings ? 2 : 1;
    return upload_weight(m, t, rows, cols, embed_and_matmul, n_ops, false, &m->embed, err);
}

/* Uploads one entry of the tensor table into its slot. */
static p3_status upload_entry(p3_model *m, const p3_model_source *src, const p3_arch_tensor *t,
                              int layer, p3_error *err) {
    char name[P3_TENSOR_NAME_MAX];
    p3_arch_hf_name(t, layer, name, sizeof name);
    int64_t rows = p3_arch_dim(&m->cfg, t->rows), cols = p3_arch_dim(&m->cfg, t->cols);
    slot_ref r = slot_in(m, layer, t->slot);
    if (r.vector) return upload_vector(m, src, name, (int)rows, r.vector, err);
    if (t->slot == P3_SLOT_EMBED) return upload_embedding(m, src, name, rows, cols, err);
    if (!r.matrix)
        return p3_fail(err, PHI3C_ERR_INVALID_ARG, "%s: no place for %s", src->path, name);
    return upload_linear(m, src, name, rows, cols, r.matrix, err);
}

static p3_status upload_rope_tables(p3_model *m, p3_error *err) {
    const p3_rope_config *r = &m->cfg.rope;
    float inv_freq[P3_MAX_ROPE_FACTORS];
    size_t bytes = (size_t)(r->rot_dim / 2) * sizeof(float);
    bool longrope = r->type == P3_ROPE_LONGROPE;
    p3_rope_inv_freq(inv_freq, r->rot_dim, r->theta, longrope ? r->short_factor : NULL);
    P3_TRY(p3_be_buffer_alloc(&m->be, bytes, &m->inv_freq_short, err));
    P3_TRY(p3_be_write(&m->be, p3_ref_at(m->inv_freq_short, 0), inv_freq, bytes, err));
    if (!longrope) return PHI3C_OK;
    p3_rope_inv_freq(inv_freq, r->rot_dim, r->theta, r->long_factor);
    P3_TRY(p3_be_buffer_alloc(&m->be, bytes, &m->inv_freq_long, err));
    return p3_be_write(&m->be, p3_ref_at(m->inv_freq_long, 0), inv_freq, bytes, err);
}

/* Picks the INT4 activation mode: the requested one, or the other when the backend lacks it
 * and the caller did not insist. */
static p3_status choose_act_mode(p3_model *m, p3_error *err) {
    m->act = m->opt.act;
    if (m->opt.quant == P3_WQ_NONE) return PHI3C_OK;
    p3_dtype fmt = m->opt.quant == P3_WQ_INT4_ASYM ? P3_DT_I4G128A : P3_DT_I4G128S;
    if (p3_be_supports(&m->be, P3_OP_MATMUL, fmt, m->act, P3_KV_F32)) return PHI3C_OK;
    p3_act_mode other = m->act == P3_ACT_Q8 ? P3_ACT_F32 : P3_ACT_Q8;
    if (!m->opt.act_given && p3_be_supports(&m->be, P3_OP_MATMUL, fmt, other, P3_KV_F32)) {
        m->act = other;
        return PHI3C_OK;
    }
    return p3_fail(err, PHI3C_ERR_UNSUPPORTED, "backend %s has no %s matmul with %s activations",
                   p3_be_name(&m->be), p3_dtype_name(fmt), m->act == P3_ACT_Q8 ? "int8" : "f32");
}

/* Entries of the architecture's tensor table this config uploads (the progress total). */
static uint64_t count_entries(const p3_model *m, const p3_arch *arch) {
    uint64_t n = 0;
    for (size_t i = 0; i < arch->n_tensors; i++)
        if (p3_arch_has(&m->cfg, &arch->tensors[i]))
            n += arch->tensors[i].per_layer ? (uint64_t)m->cfg.num_layers : 1;
    return n;
}

/* Every tensor of the architecture's table into its slot, then the RoPE tables. */
static p3_status load_weights(p3_model *m, const p3_model_source *src, p3_error *err) {
    P3_TRY(choose_act_mode(m, err));
    m->layers = p3_calloc((size_t)m->cfg.num_layers, sizeof *m->layers);
    if (!m->layers) return p3_fail(err, PHI3C_ERR_NOMEM, "out of memory for the layer table");
    const p3_arch *arch = p3_arch_of(&m->cfg);
    uint64_t done = 0, total = count_entries(m, arch);
    for (size_t i = 0; i < arch->n_tensors; i++) {
        const p3_arch_tensor *t = &arch->tensors[i];
        if (!p3_arch_has(&m->cfg, t)) continue;
        for (int l = 0; l < (t->per_layer ? m->cfg.num_layers : 1); l++) {
            P3_TRY(upload_entry(m, src, t, t->per_layer ? l : -1, err));
            if (m->opt.progress && !m->opt.progress(m->opt.progress_user, ++done, total))
                return p3_fail(err, PHI3C_ERR_INTERRUPTED, "%s: loading interrupted", src->path);
        }
    }
    if (m->cfg.tie_word_embeddings) m->lm_head = m->embed;
    return upload_rope_tables(m, err);
}

p3_status p3_model_from_source(const p3_model_source *src, const p3_load_options *opt,
                               p3_model **out, p3_error *err) {
    *out = NULL;
    if (!src->has_config)
        return p3_fail(err, PHI3C_ERR_FORMAT, "%s: holds no model config (vocabulary only?)",
                       src->path);
    double t0 = p3_time_now();
    p3_model *m = p3_calloc(1, sizeof *m);
    if (!m) return p3_fail(err, PHI3C_ERR_NOMEM, "out of memory for the model");
    m->cfg = src->config;
    if (opt)
        m->opt = *opt;
    else
        p3_load_options_init(&m->opt);
    p3_backend_options bopt = {
        .n_threads = m->opt.n_threads, .device = m->opt.device, .variant = m->opt.variant};
    p3_status st = p3_source_check_tensors(src, err);
    if (st == PHI3C_OK) st = p3_backend_open(m->opt.backend, &bopt, &m->be, err);
    if (st == PHI3C_OK) st = load_weights(m, src, err);
    if (st == PHI3C_OK) st = p3_be_sync(&m->be, err);
    if (st != PHI3C_OK) {
        p3_model_free(m);
        return st;
    }
    m->load_seconds = p3_time_now() - t0;
    *out = m;
    return PHI3C_OK;
}

p3_status p3_model_load(const char *path, const p3_load_options *opt, p3_model **out,
                        p3_error *err) {
    double t0 = p3_time_now();
    p3_model_source *src = NULL;
    *out = NULL;
    P3_TRY(p3_source_open(path, &src, err));
    p3_status st = p3_model_from_source(src, opt, out, err);
    p3_source_close(src);
    if (st == PHI3C_OK) (*out)->load_seconds = p3_time_now() - t0;
    return st;
}

/* Frees what the table's slots hold (a tied lm_head is the embedding, freed once). */
static void free_weights(p3_model *m) {
    const p3_arch *arch = p3_arch_of(&m->cfg);
    for (size_t i = 0; i < arch->n_tensors; i++) {
        const p3_arch_tensor *t = &arch->tensors[i];
        if (!p3_arch_has(&m->cfg, t)) continue;
        for (int l = 0; l < (t->per_layer ? m->cfg.num_layers : 1); l++) {
            slot_ref r = slot_in(m, t->per_layer ? l : -1, t->slot);
            if (r.vector) p3_be_buffer_free(&m->be, *r.vector);
            if (r.matrix) p3_be_weight_free(&m->be, *r.matrix);
        }
    }
}

void p3_model_free(p3_model *m) {
    if (!m) return;
    if (m->be.iface) {
        free_weights(m);
        p3_be_buffer_free(&m->be, m->inv_freq_short);
        p3_be_buffer_free(&m->be, m->inv_freq_long);
        p3_backend_close(&m->be);
    }
    p3_free(m->layers);
    p3_free(m);
}
