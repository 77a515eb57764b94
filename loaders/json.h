/* json.h: phi3c's own JSON reader (RFC 8259): one pass over the text into a read-only tree held in
 * one arena, so a 2 MB tokenizer.json parses in milliseconds and frees in one call. */
#ifndef P3_LOADERS_JSON_H
#define P3_LOADERS_JSON_H

#include "p3.h"

typedef enum json_type {
    JSON_NULL = 0,
    JSON_BOOL,
    JSON_NUMBER,
    JSON_STRING,
    JSON_ARRAY,
    JSON_OBJECT,
} json_type;

typedef struct json_value json_value; /* a node of the tree; read it with the accessors below */
typedef struct json_doc json_doc;     /* owns every node and string of one parsed text */

/* Nesting deeper than this is refused (a hostile file must not exhaust the stack). */
#define JSON_MAX_DEPTH 256

/* Parses len bytes of text (need not be NUL-terminated). Refuses invalid UTF-8, lone surrogate
 * escapes, control characters in strings, and anything after the top-level value except white
 * space. Error messages read "<what>: byte N: <problem>". */
p3_status json_parse(const char *text, size_t len, const char *what, json_doc **out, p3_error *err);
/* Reads and parses a file; messages name the path. */
p3_status json_parse_file(const char *path, json_doc **out, p3_error *err);
void json_free(json_doc *doc);
const json_value *json_root(const json_doc *doc);

/* Every accessor accepts NULL (and answers as for a missing value), so lookups chain:
 * json_get_int(json_object_get(json_object_get(root, "a"), "b"), &x). */
json_type json_typeof(const json_value *v); /* JSON_NULL for NULL */
bool json_is_null(const json_value *v);     /* true only for an explicit null */

/* Object member by key (NUL-terminated key; with duplicate keys the last one wins, as in Python).
 * O(1) for large objects (hashed at parse time), a short scan for small ones. NULL when v is not
 * an object or has no such key. */
const json_value *json_object_get(const json_value *v, const char *key);
const json_value *json_object_getn(const json_value *v, const char *key, size_t key_len);
/* Members in file order: size, i-th key (NUL-terminated, its byte length in *len when len is not
 * NULL) and i-th value. 0 / NULL when v is not an object or i is out of range. */
size_t json_object_size(const json_value *v);
const char *json_object_key_at(const json_value *v, size_t i, size_t *len);
const json_value *json_object_value_at(const json_value *v, size_t i);

/* Array length and element i (0 / NULL when v is not an array or i is out of range). */
size_t json_array_len(const json_value *v);
const json_value *json_array_at(const json_value *v, size_t i);

/* Typed getters: true and *out set when v has that type, else false and *out untouched.
 * Strings are UTF-8, NUL-terminated, escapes decoded; *len is the byte length (a string may hold
 * "\u0000"). A number converts to int64 only when it is exactly integral and in range
 * (7, 7.0 and 7e0 do; 7.5 does not). */
bool json_get_bool(const json_value *v, bool *out);
bool json_get_double(const json_value *v, double *out);
bool json_get_int(const json_value *v, int64_t *out);
bool json_get_string(const json_value *v, const char **out, size_t *len);
/* The string, or NULL when v is not a string. */
const char *json_string(const json_value *v);

#endif /* P3_LOADERS_JSON_H */
