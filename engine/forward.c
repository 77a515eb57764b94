/* forward.c: the Phi-3 forward pass as straight-line math over backend ops, and the session that
 * owns the KV cache, the activation buffers (allocated once) and the LongRoPE factor switch. */
#include "engine.h"

#include <math.h>
#include <string.h>

#define TRY(expr)                                                                                  \
    do {                                                                                           \
        p3_status s_ = (expr);                                                                     \
        if (s_ != PHI3C_OK) return s_;                                                             \
    } while (0)

enum { DEFAULT_BATCH = 256, DEFAULT_MAX_CTX = 4096 };

void p3_session_options_init(p3_session_options *opt) {
    memset(opt, 0, sizeof *opt);
    opt->kv = P3_KV_F32;
}

static size_t f32_bytes(int64_t a, int64_t b) {
    return (size_t)a * (size_t)b * sizeof(float);
}

static bool weights_are_int4(const p3_model *m) {
    p3_dtype dt = m->layers[0].qkv->dtype;
    return dt == P3_DT_I4G128S || dt == P3_DT_I4G128A;
}

static p3_status alloc_buffers(p3_session *s, p3_error *err) {
    const p3_config *c = &s->model->cfg;
    p3_backend *be = (p3_backend *)&s->model->be;
    int64_t T = s->n_batch, hd = c->head_dim;
    int64_t qkv_dim = (c->num_heads + 2 * (int64_t)c->num_kv_heads) * hd;
    s->logit_rows = s->opt.all_logits ? (int)T : 1;
    TRY(p3_be_buffer_alloc(be, (size_t)T * sizeof(int32_t), &s->ids, err));
    TRY(p3_be_buffer_alloc(be, f32_bytes(T, c->hidden_size), &s->x, err));
    TRY(p3_be_buffer_alloc(be, f32_bytes(T, c->hidden_size), &s->xb, err));
    TRY(p3_be_buffer_alloc(be, f32_bytes(T, qkv_dim), &s->qkv, err));
    TRY(p3_be_buffer_alloc(be, f32_bytes(T, c->num_heads * hd), &s->att, err));
    TRY(p3_be_buffer_alloc(be, f32_bytes(T, 2 * (int64_t)c->intermediate_size), &s->gate_up, err));
    TRY(p3_be_buffer_alloc(be, f32_bytes(T, c->intermediate_size), &s->hb, err));
    TRY(p3_be_buffer_alloc(be, f32_bytes(s->logit_rows, c->vocab_size), &s->logits, err));
    s->host_logits = p3_calloc((size_t)c->vocab_size, sizeof(float));
    s->history = p3_calloc((size_t)s->n_ctx, sizeof(int32_t));
    if (!s->host_logits || !s->history)
        return p3_fail(err, PHI3C_ERR_NOMEM, "out of memory for the session");
    p3_kv_desc kd = {.n_layers = c->num_layers,
                     .n_ctx = s->n_ctx,
                     .n_kv_heads = c->num_kv_heads,
                     .head_dim = c->head_dim,
                     .dtype = s->opt.kv};
    p3_status st = p3_be_kv_alloc(be, &kd, &s->kv, err);
    if (st == PHI3C_ERR_NOMEM || st == PHI3C_ERR_DEVICE_OOM)
        p3_error_prefix(err, "KV cache of %d positions (lower -c/--ctx)", s->n_ctx);
    return st;
}

p3_status p3_session_create(const p3_model *m, const p3_session_options *opt, p3_session **out,
                            p3_error *err) {
    *out = NULL;
    p3_session *s = p3_calloc(1, sizeof *s);
    if (!s) return p3_fail(err, PHI3C_ERR_NOMEM, "out of memory for the session");
    s->model = m;
    if (opt)
        s->opt = *opt;
    else
        p3_session_options_init(&s->opt);
    if (!s->opt.kv_given) s->opt.kv = weights_are_int4(m) ? P3_KV_F16 : P3_KV_F32;
    s->n_ctx =
        s->opt.n_ctx > 0 ? s->opt.n_ctx : P3_MIN(m->cfg.max_position_embeddings, DEFAULT_MAX_CTX);
    s->n_batch = P3_MIN(s->opt.n_batch > 0 ? s->opt.n_batch : DEFAULT_BATCH, s->n_ctx);
    p3_backend *be = (p3_backend *)&m->be;
    p3_status st = PHI3C_OK;
    if (!p3_be_supports(be, P3_OP_ATTENTION, P3_DT_F32, m->act, s->opt.kv) ||
        !p3_be_supports(be, P3_OP_KV_WRITE, P3_DT_F32, m->act, s->opt.kv))
        st = p3_fail(err, PHI3C_ERR_UNSUPPORTED, "backend %s has no %s KV cache", p3_be_name(be),
                     s->opt.kv == P3_KV_F32   ? "f32"
                     : s->opt.kv == P3_KV_F16 ? "f16"
                                              : "q8");
    if (st == PHI3C_OK) st = alloc_buffers(s, err);
    if (st != PHI3C_OK) {
        p3_session_free(s);
        return st;
    }
    *out = s;
    return PHI3C_OK;
}

void p3_session_free(p3_session *s) {
    if (!s) return;
    p3_backend *be = (p3_backend *)&s->model->be;
    p3_be_kv_free(be, s->kv);
    p3_buffer *bufs[] = {s->ids, s->x, s->xb, s->qkv, s->att, s->gate_up, s->hb, s->logits};
    for (size_t i = 0; i < P3_ARRAY_LEN(bufs); i++) p3_be_buffer_free(be, bufs[i]);
    p3_free(s->host_logits);
    p3_free(s->history);
    p3_free(s);
}

void p3_session_reset(p3_session *s) {
    s->n_past = 0;
    s->long_rope = false;
}

p3_status p3_session_reserve_logits(p3_session *s, int rows, p3_error *err) {
    if (rows <= s->logit_rows) return PHI3C_OK;
    if (rows > s->n_batch)
        return p3_fail(err, PHI3C_ERR_INVALID_ARG, "logits of %d positions exceed the batch of %d",
                       rows, s->n_batch);
    p3_backend *be = (p3_backend *)&s->model->be;
    p3_buffer *grown = NULL;
    TRY(p3_be_buffer_alloc(be, f32_bytes(rows, s->model->cfg.vocab_size), &grown, err));
    p3_be_buffer_free(be, s->logits);
    s->logits = grown;
    s->logit_rows = rows;
    return PHI3C_OK;
}

p3_status p3_session_truncate(p3_session *s, int n_past, p3_error *err) {
    const p3_config *c = &s->model->cfg;
    if (n_past < 0 || n_past > s->n_past)
        return p3_fail(err, PHI3C_ERR_INVALID_ARG, "truncate to %d of %d cached positions", n_past,
                       s->n_past);
    /* below the LongRoPE switch the kept positions would hold long-factor keys where a sequence
     * of that length uses the short factors */
    if (s->long_rope && n_past <= c->original_max_position_embeddings && n_past > 0)
        return p3_fail(err, PHI3C_ERR_INVALID_ARG,
                       "truncate to %d positions would undo the LongRoPE switch at %d", n_past,
                       c->original_max_position_embeddings);
    if (n_past == 0) s->long_rope = false;
    s->n_past = n_past;
    return PHI3C_OK;
}

/* Row r of a [rows, dim] f32 buffer. */
static p3_ref row(p3_buffer *buf, int r, int dim) {
    return p3_ref_at(buf, (size_t)r * (size_t)dim * sizeof(float));
}

/* One chunk of n tokens (ids already in s->ids) at positions pos..pos+n-1: appends their keys and
 * values to the cache and leaves the logits of rows first..n-1 in s->logits (from its row 0), or
 * none when want_logits is false. */
static p3_status forward(p3_session *s, int n, int pos, bool want_logits, int first,
                         p3_error *err) {
    const p3_model *m = s->model;
    const p3_config *c = &m->cfg;
    p3_backend *be = (p3_backend *)&m->be;
    int dim = c->hidden_size, inter = c->intermediate_size;
    p3_attn_params attn = {.n_heads = c->num_heads,
                           .n_kv_heads = c->num_kv_heads,
                           .head_dim = c->head_dim,
                           .window = c->sliding_window,
                           .scale = 1.0f / sqrtf((float)c->head_dim)};
    p3_rope_params rope = {.n_heads = c->num_heads,
                           .n_kv_heads = c->num_kv_heads,
                           .head_dim = c->head_dim,
                           .rot_dim = c->rope.rot_dim,
                           .inv_freq =
                               p3_ref_at(s->long_rope ? m->inv_freq_long : m->inv_freq_short, 0),
                           .mscale = c->rope.attn_factor};
    p3_ref x = row(s->x, 0, dim), xb = row(s->xb, 0, dim);
    p3_ref qkv = p3_ref_at(s->qkv, 0), att = p3_ref_at(s->att, 0);
    p3_ref gate_up = p3_ref_at(s->gate_up, 0), hb = p3_ref_at(s->hb, 0);

    TRY(p3_be_embed(be, x, m->embed, p3_ref_at(s->ids, 0), n, err)); /* x = E[ids] */
    for (int l = 0; l < c->num_layers; l++) {
        const p3_layer_weights *w = &m->layers[l];
        /* attention block: x += o_proj(attention(rope(qkv_proj(rmsnorm(x))))) */
        TRY(p3_be_rmsnorm(be, xb, x, p3_ref_at(w->attn_norm, 0), n, dim, c->rms_norm_eps, err));
        TRY(p3_be_matmul(be, qkv, xb, w->qkv, n, err));
        TRY(p3_be_rope(be, qkv, n, pos, &rope, err));
        TRY(p3_be_kv_write(be, s->kv, l, qkv, n, pos, &attn, err));
        TRY(p3_be_attention(be, att, qkv, s->kv, l, n, pos, &attn, err));
        TRY(p3_be_matmul(be, xb, att, w->o, n, err));
        TRY(p3_be_add(be, x, xb, (size_t)n * (size_t)dim, err));
        /* MLP block: x += down(silu(gate) * up), [gate | up] = gate_up_proj(rmsnorm(x)) */
        TRY(p3_be_rmsnorm(be, xb, x, p3_ref_at(w->ffn_norm, 0), n, dim, c->rms_norm_eps, err));
        TRY(p3_be_matmul(be, gate_up, xb, w->gate_up, n, err));
        TRY(p3_be_swiglu(be, hb, gate_up, n, inter, err));
        TRY(p3_be_matmul(be, xb, hb, w->down, n, err));
        TRY(p3_be_add(be, x, xb, (size_t)n * (size_t)dim, err));
    }
    if (!want_logits) return PHI3C_OK;
    /* final norm and lm_head (or the tied embedding), on the rows asked for only */
    int rows = n - first;
    TRY(p3_be_rmsnorm(be, xb, row(s->x, first, dim), p3_ref_at(m->final_norm, 0), rows, dim,
                      c->rms_norm_eps, err));
    return p3_be_matmul(be, p3_ref_at(s->logits, 0), xb, m->lm_head, rows, err);
}

/* Runs history[start..end) in chunks; rows of positions >= first_out go to `logits` (if any). */
static p3_status run_positions(p3_session *s, int start, int end, int first_out, float *logits,
                               p3_error *err) {
    p3_backend *be = (p3_backend *)&s->model->be;
    int vocab = s->model->cfg.vocab_size;
    size_t row_bytes = (size_t)vocab * sizeof(float);
    for (int pos = start; pos < end; pos += s->n_batch) {
        int n = P3_MIN(s->n_batch, end - pos);
        bool last_chunk = pos + n == end;
        bool rows_out = logits && pos + n > first_out;
        TRY(p3_be_write(be, p3_ref_at(s->ids, 0), s->history + pos, (size_t)n * sizeof(int32_t),
                        err));
        int r0 = rows_out ? P3_MAX(first_out, pos) - pos : n - 1;
        TRY(forward(s, n, pos, last_chunk || rows_out, r0, err));
        s->n_prefilled += n;
        if (rows_out)
            TRY(p3_be_read(be, p3_ref_at(s->logits, 0),
                           logits + (size_t)(pos + r0 - first_out) * (size_t)vocab,
                           (size_t)(n - r0) * row_bytes, err));
        if (last_chunk) {
            size_t last_row = (size_t)(n - 1 - r0);
            TRY(p3_be_read(be, p3_ref_at(s->logits, last_row * row_bytes), s->host_logits,
                           row_bytes, err));
        }
    }
    return PHI3C_OK;
}

p3_status p3_session_feed(p3_session *s, const int32_t *ids, int n, float *logits, p3_error *err) {
    const p3_config *c = &s->model->cfg;
    if (n <= 0 || !ids) return p3_fail(err, PHI3C_ERR_INVALID_ARG, "feed: no tokens");
    if (logits && !s->opt.all_logits && n > s->logit_rows)
        return p3_fail(err, PHI3C_ERR_INVALID_ARG,
                       "feed: logits of every position need a session made with all_logits");
    if (n > s->n_ctx - s->n_past)
        return p3_fail(err, PHI3C_ERR_CONTEXT_FULL,
                       "context full: %d cached + %d new tokens exceed the context of %d "
                       "positions (raise -c/--ctx)",
                       s->n_past, n, s->n_ctx);
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab_size)
            return p3_fail(err, PHI3C_ERR_INVALID_ARG,
                           "token id %d is outside the vocabulary 0..%d", (int)ids[i],
                           c->vocab_size - 1);
    int old = s->n_past, end = s->n_past + n, start = s->n_past;
    /* LongRoPE: a sequence longer than original_max uses the long factors at every position, so
     * the first time it grows past that length the whole history is recomputed. */
    if (c->rope.type == P3_ROPE_LONGROPE && !s->long_rope &&
        end > c->original_max_position_embeddings) {
        s->long_rope = true;
        if (old > 0) s->n_reprefills++;
        start = 0;
    }
    memcpy(s->history + old, ids, (size_t)n * sizeof(int32_t));
    p3_status st = run_positions(s, start, end, old, logits, err);
    if (st != PHI3C_OK) {
        /* a failed re-prefill leaves the early cache inconsistent: start afresh next time */
        if (start < old) p3_session_reset(s);
        return st;
    }
    s->n_past = end;
    return PHI3C_OK;
}
