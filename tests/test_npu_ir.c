/* test_npu_ir.c: the NPU input formats at the byte level: the NGRAPH_LITE header of the graph
 * extension (layout of intel/linux-npu-driver's umd-test), the repacking of phi3c's INT4 blocks
 * into OpenVINO's 4-bit order (element 0 in the low nibble, as OpenVINO's runtime read it in
 * tests/stages/npu.sh), and the structure of the emitted IR. OpenVINO's numeric check of the IR
 * is tests/stages/npu.sh. */
#include "harness.h"
#include "npu_ir.h"

#include <string.h>

P3_TEST(npu_ngraph_lite_bytes) {
    char xml[] = "<net/>";
    uint8_t bin[3] = {0xAA, 0xBB, 0xCC};
    p3_npu_ir ir = {.xml = xml, .xml_size = 6, .bin = bin, .bin_size = 3};
    uint8_t *buf = NULL;
    size_t size = 0;
    p3_error err = {0};
    CHECK_EQ_INT(p3_npu_ngraph_lite(0x0506, 0x0708, &ir, &buf, &size, &err), PHI3C_OK);
    static const uint8_t expected[] = {
        0x06, 0x05, 0x08, 0x07,                         /* u16 major, u16 minor */
        0x02, 0x00, 0x00, 0x00,                         /* u32 parts = 2 */
        0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* u64 xml size */
        '<',  'n',  'e',  't',  '/',  '>',              /* xml, no NUL */
        0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* u64 bin size */
        0xAA, 0xBB, 0xCC,
    };
    CHECK_EQ_INT(size, sizeof expected);
    CHECK(buf && size == sizeof expected && memcmp(buf, expected, size) == 0);
    p3_free(buf);
}

P3_TEST(npu_ngraph_lite_large_sizes_are_64_bit) {
    /* A size above 4 GiB must not be truncated; the buffer itself is not built here. */
    p3_npu_ir ir = {.xml = NULL, .xml_size = SIZE_MAX - 8, .bin = NULL, .bin_size = 16};
    uint8_t *buf = (uint8_t *)&ir;
    size_t size = 1;
    p3_error err = {0};
    CHECK_EQ_INT(p3_npu_ngraph_lite(1, 2, &ir, &buf, &size, &err), PHI3C_ERR_INVALID_ARG);
    CHECK(buf == NULL && size == 0);
}

/* One block whose q[j] = j % 16: phi3c keeps q[j] and q[j + 64] in byte j. */
static void make_block(p3_block_i4s *b, uint16_t scale) {
    b->d = scale;
    for (int j = 0; j < P3_QK / 2; j++) b->qs[j] = (uint8_t)((j % 16) | (((j + 64) % 16) << 4));
}

P3_TEST(npu_pack_i4s_nibble_order) {
    p3_block_i4s blocks[2];
    make_block(&blocks[0], 0x3C00);
    make_block(&blocks[1], 0x4000);
    uint8_t i4[128], u4[128];
    uint16_t s[2];
    p3_npu_pack_i4s(blocks, 1, 256, P3_NPU_W_I4, i4, s);
    CHECK_EQ_INT(s[0], 0x3C00);
    CHECK_EQ_INT(s[1], 0x4000);
    p3_npu_pack_i4s(blocks, 1, 256, P3_NPU_W_U4, u4, s);
    for (int e = 0; e < 256; e++) {
        int q = (e % 128) % 16; /* the block's q of element e */
        int lo_hi = e % 2 ? 4 : 0;
        int got_u = (u4[e / 2] >> lo_hi) & 0xF;
        int got_i = (i4[e / 2] >> lo_hi) & 0xF;
        int signed_i = got_i >= 8 ? got_i - 16 : got_i; /* two's complement nibble */
        if (!CHECK_MSG(got_u == q && signed_i == q - 8, "element %d: u4 %d i4 %d, q %d", e, got_u,
                       signed_i, q))
            break;
    }
    CHECK_EQ_INT(u4[0], 0x10); /* elements 0 and 1: q 0 (low) and q 1 (high) */
    CHECK_EQ_INT(i4[0], 0x98); /* -8 = 0x8 low, -7 = 0x9 high */
}

static bool contains(const char *text, const char *what) {
    return strstr(text, what) != NULL;
}

P3_TEST(npu_ir_inputs_graph) {
    p3_npu_matmul_spec spec = {.rows = 300,
                               .cols = 256,
                               .tokens = 16,
                               .act = P3_NPU_ACT_F16,
                               .wtype = P3_NPU_W_I4,
                               .weights_as_inputs = true};
    p3_npu_ir ir;
    p3_error err = {0};
    CHECK_EQ_INT(p3_npu_ir_emit(&spec, &ir, &err), PHI3C_OK);
    CHECK_EQ_INT(strlen(ir.xml), ir.xml_size);
    CHECK(contains(ir.xml, "<net name=\"p3_matmul_i4g128\" version=\"11\">"));
    CHECK(contains(ir.xml, "name=\"x\" type=\"Parameter\" version=\"opset1\"><data "
                           "shape=\"16,256\" element_type=\"f16\"/>"));
    CHECK(contains(ir.xml, "name=\"w\" type=\"Parameter\" version=\"opset1\"><data "
                           "shape=\"300,2,128\" element_type=\"i4\"/>"));
    CHECK(contains(ir.xml, "name=\"scale\" type=\"Parameter\" version=\"opset1\"><data "
                           "shape=\"300,2,1\" element_type=\"f16\"/>"));
    CHECK(contains(ir.xml, "type=\"MatMul\" version=\"opset1\"><data transpose_a=\"false\" "
                           "transpose_b=\"true\"/>"));
    CHECK(!contains(ir.xml, "Subtract") && !contains(ir.xml, "opset8"));
    /* the .bin holds only the Reshape target {300, 256} as i64 */
    CHECK_EQ_INT(ir.bin_size, 16);
    int64_t shape[2];
    memcpy(shape, ir.bin, sizeof shape);
    CHECK(shape[0] == 300 && shape[1] == 256);
    CHECK(contains(ir.xml, "element_type=\"i64\" shape=\"2\" offset=\"0\" size=\"16\""));
    p3_npu_ir_free(&ir);
}

P3_TEST(npu_ir_constant_weights_in_bin) {
    uint8_t w[3 * 128 / 2];
    uint16_t s[3];
    for (size_t i = 0; i < sizeof w; i++) w[i] = (uint8_t)(i * 7);
    for (int i = 0; i < 3; i++) s[i] = (uint16_t)(0x3C00 + i);
    p3_npu_matmul_spec spec = {.rows = 3,
                               .cols = 128,
                               .tokens = 1,
                               .act = P3_NPU_ACT_F32,
                               .wtype = P3_NPU_W_U4,
                               .weights = w,
                               .scales = s};
    p3_npu_ir ir;
    p3_error err = {0};
    CHECK_EQ_INT(p3_npu_ir_emit(&spec, &ir, &err), PHI3C_OK);
    CHECK(ir.bin_size == 192 + 6 + 2 + 16 + 4); /* weights, scales, pad to 8, shape, zero */
    CHECK(memcmp(ir.bin, w, sizeof w) == 0 && memcmp(ir.bin + 192, s, sizeof s) == 0);
    CHECK(contains(ir.xml, "element_type=\"u4\" shape=\"3,1,128\" offset=\"0\" size=\"192\""));
    CHECK(contains(ir.xml, "element_type=\"f16\" shape=\"3,1,1\" offset=\"192\" size=\"6\""));
    CHECK(contains(ir.xml, "element_type=\"i64\" shape=\"2\" offset=\"200\" size=\"16\""));
    float zero;
    memcpy(&zero, ir.bin + 216, sizeof zero);
    CHECK(zero == 8.0f && contains(ir.xml, "type=\"Subtract\""));
    p3_npu_ir_free(&ir);
}

P3_TEST(npu_ir_rejects_bad_specs) {
    p3_npu_ir ir;
    p3_error err = {0};
    p3_npu_matmul_spec spec = {.rows = 4, .cols = 100, .tokens = 1, .weights_as_inputs = true};
    CHECK_EQ_INT(p3_npu_ir_emit(&spec, &ir, &err), PHI3C_ERR_INVALID_ARG);
    CHECK(contains(err.message, "multiple of 128"));
    spec.cols = 128;
    spec.tokens = 0;
    CHECK_EQ_INT(p3_npu_ir_emit(&spec, &ir, &err), PHI3C_ERR_INVALID_ARG);
    spec.tokens = 1;
    spec.weights_as_inputs = false; /* constants without data */
    CHECK_EQ_INT(p3_npu_ir_emit(&spec, &ir, &err), PHI3C_ERR_INVALID_ARG);
    spec.weights_as_inputs = true;
    spec.rows = (int64_t)1 << 40;
    CHECK_EQ_INT(p3_npu_ir_emit(&spec, &ir, &err), PHI3C_ERR_INVALID_ARG);
    CHECK(ir.xml == NULL && ir.bin == NULL);
}
