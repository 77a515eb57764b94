/* json.h: the server's own small JSON reader (a tree of nodes, depth and size bounded, strings
 * unescaped to UTF-8) and writer (a growing byte buffer with JSON string escaping). The server
 * uses only include/phi3c.h, so it does not borrow the library's internal parser. */
#ifndef P3_SERVER_JSON_H
#define P3_SERVER_JSON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

typedef enum js_type { JS_NULL, JS_BOOL, JS_NUMBER, JS_STRING, JS_ARRAY, JS_OBJECT } js_type;

typedef struct js_node {
    js_type type;
    bool boolean;
    double number;
    char *str;            /* JS_STRING: NUL-terminated UTF-8 (may hold NULs: see len) */
    size_t len;           /* JS_STRING: bytes */
    char *key;            /* member name when the node is an object member */
    struct js_node *kids; /* JS_ARRAY / JS_OBJECT: n children */
    size_t n;
} js_node;

/* Parses text[0..len) as one JSON value; NULL on error with a message ("at byte 12: expected
 * ':'") in err. Free with js_free. */
js_node *js_parse(const char *text, size_t len, char *err, size_t err_len);
void js_free(js_node *node);
/* The member `key` of an object, or NULL. */
const js_node *js_get(const js_node *obj, const char *key);

/* A growing byte buffer; `failed` is set when an allocation failed (the content is then cut). */
typedef struct sbuf {
    char *data;
    size_t len, cap;
    bool failed;
} sbuf;

void sb_free(sbuf *b);
void sb_add(sbuf *b, const char *s, size_t n);
void sb_puts(sbuf *b, const char *s);
void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s[0..n) as a quoted JSON string. */
void sb_json_str(sbuf *b, const char *s, size_t n);

#endif /* P3_SERVER_JSON_H */
