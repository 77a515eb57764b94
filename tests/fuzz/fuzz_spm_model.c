/* fuzz_spm_model.c: libFuzzer target for the tokenizer.model (protobuf) reader: any bytes load or
 * fail cleanly; a loaded tokenizer must encode and decode a few texts without faults. */
#include "fuzz_tokenizer_util.h"
#include "tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    p3_tokenizer_files f = {.what = "fuzz", .spm_model = data, .spm_model_len = size};
    p3_tokenizer *tok = NULL;
    p3_error err = {0};
    p3_status st = p3_tokenizer_load_buffers(&f, &tok, &err);
    fuzz_check_tokenizer_load(st, tok, &err); /* tok is set only after the call */
    return 0;
}
