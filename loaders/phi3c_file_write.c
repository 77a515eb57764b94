/* phi3c_file_write.c: writer of the native .phi3c file. Streams each tensor (converted and
 * quantized in row chunks, so memory stays bounded) into a temp file beside the output, writes the
 * header last (so a partial file never carries a valid magic), fsyncs and renames it into place. */
#include "phi3c_file.h"
#include "phi3c_file_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

enum { CHUNK_FLOATS = 1 << 22 }; /* f32 values converted per chunk (16 MB) */

/* Mirrors parse_config in phi3c_file.c field for field. */
static void put_config(p3n_buf *b, const p3_config *c) {
    p3n_put_name(b, c->architecture, P3N_CONFIG_ARCH_BYTES);
    const int ints[] = {c->hidden_size,
                        c->num_layers,
                        c->num_heads,
                        c->num_kv_heads,
                        c->head_dim,
                        c->intermediate_size,
                        c->vocab_size,
                        c->max_position_embeddings,
                        c->original_max_position_embeddings};
    for (size_t i = 0; i < P3_ARRAY_LEN(ints); i++) p3n_put_i32(b, ints[i]);
    p3n_put_f32(b, c->rms_norm_eps);
    p3n_put_u32(b, (uint32_t)c->rope.type);
    p3n_put_f32(b, c->rope.theta);
    p3n_put_f32(b, c->rope.partial_rotary_factor);
    p3n_put_i32(b, c->rope.rot_dim);
    p3n_put_i32(b, c->rope.n_factors);
    p3n_put_f32(b, c->rope.attn_factor);
    for (int i = 0; i < c->rope.n_factors; i++) p3n_put_f32(b, c->rope.short_factor[i]);
    for (int i = 0; i < c->rope.n_factors; i++) p3n_put_f32(b, c->rope.long_factor[i]);
    p3n_put_i32(b, c->sliding_window);
    p3n_put_u32(b, c->tie_word_embeddings ? 1 : 0);
    p3n_put_i32(b, c->bos_id);
    p3n_put_i32(b, c->eos_id);
    p3n_put_i32(b, c->pad_id);
    p3n_put_i32(b, c->n_stop_ids);
    for (int i = 0; i < c->n_stop_ids; i++) p3n_put_i32(b, c->stop_ids[i]);
}

/* ---- plan */

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

p3_dtype p3_native_plan_dtype(const p3_tensor *t, const p3_native_write_opts *o) {
    p3_dtype i4 = o->asym ? P3_DT_I4G128A : P3_DT_I4G128S;
    if (strcmp(t->hf_name, "model.embed_tokens.weight") == 0) {
        if (o->embed_int4) return i4;
        return t->dtype == P3_DT_BF16 ? P3_DT_BF16 : P3_DT_F16; /* bf16 stays exact */
    }
    if (t->n_dims == 2 && ends_with(t->hf_name, ".weight")) return i4; /* linear layers */
    return P3_DT_F32;                                                  /* norms, rope factors */
}

typedef struct planned {
    const p3_tensor *src;
    p3_dtype dtype;
    int64_t rows, cols;
    uint64_t offset, nbytes, hash;
} planned;

static uint64_t align_up(uint64_t v) {
    return (v + P3N_ALIGN - 1) / P3N_ALIGN * P3N_ALIGN;
}

typedef struct writer {
    const p3_model_source *src;
    const p3_native_write_opts *o;
    const char *out_path;
    char *tmp_path;
    int fd;
    planned *plan;
    size_t n_plan;
    const p3_native_blob *blobs;
    size_t n_blobs;
    uint64_t *blob_offsets, *blob_hashes;
    uint64_t data_offset, file_bytes, tensor_bytes_total, tensor_bytes_done;
    uint64_t written;  /* bytes handed to pwrite so far (for the test fault hook) */
    uint8_t *image;    /* in-memory mode: the whole file is built here instead of on disk */
    double err2, ref2; /* the current INT4 tensor's squared error and squared values (stats) */
    float *deq;        /* one dequantized row, whole groups (stats) */
    size_t deq_cap;
    p3n_buf config;
    p3_error *err;
} writer;

static p3_status plan_tensors(writer *w) {
    w->n_plan = w->src->n_tensors;
    w->plan = p3_calloc(P3_MAX(w->n_plan, 1), sizeof *w->plan);
    if (!w->plan) return p3_fail(w->err, PHI3C_ERR_NOMEM, "%s: out of memory", w->out_path);
    for (size_t i = 0; i < w->n_plan; i++) {
        const p3_tensor *t = &w->src->tensors[i];
        planned *p = &w->plan[i];
        p->src = t;
        p->dtype = p3_native_plan_dtype(t, w->o);
        if (t->n_dims < 1 || t->n_dims > P3_MAX_DIMS ||
            !p3n_tensor_bytes(p->dtype, t->n_dims, t->shape, &p->nbytes))
            return p3_fail(w->err, PHI3C_ERR_UNSUPPORTED, "%s: tensor '%s' has an unusable shape",
                           w->out_path, t->hf_name);
        p->cols = t->shape[t->n_dims - 1];
        p->rows = 1;
        for (int d = 0; d < t->n_dims - 1; d++) p->rows *= t->shape[d];
        if (strlen(t->hf_name) >= P3_TENSOR_NAME_MAX)
            return p3_fail(w->err, PHI3C_ERR_UNSUPPORTED, "%s: tensor name too long", w->out_path);
    }
    return PHI3C_OK;
}

/* Header region: header | config | tensor table | blob table, padded to 64; then blobs and
 * tensors, each at a 64-byte aligned offset. */
static p3_status plan_layout(writer *w) {
    put_config(&w->config, &w->src->config);
    if (w->config.oom) return p3_fail(w->err, PHI3C_ERR_NOMEM, "%s: out of memory", w->out_path);
    uint64_t config_end = P3N_HEADER_BYTES + w->config.len;
    uint64_t tensor_table = (config_end + 7) / 8 * 8;
    uint64_t blob_table = tensor_table + (uint64_t)w->n_plan * P3N_TENSOR_ENTRY_BYTES;
    w->data_offset = align_up(blob_table + (uint64_t)w->n_blobs * P3N_BLOB_ENTRY_BYTES);
    uint64_t off = w->data_offset;
    w->blob_offsets = p3_calloc(w->n_blobs + 1, sizeof *w->blob_offsets);
    w->blob_hashes = p3_calloc(w->n_blobs + 1, sizeof *w->blob_hashes);
    if (!w->blob_offsets || !w->blob_hashes)
        return p3_fail(w->err, PHI3C_ERR_NOMEM, "%s: out of memory", w->out_path);
    for (size_t i = 0; i < w->n_blobs; i++) {
        w->blob_offsets[i] = off;
        off = align_up(off + w->blobs[i].size);
    }
    for (size_t i = 0; i < w->n_plan; i++) {
        w->plan[i].offset = off;
        w->tensor_bytes_total += w->plan[i].nbytes;
        off = align_up(off + w->plan[i].nbytes);
    }
    w->file_bytes = off;
    return PHI3C_OK;
}

static void build_header_region(writer *w, p3n_buf *b) {
    uint64_t tensor_table = (P3N_HEADER_BYTES + w->config.len + 7) / 8 * 8;
    uint64_t blob_table = tensor_table + (uint64_t)w->n_plan * P3N_TENSOR_ENTRY_BYTES;
    p3n_put_bytes(b, P3N_MAGIC, P3N_MAGIC_LEN);
    p3n_put_u32(b, P3N_VERSION_MAJOR);
    p3n_put_u32(b, P3N_VERSION_MINOR);
    p3n_put_u64(b, w->file_bytes);
    p3n_put_u64(b, w->data_offset);
    p3n_put_u64(b, P3N_HEADER_BYTES); /* config offset */
    p3n_put_u64(b, w->config.len);
    p3n_put_u64(b, tensor_table);
    p3n_put_u32(b, (uint32_t)w->n_plan);
    p3n_put_u32(b, P3N_TENSOR_ENTRY_BYTES);
    p3n_put_u64(b, blob_table);
    p3n_put_u32(b, (uint32_t)w->n_blobs);
    p3n_put_u32(b, P3N_BLOB_ENTRY_BYTES);
    p3n_put_u32(b, P3_QK);
    p3n_put_u32(b, w->o->asym ? P3N_FLAG_ASYM : 0);
    p3n_put_u32(b, (uint32_t)w->o->method);
    p3n_put_zeros(b, 4 + 3 * 8); /* reserved */
    p3n_put_u64(b, 0);           /* header hash, filled below */
    p3n_put_bytes(b, w->config.p, w->config.len);
    p3n_put_zeros(b, (size_t)(tensor_table - b->len));
    for (size_t i = 0; i < w->n_plan; i++) {
        const planned *p = &w->plan[i];
        uint32_t code = 0;
        p3n_dtype_code(p->dtype, &code);
        p3n_put_name(b, p->src->hf_name, P3_TENSOR_NAME_MAX);
        p3n_put_u32(b, code);
        p3n_put_u32(b, (uint32_t)p->src->n_dims);
        for (int d = 0; d < P3_MAX_DIMS; d++)
            p3n_put_u64(b, d < p->src->n_dims ? (uint64_t)p->src->shape[d] : 0);
        p3n_put_u64(b, p->offset);
        p3n_put_u64(b, p->nbytes);
        p3n_put_u64(b, p->hash);
    }
    for (size_t i = 0; i < w->n_blobs; i++) {
        p3n_put_name(b, w->blobs[i].name, P3N_BLOB_NAME_MAX);
        p3n_put_u64(b, w->blob_offsets[i]);
        p3n_put_u64(b, w->blobs[i].size);
        p3n_put_u64(b, w->blob_hashes[i]);
        p3n_put_u64(b, 0); /* reserved */
    }
    p3n_put_zeros(b, (size_t)(w->data_offset - b->len));
    if (b->oom) return;
    uint64_t h = p3n_header_hash(b->p, b->len);
    for (int i = 0; i < 8; i++) b->p[P3N_HASH_FIELD + i] = (uint8_t)(h >> (8 * i));
}

/* ---- writing */

static p3_status write_failed(writer *w, int errnum, const char *what) {
    if (errnum == ENOSPC || errnum == EFBIG || errnum == EDQUOT)
        return p3_fail(w->err, PHI3C_ERR_IO,
                       "%s: %s while writing %s (%.1f MB written); the output was not created",
                       w->out_path, errnum == EFBIG ? "file size limit reached" : "disk full", what,
                       (double)w->written / 1e6);
    return p3_fail(w->err, PHI3C_ERR_IO, "%s: write failed in %s: %s", w->out_path, what,
                   strerror(errnum));
}

/* Simulated failures for tests (opts.test_fault_at): fires once the file reaches that size. */
static int fault_hook(writer *w, size_t n) {
    const p3_native_write_opts *o = w->o;
    if (o->test_fault == P3N_FAULT_NONE || o->test_fault_at == 0 ||
        w->written + n < o->test_fault_at)
        return 0;
    switch (o->test_fault) {
    case P3N_FAULT_ENOSPC:
        return ENOSPC;
    case P3N_FAULT_SIGKILL:
        raise(SIGKILL);
        break;
    case P3N_FAULT_SIGINT:
        raise(SIGINT);
        break;
    case P3N_FAULT_SIGNAL:
        raise(o->test_fault_signal);
        break;
    default:
        break;
    }
    return 0;
}

static p3_status pwrite_all(writer *w, const void *buf, size_t n, uint64_t off, const char *what) {
    if (w->image) {
        memcpy(w->image + off, buf, n);
        return PHI3C_OK;
    }
    int injected = fault_hook(w, n);
    if (injected) return write_failed(w, injected, what);
    const uint8_t *p = buf;
    while (n > 0) {
        ssize_t k = pwrite(w->fd, p, n, (off_t)off);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return write_failed(w, k < 0 ? errno : ENOSPC, what);
        p += k;
        n -= (size_t)k;
        off += (uint64_t)k;
        w->written += (uint64_t)k;
    }
    return PHI3C_OK;
}

static p3_status report_progress(writer *w, size_t index) {
    const p3_native_write_opts *o = w->o;
    if (o->progress && !o->progress(o->progress_user, index, w->n_plan, w->tensor_bytes_done,
                                    w->tensor_bytes_total))
        return p3_fail(w->err, PHI3C_ERR_INTERRUPTED, "%s: interrupted; the output was not created",
                       w->out_path);
    return PHI3C_OK;
}

typedef struct row_fetch_ctx {
    const p3_tensor *t;
    int64_t first_row, cols;
    p3_tensor_f32_fn to_f32;
} row_fetch_ctx;

static p3_status fetch_row(void *user, int64_t row, float *out, p3_error *err) {
    const row_fetch_ctx *c = user;
    size_t first = (size_t)(c->first_row + row) * (size_t)c->cols;
    return c->to_f32(c->t, first, (size_t)c->cols, out, err);
}

/* Adds the squared error of rows [r0, r0 + n) of an INT4 tensor (out, as quantized) against its
 * source values (fetched again into tmp) to w->err2 and w->ref2. */
static p3_status add_int4_error(writer *w, const planned *p, int64_t r0, int64_t n,
                                const uint8_t *out, float *tmp) {
    size_t cols = (size_t)p->cols, row_bytes = (size_t)(p->nbytes / (uint64_t)p->rows);
    size_t need = (size_t)p3_groups(p->cols) * P3_QK;
    if (need > w->deq_cap) {
        p3_free(w->deq);
        if (!(w->deq = p3_malloc(need * sizeof *w->deq)))
            return p3_fail(w->err, PHI3C_ERR_NOMEM, "%s: out of memory", w->out_path);
        w->deq_cap = need;
    }
    P3_TRY(w->o->to_f32(p->src, (size_t)r0 * cols, (size_t)n * cols, tmp, w->err));
    for (int64_t r = 0; r < n; r++) {
        const void *q = out + (size_t)r * row_bytes;
        if (p->dtype == P3_DT_I4G128A)
            p3_dequantize_row_i4a(q, p->cols, w->deq);
        else
            p3_dequantize_row_i4s(q, p->cols, w->deq);
        const float *x = tmp + (size_t)r * cols;
        for (size_t i = 0; i < cols; i++) {
            double d = (double)x[i] - (double)w->deq[i];
            w->err2 += d * d;
            w->ref2 += (double)x[i] * (double)x[i];
        }
    }
    return PHI3C_OK;
}

/* Produces rows [r0, r0 + n) of tensor p in its output dtype into out. */
static p3_status encode_rows(writer *w, const planned *p, int64_t r0, int64_t n, uint8_t *out,
                             float *tmp) {
    const p3_tensor *t = p->src;
    size_t count = (size_t)(n * p->cols);
    if (p->dtype == t->dtype) { /* already in the output type: copy the bytes exactly */
        size_t row_bytes = (size_t)(p->nbytes / (uint64_t)p->rows);
        memcpy(out, (const uint8_t *)t->data + (size_t)r0 * row_bytes, (size_t)n * row_bytes);
        return PHI3C_OK;
    }
    if (p3_dtype_is_int4(p->dtype)) {
        row_fetch_ctx ctx = {t, r0, p->cols, w->o->to_f32};
        p3_quant_matrix_args a = {.rows = n,
                                  .cols = p->cols,
                                  .fmt = p->dtype,
                                  .method = w->o->method,
                                  .fetch = fetch_row,
                                  .fetch_user = &ctx,
                                  .n_threads = w->o->n_threads};
        P3_TRY(p3_quantize_matrix(&a, out, w->err));
        return w->o->stats ? add_int4_error(w, p, r0, n, out, tmp) : PHI3C_OK;
    }
    p3_status st = w->o->to_f32(t, (size_t)r0 * (size_t)p->cols, count, tmp, w->err);
    if (st != PHI3C_OK) return st;
    if (p->dtype == P3_DT_F32) {
        memcpy(out, tmp, count * 4);
        return PHI3C_OK;
    }
    for (size_t i = 0; i < count; i++) {
        uint16_t h = p->dtype == P3_DT_F16 ? p3_f32_to_f16(tmp[i]) : p3_f32_to_bf16(tmp[i]);
        out[2 * i] = (uint8_t)h;
        out[2 * i + 1] = (uint8_t)(h >> 8);
    }
    return PHI3C_OK;
}

static void add_tensor_stats(writer *w, const planned *p) {
    p3_native_write_stats *s = w->o->stats;
    if (!s) return;
    s->n_tensors++;
    s->bytes_in += p->src->nbytes;
    if (!p3_dtype_is_int4(p->dtype)) return;
    s->n_int4++;
    s->int4_weights += (uint64_t)p->rows * (uint64_t)p->cols;
    s->int4_bytes += p->nbytes;
    if (w->ref2 > 0) s->nmse_sum += w->err2 / w->ref2;
}

static p3_status write_tensor(writer *w, size_t index, float *tmp, uint8_t *buf, XXH3_state_t *hs) {
    planned *p = &w->plan[index];
    int64_t chunk_rows = P3_MAX((int64_t)1, (int64_t)CHUNK_FLOATS / p->cols);
    uint64_t row_bytes = p->nbytes / (uint64_t)p->rows, off = p->offset;
    XXH3_64bits_reset(hs);
    w->err2 = w->ref2 = 0.0;
    for (int64_t r0 = 0; r0 < p->rows; r0 += chunk_rows) {
        int64_t n = P3_MIN(chunk_rows, p->rows - r0);
        p3_status st = encode_rows(w, p, r0, n, buf, tmp);
        if (st != PHI3C_OK) {
            p3_error_prefix(w->err, "%s: tensor '%s'", w->out_path, p->src->hf_name);
            return st;
        }
        size_t len = (size_t)((uint64_t)n * row_bytes);
        XXH3_64bits_update(hs, buf, len);
        st = pwrite_all(w, buf, len, off, p->src->hf_name);
        if (st != PHI3C_OK) return st;
        off += len;
        w->tensor_bytes_done += len;
        st = report_progress(w, index);
        if (st != PHI3C_OK) return st;
    }
    p->hash = XXH3_64bits_digest(hs);
    add_tensor_stats(w, p);
    return PHI3C_OK;
}

/* Chunk buffers sized for the widest tensor: f32 staging and encoded output. */
static p3_status alloc_chunk_buffers(writer *w, float **tmp, uint8_t **buf) {
    size_t max_bytes = 0, max_floats = 0;
    for (size_t i = 0; i < w->n_plan; i++) {
        const planned *p = &w->plan[i];
        int64_t chunk_rows = P3_MAX((int64_t)1, (int64_t)CHUNK_FLOATS / p->cols);
        int64_t rows = P3_MIN(chunk_rows, p->rows);
        max_floats = P3_MAX(max_floats, (size_t)(rows * p->cols));
        max_bytes = P3_MAX(max_bytes, (size_t)((uint64_t)rows * (p->nbytes / (uint64_t)p->rows)));
    }
    *tmp = p3_malloc(P3_MAX(max_floats, 1) * sizeof **tmp);
    *buf = p3_malloc(P3_MAX(max_bytes, 1));
    if (!*tmp || !*buf) return p3_fail(w->err, PHI3C_ERR_NOMEM, "%s: out of memory", w->out_path);
    return PHI3C_OK;
}

static p3_status write_body(writer *w) {
    XXH3_state_t *hs = XXH3_createState();
    float *tmp = NULL;
    uint8_t *buf = NULL;
    p3_status st = hs ? alloc_chunk_buffers(w, &tmp, &buf)
                      : p3_fail(w->err, PHI3C_ERR_NOMEM, "%s: out of memory", w->out_path);
    for (size_t i = 0; i < w->n_blobs && st == PHI3C_OK; i++) {
        w->blob_hashes[i] = XXH3_64bits(w->blobs[i].data, w->blobs[i].size);
        st =
            pwrite_all(w, w->blobs[i].data, w->blobs[i].size, w->blob_offsets[i], w->blobs[i].name);
    }
    for (size_t i = 0; i < w->n_plan && st == PHI3C_OK; i++) st = write_tensor(w, i, tmp, buf, hs);
    p3_free(tmp);
    p3_free(buf);
    if (hs) XXH3_freeState(hs);
    return st;
}

/* The header goes last; the file gets its final size first (trailing alignment is a hole). */
static p3_status finish_file(writer *w) {
    p3n_buf hdr = {0};
    build_header_region(w, &hdr);
    if (hdr.oom) {
        p3_free(hdr.p);
        return p3_fail(w->err, PHI3C_ERR_NOMEM, "%s: out of memory", w->out_path);
    }
    p3_status st = PHI3C_OK;
    if (ftruncate(w->fd, (off_t)w->file_bytes) != 0) st = write_failed(w, errno, "the file size");
    if (st == PHI3C_OK) st = pwrite_all(w, hdr.p, hdr.len, 0, "the header");
    p3_free(hdr.p);
    if (st == PHI3C_OK && fsync(w->fd) != 0) st = write_failed(w, errno, "fsync");
    if (st == PHI3C_OK && fchmod(w->fd, 0644) != 0) st = write_failed(w, errno, "chmod");
    return st;
}

static p3_status create_temp(writer *w) {
    return p3_output_temp(w->out_path, &w->tmp_path, &w->fd, w->err);
}

static p3_status check_inputs(const p3_model_source *src, const char *out_path,
                              const p3_native_write_opts *o, p3_error *err) {
    if (!src || !out_path || !o || !o->to_f32)
        return p3_fail(err, PHI3C_ERR_INVALID_ARG, "native write: missing arguments");
    if (!src->has_config)
        return p3_fail(err, PHI3C_ERR_UNSUPPORTED, "%s: has no model config (vocab-only?)",
                       src->path ? src->path : "source");
    p3_status st = p3_output_check(out_path, o->force, err);
    if (st != PHI3C_OK) return st;
    return p3n_check_config(&src->config, src->path ? src->path : "source", err);
}

p3_status p3_native_write(const p3_model_source *src, const p3_native_blob *blobs, size_t n_blobs,
                          const char *out_path, const p3_native_write_opts *o, p3_error *err) {
    p3_status st = check_inputs(src, out_path, o, err);
    if (st != PHI3C_OK) return st;
    if (n_blobs > P3N_MAX_BLOBS || src->n_tensors > P3N_MAX_TENSORS)
        return p3_fail(err, PHI3C_ERR_UNSUPPORTED, "%s: too many tensors or blobs", out_path);
    for (size_t i = 0; i < n_blobs; i++)
        if (!blobs[i].name[0] || strnlen(blobs[i].name, P3N_BLOB_NAME_MAX) >= P3N_BLOB_NAME_MAX)
            return p3_fail(err, PHI3C_ERR_INVALID_ARG, "%s: blob %zu has a bad name", out_path, i);
    writer w = {.src = src,
                .o = o,
                .out_path = out_path,
                .blobs = blobs,
                .n_blobs = n_blobs,
                .fd = -1,
                .err = err};
    st = plan_tensors(&w);
    if (st == PHI3C_OK) st = plan_layout(&w);
    if (st == PHI3C_OK) st = create_temp(&w);
    if (st == PHI3C_OK) st = report_progress(&w, 0);
    if (st == PHI3C_OK) st = write_body(&w);
    if (st == PHI3C_OK) st = finish_file(&w);
    if (w.fd >= 0 && close(w.fd) != 0 && st == PHI3C_OK) st = write_failed(&w, errno, "close");
    if (st == PHI3C_OK) st = p3_output_commit(w.tmp_path, out_path, o->force, err);
    if (st != PHI3C_OK && w.tmp_path) unlink(w.tmp_path);
    if (st == PHI3C_OK && o->stats) o->stats->bytes_out = w.file_bytes;
    p3_free(w.deq);
    p3_free(w.tmp_path);
    p3_free(w.plan);
    p3_free(w.blob_offsets);
    p3_free(w.blob_hashes);
    p3_free(w.config.p);
    return st;
}

/* Load-time quantization: the same plan, encoding and layout as p3_native_write, into memory;
 * the image is then read back by the native reader, so its tensors are the file's, byte for byte.
 */
p3_status p3_native_quantize_in_memory(const p3_model_source *src, const p3_native_write_opts *o,
                                       p3_model_source **out, p3_error *err) {
    *out = NULL;
    if (!src || !o || !o->to_f32 || !src->has_config)
        return p3_fail(err, PHI3C_ERR_INVALID_ARG, "quantize: needs a model source with a config");
    const char *what = src->path ? src->path : "model";
    p3_status st = p3n_check_config(&src->config, what, err);
    if (st != PHI3C_OK) return st;
    p3_native_blob *blobs = NULL;
    size_t n_blobs = 0;
    st = p3_native_gather_blobs(src, &blobs, &n_blobs, err);
    writer w = {.src = src,
                .o = o,
                .out_path = what,
                .blobs = blobs,
                .n_blobs = n_blobs,
                .fd = -1,
                .err = err};
    if (st == PHI3C_OK) st = plan_tensors(&w);
    if (st == PHI3C_OK) st = plan_layout(&w);
    if (st == PHI3C_OK && !(w.image = p3_malloc_aligned((size_t)w.file_bytes, P3N_ALIGN)))
        st = p3_fail(err, PHI3C_ERR_NOMEM, "%s: out of memory for %.2f GB of quantized weights",
                     what, (double)w.file_bytes / 1e9);
    if (st == PHI3C_OK) {
        memset(w.image, 0, (size_t)w.file_bytes); /* alignment gaps are zero, as in a file */
        st = report_progress(&w, 0);
    }
    if (st == PHI3C_OK) st = write_body(&w);
    if (st == PHI3C_OK) {
        p3n_buf hdr = {0};
        build_header_region(&w, &hdr);
        if (hdr.oom)
            st = p3_fail(err, PHI3C_ERR_NOMEM, "%s: out of memory", what);
        else
            memcpy(w.image, hdr.p, hdr.len);
        p3_free(hdr.p);
    }
    if (st == PHI3C_OK)
        st = p3_native_open_memory(w.image, (size_t)w.file_bytes, what, false, out, err);
    if (st == PHI3C_OK) {
        (*out)->native->owned_image = w.image; /* freed with the source */
        w.image = NULL;
    }
    p3_free_aligned(w.image);
    p3_native_blobs_free(blobs, n_blobs);
    p3_free(w.deq);
    p3_free(w.plan);
    p3_free(w.blob_offsets);
    p3_free(w.blob_hashes);
    p3_free(w.config.p);
    return st;
}
