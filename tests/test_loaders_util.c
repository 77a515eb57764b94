/* test_loaders_util.c: byte builders for the loader tests (see test_loaders_util.h). */
#include "test_loaders_util.h"

#include <stdlib.h>
#include <string.h>

void bb_bytes(bytebuf *b, const void *data, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) cap *= 2;
        b->p = realloc(b->p, cap);
        if (!b->p) abort();
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, data, n);
    b->n += n;
}

void bb_u8(bytebuf *b, uint8_t v) {
    bb_bytes(b, &v, 1);
}

void bb_u32(bytebuf *b, uint32_t v) {
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    bb_bytes(b, x, 4);
}

void bb_u64(bytebuf *b, uint64_t v) {
    bb_u32(b, (uint32_t)v);
    bb_u32(b, (uint32_t)(v >> 32));
}

void bb_f32(bytebuf *b, float v) {
    uint32_t bits;
    memcpy(&bits, &v, 4);
    bb_u32(b, bits);
}

void bb_gguf_str(bytebuf *b, const char *s) {
    bb_u64(b, strlen(s));
    bb_bytes(b, s, strlen(s));
}

void bb_pad(bytebuf *b, size_t align) {
    while (b->n % align) bb_u8(b, 0);
}

void bb_free(bytebuf *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

const char *write_test_file(p3_test_ctx *t, const char *dir, const char *name, const void *data,
                            size_t n, int slot) {
    static char paths[4][512];
    char *path = paths[slot & 3];
    snprintf(path, sizeof paths[0], "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!CHECK_MSG(f != NULL, "cannot write %s", path)) return path;
    if (n) fwrite(data, 1, n, f);
    fclose(f);
    return path;
}

void make_safetensors(bytebuf *out, const char *header, const void *data, size_t n, bool exact) {
    size_t len = strlen(header), padded = exact ? len : (len + 7) / 8 * 8;
    bb_u64(out, padded);
    bb_bytes(out, header, len);
    for (size_t i = len; i < padded; i++) bb_u8(out, ' ');
    bb_bytes(out, data, n);
}

void make_tiny_gguf(bytebuf *b, gguf_layout *lay) {
    memset(lay, 0, sizeof *lay);
    bb_bytes(b, "GGUF", 4);
    bb_u32(b, 3);
    lay->n_tensors_at = b->n;
    bb_u64(b, 2);
    lay->n_kvs_at = b->n;
    bb_u64(b, 3);
    lay->after_header = b->n;
    lay->key0_len_at = b->n;
    bb_gguf_str(b, "general.architecture");
    lay->key0_at = lay->key0_len_at + 8;
    bb_u32(b, 8);
    lay->value0_len_at = b->n;
    bb_gguf_str(b, "phi3");
    bb_gguf_str(b, "general.alignment");
    bb_u32(b, 4);
    lay->alignment_value_at = b->n;
    bb_u32(b, 32);
    bb_gguf_str(b, "tokenizer.ggml.tokens");
    bb_u32(b, 9);
    bb_u32(b, 8);
    lay->array_count_at = b->n;
    bb_u64(b, 2);
    bb_gguf_str(b, "<s>");
    bb_gguf_str(b, "</s>");
    lay->after_kvs = b->n;
    for (int k = 0; k < 2; k++) {
        lay->tensor_at[k] = b->n;
        bb_gguf_str(b, k ? "u" : "t");
        lay->n_dims_at[k] = b->n;
        bb_u32(b, 2);
        lay->dim0_at[k] = b->n;
        bb_u64(b, 3); /* ne0 innermost */
        bb_u64(b, 2);
        lay->type_at[k] = b->n;
        bb_u32(b, 0); /* F32 */
        lay->offset_at[k] = b->n;
        bb_u64(b, k ? 32 : 0);
    }
    lay->after_infos = b->n;
    bb_pad(b, 32);
    lay->data_start = b->n;
    for (int i = 0; i < 6; i++) bb_f32(b, (float)i);
    bb_pad(b, 32);
    for (int i = 6; i < 12; i++) bb_f32(b, (float)i);
    lay->end = b->n;
}

void tiny_config_json(char *buf, size_t size, int vocab, int hidden, int inter, int heads) {
    snprintf(buf, size,
             "{\"architectures\": [\"Phi3ForCausalLM\"], \"hidden_size\": %d, "
             "\"num_hidden_layers\": 2, \"num_attention_heads\": %d, \"intermediate_size\": %d, "
             "\"vocab_size\": %d, \"max_position_embeddings\": 64, \"rope_theta\": 10000.0, "
             "\"sliding_window\": null, \"tie_word_embeddings\": false}",
             hidden, heads, inter, vocab);
}
