/* tok_text.c: Unicode White_Space, for the added tokens' strip flags and the o200k split (UTF-8
 * decoding itself is common/'s p3_utf8_decode). */
#include "tok_internal.h"

bool tok_is_unicode_space(uint32_t cp) {
    if (cp == 0x20 || (cp >= 0x09 && cp <= 0x0D)) return true;
    if (cp < 0x85) return false;
    return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
           cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}
