/* npu_ir.h: what the Intel NPU is fed: OpenVINO IR (XML + weights .bin) for one static-shape
 * INT4-g128 symmetric matmul, the repacking of phi3c's INT4 blocks into OpenVINO's 4-bit layout,
 * and the NGRAPH_LITE buffer the graph extension's compiler takes (level-zero-facts.md). */
#ifndef P3_NPU_IR_H
#define P3_NPU_IR_H

#include "int4.h"
#include "p3.h"

/* Element type of the activation input x [T, K] and of the output y [T, O]. */
typedef enum p3_npu_act { P3_NPU_ACT_F16 = 0, P3_NPU_ACT_F32 } p3_npu_act;

/* How the 4-bit weights are stored. I4: signed q - 8 (-8..7), w = scale * q4, the symmetric form
 * the NPU guidance prefers. U4: the block's q (0..15) unchanged and a Subtract of 8 in the graph
 * (OpenVINO's zero-point pattern), kept to prove both packings with OpenVINO. */
typedef enum p3_npu_wtype { P3_NPU_W_I4 = 0, P3_NPU_W_U4 } p3_npu_wtype;

/* One matmul graph: y[t][o] = sum_k x[t][k] * W[o][k], W = scale[o][g] * w4[o][g][j] (k = g*128
 * + j). With weights_as_inputs the 4-bit weights and scales are graph Parameters (inputs 1 and
 * 2 after x), so one compiled graph serves every layer of that shape; otherwise they are
 * Constants read from the .bin (`weights` and `scales` must then be given). */
typedef struct p3_npu_matmul_spec {
    int64_t rows;   /* O, output features */
    int64_t cols;   /* K, input features: a multiple of 128 */
    int64_t tokens; /* T, fixed: 1 for decode, the chunk size for prefill */
    p3_npu_act act;
    p3_npu_wtype wtype;
    bool weights_as_inputs;
    const uint8_t *weights; /* Constants only: O*K/2 bytes in OpenVINO order (p3_npu_pack_i4s) */
    const uint16_t *scales; /* Constants only: f16 [O][K/128] */
} p3_npu_matmul_spec;

/* An emitted IR: the XML text (NUL-terminated, xml_size excludes the NUL) and the .bin. */
typedef struct p3_npu_ir {
    char *xml;
    size_t xml_size;
    uint8_t *bin;
    size_t bin_size;
} p3_npu_ir;

p3_status p3_npu_ir_emit(const p3_npu_matmul_spec *spec, p3_npu_ir *out, p3_error *err);
void p3_npu_ir_free(p3_npu_ir *ir);

/* Bytes of the 4-bit weight tensor [O, K/128, 128]. */
size_t p3_npu_weight_bytes(int64_t rows, int64_t cols);

/* Repacks `rows` rows of symmetric blocks (cols a multiple of 128) into OpenVINO's 4-bit layout:
 * element e of the flat [O, K/128, 128] tensor sits in byte e/2, low nibble when e is even
 * (checked with OpenVINO's runtime by tools/npu_check.py). I4 stores q - 8 in two's complement,
 * U4 stores q. Scales are copied as f16 [O][K/128]. */
void p3_npu_pack_i4s(const p3_block_i4s *blocks, int64_t rows, int64_t cols, p3_npu_wtype wtype,
                     uint8_t *weights, uint16_t *scales);

/* NGRAPH_LITE input of pfnCreate2, packed with no padding: u16 compiler major, u16 minor, u32
 * number of parts (2), u64 XML size, the XML, u64 .bin size, the .bin; integers little-endian as
 * the driver reads them on x86-64. */
p3_status p3_npu_ngraph_lite(uint16_t major, uint16_t minor, const p3_npu_ir *ir, uint8_t **out,
                             size_t *out_size, p3_error *err);

#endif /* P3_NPU_IR_H */
