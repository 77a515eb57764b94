/* tok_load.c: finds and reads a tokenizer wherever a user has one: a folder (tokenizer.json with
 * its configs, or only tokenizer.model), a GGUF file, or the same files' bytes held in memory. */
#include "tok_internal.h"

#include <stdio.h>
#include <string.h>

p3_status p3_tokenizer_load_buffers(const p3_tokenizer_files *f, p3_tokenizer **out,
                                    p3_error *err) {
    *out = NULL;
    const char *what = f->what ? f->what : "tokenizer";
    p3_tokenizer *tok = NULL;
    p3_status st;
    if (f->tokenizer_json) {
        st = tok_load_hf_json(f->tokenizer_json, f->tokenizer_json_len, what, &tok, err);
        if (st != PHI3C_OK) p3_error_prefix(err, "tokenizer.json");
    } else if (f->spm_model) {
        st = tok_load_spm(f->spm_model, f->spm_model_len, what, &tok, err);
        if (st != PHI3C_OK) p3_error_prefix(err, "tokenizer.model");
    } else {
        return p3_fail(err, PHI3C_ERR_INVALID_ARG,
                       "%s: neither tokenizer.json nor tokenizer.model was found", what);
    }
    if (st != PHI3C_OK) return st;
    if (f->tokenizer_config_json || f->generation_config_json) {
        st = tok_apply_configs(tok, f->tokenizer_config_json, f->tokenizer_config_json_len,
                               f->generation_config_json, f->generation_config_json_len, err);
        if (st != PHI3C_OK) p3_error_prefix(err, "%s", what);
    } else {
        tok_detect_chat(tok, NULL, 0);
    }
    if (st != PHI3C_OK) {
        p3_tokenizer_free(tok);
        return st;
    }
    *out = tok;
    return PHI3C_OK;
}

/* Reads dir/name into *data when it exists; a missing file leaves *data NULL. */
static p3_status read_optional(const char *dir, const char *name, char **data, size_t *len,
                               p3_error *err) {
    *data = NULL;
    *len = 0;
    char *path = p3_path_join(dir, name);
    if (!path) return p3_fail(err, PHI3C_ERR_NOMEM, "out of memory");
    p3_status st = PHI3C_OK;
    bool present = false;
    st = p3_file_probe(path, &present, err);
    if (st == PHI3C_OK && present) st = p3_file_read_all(path, data, len, err);
    p3_free(path);
    return st;
}

p3_status p3_tokenizer_load_dir(const char *dir, p3_tokenizer **out, p3_error *err) {
    *out = NULL;
    static const char *const names[] = {"tokenizer.json", "tokenizer_config.json",
                                        "generation_config.json", "tokenizer.model"};
    char *data[4] = {0};
    size_t len[4] = {0};
    p3_status st = PHI3C_OK;
    for (size_t i = 0; i < 4 && st == PHI3C_OK; i++) {
        if (i == 3 && data[0]) break; /* tokenizer.json wins: no need to read tokenizer.model */
        st = read_optional(dir, names[i], &data[i], &len[i], err);
    }
    if (st == PHI3C_OK && !data[0] && !data[3])
        st = p3_fail(err, PHI3C_ERR_IO, "%s: no tokenizer.json or tokenizer.model in this folder",
                     dir);
    if (st == PHI3C_OK) {
        p3_tokenizer_files f = {
            .what = dir,
            .tokenizer_json = data[0],
            .tokenizer_json_len = len[0],
            .tokenizer_config_json = data[1],
            .tokenizer_config_json_len = len[1],
            .generation_config_json = data[2],
            .generation_config_json_len = len[2],
            .spm_model = (const uint8_t *)data[3],
            .spm_model_len = len[3],
        };
        st = p3_tokenizer_load_buffers(&f, out, err);
        if (st != PHI3C_OK) p3_error_prefix(err, "%s", dir);
    }
    for (size_t i = 0; i < 4; i++) p3_free(data[i]);
    return st;
}

static bool file_starts_with(const char *path, const char *magic, size_t n) {
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    char head[16] = {0};
    size_t got = fread(head, 1, n, f);
    fclose(f);
    return got == n && memcmp(head, magic, n) == 0;
}

p3_status p3_tokenizer_load_path(const char *path, p3_tokenizer **out, p3_error *err) {
    *out = NULL;
    if (p3_is_directory(path)) return p3_tokenizer_load_dir(path, out, err);
    bool present = false;
    p3_status probe = p3_file_probe(path, &present, err); /* a FIFO, /dev/zero, a symlink loop */
    if (probe != PHI3C_OK) return probe;
    if (!present) return p3_fail(err, PHI3C_ERR_IO, "%s: no such file or folder", path);
    if (file_starts_with(path, "GGUF", 4)) return tok_load_gguf_file(path, out, err);
    if (file_starts_with(path, "PHI3C\0\x1a\n", 8)) return tok_load_native_file(path, out, err);
    /* a tokenizer.json or tokenizer.model passed directly: use its folder */
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    if (strcmp(base, "tokenizer.json") == 0 || strcmp(base, "tokenizer.model") == 0) {
        char *dir = slash ? p3_strdup(path) : p3_strdup(".");
        if (!dir) return p3_fail(err, PHI3C_ERR_NOMEM, "out of memory");
        if (slash) dir[slash - path] = '\0';
        p3_status st = p3_tokenizer_load_dir(dir[0] ? dir : "/", out, err);
        p3_free(dir);
        return st;
    }
    return p3_fail(err, PHI3C_ERR_FORMAT,
                   "%s: not a model folder, GGUF file, native .phi3c file or tokenizer file", path);
}
