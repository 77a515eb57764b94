/* safetensors.c: reads safetensors files (a JSON header then raw little-endian data) as zero-copy
 * views, refusing any header whose offsets, sizes or dtypes do not fit the file. */
#include "safetensors.h"

#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool dtype_from_name(const char *name, p3_dtype *dtype, size_t *elem) {
    if (strcmp(name, "F32") == 0) return *dtype = P3_DT_F32, *elem = 4, true;
    if (strcmp(name, "F16") == 0) return *dtype = P3_DT_F16, *elem = 2, true;
    if (strcmp(name, "BF16") == 0) return *dtype = P3_DT_BF16, *elem = 2, true;
    return false;
}

/* dtypes of the safetensors format that phi3c does not read (named in the refusal) */
static bool dtype_is_known(const char *name) {
    static const char *const known[] = {
        "F64",  "I64",     "U64",     "I32",     "U32", "I16",     "U16",     "I8", "U8",
        "BOOL", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F4",  "F6_E2M3", "F6_E3M2", "C64"};
    for (size_t i = 0; i < P3_ARRAY_LEN(known); i++)
        if (strcmp(name, known[i]) == 0) return true;
    return false;
}

typedef struct span {
    uint64_t begin, end;
    size_t tensor;
} span;

static int compare_spans(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* One tensor entry of the header: {"dtype": "BF16", "shape": [..], "data_offsets": [b, e]}. */
static p3_status parse_entry(const char *what, const char *name, size_t name_len,
                             const json_value *entry, const uint8_t *data, uint64_t data_start,
                             uint64_t data_size, p3_tensor *t, span *sp, p3_error *err) {
    memset(t, 0, sizeof *t);
    if (name_len == 0 || name_len >= P3_TENSOR_NAME_MAX || memchr(name, '\0', name_len))
        return p3_fail(err, PHI3C_ERR_FORMAT,
                       "%s: tensor name \"%.64s\" is empty, too long (max "
                       "%d bytes) or holds a NUL",
                       what, name, P3_TENSOR_NAME_MAX - 1);
    memcpy(t->name, name, name_len);
    memcpy(t->hf_name, name, name_len);
    if (json_typeof(entry) != JSON_OBJECT)
        return p3_fail(err, PHI3C_ERR_FORMAT, "%s: tensor %s: entry is not an object", what, name);
    const char *dt = json_string(json_object_get(entry, "dtype"));
    size_t elem = 0;
    if (!dt) return p3_fail(err, PHI3C_ERR_FORMAT, "%s: tensor %s: no dtype", what, name);
    if (!dtype_from_name(dt, &t->dtype, &elem)) {
        if (dtype_is_known(dt))
            return p3_fail(err, PHI3C_ERR_UNSUPPORTED,
                           "%s: tensor %s has dtype %s; phi3c reads F32, F16 and BF16", what, name,
                           dt);
        return p3_fail(err, PHI3C_ERR_FORMAT, "%s: tensor %s has unknown dtype \"%.32s\"", what,
                       name, dt);
    }
    const json_value *shape = json_object_get(entry, "shape");
    size_t n_dims = json_array_len(shape);
    if (json_typeof(shape) != JSON_ARRAY || n_dims > P3_MAX_DIMS)
        return p3_fail(err, PHI3C_ERR_FORMAT,
                       "%s: tensor %s: shape must be a list of at most %d "
                       "sizes",
                       what, name, P3_MAX_DIMS);
    uint64_t count = 1;
    for (size_t i = 0; i < n_dims; i++) {
        int64_t d;
        if (!json_get_int(json_array_at(shape, i), &d) || d < 0)
            return p3_fail(err, PHI3C_ERR_FORMAT, "%s: tensor %s: shape[%zu] is not a size", what,
                           name, i);
        if (!p3_mul_u64(count, (uint64_t)d, &count))
            return p3_fail(err, PHI3C_ERR_FORMAT, "%s: tensor %s: shape product overflows", what,
                           name);
        t->shape[i] = d;
    }
    t->n_dims = (int)n_dims;
    uint64_t nbytes;
    if (!p3_mul_u64(count, elem, &nbytes))
        return p3_fail(err, PHI3C_ERR_FORMAT, "%s: tensor %s: byte size overflows", what, name);
    const json_value *offs = json_object_get(entry, "data_offsets");
    int64_t b, e;
    if (json_array_len(offs) != 2 || !json_get_int(json_array_at(offs, 0), &b) ||
        !json_get_int(json_array_at(offs, 1), &e) || b < 0 || e < b)
        return p3_fail(err, PHI3C_ERR_FORMAT,
                       "%s: tensor %s: data_offsets must be [begin, end] "
                       "with begin <= end",
                       what, name);
    if ((uint64_t)e > data_size)
        return p3_fail(err, PHI3C_ERR_FORMAT,
                       "%s: tensor %s: data_offsets [%lld, %lld] run past "
                       "the end of the data (%llu bytes)",
                       what, name, (long long)b, (long long)e, (unsigned long long)data_size);
    if ((uint64_t)(e - b) != nbytes)
        return p3_fail(err, PHI3C_ERR_FORMAT,
                       "%s: tensor %s: data_offsets span %lld bytes but "
                       "%s of this shape needs %llu",
                       what, name, (long long)(e - b), dt, (unsigned long long)nbytes);
    if ((data_start + (uint64_t)b) % elem)
        return p3_fail(err, PHI3C_ERR_FORMAT,
                       "%s: tensor %s: data at file offset %llu is not "
                       "aligned to its %zu-byte elements",
                       what, name, (unsigned long long)(data_start + (uint64_t)b), elem);
    t->data = data + data_start + (uint64_t)b;
    t->nbytes = (size_t)nbytes;
    sp->begin = (uint64_t)b;
    sp->end = (uint64_t)e;
    return PHI3C_OK;
}

static p3_status check_overlaps(const char *what, span *spans, size_t n, const p3_tensor *ts,
                                p3_error *err) {
    qsort(spans, n, sizeof *spans, compare_spans);
    for (size_t i = 1; i < n; i++) {
        const span *a = &spans[i - 1], *b = &spans[i];
        if (b->begin < a->end && b->begin != b->end && a->begin != a->end)
            return p3_fail(err, PHI3C_ERR_FORMAT, "%s: tensors %s and %s overlap in the file", what,
                           ts[a->tensor].name, ts[b->tensor].name);
    }
    return PHI3C_OK;
}

static p3_status parse_header(const json_value *header, const uint8_t *data, uint64_t data_start,
                              uint64_t data_size, const char *what, p3_tensor *out, size_t *n_out,
                              p3_error *err) {
    size_t members = json_object_size(header), n = 0;
    span *spans = p3_malloc((members ? members : 1) * sizeof *spans);
    if (!spans) return p3_fail(err, PHI3C_ERR_NOMEM, "%s: out of memory", what);
    p3_status st = PHI3C_OK;
    for (size_t i = 0; i < members && st == PHI3C_OK; i++) {
        size_t len;
        const char *name = json_object_key_at(header, i, &len);
        if (strcmp(name, "__metadata__") == 0) continue;
        if (json_object_getn(header, name, len) != json_object_value_at(header, i)) {
            st = p3_fail(err, PHI3C_ERR_FORMAT, "%s: tensor %.128s is listed twice", what, name);
            break;
        }
        st = parse_entry(what, name, len, json_object_value_at(header, i), data, data_start,
                         data_size, &out[n], &spans[n], err);
        spans[n].tensor = n;
        n++;
    }
    if (st == PHI3C_OK) st = check_overlaps(what, spans, n, out, err);
    p3_free(spans);
    *n_out = n;
    return st;
}

p3_status p3_safetensors_parse(const uint8_t *data, size_t size, const char *what,
                               p3_tensor **tensors, size_t *n_tensors, p3_error *err) {
    if (size == 0) return p3_fail(err, PHI3C_ERR_FORMAT, "%s: empty file", what);
    if (size < 8)
        return p3_fail(err, PHI3C_ERR_FORMAT,
                       "%s: truncated: %zu bytes, no room for the 8-byte "
                       "header length",
                       what, size);
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; i--) header_len = (header_len << 8) | data[i];
    if (header_len > size - 8)
        return p3_fail(err, PHI3C_ERR_FORMAT, "%s: header length %llu exceeds the file size %zu",
                       what, (unsigned long long)header_len, size);
    if (header_len > P3_SAFETENSORS_MAX_HEADER || header_len < 2)
        return p3_fail(err, PHI3C_ERR_FORMAT, "%s: implausible header length %llu", what,
                       (unsigned long long)header_len);
    char header_what[300];
    snprintf(header_what, sizeof header_what, "%s (safetensors header)", what);
    json_doc *doc = NULL;
    p3_status st = json_parse((const char *)data + 8, (size_t)header_len, header_what, &doc, err);
    if (st != PHI3C_OK) return st;
    const json_value *header = json_root(doc);
    size_t members = json_object_size(header);
    if (json_typeof(header) != JSON_OBJECT) {
        json_free(doc);
        return p3_fail(err, PHI3C_ERR_FORMAT, "%s: the header is not a JSON object", what);
    }
    size_t total, bytes;
    p3_tensor *grown = NULL;
    if (p3_add_size(*n_tensors, members, &total) &&
        p3_mul_size(total ? total : 1, sizeof **tensors, &bytes))
        grown = p3_realloc(*tensors, bytes);
    if (!grown) {
        json_free(doc);
        return p3_fail(err, PHI3C_ERR_NOMEM, "%s: out of memory for %zu tensors", what, members);
    }
    *tensors = grown;
    size_t n_new = 0;
    uint64_t data_start = 8 + header_len;
    st = parse_header(header, data, data_start, size - data_start, what, grown + *n_tensors, &n_new,
                      err);
    json_free(doc);
    if (st == PHI3C_OK) *n_tensors += n_new;
    return st;
}

/* ---- files and folders ---- */

static p3_status map_into(p3_model_source *src, const char *path, p3_mapped_file **file,
                          p3_error *err) {
    p3_mapped_file *files = p3_realloc(src->files, (src->n_files + 1) * sizeof *files);
    if (!files) return p3_fail(err, PHI3C_ERR_NOMEM, "%s: out of memory", path);
    src->files = files;
    p3_status st = p3_file_map(&files[src->n_files], path, err);
    if (st != PHI3C_OK) return st;
    *file = &files[src->n_files++];
    src->file_bytes += (*file)->size;
    return PHI3C_OK;
}

p3_status p3_safetensors_open_file(const char *path, p3_model_source *src, p3_error *err) {
    p3_mapped_file *f = NULL;
    p3_status st = map_into(src, path, &f, err);
    if (st != PHI3C_OK) return st;
    return p3_safetensors_parse(f->data, f->size, path, &src->tensors, &src->n_tensors, err);
}

/* Shard names must be plain file names inside the folder: an index must not point elsewhere. */
static bool plain_file_name(const char *s) {
    return s[0] && !strchr(s, '/') && strcmp(s, ".") != 0 && strcmp(s, "..") != 0 &&
           strlen(s) < 256;
}

static bool tensor_in_file(const p3_tensor *t, const p3_mapped_file *f) {
    const uint8_t *p = t->data;
    return f->data && p >= f->data && p + t->nbytes <= f->data + f->size;
}

static int compare_tensor_names(const void *a, const void *b) {
    return strcmp((*(const p3_tensor *const *)a)->name, (*(const p3_tensor *const *)b)->name);
}

static int compare_strings(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static const p3_mapped_file *file_named(const p3_model_source *src, size_t first,
                                        const char *name) {
    for (size_t k = first; k < src->n_files; k++) {
        const char *base = strrchr(src->files[k].path, '/');
        if (strcmp(base ? base + 1 : src->files[k].path, name) == 0) return &src->files[k];
    }
    return NULL;
}

/* Every tensor the index names is in the shard it names (sorted names: hostile indexes with
 * many entries stay O(n log n)). */
static p3_status check_index_entries(const char *index_path, const json_value *map,
                                     const p3_model_source *src, size_t first_file, p3_error *err) {
    const p3_tensor **sorted = p3_malloc((src->n_tensors ? src->n_tensors : 1) * sizeof *sorted);
    if (!sorted) return p3_fail(err, PHI3C_ERR_NOMEM, "%s: out of memory", index_path);
    for (size_t i = 0; i < src->n_tensors; i++) sorted[i] = &src->tensors[i];
    qsort(sorted, src->n_tensors, sizeof *sorted, compare_tensor_names);
    p3_status st = PHI3C_OK;
    for (size_t i = 1; i < src->n_tensors && st == PHI3C_OK; i++)
        if (strcmp(sorted[i - 1]->name, sorted[i]->name) == 0)
            st = p3_fail(err, PHI3C_ERR_FORMAT, "%s: tensor %s appears twice (in two shards)",
                         index_path, sorted[i]->name);
    for (size_t i = 0; i < json_object_size(map) && st == PHI3C_OK; i++) {
        const char *name = json_object_key_at(map, i, NULL);
        const char *shard = json_string(json_object_value_at(map, i));
        p3_tensor key;
        snprintf(key.name, sizeof key.name, "%s", name);
        const p3_tensor *kp = &key, **hit = NULL;
        if (strlen(name) < sizeof key.name)
            hit = bsearch(&kp, sorted, src->n_tensors, sizeof *sorted, compare_tensor_names);
        const p3_mapped_file *f = file_named(src, first_file, shard);
        if (!hit || !f || !tensor_in_file(*hit, f))
            st = p3_fail(err, PHI3C_ERR_FORMAT,
                         "%s: names tensor %.128s in %.128s, but that "
                         "shard does not hold it",
                         index_path, name, shard);
    }
    p3_free(sorted);
    return st;
}

/* The distinct shard names of the weight map, sorted (each must be a plain file name). */
static p3_status list_shards(const char *index_path, const json_value *map, const char ***out,
                             size_t *n_out, p3_error *err) {
    size_t n = json_object_size(map), k = 0;
    const char **names = p3_malloc((n ? n : 1) * sizeof *names);
    if (!names) return p3_fail(err, PHI3C_ERR_NOMEM, "%s: out of memory", index_path);
    for (size_t i = 0; i < n; i++) {
        const char *shard = json_string(json_object_value_at(map, i));
        if (!shard || !plain_file_name(shard)) {
            p3_free(names);
            return p3_fail(err, PHI3C_ERR_FORMAT,
                           "%s: tensor %.128s maps to \"%.128s\", which "
                           "is not a file name in the folder",
                           index_path, json_object_key_at(map, i, NULL),
                           shard ? shard : "(not a string)");
        }
        names[i] = shard;
    }
    qsort(names, n, sizeof *names, compare_strings);
    for (size_t i = 0; i < n; i++)
        if (k == 0 || strcmp(names[k - 1], names[i]) != 0) names[k++] = names[i];
    *out = names;
    *n_out = k;
    return PHI3C_OK;
}

static p3_status open_sharded(const char *dir, const char *index_path, p3_model_source *src,
                              p3_error *err) {
    json_doc *doc = NULL;
    p3_status st = json_parse_file(index_path, &doc, err);
    if (st != PHI3C_OK) return st;
    const json_value *map = json_object_get(json_root(doc), "weight_map");
    const char **shards = NULL;
    size_t n_shards = 0, first_file = src->n_files;
    if (json_typeof(map) != JSON_OBJECT || json_object_size(map) == 0)
        st = p3_fail(err, PHI3C_ERR_FORMAT, "%s: no \"weight_map\" object", index_path);
    if (st == PHI3C_OK) st = list_shards(index_path, map, &shards, &n_shards, err);
    bool present = false;
    for (size_t i = 0; i < n_shards && st == PHI3C_OK; i++) {
        char *path = p3_path_join(dir, shards[i]);
        if (!path) {
            st = p3_fail(err, PHI3C_ERR_NOMEM, "%s: out of memory", index_path);
        } else if ((st = p3_file_probe(path, &present, err)) == PHI3C_OK && !present) {
            st = p3_fail(err, PHI3C_ERR_IO, "%s: shard %s listed in %s is missing", path, shards[i],
                         index_path);
        } else if (st == PHI3C_OK) {
            st = p3_safetensors_open_file(path, src, err);
        }
        p3_free(path);
    }
    if (st == PHI3C_OK) st = check_index_entries(index_path, map, src, first_file, err);
    p3_free(shards);
    json_free(doc);
    return st;
}

p3_status p3_safetensors_open_dir(const char *dir, p3_model_source *src, p3_error *err) {
    char *index = p3_path_join(dir, "model.safetensors.index.json");
    char *single = p3_path_join(dir, "model.safetensors");
    p3_status st;
    bool has_index = false, has_single = false;
    if (!index || !single) {
        st = p3_fail(err, PHI3C_ERR_NOMEM, "%s: out of memory", dir);
    } else if ((st = p3_file_probe(index, &has_index, err)) != PHI3C_OK) {
    } else if (has_index) {
        st = open_sharded(dir, index, src, err);
    } else if ((st = p3_file_probe(single, &has_single, err)) != PHI3C_OK) {
    } else if (has_single) {
        st = p3_safetensors_open_file(single, src, err);
    } else {
        st = p3_fail(err, PHI3C_ERR_FORMAT,
                     "%s: no model.safetensors or "
                     "model.safetensors.index.json in this folder",
                     dir);
    }
    p3_free(index);
    p3_free(single);
    return st;
}
