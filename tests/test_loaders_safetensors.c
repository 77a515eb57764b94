/* test_loaders_safetensors.c: the safetensors reader on the oracle fixtures (written by the
 * safetensors library) cross-checked against the GGUFs of the same weights (written by the gguf
 * package), single and sharded, plus small files built byte by byte from the format spec. */
#include "safetensors.h"
#include "source.h"
#include "test_loaders_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Every tensor of a (HF name) appears in b with the same shape and the same f32 values. */
static void check_same_weights(p3_test_ctx *t, const p3_model_source *a, const p3_model_source *b) {
    for (size_t i = 0; i < a->n_tensors; i++) {
        const p3_tensor *x = &a->tensors[i];
        const p3_tensor *y = p3_source_find(b, x->hf_name);
        if (!CHECK_MSG(y != NULL, "%s missing in %s", x->hf_name, b->path)) continue;
        bool same_shape = x->n_dims == y->n_dims;
        size_t count = 1;
        for (int d = 0; same_shape && d < x->n_dims; d++) {
            same_shape = x->shape[d] == y->shape[d];
            count *= (size_t)x->shape[d];
        }
        if (!CHECK_MSG(same_shape, "%s: shapes differ", x->hf_name)) continue;
        float *fx = malloc(count * sizeof *fx), *fy = malloc(count * sizeof *fy);
        p3_error err = {0};
        if (CHECK_OK(p3_tensor_to_f32(x, 0, count, fx, &err), &err) &&
            CHECK_OK(p3_tensor_to_f32(y, 0, count, fy, &err), &err))
            CHECK_MSG(memcmp(fx, fy, count * sizeof *fx) == 0, "%s: values differ", x->hf_name);
        free(fx);
        free(fy);
    }
}

static p3_model_source *open_ok(p3_test_ctx *t, const char *path) {
    p3_model_source *src = NULL;
    p3_error err = {0};
    CHECK_MSG(p3_source_open(path, &src, &err) == PHI3C_OK, "%s: %s", path, err.message);
    return src;
}

P3_TEST(safetensors_fixture_folders_match_their_ggufs) {
    static const char *const variants[] = {"mini4k", "longrope", "medium", "phi4mini"};
    for (size_t v = 0; v < P3_ARRAY_LEN(variants); v++) {
        char dir[256], gguf[256];
        snprintf(dir, sizeof dir, "tests/fixtures/%s/hf-bf16", variants[v]);
        snprintf(gguf, sizeof gguf, "tests/fixtures/%s/model-bf16.gguf", variants[v]);
        p3_model_source *hf = open_ok(t, dir), *gg = open_ok(t, gguf);
        if (hf && gg) {
            p3_error err = {0};
            CHECK(hf->format == P3_FORMAT_SAFETENSORS && hf->has_config && hf->n_files == 1);
            CHECK_OK(p3_source_check_tensors(hf, &err), &err);
            CHECK(hf->tensors[0].dtype == P3_DT_BF16);
            CHECK(hf->tokenizer_dir == NULL); /* the fixtures have no tokenizer */
            check_same_weights(t, hf, gg);
            /* tied phi4mini: no lm_head; the others have one */
            CHECK_EQ_INT(p3_source_find(hf, "lm_head.weight") == NULL, v == 3);
        }
        p3_source_close(hf);
        p3_source_close(gg);
    }
}

P3_TEST(safetensors_sharded_f32_matches_gguf_f32) {
    p3_model_source *hf = open_ok(t, "tests/fixtures/mini4k/hf-f32");
    p3_model_source *gg = open_ok(t, "tests/fixtures/mini4k/model-f32.gguf");
    if (hf && gg) {
        p3_error err = {0};
        CHECK_EQ_INT(hf->n_files, 2);
        CHECK_EQ_INT(hf->n_tensors, 3 + 6 * 2);
        CHECK_OK(p3_source_check_tensors(hf, &err), &err);
        for (size_t i = 0; i < hf->n_tensors; i++) CHECK(hf->tensors[i].dtype == P3_DT_F32);
        uint64_t sizes = 0;
        for (size_t i = 0; i < hf->n_files; i++) sizes += hf->files[i].size;
        CHECK(hf->file_bytes == sizes);
        check_same_weights(t, hf, gg);
        check_same_weights(t, gg, hf);
    }
    p3_source_close(hf);
    p3_source_close(gg);
}

/* Known encodings: F32 1.5, F16 0x3c00 = 1, 0xc000 = -2, BF16 0x3f80 = 1, 0xc040 = -3. */
P3_TEST(safetensors_synthetic_file) {
    const char *dir = p3_test_tmpdir(t);
    uint8_t data[16] = {0};
    float f = 1.5f;
    memcpy(data, &f, 4);
    const uint8_t halves[] = {0x00, 0x3c, 0x00, 0xc0, 0x80, 0x3f, 0x40, 0xc0};
    memcpy(data + 8, halves, 8);
    bytebuf b = {0};
    make_safetensors(
        &b,
        "{\"__metadata__\": {\"format\": \"pt\"}, "
        "\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}, "
        "\"h\": {\"dtype\": \"F16\", \"shape\": [1, 2], \"data_offsets\": [8, 12]}, "
        "\"b\": {\"dtype\": \"BF16\", \"shape\": [2], \"data_offsets\": [12, 16]}, "
        "\"empty\": {\"dtype\": \"F32\", \"shape\": [0, 4], \"data_offsets\": [4, 4]}}",
        data, sizeof data, false);
    p3_tensor *ts = NULL;
    size_t n = 0;
    p3_error err = {0};
    if (CHECK_OK(p3_safetensors_parse(b.p, b.n, "x.safetensors", &ts, &n, &err), &err)) {
        CHECK_EQ_INT(n, 4);
        float out[2];
        for (size_t i = 0; i < n; i++) {
            const p3_tensor *x = &ts[i];
            if (strcmp(x->name, "a") == 0) {
                CHECK(p3_tensor_to_f32(x, 0, 1, out, &err) == PHI3C_OK && out[0] == 1.5f);
            } else if (strcmp(x->name, "h") == 0) {
                CHECK(x->n_dims == 2 && x->shape[0] == 1 && x->shape[1] == 2);
                CHECK(p3_tensor_to_f32(x, 0, 2, out, &err) == PHI3C_OK && out[0] == 1.0f &&
                      out[1] == -2.0f);
                CHECK(p3_tensor_to_f32(x, 1, 1, out, &err) == PHI3C_OK && out[0] == -2.0f);
                CHECK_STATUS(p3_tensor_to_f32(x, 1, 2, out, &err), PHI3C_ERR_INVALID_ARG);
            } else if (strcmp(x->name, "b") == 0) {
                CHECK(p3_tensor_to_f32(x, 0, 2, out, &err) == PHI3C_OK && out[0] == 1.0f &&
                      out[1] == -3.0f);
            } else {
                CHECK(strcmp(x->name, "empty") == 0 && x->nbytes == 0);
            }
        }
    }
    p3_free(ts);
    /* the same file on disk beside a config.json opens as a bare safetensors file */
    char cfg[1024];
    tiny_config_json(cfg, sizeof cfg, 8, 64, 32, 2);
    write_test_file(t, dir, "config.json", cfg, strlen(cfg), 0);
    const char *path = write_test_file(t, dir, "weights.safetensors", b.p, b.n, 1);
    p3_model_source *src = open_ok(t, path);
    if (src) {
        CHECK(src->has_config && src->n_tensors == 4 && src->config.hidden_size == 64);
        /* it is not a whole model: the check names the first missing tensor and its shape */
        CHECK_STATUS(p3_source_check_tensors(src, &err), PHI3C_ERR_FORMAT);
        CHECK(strstr(err.message, "model.embed_tokens.weight") && strstr(err.message, "[8, 64]"));
    }
    p3_source_close(src);
    bb_free(&b);
}
