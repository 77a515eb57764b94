/* fuzz_json.c: libFuzzer target for the JSON reader and the config.json mapping: any bytes must
 * parse or fail cleanly, a parsed tree must be walkable end to end, and a config that parses must
 * finish or fail cleanly. */
#include "json.h"
#include "source.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t walk(const json_value *v, int depth) {
    size_t n = 1;
    if (depth > JSON_MAX_DEPTH + 1) __builtin_trap();
    for (size_t i = 0; i < json_array_len(v); i++) n += walk(json_array_at(v, i), depth + 1);
    for (size_t i = 0; i < json_object_size(v); i++) {
        size_t len = 0;
        const char *key = json_object_key_at(v, i, &len);
        /* lookup by key finds this member or a later duplicate */
        if (!json_object_getn(v, key, len)) __builtin_trap();
        n += walk(json_object_value_at(v, i), depth + 1);
    }
    const char *s;
    size_t len;
    if (json_get_string(v, &s, &len) && (s[len] != '\0' || !p3_utf8_valid(s, len)))
        __builtin_trap();
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    json_doc *doc = NULL;
    p3_error err = {0};
    if (json_parse((const char *)data, size, "fuzz.json", &doc, &err) == PHI3C_OK) {
        walk(json_root(doc), 0);
        json_free(doc);
    } else if (strncmp(err.message, "fuzz.json: ", 11) != 0) {
        __builtin_trap(); /* every error names the file */
    }
    /* the same bytes as a config.json: parse, finish, derive the tensor table */
    p3_config cfg;
    if (p3_config_parse_json((const char *)data, size, "config.json", &cfg, &err) == PHI3C_OK &&
        p3_config_finish(&cfg, "config.json", &err) == PHI3C_OK) {
        p3_tensor_spec *specs = NULL;
        size_t n = 0;
        if (p3_config_expected_tensors(&cfg, &specs, &n, &err) == PHI3C_OK) p3_free(specs);
    }
    return 0;
}
