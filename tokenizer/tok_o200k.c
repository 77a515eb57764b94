/* tok_o200k.c: the o200k pre-tokenizer (OpenAI's o200k_base split, used by Phi-4-mini) written as
 * a hand-made matcher of its regex, no regex library:
 *   1 [^\r\n\p{L}\p{N}]? [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]* [\p{Ll}\p{Lm}\p{Lo}\p{M}]+ C?
 *   2 [^\r\n\p{L}\p{N}]? [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+ [\p{Ll}\p{Lm}\p{Lo}\p{M}]* C?
 *     with C = (?i:'s|'t|'re|'ve|'m|'ll|'d) (spaces added here for reading)
 *   3 \p{N}{1,3}
 *   4 ' ?[^\s\p{L}\p{N}]+[\r\n/]*'
 *   5 \s*[\r\n]+
 *   6 \s+(?!\S)
 *   7 \s+
 * Alternatives are tried in order at each position and the first match is taken, with the
 * backtracking a regex engine would do worked out per alternative (see each function). Every
 * character starts some match, so the chunks tile the text. A byte that is not valid UTF-8 counts
 * as one character of no category (punctuation-like, as U+FFFD would). */
#include "tok_bpe.h"
#include "tok_unicode.h"

enum {
    C_UPPERISH = 1, /* Lu Lt Lm Lo M: the first letter class */
    C_LOWERISH = 2, /* Ll Lm Lo M: the second letter class */
    C_LETTER = 4,   /* \p{L} */
    C_NUMBER = 8,   /* \p{N} */
    C_SPACE = 16,   /* \s (Unicode White_Space) */
    C_NEWLINE = 32, /* \r or \n */
    C_APOSTROPHE = 64,
};

typedef struct ch {
    uint32_t cp;
    unsigned len; /* bytes; 0 at the end of the text */
    unsigned cls; /* C_* bits */
} ch;

static unsigned category_class(uint32_t cp) {
    switch (tok_unicode_category(cp)) {
    case TOK_UCAT_LU:
    case TOK_UCAT_LT:
        return C_UPPERISH | C_LETTER;
    case TOK_UCAT_LL:
        return C_LOWERISH | C_LETTER;
    case TOK_UCAT_LM:
    case TOK_UCAT_LO:
        return C_UPPERISH | C_LOWERISH | C_LETTER;
    case TOK_UCAT_M:
        return C_UPPERISH | C_LOWERISH;
    case TOK_UCAT_N:
        return C_NUMBER;
    default:
        return 0;
    }
}

static unsigned ascii_class(uint8_t c) {
    if (c >= 'a' && c <= 'z') return C_LOWERISH | C_LETTER;
    if (c >= 'A' && c <= 'Z') return C_UPPERISH | C_LETTER;
    if (c >= '0' && c <= '9') return C_NUMBER;
    if (c == '\r' || c == '\n') return C_SPACE | C_NEWLINE;
    if (c == ' ' || (c >= 0x09 && c <= 0x0D)) return C_SPACE;
    if (c == '\'') return C_APOSTROPHE;
    return 0;
}

/* The character at s[pos] (pos <= n). */
static ch char_at(const uint8_t *s, size_t n, size_t pos) {
    if (pos >= n) return (ch){0, 0, 0};
    if (s[pos] < 0x80) return (ch){s[pos], 1, ascii_class(s[pos])};
    uint32_t cp;
    size_t len = p3_utf8_decode(s + pos, n - pos, &cp);
    if (len == 0) return (ch){0xFFFD, 1, 0};
    unsigned cls = category_class(cp) | (tok_is_unicode_space(cp) ? C_SPACE : 0);
    return (ch){cp, (unsigned)len, cls};
}

/* [^\r\n\p{L}\p{N}] and [^\s\p{L}\p{N}] */
static bool is_prefix(unsigned cls) {
    return !(cls & (C_NEWLINE | C_LETTER | C_NUMBER));
}
static bool is_punct(unsigned cls) {
    return !(cls & (C_SPACE | C_LETTER | C_NUMBER));
}

static bool ascii_fold_is(const uint8_t *s, size_t n, size_t pos, char lower) {
    return pos < n && (s[pos] | 0x20) == (uint8_t)lower;
}

/* (?i:'s|'t|'re|'ve|'m|'ll|'d)? at pos: bytes matched (0 when none). Case-insensitive matching
 * is Unicode's simple case folding, under which U+017F (long s) is an s and U+212A (Kelvin) a k. */
static size_t contraction(const uint8_t *s, size_t n, size_t pos) {
    if (pos >= n || s[pos] != '\'') return 0;
    size_t p = pos + 1;
    if (ascii_fold_is(s, n, p, 's') || ascii_fold_is(s, n, p, 't') || ascii_fold_is(s, n, p, 'm') ||
        ascii_fold_is(s, n, p, 'd'))
        return 2;
    if (p + 1 < n && s[p] == 0xC5 && s[p + 1] == 0xBF) return 3; /* 'ſ */
    if ((ascii_fold_is(s, n, p, 'r') || ascii_fold_is(s, n, p, 'v')) &&
        ascii_fold_is(s, n, p + 1, 'e'))
        return 3;
    if (ascii_fold_is(s, n, p, 'l') && ascii_fold_is(s, n, p + 1, 'l')) return 3;
    return 0;
}

/* Alternative 1 from q (after the optional prefix): the upper-ish run is greedy; when no
 * lower-ish character follows it, the regex gives back characters of the run until the lower-ish
 * one it holds last can start the second run, which then ends right after it. 0: no match. */
static size_t letters_lower_end(const uint8_t *s, size_t n, size_t q) {
    size_t last_lower_end = 0;
    ch c = char_at(s, n, q);
    while (c.cls & C_UPPERISH) {
        if (c.cls & C_LOWERISH) last_lower_end = q + c.len;
        q += c.len;
        c = char_at(s, n, q);
    }
    if (!(c.cls & C_LOWERISH)) return last_lower_end;
    while (c.cls & C_LOWERISH) {
        q += c.len;
        c = char_at(s, n, q);
    }
    return q;
}

/* Alternative 2 from q: a non-empty upper-ish run, then a lower-ish run. 0: no match. */
static size_t letters_upper_end(const uint8_t *s, size_t n, size_t q) {
    ch c = char_at(s, n, q);
    if (!(c.cls & C_UPPERISH)) return 0;
    while (c.cls & C_UPPERISH) {
        q += c.len;
        c = char_at(s, n, q);
    }
    while (c.cls & C_LOWERISH) {
        q += c.len;
        c = char_at(s, n, q);
    }
    return q;
}

/* Alternatives 1 and 2: the optional prefix character is taken when it helps (greedy, then
 * given back), then the contraction suffix when present. */
static size_t letters_end(const uint8_t *s, size_t n, size_t pos,
                          size_t (*run)(const uint8_t *, size_t, size_t)) {
    ch first = char_at(s, n, pos);
    size_t end = is_prefix(first.cls) ? run(s, n, pos + first.len) : 0;
    if (!end) end = run(s, n, pos);
    return end ? end + contraction(s, n, end) : 0;
}

static size_t digits_end(const uint8_t *s, size_t n, size_t pos) {
    size_t q = pos;
    for (int k = 0; k < 3; k++) {
        ch c = char_at(s, n, q);
        if (!(c.cls & C_NUMBER)) break;
        q += c.len;
    }
    return q > pos ? q : 0;
}

/* Alternative 4: ' ?[^\s\p{L}\p{N}]+[\r\n/]*' (the space is a literal U+0020). */
static size_t punct_end(const uint8_t *s, size_t n, size_t pos) {
    size_t q = pos < n && s[pos] == ' ' ? pos + 1 : pos;
    ch c = char_at(s, n, q);
    if (!is_punct(c.cls)) return 0; /* without the space it is still no match: ' ' is \s */
    while (c.len && is_punct(c.cls)) {
        q += c.len;
        c = char_at(s, n, q);
    }
    while (q < n && (s[q] == '\r' || s[q] == '\n' || s[q] == '/')) q++;
    return q;
}

/* Alternatives 5-7 over the whitespace run at pos. */
static size_t space_end(const uint8_t *s, size_t n, size_t pos) {
    size_t q = pos, last_newline_end = 0, last_start = pos;
    unsigned count = 0;
    ch c = char_at(s, n, q);
    while (c.cls & C_SPACE) {
        if (c.cls & C_NEWLINE) last_newline_end = q + 1;
        last_start = q;
        q += c.len;
        count++;
        c = char_at(s, n, q);
    }
    if (count == 0) return 0;
    if (last_newline_end) return last_newline_end; /* \s*[\r\n]+ */
    if (q == n || count == 1) return q;            /* \s+(?!\S) at the end, else \s+ */
    return last_start;                             /* \s+(?!\S): leave one space to the next */
}

size_t tok_o200k_chunk_end(const uint8_t *s, size_t n, size_t pos) {
    size_t end;
    if ((end = letters_end(s, n, pos, letters_lower_end)) != 0) return end;
    if ((end = letters_end(s, n, pos, letters_upper_end)) != 0) return end;
    if ((end = digits_end(s, n, pos)) != 0) return end;
    if ((end = punct_end(s, n, pos)) != 0) return end;
    if ((end = space_end(s, n, pos)) != 0) return end;
    return pos + char_at(s, n, pos).len; /* unreachable: every character starts a match */
}
