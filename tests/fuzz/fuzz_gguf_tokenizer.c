/* fuzz_gguf_tokenizer.c: libFuzzer target for the GGUF tokenizer loader: any bytes parse and load
 * or fail cleanly; a loaded tokenizer must encode and decode a few texts without faults. */
#include "fuzz_tokenizer_util.h"
#include "gguf.h"
#include "tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    p3_gguf *g = NULL;
    p3_error err = {0};
    if (p3_gguf_parse(data, size, "fuzz.gguf", &g, &err) != PHI3C_OK) return 0;
    p3_tokenizer *tok = NULL;
    p3_status st = p3_tokenizer_load_gguf(g, "fuzz.gguf", &tok, &err);
    fuzz_check_tokenizer_load(st, tok, &err); /* tok is set only after the call */
    p3_gguf_free(g);
    return 0;
}
