/* test_loaders_util.h: byte builders for the loader tests: they write small safetensors and GGUF
 * files byte by byte from the format definitions, so tests can make valid and hostile files at
 * run time without committing phi3c-generated files. */
#ifndef P3_TESTS_LOADERS_UTIL_H
#define P3_TESTS_LOADERS_UTIL_H

#include "harness.h"

typedef struct bytebuf {
    uint8_t *p;
    size_t n, cap;
} bytebuf;

void bb_bytes(bytebuf *b, const void *data, size_t n);
void bb_u8(bytebuf *b, uint8_t v);
void bb_u32(bytebuf *b, uint32_t v);
void bb_u64(bytebuf *b, uint64_t v);
void bb_f32(bytebuf *b, float v);
/* GGUF string: u64 length + bytes */
void bb_gguf_str(bytebuf *b, const char *s);
/* zero bytes up to a multiple of align */
void bb_pad(bytebuf *b, size_t align);
void bb_free(bytebuf *b);

/* Writes n bytes to dir/name; returns the path (static buffer, one per slot 0..3). */
const char *write_test_file(p3_test_ctx *t, const char *dir, const char *name, const void *data,
                            size_t n, int slot);

/* A safetensors file image: 8-byte length, header text (padded with spaces to a multiple of 8
 * unless exact), data. */
void make_safetensors(bytebuf *out, const char *header, const void *data, size_t n, bool exact);

/* A tiny valid GGUF v3 image (not a model: no phi3.* keys): keys general.architecture "phi3",
 * general.alignment 32 and a 2-string array, F32 tensors "t" and "u" [2, 3] (HF order) at data
 * offsets 0 and 32 holding 0..5 and 6..11. The byte positions of its fields let tests patch one
 * field into something hostile. */
typedef struct gguf_layout {
    size_t n_tensors_at, n_kvs_at;  /* header counts (u64) */
    size_t key0_len_at, key0_at;    /* first key's length (u64) and bytes */
    size_t value0_len_at;           /* first value's string length (u64) */
    size_t alignment_value_at;      /* general.alignment's u32 */
    size_t array_count_at;          /* the string array's count (u64) */
    size_t after_header, after_kvs; /* section boundaries */
    size_t tensor_at[2];            /* start of each tensor info */
    size_t n_dims_at[2], dim0_at[2], type_at[2], offset_at[2];
    size_t after_infos, data_start, end;
} gguf_layout;
void make_tiny_gguf(bytebuf *out, gguf_layout *lay);

/* A minimal Phi3 config.json text for the given dims (2 layers, no tie). */
void tiny_config_json(char *buf, size_t size, int vocab, int hidden, int inter, int heads);

#endif /* P3_TESTS_LOADERS_UTIL_H */
