/* source.c: p3_source_open decides what a model path is (HF folder, GGUF, native phi3c file) and
 * hands it to the right loader; lookup by HF name and the check of the tensor set against the
 * config live here too. */
#include "gguf_phi3.h"
#include "phi3c_file.h"
#include "safetensors.h"
#include "source.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void p3_source_close(p3_model_source *src) {
    if (!src) return;
    for (size_t i = 0; i < src->n_files; i++) p3_file_unmap(&src->files[i]);
    p3_free(src->files);
    p3_free(src->tensors);
    p3_gguf_free(src->gguf);
    p3_native_free(src->native);
    p3_free(src->path);
    p3_free(src->tokenizer_dir);
    p3_free(src);
}

void p3_tensor_set(p3_tensor *t, const char *hf_name, p3_dtype dtype, int64_t rows, int64_t cols,
                   const void *data) {
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", hf_name);
    snprintf(t->hf_name, sizeof t->hf_name, "%s", hf_name);
    t->dtype = dtype;
    t->n_dims = cols ? 2 : 1;
    t->shape[0] = rows;
    t->shape[1] = cols;
    t->data = data;
    size_t row_bytes = 0, total = 0;
    if (rows >= 0 && p3_dtype_row_bytes(dtype, cols ? cols : rows, &row_bytes))
        t->nbytes = !cols ? row_bytes : p3_mul_size(row_bytes, (size_t)rows, &total) ? total : 0;
}

const p3_tensor *p3_source_find(const p3_model_source *src, const char *hf_name) {
    if (!src || !hf_name) return NULL;
    for (size_t i = 0; i < src->n_tensors; i++)
        if (strcmp(src->tensors[i].hf_name, hf_name) == 0) return &src->tensors[i];
    return NULL;
}

static int compare_hf_names(const void *a, const void *b) {
    return strcmp((*(const p3_tensor *const *)a)->hf_name, (*(const p3_tensor *const *)b)->hf_name);
}

/* Two tensors with one canonical name (e.g. in two shards) would make lookups ambiguous. */
static p3_status check_unique_names(const p3_model_source *src, p3_error *err) {
    if (src->n_tensors < 2) return PHI3C_OK;
    const p3_tensor **sorted = p3_malloc(src->n_tensors * sizeof *sorted);
    if (!sorted) return p3_fail(err, PHI3C_ERR_NOMEM, "%s: out of memory", src->path);
    for (size_t i = 0; i < src->n_tensors; i++) sorted[i] = &src->tensors[i];
    qsort(sorted, src->n_tensors, sizeof *sorted, compare_hf_names);
    p3_status st = PHI3C_OK;
    for (size_t i = 1; i < src->n_tensors && st == PHI3C_OK; i++)
        if (strcmp(sorted[i - 1]->hf_name, sorted[i]->hf_name) == 0)
            st = p3_fail(err, PHI3C_ERR_FORMAT, "%s: tensor %s appears twice (as %s and %s)",
                         src->path, sorted[i]->hf_name, sorted[i - 1]->name, sorted[i]->name);
    p3_free(sorted);
    return st;
}

/* ---- HF folders ---- */

static p3_status read_config_file(const char *dir, p3_model_source *src, p3_error *err) {
    char *path = p3_path_join(dir, "config.json");
    char *gen = p3_path_join(dir, "generation_config.json");
    char *text = NULL;
    size_t size = 0;
    p3_status st = PHI3C_OK;
    if (!path || !gen) st = p3_fail(err, PHI3C_ERR_NOMEM, "%s: out of memory", dir);
    if (st == PHI3C_OK) st = p3_file_read_all(path, &text, &size, err);
    if (st == PHI3C_OK) st = p3_config_parse_json(text, size, path, &src->config, err);
    if (st == PHI3C_OK) st = p3_config_read_generation(gen, &src->config, err);
    if (st == PHI3C_OK) st = p3_config_finish(&src->config, path, err);
    src->has_config = st == PHI3C_OK;
    p3_free(text);
    p3_free(path);
    p3_free(gen);
    return st;
}

/* The folder holds tokenizer.json or tokenizer.model: the tokenizer loader reads it there. */
static p3_status note_tokenizer_dir(const char *dir, p3_model_source *src, p3_error *err) {
    static const char *const names[] = {"tokenizer.json", "tokenizer.model"};
    for (size_t i = 0; i < P3_ARRAY_LEN(names); i++) {
        char *p = p3_path_join(dir, names[i]);
        if (!p) return p3_fail(err, PHI3C_ERR_NOMEM, "%s: out of memory", dir);
        bool found = false;
        p3_status st = p3_file_probe(p, &found, err);
        p3_free(p);
        if (st != PHI3C_OK) return st;
        if (found) {
            src->tokenizer_dir = p3_strdup(dir);
            if (!src->tokenizer_dir) return p3_fail(err, PHI3C_ERR_NOMEM, "out of memory");
            return PHI3C_OK;
        }
    }
    return PHI3C_OK;
}

static p3_status open_hf_folder(const char *dir, p3_model_source *src, p3_error *err) {
    char *config = p3_path_join(dir, "config.json");
    if (!config) return p3_fail(err, PHI3C_ERR_NOMEM, "%s: out of memory", dir);
    bool has = false;
    p3_status probe = p3_file_probe(config, &has, err);
    p3_free(config);
    if (probe != PHI3C_OK) return probe;
    if (!has)
        return p3_fail(err, PHI3C_ERR_FORMAT,
                       "%s: folder has no config.json (a model folder "
                       "needs config.json and model.safetensors)",
                       dir);
    src->format = P3_FORMAT_SAFETENSORS;
    p3_status st = read_config_file(dir, src, err);
    if (st == PHI3C_OK) st = p3_safetensors_open_dir(dir, src, err);
    if (st == PHI3C_OK) st = note_tokenizer_dir(dir, src, err);
    return st;
}

/* A bare .safetensors file: the config comes from its folder. */
static p3_status open_safetensors_file(const char *path, p3_model_source *src, p3_error *err) {
    const char *slash = strrchr(path, '/');
    char *dir = slash ? p3_malloc((size_t)(slash - path) + 2) : p3_strdup(".");
    if (!dir) return p3_fail(err, PHI3C_ERR_NOMEM, "%s: out of memory", path);
    if (slash) {
        size_t n = slash == path ? 1 : (size_t)(slash - path);
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    char *config = p3_path_join(dir, "config.json");
    p3_status st = PHI3C_OK;
    bool has_config = false;
    if (!config)
        st = p3_fail(err, PHI3C_ERR_NOMEM, "%s: out of memory", path);
    else if ((st = p3_file_probe(config, &has_config, err)) == PHI3C_OK && !has_config)
        st = p3_fail(err, PHI3C_ERR_FORMAT,
                     "%s: a safetensors file needs config.json beside it "
                     "(none in %s)",
                     path, dir);
    src->format = P3_FORMAT_SAFETENSORS;
    if (st == PHI3C_OK) st = read_config_file(dir, src, err);
    if (st == PHI3C_OK) st = p3_safetensors_open_file(path, src, err);
    if (st == PHI3C_OK) st = note_tokenizer_dir(dir, src, err);
    p3_free(config);
    p3_free(dir);
    return st;
}

/* ---- native phi3c files ---- */

/* The native reader (loaders/phi3c_file.c) builds its own source; checksums are verified unless
 * the caller asked not to (--no-verify). */
static p3_status open_native_file(const char *path, bool verify, p3_model_source **out,
                                  p3_error *err) {
    return p3_native_open(path, verify, out, err);
}

/* ---- dispatch ---- */

/* The first bytes of a file, to recognise its format by magic. */
static p3_status read_head(const char *path, uint8_t *head, size_t cap, size_t *n, p3_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return p3_fail(err, PHI3C_ERR_IO, "%s: cannot open", path);
    *n = fread(head, 1, cap, f);
    fclose(f);
    return PHI3C_OK;
}

static bool looks_like_safetensors(const uint8_t *head, size_t n) {
    /* 8-byte little-endian header length, then the JSON header's '{' */
    return n >= 9 && head[8] == '{' && head[7] == 0 && head[6] == 0 && head[5] == 0;
}

static p3_status open_by_kind(const char *path, bool verify, p3_model_source *src,
                              p3_model_source **native, p3_error *err) {
    if (p3_is_directory(path)) return open_hf_folder(path, src, err);
    bool present = false;
    p3_status probe = p3_file_probe(path, &present, err); /* a FIFO, /dev/zero, a symlink loop */
    if (probe != PHI3C_OK) return probe;
    if (!present) return p3_fail(err, PHI3C_ERR_IO, "%s: no such file or folder", path);
    uint8_t head[16];
    size_t n = 0;
    p3_status st = read_head(path, head, sizeof head, &n, err);
    if (st != PHI3C_OK) return st;
    if (n == 0) return p3_fail(err, PHI3C_ERR_FORMAT, "%s: empty file", path);
    if (n >= 4 && memcmp(head, "GGUF", 4) == 0) return p3_gguf_open_file(path, src, err);
    if (p3_native_is_magic(head, n)) return open_native_file(path, verify, native, err);
    if (looks_like_safetensors(head, n)) return open_safetensors_file(path, src, err);
    return p3_fail(err, PHI3C_ERR_FORMAT,
                   "%s: not a model (neither a folder with config.json, a GGUF file, a "
                   "safetensors file nor a native phi3c file)",
                   path);
}

p3_status p3_source_open(const char *path, p3_model_source **out, p3_error *err) {
    return p3_source_open_verify(path, true, out, err);
}

p3_status p3_source_open_verify(const char *path, bool verify_checksums, p3_model_source **out,
                                p3_error *err) {
    *out = NULL;
    if (!path || !*path) return p3_fail(err, PHI3C_ERR_INVALID_ARG, "no model path given");
    p3_model_source *src = p3_calloc(1, sizeof *src);
    if (!src || !(src->path = p3_strdup(path))) {
        p3_free(src);
        return p3_fail(err, PHI3C_ERR_NOMEM, "%s: out of memory", path);
    }
    p3_model_source *native = NULL;
    p3_status st = open_by_kind(path, verify_checksums, src, &native, err);
    if (st == PHI3C_OK && native) { /* the native reader builds its own source */
        p3_source_close(src);
        *out = native;
        return PHI3C_OK;
    }
    if (st == PHI3C_OK) st = check_unique_names(src, err);
    if (st != PHI3C_OK) {
        p3_source_close(src);
        return st;
    }
    *out = src;
    return PHI3C_OK;
}

/* ---- tensor set against the config ---- */

static void format_shape(char *buf, size_t size, int n_dims, const int64_t *shape) {
    size_t k = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < n_dims && k < size; i++)
        k += (size_t)snprintf(buf + k, size - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < size) snprintf(buf + k, size - k, "]");
}

p3_status p3_source_check_tensors(const p3_model_source *src, p3_error *err) {
    if (!src->has_config)
        return p3_fail(err, PHI3C_ERR_FORMAT, "%s: holds no model config (vocabulary only?)",
                       src->path);
    p3_tensor_spec *specs;
    size_t n;
    p3_status st = p3_config_expected_tensors(&src->config, &specs, &n, err);
    if (st != PHI3C_OK) return st;
    for (size_t i = 0; i < n && st == PHI3C_OK; i++) {
        const p3_tensor_spec *s = &specs[i];
        const p3_tensor *t = p3_source_find(src, s->hf_name);
        char want[96], got[96];
        format_shape(want, sizeof want, s->n_dims, s->shape);
        if (!t) {
            st = p3_fail(err, PHI3C_ERR_FORMAT, "%s: tensor %s is missing (the config needs %s)",
                         src->path, s->hf_name, want);
            break;
        }
        bool same = t->n_dims == s->n_dims;
        for (int d = 0; same && d < s->n_dims; d++) same = t->shape[d] == s->shape[d];
        if (t->dtype == P3_DT_I32) { /* integers are not weights: converting them is no model */
            st = p3_fail(err, PHI3C_ERR_FORMAT,
                         "%s: tensor %s has dtype I32; weights must be floats or quantized",
                         src->path, t->name);
        } else if (!same) {
            format_shape(got, sizeof got, t->n_dims, t->shape);
            st = p3_fail(err, PHI3C_ERR_FORMAT,
                         "%s: tensor %s has shape %s but the config "
                         "needs %s",
                         src->path, t->name, got, want);
        }
    }
    p3_free(specs);
    return st;
}
