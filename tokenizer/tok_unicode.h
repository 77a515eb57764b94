/* tok_unicode.h: the Unicode general categories the byte-level BPE pre-tokenizer asks about, from
 * the generated table tok_unicode_tables.c (tools/gen_unicode_tables.py; its Unicode version is
 * tok_unicode_version). */
#ifndef P3_TOK_UNICODE_H
#define P3_TOK_UNICODE_H

#include <stdint.h>

typedef enum tok_ucat {
    TOK_UCAT_OTHER = 0,
    TOK_UCAT_LU = 1,
    TOK_UCAT_LL = 2,
    TOK_UCAT_LT = 3,
    TOK_UCAT_LM = 4,
    TOK_UCAT_LO = 5,
    TOK_UCAT_M = 6, /* Mn, Mc, Me */
    TOK_UCAT_N = 7, /* Nd, Nl, No */
} tok_ucat;

extern const char tok_unicode_version[];
extern const uint16_t tok_ucat_stage1[0x110000 / 128];
extern const char tok_ucat_stage2[];

static inline tok_ucat tok_unicode_category(uint32_t cp) {
    if (cp >= 0x110000) return TOK_UCAT_OTHER;
    return (tok_ucat)(tok_ucat_stage2[(uint32_t)tok_ucat_stage1[cp >> 7] * 128 + (cp & 127)] - '0');
}

#endif /* P3_TOK_UNICODE_H */
