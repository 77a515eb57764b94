/* fuzz_encode.c: libFuzzer target for encode and decode on Phi-3's real tokenizer (from
 * $PHI3C_SHARED, default ../shared). Input: one flag byte, then text bytes. Checks: no faults; for
 * valid UTF-8 encoded without added tokens, decode(encode(x)) == x; the streaming decoder's output
 * equals the whole decode whenever the text was valid UTF-8. */
#include "tokenizer.h"

#include "fuzz_tokenizer_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static p3_tokenizer *tokenizer(void) {
    static p3_tokenizer *tok; /* loaded once per fuzzing process */
    if (tok) return tok;
    const char *shared = getenv("PHI3C_SHARED");
    char path[1024];
    snprintf(path, sizeof path, "%s/data/phi3/tokenizer-phi-3-mini",
             shared && *shared ? shared : "../shared");
    p3_error err = {0};
    if (p3_tokenizer_load_path(path, &tok, &err) != PHI3C_OK) {
        fprintf(stderr, "fuzz_encode: %s\n", err.message);
        abort();
    }
    return tok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    const p3_tokenizer *tok = tokenizer();
    unsigned flags = data[0] & (P3_ENCODE_ADD_BOS | P3_ENCODE_NO_SPECIAL);
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    int32_t *ids = NULL;
    size_t n = 0;
    p3_error err = {0};
    if (p3_tokenizer_encode(tok, text, len, flags, &ids, &n, &err) != PHI3C_OK) __builtin_trap();
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= p3_tokenizer_vocab_size(tok)) __builtin_trap();
    char *out = NULL;
    size_t out_len = 0;
    if (p3_tokenizer_decode(tok, ids, n, 0, &out, &out_len, &err) != PHI3C_OK) __builtin_trap();
    bool valid = p3_utf8_valid(text, len);
    if (!p3_utf8_valid(out, out_len)) __builtin_trap();
    /* without BOS, with no added token in the text (only "</s>" stays active with
     * P3_ENCODE_NO_SPECIAL) and no "▁" (which decodes to a space, in HF too), the normalizer is
     * lossless: the text comes back byte for byte */
    bool plain = (flags & P3_ENCODE_NO_SPECIAL) && !(flags & P3_ENCODE_ADD_BOS) &&
                 !memmem(text, len, "</s>", 4) && !memmem(text, len, "\xe2\x96\x81", 3);
    if (valid && plain && (out_len != len || memcmp(out, text, len) != 0)) __builtin_trap();
    if (valid) fuzz_check_detok_stream(tok, ids, n, out, out_len, false);
    p3_free(out);
    p3_free(ids);
    return 0;
}
