/* fuzz_json.c: libFuzzer target for the JSON reader: any bytes must parse or fail cleanly, and a
 * parsed tree must be walkable end to end. */
#include "json.h"

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
    return 0;
}
