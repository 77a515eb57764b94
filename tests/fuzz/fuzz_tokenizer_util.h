/* fuzz_tokenizer_util.h: what the tokenizer fuzz targets do with a load result (header only,
 * because each fuzz target is built from its one file). */
#ifndef P3_FUZZ_TOKENIZER_UTIL_H
#define P3_FUZZ_TOKENIZER_UTIL_H

#include "tokenizer.h"

#include <string.h>

/* Encodes and decodes a few awkward texts with a loaded tokenizer; any fault is the finding. */
static inline void fuzz_exercise_tokenizer(const p3_tokenizer *tok) {
    static const char *const texts[] = {"Hello world", "<|user|>\nHi<|end|>\n", "  \t\r\n x",
                                        "\xe4\xb8\xad\xf0\x9f\x98\x80 \xff", "</s> <s>"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        int32_t *ids = NULL;
        size_t n = 0;
        p3_error err = {0};
        if (p3_tokenizer_encode(tok, texts[i], strlen(texts[i]), P3_ENCODE_ADD_BOS, &ids, &n,
                                &err) != PHI3C_OK)
            continue;
        char *text = NULL;
        size_t len;
        if (p3_tokenizer_decode(tok, ids, n, 0, &text, &len, &err) == PHI3C_OK) p3_free(text);
        p3_free(ids);
    }
}

/* Exercises and frees tok when the load succeeded; traps when it failed without saying why. */
static inline void fuzz_check_tokenizer_load(p3_status st, p3_tokenizer *tok, const p3_error *err) {
    if (st == PHI3C_OK) {
        fuzz_exercise_tokenizer(tok);
        p3_tokenizer_free(tok);
    } else if (!err->message[0]) {
        __builtin_trap(); /* every failure must say why */
    }
}

/* Streams ids through the detokenizer and traps unless the pieces add up to want exactly; with
 * whole_chars, every piece must also be valid UTF-8 on its own (byte-level BPE's promise). */
static inline void fuzz_check_detok_stream(const p3_tokenizer *tok, const int32_t *ids, size_t n,
                                           const char *want, size_t want_len, bool whole_chars) {
    p3_detok_stream s;
    p3_error err = {0};
    if (p3_detok_stream_init(&s, tok, 0, &err) != PHI3C_OK) return;
    size_t at = 0;
    const char *piece;
    size_t len;
    for (size_t i = 0; i < n; i++) {
        if (p3_detok_stream_push(&s, ids[i], &piece, &len, &err) != PHI3C_OK) __builtin_trap();
        if (whole_chars && !p3_utf8_valid(piece, len)) __builtin_trap();
        if (at + len > want_len || memcmp(want + at, piece, len) != 0) __builtin_trap();
        at += len;
    }
    p3_detok_stream_finish(&s, &piece, &len);
    if (at + len != want_len || memcmp(want + at, piece, len) != 0) __builtin_trap();
    p3_detok_stream_free(&s);
}

#endif
