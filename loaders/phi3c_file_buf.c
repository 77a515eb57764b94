/* phi3c_file_buf.c: the growable little-endian byte buffer the native writer builds its header
 * region (and the GGUF tokenizer blob) in. */
#include "phi3c_file_impl.h"

#include <string.h>

void p3n_put_bytes(p3n_buf *b, const void *src, size_t n) {
    if (b->oom) return;
    if (b->len + n > b->cap) {
        size_t cap = P3_MAX(b->cap * 2, b->len + n + 256);
        uint8_t *p = p3_realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

void p3n_put_u32(p3n_buf *b, uint32_t v) {
    uint8_t s[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    p3n_put_bytes(b, s, 4);
}

void p3n_put_u64(p3n_buf *b, uint64_t v) {
    p3n_put_u32(b, (uint32_t)v);
    p3n_put_u32(b, (uint32_t)(v >> 32));
}

void p3n_put_i32(p3n_buf *b, int32_t v) {
    p3n_put_u32(b, (uint32_t)v);
}

void p3n_put_f32(p3n_buf *b, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    p3n_put_u32(b, u);
}

void p3n_put_name(p3n_buf *b, const char *name, size_t field) {
    uint8_t tmp[P3_TENSOR_NAME_MAX] = {0};
    size_t n = strnlen(name, field - 1);
    memcpy(tmp, name, n);
    p3n_put_bytes(b, tmp, field);
}

void p3n_put_zeros(p3n_buf *b, size_t n) {
    static const uint8_t z[64] = {0};
    while (n > 0) {
        size_t k = P3_MIN(n, sizeof z);
        p3n_put_bytes(b, z, k);
        n -= k;
    }
}
