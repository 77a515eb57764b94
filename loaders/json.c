/* json.c: the JSON reader behind json.h. Recursive descent with a depth limit; children of an
 * array/object collect on a scratch stack and are copied into the arena when it closes, so every
 * node is allocated exactly once and the whole tree is freed in one call. */
#include "json.h"

#include <stdlib.h>
#include <string.h>

typedef struct json_key {
    const char *s;
    uint32_t len;
    uint32_t hash;
} json_key;

typedef struct json_object_body {
    const json_key *keys;     /* [n] in file order */
    const json_value *values; /* [n] */
    const uint32_t *slots;    /* open-addressing index (member index + 1, 0 = empty), or NULL */
    uint32_t n_slots;         /* power of two */
} json_object_body;

struct json_value {
    uint8_t type;   /* json_type */
    uint8_t is_int; /* numbers: x.i holds the exact integral value */
    uint8_t boolean;
    uint32_t len; /* string bytes, array or object members */
    union {
        double num;
        const char *str;
        const json_value *items;
        const json_object_body *obj;
    } u;
    int64_t i;
};

typedef struct arena_chunk {
    struct arena_chunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
} arena_chunk;

struct json_doc {
    arena_chunk *chunks;
    json_value root;
};

/* Objects with at least this many members get a hash index. */
enum { HASH_MIN_MEMBERS = 8 };

/* ---- arena ---- */

static void *arena_alloc(json_doc *doc, size_t size) {
    size = (size + 15) & ~(size_t)15;
    arena_chunk *c = doc->chunks;
    if (!c || c->cap - c->used < size) {
        size_t cap = c ? c->cap * 2 : 64 * 1024;
        if (cap > 16u << 20) cap = 16u << 20;
        if (cap < size) cap = size;
        size_t total;
        if (!p3_add_size(sizeof(arena_chunk), cap, &total)) return NULL;
        arena_chunk *fresh = p3_malloc(total);
        if (!fresh) return NULL;
        fresh->next = c;
        fresh->used = 0;
        fresh->cap = cap;
        doc->chunks = fresh;
        c = fresh;
    }
    void *p = c->data + c->used;
    c->used += size;
    return p;
}

/* Returns the unused tail of the most recent allocation (strings shrink after decoding). */
static void arena_shrink_last(json_doc *doc, void *p, size_t old_size, size_t new_size) {
    arena_chunk *c = doc->chunks;
    old_size = (old_size + 15) & ~(size_t)15;
    new_size = (new_size + 15) & ~(size_t)15;
    if (c && (unsigned char *)p + old_size == c->data + c->used) c->used -= old_size - new_size;
}

void json_free(json_doc *doc) {
    if (!doc) return;
    arena_chunk *c = doc->chunks;
    while (c) {
        arena_chunk *next = c->next;
        p3_free(c);
        c = next;
    }
    p3_free(doc);
}

/* ---- parser ---- */

typedef struct parser {
    const unsigned char *s;
    size_t n, pos;
    const char *what;
    p3_error *err;
    json_doc *doc;
    json_value *vals; /* scratch stack of children being collected */
    size_t n_vals, cap_vals;
    json_key *keys; /* scratch stack of object keys, parallel to vals for object members */
    size_t n_keys, cap_keys;
} parser;

static p3_status fail_at(parser *p, size_t pos, const char *problem) {
    return p3_fail(p->err, PHI3C_ERR_FORMAT, "%s: byte %zu: %s", p->what, pos, problem);
}

static p3_status fail_nomem(parser *p) {
    return p3_fail(p->err, PHI3C_ERR_NOMEM, "%s: out of memory parsing JSON", p->what);
}

static void skip_space(parser *p) {
    while (p->pos < p->n) {
        unsigned char c = p->s[p->pos];
        if (c != ' ' && c != '\n' && c != '\r' && c != '\t') break;
        p->pos++;
    }
}

static bool grow(void **buf, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return true;
    size_t cap2 = *cap ? *cap * 2 : 64;
    while (cap2 < need) cap2 *= 2;
    size_t bytes;
    if (!p3_mul_size(cap2, elem, &bytes)) return false;
    void *fresh = p3_realloc(*buf, bytes);
    if (!fresh) return false;
    *buf = fresh;
    *cap = cap2;
    return true;
}

static p3_status parse_value(parser *p, json_value *out, int depth);

static bool match_word(parser *p, const char *word) {
    size_t len = strlen(word);
    if (p->n - p->pos < len || memcmp(p->s + p->pos, word, len) != 0) return false;
    p->pos += len;
    return true;
}

static bool is_digit(unsigned char c) {
    return c >= '0' && c <= '9';
}

static int hex_value(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Reads the 4 hex digits after "\u" at p->pos. */
static bool read_hex4(parser *p, uint32_t *out) {
    if (p->n - p->pos < 4) return false;
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) {
        int h = hex_value(p->s[p->pos + (size_t)k]);
        if (h < 0) return false;
        v = (v << 4) | (uint32_t)h;
    }
    p->pos += 4;
    *out = v;
    return true;
}

/* "\uXXXX" (already past the backslash and 'u'), joining a surrogate pair into one code point. */
static p3_status parse_unicode_escape(parser *p, size_t esc_pos, uint32_t *cp) {
    if (!read_hex4(p, cp)) return fail_at(p, esc_pos, "bad \\u escape (want 4 hex digits)");
    if (*cp >= 0xdc00 && *cp <= 0xdfff) return fail_at(p, esc_pos, "lone low surrogate escape");
    if (*cp < 0xd800 || *cp > 0xdbff) return PHI3C_OK;
    uint32_t low;
    if (p->n - p->pos < 2 || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u')
        return fail_at(p, esc_pos, "high surrogate escape not followed by a low surrogate");
    p->pos += 2;
    if (!read_hex4(p, &low) || low < 0xdc00 || low > 0xdfff)
        return fail_at(p, esc_pos, "high surrogate escape not followed by a low surrogate");
    *cp = 0x10000 + ((*cp - 0xd800) << 10) + (low - 0xdc00);
    return PHI3C_OK;
}

/* A string starting at the opening quote; the decoded bytes go to the arena. */
static p3_status parse_string(parser *p, const char **out, uint32_t *out_len) {
    size_t start = p->pos++;
    /* decoded length <= raw length, so the rest of the input bounds the allocation; find the
     * closing quote first to size it tightly */
    size_t end = p->pos;
    while (end < p->n && p->s[end] != '"') end += (p->s[end] == '\\') ? 2 : 1;
    if (end >= p->n) return fail_at(p, start, "unterminated string");
    size_t raw = end - p->pos;
    if (raw > UINT32_MAX) return fail_at(p, start, "string too long");
    char *dst = arena_alloc(p->doc, raw + 1);
    if (!dst) return fail_nomem(p);
    size_t len = 0;
    while (p->pos < end) {
        unsigned char c = p->s[p->pos];
        if (c == '\\') {
            size_t esc = p->pos;
            unsigned char e = p->s[p->pos + 1];
            p->pos += 2;
            switch (e) {
            case '"':
                dst[len++] = '"';
                break;
            case '\\':
                dst[len++] = '\\';
                break;
            case '/':
                dst[len++] = '/';
                break;
            case 'b':
                dst[len++] = '\b';
                break;
            case 'f':
                dst[len++] = '\f';
                break;
            case 'n':
                dst[len++] = '\n';
                break;
            case 'r':
                dst[len++] = '\r';
                break;
            case 't':
                dst[len++] = '\t';
                break;
            case 'u': {
                uint32_t cp;
                p3_status st = parse_unicode_escape(p, esc, &cp);
                if (st != PHI3C_OK) return st;
                /* the escape took >= 6 raw bytes and yields <= 4 (a pair: 12 raw, 4 out) */
                len += p3_utf8_encode(cp, dst + len);
                break;
            }
            default:
                return fail_at(p, esc, "invalid escape in string");
            }
            if (p->pos > end) return fail_at(p, esc, "escape runs past the end of the string");
        } else if (c < 0x20) {
            return fail_at(p, p->pos, "control character in string (must be escaped)");
        } else if (c < 0x80) {
            dst[len++] = (char)c;
            p->pos++;
        } else {
            size_t k = p3_utf8_decode(p->s + p->pos, end - p->pos, NULL);
            if (!k) return fail_at(p, p->pos, "invalid UTF-8 in string");
            memcpy(dst + len, p->s + p->pos, k);
            len += k;
            p->pos += k;
        }
    }
    p->pos = end + 1;
    dst[len] = '\0';
    arena_shrink_last(p->doc, dst, raw + 1, len + 1);
    *out = dst;
    *out_len = (uint32_t)len;
    return PHI3C_OK;
}

static p3_status parse_number(parser *p, json_value *out) {
    size_t start = p->pos, i = p->pos;
    bool negative = false, integral = true;
    if (i < p->n && p->s[i] == '-') negative = true, i++;
    if (i >= p->n || !is_digit(p->s[i])) return fail_at(p, start, "invalid number");
    if (p->s[i] == '0') {
        i++;
        if (i < p->n && is_digit(p->s[i])) return fail_at(p, start, "number with a leading zero");
    } else {
        while (i < p->n && is_digit(p->s[i])) i++;
    }
    if (i < p->n && p->s[i] == '.') {
        integral = false;
        i++;
        if (i >= p->n || !is_digit(p->s[i])) return fail_at(p, start, "no digits after '.'");
        while (i < p->n && is_digit(p->s[i])) i++;
    }
    if (i < p->n && (p->s[i] == 'e' || p->s[i] == 'E')) {
        integral = false;
        i++;
        if (i < p->n && (p->s[i] == '+' || p->s[i] == '-')) i++;
        if (i >= p->n || !is_digit(p->s[i])) return fail_at(p, start, "no digits in exponent");
        while (i < p->n && is_digit(p->s[i])) i++;
    }
    p->pos = i;
    out->type = JSON_NUMBER;
    if (integral) { /* exact int64 by digits; magnitude up to 2^63 for negatives */
        uint64_t mag = 0;
        bool fits = true;
        for (size_t k = start + negative; k < i && fits; k++) {
            uint64_t d = (uint64_t)(p->s[k] - '0');
            fits = !__builtin_mul_overflow(mag, 10u, &mag) && !__builtin_add_overflow(mag, d, &mag);
        }
        uint64_t limit = negative ? (uint64_t)INT64_MAX + 1u : (uint64_t)INT64_MAX;
        if (fits && mag <= limit) {
            out->is_int = 1;
            out->i = negative ? (int64_t)(0u - mag) : (int64_t)mag;
            out->u.num = (double)out->i;
            return PHI3C_OK;
        }
    }
    char small[64], *buf = small;
    size_t len = i - start;
    if (len >= sizeof small) {
        buf = p3_malloc(len + 1);
        if (!buf) return fail_nomem(p);
    }
    memcpy(buf, p->s + start, len);
    buf[len] = '\0';
    double d = strtod(buf, NULL);
    if (buf != small) p3_free(buf);
    if (!(d - d == 0)) return fail_at(p, start, "number out of range of a double");
    /* 16.0 or 1.6e1 stays a float: a size, offset or id must be written as an integer, so a
     * float where one belongs is reported (with the key) instead of taken as its value */
    out->u.num = d;
    return PHI3C_OK;
}

static p3_status push_value(parser *p, const json_value *v) {
    if (!grow((void **)&p->vals, &p->cap_vals, p->n_vals + 1, sizeof *p->vals))
        return fail_nomem(p);
    p->vals[p->n_vals++] = *v;
    return PHI3C_OK;
}

/* Moves the top n scratch values into the arena. */
static p3_status pop_values(parser *p, size_t n, const json_value **out) {
    *out = NULL;
    if (n == 0) return PHI3C_OK;
    json_value *dst = arena_alloc(p->doc, n * sizeof *dst);
    if (!dst) return fail_nomem(p);
    memcpy(dst, p->vals + p->n_vals - n, n * sizeof *dst);
    p->n_vals -= n;
    *out = dst;
    return PHI3C_OK;
}

static p3_status parse_array(parser *p, json_value *out, int depth) {
    size_t start = p->pos++, base = p->n_vals;
    out->type = JSON_ARRAY;
    skip_space(p);
    if (p->pos < p->n && p->s[p->pos] == ']') {
        p->pos++;
        return PHI3C_OK;
    }
    for (;;) {
        json_value item = {0};
        p3_status st = parse_value(p, &item, depth + 1);
        if (st == PHI3C_OK) st = push_value(p, &item);
        if (st != PHI3C_OK) return st;
        skip_space(p);
        if (p->pos >= p->n) return fail_at(p, start, "unterminated array");
        unsigned char c = p->s[p->pos++];
        if (c == ']') break;
        if (c != ',') return fail_at(p, p->pos - 1, "expected ',' or ']' in array");
    }
    size_t n = p->n_vals - base;
    if (n > UINT32_MAX) return fail_at(p, start, "array too long");
    out->len = (uint32_t)n;
    return pop_values(p, n, &out->u.items);
}

static uint32_t hash_key(const char *s, size_t len) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static p3_status build_index(parser *p, json_object_body *body, uint32_t n) {
    uint32_t n_slots = 16;
    while (n_slots < 2 * n) n_slots *= 2;
    uint32_t *slots = arena_alloc(p->doc, (size_t)n_slots * sizeof *slots);
    if (!slots) return fail_nomem(p);
    memset(slots, 0, (size_t)n_slots * sizeof *slots);
    for (uint32_t m = 0; m < n; m++) {
        const json_key *k = &body->keys[m];
        uint32_t s = k->hash & (n_slots - 1);
        while (slots[s]) {
            const json_key *o = &body->keys[slots[s] - 1];
            if (o->hash == k->hash && o->len == k->len && memcmp(o->s, k->s, k->len) == 0) break;
            s = (s + 1) & (n_slots - 1);
        }
        slots[s] = m + 1; /* a later duplicate replaces the earlier one */
    }
    body->slots = slots;
    body->n_slots = n_slots;
    return PHI3C_OK;
}

static p3_status parse_object(parser *p, json_value *out, int depth) {
    size_t start = p->pos++, base = p->n_vals, key_base = p->n_keys;
    out->type = JSON_OBJECT;
    skip_space(p);
    if (p->pos < p->n && p->s[p->pos] == '}') {
        p->pos++;
    } else {
        for (;;) {
            skip_space(p);
            if (p->pos >= p->n || p->s[p->pos] != '"')
                return fail_at(p, p->pos, "expected a string key in object");
            json_key key;
            p3_status st = parse_string(p, &key.s, &key.len);
            if (st != PHI3C_OK) return st;
            key.hash = hash_key(key.s, key.len);
            if (!grow((void **)&p->keys, &p->cap_keys, p->n_keys + 1, sizeof *p->keys))
                return fail_nomem(p);
            p->keys[p->n_keys++] = key;
            skip_space(p);
            if (p->pos >= p->n || p->s[p->pos] != ':')
                return fail_at(p, p->pos, "expected ':' after object key");
            p->pos++;
            json_value item = {0};
            st = parse_value(p, &item, depth + 1);
            if (st == PHI3C_OK) st = push_value(p, &item);
            if (st != PHI3C_OK) return st;
            skip_space(p);
            if (p->pos >= p->n) return fail_at(p, start, "unterminated object");
            unsigned char c = p->s[p->pos++];
            if (c == '}') break;
            if (c != ',') return fail_at(p, p->pos - 1, "expected ',' or '}' in object");
        }
    }
    size_t n = p->n_vals - base;
    if (n > UINT32_MAX / 4) return fail_at(p, start, "object too large");
    json_object_body *body = arena_alloc(p->doc, sizeof *body);
    if (!body) return fail_nomem(p);
    memset(body, 0, sizeof *body);
    if (n) {
        json_key *keys = arena_alloc(p->doc, n * sizeof *keys);
        if (!keys) return fail_nomem(p);
        memcpy(keys, p->keys + key_base, n * sizeof *keys);
        p->n_keys = key_base;
        body->keys = keys;
    }
    p3_status st = pop_values(p, n, &body->values);
    if (st == PHI3C_OK && n >= HASH_MIN_MEMBERS) st = build_index(p, body, (uint32_t)n);
    if (st != PHI3C_OK) return st;
    out->len = (uint32_t)n;
    out->u.obj = body;
    return PHI3C_OK;
}

static p3_status parse_value(parser *p, json_value *out, int depth) {
    if (depth > JSON_MAX_DEPTH) return fail_at(p, p->pos, "nesting deeper than 256 levels");
    skip_space(p);
    if (p->pos >= p->n) return fail_at(p, p->pos, "unexpected end of input (want a value)");
    unsigned char c = p->s[p->pos];
    switch (c) {
    case '{':
        return parse_object(p, out, depth);
    case '[':
        return parse_array(p, out, depth);
    case '"':
        out->type = JSON_STRING;
        return parse_string(p, &out->u.str, &out->len);
    case 't':
    case 'f':
    case 'n':
        if (match_word(p, "true") || match_word(p, "false")) {
            out->type = JSON_BOOL;
            out->boolean = c == 't';
            return PHI3C_OK;
        }
        if (match_word(p, "null")) {
            out->type = JSON_NULL;
            return PHI3C_OK;
        }
        return fail_at(p, p->pos, "invalid literal");
    default:
        if (c == '-' || is_digit(c)) return parse_number(p, out);
        return fail_at(p, p->pos, "unexpected character (want a value)");
    }
}

p3_status json_parse(const char *text, size_t len, const char *what, json_doc **out,
                     p3_error *err) {
    *out = NULL;
    if (!what) what = "JSON";
    json_doc *doc = p3_calloc(1, sizeof *doc);
    if (!doc) return p3_fail(err, PHI3C_ERR_NOMEM, "%s: out of memory parsing JSON", what);
    parser p = {.s = (const unsigned char *)text,
                .n = text ? len : 0,
                .what = what,
                .err = err,
                .doc = doc};
    if (p.n >= 3 && memcmp(p.s, "\xef\xbb\xbf", 3) == 0) p.pos = 3; /* tolerate a UTF-8 BOM */
    skip_space(&p);
    p3_status st = PHI3C_OK;
    if (p.pos >= p.n) st = fail_at(&p, p.pos, "empty document (no JSON value)");
    if (st == PHI3C_OK) st = parse_value(&p, &doc->root, 0);
    if (st == PHI3C_OK) {
        skip_space(&p);
        if (p.pos < p.n) st = fail_at(&p, p.pos, "unexpected data after the JSON value");
    }
    p3_free(p.vals);
    p3_free(p.keys);
    if (st != PHI3C_OK) {
        json_free(doc);
        return st;
    }
    *out = doc;
    return PHI3C_OK;
}

p3_status json_parse_file(const char *path, json_doc **out, p3_error *err) {
    char *text;
    size_t size;
    *out = NULL;
    p3_status st = p3_file_read_all(path, &text, &size, err);
    if (st != PHI3C_OK) return st;
    st = json_parse(text, size, path, out, err);
    p3_free(text);
    return st;
}

const json_value *json_root(const json_doc *doc) {
    return doc ? &doc->root : NULL;
}

/* ---- accessors ---- */

json_type json_typeof(const json_value *v) {
    return v ? (json_type)v->type : JSON_NULL;
}
bool json_is_null(const json_value *v) {
    return v && v->type == JSON_NULL;
}

const json_value *json_object_getn(const json_value *v, const char *key, size_t key_len) {
    if (!v || v->type != JSON_OBJECT || v->len == 0 || !key) return NULL;
    const json_object_body *b = v->u.obj;
    if (b->slots) {
        uint32_t h = hash_key(key, key_len);
        for (uint32_t s = h & (b->n_slots - 1);; s = (s + 1) & (b->n_slots - 1)) {
            uint32_t m = b->slots[s];
            if (!m) return NULL;
            const json_key *k = &b->keys[m - 1];
            if (k->hash == h && k->len == key_len && memcmp(k->s, key, key_len) == 0)
                return &b->values[m - 1];
        }
    }
    for (size_t m = v->len; m-- > 0;) {
        const json_key *k = &b->keys[m];
        if (k->len == key_len && memcmp(k->s, key, key_len) == 0) return &b->values[m];
    }
    return NULL;
}

const json_value *json_object_get(const json_value *v, const char *key) {
    return key ? json_object_getn(v, key, strlen(key)) : NULL;
}

size_t json_object_size(const json_value *v) {
    return v && v->type == JSON_OBJECT ? v->len : 0;
}

const char *json_object_key_at(const json_value *v, size_t i, size_t *len) {
    if (!v || v->type != JSON_OBJECT || i >= v->len) return NULL;
    if (len) *len = v->u.obj->keys[i].len;
    return v->u.obj->keys[i].s;
}

const json_value *json_object_value_at(const json_value *v, size_t i) {
    if (!v || v->type != JSON_OBJECT || i >= v->len) return NULL;
    return &v->u.obj->values[i];
}

size_t json_array_len(const json_value *v) {
    return v && v->type == JSON_ARRAY ? v->len : 0;
}

const json_value *json_array_at(const json_value *v, size_t i) {
    if (!v || v->type != JSON_ARRAY || i >= v->len) return NULL;
    return &v->u.items[i];
}

bool json_get_bool(const json_value *v, bool *out) {
    if (!v || v->type != JSON_BOOL) return false;
    *out = v->boolean != 0;
    return true;
}

bool json_get_double(const json_value *v, double *out) {
    if (!v || v->type != JSON_NUMBER) return false;
    *out = v->u.num;
    return true;
}

bool json_get_int(const json_value *v, int64_t *out) {
    if (!v || v->type != JSON_NUMBER || !v->is_int) return false;
    *out = v->i;
    return true;
}

bool json_get_string(const json_value *v, const char **out, size_t *len) {
    if (!v || v->type != JSON_STRING) return false;
    *out = v->u.str;
    if (len) *len = v->len;
    return true;
}

const char *json_string(const json_value *v) {
    return v && v->type == JSON_STRING ? v->u.str : NULL;
}
