/* forward.c: the Phi-3 forward pass as straight-line math over backend ops, and the session that
 * owns the KV cache, the activation buffers (allocated once) and the LongRoPE factor switch. */
#include "engine.h"

#include <math.h>
#include <string.h>

enum { DEFAULT_BATCH = 256, DEFAULT_MAX_CTX = 4096 };

void p3_session_options_init(p3_session_options *opt) {
    memset(opt, 0, sizeof *opt);
    opt->kv = P3_KV_F32;
}

static size_t f32_bytes(int64_t a, int64_t b) {
    return (size_t)a * (size_t)b * sizeof(float);
}

static bool weights_are_int4(const p3_model *m) {
    return p3_dtype_is_int4(m->layers[0].qkv->dtype);
}

static p3_status alloc_buffers(p3_session *s, p3_error *err) {
    const p3_config *c = &s->model->cfg;
    p3_backend *be = (p3_backend *)&s->model->be;
    int64_t T = s->n_batch, hd = c->head_dim;
    int64_t qkv_dim = (c->num_heads + 2 * (int64_t)c->num_kv_heads) * hd;
    s->logit_rows = s->opt.all_logits ? (int)T : 1;
    P3_TRY(p3_be_buffer_alloc(be, (size_t)T * sizeof(int32_t), &s->ids, err));
    P3_TRY(p3_be_buffer_alloc(be, f32_bytes(T, c->hidden_size), &s->x, err));
    P3_TRY(p3_be_buffer_alloc(be, f32_bytes(T, c->hidden_size), &s->xb, err));
    P3_TRY(p3_be_buffer_alloc(be, f32_bytes(T, qkv_dim), &s->qkv, err));
    P3_TRY(p3_be_buffer_alloc(be, f32_bytes(T, c->num_heads * hd), &s->att, err));
    P3_TRY(
        p3_be_buffer_alloc(be, f32_bytes(T, 2 * (int64_t)c->intermediate_size), &s->gate_up, err));
    P3_TRY(p3_be_buffer_alloc(be, f32_bytes(T, c->intermediate_size), &s->hb, err));
    P3_TRY(p3_be_buffer_alloc(be, f32_bytes(s->logit_rows, c->vocab_size), &s->logits, err));
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
        p3_error_prefix(err, "KV cache of %d positions", s->n_ctx);
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
    P3_TRY(p3_be_buffer_alloc(be, f32_bytes(rows, s->model->cfg.vocab_size), &grown, err));
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

/* The activation buffers one forward pass uses: a session's own (one sequence, n_batch rows) or a
 * batch's (several sequences). */
typedef struct p3_acts {
    p3_buffer *ids, *x, *xb, *qkv, *att, *gate_up, *hb, *logits;
} p3_acts;

static p3_acts session_acts(const p3_session *s) {
    p3_acts a = {s->ids, s->x, s->xb, s->qkv, s->att, s->gate_up, s->hb, s->logits};
    return a;
}

/* One sequence's part of a forward pass: n tokens of session s at positions pos..pos+n-1 in
 * activation rows row0..row0+n-1; the logits of its rows first_out..n-1 (none when first_out ==
 * n) go to logits rows out_row0... */
typedef struct p3_segment {
    p3_session *s;
    int n, pos, row0;
    int first_out, out_row0;
} p3_segment;

/* Rotary embedding, cache write and attention of one segment: the only per-sequence ops (each
 * sequence at its own positions, with its own KV cache and RoPE factors). */
static p3_status attend_segment(const p3_model *m, const p3_acts *a, const p3_segment *g, int l,
                                const p3_attn_params *attn, p3_error *err) {
    const p3_config *c = &m->cfg;
    p3_backend *be = (p3_backend *)&m->be;
    p3_rope_params rope = {.n_heads = c->num_heads,
                           .n_kv_heads = c->num_kv_heads,
                           .head_dim = c->head_dim,
                           .rot_dim = c->rope.rot_dim,
                           .inv_freq =
                               p3_ref_at(g->s->long_rope ? m->inv_freq_long : m->inv_freq_short, 0),
                           .mscale = c->rope.attn_factor};
    int qkv_dim = (c->num_heads + 2 * c->num_kv_heads) * c->head_dim;
    p3_ref qkv = row(a->qkv, g->row0, qkv_dim),
           att = row(a->att, g->row0, c->num_heads * c->head_dim);
    P3_TRY(p3_be_rope(be, qkv, g->n, g->pos, &rope, err));
    P3_TRY(p3_be_kv_write(be, g->s->kv, l, qkv, g->n, g->pos, attn, err));
    return p3_be_attention(be, att, qkv, g->s->kv, l, g->n, g->pos, attn, err);
}

/* One forward pass over n_rows tokens (ids already in a->ids) made of the segments: the
 * matmuls run once over all rows (the weights are read once for every sequence), the attention
 * per segment. Appends each segment's keys and values to its cache and leaves the logits the
 * segments asked for in a->logits. */
static p3_status forward(const p3_model *m, const p3_acts *a, const p3_segment *segs, int n_segs,
                         int n, p3_error *err) {
    const p3_config *c = &m->cfg;
    p3_backend *be = (p3_backend *)&m->be;
    int dim = c->hidden_size, inter = c->intermediate_size;
    p3_attn_params attn = {.n_heads = c->num_heads,
                           .n_kv_heads = c->num_kv_heads,
                           .head_dim = c->head_dim,
                           .window = c->sliding_window,
                           .scale = 1.0f / sqrtf((float)c->head_dim)};
    p3_ref x = row(a->x, 0, dim), xb = row(a->xb, 0, dim);
    p3_ref qkv = p3_ref_at(a->qkv, 0), att = p3_ref_at(a->att, 0);
    p3_ref gate_up = p3_ref_at(a->gate_up, 0), hb = p3_ref_at(a->hb, 0);

    P3_TRY(p3_be_embed(be, x, m->embed, p3_ref_at(a->ids, 0), n, err)); /* x = E[ids] */
    for (int l = 0; l < c->num_layers; l++) {
        const p3_layer_weights *w = &m->layers[l];
        /* attention block: x += o_proj(attention(rope(qkv_proj(rmsnorm(x))))) */
        P3_TRY(p3_be_rmsnorm(be, xb, x, p3_ref_at(w->attn_norm, 0), n, dim, c->rms_norm_eps, err));
        P3_TRY(p3_be_matmul(be, qkv, xb, w->qkv, n, err));
        for (int i = 0; i < n_segs; i++) P3_TRY(attend_segment(m, a, &segs[i], l, &attn, err));
        P3_TRY(p3_be_matmul(be, xb, att, w->o, n, err));
        P3_TRY(p3_be_add(be, x, xb, (size_t)n * (size_t)dim, err));
        /* MLP block: x += down(silu(gate) * up), [gate | up] = gate_up_proj(rmsnorm(x)) */
        P3_TRY(p3_be_rmsnorm(be, xb, x, p3_ref_at(w->ffn_norm, 0), n, dim, c->rms_norm_eps, err));
        P3_TRY(p3_be_matmul(be, gate_up, xb, w->gate_up, n, err));
        P3_TRY(p3_be_swiglu(be, hb, gate_up, n, inter, err));
        P3_TRY(p3_be_matmul(be, xb, hb, w->down, n, err));
        P3_TRY(p3_be_add(be, x, xb, (size_t)n * (size_t)dim, err));
    }
    /* final norm of the rows asked for, gathered into xb, then one lm_head (or the tied
     * embedding) over them */
    int out_rows = 0;
    for (int i = 0; i < n_segs; i++) {
        const p3_segment *g = &segs[i];
        int rows = g->n - g->first_out;
        if (rows <= 0) continue;
        P3_TRY(p3_be_rmsnorm(be, row(a->xb, g->out_row0, dim),
                             row(a->x, g->row0 + g->first_out, dim), p3_ref_at(m->final_norm, 0),
                             rows, dim, c->rms_norm_eps, err));
        out_rows = P3_MAX(out_rows, g->out_row0 + rows);
    }
    if (out_rows == 0) return PHI3C_OK;
    return p3_be_matmul(be, p3_ref_at(a->logits, 0), xb, m->lm_head, out_rows, err);
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
        P3_TRY(p3_be_write(be, p3_ref_at(s->ids, 0), s->history + pos, (size_t)n * sizeof(int32_t),
                           err));
        int r0 = rows_out ? P3_MAX(first_out, pos) - pos : n - 1;
        p3_segment seg = {s, n, pos, 0, last_chunk || rows_out ? r0 : n, 0};
        p3_acts acts = session_acts(s);
        P3_TRY(forward(s->model, &acts, &seg, 1, n, err));
        s->n_prefilled += n;
        if (rows_out)
            P3_TRY(p3_be_read(be, p3_ref_at(s->logits, 0),
                              logits + (size_t)(pos + r0 - first_out) * (size_t)vocab,
                              (size_t)(n - r0) * row_bytes, err));
        if (last_chunk) {
            size_t last_row = (size_t)(n - 1 - r0);
            P3_TRY(p3_be_read(be, p3_ref_at(s->logits, last_row * row_bytes), s->host_logits,
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
                       "positions",
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

/* ---- Batches: several sessions advanced in one forward pass. */

static void free_acts(p3_backend *be, p3_acts *a) {
    p3_buffer *bufs[] = {a->ids, a->x, a->xb, a->qkv, a->att, a->gate_up, a->hb, a->logits};
    for (size_t i = 0; i < P3_ARRAY_LEN(bufs); i++) p3_be_buffer_free(be, bufs[i]);
}

static p3_status alloc_acts(const p3_model *m, int T, p3_acts *a, p3_error *err) {
    const p3_config *c = &m->cfg;
    p3_backend *be = (p3_backend *)&m->be;
    int64_t hd = c->head_dim, qkv_dim = (c->num_heads + 2 * (int64_t)c->num_kv_heads) * hd;
    P3_TRY(p3_be_buffer_alloc(be, (size_t)T * sizeof(int32_t), &a->ids, err));
    P3_TRY(p3_be_buffer_alloc(be, f32_bytes(T, c->hidden_size), &a->x, err));
    P3_TRY(p3_be_buffer_alloc(be, f32_bytes(T, c->hidden_size), &a->xb, err));
    P3_TRY(p3_be_buffer_alloc(be, f32_bytes(T, qkv_dim), &a->qkv, err));
    P3_TRY(p3_be_buffer_alloc(be, f32_bytes(T, c->num_heads * hd), &a->att, err));
    P3_TRY(
        p3_be_buffer_alloc(be, f32_bytes(T, 2 * (int64_t)c->intermediate_size), &a->gate_up, err));
    P3_TRY(p3_be_buffer_alloc(be, f32_bytes(T, c->intermediate_size), &a->hb, err));
    return p3_be_buffer_alloc(be, f32_bytes(T, c->vocab_size), &a->logits, err);
}

struct p3_batch {
    const p3_model *model;
    int cap;          /* token rows (and logit rows) per step */
    p3_acts acts;     /* [cap, ...] activations, [cap, vocab] logits */
    int32_t *ids;     /* [cap] host staging of the step's ids */
    p3_segment *segs; /* [cap] the sequences run in the pass */
    int *seq_of;      /* [cap] segment k is sequence seq_of[k] of the call */
};

p3_status p3_batch_create(const p3_model *m, int n_tokens, p3_batch **out, p3_error *err) {
    *out = NULL;
    if (n_tokens < 0 || n_tokens > (1 << 16))
        return p3_fail(err, PHI3C_ERR_INVALID_ARG, "batch of %d tokens", n_tokens);
    p3_batch *b = p3_calloc(1, sizeof *b);
    if (!b) return p3_fail(err, PHI3C_ERR_NOMEM, "out of memory for the batch");
    b->model = m;
    b->cap = n_tokens > 0 ? n_tokens : DEFAULT_BATCH;
    b->ids = p3_calloc((size_t)b->cap, sizeof *b->ids);
    b->segs = p3_calloc((size_t)b->cap, sizeof *b->segs);
    b->seq_of = p3_calloc((size_t)b->cap, sizeof *b->seq_of);
    p3_status st = b->ids && b->segs && b->seq_of
                       ? alloc_acts(m, b->cap, &b->acts, err)
                       : p3_fail(err, PHI3C_ERR_NOMEM, "out of memory for the batch");
    if (st != PHI3C_OK) {
        p3_batch_free(b);
        return st;
    }
    *out = b;
    return PHI3C_OK;
}

void p3_batch_free(p3_batch *b) {
    if (!b) return;
    free_acts((p3_backend *)&b->model->be, &b->acts);
    p3_free(b->ids);
    p3_free(b->segs);
    p3_free(b->seq_of);
    p3_free(b);
}

int p3_batch_capacity(const p3_batch *b) {
    return b->cap;
}

/* Would feeding n more tokens switch s to LongRoPE's long factors (a whole-history re-run)? */
static bool needs_longrope_switch(const p3_session *s, int n) {
    const p3_config *c = &s->model->cfg;
    return c->rope.type == P3_ROPE_LONGROPE && !s->long_rope &&
           s->n_past + n > c->original_max_position_embeddings;
}

static p3_status check_seq(const p3_batch *b, const p3_batch_seq *q, int i, p3_error *err) {
    const p3_config *c = &b->model->cfg;
    if (!q->s || q->s->model != b->model || q->n <= 0 || !q->ids)
        return p3_fail(err, PHI3C_ERR_INVALID_ARG,
                       "batch: sequence %d has no tokens or a session of another model", i);
    if (q->n > q->s->n_ctx - q->s->n_past)
        return p3_fail(err, PHI3C_ERR_CONTEXT_FULL,
                       "batch: sequence %d: %d cached + %d new tokens exceed the context of %d "
                       "positions",
                       i, q->s->n_past, q->n, q->s->n_ctx);
    for (int k = 0; k < q->n; k++)
        if (q->ids[k] < 0 || q->ids[k] >= c->vocab_size)
            return p3_fail(err, PHI3C_ERR_INVALID_ARG,
                           "batch: sequence %d: token id %d is outside the vocabulary 0..%d", i,
                           (int)q->ids[k], c->vocab_size - 1);
    return PHI3C_OK;
}

static p3_status check_batch(const p3_batch *b, const p3_batch_seq *seqs, int n_seqs,
                             p3_error *err) {
    int total = 0;
    for (int i = 0; i < n_seqs; i++) {
        P3_TRY(check_seq(b, &seqs[i], i, err));
        for (int j = 0; j < i; j++)
            if (seqs[j].s == seqs[i].s)
                return p3_fail(err, PHI3C_ERR_INVALID_ARG,
                               "batch: sequences %d and %d are the same session", j, i);
        total += seqs[i].n;
    }
    if (total > b->cap)
        return p3_fail(err, PHI3C_ERR_INVALID_ARG, "batch: %d tokens exceed the batch of %d", total,
                       b->cap);
    return PHI3C_OK;
}

/* Copies the logits of each segment out: every row to the caller's array when it asked, the last
 * to the session's host_logits. */
static p3_status read_batch_logits(p3_batch *b, const p3_batch_seq *seqs, int n_segs,
                                   p3_error *err) {
    p3_backend *be = (p3_backend *)&b->model->be;
    size_t row_bytes = (size_t)b->model->cfg.vocab_size * sizeof(float);
    for (int k = 0; k < n_segs; k++) {
        const p3_segment *g = &b->segs[k];
        float *all = seqs[b->seq_of[k]].logits;
        int rows = g->n - g->first_out;
        size_t at = (size_t)g->out_row0 * row_bytes;
        if (all)
            P3_TRY(
                p3_be_read(be, p3_ref_at(b->acts.logits, at), all, (size_t)rows * row_bytes, err));
        P3_TRY(p3_be_read(be, p3_ref_at(b->acts.logits, at + (size_t)(rows - 1) * row_bytes),
                          g->s->host_logits, row_bytes, err));
    }
    return PHI3C_OK;
}

/* Lays the sequences that stay in the batch out as segments (ids staged in b->ids); returns how
 * many, and the rows they take in *rows. */
static int plan_segments(p3_batch *b, const p3_batch_seq *seqs, int n_seqs, int *rows) {
    int n_segs = 0, out_rows = 0;
    *rows = 0;
    for (int i = 0; i < n_seqs; i++) {
        const p3_batch_seq *q = &seqs[i];
        if (needs_longrope_switch(q->s, q->n)) continue;
        b->seq_of[n_segs] = i;
        b->segs[n_segs++] = (p3_segment){.s = q->s,
                                         .n = q->n,
                                         .pos = q->s->n_past,
                                         .row0 = *rows,
                                         .first_out = q->logits ? 0 : q->n - 1,
                                         .out_row0 = out_rows};
        memcpy(b->ids + *rows, q->ids, (size_t)q->n * sizeof(int32_t));
        *rows += q->n;
        out_rows += q->logits ? q->n : 1;
    }
    return n_segs;
}

p3_status p3_batch_feed(p3_batch *b, const p3_batch_seq *seqs, int n_seqs, p3_error *err) {
    if (n_seqs <= 0 || !seqs) return p3_fail(err, PHI3C_ERR_INVALID_ARG, "batch: no sequences");
    P3_TRY(check_batch(b, seqs, n_seqs, err));
    int rows = 0, n_segs = plan_segments(b, seqs, n_seqs, &rows);
    /* a sequence crossing LongRoPE's switch re-runs its whole history: alone, by the session */
    for (int i = 0; i < n_seqs; i++)
        if (needs_longrope_switch(seqs[i].s, seqs[i].n))
            P3_TRY(p3_session_feed(seqs[i].s, seqs[i].ids, seqs[i].n, seqs[i].logits, err));
    if (n_segs == 0) return PHI3C_OK;
    p3_backend *be = (p3_backend *)&b->model->be;
    P3_TRY(p3_be_write(be, p3_ref_at(b->acts.ids, 0), b->ids, (size_t)rows * sizeof(int32_t), err));
    P3_TRY(forward(b->model, &b->acts, b->segs, n_segs, rows, err));
    P3_TRY(read_batch_logits(b, seqs, n_segs, err));
    for (int k = 0; k < n_segs; k++) {
        const p3_batch_seq *q = &seqs[b->seq_of[k]];
        p3_session *s = q->s;
        memcpy(s->history + s->n_past, q->ids, (size_t)q->n * sizeof(int32_t));
        s->n_past += q->n;
        s->n_prefilled += q->n;
    }
    return PHI3C_OK;
}
