/* gguf.c: the GGUF v2/v3 container (llama.cpp's format): header, metadata, tensor infos, data
 * section; no model knowledge (gguf_phi3.c maps Phi-3 names and keys). Every count and length is
 * checked against the bytes left before anything is allocated, so a hostile file costs at most a
 * small multiple of its own size. */
#include "gguf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { GGUF_DEFAULT_ALIGNMENT = 32, GGUF_MAX_ARRAY_DEPTH = 8, GGUF_MAX_DIMS = 4 };

/* ---- allocations owned by a p3_gguf: a list of blocks freed together ---- */

typedef struct gguf_block {
    struct gguf_block *next;
    _Alignas(16) unsigned char data[];
} gguf_block;

static void *gguf_alloc(p3_gguf *g, size_t size) {
    size_t total;
    if (!p3_add_size(sizeof(gguf_block), size, &total)) return NULL;
    gguf_block *b = p3_malloc(total);
    if (!b) return NULL;
    b->next = g->arena;
    g->arena = b;
    return b->data;
}

void p3_gguf_free(p3_gguf *g) {
    if (!g) return;
    gguf_block *b = g->arena;
    while (b) {
        gguf_block *next = b->next;
        p3_free(b);
        b = next;
    }
    p3_free(g);
}

/* ---- names ---- */

static const char *const value_type_names[P3_GGUF_TYPE_COUNT] = {
    "UINT8", "INT8",   "UINT16", "INT16",  "UINT32", "INT32",   "FLOAT32",
    "BOOL",  "STRING", "ARRAY",  "UINT64", "INT64",  "FLOAT64",
};

const char *p3_gguf_type_name(p3_gguf_type type) {
    return (unsigned)type < P3_GGUF_TYPE_COUNT ? value_type_names[type] : "?";
}

static const char *const ggml_type_names[] = {
    [0] = "F32",       [1] = "F16",       [2] = "Q4_0",   [3] = "Q4_1",    [6] = "Q5_0",
    [7] = "Q5_1",      [8] = "Q8_0",      [9] = "Q8_1",   [10] = "Q2_K",   [11] = "Q3_K",
    [12] = "Q4_K",     [13] = "Q5_K",     [14] = "Q6_K",  [15] = "Q8_K",   [16] = "IQ2_XXS",
    [17] = "IQ2_XS",   [18] = "IQ3_XXS",  [19] = "IQ1_S", [20] = "IQ4_NL", [21] = "IQ3_S",
    [22] = "IQ2_S",    [23] = "IQ4_XS",   [24] = "I8",    [25] = "I16",    [26] = "I32",
    [27] = "I64",      [28] = "F64",      [29] = "IQ1_M", [30] = "BF16",   [31] = "Q4_0_4_4",
    [32] = "Q4_0_4_8", [33] = "Q4_0_8_8", [34] = "TQ1_0", [35] = "TQ2_0",  [39] = "MXFP4",
};

const char *p3_gguf_ggml_type_name(uint32_t t) {
    if (t < P3_ARRAY_LEN(ggml_type_names) && ggml_type_names[t]) return ggml_type_names[t];
    return "?";
}

static bool dtype_from_ggml(uint32_t t, p3_dtype *dtype) {
    switch (t) {
    case 0:
        *dtype = P3_DT_F32;
        return true;
    case 1:
        *dtype = P3_DT_F16;
        return true;
    case 2:
        *dtype = P3_DT_Q4_0;
        return true;
    case 8:
        *dtype = P3_DT_Q8_0;
        return true;
    case 12:
        *dtype = P3_DT_Q4_K;
        return true;
    case 13:
        *dtype = P3_DT_Q5_K;
        return true;
    case 14:
        *dtype = P3_DT_Q6_K;
        return true;
    case 26:
        *dtype = P3_DT_I32;
        return true;
    case 30:
        *dtype = P3_DT_BF16;
        return true;
    default:
        return false;
    }
}

/* ---- cursor over the file ---- */

typedef struct cursor {
    const uint8_t *data;
    size_t size, pos;
    const char *what;
    p3_error *err;
    p3_gguf *g;
} cursor;

static p3_status truncated(cursor *c, const char *where) {
    return p3_fail(c->err, PHI3C_ERR_FORMAT, "%s: truncated at byte %zu (in %s)", c->what, c->pos,
                   where);
}

static size_t left(const cursor *c) {
    return c->size - c->pos;
}

static uint64_t load_le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static p3_status read_u32(cursor *c, const char *where, uint32_t *out) {
    if (left(c) < 4) return truncated(c, where);
    *out = (uint32_t)load_le(c->data + c->pos, 4);
    c->pos += 4;
    return PHI3C_OK;
}

static p3_status read_u64(cursor *c, const char *where, uint64_t *out) {
    if (left(c) < 8) return truncated(c, where);
    *out = load_le(c->data + c->pos, 8);
    c->pos += 8;
    return PHI3C_OK;
}

static p3_status read_str(cursor *c, const char *where, p3_gguf_str *out) {
    size_t at = c->pos;
    uint64_t len;
    p3_status st = read_u64(c, where, &len);
    if (st != PHI3C_OK) return st;
    if (len > left(c))
        return p3_fail(c->err, PHI3C_ERR_FORMAT,
                       "%s: truncated or corrupt: string length %llu at byte %zu exceeds the %zu "
                       "bytes left (in %s)",
                       c->what, (unsigned long long)len, at, left(c), where);
    out->s = (const char *)c->data + c->pos;
    out->len = (size_t)len;
    c->pos += (size_t)len;
    return PHI3C_OK;
}

size_t p3_gguf_scalar_size(p3_gguf_type t) {
    switch (t) {
    case P3_GGUF_U8:
    case P3_GGUF_I8:
    case P3_GGUF_BOOL:
        return 1;
    case P3_GGUF_U16:
    case P3_GGUF_I16:
        return 2;
    case P3_GGUF_U32:
    case P3_GGUF_I32:
    case P3_GGUF_F32:
        return 4;
    case P3_GGUF_U64:
    case P3_GGUF_I64:
    case P3_GGUF_F64:
        return 8;
    default:
        return 0;
    }
}

/* Decodes a scalar of type t from p into v. */
static void decode_scalar(p3_gguf_type t, const uint8_t *p, p3_gguf_value *v) {
    v->type = t;
    uint64_t raw = load_le(p, (int)p3_gguf_scalar_size(t));
    switch (t) {
    case P3_GGUF_I8:
        v->v.i = (int8_t)raw;
        break;
    case P3_GGUF_I16:
        v->v.i = (int16_t)raw;
        break;
    case P3_GGUF_I32:
        v->v.i = (int32_t)raw;
        break;
    case P3_GGUF_I64:
        v->v.i = (int64_t)raw;
        break;
    case P3_GGUF_F32: {
        uint32_t bits = (uint32_t)raw;
        float f;
        memcpy(&f, &bits, 4);
        v->v.f = f;
        break;
    }
    case P3_GGUF_F64:
        memcpy(&v->v.f, &raw, 8);
        break;
    case P3_GGUF_BOOL:
        v->v.u = raw != 0;
        break;
    default:
        v->v.u = raw;
        break;
    }
}

static p3_status read_value(cursor *c, p3_gguf_type t, p3_gguf_value *v, int depth);

static p3_status read_array(cursor *c, p3_gguf_value *v, int depth) {
    size_t at = c->pos;
    uint32_t elem;
    uint64_t count;
    p3_status st = read_u32(c, "array type", &elem);
    if (st == PHI3C_OK) st = read_u64(c, "array length", &count);
    if (st != PHI3C_OK) return st;
    if (elem >= P3_GGUF_TYPE_COUNT)
        return p3_fail(c->err, PHI3C_ERR_FORMAT, "%s: unknown array element type %u at byte %zu",
                       c->what, elem, at);
    if (depth >= GGUF_MAX_ARRAY_DEPTH)
        return p3_fail(c->err, PHI3C_ERR_FORMAT, "%s: arrays nested deeper than %d at byte %zu",
                       c->what, GGUF_MAX_ARRAY_DEPTH, at);
    /* smallest encoding of one element: a scalar's size, 8 bytes of string length, 12 bytes of
     * nested array header: more elements than that would fit is an absurd count */
    size_t min_elem = elem == P3_GGUF_STRING  ? 8
                      : elem == P3_GGUF_ARRAY ? 12
                                              : p3_gguf_scalar_size(elem);
    if (count > left(c) / min_elem)
        return p3_fail(c->err, PHI3C_ERR_FORMAT,
                       "%s: array of %llu %s at byte %zu cannot fit in the %zu bytes left", c->what,
                       (unsigned long long)count, p3_gguf_type_name(elem), at, left(c));
    v->type = P3_GGUF_ARRAY;
    v->v.arr.elem = elem;
    v->v.arr.count = (size_t)count;
    v->v.arr.data = c->data + c->pos;
    if (elem != P3_GGUF_STRING && elem != P3_GGUF_ARRAY) {
        c->pos += (size_t)count * min_elem;
        return PHI3C_OK;
    }
    if (elem == P3_GGUF_STRING) {
        p3_gguf_str *strs = gguf_alloc(c->g, (size_t)count * sizeof *strs);
        if (!strs && count) return p3_fail(c->err, PHI3C_ERR_NOMEM, "%s: out of memory", c->what);
        for (size_t i = 0; i < count; i++)
            if ((st = read_str(c, "string array", &strs[i])) != PHI3C_OK) return st;
        v->v.arr.strings = strs;
        return PHI3C_OK;
    }
    p3_gguf_value *items = gguf_alloc(c->g, (size_t)count * sizeof *items);
    if (!items && count) return p3_fail(c->err, PHI3C_ERR_NOMEM, "%s: out of memory", c->what);
    for (size_t i = 0; i < count; i++) {
        memset(&items[i], 0, sizeof items[i]);
        if ((st = read_array(c, &items[i], depth + 1)) != PHI3C_OK) return st;
    }
    v->v.arr.items = items;
    return PHI3C_OK;
}

static p3_status read_value(cursor *c, p3_gguf_type t, p3_gguf_value *v, int depth) {
    memset(v, 0, sizeof *v);
    if (t == P3_GGUF_STRING) {
        v->type = t;
        return read_str(c, "string value", &v->v.str);
    }
    if (t == P3_GGUF_ARRAY) return read_array(c, v, depth);
    size_t n = p3_gguf_scalar_size(t);
    if (left(c) < n) return truncated(c, "metadata value");
    decode_scalar(t, c->data + c->pos, v);
    c->pos += n;
    return PHI3C_OK;
}

/* ---- header, metadata, tensor infos ---- */

static p3_status read_header(cursor *c, uint64_t *n_tensors, uint64_t *n_kvs) {
    if (c->size == 0) return p3_fail(c->err, PHI3C_ERR_FORMAT, "%s: empty file", c->what);
    if (c->size < 4 || memcmp(c->data, "GGUF", 4) != 0)
        return p3_fail(c->err, PHI3C_ERR_FORMAT, "%s: not a GGUF file (no GGUF magic)", c->what);
    c->pos = 4;
    uint32_t version;
    p3_status st = read_u32(c, "header", &version);
    if (st != PHI3C_OK) return st;
    if (version == 0x02000000u || version == 0x03000000u)
        return p3_fail(c->err, PHI3C_ERR_UNSUPPORTED, "%s: big-endian GGUF is not supported",
                       c->what);
    if (version != 2 && version != 3)
        return p3_fail(c->err, PHI3C_ERR_UNSUPPORTED,
                       "%s: GGUF version %u is not supported (2 and 3 are)", c->what, version);
    c->g->version = version;
    st = read_u64(c, "header", n_tensors);
    if (st == PHI3C_OK) st = read_u64(c, "header", n_kvs);
    if (st != PHI3C_OK) return st;
    /* a key/value takes >= 13 bytes (8 length + 4 type + 1 value), a tensor info >= 32 */
    if (*n_kvs > left(c) / 13)
        return p3_fail(c->err, PHI3C_ERR_FORMAT,
                       "%s: %llu metadata entries cannot fit in %zu "
                       "bytes",
                       c->what, (unsigned long long)*n_kvs, c->size);
    if (*n_tensors > left(c) / 32)
        return p3_fail(c->err, PHI3C_ERR_FORMAT, "%s: %llu tensors cannot fit in %zu bytes",
                       c->what, (unsigned long long)*n_tensors, c->size);
    return PHI3C_OK;
}

static int compare_kv_keys(const void *a, const void *b) {
    const p3_gguf_str *x = &(*(const p3_gguf_kv *const *)a)->key;
    const p3_gguf_str *y = &(*(const p3_gguf_kv *const *)b)->key;
    int d = memcmp(x->s, y->s, P3_MIN(x->len, y->len));
    return d ? d : (x->len > y->len) - (x->len < y->len);
}

/* Refuses duplicate keys (which one would count?); sorting keeps hostile files O(n log n). */
static p3_status check_unique_keys(cursor *c) {
    p3_gguf *g = c->g;
    if (g->n_kvs < 2) return PHI3C_OK;
    const p3_gguf_kv **sorted = p3_malloc(g->n_kvs * sizeof *sorted);
    if (!sorted) return p3_fail(c->err, PHI3C_ERR_NOMEM, "%s: out of memory", c->what);
    for (size_t i = 0; i < g->n_kvs; i++) sorted[i] = &g->kvs[i];
    qsort(sorted, g->n_kvs, sizeof *sorted, compare_kv_keys);
    p3_status st = PHI3C_OK;
    for (size_t i = 1; i < g->n_kvs && st == PHI3C_OK; i++)
        if (compare_kv_keys(&sorted[i - 1], &sorted[i]) == 0)
            st = p3_fail(c->err, PHI3C_ERR_FORMAT, "%s: metadata key %.*s appears twice", c->what,
                         (int)P3_MIN(sorted[i]->key.len, 128), sorted[i]->key.s);
    p3_free(sorted);
    return st;
}

static p3_status read_metadata(cursor *c, uint64_t n_kvs) {
    p3_gguf *g = c->g;
    g->kvs = gguf_alloc(g, (size_t)(n_kvs ? n_kvs : 1) * sizeof *g->kvs);
    if (!g->kvs) return p3_fail(c->err, PHI3C_ERR_NOMEM, "%s: out of memory", c->what);
    for (size_t i = 0; i < n_kvs; i++) {
        p3_gguf_kv *kv = &g->kvs[i];
        size_t at = c->pos;
        uint32_t type;
        p3_status st = read_str(c, "metadata key", &kv->key);
        if (st == PHI3C_OK && (kv->key.len == 0 || !p3_utf8_valid(kv->key.s, kv->key.len)))
            st = p3_fail(c->err, PHI3C_ERR_FORMAT,
                         "%s: metadata key at byte %zu is empty or not valid UTF-8", c->what, at);
        if (st == PHI3C_OK) st = read_u32(c, "metadata type", &type);
        if (st == PHI3C_OK && type >= P3_GGUF_TYPE_COUNT)
            st = p3_fail(c->err, PHI3C_ERR_FORMAT, "%s: metadata %.*s has unknown type %u", c->what,
                         (int)P3_MIN(kv->key.len, 128), kv->key.s, type);
        if (st == PHI3C_OK) st = read_value(c, (p3_gguf_type)type, &kv->value, 0);
        if (st != PHI3C_OK) return st;
        g->n_kvs = i + 1;
    }
    return check_unique_keys(c);
}

static p3_status read_alignment(cursor *c) {
    const p3_gguf_kv *kv = p3_gguf_find(c->g, "general.alignment");
    c->g->alignment = GGUF_DEFAULT_ALIGNMENT;
    if (!kv) return PHI3C_OK;
    uint64_t a = kv->value.v.u;
    if (kv->value.type != P3_GGUF_U32 || a == 0 || (a & (a - 1)) || a > (1u << 20))
        return p3_fail(c->err, PHI3C_ERR_FORMAT,
                       "%s: general.alignment must be a UINT32 power of two (<= 1 MiB)", c->what);
    c->g->alignment = (size_t)a;
    return PHI3C_OK;
}

/* Reads the info of tensor i; its data is checked once the data section is known. */
static p3_status read_tensor_info(cursor *c, p3_tensor *t, uint64_t *offset) {
    memset(t, 0, sizeof *t);
    size_t at = c->pos;
    p3_gguf_str name;
    uint32_t n_dims, type;
    p3_status st = read_str(c, "tensor name", &name);
    if (st != PHI3C_OK) return st;
    if (name.len == 0 || name.len >= P3_TENSOR_NAME_MAX || !p3_utf8_valid(name.s, name.len) ||
        memchr(name.s, '\0', name.len))
        return p3_fail(c->err, PHI3C_ERR_FORMAT,
                       "%s: tensor name at byte %zu is empty, longer "
                       "than %d bytes or not UTF-8",
                       c->what, at, P3_TENSOR_NAME_MAX - 1);
    memcpy(t->name, name.s, name.len);
    if ((st = read_u32(c, "tensor dims", &n_dims)) != PHI3C_OK) return st;
    if (n_dims == 0 || n_dims > GGUF_MAX_DIMS)
        return p3_fail(c->err, PHI3C_ERR_FORMAT, "%s: tensor %s has %u dimensions (1..%d)", c->what,
                       t->name, n_dims, GGUF_MAX_DIMS);
    t->n_dims = (int)n_dims;
    for (uint32_t d = 0; d < n_dims; d++) {
        uint64_t ne;
        if ((st = read_u64(c, "tensor dims", &ne)) != PHI3C_OK) return st;
        if (ne == 0 || ne > (uint64_t)INT64_MAX)
            return p3_fail(c->err, PHI3C_ERR_FORMAT, "%s: tensor %s: dimension %u is %llu", c->what,
                           t->name, d, (unsigned long long)ne);
        t->shape[n_dims - 1 - d] = (int64_t)ne; /* ggml lists innermost first; HF outermost */
    }
    if ((st = read_u32(c, "tensor type", &type)) != PHI3C_OK) return st;
    if (!dtype_from_ggml(type, &t->dtype)) {
        const char *tn = p3_gguf_ggml_type_name(type);
        if (strcmp(tn, "?") == 0)
            return p3_fail(c->err, PHI3C_ERR_FORMAT, "%s: tensor %s has unknown type %u", c->what,
                           t->name, type);
        return p3_fail(c->err, PHI3C_ERR_UNSUPPORTED,
                       "%s: tensor %s has type %s; phi3c reads F32, F16, BF16, Q8_0, Q4_0, Q4_K, "
                       "Q5_K and Q6_K",
                       c->what, t->name, tn);
    }
    snprintf(t->hf_name, sizeof t->hf_name, "%s", t->name); /* gguf_phi3.c maps it */
    return read_u64(c, "tensor offset", offset);
}

/* Size in bytes of a tensor's data from its type and shape, with every product checked. */
static p3_status tensor_bytes(cursor *c, p3_tensor *t) {
    size_t row_bytes;
    uint64_t rows = 1, total;
    for (int d = 0; d + 1 < t->n_dims; d++)
        if (!p3_mul_u64(rows, (uint64_t)t->shape[d], &rows))
            return p3_fail(c->err, PHI3C_ERR_FORMAT, "%s: tensor %s: shape product overflows",
                           c->what, t->name);
    if (!p3_dtype_row_bytes(t->dtype, t->shape[t->n_dims - 1], &row_bytes))
        return p3_fail(c->err, PHI3C_ERR_FORMAT,
                       "%s: tensor %s: a row of %lld %s elements is not whole blocks or its size "
                       "overflows",
                       c->what, t->name, (long long)t->shape[t->n_dims - 1],
                       p3_dtype_name(t->dtype));
    if (!p3_mul_u64(rows, row_bytes, &total) || total > SIZE_MAX)
        return p3_fail(c->err, PHI3C_ERR_FORMAT, "%s: tensor %s: byte size overflows", c->what,
                       t->name);
    t->nbytes = (size_t)total;
    return PHI3C_OK;
}

typedef struct placed {
    uint64_t begin, end;
    size_t index;
} placed;

static int compare_placed(const void *a, const void *b) {
    const placed *x = a, *y = b;
    return (x->begin > y->begin) - (x->begin < y->begin);
}

static int compare_names(const void *a, const void *b) {
    return strcmp(((const p3_tensor *)a)->name, ((const p3_tensor *)b)->name);
}

/* Offsets aligned, inside the data section, no overlaps, no duplicate names. */
static p3_status place_tensors(cursor *c, placed *pl, size_t n) {
    p3_gguf *g = c->g;
    uint64_t data_size = c->size > g->data_offset ? c->size - g->data_offset : 0;
    if (n && g->data_offset > c->size)
        return p3_fail(c->err, PHI3C_ERR_FORMAT,
                       "%s: truncated: the tensor data section would "
                       "start at byte %llu of %zu",
                       c->what, (unsigned long long)g->data_offset, c->size);
    for (size_t i = 0; i < n; i++) {
        p3_tensor *t = &g->tensors[i];
        p3_status st = tensor_bytes(c, t);
        if (st != PHI3C_OK) return st;
        if (pl[i].begin % g->alignment)
            return p3_fail(c->err, PHI3C_ERR_FORMAT,
                           "%s: tensor %s: offset %llu is not a multiple of the alignment %zu",
                           c->what, t->name, (unsigned long long)pl[i].begin, g->alignment);
        if (pl[i].begin > data_size || t->nbytes > data_size - pl[i].begin)
            return p3_fail(c->err, PHI3C_ERR_FORMAT,
                           "%s: tensor %s: data [%llu, +%zu) runs past "
                           "the end of the file (data section holds %llu bytes)",
                           c->what, t->name, (unsigned long long)pl[i].begin, t->nbytes,
                           (unsigned long long)data_size);
        pl[i].end = pl[i].begin + t->nbytes;
        t->data = c->data + g->data_offset + pl[i].begin;
    }
    qsort(pl, n, sizeof *pl, compare_placed);
    for (size_t i = 1; i < n; i++)
        if (pl[i].begin < pl[i - 1].end)
            return p3_fail(c->err, PHI3C_ERR_FORMAT, "%s: tensors %s and %s overlap", c->what,
                           g->tensors[pl[i - 1].index].name, g->tensors[pl[i].index].name);
    return PHI3C_OK;
}

static p3_status check_unique_tensors(cursor *c) {
    p3_gguf *g = c->g;
    p3_tensor *copy = p3_malloc((g->n_tensors ? g->n_tensors : 1) * sizeof *copy);
    if (!copy) return p3_fail(c->err, PHI3C_ERR_NOMEM, "%s: out of memory", c->what);
    memcpy(copy, g->tensors, g->n_tensors * sizeof *copy);
    qsort(copy, g->n_tensors, sizeof *copy, compare_names);
    p3_status st = PHI3C_OK;
    for (size_t i = 1; i < g->n_tensors && st == PHI3C_OK; i++)
        if (strcmp(copy[i - 1].name, copy[i].name) == 0)
            st = p3_fail(c->err, PHI3C_ERR_FORMAT, "%s: tensor %s appears twice", c->what,
                         copy[i].name);
    p3_free(copy);
    return st;
}

static p3_status read_tensors(cursor *c, uint64_t n) {
    p3_gguf *g = c->g;
    g->tensors = gguf_alloc(g, (size_t)(n ? n : 1) * sizeof *g->tensors);
    placed *pl = p3_malloc((size_t)(n ? n : 1) * sizeof *pl);
    p3_status st = PHI3C_OK;
    if (!g->tensors || !pl) st = p3_fail(c->err, PHI3C_ERR_NOMEM, "%s: out of memory", c->what);
    for (size_t i = 0; i < n && st == PHI3C_OK; i++) {
        st = read_tensor_info(c, &g->tensors[i], &pl[i].begin);
        pl[i].index = i;
        g->n_tensors = i + 1;
    }
    if (st == PHI3C_OK) {
        uint64_t a = g->alignment;
        g->data_offset = ((uint64_t)c->pos + a - 1) / a * a;
        st = place_tensors(c, pl, (size_t)n);
    }
    if (st == PHI3C_OK) st = check_unique_tensors(c);
    p3_free(pl);
    return st;
}

p3_status p3_gguf_parse(const uint8_t *data, size_t size, const char *what, p3_gguf **out,
                        p3_error *err) {
    *out = NULL;
    p3_gguf *g = p3_calloc(1, sizeof *g);
    if (!g) return p3_fail(err, PHI3C_ERR_NOMEM, "%s: out of memory", what);
    cursor c = {.data = data, .size = data ? size : 0, .what = what, .err = err, .g = g};
    uint64_t n_tensors = 0, n_kvs = 0;
    p3_status st = read_header(&c, &n_tensors, &n_kvs);
    if (st == PHI3C_OK) st = read_metadata(&c, n_kvs);
    if (st == PHI3C_OK) st = read_alignment(&c);
    if (st == PHI3C_OK) st = read_tensors(&c, n_tensors);
    if (st != PHI3C_OK) {
        p3_gguf_free(g);
        return st;
    }
    *out = g;
    return PHI3C_OK;
}

/* ---- metadata access ---- */

const p3_gguf_kv *p3_gguf_find(const p3_gguf *g, const char *key) {
    if (!g || !key) return NULL;
    size_t len = strlen(key);
    for (size_t i = 0; i < g->n_kvs; i++)
        if (g->kvs[i].key.len == len && memcmp(g->kvs[i].key.s, key, len) == 0) return &g->kvs[i];
    return NULL;
}

static bool value_int(const p3_gguf_value *v, int64_t *out) {
    switch (v->type) {
    case P3_GGUF_U8:
    case P3_GGUF_U16:
    case P3_GGUF_U32:
    case P3_GGUF_U64:
        if (v->v.u > (uint64_t)INT64_MAX) return false;
        *out = (int64_t)v->v.u;
        return true;
    case P3_GGUF_I8:
    case P3_GGUF_I16:
    case P3_GGUF_I32:
    case P3_GGUF_I64:
        *out = v->v.i;
        return true;
    default:
        return false;
    }
}

static bool value_float(const p3_gguf_value *v, double *out) {
    int64_t i;
    if (v->type == P3_GGUF_F32 || v->type == P3_GGUF_F64) {
        *out = v->v.f;
        return true;
    }
    if (!value_int(v, &i)) return false;
    *out = (double)i;
    return true;
}

bool p3_gguf_get_int(const p3_gguf *g, const char *key, int64_t *out) {
    const p3_gguf_kv *kv = p3_gguf_find(g, key);
    return kv && value_int(&kv->value, out);
}

bool p3_gguf_get_float(const p3_gguf *g, const char *key, double *out) {
    const p3_gguf_kv *kv = p3_gguf_find(g, key);
    return kv && value_float(&kv->value, out);
}

bool p3_gguf_get_bool(const p3_gguf *g, const char *key, bool *out) {
    const p3_gguf_kv *kv = p3_gguf_find(g, key);
    if (!kv || kv->value.type != P3_GGUF_BOOL) return false;
    *out = kv->value.v.u != 0;
    return true;
}

bool p3_gguf_get_string(const p3_gguf *g, const char *key, p3_gguf_str *out) {
    const p3_gguf_kv *kv = p3_gguf_find(g, key);
    if (!kv || kv->value.type != P3_GGUF_STRING) return false;
    *out = kv->value.v.str;
    return true;
}

const p3_gguf_value *p3_gguf_get_array(const p3_gguf *g, const char *key) {
    const p3_gguf_kv *kv = p3_gguf_find(g, key);
    return kv && kv->value.type == P3_GGUF_ARRAY ? &kv->value : NULL;
}

size_t p3_gguf_array_len(const p3_gguf_value *arr) {
    return arr && arr->type == P3_GGUF_ARRAY ? arr->v.arr.count : 0;
}

bool p3_gguf_array_string(const p3_gguf_value *arr, size_t i, p3_gguf_str *out) {
    if (i >= p3_gguf_array_len(arr) || arr->v.arr.elem != P3_GGUF_STRING) return false;
    *out = arr->v.arr.strings[i];
    return true;
}

/* Element i of a numeric array as a scalar value. */
static bool array_scalar(const p3_gguf_value *arr, size_t i, p3_gguf_value *v) {
    if (i >= p3_gguf_array_len(arr)) return false;
    size_t n = p3_gguf_scalar_size(arr->v.arr.elem);
    if (!n) return false;
    decode_scalar(arr->v.arr.elem, arr->v.arr.data + i * n, v);
    return true;
}

bool p3_gguf_array_int(const p3_gguf_value *arr, size_t i, int64_t *out) {
    p3_gguf_value v;
    return array_scalar(arr, i, &v) && value_int(&v, out);
}

bool p3_gguf_array_float(const p3_gguf_value *arr, size_t i, double *out) {
    p3_gguf_value v;
    return array_scalar(arr, i, &v) && value_float(&v, out);
}

const p3_gguf_value *p3_gguf_array_item(const p3_gguf_value *arr, size_t i) {
    if (i >= p3_gguf_array_len(arr) || arr->v.arr.elem != P3_GGUF_ARRAY) return NULL;
    return &arr->v.arr.items[i];
}
