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

/* A tiny valid GGUF v3 image: arch "phi3", two metadata keys, one F32 tensor "t" [2, 3] (HF) with
 * values 0..5 at alignment 32. Offsets of its sections are returned for truncation tests. */
typedef struct gguf_sections {
    size_t after_header, after_kvs, after_infos, data_start, end;
} gguf_sections;
void make_tiny_gguf(bytebuf *out, gguf_sections *sec);

/* A minimal Phi3 config.json text for the given dims (2 layers, no tie). */
void tiny_config_json(char *buf, size_t size, int vocab, int hidden, int inter, int heads);

#endif /* P3_TESTS_LOADERS_UTIL_H */
