/* test_tokenizer_build.c: tokenizer construction from hostile-shaped vocabularies made at test
 * time (a GGUF image and a SentencePiece tokenizer.model written byte by byte): a 1 MB piece must
 * load in linear time and tokenize as its merges say; a vocabulary of empty strings must load or
 * fail cleanly (the sanitizer build aborts on undefined behaviour). */
#include "api_internal.h"
#include "gguf.h"
#include "harness.h"
#include "test_loaders_util.h"
#include "tok_internal.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

enum { GGUF_T_INT32 = 5, GGUF_T_FLOAT32 = 6, GGUF_T_STRING = 8, GGUF_T_ARRAY = 9 };

/* The vocabulary: <unk> <s> </s> ▁ then "a" repeated 1, 2, 4, ... 2^DOUBLINGS times. Merges derived
 * from the scores (longer pieces score lower) can only join two equal halves, so a text of
 * 2^DOUBLINGS "a" is "▁" plus one token: the 1 MB piece. */
enum { DOUBLINGS = 20, N_SPECIAL = 4, N_VOCAB = N_SPECIAL + DOUBLINGS + 1 };
#define BIG_LEN ((size_t)1 << DOUBLINGS)

typedef struct vocab {
    char *piece[N_VOCAB];
    size_t len[N_VOCAB];
    float score[N_VOCAB];
    int type[N_VOCAB];
} vocab;

static void vocab_doublings(vocab *v, char *as) {
    static const char *const special[N_SPECIAL] = {"<unk>", "<s>", "</s>", "\xe2\x96\x81"};
    static const int special_type[N_SPECIAL] = {2, 3, 3, 1};
    for (int i = 0; i < N_SPECIAL; i++) {
        v->piece[i] = (char *)special[i];
        v->len[i] = strlen(special[i]);
        v->score[i] = 0.0f;
        v->type[i] = special_type[i];
    }
    for (int k = 0; k <= DOUBLINGS; k++) {
        v->piece[N_SPECIAL + k] = as;
        v->len[N_SPECIAL + k] = (size_t)1 << k;
        v->score[N_SPECIAL + k] = -(float)(k + 1);
        v->type[N_SPECIAL + k] = 1;
    }
}

static void bb_gguf_key(bytebuf *b, const char *key, uint32_t type) {
    bb_gguf_str(b, key);
    bb_u32(b, type);
}

static void bb_gguf_array(bytebuf *b, const char *key, uint32_t elem_type, size_t n) {
    bb_gguf_key(b, key, GGUF_T_ARRAY);
    bb_u32(b, elem_type);
    bb_u64(b, n);
}

/* A GGUF v3 image holding only tokenizer.ggml.* metadata for the first n entries of v. */
static void make_vocab_gguf(bytebuf *b, const vocab *v, size_t n) {
    bb_bytes(b, "GGUF", 4);
    bb_u32(b, 3);
    bb_u64(b, 0); /* tensors */
    bb_u64(b, 4); /* key/values */
    bb_gguf_key(b, "tokenizer.ggml.model", GGUF_T_STRING);
    bb_gguf_str(b, "llama");
    bb_gguf_array(b, "tokenizer.ggml.tokens", GGUF_T_STRING, n);
    for (size_t i = 0; i < n; i++) {
        bb_u64(b, v->len[i]);
        bb_bytes(b, v->piece[i], v->len[i]);
    }
    bb_gguf_array(b, "tokenizer.ggml.scores", GGUF_T_FLOAT32, n);
    for (size_t i = 0; i < n; i++) bb_f32(b, v->score[i]);
    bb_gguf_array(b, "tokenizer.ggml.token_type", GGUF_T_INT32, n);
    for (size_t i = 0; i < n; i++) bb_u32(b, (uint32_t)v->type[i]);
}

static void pb_varint(bytebuf *b, uint64_t v) {
    while (v >= 0x80) {
        bb_u8(b, (uint8_t)(v | 0x80));
        v >>= 7;
    }
    bb_u8(b, (uint8_t)v);
}

static void pb_bytes(bytebuf *b, uint32_t field, const void *data, size_t n) {
    pb_varint(b, (uint64_t)field << 3 | 2);
    pb_varint(b, n);
    bb_bytes(b, data, n);
}

/* A SentencePiece ModelProto: pieces (field 1), trainer_spec (2: model_type BPE, unk 0, bos 1,
 * eos 2) and normalizer_spec (3: identity, dummy prefix, whitespace escaping). */
static void make_vocab_spm(bytebuf *b, const vocab *v) {
    for (int i = 0; i < N_VOCAB; i++) {
        bytebuf p = {0};
        pb_bytes(&p, 1, v->piece[i], v->len[i]);
        pb_varint(&p, 2 << 3 | 5);
        bb_f32(&p, v->score[i]);
        pb_varint(&p, 3 << 3 | 0);
        pb_varint(&p, (uint64_t)v->type[i]);
        pb_bytes(b, 1, p.p, p.n);
        bb_free(&p);
    }
    bytebuf tr = {0};
    pb_varint(&tr, 3 << 3 | 0), pb_varint(&tr, 2);  /* model_type BPE */
    pb_varint(&tr, 40 << 3 | 0), pb_varint(&tr, 0); /* unk_id */
    pb_varint(&tr, 41 << 3 | 0), pb_varint(&tr, 1); /* bos_id */
    pb_varint(&tr, 42 << 3 | 0), pb_varint(&tr, 2); /* eos_id */
    pb_bytes(b, 2, tr.p, tr.n);
    bb_free(&tr);
    bytebuf nm = {0};
    pb_bytes(&nm, 1, "identity", 8);
    pb_varint(&nm, 3 << 3 | 0), pb_varint(&nm, 1); /* add_dummy_prefix */
    pb_varint(&nm, 4 << 3 | 0), pb_varint(&nm, 0); /* remove_extra_whitespaces */
    pb_varint(&nm, 5 << 3 | 0), pb_varint(&nm, 1); /* escape_whitespaces */
    pb_bytes(b, 3, nm.p, nm.n);
    bb_free(&nm);
}

enum { CHILD_OK = 0, CHILD_LOAD_FAILED = 10, CHILD_WRONG_IDS = 11 };

/* Loads the tokenizer from `image` and encodes the 1 MB text; the exit code says how it went. */
static int load_and_encode(const uint8_t *image, size_t size, bool gguf, const char *as) {
    p3_error err = {0};
    p3_tokenizer *tok = NULL;
    p3_gguf *g = NULL;
    p3_status st;
    if (gguf) {
        st = p3_gguf_parse(image, size, "big.gguf", &g, &err);
        if (st == PHI3C_OK) st = p3_tokenizer_load_gguf(g, "big.gguf", &tok, &err);
    } else {
        p3_tokenizer_files f = {
            .what = "tokenizer.model", .spm_model = image, .spm_model_len = size};
        st = p3_tokenizer_load_buffers(&f, &tok, &err);
    }
    if (st != PHI3C_OK) {
        fprintf(stderr, "    load failed: %s\n", err.message);
        return CHILD_LOAD_FAILED;
    }
    int32_t *ids = NULL;
    size_t n = 0;
    st = p3_tokenizer_encode(tok, as, BIG_LEN, 0, &ids, &n, &err);
    bool right = st == PHI3C_OK && n == 2 && ids[0] == 3 && ids[1] == N_VOCAB - 1;
    if (!right) fprintf(stderr, "    encode gave %zu ids (%s)\n", n, err.message);
    p3_free(ids);
    p3_tokenizer_free(tok);
    p3_gguf_free(g);
    return right ? CHILD_OK : CHILD_WRONG_IDS;
}

/* Runs load_and_encode in a child with a 30 s alarm. The time bound guards a complexity class, not
 * a speed claim: linear construction takes about 0.3 s here (1-4 s under ASan on a loaded machine),
 * while the old derivation, which hashed both halves of every split, needed about 10^12 byte steps.
 */
static int load_in_child(const uint8_t *image, size_t size, bool gguf, const char *as) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(30);
        _exit(load_and_encode(image, size, gguf, as));
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFSIGNALED(status) ? -WTERMSIG(status) : WEXITSTATUS(status);
}

P3_TEST(tokenizer_one_megabyte_piece_loads_in_linear_time) {
    char *as = malloc(BIG_LEN);
    if (!CHECK(as != NULL)) return;
    memset(as, 'a', BIG_LEN);
    vocab v;
    vocab_doublings(&v, as);
    bytebuf gguf = {0}, spm = {0};
    make_vocab_gguf(&gguf, &v, N_VOCAB);
    make_vocab_spm(&spm, &v);
    int rc = load_in_child(gguf.p, gguf.n, true, as);
    CHECK_MSG(rc == CHILD_OK, "GGUF with a 1 MB piece: child ended with %d (-14: alarm)", rc);
    rc = load_in_child(spm.p, spm.n, false, as);
    CHECK_MSG(rc == CHILD_OK, "tokenizer.model with a 1 MB piece: child ended with %d", rc);
    bb_free(&gguf);
    bb_free(&spm);
    free(as);
}

P3_TEST(tokenizer_vocabulary_of_empty_strings_is_clean) {
    vocab v;
    for (int i = 0; i < 3; i++)
        v.piece[i] = (char *)"", v.len[i] = 0, v.score[i] = 0, v.type[i] = 1;
    bytebuf b = {0};
    make_vocab_gguf(&b, &v, 3);
    p3_error err = {0};
    p3_gguf *g = NULL;
    p3_tokenizer *tok = NULL;
    CHECK_OK(p3_gguf_parse(b.p, b.n, "empty.gguf", &g, &err), &err);
    p3_status st = g ? p3_tokenizer_load_gguf(g, "empty.gguf", &tok, &err) : PHI3C_ERR_FORMAT;
    if (st == PHI3C_OK) {
        /* no piece, byte token or unk covers any character: HF drops them all */
        int32_t *ids = NULL;
        size_t n = 99;
        CHECK_OK(p3_tokenizer_encode(tok, "ab c", 4, P3_ENCODE_ADD_BOS, &ids, &n, &err), &err);
        CHECK_EQ_INT(n, 0);
        int32_t some[] = {0, 1, 2};
        char *text = NULL;
        size_t len = 99;
        CHECK_OK(p3_tokenizer_decode(tok, some, 3, 0, &text, &len, &err), &err);
        CHECK_EQ_INT(len, 0);
        p3_free(text);
        p3_free(ids);
    } else {
        CHECK_MSG(strstr(err.message, "empty.gguf") != NULL, "message names the file: %s",
                  err.message);
    }
    p3_tokenizer_free(tok);
    p3_gguf_free(g);
    bb_free(&b);
}

/* Links the tiny mini4k fixture (vocabulary 256) and Phi-3's tokenizer.model into dir. */
static bool link_spm_model(p3_test_ctx *t, const char *dir) {
    static const char *const files[] = {
        "config.json", "generation_config.json", "model.safetensors.index.json",
        "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"};
    char *cwd = realpath(".", NULL), *shared = realpath(p3_test_shared_dir(), NULL);
    char cmd[8192];
    int o =
        snprintf(cmd, sizeof cmd, "ln -s '%s/data/phi3/tokenizer-phi-3-mini/tokenizer.model' '%s'",
                 shared ? shared : "?", dir);
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        o += snprintf(cmd + o, sizeof cmd - (size_t)o,
                      " && ln -s '%s/tests/fixtures/mini4k/hf-f32/%s' '%s'", cwd ? cwd : "?",
                      files[i], dir);
    free(cwd);
    free(shared);
    p3_cmd_result res = {0};
    bool ok = (size_t)o < sizeof cmd && p3_test_run(t, cmd, &res) && res.exit_code == 0;
    p3_cmd_result_free(&res);
    return ok;
}

/* SentencePiece sources derive their merges on the first encode: generating from ids (what
 * `run --prompt-ids` does) and decoding never build them; tokenizing does, once. */
P3_TEST(tokenizer_merges_are_built_on_first_encode) {
    phi3c_error err = {0};
    phi3c_model *m = NULL;
    phi3c_session *s = NULL;
    /* the tiny fixture model with Phi-3's tokenizer.model beside it (and no tokenizer.json) */
    const char *dir = p3_test_tmpdir(t);
    if (!CHECK(link_spm_model(t, dir)) || !CHECK_OK(phi3c_model_load(dir, NULL, &m, &err), &err))
        return;
    const p3_tokenizer *tok = m->tok;
    if (!CHECK(tok != NULL)) goto done;
    CHECK_EQ_INT(atomic_load(&tok->merges_state), TOK_MERGES_PENDING);
    const int32_t prompt[4] = {1, 45, 49, 173};
    phi3c_generate_result r;
    phi3c_sampler_params greedy = phi3c_sampler_params_greedy();
    if (CHECK_OK(phi3c_session_create(m, NULL, &s, &err), &err) &&
        CHECK_OK(phi3c_session_feed_tokens(s, prompt, 4, NULL, &err), &err))
        CHECK_OK(phi3c_generate(s, &greedy, 3, NULL, NULL, &r, &err), &err);
    char *text = NULL;
    CHECK_OK(phi3c_detokenize(m, prompt, 4, &text, &err), &err);
    phi3c_free(text);
    CHECK_EQ_INT(atomic_load(&tok->merges_state), TOK_MERGES_PENDING);
    CHECK_EQ_INT(tok->n_merges, 0);
    int32_t *ids = NULL;
    size_t n = 0;
    /* " The quick" in Phi-3's vocabulary: the merges are there once the text is encoded */
    CHECK_OK(phi3c_tokenize(m, "The quick", 9, false, &ids, &n, &err), &err);
    CHECK_EQ_INT(atomic_load(&tok->merges_state), TOK_MERGES_READY);
    CHECK(tok->n_merges > 0);
    CHECK(n == 2 && ids[0] == 450 && ids[1] == 4996);
    phi3c_free(ids);
done:
    phi3c_session_free(s);
    phi3c_model_free(m);
}
