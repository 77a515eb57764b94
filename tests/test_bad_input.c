/* test_bad_input.c: hostile and broken model files, made at test time from byte-level builders
 * and the fixtures: every case must be refused by the library (status + a message naming the
 * file and the problem) and by `phi3c info -m` (exit 1, no signal, exactly one line on stderr
 * naming the file). Truncations are tried at every byte of the headers on exact-size buffers, so
 * the ASan build catches any read past the end. */
#include "gguf.h"
#include "safetensors.h"
#include "source.h"
#include "test_loaders_util.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void patch_u64(bytebuf *b, size_t at, uint64_t v) {
    for (int k = 0; k < 8; k++) b->p[at + (size_t)k] = (uint8_t)(v >> (8 * k));
}

static void patch_u32(bytebuf *b, size_t at, uint32_t v) {
    for (int k = 0; k < 4; k++) b->p[at + (size_t)k] = (uint8_t)(v >> (8 * k));
}

static int count_lines(const char *s, size_t n) {
    int lines = 0;
    for (size_t i = 0; i < n; i++) lines += s[i] == '\n';
    return lines;
}

/* `phi3c info -m path`: exit 1, no signal, nothing on stdout, one stderr line naming the path
 * and containing `why`. */
static void check_cli_refuses(p3_test_ctx *t, const char *path, const char *why) {
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "%s info -m '%s'", p3_test_cli(), path);
    p3_cmd_result r;
    if (!p3_test_run(t, cmd, &r)) return;
    const char *err = r.err ? r.err : "";
    CHECK_MSG(r.signal == 0 && r.exit_code == 1, "%s: exit %d signal %d: %s", path, r.exit_code,
              r.signal, err);
    CHECK_MSG(count_lines(err, r.err_len) == 1 && r.err_len && err[r.err_len - 1] == '\n',
              "%s: want one stderr line, got '%s'", path, err);
    CHECK_MSG(strstr(err, path) && strstr(err, why), "%s: stderr '%s' lacks the path or '%s'", path,
              err, why);
    CHECK_MSG(r.out_len == 0, "%s: printed to stdout on failure", path);
    p3_cmd_result_free(&r);
}

/* p3_source_open refuses path naming it and `why`; so does the CLI. */
static void check_refused(p3_test_ctx *t, const char *path, const char *why) {
    p3_model_source *src = NULL;
    p3_error err = {0};
    p3_status st = p3_source_open(path, &src, &err);
    CHECK_MSG(st != PHI3C_OK && src == NULL, "%s opened", path);
    CHECK_MSG(strstr(err.message, path) && strstr(err.message, why),
              "%s: message '%s' lacks the path or '%s'", path, err.message, why);
    p3_source_close(src);
    check_cli_refuses(t, path, why);
}

static char *make_dir(p3_test_ctx *t, const char *name) {
    static char dirs[8][512];
    static int next;
    char *d = dirs[next++ & 7];
    snprintf(d, sizeof dirs[0], "%s/%s", p3_test_tmpdir(t), name);
    mkdir(d, 0755);
    return d;
}

static void write_config(p3_test_ctx *t, const char *dir) {
    char cfg[1024];
    tiny_config_json(cfg, sizeof cfg, 8, 64, 32, 2);
    write_test_file(t, dir, "config.json", cfg, strlen(cfg), 3);
}

/* ---- safetensors ---- */

static const char *const good_header =
    "{\"a\": {\"dtype\": \"F32\", \"shape\": [2, 2], \"data_offsets\": [0, 16]}, "
    "\"b\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [16, 32]}}";

static void tiny_safetensors(bytebuf *b, const char *header) {
    float data[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    make_safetensors(b, header, data, sizeof data, false);
}

/* The parser alone, on an exact-size heap copy (ASan sees any overread). */
static p3_status parse_st_exact(const uint8_t *bytes, size_t n, p3_error *err) {
    uint8_t *copy = malloc(n ? n : 1);
    memcpy(copy, bytes, n);
    p3_tensor *ts = NULL;
    size_t nt = 0;
    p3_status st = p3_safetensors_parse(copy, n, "x.safetensors", &ts, &nt, err);
    p3_free(ts);
    free(copy);
    return st;
}

P3_TEST(bad_safetensors_truncated_everywhere) {
    bytebuf b = {0};
    tiny_safetensors(&b, good_header);
    p3_error err = {0};
    CHECK_OK(parse_st_exact(b.p, b.n, &err), &err);
    for (size_t n = 0; n < b.n; n++) {
        p3_status st = parse_st_exact(b.p, n, &err);
        CHECK_MSG(st == PHI3C_ERR_FORMAT && strstr(err.message, "x.safetensors"), "prefix %zu: %s",
                  n, err.message);
    }
    /* the real fixture file: every prefix through the header and a stride through the data */
    size_t size;
    uint8_t *real = p3_test_read_file(t, "tests/fixtures/mini4k/hf-bf16/model.safetensors", &size);
    if (real) {
        CHECK_OK(parse_st_exact(real, size, &err), &err);
        size_t header_end = 8 + (size_t)real[0] + ((size_t)real[1] << 8) + ((size_t)real[2] << 16);
        for (size_t n = 0; n < size; n += n < header_end + 64 ? 1 : 4099)
            if (!CHECK_MSG(parse_st_exact(real, n, &err) == PHI3C_ERR_FORMAT, "prefix %zu", n))
                break;
        free(real);
    }
    /* files cut at each section boundary, in a model folder, through the CLI */
    size_t header_len = b.n - 32 - 8;
    const size_t cuts[] = {4, 8, 8 + header_len / 2, 8 + header_len, 8 + header_len + 16};
    const char *whys[] = {"no room for the 8-byte header length", "exceeds the file size",
                          "exceeds the file size", "past the end", "past the end"};
    for (size_t i = 0; i < P3_ARRAY_LEN(cuts); i++) {
        char name[32];
        snprintf(name, sizeof name, "cut%zu", i);
        char *dir = make_dir(t, name);
        write_config(t, dir);
        write_test_file(t, dir, "model.safetensors", b.p, cuts[i], 0);
        check_refused(t, dir, whys[i]);
    }
    bb_free(&b);
}

P3_TEST(bad_safetensors_headers) {
    static const struct {
        const char *header;
        const char *why;
    } cases[] = {
        {"{\"a\": {\"dtype\": \"F32\", \"shape\": [8], \"data_offsets\": [16, 48]}}",
         "past the end"},
        {"{\"a\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}, "
         "\"b\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [8, 24]}}",
         "overlap"},
        {"{\"a\": {\"dtype\": \"F32\", \"shape\": [4611686018427387904, 8], \"data_offsets\": [0, "
         "16]}}",
         "overflows"},
        {"{\"a\": {\"dtype\": \"F32\", \"shape\": [2305843009213693952, 4], \"data_offsets\": [0, "
         "16]}}",
         "overflows"},
        {"{\"a\": {\"dtype\": \"Q9\", \"shape\": [4], \"data_offsets\": [0, 16]}}",
         "unknown dtype"},
        {"{\"a\": {\"dtype\": \"I64\", \"shape\": [2], \"data_offsets\": [0, 16]}}", "I64"},
        {"{\"a\": {\"dtype\": \"F32\", \"shape\": [2, 2], \"data_offsets\": [0, 12]}}", "needs 16"},
        {"{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [2, 10]}}", "aligned"},
        {"{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [8, 4]}}", "begin <= end"},
        {"{\"a\": {\"dtype\": \"F32\", \"shape\": [-2], \"data_offsets\": [0, 8]}}", "not a size"},
        {"{\"a\": {\"dtype\": \"F32\", \"shape\": [1,1,1,1,1], \"data_offsets\": [0, 4]}}",
         "at most 4"},
        {"{\"\xff\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}",
         "invalid UTF-8"},
        {"{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}, "
         "\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}",
         "listed twice"},
        {"[1, 2]", "not a JSON object"},
        /* integral values written as floats are not sizes (issue 15: once taken as integers) */
        {"{\"a\": {\"dtype\": \"F32\", \"shape\": [2.0, 2], \"data_offsets\": [0, 16]}}",
         "shape[0] is not a size"},
        {"{\"a\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16.0]}}",
         "data_offsets"},
        {"{\"a\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 1.6e1]}}",
         "data_offsets"},
        {"{\"a\": 1} x", "unexpected data"},
        {"{\"a\": {\"shape\": [1], \"data_offsets\": [0, 4]}}", "no dtype"},
    };
    for (size_t i = 0; i < P3_ARRAY_LEN(cases); i++) {
        bytebuf b = {0};
        tiny_safetensors(&b, cases[i].header);
        p3_error err = {0};
        p3_status st = parse_st_exact(b.p, b.n, &err);
        CHECK_MSG(st != PHI3C_OK && strstr(err.message, cases[i].why), "case %zu: %s", i,
                  err.message);
        char name[32];
        snprintf(name, sizeof name, "hdr%zu", i);
        char *dir = make_dir(t, name);
        write_config(t, dir);
        write_test_file(t, dir, "model.safetensors", b.p, b.n, 0);
        check_refused(t, dir, cases[i].why);
        bb_free(&b);
    }
    /* header length larger than the file */
    bytebuf b = {0};
    tiny_safetensors(&b, good_header);
    patch_u64(&b, 0, 1000000000ull);
    char *dir = make_dir(t, "hugelen");
    write_config(t, dir);
    write_test_file(t, dir, "model.safetensors", b.p, b.n, 0);
    check_refused(t, dir, "header length 1000000000 exceeds the file size");
    bb_free(&b);
}

/* A sharded folder: shard 1 holds a, shard 2 holds b. */
static char *sharded_folder(p3_test_ctx *t, const char *name, const char *index, bool shard2) {
    char *dir = make_dir(t, name);
    write_config(t, dir);
    bytebuf s1 = {0}, s2 = {0};
    tiny_safetensors(&s1,
                     "{\"a\": {\"dtype\": \"F32\", \"shape\": [8], \"data_offsets\": [0, 32]}}");
    tiny_safetensors(&s2,
                     "{\"b\": {\"dtype\": \"F32\", \"shape\": [8], \"data_offsets\": [0, 32]}}");
    write_test_file(t, dir, "model-00001-of-00002.safetensors", s1.p, s1.n, 0);
    if (shard2) write_test_file(t, dir, "model-00002-of-00002.safetensors", s2.p, s2.n, 1);
    write_test_file(t, dir, "model.safetensors.index.json", index, strlen(index), 2);
    bb_free(&s1);
    bb_free(&s2);
    return dir;
}

P3_TEST(bad_sharded_folders) {
    const char *good = "{\"metadata\": {}, \"weight_map\": {\"a\": "
                       "\"model-00001-of-00002.safetensors\", \"b\": "
                       "\"model-00002-of-00002.safetensors\"}}";
    p3_model_source *src = NULL;
    p3_error err = {0};
    char *dir = sharded_folder(t, "good", good, true);
    if (CHECK_OK(p3_source_open(dir, &src, &err), &err))
        CHECK(src->n_files == 2 && src->n_tensors == 2 && p3_source_find(src, "b"));
    p3_source_close(src);
    check_refused(t, sharded_folder(t, "noshard", good, false), "is missing");
    check_refused(t,
                  sharded_folder(t, "notensor",
                                 "{\"weight_map\": {\"a\": "
                                 "\"model-00001-of-00002.safetensors\", \"zz\": "
                                 "\"model-00001-of-00002.safetensors\"}}",
                                 true),
                  "names tensor zz in model-00001-of-00002.safetensors");
    check_refused(t,
                  sharded_folder(t, "wrongshard",
                                 "{\"weight_map\": {\"a\": "
                                 "\"model-00002-of-00002.safetensors\"}}",
                                 true),
                  "does not hold it");
    check_refused(
        t, sharded_folder(t, "escape", "{\"weight_map\": {\"a\": \"../x.safetensors\"}}", true),
        "not a file name");
    check_refused(t, sharded_folder(t, "nomap", "{\"metadata\": {}}", true), "weight_map");
    check_refused(t, sharded_folder(t, "badjson", "{\"weight_map\": ", true), "byte");
    /* the same tensor in two shards */
    char *twice = sharded_folder(t, "twice",
                                 "{\"weight_map\": {\"a\": "
                                 "\"model-00001-of-00002.safetensors\", \"b\": "
                                 "\"model-00002-of-00002.safetensors\"}}",
                                 true);
    bytebuf s2 = {0};
    tiny_safetensors(&s2,
                     "{\"a\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}, "
                     "\"b\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [16, 32]}}");
    write_test_file(t, twice, "model-00002-of-00002.safetensors", s2.p, s2.n, 0);
    bb_free(&s2);
    check_refused(t, twice, "appears twice");
}

P3_TEST(bad_folders_and_paths) {
    char *empty = make_dir(t, "noconfig");
    check_refused(t, empty, "no config.json");
    char *noweights = make_dir(t, "noweights");
    write_config(t, noweights);
    check_refused(t, noweights, "no model.safetensors");
    char *emptycfg = make_dir(t, "emptycfg");
    write_test_file(t, emptycfg, "config.json", "", 0, 0);
    check_refused(t, emptycfg, "empty document");
    char *emptyst = make_dir(t, "emptyst");
    write_config(t, emptyst);
    write_test_file(t, emptyst, "model.safetensors", "", 0, 0);
    check_refused(t, emptyst, "empty file");
    char *wrongarch = make_dir(t, "wrongarch");
    const char *small = "{\"architectures\": [\"Phi3SmallForCausalLM\"]}";
    write_test_file(t, wrongarch, "config.json", small, strlen(small), 0);
    check_refused(t, wrongarch, "Phi3SmallForCausalLM");
    const char *dir = p3_test_tmpdir(t);
    check_refused(t, write_test_file(t, dir, "empty.gguf", "", 0, 0), "empty file");
    check_refused(t, write_test_file(t, dir, "junk.bin", "hello world, not a model", 24, 0),
                  "not a model");
    char missing[600];
    snprintf(missing, sizeof missing, "%s/does-not-exist", dir);
    check_refused(t, missing, "no such file");
    check_refused(t, write_test_file(t, dir, "native.phi3c", "PHI3C\0\x1a\nshort", 13, 0),
                  "native.phi3c");
}

/* Fixture weights against a config they do not fit: open works, the tensor check (and the CLI)
 * refuse naming the tensor and both shapes. */
P3_TEST(bad_shapes_for_the_config) {
    size_t n_cfg, n_st;
    char *cfg = p3_test_read_file(t, "tests/fixtures/mini4k/hf-bf16/config.json", &n_cfg);
    uint8_t *st = p3_test_read_file(t, "tests/fixtures/longrope/hf-bf16/model.safetensors", &n_st);
    if (!cfg || !st) {
        free(cfg);
        free(st);
        return;
    }
    char *dir = make_dir(t, "mismatch");
    write_test_file(t, dir, "config.json", cfg, n_cfg, 0);
    write_test_file(t, dir, "model.safetensors", st, n_st, 1);
    p3_model_source *src = NULL;
    p3_error err = {0};
    if (CHECK_OK(p3_source_open(dir, &src, &err), &err)) {
        CHECK_STATUS(p3_source_check_tensors(src, &err), PHI3C_ERR_FORMAT);
        CHECK_MSG(strstr(err.message, dir) && strstr(err.message, "model.embed_tokens.weight") &&
                      strstr(err.message, "[512, 64]") && strstr(err.message, "[256, 128]"),
                  "%s", err.message);
    }
    p3_source_close(src);
    check_cli_refuses(t, dir, "[256, 128]");
    /* a config with one layer more than the weights: the first missing tensor is named */
    free(cfg);
    cfg = p3_test_read_file(t, "tests/fixtures/longrope/hf-bf16/config.json", &n_cfg);
    char *layers = cfg ? strstr(cfg, "\"num_hidden_layers\": 2") : NULL;
    if (CHECK(layers != NULL)) {
        layers[strlen("\"num_hidden_layers\": ")] = '3';
        char *dir3 = make_dir(t, "missing");
        write_test_file(t, dir3, "config.json", cfg, n_cfg, 0);
        write_test_file(t, dir3, "model.safetensors", st, n_st, 1);
        check_cli_refuses(t, dir3, "tensor model.layers.2.input_layernorm.weight is missing");
    }
    free(cfg);
    free(st);
}

/* ---- GGUF ---- */

static p3_status parse_gguf_exact(const uint8_t *bytes, size_t n, p3_error *err) {
    uint8_t *copy = malloc(n ? n : 1);
    memcpy(copy, bytes, n);
    p3_gguf *g = NULL;
    p3_status st = p3_gguf_parse(copy, n, "x.gguf", &g, err);
    p3_gguf_free(g);
    free(copy);
    return st;
}

P3_TEST(bad_gguf_truncated_everywhere) {
    bytebuf b = {0};
    gguf_layout lay;
    make_tiny_gguf(&b, &lay);
    p3_error err = {0};
    CHECK_OK(parse_gguf_exact(b.p, b.n, &err), &err);
    for (size_t n = 0; n < b.n; n++)
        CHECK_MSG(parse_gguf_exact(b.p, n, &err) != PHI3C_OK && strstr(err.message, "x.gguf"),
                  "prefix %zu accepted", n);
    size_t size;
    uint8_t *real = p3_test_read_file(t, "tests/fixtures/longrope/model-bf16.gguf", &size);
    if (real) {
        CHECK_OK(parse_gguf_exact(real, size, &err), &err);
        /* the header, metadata and tensor infos end at byte 1728 (gguf.GGUFReader.data_offset) */
        for (size_t n = 0; n < size; n += n < 1728 + 64 ? 1 : 4099)
            if (!CHECK_MSG(parse_gguf_exact(real, n, &err) == PHI3C_ERR_FORMAT, "prefix %zu", n))
                break;
        free(real);
    }
    const size_t cuts[] = {2,
                           4,
                           12,
                           lay.after_header,
                           lay.after_kvs - 3,
                           lay.after_kvs,
                           lay.tensor_at[1] + 5,
                           lay.after_infos,
                           lay.data_start + 8,
                           b.n - 1};
    const char *whys[] = {"not a model", "truncated", "truncated", "cannot fit",   "truncated",
                          "truncated",   "truncated", "truncated", "past the end", "past the end"};
    const char *dir = p3_test_tmpdir(t);
    for (size_t i = 0; i < P3_ARRAY_LEN(cuts); i++) {
        char name[32];
        snprintf(name, sizeof name, "cut%zu.gguf", i);
        check_refused(t, write_test_file(t, dir, name, b.p, cuts[i], 0), whys[i]);
    }
    bb_free(&b);
}

P3_TEST(bad_gguf_fields) {
    bytebuf base = {0};
    gguf_layout L;
    make_tiny_gguf(&base, &L);
    const uint64_t huge = 1ull << 61;
    static const char *const whys[] = {
        "tensors cannot fit",
        "metadata entries cannot fit",
        "string length 4611686018427387904",
        "string length 2305843009213693952",
        "array of 2305843009213693952 STRING",
        "not valid UTF-8",
        "type Q4_1",
        "unknown type 99",
        "has 5 dimensions",
        "overflows",
        "dimension 0 is 0",
        "not a multiple of the alignment",
        "runs past the end",
        "overlap",
        "power of two",
        "version 1 is not supported",
        "big-endian",
        "unknown type 13",
        "string length 2305843009213693952",
    };
    for (size_t i = 0; i < P3_ARRAY_LEN(whys); i++) {
        bytebuf b = {0};
        bb_bytes(&b, base.p, base.n);
        switch (i) {
        case 0:
            patch_u64(&b, L.n_tensors_at, huge);
            break;
        case 1:
            patch_u64(&b, L.n_kvs_at, huge);
            break;
        case 2:
            patch_u64(&b, L.key0_len_at, huge * 2);
            break;
        case 3:
            patch_u64(&b, L.value0_len_at, huge);
            break;
        case 4:
            patch_u64(&b, L.array_count_at, huge);
            break;
        case 5:
            b.p[L.key0_at + 3] = 0xff;
            break;
        case 6:
            patch_u32(&b, L.type_at[1], 3);
            break;
        case 7:
            patch_u32(&b, L.type_at[1], 99);
            break;
        case 8: /* 5 dims: the reader stops at the count */
            patch_u32(&b, L.n_dims_at[0], 5);
            break;
        case 9:
            patch_u64(&b, L.dim0_at[0], 1ull << 62);
            patch_u64(&b, L.dim0_at[0] + 8, 1ull << 62);
            break;
        case 10:
            patch_u64(&b, L.dim0_at[1], 0);
            break;
        case 11:
            patch_u64(&b, L.offset_at[1], 4);
            break;
        case 12:
            patch_u64(&b, L.offset_at[1], 1ull << 40);
            break;
        case 13:
            patch_u64(&b, L.offset_at[1], 0);
            break;
        case 14:
            patch_u32(&b, L.alignment_value_at, 48);
            break;
        case 15:
            patch_u32(&b, 4, 1);
            break;
        case 16:
            patch_u32(&b, 4, 0x03000000u);
            break;
        case 17:
            patch_u32(&b, L.key0_at + 20, 13);
            break;
        case 18:
            patch_u64(&b, L.tensor_at[0], huge);
            break;
        }
        p3_error err = {0};
        p3_status st = parse_gguf_exact(b.p, b.n, &err);
        CHECK_MSG(st != PHI3C_OK && strstr(err.message, whys[i]) && strstr(err.message, "x.gguf"),
                  "case %zu: '%s' lacks '%s'", i, err.message, whys[i]);
        char name[32];
        snprintf(name, sizeof name, "field%zu.gguf", i);
        check_refused(t, write_test_file(t, p3_test_tmpdir(t), name, b.p, b.n, 0), whys[i]);
        bb_free(&b);
    }
    bb_free(&base);
}

P3_TEST(bad_gguf_duplicates_and_models) {
    /* two identical keys */
    bytebuf b = {0};
    bb_bytes(&b, "GGUF", 4);
    bb_u32(&b, 3);
    bb_u64(&b, 0);
    bb_u64(&b, 2);
    for (int k = 0; k < 2; k++) {
        bb_gguf_str(&b, "general.name");
        bb_u32(&b, 8);
        bb_gguf_str(&b, k ? "b" : "a");
    }
    const char *dir = p3_test_tmpdir(t);
    check_refused(t, write_test_file(t, dir, "dupkey.gguf", b.p, b.n, 0), "appears twice");
    bb_free(&b);
    /* a GGUF with weights but another architecture, or phi3 without its keys */
    gguf_layout L;
    make_tiny_gguf(&b, &L);
    check_refused(t, write_test_file(t, dir, "nokeys.gguf", b.p, b.n, 0),
                  "phi3.embedding_length is missing");
    memcpy(b.p + L.value0_len_at + 8, "llam", 4);
    check_refused(t, write_test_file(t, dir, "llama.gguf", b.p, b.n, 0),
                  "architecture \"llam\" is not supported");
    bb_free(&b);
    /* the quantization oracle is a valid GGUF but not a model */
    check_refused(t, "tests/fixtures/gguf-quant/quant-types.gguf", "phi3c-quant-test");
}
