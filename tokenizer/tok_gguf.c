/* tok_gguf.c: the tokenizer from GGUF tokenizer.ggml.* metadata (placeholder until loaders/gguf.h
 * lands on main). */
#include "tok_internal.h"

p3_status tok_load_gguf_file(const char *path, p3_tokenizer **out, p3_error *err) {
    *out = NULL;
    return p3_fail(err, PHI3C_ERR_UNSUPPORTED, "%s: GGUF tokenizers are not wired yet", path);
}
