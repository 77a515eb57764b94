/* tok_native.c: the tokenizer stored in a native .phi3c file: its blobs hold the original
 * tokenizer.json, tokenizer_config.json, generation_config.json and tokenizer.model bytes. */
#include "phi3c_file.h"
#include "tok_internal.h"

#include <string.h>

static void blob(const p3_native *nat, const char *name, const char **data, size_t *len) {
    const p3_native_blob *b = p3_native_find_blob(nat, name);
    *data = b ? (const char *)b->data : NULL;
    *len = b ? b->size : 0;
}

p3_status p3_tokenizer_load_native(const struct p3_native *nat, const char *what,
                                   p3_tokenizer **out, p3_error *err) {
    p3_tokenizer_files f = {.what = what};
    const char *spm;
    blob(nat, "tokenizer.json", &f.tokenizer_json, &f.tokenizer_json_len);
    blob(nat, "tokenizer_config.json", &f.tokenizer_config_json, &f.tokenizer_config_json_len);
    blob(nat, "generation_config.json", &f.generation_config_json, &f.generation_config_json_len);
    blob(nat, "tokenizer.model", &spm, &f.spm_model_len);
    f.spm_model = (const uint8_t *)spm;
    if (!f.tokenizer_json && !f.spm_model)
        return p3_fail(err, PHI3C_ERR_FORMAT,
                       "%s: the native file stores no tokenizer.json or tokenizer.model", what);
    return p3_tokenizer_load_buffers(&f, out, err);
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
