/* tok_native.c: the tokenizer of an opened model source: a HF folder's files, a GGUF's metadata, or
 * a native .phi3c file's blobs (the original tokenizer.json, tokenizer_config.json,
 * generation_config.json and tokenizer.model bytes, or "tokenizer.gguf": a GGUF source's
 * tokenizer metadata as a tensor-free GGUF). */
#include "gguf.h"
#include "phi3c_file.h"
#include "tok_internal.h"

#include <string.h>

static void blob(const p3_native *nat, const char *name, const char **data, size_t *len) {
    const p3_native_blob *b = p3_native_find_blob(nat, name);
    *data = b ? (const char *)b->data : NULL;
    *len = b ? b->size : 0;
}

static p3_status load_gguf_bytes(const uint8_t *data, size_t size, const char *what,
                                 p3_tokenizer **out, p3_error *err) {
    p3_gguf *g = NULL;
    p3_status st = p3_gguf_parse(data, size, what, &g, err);
    if (st == PHI3C_OK) st = p3_tokenizer_load_gguf(g, what, out, err);
    p3_gguf_free(g);
    return st;
}

p3_status p3_tokenizer_load_native(const struct p3_native *nat, const char *what,
                                   p3_tokenizer **out, p3_error *err) {
    *out = NULL;
    p3_tokenizer_files f = {.what = what};
    const char *spm, *gguf;
    size_t gguf_len;
    blob(nat, "tokenizer.json", &f.tokenizer_json, &f.tokenizer_json_len);
    blob(nat, "tokenizer_config.json", &f.tokenizer_config_json, &f.tokenizer_config_json_len);
    blob(nat, "generation_config.json", &f.generation_config_json, &f.generation_config_json_len);
    blob(nat, "tokenizer.model", &spm, &f.spm_model_len);
    blob(nat, "tokenizer.gguf", &gguf, &gguf_len);
    f.spm_model = (const uint8_t *)spm;
    if (f.tokenizer_json || f.spm_model) return p3_tokenizer_load_buffers(&f, out, err);
    if (gguf) return load_gguf_bytes((const uint8_t *)gguf, gguf_len, what, out, err);
    return p3_fail(err, PHI3C_ERR_FORMAT,
                   "%s: the native file stores no tokenizer (tokenizer.json, tokenizer.model or "
                   "tokenizer.gguf)",
                   what);
}

p3_status tok_load_native_file(const char *path, p3_tokenizer **out, p3_error *err) {
    *out = NULL;
    p3_model_source *src = NULL;
    p3_status st = p3_native_open(path, false, &src, err);
    if (st != PHI3C_OK) return st;
    st = p3_tokenizer_load_native(src->native, path, out, err);
    p3_native_close(src);
    return st;
}

p3_status p3_tokenizer_load_source(const p3_model_source *src, p3_tokenizer **out, p3_error *err) {
    *out = NULL;
    const char *what = src->path ? src->path : "model";
    if (src->native) return p3_tokenizer_load_native(src->native, what, out, err);
    if (src->gguf) return p3_tokenizer_load_gguf(src->gguf, what, out, err);
    if (src->tokenizer_dir) return p3_tokenizer_load_dir(src->tokenizer_dir, out, err);
    return p3_fail(err, PHI3C_ERR_UNSUPPORTED,
                   "%s: no tokenizer.json or tokenizer.model beside the weights", what);
}
