/* phi3c_file_blobs.c: what a native file stores besides tensors: the source's tokenizer and
 * config files byte for byte (HF folders), a native source's own blobs, or for a GGUF source its
 * tokenizer metadata re-encoded as a tensor-free GGUF ("tokenizer.gguf"). */
#include "phi3c_file.h"

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
        if (p3_file_exists(path)) {
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

/* A GGUF keeps its tokenizer in tokenizer.ggml.* metadata. */
static p3_status gather_gguf_tokenizer(const p3_model_source *src, blob_list *l, p3_error *err) {
    (void)src, (void)l, (void)err;
    return PHI3C_OK; /* re-encoding as tokenizer.gguf lands with the GGUF reader (loaders/gguf.h) */
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
