/* fuzz_bpe_encode.c: libFuzzer target for the byte-level BPE encoder (o200k split, rank merges) on
 * the Phi-4-mini-style tokenizer `make phi4-tokenizer` builds ($PHI3C_PHI4_TOKENIZER, default
 * build/phi4-tokenizer). Input: one flag byte, then text bytes. Checks: no faults; the o200k chunks
 * tile the text; ids in range; decode(encode(x)) == x for valid UTF-8 without special tokens (the
 * byte-level path is lossless); the streaming decoder's output equals the whole decode for any
 * bytes. */
#include "tok_bpe.h"

#include "fuzz_tokenizer_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static p3_tokenizer *tokenizer(void) {
    static p3_tokenizer *tok; /* loaded once per fuzzing process */
    if (tok) return tok;
    const char *dir = getenv("PHI3C_PHI4_TOKENIZER");
    p3_error err = {0};
    if (p3_tokenizer_load_path(dir && *dir ? dir : "build/phi4-tokenizer", &tok, &err) !=
        PHI3C_OK) {
        fprintf(stderr, "fuzz_bpe_encode: %s (make phi4-tokenizer)\n", err.message);
        abort();
    }
    return tok;
}

static void check_chunks(const uint8_t *s, size_t n) {
    for (size_t pos = 0; pos < n;) {
        size_t end = tok_o200k_chunk_end(s, n, pos);
        if (end <= pos || end > n) __builtin_trap();
        pos = end;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    const p3_tokenizer *tok = tokenizer();
    unsigned flags = data[0] & P3_ENCODE_NO_SPECIAL;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    check_chunks((const uint8_t *)text, len);
    int32_t *ids = NULL;
    size_t n = 0;
    p3_error err = {0};
    if (p3_tokenizer_encode(tok, text, len, flags, &ids, &n, &err) != PHI3C_OK) __builtin_trap();
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= p3_tokenizer_vocab_size(tok)) __builtin_trap();
    char *out = NULL;
    size_t out_len = 0;
    if (p3_tokenizer_decode(tok, ids, n, 0, &out, &out_len, &err) != PHI3C_OK) __builtin_trap();
    if (!p3_utf8_valid(out, out_len)) __builtin_trap();
    /* special tokens decode to their text too, so any valid text comes back */
    if (p3_utf8_valid(text, len) && (out_len != len || memcmp(out, text, len) != 0))
        __builtin_trap();
    fuzz_check_detok_stream(tok, ids, n, out, out_len, true);
    p3_free(out);
    p3_free(ids);
    return 0;
}
