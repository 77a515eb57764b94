/* fuzz_gguf_tokenizer.c: libFuzzer target for the GGUF tokenizer loader: any bytes parse and load
 * or fail cleanly; a loaded tokenizer must encode and decode a few texts without faults. */
#include "gguf.h"
#include "tokenizer.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void exercise(const p3_tokenizer *tok) {
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    p3_gguf *g = NULL;
    p3_error err = {0};
    if (p3_gguf_parse(data, size, "fuzz.gguf", &g, &err) != PHI3C_OK) return 0;
    p3_tokenizer *tok = NULL;
    if (p3_tokenizer_load_gguf(g, "fuzz.gguf", &tok, &err) == PHI3C_OK) {
        exercise(tok);
        p3_tokenizer_free(tok);
    } else if (!err.message[0]) {
        __builtin_trap(); /* every failure must say why */
    }
    p3_gguf_free(g);
    return 0;
}
