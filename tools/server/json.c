/* json.c: the server's JSON reader (recursive descent over a bounded input, depth-limited) and
 * writer helpers. Hostile input gets an error message, never a crash. */
#include "json.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_DEPTH = 64 };

typedef struct parser {
    const char *p, *end, *start;
    char *err;
    size_t err_len;
    bool failed;
} parser;

static void fail(parser *ps, const char *what) {
    if (ps->failed) return;
    ps->failed = true;
    snprintf(ps->err, ps->err_len, "at byte %zu: %s", (size_t)(ps->p - ps->start), what);
}

static void skip_ws(parser *ps) {
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

static bool literal(parser *ps, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0) return false;
    ps->p += n;
    return true;
}

static int hex4(const char *s) {
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

static void put_utf8(sbuf *b, uint32_t cp) {
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp, n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6)), u[1] = (char)(0x80 | (cp & 0x3F)), n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12)), u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F)), n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18)), u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), u[3] = (char)(0x80 | (cp & 0x3F)), n = 4;
    }
    sb_add(b, u, n);
}

/* A \u escape (p at the 'u'), with surrogate pairs; lone surrogates become U+FFFD. */
static void unicode_escape(parser *ps, sbuf *b) {
    if (ps->end - ps->p < 5 || hex4(ps->p + 1) < 0) return fail(ps, "bad \\u escape");
    uint32_t cp = (uint32_t)hex4(ps->p + 1);
    ps->p += 5;
    if (cp >= 0xD800 && cp < 0xDC00 && ps->end - ps->p >= 6 && ps->p[0] == '\\' &&
        ps->p[1] == 'u' && hex4(ps->p + 2) >= 0xDC00 && hex4(ps->p + 2) < 0xE000) {
        cp = 0x10000 + ((cp - 0xD800) << 10) + ((uint32_t)hex4(ps->p + 2) - 0xDC00);
        ps->p += 6;
    } else if (cp >= 0xD800 && cp < 0xE000) {
        cp = 0xFFFD;
    }
    put_utf8(b, cp);
}

static bool parse_string(parser *ps, char **out, size_t *out_len) {
    sbuf b = {0};
    ps->p++; /* opening quote */
    while (!ps->failed) {
        if (ps->p >= ps->end) {
            fail(ps, "unterminated string");
            break;
        }
        unsigned char c = (unsigned char)*ps->p;
        if (c == '"') {
            ps->p++;
            sb_add(&b, "", 0);
            if (b.failed) fail(ps, "out of memory");
            break;
        }
        if (c < 0x20) {
            fail(ps, "control character in a string");
            break;
        }
        if (c != '\\') {
            const char *run = ps->p;
            while (ps->p < ps->end && *ps->p != '"' && *ps->p != '\\' &&
                   (unsigned char)*ps->p >= 0x20)
                ps->p++;
            sb_add(&b, run, (size_t)(ps->p - run));
            continue;
        }
        if (++ps->p >= ps->end) {
            fail(ps, "unterminated escape");
            break;
        }
        const char *esc = strchr("\"\\/bfnrt", *ps->p);
        if (*ps->p == 'u') {
            unicode_escape(ps, &b);
        } else if (esc && *ps->p) {
            static const char real[] = "\"\\/\b\f\n\r\t";
            sb_add(&b, &real[esc - "\"\\/bfnrt"], 1);
            ps->p++;
        } else {
            fail(ps, "bad escape");
        }
    }
    if (ps->failed) {
        sb_free(&b);
        return false;
    }
    *out = b.data;
    *out_len = b.len;
    return true;
}

static bool parse_number(parser *ps, js_node *n) {
    const char *s = ps->p;
    if (ps->p < ps->end && *ps->p == '-') ps->p++;
    while (ps->p < ps->end && strchr("0123456789.eE+-", *ps->p) && *ps->p) ps->p++;
    size_t len = (size_t)(ps->p - s);
    char tmp[64];
    if (len == 0 || len >= sizeof tmp) {
        fail(ps, "bad number");
        return false;
    }
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    char *end = NULL;
    double v = strtod(tmp, &end);
    if (end != tmp + len || !isfinite(v) || !(tmp[0] == '-' || (tmp[0] >= '0' && tmp[0] <= '9'))) {
        ps->p = s;
        fail(ps, "bad number");
        return false;
    }
    n->type = JS_NUMBER;
    n->number = v;
    return true;
}

static bool parse_value(parser *ps, js_node *n, int depth);

/* Appends a zeroed child to n (growing its array). */
static js_node *add_kid(parser *ps, js_node *n, size_t *cap) {
    if (n->n == *cap) {
        size_t c = *cap ? 2 * *cap : 4;
        js_node *grown = realloc(n->kids, c * sizeof *grown);
        if (!grown) {
            fail(ps, "out of memory");
            return NULL;
        }
        n->kids = grown;
        *cap = c;
    }
    js_node *k = &n->kids[n->n++];
    memset(k, 0, sizeof *k);
    return k;
}

static bool parse_container(parser *ps, js_node *n, int depth, bool object) {
    n->type = object ? JS_OBJECT : JS_ARRAY;
    char close = object ? '}' : ']';
    size_t cap = 0;
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        return true;
    }
    while (!ps->failed) {
        skip_ws(ps);
        char *key = NULL;
        size_t key_len = 0;
        if (object) {
            if (ps->p >= ps->end || *ps->p != '"') return fail(ps, "expected a member name"), false;
            if (!parse_string(ps, &key, &key_len)) return false;
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != ':') {
                free(key);
                return fail(ps, "expected ':'"), false;
            }
            ps->p++;
        }
        js_node *k = add_kid(ps, n, &cap);
        if (!k) {
            free(key);
            return false;
        }
        k->key = key;
        if (!parse_value(ps, k, depth + 1)) return false;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == close) {
            ps->p++;
            return true;
        }
        fail(ps, object ? "expected ',' or '}'" : "expected ',' or ']'");
    }
    return false;
}

static bool parse_value(parser *ps, js_node *n, int depth) {
    if (depth > MAX_DEPTH) return fail(ps, "nested too deeply"), false;
    skip_ws(ps);
    if (ps->p >= ps->end) return fail(ps, "unexpected end of input"), false;
    switch (*ps->p) {
    case '{':
        return parse_container(ps, n, depth, true);
    case '[':
        return parse_container(ps, n, depth, false);
    case '"':
        n->type = JS_STRING;
        return parse_string(ps, &n->str, &n->len);
    case 't':
    case 'f':
        n->type = JS_BOOL;
        n->boolean = *ps->p == 't';
        if (literal(ps, n->boolean ? "true" : "false")) return true;
        return fail(ps, "bad literal"), false;
    case 'n':
        n->type = JS_NULL;
        if (literal(ps, "null")) return true;
        return fail(ps, "bad literal"), false;
    default:
        return parse_number(ps, n);
    }
}

static void free_kids(js_node *n) {
    for (size_t i = 0; i < n->n; i++) free_kids(&n->kids[i]);
    free(n->kids);
    free(n->str);
    free(n->key);
}

void js_free(js_node *node) {
    if (!node) return;
    free_kids(node);
    free(node);
}

js_node *js_parse(const char *text, size_t len, char *err, size_t err_len) {
    parser ps = {text, text + len, text, err, err_len, false};
    js_node *root = calloc(1, sizeof *root);
    if (!root) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    if (parse_value(&ps, root, 0)) {
        skip_ws(&ps);
        if (ps.p != ps.end) fail(&ps, "unexpected data after the value");
    }
    if (ps.failed) {
        js_free(root);
        return NULL;
    }
    return root;
}

const js_node *js_get(const js_node *obj, const char *key) {
    if (!obj || obj->type != JS_OBJECT) return NULL;
    for (size_t i = obj->n; i-- > 0;) /* the last duplicate wins, as in most parsers */
        if (obj->kids[i].key && strcmp(obj->kids[i].key, key) == 0) return &obj->kids[i];
    return NULL;
}

/* ---- writer */

void sb_free(sbuf *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

void sb_add(sbuf *b, const char *s, size_t n) {
    if (b->failed) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1) cap *= 2;
        char *grown = realloc(b->data, cap);
        if (!grown) {
            b->failed = true;
            return;
        }
        b->data = grown;
        b->cap = cap;
    }
    if (n) memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void sb_puts(sbuf *b, const char *s) {
    sb_add(b, s, strlen(s));
}

void sb_printf(sbuf *b, const char *fmt, ...) {
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof small) {
        sb_add(b, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        b->failed = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb_add(b, big, (size_t)n);
    free(big);
}

void sb_json_str(sbuf *b, const char *s, size_t n) {
    sb_add(b, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        sb_add(b, s + run, i - run);
        run = i + 1;
        switch (c) {
        case '"':
            sb_add(b, "\\\"", 2);
            break;
        case '\\':
            sb_add(b, "\\\\", 2);
            break;
        case '\n':
            sb_add(b, "\\n", 2);
            break;
        case '\r':
            sb_add(b, "\\r", 2);
            break;
        case '\t':
            sb_add(b, "\\t", 2);
            break;
        default:
            sb_printf(b, "\\u%04x", c);
        }
    }
    sb_add(b, s + run, n - run);
    sb_add(b, "\"", 1);
}
