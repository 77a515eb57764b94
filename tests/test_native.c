/* test_native.c: the native .phi3c file: write/read round trip against independently computed
 * tensors, checksums (a flipped byte is refused by name), hostile tables, and interrupted writes
 * (simulated full disk, a real tmpfs when mountable, a file size limit, cancel, kill -9). */
#include "harness.h"
#include "phi3c_file.h"
#include "phi3c_file_impl.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

enum { HID = 160, INTER = 200, VOCAB = 64, QKV = 96, N_TENSORS = 5 };

typedef struct toy_model {
    p3_model_source src;
    p3_tensor tensors[N_TENSORS];
    float embed[VOCAB * HID], norm[HID], down[HID * INTER], lm[VOCAB * HID];
    uint16_t qkv[QKV * HID]; /* bf16 */
    p3_native_blob blobs[2];
} toy_model;

/* Test-side f32 conversion for the dtypes the toy model uses (p3_tensor_to_f32's contract). */
static p3_status toy_to_f32(const p3_tensor *t, size_t first, size_t count, float *out,
                            p3_error *err) {
    if (t->dtype == P3_DT_F32) {
        memcpy(out, (const float *)t->data + first, count * sizeof *out);
        return PHI3C_OK;
    }
    if (t->dtype == P3_DT_BF16) {
        for (size_t i = 0; i < count; i++)
            out[i] = p3_bf16_to_f32(((const uint16_t *)t->data)[first + i]);
        return PHI3C_OK;
    }
    return p3_fail(err, PHI3C_ERR_UNSUPPORTED, "toy: dtype %d", (int)t->dtype);
}

static toy_model *toy_new(uint64_t seed) {
    toy_model *m = p3_calloc(1, sizeof *m);
    p3_test_rng r;
    p3_test_rng_seed(&r, seed);
    for (size_t i = 0; i < P3_ARRAY_LEN(m->embed); i++)
        m->embed[i] = 0.05f * p3_test_rng_normal(&r);
    for (size_t i = 0; i < P3_ARRAY_LEN(m->norm); i++)
        m->norm[i] = 1 + 0.1f * p3_test_rng_normal(&r);
    for (size_t i = 0; i < P3_ARRAY_LEN(m->down); i++) m->down[i] = 0.05f * p3_test_rng_normal(&r);
    for (size_t i = 0; i < P3_ARRAY_LEN(m->lm); i++) m->lm[i] = 0.05f * p3_test_rng_normal(&r);
    for (size_t i = 0; i < P3_ARRAY_LEN(m->qkv); i++)
        m->qkv[i] = p3_f32_to_bf16(0.05f * p3_test_rng_normal(&r));
    p3_tensor_set(&m->tensors[0], "model.embed_tokens.weight", P3_DT_F32, VOCAB, HID, m->embed);
    p3_tensor_set(&m->tensors[1], "model.layers.0.input_layernorm.weight", P3_DT_F32, HID, 0,
                  m->norm);
    p3_tensor_set(&m->tensors[2], "model.layers.0.self_attn.qkv_proj.weight", P3_DT_BF16, QKV, HID,
                  m->qkv);
    p3_tensor_set(&m->tensors[3], "model.layers.0.mlp.down_proj.weight", P3_DT_F32, HID, INTER,
                  m->down);
    p3_tensor_set(&m->tensors[4], "lm_head.weight", P3_DT_F32, VOCAB, HID, m->lm);
    p3_config *c = &m->src.config;
    snprintf(c->architecture, sizeof c->architecture, "Phi3ForCausalLM");
    c->hidden_size = HID;
    c->num_layers = 1;
    c->num_heads = 8;
    c->num_kv_heads = 2;
    c->head_dim = 20;
    c->intermediate_size = INTER;
    c->vocab_size = VOCAB;
    c->max_position_embeddings = 128;
    c->original_max_position_embeddings = 32;
    c->rms_norm_eps = 1e-5f;
    c->rope = (p3_rope_config){.type = P3_ROPE_LONGROPE,
                               .theta = 10000.0f,
                               .partial_rotary_factor = 1.0f,
                               .rot_dim = 20,
                               .n_factors = 10,
                               .attn_factor = 1.19f};
    for (int i = 0; i < 10; i++) {
        c->rope.short_factor[i] = 1.0f + (float)i / 64;
        c->rope.long_factor[i] = 2.0f + (float)i / 32;
    }
    c->sliding_window = 16;
    c->bos_id = 1;
    c->eos_id = 2;
    c->pad_id = -1;
    c->n_stop_ids = 3;
    c->stop_ids[0] = 2;
    c->stop_ids[1] = 32000;
    c->stop_ids[2] = 32007;
    m->src.format = P3_FORMAT_SAFETENSORS;
    m->src.has_config = true;
    m->src.tensors = m->tensors;
    m->src.n_tensors = N_TENSORS;
    static char toy_name[] = "toy";
    m->src.path = toy_name;
    snprintf(m->blobs[0].name, P3N_BLOB_NAME_MAX, "tokenizer.json");
    m->blobs[0].data = (const uint8_t *)"{\"model\": {}}";
    m->blobs[0].size = 13;
    snprintf(m->blobs[1].name, P3N_BLOB_NAME_MAX, "tokenizer.model");
    m->blobs[1].data = (const uint8_t *)"\x0a\x03\x61\x62\x63";
    m->blobs[1].size = 5;
    return m;
}

static p3_native_write_opts toy_opts(void) {
    return (p3_native_write_opts){.method = P3_QUANT_SEARCH, .n_threads = 2, .to_f32 = toy_to_f32};
}

static char *path_in(p3_test_ctx *t, const char *name) {
    return p3_path_join(p3_test_tmpdir(t), name);
}

/* Files in the test's folder other than `keep` (temp leftovers). */
static int count_other_files(p3_test_ctx *t, const char *keep) {
    DIR *d = opendir(p3_test_tmpdir(t));
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && (!keep || strcmp(e->d_name, keep)))
            n++;
    if (d) closedir(d);
    return n;
}

static void check_i4_rows(p3_test_ctx *t, const p3_tensor *got, const float *src, int64_t rows,
                          int64_t cols, bool asym) {
    size_t rb = (size_t)p3_groups(cols) * (asym ? sizeof(p3_block_i4a) : sizeof(p3_block_i4s));
    uint8_t want[16 * 70];
    for (int64_t r = 0; r < rows; r++) {
        if (asym)
            p3_quantize_row_i4a(src + r * cols, cols, (p3_block_i4a *)want, P3_QUANT_SEARCH);
        else
            p3_quantize_row_i4s(src + r * cols, cols, (p3_block_i4s *)want, P3_QUANT_SEARCH);
        if (!CHECK_MSG(memcmp(want, (const uint8_t *)got->data + r * rb, rb) == 0,
                       "%s row %lld differs from the row quantizer", got->hf_name, (long long)r))
            return;
    }
}

static void check_roundtrip(p3_test_ctx *t, bool asym) {
    toy_model *m = toy_new(42);
    char *out = path_in(t, asym ? "toy-asym.phi3c" : "toy.phi3c");
    p3_native_write_opts o = toy_opts();
    o.asym = asym;
    p3_error err = {0};
    CHECK_OK(p3_native_write(&m->src, m->blobs, 2, out, &o, &err), &err);
    p3_model_source *s = NULL;
    if (!CHECK_OK(p3_native_open(out, true, &s, &err), &err)) goto done;
    CHECK(s->native->verified && s->native->asym == asym && s->native->group_size == 128);
    CHECK_EQ_INT(s->format, P3_FORMAT_PHI3C);
    const p3_config *a = &s->config, *b = &m->src.config;
    CHECK(strcmp(a->architecture, b->architecture) == 0);
    CHECK(a->hidden_size == b->hidden_size && a->num_kv_heads == b->num_kv_heads &&
          a->head_dim == b->head_dim && a->vocab_size == b->vocab_size &&
          a->original_max_position_embeddings == 32 && a->sliding_window == 16 && a->pad_id == -1 &&
          a->rms_norm_eps == b->rms_norm_eps);
    CHECK(a->rope.type == P3_ROPE_LONGROPE && a->rope.n_factors == 10 &&
          a->rope.attn_factor == 1.19f && a->rope.long_factor[9] == b->rope.long_factor[9] &&
          a->rope.short_factor[3] == b->rope.short_factor[3]);
    CHECK(a->n_stop_ids == 3 && a->stop_ids[2] == 32007);
    CHECK_EQ_INT(s->n_tensors, N_TENSORS);
    const uint8_t *base = s->files[0].data;
    for (size_t i = 0; i < s->n_tensors; i++) {
        CHECK(strcmp(s->tensors[i].hf_name, m->tensors[i].hf_name) == 0);
        CHECK_MSG(((const uint8_t *)s->tensors[i].data - base) % 64 == 0, "alignment of %zu", i);
    }
    const p3_tensor *emb = &s->tensors[0], *norm = &s->tensors[1], *qkv = &s->tensors[2];
    CHECK_EQ_INT(emb->dtype, P3_DT_F16);
    CHECK_EQ_INT(norm->dtype, P3_DT_F32);
    CHECK_EQ_INT(qkv->dtype, asym ? P3_DT_I4G128A : P3_DT_I4G128S);
    CHECK_EQ_INT(s->tensors[4].dtype, qkv->dtype);
    CHECK(emb->n_dims == 2 && emb->shape[0] == VOCAB && emb->shape[1] == HID);
    bool emb_ok = true;
    for (int i = 0; i < VOCAB * HID; i++)
        emb_ok &= ((const uint16_t *)emb->data)[i] == p3_f32_to_f16(m->embed[i]);
    CHECK(emb_ok);
    CHECK(memcmp(norm->data, m->norm, sizeof m->norm) == 0);
    float *qf = p3_malloc(QKV * HID * sizeof *qf);
    for (int i = 0; i < QKV * HID; i++) qf[i] = p3_bf16_to_f32(m->qkv[i]);
    check_i4_rows(t, qkv, qf, QKV, HID, asym);
    check_i4_rows(t, &s->tensors[3], m->down, HID, INTER, asym);
    p3_free(qf);
    const p3_native_blob *tok = p3_native_find_blob(s->native, "tokenizer.model");
    CHECK(tok && tok->size == 5 && memcmp(tok->data, "\x0a\x03\x61\x62\x63", 5) == 0);
    CHECK(p3_native_find_blob(s->native, "nope") == NULL);
    p3_native_close(s);
done:
    CHECK_EQ_INT(count_other_files(t, asym ? "toy-asym.phi3c" : "toy.phi3c"), 0);
    p3_free(out);
    p3_free(m);
}

P3_TEST(native_roundtrip_sym) {
    check_roundtrip(t, false);
}
P3_TEST(native_roundtrip_asym) {
    check_roundtrip(t, true);
}

P3_TEST(native_refuses_existing_without_force) {
    toy_model *m = toy_new(1);
    char *out = path_in(t, "x.phi3c");
    FILE *f = fopen(out, "w");
    fputs("keep me", f);
    fclose(f);
    p3_native_write_opts o = toy_opts();
    p3_error err = {0};
    CHECK_STATUS(p3_native_write(&m->src, NULL, 0, out, &o, &err), PHI3C_ERR_EXISTS);
    CHECK_MSG(strstr(err.message, "exists") && !strstr(err.message, "--force"), "%s", err.message);
    size_t n = 0;
    char *text = p3_test_read_file(t, out, &n);
    CHECK(text && n == 7);
    p3_free(text);
    o.force = true;
    CHECK_OK(p3_native_write(&m->src, NULL, 0, out, &o, &err), &err);
    p3_model_source *s = NULL;
    CHECK_OK(p3_native_open(out, true, &s, &err), &err);
    p3_native_close(s);
    p3_free(out);
    p3_free(m);
}

/* Flip one byte inside each tensor in turn: refused with the tensor's name, accepted unverified. */
P3_TEST(native_corruption_names_tensor) {
    toy_model *m = toy_new(2);
    char *out = path_in(t, "c.phi3c");
    p3_native_write_opts o = toy_opts();
    p3_error err = {0};
    CHECK_OK(p3_native_write(&m->src, m->blobs, 2, out, &o, &err), &err);
    size_t n = 0;
    uint8_t *bytes = p3_test_read_file(t, out, &n);
    p3_model_source *s = NULL;
    if (!bytes || !CHECK_OK(p3_native_open_memory(bytes, n, "c", false, &s, &err), &err)) goto done;
    size_t offs[N_TENSORS];
    for (size_t i = 0; i < N_TENSORS; i++)
        offs[i] = (size_t)((const uint8_t *)s->tensors[i].data - bytes) + s->tensors[i].nbytes / 2;
    p3_native_close(s);
    for (size_t i = 0; i < N_TENSORS; i++) {
        bytes[offs[i]] ^= 0x10;
        CHECK_STATUS(p3_native_open_memory(bytes, n, "c", true, &s, &err), PHI3C_ERR_CHECKSUM);
        CHECK_MSG(strstr(err.message, m->tensors[i].hf_name) != NULL, "message: %s", err.message);
        CHECK_OK(p3_native_open_memory(bytes, n, "c", false, &s, &err), &err);
        if (s) CHECK(!s->native->verified);
        p3_native_close(s);
        bytes[offs[i]] ^= 0x10;
    }
    bytes[200] ^= 1; /* config / table region: the header checksum catches it even unverified */
    CHECK_STATUS(p3_native_open_memory(bytes, n, "c", false, &s, &err), PHI3C_ERR_CHECKSUM);
    CHECK(strstr(err.message, "header checksum") != NULL);
    bytes[200] ^= 1;
    CHECK_STATUS(p3_native_open_memory(bytes, n - 64, "c", true, &s, &err), PHI3C_ERR_FORMAT);
    CHECK(strstr(err.message, "truncated") != NULL);
done:
    p3_free(bytes);
    p3_free(out);
    p3_free(m);
}

/* Rewrites a field of a valid file and re-seals the header checksum, so the structural checks
 * (not the checksum) must catch it. */
static p3_status open_patched(const uint8_t *orig, size_t n, size_t at, const void *val, size_t len,
                              p3_error *err) {
    uint8_t *b = p3_malloc(n);
    memcpy(b, orig, n);
    memcpy(b + at, val, len);
    uint64_t data_off = p3n_load_u64(b + 24);
    if (data_off <= n && data_off >= P3N_HEADER_BYTES) {
        uint64_t h = p3n_header_hash(b, (size_t)data_off);
        memcpy(b + P3N_HASH_FIELD, &h, 8);
    }
    p3_model_source *s = NULL;
    p3_status st = p3_native_open_memory(b, n, "patched", true, &s, err);
    p3_native_close(s);
    p3_free(b);
    return st;
}

P3_TEST(native_hostile_tables) {
    toy_model *m = toy_new(3);
    char *out = path_in(t, "h.phi3c");
    p3_native_write_opts o = toy_opts();
    p3_error err = {0};
    CHECK_OK(p3_native_write(&m->src, m->blobs, 2, out, &o, &err), &err);
    size_t n = 0;
    uint8_t *b = p3_test_read_file(t, out, &n);
    if (!b) goto done;
    size_t tt = (size_t)p3n_load_u64(b + 48), e1 = tt + P3N_TENSOR_ENTRY_BYTES; /* entry 1 */
    size_t off_field = 128 + 8 + 32, size_field = off_field + 8;
    uint32_t u32;
    uint64_t u64;
    u32 = 2;
    CHECK_STATUS(open_patched(b, n, 8, &u32, 4, &err), PHI3C_ERR_UNSUPPORTED); /* major 2 */
    CHECK(strstr(err.message, "version 2") != NULL);
    u32 = 1000000;
    CHECK_STATUS(open_patched(b, n, 56, &u32, 4, &err), PHI3C_ERR_FORMAT); /* n_tensors */
    u64 = p3n_load_u64(b + e1 + off_field) + 4;
    CHECK_STATUS(open_patched(b, n, e1 + off_field, &u64, 8, &err), PHI3C_ERR_FORMAT);
    CHECK(strstr(err.message, "misaligned") != NULL);
    u64 = p3n_load_u64(b + tt + off_field); /* entry 1 placed on entry 0: overlap */
    CHECK_STATUS(open_patched(b, n, e1 + off_field, &u64, 8, &err), PHI3C_ERR_FORMAT);
    u64 = UINT64_MAX - 63;
    CHECK_STATUS(open_patched(b, n, e1 + off_field, &u64, 8, &err), PHI3C_ERR_FORMAT);
    u64 = p3n_load_u64(b + e1 + size_field) + 1;
    CHECK_STATUS(open_patched(b, n, e1 + size_field, &u64, 8, &err), PHI3C_ERR_FORMAT);
    u64 = (uint64_t)1 << 62; /* shape whose byte count overflows */
    CHECK_STATUS(open_patched(b, n, e1 + 136, &u64, 8, &err), PHI3C_ERR_FORMAT);
    u32 = 99;
    CHECK_STATUS(open_patched(b, n, e1 + 128, &u32, 4, &err), PHI3C_ERR_FORMAT); /* dtype */
    CHECK(strstr(err.message, "dtype code 99") != NULL);
    uint8_t name[128];
    memset(name, 'a', sizeof name); /* no NUL */
    CHECK_STATUS(open_patched(b, n, e1, name, 128, &err), PHI3C_ERR_FORMAT);
    CHECK_STATUS(open_patched(b, n, e1, b + tt, 128, &err), PHI3C_ERR_FORMAT); /* duplicate */
    CHECK(strstr(err.message, "twice") != NULL);
    int32_t bad = 0; /* hidden_size 0 in the config */
    CHECK_STATUS(open_patched(b, n, 128 + 64, &bad, 4, &err), PHI3C_ERR_FORMAT);
    CHECK(strstr(err.message, "hidden_size") != NULL);
    CHECK_STATUS(open_patched(b, 100, 0, b, 1, &err), PHI3C_ERR_FORMAT);
    p3_free(b);
done:
    p3_free(out);
    p3_free(m);
}

static void check_no_output(p3_test_ctx *t, const char *out, bool allow_temp) {
    CHECK_MSG(!p3_file_exists(out), "%s exists after a failed write", out);
    if (!allow_temp) CHECK_EQ_INT(count_other_files(t, NULL), 0);
}

P3_TEST(native_simulated_full_disk) {
    toy_model *m = toy_new(4);
    char *out = path_in(t, "full.phi3c");
    static const uint64_t at[] = {1, 4096, 40000, 60000};
    for (size_t i = 0; i < P3_ARRAY_LEN(at); i++) {
        p3_native_write_opts o = toy_opts();
        o.test_fault = P3N_FAULT_ENOSPC;
        o.test_fault_at = at[i];
        p3_error err = {0};
        CHECK_STATUS(p3_native_write(&m->src, m->blobs, 2, out, &o, &err), PHI3C_ERR_IO);
        CHECK_MSG(strstr(err.message, "disk full") != NULL, "message: %s", err.message);
        check_no_output(t, out, false);
    }
    p3_free(out);
    p3_free(m);
}

static bool cancel_second_call(void *user, size_t i, size_t n, uint64_t done, uint64_t total) {
    (void)i, (void)n, (void)done, (void)total;
    return ++*(int *)user < 3;
}

P3_TEST(native_cancelled_write) {
    toy_model *m = toy_new(5);
    char *out = path_in(t, "cancel.phi3c");
    int calls = 0;
    p3_native_write_opts o = toy_opts();
    o.progress = cancel_second_call;
    o.progress_user = &calls;
    p3_error err = {0};
    CHECK_STATUS(p3_native_write(&m->src, m->blobs, 2, out, &o, &err), PHI3C_ERR_INTERRUPTED);
    check_no_output(t, out, false);
    p3_free(out);
    p3_free(m);
}

/* Runs the writer in a child process; returns its exit status (the p3_status) or -signal. */
static int write_in_child(toy_model *m, const char *out, const p3_native_write_opts *o,
                          long fsize_limit) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        if (fsize_limit > 0) {
            signal(SIGXFSZ, SIG_IGN);
            struct rlimit rl = {(rlim_t)fsize_limit, (rlim_t)fsize_limit};
            setrlimit(RLIMIT_FSIZE, &rl);
        }
        p3_error err = {0};
        _exit((int)p3_native_write(&m->src, m->blobs, 2, out, o, &err));
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFSIGNALED(status) ? -WTERMSIG(status) : WEXITSTATUS(status);
}

P3_TEST(native_killed_write_leaves_no_valid_output) {
    toy_model *m = toy_new(6);
    char *out = path_in(t, "killed.phi3c");
    p3_native_write_opts o = toy_opts();
    o.test_fault = P3N_FAULT_SIGKILL;
    o.test_fault_at = 50000;
    CHECK_EQ_INT(write_in_child(m, out, &o, 0), -SIGKILL);
    check_no_output(t, out, true);
    /* The leftover temp file (if any) is not a valid phi3c file: its header is written last. */
    DIR *d = opendir(p3_test_tmpdir(t));
    for (struct dirent *e; d && (e = readdir(d));) {
        if (e->d_name[0] != '.' || !strstr(e->d_name, ".tmp-")) continue;
        char *p = path_in(t, e->d_name);
        p3_model_source *s = NULL;
        p3_error err = {0};
        CHECK_STATUS(p3_native_open(p, false, &s, &err), PHI3C_ERR_FORMAT);
        p3_free(p);
    }
    if (d) closedir(d);
    p3_free(out);
    p3_free(m);
}

P3_TEST(native_file_size_limit) {
    toy_model *m = toy_new(7);
    char *out = path_in(t, "limit.phi3c");
    p3_native_write_opts o = toy_opts();
    CHECK_EQ_INT(write_in_child(m, out, &o, 30000), PHI3C_ERR_IO);
    check_no_output(t, out, false);
    p3_free(out);
    p3_free(m);
}

/* A real full disk: a 32 KiB tmpfs (needs root and mount permission; skipped otherwise). */
P3_TEST(native_real_full_disk_tmpfs) {
    char *mnt = path_in(t, "mnt");
    if (geteuid() != 0 || mkdir(mnt, 0700) != 0 ||
        mount("tmpfs", mnt, "tmpfs", 0, "size=32k") != 0) {
        p3_test_skip(t, "cannot mount a tmpfs here (%s)", strerror(errno));
        p3_free(mnt);
        return;
    }
    toy_model *m = toy_new(8);
    char *out = p3_path_join(mnt, "big.phi3c");
    p3_native_write_opts o = toy_opts();
    p3_error err = {0};
    CHECK_STATUS(p3_native_write(&m->src, m->blobs, 2, out, &o, &err), PHI3C_ERR_IO);
    CHECK_MSG(strstr(err.message, "disk full") != NULL, "message: %s", err.message);
    CHECK(!p3_file_exists(out));
    DIR *d = opendir(mnt);
    int left = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        left += e->d_name[0] != '.' || e->d_name[1] > '.';
    if (d) closedir(d);
    CHECK_EQ_INT(left, 0);
    umount(mnt);
    rmdir(mnt);
    p3_free(out);
    p3_free(mnt);
    p3_free(m);
}

#ifdef P3_FAULT_INJECTION
/* Every allocation of the writer and the reader failing in turn: a clean NOMEM, no leak (ASan),
 * no output file and no temp file left behind. */
P3_TEST(native_allocation_failures) {
    toy_model *m = toy_new(9);
    char *out = path_in(t, "oom.phi3c");
    p3_native_write_opts o = toy_opts();
    o.n_threads = 1;
    p3_error err = {0};
    p3_status st = PHI3C_ERR_NOMEM;
    for (long n = 0; n < 1000 && st != PHI3C_OK; n++) {
        p3_alloc_fail_after(n);
        st = p3_native_write(&m->src, m->blobs, 2, out, &o, &err);
        p3_alloc_fail_after(-1);
        if (st != PHI3C_OK) {
            CHECK_MSG(st == PHI3C_ERR_NOMEM, "allocation %ld: %s", n, err.message);
            check_no_output(t, out, false);
        }
    }
    CHECK_STATUS(st, PHI3C_OK);
    size_t size = 0;
    uint8_t *bytes = p3_test_read_file(t, out, &size);
    st = PHI3C_ERR_NOMEM;
    for (long n = 0; bytes && n < 1000 && st != PHI3C_OK; n++) {
        p3_model_source *s = NULL;
        p3_alloc_fail_after(n);
        st = p3_native_open_memory(bytes, size, "oom", true, &s, &err);
        p3_alloc_fail_after(-1);
        if (st != PHI3C_OK) CHECK_MSG(st == PHI3C_ERR_NOMEM && !s, "allocation %ld", n);
        p3_native_close(s);
    }
    CHECK_STATUS(st, PHI3C_OK);
    p3_free(bytes);
    p3_free(out);
    p3_free(m);
}
#endif
