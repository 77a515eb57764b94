/* test_common.c: common/ utilities: f16/bf16 conversion against known IEEE encodings, overflow
 * checks, UTF-8 validation, decoding and encoding, dtype row sizes. */
#include "harness.h"
#include "p3_dtype.h"

#include <math.h>
#include <string.h>

P3_TEST(common_f16_known_encodings) {
    /* encodings from the IEEE 754 binary16 definition */
    CHECK_EQ_INT(p3_f32_to_f16(1.0f), 0x3c00);
    CHECK_EQ_INT(p3_f32_to_f16(-2.0f), 0xc000);
    CHECK_EQ_INT(p3_f32_to_f16(65504.0f), 0x7bff);
    CHECK_EQ_INT(p3_f32_to_f16(65520.0f), 0x7c00);           /* rounds up to infinity */
    CHECK_EQ_INT(p3_f32_to_f16(5.9604645e-08f), 0x0001);     /* smallest subnormal */
    CHECK_EQ_INT(p3_f32_to_f16(1.0f + 1.0f / 2048), 0x3c00); /* tie rounds to even */
    CHECK_EQ_INT(p3_f32_to_f16(1.0f + 3.0f / 2048), 0x3c02); /* tie rounds to even (up) */
    CHECK(p3_f16_to_f32(0x3555) == 0.333251953125f);
    CHECK(p3_f16_to_f32(0x0001) == 5.9604645e-08f);
    CHECK(isinf(p3_f16_to_f32(0xfc00)) && p3_f16_to_f32(0xfc00) < 0);
    CHECK(isnan(p3_f16_to_f32(0x7e00)));
}

P3_TEST(common_f16_roundtrip_all_finite) {
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00) continue; /* inf/NaN */
        uint16_t back = p3_f32_to_f16(p3_f16_to_f32((uint16_t)h));
        if (!CHECK_MSG(back == h, "f16 0x%04x round-trips to 0x%04x", h, back)) break;
    }
}

P3_TEST(common_bf16_rounding) {
    CHECK_EQ_INT(p3_f32_to_bf16(1.0f), 0x3f80);
    CHECK_EQ_INT(p3_f32_to_bf16(1.00390625f), 0x3f80); /* halfway, even stays */
    CHECK_EQ_INT(p3_f32_to_bf16(1.01171875f), 0x3f82); /* halfway, odd rounds up */
    CHECK(p3_bf16_to_f32(0xc040) == -3.0f);
}

P3_TEST(common_overflow_checks) {
    size_t out = 7;
    CHECK(!p3_mul_size(SIZE_MAX / 2 + 1, 2, &out));
    CHECK(out == 7);
    CHECK(p3_mul_size(1u << 20, 1u << 10, &out) && out == (size_t)1 << 30);
    CHECK(!p3_add_size(SIZE_MAX, 1, &out));
    uint64_t u = 0;
    CHECK(!p3_mul_u64(UINT64_MAX, 3, &u));
}

P3_TEST(common_utf8_validation) {
    CHECK(p3_utf8_valid("plain", 5));
    CHECK(p3_utf8_valid("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9)); /* é € 😀 */
    CHECK(!p3_utf8_valid("\xc0\xaf", 2));                            /* overlong '/' */
    CHECK(!p3_utf8_valid("\xed\xa0\x80", 3));                        /* surrogate */
    CHECK(!p3_utf8_valid("\xe2\x82", 2));                            /* truncated */
    CHECK(!p3_utf8_valid("\xf4\x90\x80\x80", 4));                    /* > U+10FFFF */
    CHECK(!p3_utf8_valid("\xff", 1));
}

/* Known encodings from the Unicode standard's table 3-7, every boundary of every length. */
P3_TEST(common_utf8_decode_encode) {
    static const struct {
        uint32_t cp;
        const char *bytes;
    } known[] = {{0x0, "\x00"},
                 {0x7F, "\x7f"},
                 {0x80, "\xc2\x80"},
                 {0x7FF, "\xdf\xbf"},
                 {0x800, "\xe0\xa0\x80"},
                 {0xD7FF, "\xed\x9f\xbf"},
                 {0xE000, "\xee\x80\x80"},
                 {0xFFFF, "\xef\xbf\xbf"},
                 {0x10000, "\xf0\x90\x80\x80"},
                 {0x10FFFF, "\xf4\x8f\xbf\xbf"}};
    for (size_t i = 0; i < P3_ARRAY_LEN(known); i++) {
        size_t n = known[i].cp ? strlen(known[i].bytes) : 1;
        char out[4];
        uint32_t cp = 0xFFFFFFFF;
        CHECK(p3_utf8_encode(known[i].cp, out) == n && memcmp(out, known[i].bytes, n) == 0);
        CHECK(p3_utf8_decode((const uint8_t *)known[i].bytes, n, &cp) == n && cp == known[i].cp);
        CHECK(p3_utf8_decode((const uint8_t *)known[i].bytes, n - 1, &cp) == 0 || n == 1);
    }
    char out[4];
    CHECK(p3_utf8_encode(0xD800, out) == 0 && p3_utf8_encode(0x110000, out) == 0);
    CHECK(p3_utf8_decode((const uint8_t *)"\xc1\xbf", 2, NULL) == 0); /* overlong U+007F */
    CHECK(p3_utf8_decode((const uint8_t *)"\x80", 1, NULL) == 0);     /* stray continuation */
    CHECK(p3_utf8_decode((const uint8_t *)"a", 0, NULL) == 0);
}

/* Row sizes from the formats' definitions: ggml-common.h blocks, quant/int4.h groups. */
P3_TEST(common_dtype_row_bytes_and_kinds) {
    size_t b = 0;
    CHECK(p3_dtype_row_bytes(P3_DT_Q4_K, 512, &b) && b == 288);
    CHECK(p3_dtype_row_bytes(P3_DT_Q6_K, 256, &b) && b == 210);
    CHECK(p3_dtype_row_bytes(P3_DT_Q8_0, 64, &b) && b == 68);
    CHECK(!p3_dtype_row_bytes(P3_DT_Q4_0, 33, &b));
    CHECK(p3_dtype_row_bytes(P3_DT_I4G128S, 300, &b) && b == 3 * 66);
    CHECK(p3_dtype_row_bytes(P3_DT_I4G128A, 128, &b) && b == 68);
    CHECK(p3_dtype_row_bytes(P3_DT_BF16, 7, &b) && b == 14);
    CHECK(!p3_dtype_row_bytes(P3_DT_COUNT, 1, &b));
    CHECK(p3_dtype_is_int4(P3_DT_I4G128S) && p3_dtype_is_int4(P3_DT_I4G128A));
    CHECK(!p3_dtype_is_int4(P3_DT_Q4_0) && !p3_dtype_is_int4(P3_DT_F32));
    CHECK(p3_dtype_is_float(P3_DT_BF16) && !p3_dtype_is_float(P3_DT_I32));
    CHECK(strcmp(p3_dtype_name(P3_DT_Q5_K), "Q5_K") == 0 &&
          strcmp(p3_dtype_name(P3_DT_COUNT), "?") == 0);
}

P3_TEST(common_error_messages_name_the_file) {
    p3_mapped_file f;
    p3_error err = {0};
    CHECK_STATUS(p3_file_map(&f, "/nonexistent/model.gguf", &err), PHI3C_ERR_IO);
    CHECK(strstr(err.message, "/nonexistent/model.gguf") != NULL);
    CHECK(strcmp(phi3c_strerror(PHI3C_ERR_FORMAT), "malformed file") == 0);
}
