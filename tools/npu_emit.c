/* npu_emit.c: writes the NPU matmul graphs phi3c emits (OpenVINO IR) for every Phi-3-mini matmul
 * shape at reduced size, with their inputs and the scalar w4a32 reference output, so that
 * tools/npu_check.py can run them on OpenVINO's CPU runtime and compare (tests/stages/npu.sh).
 *
 * usage: npu_emit DIR
 * Writes DIR/cases.txt (one line per case: name tokens K O act wtype weights) and per case
 * DIR/<name>/model.xml, model.bin, x.bin (f32 or f16 [T,K]), w.bin (4-bit [O,K/128,128]) and
 * scale.bin (f16 [O,K/128]) when the weights are graph inputs, ref.bin (f32 [T,O], from
 * p3_matmul_w4a32_ref on the unrounded f32 activations). */
#include "int4.h"
#include "npu_ir.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Phi-3-mini (hidden 3072, intermediate 8192, vocab 32064) with every dimension divided by 8:
 * K stays a multiple of 128. */
typedef struct shape {
    const char *name;
    int64_t rows, cols; /* O, K */
} shape;
static const shape shapes[] = {
    {"qkv", 9216 / 8, 3072 / 8},      {"o", 3072 / 8, 3072 / 8},
    {"gate_up", 16384 / 8, 3072 / 8}, {"down", 3072 / 8, 8192 / 8},
    {"lm_head", 32064 / 8, 3072 / 8},
};

typedef struct variant {
    const char *tag;
    p3_npu_act act;
    p3_npu_wtype wtype;
    bool inputs;
} variant;
static const variant variants[] = {
    {"in-f32-i4", P3_NPU_ACT_F32, P3_NPU_W_I4, true},
    {"in-f16-i4", P3_NPU_ACT_F16, P3_NPU_W_I4, true},
    {"const-f32-i4", P3_NPU_ACT_F32, P3_NPU_W_I4, false},
    {"const-f32-u4", P3_NPU_ACT_F32, P3_NPU_W_U4, false},
};

static uint64_t rng_state = 0x9E3779B97F4A7C15u;
static float uniform(void) { /* xorshift64*, in [-1, 1) */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    uint64_t r = rng_state * 0x2545F4914F6CDD1Du;
    return (float)((double)(r >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static int write_file(const char *dir, const char *name, const void *data, size_t size) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        fprintf(stderr, "npu_emit: cannot write %s: %s\n", path, strerror(errno));
        return 1;
    }
    return 0;
}

typedef struct matrices {
    p3_block_i4s *blocks;
    uint8_t *packed;
    uint16_t *scales;
    float *x, *ref;
    uint16_t *x16;
} matrices;

static void free_matrices(matrices *m) {
    free(m->blocks);
    free(m->packed);
    free(m->scales);
    free(m->x);
    free(m->ref);
    free(m->x16);
}

/* Random weights quantized to symmetric INT4 blocks, random activations, the reference output. */
static int make_matrices(const shape *s, int64_t tokens, matrices *m) {
    int64_t groups = s->cols / P3_QK;
    size_t n_blocks = (size_t)(s->rows * groups);
    m->blocks = malloc(n_blocks * sizeof *m->blocks);
    m->packed = malloc(p3_npu_weight_bytes(s->rows, s->cols));
    m->scales = malloc(n_blocks * sizeof *m->scales);
    m->x = malloc((size_t)(tokens * s->cols) * sizeof(float));
    m->x16 = malloc((size_t)(tokens * s->cols) * sizeof(uint16_t));
    m->ref = malloc((size_t)(tokens * s->rows) * sizeof(float));
    float *row = malloc((size_t)s->cols * sizeof(float));
    if (!m->blocks || !m->packed || !m->scales || !m->x || !m->x16 || !m->ref || !row) {
        free(row);
        fprintf(stderr, "npu_emit: out of memory\n");
        return 1;
    }
    for (int64_t o = 0; o < s->rows; o++) {
        for (int64_t k = 0; k < s->cols; k++) row[k] = uniform() * 0.05f;
        p3_quantize_row_i4s(row, s->cols, m->blocks + o * groups, P3_QUANT_RTN);
    }
    free(row);
    for (int64_t i = 0; i < tokens * s->cols; i++) {
        m->x[i] = uniform() * 2.0f;
        m->x16[i] = p3_f32_to_f16(m->x[i]);
    }
    p3_error err = {0};
    if (p3_matmul_w4a32_ref(m->ref, m->x, m->blocks, P3_DT_I4G128S, s->rows, s->cols, tokens) !=
        PHI3C_OK) {
        fprintf(stderr, "npu_emit: reference matmul failed\n");
        return 1;
    }
    (void)err;
    return 0;
}

static int emit_case(const char *root, FILE *list, const shape *s, int64_t tokens,
                     const variant *v) {
    char name[128], dir[1024];
    snprintf(name, sizeof name, "%s-t%lld-%s", s->name, (long long)tokens, v->tag);
    snprintf(dir, sizeof dir, "%s/%s", root, name);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "npu_emit: cannot create %s: %s\n", dir, strerror(errno));
        return 1;
    }
    matrices m = {0};
    int rc = make_matrices(s, tokens, &m);
    if (rc) {
        free_matrices(&m);
        return rc;
    }
    p3_npu_pack_i4s(m.blocks, s->rows, s->cols, v->wtype, m.packed, m.scales);
    p3_npu_matmul_spec spec = {.rows = s->rows,
                               .cols = s->cols,
                               .tokens = tokens,
                               .act = v->act,
                               .wtype = v->wtype,
                               .weights_as_inputs = v->inputs,
                               .weights = m.packed,
                               .scales = m.scales};
    p3_npu_ir ir;
    p3_error err = {0};
    if (p3_npu_ir_emit(&spec, &ir, &err) != PHI3C_OK) {
        fprintf(stderr, "npu_emit: %s: %s\n", name, err.message);
        free_matrices(&m);
        return 1;
    }
    size_t nx = (size_t)(tokens * s->cols), groups = (size_t)(s->rows * (s->cols / P3_QK));
    bool f32 = v->act == P3_NPU_ACT_F32;
    rc |= write_file(dir, "model.xml", ir.xml, ir.xml_size);
    rc |= write_file(dir, "model.bin", ir.bin, ir.bin_size);
    rc |= write_file(dir, "x.bin", f32 ? (void *)m.x : (void *)m.x16,
                     nx * (f32 ? sizeof(float) : sizeof(uint16_t)));
    if (v->inputs) {
        rc |= write_file(dir, "w.bin", m.packed, p3_npu_weight_bytes(s->rows, s->cols));
        rc |= write_file(dir, "scale.bin", m.scales, groups * sizeof(uint16_t));
    }
    rc |= write_file(dir, "ref.bin", m.ref, (size_t)(tokens * s->rows) * sizeof(float));
    fprintf(list, "%s %lld %lld %lld %s %s %s\n", name, (long long)tokens, (long long)s->cols,
            (long long)s->rows, f32 ? "f32" : "f16", v->wtype == P3_NPU_W_I4 ? "i4" : "u4",
            v->inputs ? "inputs" : "const");
    p3_npu_ir_free(&ir);
    free_matrices(&m);
    return rc;
}

int main(int argc, char **argv) {
    if (argc != 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: npu_emit DIR\n");
        return 2;
    }
    const char *root = argv[1];
    if (mkdir(root, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "npu_emit: cannot create %s: %s\n", root, strerror(errno));
        return 1;
    }
    char list_path[1024];
    snprintf(list_path, sizeof list_path, "%s/cases.txt", root);
    FILE *list = fopen(list_path, "w");
    if (!list) {
        fprintf(stderr, "npu_emit: cannot write %s: %s\n", list_path, strerror(errno));
        return 1;
    }
    int rc = 0, n = 0;
    static const int64_t token_counts[] = {1, 32};
    for (size_t s = 0; s < P3_ARRAY_LEN(shapes); s++)
        for (size_t t = 0; t < P3_ARRAY_LEN(token_counts); t++)
            for (size_t v = 0; v < P3_ARRAY_LEN(variants); v++) {
                /* the U4 form is only there to prove its packing: one shape suffices */
                if (variants[v].wtype == P3_NPU_W_U4 && s != 0) continue;
                rc |= emit_case(root, list, &shapes[s], token_counts[t], &variants[v]);
                n++;
            }
    /* a full prefill chunk of 128 tokens, as the NPU backend compiles it */
    rc |= emit_case(root, list, &shapes[0], 128, &variants[1]);
    n++;
    if (fclose(list) != 0) rc = 1;
    fprintf(stderr, "npu_emit: %d cases in %s\n", n, root);
    return rc;
}
