/* fuzz_gguf.c: libFuzzer target for the GGUF reader: any bytes parse or fail with a message naming
 * the file; accepted metadata (nested arrays included) and tensors are walked end to end, every
 * tensor's first row dequantized, and the phi3 config mapping run. */
#include "gguf_phi3.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk(const p3_gguf_value *v) {
    size_t n = p3_gguf_array_len(v);
    for (size_t i = 0; i < n; i++) {
        p3_gguf_str s;
        int64_t x;
        double d;
        if (p3_gguf_array_string(v, i, &s) && s.len && (s.s[0] == 1 && s.s[s.len - 1] == 2))
            continue; /* touches both ends of the view */
        if (p3_gguf_array_item(v, i)) walk(p3_gguf_array_item(v, i));
        p3_gguf_array_int(v, i, &x);
        p3_gguf_array_float(v, i, &d);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    p3_gguf *g = NULL;
    p3_error err = {0};
    if (p3_gguf_parse(data, size, "fuzz.gguf", &g, &err) != PHI3C_OK) {
        if (strncmp(err.message, "fuzz.gguf", 9) != 0) __builtin_trap();
        return 0;
    }
    for (size_t i = 0; i < g->n_kvs; i++) {
        const p3_gguf_kv *kv = &g->kvs[i];
        if (!p3_utf8_valid(kv->key.s, kv->key.len)) __builtin_trap();
        if (kv->value.type == P3_GGUF_STRING && kv->value.v.str.len)
            (void)*(volatile const char *)(kv->value.v.str.s + kv->value.v.str.len - 1);
        walk(&kv->value);
    }
    static float row[1 << 14];
    for (size_t i = 0; i < g->n_tensors; i++) {
        const p3_tensor *t = &g->tensors[i];
        int64_t cols = t->shape[t->n_dims - 1];
        if (cols > (int64_t)(sizeof row / sizeof row[0])) continue;
        if (p3_tensor_to_f32(t, 0, (size_t)cols, row, &err) != PHI3C_OK) __builtin_trap();
    }
    p3_config cfg;
    p3_gguf_config(g, "fuzz.gguf", &cfg, &err);
    p3_gguf_free(g);
    return 0;
}
