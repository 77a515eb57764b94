/* p3_dtype.c: names and row sizes of the tensor element types (p3_dtype.h). */
#include "p3.h"
#include "p3_dtype.h"

static const char *const dtype_names[P3_DT_COUNT] = {
    [P3_DT_F32] = "F32",         [P3_DT_F16] = "F16",   [P3_DT_BF16] = "BF16",
    [P3_DT_Q8_0] = "Q8_0",       [P3_DT_Q4_0] = "Q4_0", [P3_DT_Q4_K] = "Q4_K",
    [P3_DT_Q5_K] = "Q5_K",       [P3_DT_Q6_K] = "Q6_K", [P3_DT_I4G128S] = "I4G128S",
    [P3_DT_I4G128A] = "I4G128A", [P3_DT_I32] = "I32",
};

const char *p3_dtype_name(p3_dtype dtype) {
    if ((unsigned)dtype >= P3_DT_COUNT) return "?";
    return dtype_names[dtype];
}

/* Weights per block and bytes per block; 1 element "blocks" for plain types. */
static void block_geometry(p3_dtype dtype, int64_t *per_block, size_t *bytes) {
    switch (dtype) {
    case P3_DT_F32:
        *per_block = 1, *bytes = 4;
        return;
    case P3_DT_I32:
        *per_block = 1, *bytes = 4;
        return;
    case P3_DT_F16:
    case P3_DT_BF16:
        *per_block = 1, *bytes = 2;
        return;
    case P3_DT_Q8_0:
        *per_block = P3_QK8_0, *bytes = P3_Q8_0_BYTES;
        return;
    case P3_DT_Q4_0:
        *per_block = P3_QK4_0, *bytes = P3_Q4_0_BYTES;
        return;
    case P3_DT_Q4_K:
        *per_block = P3_QK_K, *bytes = P3_Q4_K_BYTES;
        return;
    case P3_DT_Q5_K:
        *per_block = P3_QK_K, *bytes = P3_Q5_K_BYTES;
        return;
    case P3_DT_Q6_K:
        *per_block = P3_QK_K, *bytes = P3_Q6_K_BYTES;
        return;
    case P3_DT_I4G128S:
        *per_block = P3_QK, *bytes = P3_I4G128S_BLOCK_BYTES;
        return;
    case P3_DT_I4G128A:
        *per_block = P3_QK, *bytes = P3_I4G128A_BLOCK_BYTES;
        return;
    default:
        *per_block = 0, *bytes = 0;
        return;
    }
}

bool p3_dtype_row_bytes(p3_dtype dtype, int64_t n_cols, size_t *bytes) {
    int64_t per_block;
    size_t block_bytes;
    block_geometry(dtype, &per_block, &block_bytes);
    if (per_block == 0 || n_cols < 0) return false;
    uint64_t blocks;
    if (p3_dtype_is_int4(dtype)) {
        blocks = (uint64_t)n_cols / P3_QK + ((uint64_t)n_cols % P3_QK != 0);
    } else {
        if (n_cols % per_block != 0) return false;
        blocks = (uint64_t)(n_cols / per_block);
    }
    uint64_t total;
    if (!p3_mul_u64(blocks, block_bytes, &total) || total > SIZE_MAX) return false;
    *bytes = (size_t)total;
    return true;
}
