/* fuzz_native.c: libFuzzer target for the native .phi3c reader: any bytes must give a clean
 * status (never a crash or an out-of-bounds read). Each input is tried as is and with its header
 * checksum re-sealed, so mutations reach the table and config checks behind the checksum. */
#include "phi3c_file.h"
#include "phi3c_file_impl.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void open_and_touch(const uint8_t *data, size_t size, bool verify) {
    p3_model_source *src = NULL;
    p3_error err = {0};
    if (p3_native_open_memory(data, size, "fuzz", verify, &src, &err) != PHI3C_OK) return;
    volatile uint8_t sink = 0; /* read the last byte of every view the reader handed out */
    for (size_t i = 0; i < src->n_tensors; i++)
        if (src->tensors[i].nbytes)
            sink ^= ((const uint8_t *)src->tensors[i].data)[src->tensors[i].nbytes - 1];
    for (size_t i = 0; i < src->native->n_blobs; i++)
        if (src->native->blobs[i].size)
            sink ^= src->native->blobs[i].data[src->native->blobs[i].size - 1];
    (void)sink;
    p3_native_close(src);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    open_and_touch(data, size, true);
    if (size < P3N_HEADER_BYTES) return 0;
    uint64_t data_offset = p3n_load_u64(data + 24);
    if (data_offset < P3N_HEADER_BYTES || data_offset > size) return 0;
    uint8_t *copy = p3_malloc(size);
    if (!copy) return 0;
    memcpy(copy, data, size);
    uint64_t h = p3n_header_hash(copy, (size_t)data_offset);
    for (int i = 0; i < 8; i++) copy[P3N_HASH_FIELD + i] = (uint8_t)(h >> (8 * i));
    open_and_touch(copy, size, false);
    open_and_touch(copy, size, true);
    p3_free(copy);
    return 0;
}
