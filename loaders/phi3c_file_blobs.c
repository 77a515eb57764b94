/* phi3c_file_blobs.c: what a native file stores besides tensors: the source's tokenizer and
 * config files byte for byte (HF folders), a native source's own blobs, or for a GGUF source its
 * tokenizer metadata re-encoded as a tensor-free GGUF ("tokenizer.gguf"). */
#include "gguf.h"
#include "phi3c_file.h"
#include "phi3c_file_impl.h"

#include <stdio.h>
#include <string.h>

/* Files copied from a HF folder when present. */
static const char *const hf_files[] = {"tokenizer.json", "tokenizer_config.json",
                                       "generation_config.json", "tokenizer.model", "config.json"};

typedef struct blob_list {
    p3_native_blob *v;
    size_t n, cap;
} blob_list;

/* Takes ownership of data (a p3_malloc'd buffer). */
static p3_status push_blob(blob_list *l, const char *name, uint8_t *data, size_t size,
                           p3_error *err) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 8;
        p3_native_blob *v = p3_realloc(l->v, cap * sizeof *v);
        if (!v) {
            p3_free(data);
            return p3_fail(err, PHI3C_ERR_NOMEM, "out of memory for the tokenizer files");
        }
        l->v = v;
        l->cap = cap;
    }
    p3_native_blob *b = &l->v[l->n++];
    memset(b, 0, sizeof *b);
    snprintf(b->name, sizeof b->name, "%s", name);
    b->data = data;
    b->size = size;
    return PHI3C_OK;
}

static char *model_dir(const p3_model_source *src) {
    if (src->tokenizer_dir) return p3_strdup(src->tokenizer_dir);
    if (!src->path) return NULL;
    if (p3_is_directory(src->path)) return p3_strdup(src->path);
    const char *slash = strrchr(src->path, '/');
    if (!slash) return p3_strdup(".");
    size_t n = slash == src->path ? 1 : (size_t)(slash - src->path);
    char *d = p3_malloc(n + 1);
    if (d) {
        memcpy(d, src->path, n);
        d[n] = 0;
    }
    return d;
}

static p3_status gather_hf_files(const p3_model_source *src, blob_list *l, p3_error *err) {
    char *dir = model_dir(src);
    if (!dir) return PHI3C_OK;
    p3_status st = PHI3C_OK;
    for (size_t i = 0; i < P3_ARRAY_LEN(hf_files) && st == PHI3C_OK; i++) {
        char *path = p3_path_join(dir, hf_files[i]);
        if (!path) {
            st = p3_fail(err, PHI3C_ERR_NOMEM, "out of memory");
            break;
        }
        bool present = false;
        st = p3_file_probe(path, &present, err);
        if (st == PHI3C_OK && present) {
            char *data = NULL;
            size_t size = 0;
            st = p3_file_read_all(path, &data, &size, err);
            if (st == PHI3C_OK) st = push_blob(l, hf_files[i], (uint8_t *)data, size, err);
        }
        p3_free(path);
    }
    p3_free(dir);
    return st;
}

static p3_status copy_native_blobs(const p3_model_source *src, blob_list *l, p3_error *err) {
    for (size_t i = 0; i < src->native->n_blobs; i++) {
        const p3_native_blob *b = &src->native->blobs[i];
        uint8_t *copy = p3_malloc(P3_MAX(b->size, 1));
        if (!copy) return p3_fail(err, PHI3C_ERR_NOMEM, "out of memory");
        memcpy(copy, b->data, b->size);
        p3_status st = push_blob(l, b->name, copy, b->size, err);
        if (st != PHI3C_OK) return st;
    }
    return PHI3C_OK;
}

/* ---- GGUF tokenizer metadata, re-encoded as a GGUF v3 file with no tensors */

static void put_gguf_str(p3n_buf *b, p3_gguf_str s) {
    p3n_put_u64(b, s.len);
    p3n_put_bytes(b, s.s, s.len);
}

static void put_scalar(p3n_buf *b, const p3_gguf_value *v) {
    size_t n = p3_gguf_scalar_size(v->type);
    uint64_t bits = v->v.u;
    if (v->type == P3_GGUF_I8 || v->type == P3_GGUF_I16 || v->type == P3_GGUF_I32 ||
        v->type == P3_GGUF_I64)
        bits = (uint64_t)v->v.i;
    if (v->type == P3_GGUF_F32) {
        float f = (float)v->v.f;
        uint32_t u;
        memcpy(&u, &f, 4);
        bits = u;
    } else if (v->type == P3_GGUF_F64) {
        memcpy(&bits, &v->v.f, 8);
    }
    for (size_t i = 0; i < n; i++) {
        uint8_t byte = (uint8_t)(bits >> (8 * i));
        p3n_put_bytes(b, &byte, 1);
    }
}

/* Arrays nest at most a few levels in practice; the parser already bounded the depth. */
static void put_value(p3n_buf *b, const p3_gguf_value *v, bool with_type) {
    if (with_type) p3n_put_u32(b, (uint32_t)v->type);
    if (v->type == P3_GGUF_STRING) {
        put_gguf_str(b, v->v.str);
    } else if (v->type == P3_GGUF_ARRAY) {
        p3n_put_u32(b, (uint32_t)v->v.arr.elem);
        p3n_put_u64(b, v->v.arr.count);
        for (size_t i = 0; i < v->v.arr.count; i++) {
            if (v->v.arr.elem == P3_GGUF_STRING)
                put_gguf_str(b, v->v.arr.strings[i]);
            else if (v->v.arr.elem == P3_GGUF_ARRAY)
                put_value(b, &v->v.arr.items[i], false);
        }
        if (v->v.arr.elem != P3_GGUF_STRING && v->v.arr.elem != P3_GGUF_ARRAY)
            p3n_put_bytes(b, v->v.arr.data, v->v.arr.count * p3_gguf_scalar_size(v->v.arr.elem));
    } else {
        put_scalar(b, v);
    }
}

static bool is_tokenizer_key(p3_gguf_str k) {
    static const char prefix[] = "tokenizer.", arch[] = "general.architecture";
    return (k.len >= sizeof prefix - 1 && memcmp(k.s, prefix, sizeof prefix - 1) == 0) ||
           (k.len == sizeof arch - 1 && memcmp(k.s, arch, k.len) == 0);
}

/* A GGUF keeps its tokenizer in tokenizer.* metadata: those keys (and general.architecture)
 * become "tokenizer.gguf", a vocab-only GGUF the tokenizer loader reads from memory. */
static p3_status gather_gguf_tokenizer(const p3_model_source *src, blob_list *l, p3_error *err) {
    const p3_gguf *g = src->gguf;
    if (!g) return PHI3C_OK;
    uint64_t n_keys = 0;
    for (size_t i = 0; i < g->n_kvs; i++) n_keys += is_tokenizer_key(g->kvs[i].key);
    if (n_keys == 0) return PHI3C_OK;
    p3n_buf b = {0};
    p3n_put_bytes(&b, "GGUF", 4);
    p3n_put_u32(&b, 3);
    p3n_put_u64(&b, 0); /* tensors */
    p3n_put_u64(&b, n_keys);
    for (size_t i = 0; i < g->n_kvs; i++) {
        if (!is_tokenizer_key(g->kvs[i].key)) continue;
        put_gguf_str(&b, g->kvs[i].key);
        put_value(&b, &g->kvs[i].value, true);
    }
    p3n_put_zeros(&b, (32 - b.len % 32) % 32); /* default alignment of the (empty) data section */
    if (b.oom) {
        p3_free(b.p);
        return p3_fail(err, PHI3C_ERR_NOMEM, "%s: out of memory for the tokenizer", src->path);
    }
    return push_blob(l, "tokenizer.gguf", b.p, b.len, err);
}

p3_status p3_native_gather_blobs(const p3_model_source *src, p3_native_blob **blobs, size_t *n,
                                 p3_error *err) {
    blob_list l = {0};
    p3_status st;
    if (src->format == P3_FORMAT_PHI3C && src->native)
        st = copy_native_blobs(src, &l, err);
    else if (src->format == P3_FORMAT_GGUF)
        st = gather_gguf_tokenizer(src, &l, err);
    else
        st = gather_hf_files(src, &l, err);
    if (st != PHI3C_OK) {
        p3_native_blobs_free(l.v, l.n);
        return st;
    }
    *blobs = l.v;
    *n = l.n;
    return PHI3C_OK;
}

void p3_native_blobs_free(p3_native_blob *blobs, size_t n) {
    for (size_t i = 0; i < n; i++) p3_free((void *)blobs[i].data);
    p3_free(blobs);
}
