/* test_native_cli.c: `phi3c quantize` end to end on the oracle fixtures: every INT4 row equals the
 * row quantizer applied to the source loader's f32 values, the HF folder and the GGUF of the same
 * weights give identical tensors, the native file reopens through p3_source_open, a corrupted
 * byte is refused by tensor name, and interrupted or failed writes leave no output. */
#include "gguf.h"
#include "harness.h"
#include "phi3c_file.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIX "tests/fixtures/"

/* Runs `phi3c quantize ARGS` (with an optional environment prefix); returns the result. */
static p3_cmd_result quantize(p3_test_ctx *t, const char *env, const char *args) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s %s quantize %s", env ? env : "", p3_test_cli(), args);
    p3_cmd_result r = {0};
    p3_test_run(t, cmd, &r);
    return r;
}

static char *tmp_file(p3_test_ctx *t, const char *name) {
    return p3_path_join(p3_test_tmpdir(t), name);
}

static bool row_matches(p3_test_ctx *t, const p3_tensor *src, const p3_tensor *got, int64_t r,
                        bool asym) {
    int64_t cols = src->shape[1];
    float *x = p3_malloc((size_t)cols * sizeof *x);
    size_t rb = (size_t)p3_groups(cols) * (asym ? sizeof(p3_block_i4a) : sizeof(p3_block_i4s));
    uint8_t *want = p3_malloc(rb);
    p3_error err = {0};
    bool ok = CHECK_OK(p3_tensor_to_f32(src, (size_t)(r * cols), (size_t)cols, x, &err), &err);
    if (asym)
        p3_quantize_row_i4a(x, cols, (p3_block_i4a *)want, P3_QUANT_SEARCH);
    else
        p3_quantize_row_i4s(x, cols, (p3_block_i4s *)want, P3_QUANT_SEARCH);
    ok = ok && CHECK_MSG(memcmp(want, (const uint8_t *)got->data + (size_t)r * rb, rb) == 0,
                         "%s row %lld", got->hf_name, (long long)r);
    p3_free(x);
    p3_free(want);
    return ok;
}

/* Every tensor of the native file against the source: INT4 rows re-quantized independently,
 * 16-bit embedding and f32 norms bit-exact. */
static void check_against_source(p3_test_ctx *t, const char *src_path, const char *out, bool asym) {
    p3_model_source *src = NULL, *nat = NULL;
    p3_error err = {0};
    if (!CHECK_OK(p3_source_open(src_path, &src, &err), &err) ||
        !CHECK_OK(p3_source_open(out, &nat, &err), &err))
        goto done;
    CHECK_EQ_INT(nat->format, P3_FORMAT_PHI3C);
    CHECK(nat->native && nat->native->verified && nat->native->asym == asym);
    CHECK_EQ_INT(nat->n_tensors, src->n_tensors);
    CHECK(nat->config.hidden_size == src->config.hidden_size &&
          nat->config.num_kv_heads == src->config.num_kv_heads &&
          nat->config.sliding_window == src->config.sliding_window &&
          nat->config.rope.type == src->config.rope.type &&
          nat->config.rope.attn_factor == src->config.rope.attn_factor &&
          nat->config.n_stop_ids == src->config.n_stop_ids);
    for (size_t i = 0; i < src->n_tensors; i++) {
        const p3_tensor *s = &src->tensors[i], *g = p3_source_find(nat, s->hf_name);
        if (!CHECK_MSG(g != NULL, "%s missing", s->hf_name)) continue;
        if (p3_dtype_is_int4(g->dtype)) {
            CHECK_EQ_INT(g->dtype, asym ? P3_DT_I4G128A : P3_DT_I4G128S);
            for (int64_t r = 0; r < s->shape[0]; r++)
                if (!row_matches(t, s, g, r, asym)) break;
        } else if (g->dtype == P3_DT_F32) {
            size_t n = g->nbytes / 4;
            float *x = p3_malloc(n * sizeof *x);
            CHECK_OK(p3_tensor_to_f32(s, 0, n, x, &err), &err);
            CHECK_MSG(memcmp(x, g->data, g->nbytes) == 0, "%s f32 values", g->hf_name);
            p3_free(x);
        } else {
            CHECK_MSG(g->dtype == s->dtype && g->nbytes == s->nbytes &&
                          memcmp(g->data, s->data, s->nbytes) == 0,
                      "%s kept as %s", g->hf_name, p3_dtype_name(s->dtype));
        }
    }
done:
    p3_source_close(src);
    p3_source_close(nat);
}

P3_TEST_SLOW(native_cli_hf_and_gguf) {
    char *a = tmp_file(t, "hf.phi3c"), *b = tmp_file(t, "gguf.phi3c"), args[1024];
    snprintf(args, sizeof args, "-m " FIX "mini4k/hf-bf16 -o %s", a);
    p3_cmd_result r = quantize(t, NULL, args);
    CHECK_MSG(r.exit_code == 0, "quantize failed: %s", r.err ? r.err : "");
    CHECK(r.out_len == 0); /* quiet when not on a terminal */
    p3_cmd_result_free(&r);
    check_against_source(t, FIX "mini4k/hf-bf16", a, false);
    snprintf(args, sizeof args, "-m " FIX "mini4k/model-bf16.gguf -o %s --threads 1", b);
    r = quantize(t, NULL, args);
    CHECK_MSG(r.exit_code == 0, "quantize failed: %s", r.err ? r.err : "");
    p3_cmd_result_free(&r);
    /* The GGUF holds the same bf16 weights: every tensor must come out byte-identical. */
    p3_model_source *x = NULL, *y = NULL;
    p3_error err = {0};
    if (CHECK_OK(p3_source_open(a, &x, &err), &err) && CHECK_OK(p3_source_open(b, &y, &err), &err))
        for (size_t i = 0; i < x->n_tensors; i++) {
            const p3_tensor *u = &x->tensors[i], *v = p3_source_find(y, u->hf_name);
            CHECK_MSG(v && v->nbytes == u->nbytes && memcmp(u->data, v->data, u->nbytes) == 0,
                      "%s differs between HF and GGUF sources", u->hf_name);
        }
    if (x) CHECK(p3_native_find_blob(x->native, "config.json") != NULL);
    p3_source_close(x);
    p3_source_close(y);
    p3_free(a);
    p3_free(b);
}

P3_TEST_SLOW(native_cli_partial_groups_asym) {
    char *a = tmp_file(t, "medium.phi3c"), args[1024];
    snprintf(args, sizeof args, "-m " FIX "medium/hf-bf16 -o %s --asym --method search", a);
    p3_cmd_result r = quantize(t, NULL, args);
    CHECK_MSG(r.exit_code == 0, "quantize failed: %s", r.err ? r.err : "");
    p3_cmd_result_free(&r);
    check_against_source(t, FIX "medium/hf-bf16", a, true);
    p3_free(a);
}

P3_TEST(native_cli_usage_and_refusals) {
    char *a = tmp_file(t, "x.phi3c"), args[1024];
    FILE *f = fopen(a, "w");
    fputs("precious", f);
    fclose(f);
    snprintf(args, sizeof args, "-m " FIX "mini4k/hf-bf16 -o %s", a);
    p3_cmd_result r = quantize(t, NULL, args);
    CHECK_EQ_INT(r.exit_code, 1);
    CHECK(r.err && strstr(r.err, "exists") && strstr(r.err, "--force"));
    p3_cmd_result_free(&r);
    snprintf(args, sizeof args, "-m " FIX "mini4k/hf-bf16 -o %s --group 64", a);
    r = quantize(t, NULL, args);
    CHECK_EQ_INT(r.exit_code, 2);
    p3_cmd_result_free(&r);
    r = quantize(t, NULL, "--help");
    CHECK(r.exit_code == 0 && r.out && strstr(r.out, "--asym"));
    p3_cmd_result_free(&r);
    size_t n = 0;
    char *text = p3_test_read_file(t, a, &n);
    CHECK(text && n == 8 && memcmp(text, "precious", 8) == 0);
    p3_free(text);
    p3_free(a);
}

/* Temp files of the writer left in the test's folder. */
static int leftovers(p3_test_ctx *t) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "ls -A %s | grep -c tmp-", p3_test_tmpdir(t));
    p3_cmd_result r = {0};
    p3_test_run(t, cmd, &r);
    int n = r.out ? atoi(r.out) : -1;
    p3_cmd_result_free(&r);
    return n;
}

P3_TEST(native_cli_interrupted_writes) {
    char *a = tmp_file(t, "int.phi3c"), args[1024];
    snprintf(args, sizeof args, "-m " FIX "mini4k/hf-bf16 -o %s", a);
    p3_cmd_result r = quantize(t, "PHI3C_TEST_WRITE_FAULT=enospc:100000", args);
    CHECK_EQ_INT(r.exit_code, 1);
    CHECK_MSG(r.err && strstr(r.err, "disk full"), "stderr: %s", r.err ? r.err : "");
    CHECK(!p3_file_exists(a) && leftovers(t) == 0);
    p3_cmd_result_free(&r);
    r = quantize(t, "PHI3C_TEST_WRITE_FAULT=sigint:100000", args);
    CHECK_EQ_INT(r.exit_code, 1);
    CHECK_MSG(r.err && strstr(r.err, "interrupted"), "stderr: %s", r.err ? r.err : "");
    CHECK(!p3_file_exists(a) && leftovers(t) == 0);
    p3_cmd_result_free(&r);
    r = quantize(t, "PHI3C_TEST_WRITE_FAULT=kill:100000", args);
    CHECK(r.signal == SIGKILL);
    CHECK(!p3_file_exists(a)); /* a temp file may remain; it never has the output's name */
    p3_cmd_result_free(&r);
    p3_free(a);
}

P3_TEST(native_cli_corruption_refused_by_name) {
    char *a = tmp_file(t, "c.phi3c"), args[1024];
    snprintf(args, sizeof args, "-m " FIX "mini4k/hf-bf16 -o %s --method rtn", a);
    p3_cmd_result r = quantize(t, NULL, args);
    CHECK_EQ_INT(r.exit_code, 0);
    p3_cmd_result_free(&r);
    p3_model_source *s = NULL;
    p3_error err = {0};
    if (!CHECK_OK(p3_source_open(a, &s, &err), &err)) goto done;
    const p3_tensor *victim = p3_source_find(s, "model.layers.1.mlp.down_proj.weight");
    long off = victim ? (long)((const uint8_t *)victim->data - s->files[0].data) + 100 : 0;
    p3_source_close(s);
    FILE *f = fopen(a, "r+b");
    if (!CHECK(f && victim)) goto done;
    fseek(f, off, SEEK_SET);
    int c = fgetc(f);
    fseek(f, off, SEEK_SET);
    fputc(c ^ 0x40, f);
    fclose(f);
    CHECK_STATUS(p3_source_open(a, &s, &err), PHI3C_ERR_CHECKSUM);
    CHECK_MSG(strstr(err.message, "model.layers.1.mlp.down_proj.weight") != NULL, "%s",
              err.message);
    CHECK_OK(p3_native_open(a, false, &s, &err), &err); /* --no-verify */
    p3_native_close(s);
done:
    p3_free(a);
}

/* A GGUF's tokenizer metadata is stored as "tokenizer.gguf": parsing it gives the same keys. */
P3_TEST(native_gguf_tokenizer_blob) {
    char path[1024];
    snprintf(path, sizeof path, "%s/data/llamacpp/ggml-vocab-phi-3.gguf", p3_test_shared_dir());
    p3_model_source *src = NULL;
    p3_error err = {0};
    if (!CHECK_OK(p3_source_open(path, &src, &err), &err)) return;
    p3_native_blob *blobs = NULL;
    size_t n = 0;
    p3_gguf *g = NULL;
    CHECK_OK(p3_native_gather_blobs(src, &blobs, &n, &err), &err);
    if (!CHECK(n == 1 && strcmp(blobs[0].name, "tokenizer.gguf") == 0)) goto done;
    if (!CHECK_OK(p3_gguf_parse(blobs[0].data, blobs[0].size, "blob", &g, &err), &err)) goto done;
    size_t want = 0;
    for (size_t i = 0; i < src->gguf->n_kvs; i++) {
        p3_gguf_str k = src->gguf->kvs[i].key;
        if (k.len < 10 || memcmp(k.s, "tokenizer.", 10) != 0) continue;
        want++;
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)k.len, k.s);
        const p3_gguf_kv *kv = p3_gguf_find(g, key);
        if (!CHECK_MSG(kv && kv->value.type == src->gguf->kvs[i].value.type, "%s", key)) continue;
        const p3_gguf_value *v = &kv->value, *o = &src->gguf->kvs[i].value;
        if (v->type == P3_GGUF_ARRAY) {
            size_t len = p3_gguf_array_len(o);
            CHECK_EQ_INT(p3_gguf_array_len(v), len);
            for (size_t j = 0; j < len; j += 997) {
                p3_gguf_str a, b;
                double x = 0, y = 0;
                if (p3_gguf_array_string(o, j, &a))
                    CHECK(p3_gguf_array_string(v, j, &b) && a.len == b.len &&
                          memcmp(a.s, b.s, a.len) == 0);
                else if (p3_gguf_array_float(o, j, &x))
                    CHECK(p3_gguf_array_float(v, j, &y) && x == y);
            }
        } else if (v->type == P3_GGUF_STRING) {
            CHECK(v->v.str.len == o->v.str.len &&
                  memcmp(v->v.str.s, o->v.str.s, o->v.str.len) == 0);
        } else {
            CHECK_MSG(v->v.u == o->v.u, "%s value", key);
        }
    }
    CHECK(want > 3);
    CHECK_EQ_INT(g->n_kvs, want + 1); /* + general.architecture */
done:
    p3_gguf_free(g);
    p3_native_blobs_free(blobs, n);
    p3_source_close(src);
}

/* Load-time quantization builds the very file `phi3c quantize` writes, byte for byte. */
P3_TEST(native_in_memory_equals_file) {
    char *a = tmp_file(t, "m.phi3c"), args[1024];
    snprintf(args, sizeof args, "-m " FIX "longrope/hf-bf16 -o %s --threads 2", a);
    p3_cmd_result r = quantize(t, NULL, args);
    CHECK_EQ_INT(r.exit_code, 0);
    p3_cmd_result_free(&r);
    p3_model_source *src = NULL, *mem = NULL;
    p3_error err = {0};
    size_t n = 0;
    uint8_t *file = p3_test_read_file(t, a, &n);
    if (file && CHECK_OK(p3_source_open(FIX "longrope/hf-bf16", &src, &err), &err)) {
        p3_native_write_opts o = {
            .method = P3_QUANT_SEARCH, .n_threads = 3, .to_f32 = p3_tensor_to_f32};
        if (CHECK_OK(p3_native_quantize_in_memory(src, &o, &mem, &err), &err)) {
            CHECK_EQ_INT(mem->file_bytes, n);
            CHECK(memcmp(mem->native->owned_image, file, n) == 0);
            CHECK(mem->format == P3_FORMAT_PHI3C && mem->n_tensors == src->n_tensors);
            CHECK(p3_native_find_blob(mem->native, "config.json") != NULL);
        }
    }
    p3_source_close(mem);
    p3_source_close(src);
    p3_free(file);
    p3_free(a);
}
