/* tok_bpe.h: byte-level BPE (GPT-2 style, as Phi-4-mini's tokenizer): the byte <-> character
 * mapping its vocabulary is written in (tok_bytelevel.c) and the o200k pre-tokenizer
 * (tok_o200k.c). The segment encoder is tok_bpe_encode_segment (tok_encode.h). */
#ifndef P3_TOK_BPE_H
#define P3_TOK_BPE_H

#include "tok_internal.h"

/* End of the o200k chunk that starts at s[pos] (pos < n): one match of the o200k pattern. */
size_t tok_o200k_chunk_end(const uint8_t *s, size_t n, size_t pos);

/* The byte that code point cp stands for in a byte-level vocabulary, or -1. */
int tok_bytelevel_byte(uint32_t cp);
/* A byte-level piece (UTF-8 text of mapped characters) to its raw bytes in out (at most len
 * bytes). Returns the number of bytes, or -1 when a character is not one of the 256. */
long tok_bytelevel_to_bytes(const char *s, size_t len, uint8_t *out);

/* The id of a piece written in the byte-level alphabet, -1 when unknown or not in the alphabet. */
int32_t tok_bytelevel_lookup(const p3_tokenizer *tok, const char *s, size_t len);
/* Sets normal piece `id` from its byte-level text (stored as raw bytes). */
p3_status tok_bytelevel_set_piece(p3_tokenizer *tok, int32_t id, const char *s, size_t len,
                                  p3_error *err);
/* After the pieces are indexed: byte ids from the single-byte pieces. */
void tok_bytelevel_finish(p3_tokenizer *tok);

#endif /* P3_TOK_BPE_H */
