/* tok_bytelevel.c: GPT-2's byte <-> character mapping, in which byte-level BPE vocabularies
 * (tokenizer.json, GGUF "gpt2") write their pieces: printable bytes stand for themselves
 * ('!'..'~', U+00A1..U+00AC, U+00AE..U+00FF), the other 68 bytes take U+0100.. in byte order. */
#include "tok_bpe.h"

static bool printable(unsigned b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

int tok_bytelevel_byte(uint32_t cp) {
    if (cp < 0x100) return printable(cp) ? (int)cp : -1;
    if (cp >= 0x100 + 68) return -1;
    uint32_t k = cp - 0x100;
    for (unsigned b = 0; b < 256; b++)
        if (!printable(b) && k-- == 0) return (int)b;
    return -1;
}

long tok_bytelevel_to_bytes(const char *s, size_t len, uint8_t *out) {
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t cl = p3_utf8_decode((const uint8_t *)s + i, len - i, &cp);
        int b = cl ? tok_bytelevel_byte(cp) : -1;
        if (b < 0) return -1;
        out[o++] = (uint8_t)b;
        i += cl;
    }
    return (long)o;
}

void tok_bytelevel_finish(p3_tokenizer *tok) {
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        tok->byte_id[b] = tok_lookup(tok, &c, 1);
    }
    tok->space_id = -1; /* no "▁" word marks */
}

int32_t tok_bytelevel_lookup(const p3_tokenizer *tok, const char *s, size_t len) {
    uint8_t stack_buf[256];
    uint8_t *buf = len <= sizeof stack_buf ? stack_buf : p3_malloc(len);
    long n = buf ? tok_bytelevel_to_bytes(s, len, buf) : -1;
    int32_t id = n < 0 ? -1 : tok_lookup(tok, (const char *)buf, (size_t)n);
    if (buf != stack_buf) p3_free(buf);
    return id;
}

p3_status tok_bytelevel_set_piece(p3_tokenizer *tok, int32_t id, const char *s, size_t len,
                                  p3_error *err) {
    uint8_t stack_buf[256];
    uint8_t *buf = len <= sizeof stack_buf ? stack_buf : p3_malloc(len);
    if (!buf) return p3_fail(err, PHI3C_ERR_NOMEM, "%s: out of memory", tok->what);
    long n = tok_bytelevel_to_bytes(s, len, buf);
    p3_status st = n < 0
                       ? p3_fail(err, PHI3C_ERR_FORMAT,
                                 "%s: token %ld holds a character outside the byte-level alphabet",
                                 tok->what, (long)id)
                       : tok_set_piece(tok, id, (const char *)buf, (size_t)n, P3_PIECE_NORMAL, err);
    if (buf != stack_buf) p3_free(buf);
    return st;
}
