/* fuzz_safetensors.c: libFuzzer target for the safetensors reader: any bytes parse or fail with a
 * message naming the file; every accepted tensor view lies inside the input and converts to f32
 * (ASan catches any read outside the exact-size input buffer). */
#include "safetensors.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    p3_tensor *tensors = NULL;
    size_t n = 0;
    p3_error err = {0};
    if (p3_safetensors_parse(data, size, "fuzz.safetensors", &tensors, &n, &err) == PHI3C_OK) {
        float buf[64];
        for (size_t i = 0; i < n; i++) {
            const p3_tensor *t = &tensors[i];
            const uint8_t *p = t->data;
            if (p < data || t->nbytes > size || p + t->nbytes > data + size) __builtin_trap();
            size_t count = t->nbytes / (t->dtype == P3_DT_F32 ? 4 : 2);
            if (count > 64) count = 64;
            if (p3_tensor_to_f32(t, 0, count, buf, &err) != PHI3C_OK) __builtin_trap();
        }
    } else if (strncmp(err.message, "fuzz.safetensors", 16) != 0) {
        __builtin_trap();
    }
    p3_free(tensors);
    return 0;
}
