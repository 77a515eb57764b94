/* phi3c_file.c: reader of the native .phi3c file (docs/FORMAT.md). Every offset, size and count
 * read from the file is checked before use; checksums are XXH3-64. The writer is in
 * phi3c_file_write.c. */
#include "phi3c_file.h"
#include "phi3c_file_impl.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

bool p3_native_is_magic(const void *head, size_t n) {
    return n >= P3N_MAGIC_LEN && memcmp(head, P3N_MAGIC, P3N_MAGIC_LEN) == 0;
}

/* ---- on-disk dtype codes (stable; independent of the p3_dtype enum order) */

static const struct {
    uint32_t code;
    p3_dtype dtype;
} dtype_codes[] = {
    {P3N_CODE_F32, P3_DT_F32},         {P3N_CODE_F16, P3_DT_F16},
    {P3N_CODE_BF16, P3_DT_BF16},       {P3N_CODE_I4G128S, P3_DT_I4G128S},
    {P3N_CODE_I4G128A, P3_DT_I4G128A},
};

bool p3n_dtype_code(p3_dtype dtype, uint32_t *code) {
    for (size_t i = 0; i < P3_ARRAY_LEN(dtype_codes); i++)
        if (dtype_codes[i].dtype == dtype) {
            *code = dtype_codes[i].code;
            return true;
        }
    return false;
}

static bool dtype_from_code(uint32_t code, p3_dtype *dtype) {
    for (size_t i = 0; i < P3_ARRAY_LEN(dtype_codes); i++)
        if (dtype_codes[i].code == code) {
            *dtype = dtype_codes[i].dtype;
            return true;
        }
    return false;
}

bool p3n_tensor_bytes(p3_dtype dtype, int n_dims, const int64_t *shape, uint64_t *bytes) {
    if (n_dims < 1 || n_dims > P3_MAX_DIMS) return false;
    uint64_t rows = 1;
    for (int i = 0; i < n_dims; i++) {
        if (shape[i] <= 0 || shape[i] > P3N_MAX_DIM) return false;
        if (i < n_dims - 1 && !p3_mul_u64(rows, (uint64_t)shape[i], &rows)) return false;
    }
    int64_t cols = shape[n_dims - 1];
    uint64_t row_bytes;
    switch (dtype) {
    case P3_DT_F32:
        row_bytes = (uint64_t)cols * 4;
        break;
    case P3_DT_F16:
    case P3_DT_BF16:
        row_bytes = (uint64_t)cols * 2;
        break;
    case P3_DT_I4G128S:
        row_bytes = (uint64_t)p3_groups(cols) * sizeof(p3_block_i4s);
        break;
    case P3_DT_I4G128A:
        row_bytes = (uint64_t)p3_groups(cols) * sizeof(p3_block_i4a);
        break;
    default:
        return false;
    }
    return p3_mul_u64(rows, row_bytes, bytes);
}

/* ---- little-endian cursor over untrusted bytes */

typedef struct cursor {
    const uint8_t *p;
    size_t left;
    bool bad;
} cursor;

static const uint8_t *take(cursor *c, size_t n) {
    if (c->bad || n > c->left) {
        c->bad = true;
        return NULL;
    }
    const uint8_t *p = c->p;
    c->p += n;
    c->left -= n;
    return p;
}

static uint32_t get_u32(cursor *c) {
    const uint8_t *p = take(c, 4);
    return p ? p3n_load_u32(p) : 0;
}

static uint64_t get_u64(cursor *c) {
    const uint8_t *p = take(c, 8);
    return p ? p3n_load_u64(p) : 0;
}

static int32_t get_i32(cursor *c) {
    return (int32_t)get_u32(c);
}

static float get_f32(cursor *c) {
    uint32_t u = get_u32(c);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Copies a fixed-size NUL-padded name; false when it has no NUL. */
static bool get_name(cursor *c, char *dst, size_t field) {
    const uint8_t *p = take(c, field);
    if (!p || !memchr(p, 0, field)) return false;
    memcpy(dst, p, field);
    return true;
}

uint32_t p3n_load_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint64_t p3n_load_u64(const uint8_t *p) {
    return (uint64_t)p3n_load_u32(p) | (uint64_t)p3n_load_u32(p + 4) << 32;
}

/* ---- header */

p3_status p3n_parse_header(const uint8_t *data, size_t size, const char *what, p3n_header *h,
                           p3_error *err) {
    if (size < P3N_HEADER_BYTES || !p3_native_is_magic(data, size))
        return p3_fail(err, PHI3C_ERR_FORMAT,
                       "%s: not a phi3c native file (bad magic or %zu bytes)", what, size);
    cursor c = {data + P3N_MAGIC_LEN, P3N_HEADER_BYTES - P3N_MAGIC_LEN, false};
    h->version_major = get_u32(&c);
    h->version_minor = get_u32(&c);
    h->file_bytes = get_u64(&c);
    h->data_offset = get_u64(&c);
    h->config_offset = get_u64(&c);
    h->config_bytes = get_u64(&c);
    h->tensor_table_offset = get_u64(&c);
    h->n_tensors = get_u32(&c);
    h->tensor_entry_bytes = get_u32(&c);
    h->blob_table_offset = get_u64(&c);
    h->n_blobs = get_u32(&c);
    h->blob_entry_bytes = get_u32(&c);
    h->group_size = get_u32(&c);
    h->flags = get_u32(&c);
    h->quant_method = get_u32(&c);
    take(&c, 4 + 3 * 8); /* reserved */
    h->header_hash = get_u64(&c);
    if (h->version_major != P3N_VERSION_MAJOR)
        return p3_fail(err, PHI3C_ERR_UNSUPPORTED,
                       "%s: native format version %u.%u; this phi3c reads version %u.x", what,
                       h->version_major, h->version_minor, P3N_VERSION_MAJOR);
    if (h->file_bytes != size)
        return p3_fail(err, PHI3C_ERR_FORMAT,
                       "%s: header says %llu bytes but the file has %zu (truncated or extended)",
                       what, (unsigned long long)h->file_bytes, size);
    if (h->data_offset < P3N_HEADER_BYTES || h->data_offset > size ||
        h->data_offset % P3N_ALIGN != 0)
        return p3_fail(err, PHI3C_ERR_FORMAT, "%s: data offset %llu out of range", what,
                       (unsigned long long)h->data_offset);
    if (h->group_size != P3_QK || (h->flags & ~(uint32_t)P3N_FLAG_ASYM) != 0)
        return p3_fail(err, PHI3C_ERR_UNSUPPORTED, "%s: group size %u / flags 0x%x not supported",
                       what, h->group_size, h->flags);
    if (h->tensor_entry_bytes < P3N_TENSOR_ENTRY_BYTES ||
        h->blob_entry_bytes < P3N_BLOB_ENTRY_BYTES)
        return p3_fail(err, PHI3C_ERR_FORMAT, "%s: table entries too small (%u, %u bytes)", what,
                       h->tensor_entry_bytes, h->blob_entry_bytes);
    if (h->n_tensors > P3N_MAX_TENSORS || h->n_blobs > P3N_MAX_BLOBS)
        return p3_fail(err, PHI3C_ERR_FORMAT, "%s: %u tensors / %u blobs is more than allowed",
                       what, h->n_tensors, h->n_blobs);
    return PHI3C_OK;
}

uint64_t p3n_header_hash(const uint8_t *region, size_t n) {
    /* The hash field itself (bytes 120..127) counts as zero. */
    XXH3_state_t *st = XXH3_createState();
    if (!st) return 0;
    static const uint8_t zeros[8] = {0};
    XXH3_64bits_reset(st);
    XXH3_64bits_update(st, region, P3N_HASH_FIELD);
    XXH3_64bits_update(st, zeros, 8);
    XXH3_64bits_update(st, region + P3N_HASH_FIELD + 8, n - P3N_HASH_FIELD - 8);
    uint64_t h = XXH3_64bits_digest(st);
    XXH3_freeState(st);
    return h;
}

/* A region [off, off + len) lies inside [lo, hi). */
static bool region_inside(uint64_t off, uint64_t len, uint64_t lo, uint64_t hi) {
    uint64_t end;
    return off >= lo && p3_add_u64(off, len, &end) && end <= hi;
}

/* ---- config section */

static p3_status parse_config(const uint8_t *p, size_t n, const char *what, p3_config *cfg,
                              p3_error *err) {
    cursor c = {p, n, false};
    memset(cfg, 0, sizeof *cfg);
    bool name_ok = get_name(&c, cfg->architecture, sizeof cfg->architecture);
    int32_t *ints[] = {&cfg->hidden_size,
                       &cfg->num_layers,
                       &cfg->num_heads,
                       &cfg->num_kv_heads,
                       &cfg->head_dim,
                       &cfg->intermediate_size,
                       &cfg->vocab_size,
                       &cfg->max_position_embeddings,
                       &cfg->original_max_position_embeddings};
    for (size_t i = 0; i < P3_ARRAY_LEN(ints); i++) *ints[i] = get_i32(&c);
    cfg->rms_norm_eps = get_f32(&c);
    uint32_t rope_type = get_u32(&c);
    cfg->rope.theta = get_f32(&c);
    cfg->rope.partial_rotary_factor = get_f32(&c);
    cfg->rope.rot_dim = get_i32(&c);
    cfg->rope.n_factors = get_i32(&c);
    cfg->rope.attn_factor = get_f32(&c);
    if (c.bad || !name_ok)
        return p3_fail(err, PHI3C_ERR_FORMAT, "%s: config section truncated or unterminated", what);
    if (rope_type > P3_ROPE_LONGROPE || cfg->rope.n_factors < 0 ||
        cfg->rope.n_factors > P3_MAX_ROPE_FACTORS)
        return p3_fail(err, PHI3C_ERR_FORMAT, "%s: bad rope type %u or %d factors", what, rope_type,
                       cfg->rope.n_factors);
    cfg->rope.type = (p3_rope_type)rope_type;
    for (int i = 0; i < cfg->rope.n_factors; i++) cfg->rope.short_factor[i] = get_f32(&c);
    for (int i = 0; i < cfg->rope.n_factors; i++) cfg->rope.long_factor[i] = get_f32(&c);
    cfg->sliding_window = get_i32(&c);
    cfg->tie_word_embeddings = get_u32(&c) != 0;
    cfg->bos_id = get_i32(&c);
    cfg->eos_id = get_i32(&c);
    cfg->pad_id = get_i32(&c);
    cfg->n_stop_ids = get_i32(&c);
    if (c.bad || cfg->n_stop_ids < 0 || cfg->n_stop_ids > P3_MAX_STOP_IDS)
        return p3_fail(err, PHI3C_ERR_FORMAT, "%s: config section truncated or bad stop ids", what);
    for (int i = 0; i < cfg->n_stop_ids; i++) cfg->stop_ids[i] = get_i32(&c);
    if (c.bad) return p3_fail(err, PHI3C_ERR_FORMAT, "%s: config section truncated", what);
    return p3n_check_config(cfg, what, err);
}

p3_status p3n_check_config(const p3_config *cfg, const char *what, p3_error *err) {
    const struct {
        const char *name;
        int v, lo, hi;
    } r[] = {
        {"hidden_size", cfg->hidden_size, 1, 1 << 16},
        {"num_hidden_layers", cfg->num_layers, 1, 1024},
        {"num_attention_heads", cfg->num_heads, 1, 1024},
        {"num_key_value_heads", cfg->num_kv_heads, 1, cfg->num_heads},
        {"head_dim", cfg->head_dim, 1, 2 * P3_MAX_ROPE_FACTORS},
        {"intermediate_size", cfg->intermediate_size, 1, 1 << 20},
        {"vocab_size", cfg->vocab_size, 1, 1 << 22},
        {"max_position_embeddings", cfg->max_position_embeddings, 1, 1 << 24},
        {"original_max_position_embeddings", cfg->original_max_position_embeddings, 1, 1 << 24},
        {"rot_dim", cfg->rope.rot_dim, 2, cfg->head_dim},
        {"sliding_window", cfg->sliding_window, 0, 1 << 30},
    };
    for (size_t i = 0; i < P3_ARRAY_LEN(r); i++)
        if (r[i].v < r[i].lo || r[i].v > r[i].hi)
            return p3_fail(err, PHI3C_ERR_FORMAT, "%s: config %s = %d out of range [%d, %d]", what,
                           r[i].name, r[i].v, r[i].lo, r[i].hi);
    if (cfg->num_heads % cfg->num_kv_heads != 0 || cfg->rope.rot_dim % 2 != 0)
        return p3_fail(err, PHI3C_ERR_FORMAT, "%s: config heads %d/%d or rot_dim %d inconsistent",
                       what, cfg->num_heads, cfg->num_kv_heads, cfg->rope.rot_dim);
    int want_factors = cfg->rope.type == P3_ROPE_LONGROPE ? cfg->rope.rot_dim / 2 : 0;
    if (cfg->rope.n_factors != want_factors)
        return p3_fail(err, PHI3C_ERR_FORMAT, "%s: %d rope factors, expected %d", what,
                       cfg->rope.n_factors, want_factors);
    if (!(cfg->rms_norm_eps > 0.0f) || !isfinite(cfg->rope.theta) || !(cfg->rope.theta > 0.0f) ||
        !isfinite(cfg->rope.attn_factor))
        return p3_fail(err, PHI3C_ERR_FORMAT, "%s: config eps/theta/attn_factor invalid", what);
    return PHI3C_OK;
}

/* ---- tables */

typedef struct named_index {
    const char *name;
    size_t index;
} named_index;

static int compare_names(const void *a, const void *b) {
    return strcmp(((const named_index *)a)->name, ((const named_index *)b)->name);
}

/* Names must be unique: sort a list of pointers and compare neighbours (n log n on hostile n). */
static p3_status check_unique(const char *const *names, size_t n, const char *kind,
                              const char *what, p3_error *err) {
    if (n < 2) return PHI3C_OK;
    named_index *v = p3_malloc(n * sizeof *v);
    if (!v) return p3_fail(err, PHI3C_ERR_NOMEM, "%s: out of memory", what);
    for (size_t i = 0; i < n; i++) v[i] = (named_index){names[i], i};
    qsort(v, n, sizeof *v, compare_names);
    p3_status st = PHI3C_OK;
    for (size_t i = 1; i < n && st == PHI3C_OK; i++)
        if (strcmp(v[i - 1].name, v[i].name) == 0)
            st = p3_fail(err, PHI3C_ERR_FORMAT, "%s: %s '%s' appears twice", what, kind, v[i].name);
    p3_free(v);
    return st;
}

typedef struct region_entry {
    uint64_t offset, nbytes, hash;
} region_entry;

/* Regions must be 64-byte aligned, inside the data section, and in increasing order without
 * overlap (blobs first, then tensors, as the writer lays them out). */
static p3_status check_region(const region_entry *r, uint64_t *cursor_end, const p3n_header *h,
                              const char *kind, const char *name, const char *what, p3_error *err) {
    if (r->offset % P3N_ALIGN != 0 || r->offset < *cursor_end ||
        !region_inside(r->offset, r->nbytes, h->data_offset, h->file_bytes))
        return p3_fail(err, PHI3C_ERR_FORMAT,
                       "%s: %s '%s' at offset %llu (+%llu bytes) is misaligned, overlapping or "
                       "outside the file",
                       what, kind, name, (unsigned long long)r->offset,
                       (unsigned long long)r->nbytes);
    *cursor_end = r->offset + r->nbytes;
    return PHI3C_OK;
}

static p3_status parse_blobs(const uint8_t *data, const p3n_header *h, const char *what,
                             p3_native *nat, region_entry *regs, uint64_t *end, p3_error *err) {
    if (h->n_blobs == 0) return PHI3C_OK;
    nat->blobs = p3_calloc(h->n_blobs, sizeof *nat->blobs);
    const char **names = p3_calloc(h->n_blobs, sizeof *names);
    p3_status st = PHI3C_OK;
    if (!nat->blobs || !names) {
        p3_free(names);
        return p3_fail(err, PHI3C_ERR_NOMEM, "%s: out of memory for %u blobs", what, h->n_blobs);
    }
    nat->n_blobs = h->n_blobs;
    for (uint32_t i = 0; i < h->n_blobs && st == PHI3C_OK; i++) {
        cursor c = {data + h->blob_table_offset + (uint64_t)i * h->blob_entry_bytes,
                    h->blob_entry_bytes, false};
        p3_native_blob *b = &nat->blobs[i];
        if (!get_name(&c, b->name, sizeof b->name) || !b->name[0]) {
            st = p3_fail(err, PHI3C_ERR_FORMAT, "%s: blob %u has no valid name", what, i);
            break;
        }
        regs[i].offset = get_u64(&c);
        regs[i].nbytes = get_u64(&c);
        regs[i].hash = get_u64(&c);
        st = check_region(&regs[i], end, h, "blob", b->name, what, err);
        if (st != PHI3C_OK) break; /* the offset may point anywhere: no pointer from it */
        b->data = data + regs[i].offset;
        b->size = (size_t)regs[i].nbytes;
        names[i] = b->name;
    }
    if (st == PHI3C_OK) st = check_unique(names, h->n_blobs, "blob", what, err);
    p3_free(names);
    return st;
}

static p3_status parse_tensor(cursor *c, const uint8_t *data, const p3n_header *h, const char *what,
                              p3_tensor *t, region_entry *reg, uint64_t *end, p3_error *err) {
    if (!get_name(c, t->hf_name, sizeof t->hf_name) || !t->hf_name[0])
        return p3_fail(err, PHI3C_ERR_FORMAT, "%s: a tensor has no valid name", what);
    memcpy(t->name, t->hf_name, sizeof t->name);
    uint32_t code = get_u32(c), n_dims = get_u32(c);
    for (int d = 0; d < P3_MAX_DIMS; d++) t->shape[d] = (int64_t)get_u64(c);
    reg->offset = get_u64(c);
    reg->nbytes = get_u64(c);
    reg->hash = get_u64(c);
    if (!dtype_from_code(code, &t->dtype))
        return p3_fail(err, PHI3C_ERR_FORMAT, "%s: tensor '%s' has unknown dtype code %u", what,
                       t->hf_name, code);
    uint64_t want;
    t->n_dims = (int)P3_MIN(n_dims, 99u);
    if (!p3n_tensor_bytes(t->dtype, t->n_dims, t->shape, &want) || want != reg->nbytes)
        return p3_fail(err, PHI3C_ERR_FORMAT,
                       "%s: tensor '%s' has a bad shape or its size %llu does not match it", what,
                       t->hf_name, (unsigned long long)reg->nbytes);
    p3_status st = check_region(reg, end, h, "tensor", t->hf_name, what, err);
    if (st != PHI3C_OK) return st; /* the offset may point anywhere: no pointer from it */
    t->data = data + reg->offset;
    t->nbytes = (size_t)reg->nbytes;
    return st;
}

static p3_status parse_tensors(const uint8_t *data, const p3n_header *h, const char *what,
                               p3_model_source *src, region_entry *regs, uint64_t *end,
                               p3_error *err) {
    if (h->n_tensors == 0) return PHI3C_OK;
    src->tensors = p3_calloc(h->n_tensors, sizeof *src->tensors);
    const char **names = p3_calloc(h->n_tensors, sizeof *names);
    if (!src->tensors || !names) {
        p3_free(names);
        return p3_fail(err, PHI3C_ERR_NOMEM, "%s: out of memory for %u tensors", what,
                       h->n_tensors);
    }
    src->n_tensors = h->n_tensors;
    p3_status st = PHI3C_OK;
    for (uint32_t i = 0; i < h->n_tensors && st == PHI3C_OK; i++) {
        cursor c = {data + h->tensor_table_offset + (uint64_t)i * h->tensor_entry_bytes,
                    h->tensor_entry_bytes, false};
        st = parse_tensor(&c, data, h, what, &src->tensors[i], &regs[i], end, err);
        names[i] = src->tensors[i].hf_name;
    }
    if (st == PHI3C_OK) st = check_unique(names, h->n_tensors, "tensor", what, err);
    p3_free(names);
    return st;
}

/* Checksum verification runs on several threads (XXH3 is compute-bound per core here); each
 * thread takes the next region from a shared counter and the lowest failing index is reported,
 * so the message does not depend on the thread count. */
enum { VERIFY_MAX_THREADS = 8 };

typedef struct verify_job {
    const uint8_t *data;
    const region_entry *regs;
    size_t n;
    atomic_size_t next;
    atomic_size_t first_bad; /* n when none */
} verify_job;

static void *verify_worker(void *arg) {
    verify_job *j = arg;
    for (size_t i; (i = atomic_fetch_add(&j->next, 1)) < j->n;) {
        if (XXH3_64bits(j->data + j->regs[i].offset, (size_t)j->regs[i].nbytes) == j->regs[i].hash)
            continue;
        size_t cur = atomic_load(&j->first_bad);
        while (i < cur && !atomic_compare_exchange_weak(&j->first_bad, &cur, i)) {
        }
    }
    return NULL;
}

static size_t verify_all(const uint8_t *data, const region_entry *regs, size_t n) {
    verify_job j = {.data = data, .regs = regs, .n = n};
    atomic_init(&j.next, 0);
    atomic_init(&j.first_bad, n);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int n_threads = (int)P3_MAX(1, P3_MIN(cpus, (long)VERIFY_MAX_THREADS));
    pthread_t tids[VERIFY_MAX_THREADS];
    int started = 0;
    for (int i = 1; i < n_threads && (size_t)i < n; i++)
        if (pthread_create(&tids[started], NULL, verify_worker, &j) == 0) started++;
    verify_worker(&j);
    for (int i = 0; i < started; i++) pthread_join(tids[i], NULL);
    return atomic_load(&j.first_bad);
}

/* Checks the XXH3-64 of every blob and tensor (regs: blobs, then tensors); names the first that
 * does not match. */
static p3_status verify_regions(const uint8_t *data, const region_entry *regs,
                                const p3_model_source *src, const p3_native *nat, const char *what,
                                p3_error *err) {
    size_t n = nat->n_blobs + src->n_tensors, bad = verify_all(data, regs, n);
    if (bad == n) return PHI3C_OK;
    if (bad < nat->n_blobs)
        return p3_fail(err, PHI3C_ERR_CHECKSUM,
                       "%s: checksum mismatch in blob '%s' (the file is corrupted)", what,
                       nat->blobs[bad].name);
    return p3_fail(err, PHI3C_ERR_CHECKSUM,
                   "%s: checksum mismatch in tensor '%s' (the file is corrupted)", what,
                   src->tensors[bad - nat->n_blobs].hf_name);
}

static p3_status check_tables_fit(const p3n_header *h, const char *what, p3_error *err) {
    uint64_t tbytes, bbytes;
    if (!p3_mul_u64(h->n_tensors, h->tensor_entry_bytes, &tbytes) ||
        !p3_mul_u64(h->n_blobs, h->blob_entry_bytes, &bbytes) ||
        !region_inside(h->config_offset, h->config_bytes, P3N_HEADER_BYTES, h->data_offset) ||
        !region_inside(h->tensor_table_offset, tbytes, P3N_HEADER_BYTES, h->data_offset) ||
        !region_inside(h->blob_table_offset, bbytes, P3N_HEADER_BYTES, h->data_offset))
        return p3_fail(err, PHI3C_ERR_FORMAT,
                       "%s: config or tables lie outside the header region (%llu bytes)", what,
                       (unsigned long long)h->data_offset);
    return PHI3C_OK;
}

static p3_status parse_all(const uint8_t *data, size_t size, const char *what, bool verify,
                           p3_model_source *src, p3_error *err) {
    p3n_header h;
    p3_status st = p3n_parse_header(data, size, what, &h, err);
    if (st == PHI3C_OK) st = check_tables_fit(&h, what, err);
    if (st != PHI3C_OK) return st;
    if (p3n_header_hash(data, (size_t)h.data_offset) != h.header_hash)
        return p3_fail(err, PHI3C_ERR_CHECKSUM,
                       "%s: header checksum mismatch (header, config or tables corrupted)", what);
    p3_native *nat = p3_calloc(1, sizeof *nat);
    region_entry *regs = p3_calloc((size_t)h.n_blobs + h.n_tensors + 1, sizeof *regs);
    src->native = nat;
    if (!nat || !regs) {
        p3_free(regs);
        return p3_fail(err, PHI3C_ERR_NOMEM, "%s: out of memory", what);
    }
    *nat = (p3_native){.version_major = h.version_major,
                       .version_minor = h.version_minor,
                       .group_size = h.group_size,
                       .asym = (h.flags & P3N_FLAG_ASYM) != 0,
                       .quant_method = h.quant_method,
                       .header_hash = h.header_hash};
    uint64_t end = h.data_offset;
    st = parse_config(data + h.config_offset, (size_t)h.config_bytes, what, &src->config, err);
    if (st == PHI3C_OK) st = parse_blobs(data, &h, what, nat, regs, &end, err);
    if (st == PHI3C_OK) st = parse_tensors(data, &h, what, src, regs + h.n_blobs, &end, err);
    if (st == PHI3C_OK && verify) {
        double t0 = p3_time_now();
        st = verify_regions(data, regs, src, nat, what, err);
        nat->verify_ms = (p3_time_now() - t0) * 1e3;
        nat->verified = st == PHI3C_OK;
    }
    p3_free(regs);
    return st;
}

static p3_status new_source(const char *what, p3_model_source **out, p3_error *err) {
    p3_model_source *src = p3_calloc(1, sizeof *src);
    if (src) src->path = p3_strdup(what);
    if (!src || !src->path) {
        p3_free(src);
        return p3_fail(err, PHI3C_ERR_NOMEM, "%s: out of memory", what);
    }
    src->format = P3_FORMAT_PHI3C;
    src->has_config = true;
    *out = src;
    return PHI3C_OK;
}

p3_status p3_native_open_memory(const uint8_t *data, size_t size, const char *what, bool verify,
                                p3_model_source **out, p3_error *err) {
    *out = NULL;
    p3_model_source *src = NULL;
    p3_status st = new_source(what, &src, err);
    if (st != PHI3C_OK) return st;
    st = parse_all(data, size, what, verify, src, err);
    if (st != PHI3C_OK) {
        p3_native_close(src);
        return st;
    }
    src->file_bytes = size;
    *out = src;
    return PHI3C_OK;
}

p3_status p3_native_open(const char *path, bool verify, p3_model_source **out, p3_error *err) {
    *out = NULL;
    p3_mapped_file *file = p3_calloc(1, sizeof *file);
    if (!file) return p3_fail(err, PHI3C_ERR_NOMEM, "%s: out of memory", path);
    p3_status st = p3_file_map(file, path, err);
    if (st != PHI3C_OK) {
        p3_free(file);
        return st;
    }
    p3_model_source *src = NULL;
    st = p3_native_open_memory(file->data, file->size, path, verify, &src, err);
    if (st != PHI3C_OK) {
        p3_file_unmap(file);
        p3_free(file);
        return st;
    }
    src->files = file;
    src->n_files = 1;
    *out = src;
    return PHI3C_OK;
}

void p3_native_free(p3_native *n) {
    if (!n) return;
    p3_free(n->blobs);
    p3_free_aligned(n->owned_image);
    p3_free(n);
}

void p3_native_close(p3_model_source *src) {
    if (!src) return;
    for (size_t i = 0; i < src->n_files; i++) p3_file_unmap(&src->files[i]);
    p3_free(src->files);
    p3_free(src->tensors);
    p3_free(src->path);
    p3_free(src->tokenizer_dir);
    p3_native_free(src->native);
    p3_free(src);
}

const p3_native_blob *p3_native_find_blob(const p3_native *n, const char *name) {
    if (!n) return NULL;
    for (size_t i = 0; i < n->n_blobs; i++)
        if (strcmp(n->blobs[i].name, name) == 0) return &n->blobs[i];
    return NULL;
}
