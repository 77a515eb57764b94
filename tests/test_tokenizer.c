/* test_tokenizer.c: the tokenizer against HF tokenizers' own ids (tests/fixtures/tokenizer/, made
 * by tools/make_tokenizer_tests.py) and llama.cpp's test vectors (ids from HF transformers), for
 * every source (tokenizer.json, tokenizer.model, GGUF); decode, streaming decode and the chat
 * template. */
#include "harness.h"
#include "phi3c_file.h"
#include "tok_internal.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FIXTURES "tests/fixtures/tokenizer/"

/* tokenizer-phi-3-medium's tokenizer.json is the same JSON as mini's: chat cases only */
static const char *const versions[] = {"tokenizer-phi-3-mini", "tokenizer-phi-3-apr2024"};

/* ---- small parsing helpers for the fixture lines ------------------------------------------ */

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Decodes hex [s, e) into a new NUL-terminated buffer. */
static char *unhex(const char *s, const char *e, size_t *len) {
    size_t n = (size_t)(e - s) / 2;
    char *out = malloc(n + 1);
    for (size_t i = 0; i < n; i++) out[i] = (char)(hexval(s[2 * i]) * 16 + hexval(s[2 * i + 1]));
    out[n] = '\0';
    *len = n;
    return out;
}

static size_t parse_ids(const char *s, const char *e, int32_t *ids, size_t cap) {
    size_t n = 0;
    while (s < e && n < cap) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s) break;
        ids[n++] = (int32_t)v;
        s = end;
        while (s < e && *s == ' ') s++;
    }
    return n;
}

/* Splits a line into at most `max` fields at ';' (pointers into the line). */
static size_t split_fields(const char *line, const char *end, const char **f, const char **fe,
                           size_t max) {
    size_t n = 0;
    const char *s = line;
    while (n < max) {
        const char *p = memchr(s, ';', (size_t)(end - s));
        f[n] = s;
        fe[n] = p ? p : end;
        n++;
        if (!p) break;
        s = p + 1;
    }
    return n;
}

static char *shared_path(const char *rel) {
    static char buf[8][512];
    static int next;
    char *b = buf[next++ & 7];
    snprintf(b, sizeof buf[0], "%s/%s", p3_test_shared_dir(), rel);
    return b;
}

static p3_tokenizer *load_or_fail(p3_test_ctx *t, const char *path) {
    p3_error err = {0};
    p3_tokenizer *tok = NULL;
    if (p3_tokenizer_load_path(path, &tok, &err) != PHI3C_OK) {
        CHECK_MSG(false, "loading %s: %s", path, err.message);
        return NULL;
    }
    return tok;
}

static bool ids_equal(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    return na == nb && (na == 0 || memcmp(a, b, na * sizeof *a) == 0);
}

static void print_ids(const char *label, const int32_t *ids, size_t n) {
    fprintf(stderr, "    %s:", label);
    for (size_t i = 0; i < n && i < 40; i++) fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, "%s\n", n > 40 ? " ..." : "");
}

/* Encodes text and compares with want; returns true when equal. */
static bool check_encode(p3_test_ctx *t, const p3_tokenizer *tok, const char *text, size_t len,
                         unsigned flags, const int32_t *want, size_t n_want, const char *label) {
    p3_error err = {0};
    int32_t *ids = NULL;
    size_t n = 0;
    if (!CHECK_OK(p3_tokenizer_encode(tok, text, len, flags, &ids, &n, &err), &err)) return false;
    bool ok = ids_equal(ids, n, want, n_want);
    if (!ok) {
        CHECK_MSG(false, "%s: encode of %zu bytes \"%.60s\" differs", label, len, text);
        print_ids("want", want, n_want);
        print_ids("got ", ids, n);
    }
    p3_free(ids);
    return ok;
}

static bool check_decode(p3_test_ctx *t, const p3_tokenizer *tok, const int32_t *ids, size_t n,
                         unsigned flags, const char *want, size_t want_len, const char *label) {
    p3_error err = {0};
    char *text = NULL;
    size_t len = 0;
    if (!CHECK_OK(p3_tokenizer_decode(tok, ids, n, flags, &text, &len, &err), &err)) return false;
    bool ok = len == want_len && memcmp(text, want, len) == 0;
    if (!ok)
        CHECK_MSG(false, "%s: decode (flags %u) gave \"%.60s\" (%zu bytes), want \"%.60s\" (%zu)",
                  label, flags, text, len, want, want_len);
    p3_free(text);
    return ok;
}

/* The streaming decoder's concatenated output must equal the whole decode. */
static bool check_stream(p3_test_ctx *t, const p3_tokenizer *tok, const int32_t *ids, size_t n,
                         unsigned flags, const char *want, size_t want_len) {
    p3_error err = {0};
    p3_detok_stream s;
    if (!CHECK_OK(p3_detok_stream_init(&s, tok, flags, &err), &err)) return false;
    char *all = malloc(want_len * 2 + 64 + n * 64);
    size_t len = 0;
    const char *piece;
    size_t plen;
    for (size_t i = 0; i < n; i++) {
        CHECK_OK(p3_detok_stream_push(&s, ids[i], &piece, &plen, &err), &err);
        CHECK(p3_utf8_valid(piece, plen)); /* never a partial character */
        memcpy(all + len, piece, plen);
        len += plen;
    }
    p3_detok_stream_finish(&s, &piece, &plen);
    memcpy(all + len, piece, plen);
    len += plen;
    bool ok = len == want_len && memcmp(all, want, len) == 0;
    if (!ok) CHECK_MSG(false, "stream decode gave \"%.*s\", want \"%.60s\"", (int)len, all, want);
    free(all);
    p3_detok_stream_free(&s);
    return ok;
}

/* ---- the HF tokenizers oracle ------------------------------------------------------------- */

typedef struct case_stats {
    size_t encode_total, encode_pass, decode_total, decode_pass;
} case_stats;

static void run_case_line(p3_test_ctx *t, const p3_tokenizer *tok, const char *line,
                          const char *end, case_stats *st, const char *label) {
    const char *f[6], *fe[6];
    size_t nf = split_fields(line, end, f, fe, 6);
    static int32_t want[65536], want_ns[65536];
    size_t len, dlen, slen;
    if (line[0] == 'E' && nf == 6) {
        char *text = unhex(f[1], fe[1], &len);
        char *dec = unhex(f[3], fe[3], &dlen);
        char *dec_skip = unhex(f[4], fe[4], &slen);
        size_t n = parse_ids(f[2], fe[2], want, 65536);
        size_t n_ns = parse_ids(f[5], fe[5], want_ns, 65536);
        bool ok = check_encode(t, tok, text, len, 0, want, n, label);
        ok &= check_encode(t, tok, text, len, P3_ENCODE_NO_SPECIAL, want_ns, n_ns, label);
        st->encode_total++;
        st->encode_pass += ok;
        ok = check_decode(t, tok, want, n, 0, dec, dlen, label);
        ok &= check_decode(t, tok, want, n, P3_DECODE_SKIP_SPECIAL, dec_skip, slen, label);
        ok &= check_stream(t, tok, want, n, 0, dec, dlen);
        ok &= check_stream(t, tok, want, n, P3_DECODE_SKIP_SPECIAL, dec_skip, slen);
        st->decode_total++;
        st->decode_pass += ok;
        free(text);
        free(dec);
        free(dec_skip);
    } else if (line[0] == 'D' && nf == 4) {
        size_t n = parse_ids(f[1], fe[1], want, 65536);
        char *dec = unhex(f[2], fe[2], &dlen);
        char *dec_skip = unhex(f[3], fe[3], &slen);
        bool ok = check_decode(t, tok, want, n, 0, dec, dlen, label);
        ok &= check_decode(t, tok, want, n, P3_DECODE_SKIP_SPECIAL, dec_skip, slen, label);
        st->decode_total++;
        st->decode_pass += ok;
        free(dec);
        free(dec_skip);
    } else {
        CHECK_MSG(false, "%s: malformed fixture line", label);
    }
}

static void run_cases(p3_test_ctx *t, const p3_tokenizer *tok, const char *file, case_stats *st) {
    size_t size;
    char *data = p3_test_read_file(t, file, &size);
    if (!data) return;
    for (char *line = data; line < data + size;) {
        char *nl = memchr(line, '\n', (size_t)(data + size - line));
        char *end = nl ? nl : data + size;
        if (end > line) run_case_line(t, tok, line, end, st, file);
        line = end + 1;
    }
    free(data);
}

P3_TEST(tokenizer_json_matches_hf_tokenizers) {
    for (size_t v = 0; v < P3_ARRAY_LEN(versions); v++) {
        char dir[256], file[256];
        snprintf(dir, sizeof dir, "data/phi3/%s", versions[v]);
        snprintf(file, sizeof file, FIXTURES "%s.cases", versions[v]);
        p3_tokenizer *tok = load_or_fail(t, shared_path(dir));
        if (!tok) continue;
        case_stats st = {0};
        run_cases(t, tok, file, &st);
        printf("    %s: encode %zu/%zu, decode %zu/%zu identical to HF tokenizers\n", versions[v],
               st.encode_pass, st.encode_total, st.decode_pass, st.decode_total);
        CHECK(st.encode_total >= 300);
        CHECK_EQ_INT(st.encode_pass, st.encode_total);
        CHECK_EQ_INT(st.decode_pass, st.decode_total);
        p3_tokenizer_free(tok);
    }
}

/* ---- llama.cpp's vectors: inputs separated by "\n__ggml_vocab_test__\n", one id line each --- */

static size_t run_llamacpp_vectors(p3_test_ctx *t, const p3_tokenizer *tok, const char *label,
                                   size_t *total) {
    size_t in_size, out_size, pass = 0;
    char *in =
        p3_test_read_file(t, shared_path("data/llamacpp/ggml-vocab-phi-3.gguf.inp"), &in_size);
    char *out =
        p3_test_read_file(t, shared_path("data/llamacpp/ggml-vocab-phi-3.gguf.out"), &out_size);
    *total = 0;
    if (!in || !out) return 0;
    static const char sep[] = "\n__ggml_vocab_test__\n";
    const char *p = in, *end = in + in_size, *o = out, *oend = out + out_size;
    static int32_t want[4096];
    while (p < end && o < oend) {
        const char *q = memmem(p, (size_t)(end - p), sep, sizeof sep - 1);
        if (!q) break;
        const char *onl = memchr(o, '\n', (size_t)(oend - o));
        if (!onl) onl = oend;
        size_t n = parse_ids(o, onl, want, 4096);
        (*total)++;
        pass += check_encode(t, tok, p, (size_t)(q - p), 0, want, n, label);
        p = q + sizeof sep - 1;
        o = onl + 1;
    }
    free(in);
    free(out);
    return pass;
}

P3_TEST(tokenizer_llamacpp_vectors_every_source) {
    static const char *const sources[] = {
        "data/phi3/tokenizer-phi-3-mini", "data/phi3/tokenizer-phi-3-apr2024",
        "data/phi3/tokenizer-phi-3-mini/tokenizer.model", "data/llamacpp/ggml-vocab-phi-3.gguf"};
    for (size_t i = 0; i < P3_ARRAY_LEN(sources); i++) {
        p3_tokenizer *tok = NULL;
        p3_error err = {0};
        const char *path = shared_path(sources[i]);
        if (strstr(path, "tokenizer.model")) {
            size_t size;
            uint8_t *data = p3_test_read_file(t, path, &size);
            p3_tokenizer_files f = {.what = path, .spm_model = data, .spm_model_len = size};
            CHECK_OK(p3_tokenizer_load_buffers(&f, &tok, &err), &err);
            free(data);
        } else {
            tok = load_or_fail(t, path);
        }
        if (!tok) continue;
        size_t total, pass = run_llamacpp_vectors(t, tok, sources[i], &total);
        printf("    %s: %zu/%zu llama.cpp vectors identical\n", sources[i], pass, total);
        CHECK(total >= 40);
        CHECK_EQ_INT(pass, total);
        p3_tokenizer_free(tok);
    }
}

/* ---- the three sources agree -------------------------------------------------------------- */

static bool has_added_token_text(const char *s, size_t len) {
    return memmem(s, len, "<|", 2) || memmem(s, len, "<s>", 3) || memmem(s, len, "</s>", 4) ||
           memmem(s, len, "<unk>", 5);
}

P3_TEST(tokenizer_sources_agree_without_special_tokens) {
    p3_tokenizer *json = load_or_fail(t, shared_path("data/phi3/tokenizer-phi-3-mini"));
    p3_tokenizer *gguf = load_or_fail(t, shared_path("data/llamacpp/ggml-vocab-phi-3.gguf"));
    p3_tokenizer *spm = NULL;
    size_t size;
    uint8_t *data =
        p3_test_read_file(t, shared_path("data/phi3/tokenizer-phi-3-mini/tokenizer.model"), &size);
    p3_error err = {0};
    if (data) {
        p3_tokenizer_files f = {
            .what = "tokenizer.model", .spm_model = data, .spm_model_len = size};
        CHECK_OK(p3_tokenizer_load_buffers(&f, &spm, &err), &err);
        free(data);
    }
    char *cases = p3_test_read_file(t, FIXTURES "tokenizer-phi-3-mini.cases", &size);
    if (!json || !gguf || !spm || !cases) goto done;
    size_t compared = 0, agree = 0;
    for (char *line = cases; line < cases + size;) {
        char *nl = memchr(line, '\n', (size_t)(cases + size - line));
        char *end = nl ? nl : cases + size;
        const char *f[6], *fe[6];
        if (line[0] == 'E' && split_fields(line, end, f, fe, 6) == 6) {
            size_t len;
            char *text = unhex(f[1], fe[1], &len);
            if (!has_added_token_text(text, len)) {
                int32_t *a, *b, *c;
                size_t na, nb, nc;
                CHECK_OK(p3_tokenizer_encode(json, text, len, 0, &a, &na, &err), &err);
                CHECK_OK(p3_tokenizer_encode(spm, text, len, 0, &b, &nb, &err), &err);
                CHECK_OK(p3_tokenizer_encode(gguf, text, len, 0, &c, &nc, &err), &err);
                compared++;
                bool ok = ids_equal(a, na, b, nb) && ids_equal(a, na, c, nc);
                agree += ok;
                CHECK_MSG(ok, "sources disagree on \"%.60s\"", text);
                p3_free(a);
                p3_free(b);
                p3_free(c);
            }
            free(text);
        }
        line = end + 1;
    }
    printf("    tokenizer.json, tokenizer.model and GGUF agree on %zu/%zu texts\n", agree,
           compared);
    CHECK(compared >= 200);
    /* the merges HF's converter derives from tokenizer.model's scores are tokenizer.json's */
    CHECK_EQ_INT(spm->n_merges, json->n_merges);
    size_t same = 0;
    for (size_t i = 0; i <= json->merge_mask; i++) {
        const tok_merge_slot *m = &json->merges[i];
        if (!m->key) continue;
        int32_t left = (int32_t)((m->key - 1) >> 32), right = (int32_t)((m->key - 1) & 0xFFFFFFFF);
        int32_t rank, result;
        same += tok_merge_get(spm, left, right, &rank, &result) && rank == m->rank &&
                result == m->result;
    }
    CHECK_EQ_INT(same, json->n_merges);
done:
    free(cases);
    p3_tokenizer_free(json);
    p3_tokenizer_free(gguf);
    p3_tokenizer_free(spm);
}

/* ---- chat template: jinja2 rendering of each tokenizer_config.json template ----------------- */

/* "role hex,content hex|..." -> at most 16 messages; their strings are in owned (free them). */
static size_t parse_messages(const char *p, const char *e, p3_chat_message *msgs, char **owned,
                             size_t *n_owned) {
    size_t n_msgs = 0;
    while (p < e && n_msgs < 16) {
        const char *bar = memchr(p, '|', (size_t)(e - p));
        const char *me = bar ? bar : e;
        const char *comma = memchr(p, ',', (size_t)(me - p));
        if (!comma) break;
        size_t l;
        owned[(*n_owned)++] = unhex(p, comma, &l);
        owned[(*n_owned)++] = unhex(comma + 1, me, &l);
        msgs[n_msgs].role = owned[*n_owned - 2];
        msgs[n_msgs++].content = owned[*n_owned - 1];
        p = bar ? bar + 1 : e;
    }
    return n_msgs;
}

P3_TEST(tokenizer_chat_template_matches_jinja) {
    static const char *const chat_versions[] = {"tokenizer-phi-3-mini", "tokenizer-phi-3-apr2024",
                                                "tokenizer-phi-3-medium"};
    static const p3_chat_format formats[] = {P3_CHAT_PHI3, P3_CHAT_PHI3_APR2024,
                                             P3_CHAT_PHI3_MEDIUM};
    for (size_t v = 0; v < P3_ARRAY_LEN(chat_versions); v++) {
        char dir[256], file[256];
        snprintf(dir, sizeof dir, "data/phi3/%s", chat_versions[v]);
        snprintf(file, sizeof file, FIXTURES "%s.chat", chat_versions[v]);
        p3_tokenizer *tok = load_or_fail(t, shared_path(dir));
        size_t size;
        char *data = p3_test_read_file(t, file, &size);
        if (!tok || !data) {
            p3_tokenizer_free(tok);
            free(data);
            continue;
        }
        CHECK_EQ_INT(p3_tokenizer_chat_format(tok), formats[v]);
        size_t total = 0, pass = 0;
        for (char *line = data; line < data + size;) {
            char *nl = memchr(line, '\n', (size_t)(data + size - line));
            char *end = nl ? nl : data + size;
            const char *f[4], *fe[4];
            if (line[0] == 'C' && split_fields(line, end, f, fe, 4) == 4) {
                p3_chat_message msgs[16];
                char *owned[32];
                size_t n_owned = 0, n_msgs = parse_messages(f[2], fe[2], msgs, owned, &n_owned);
                size_t want_len, len;
                char *want = unhex(f[3], fe[3], &want_len), *text = NULL;
                p3_error err = {0};
                bool gen = f[1][0] == '1';
                total++;
                if (CHECK_OK(p3_tokenizer_apply_chat(tok, msgs, n_msgs, gen, &text, &len, &err),
                             &err)) {
                    bool ok = len == want_len && memcmp(text, want, len) == 0;
                    pass += ok;
                    CHECK_MSG(ok, "%s: chat rendered \"%s\", want \"%s\"", file, text, want);
                }
                p3_free(text);
                free(want);
                for (size_t i = 0; i < n_owned; i++) free(owned[i]);
            }
            line = end + 1;
        }
        printf("    %s: %zu/%zu chat renderings identical to jinja2\n", chat_versions[v], pass,
               total);
        CHECK(total >= 10);
        free(data);
        p3_tokenizer_free(tok);
    }
}

/* A Phi-3 GGUF keeps no strip flags; phi3c applies tokenizer.json's rstrip to the specials of a
 * phi3 GGUF, so its chat prompts (rendered with the GGUF's own template) and text glued to special
 * tokens give the ids HF's tokenizer.json gives (tools/make_tokenizer_tests.py). */
P3_TEST(tokenizer_phi3_gguf_chat_ids_match_hf) {
    p3_tokenizer *tok = load_or_fail(t, shared_path("data/llamacpp/ggml-vocab-phi-3.gguf"));
    size_t size;
    char *data = p3_test_read_file(t, FIXTURES "phi-3-gguf-chat.ids", &size);
    size_t total = 0, pass = 0;
    for (char *line = data; tok && line && line < data + size;) {
        char *nl = memchr(line, '\n', (size_t)(data + size - line));
        char *end = nl ? nl : data + size;
        const char *f[5], *fe[5];
        size_t nf = split_fields(line, end, f, fe, 5);
        size_t len = 0;
        char *text = NULL;
        int32_t want[512];
        size_t n_want = 0;
        p3_error err = {0};
        if (line[0] == 'G' && nf == 5) {
            p3_chat_message msgs[16];
            char *owned[32];
            size_t n_owned = 0, n_msgs = parse_messages(f[2], fe[2], msgs, owned, &n_owned);
            size_t want_len;
            char *rendered = unhex(f[3], fe[3], &want_len);
            CHECK_OK(p3_tokenizer_apply_chat(tok, msgs, n_msgs, f[1][0] == '1', &text, &len, &err),
                     &err);
            CHECK_MSG(text && len == want_len && memcmp(text, rendered, len) == 0,
                      "GGUF chat rendered \"%s\", jinja2 \"%s\"", text, rendered);
            n_want = parse_ids(f[4], fe[4], want, 512);
            free(rendered);
            for (size_t i = 0; i < n_owned; i++) free(owned[i]);
        } else if (line[0] == 'T' && nf == 3) {
            char *raw = unhex(f[1], fe[1], &len);
            text = p3_malloc(len + 1);
            if (text) memcpy(text, raw, len + 1);
            free(raw);
            n_want = parse_ids(f[2], fe[2], want, 512);
        }
        if (text) {
            total++;
            pass += check_encode(t, tok, text, len, 0, want, n_want, "phi-3 GGUF");
        }
        p3_free(text);
        line = end + 1;
    }
    printf("    ggml-vocab-phi-3.gguf: %zu/%zu chat prompts and glued texts identical to HF\n",
           pass, total);
    CHECK(total >= 30);
    free(data);
    p3_tokenizer_free(tok);
}

P3_TEST(tokenizer_chat_unknown_template_is_refused) {
    size_t size;
    char *json =
        p3_test_read_file(t, shared_path("data/phi3/tokenizer-phi-3-mini/tokenizer.json"), &size);
    if (!json) return;
    static const char config[] =
        "{\"chat_template\": \"{% for m in messages %}{{ m.content }}{% endfor %}\","
        " \"add_bos_token\": false, \"eos_token\": \"<|endoftext|>\"}";
    static const char generation[] = "{\"eos_token_id\": [32000, 32001, 32007]}";
    p3_tokenizer_files f = {.what = "memory",
                            .tokenizer_json = json,
                            .tokenizer_json_len = size,
                            .tokenizer_config_json = config,
                            .tokenizer_config_json_len = sizeof config - 1,
                            .generation_config_json = generation,
                            .generation_config_json_len = sizeof generation - 1};
    p3_tokenizer *tok = NULL;
    p3_error err = {0};
    if (CHECK_OK(p3_tokenizer_load_buffers(&f, &tok, &err), &err)) {
        CHECK_EQ_INT(p3_tokenizer_chat_format(tok), P3_CHAT_UNKNOWN);
        p3_chat_message m = {"user", "hi"};
        char *text = NULL;
        size_t len;
        CHECK_STATUS(p3_tokenizer_apply_chat(tok, &m, 1, true, &text, &len, &err),
                     PHI3C_ERR_UNSUPPORTED);
        CHECK(strstr(err.message, "chat template") != NULL);
        const int32_t *stops;
        CHECK_EQ_INT(p3_tokenizer_stop_ids(tok, &stops), 3);
        CHECK(p3_tokenizer_is_stop(tok, 32001) && p3_tokenizer_is_stop(tok, 32007));
        CHECK(!p3_tokenizer_add_bos(tok));
        CHECK_EQ_INT(p3_tokenizer_eos_id(tok), 32000);
        CHECK_EQ_INT(p3_tokenizer_bos_id(tok), 1);
    }
    p3_tokenizer_free(tok);
    free(json);
}

/* ---- refusals and hostile input ------------------------------------------------------------ */

/* Byte-level tokenizers whose pre-tokenizer phi3c does not implement (GPT-2's ByteLevel regex,
 * another Split pattern such as cl100k's) are refused by name, never approximated. */
P3_TEST(tokenizer_refuses_unknown_byte_level_pretokenizers) {
    static const char gpt2[] =
        "{\"version\":\"1.0\",\"added_tokens\":[],\"normalizer\":null,"
        "\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false},"
        "\"decoder\":{\"type\":\"ByteLevel\"},"
        "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a b\"]}}";
    p3_tokenizer_files f = {
        .what = "gpt2", .tokenizer_json = gpt2, .tokenizer_json_len = sizeof gpt2 - 1};
    p3_tokenizer *tok = NULL;
    p3_error err = {0};
    CHECK_STATUS(p3_tokenizer_load_buffers(&f, &tok, &err), PHI3C_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(err.message, "pre-tokenizer 'ByteLevel'") != NULL, "message: %s", err.message);
    CHECK(tok == NULL);
    static const char cl100k[] =
        "{\"added_tokens\":[],\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"Sequence\","
        "\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":\"'(?i:[sdmt]|ll|ve|re)|"
        "[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?+\\\\p{L}+\"},\"behavior\":\"Isolated\",\"invert\":false},"
        "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":false}]},"
        "\"decoder\":{\"type\":\"ByteLevel\"},"
        "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a b\"]}}";
    f.what = "cl100k";
    f.tokenizer_json = cl100k;
    f.tokenizer_json_len = sizeof cl100k - 1;
    CHECK_STATUS(p3_tokenizer_load_buffers(&f, &tok, &err), PHI3C_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(err.message, "Split pattern ''(?i:[sdmt]|ll|ve|re)") != NULL, "message: %s",
              err.message);
    CHECK(tok == NULL);
    /* an added token HF would match in the normalized text */
    static const char normalized[] =
        "{\"added_tokens\":[{\"id\":3,\"content\":\"<x>\",\"normalized\":true}],"
        "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a b\"]}}";
    f.tokenizer_json = normalized;
    f.tokenizer_json_len = sizeof normalized - 1;
    CHECK_STATUS(p3_tokenizer_load_buffers(&f, &tok, &err), PHI3C_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(err.message, "normalized") != NULL, "message: %s", err.message);
}

P3_TEST(tokenizer_invalid_utf8_uses_byte_fallback) {
    p3_tokenizer *tok = load_or_fail(t, shared_path("data/phi3/tokenizer-phi-3-mini"));
    if (!tok) return;
    /* a stray 0xFF, a truncated 3-byte character, an overlong '/', a surrogate, then text */
    static const char text[] = "\xff"
                               "a\xe4\xbd"
                               "\xc0\xaf"
                               "\xed\xa0\x80"
                               "b";
    int32_t *ids = NULL;
    size_t n = 0;
    p3_error err = {0};
    if (CHECK_OK(p3_tokenizer_encode(tok, text, sizeof text - 1, 0, &ids, &n, &err), &err)) {
        /* each invalid byte is its own <0xXX> token, found by name in the vocabulary */
        static const uint8_t bad[] = {0xff, 0xe4, 0xbd, 0xc0, 0xaf, 0xed, 0xa0, 0x80};
        size_t found = 0;
        for (size_t i = 0, j = 0; i < n && j < sizeof bad; i++) {
            char name[8];
            snprintf(name, sizeof name, "<0x%02X>", bad[j]);
            if (ids[i] == p3_tokenizer_find(tok, name, 6)) found++, j++;
        }
        CHECK_EQ_INT(found, sizeof bad);
        char *out = NULL;
        size_t len;
        CHECK_OK(p3_tokenizer_decode(tok, ids, n, 0, &out, &len, &err), &err);
        CHECK(out && p3_utf8_valid(out, len)); /* U+FFFD for the bad bytes */
        p3_free(out);
    }
    p3_free(ids);
    ids = NULL;
    CHECK_OK(p3_tokenizer_encode(tok, "Hi", 2, P3_ENCODE_ADD_BOS, &ids, &n, &err), &err);
    CHECK(n >= 1 && ids[0] == p3_tokenizer_bos_id(tok) && ids[0] == 1);
    p3_free(ids);
    /* an id without a token (an embedding padding row) is dropped, as HF tokenizers 0.22.2's
     * decode([15043, 32050, 3186]) == "Hello world" */
    static const int32_t padded[] = {15043, 32050, 3186};
    check_decode(t, tok, padded, 3, 0, "Hello world", 11, "padding id");
    check_stream(t, tok, padded, 3, 0, "Hello world", 11);
    static const int32_t negative[] = {-1};
    char *out = NULL;
    size_t len;
    CHECK_STATUS(p3_tokenizer_decode(tok, negative, 1, 0, &out, &len, &err), PHI3C_ERR_INVALID_ARG);
    p3_tokenizer_free(tok);
}

/* ---- opened sources and native blobs -------------------------------------------------------- */

P3_TEST(tokenizer_from_source_and_native_blobs) {
    /* a GGUF opened as a model source, and its tokenizer.gguf blob as a native file stores it */
    const char *gguf_path = shared_path("data/llamacpp/ggml-vocab-phi-3.gguf");
    p3_model_source *src = NULL;
    p3_error err = {0};
    p3_tokenizer *tok = NULL;
    size_t total, pass;
    if (CHECK_OK(p3_source_open(gguf_path, &src, &err), &err)) {
        if (CHECK_OK(p3_tokenizer_load_source(src, &tok, &err), &err)) {
            pass = run_llamacpp_vectors(t, tok, "source", &total);
            CHECK(total >= 40 && pass == total);
            p3_tokenizer_free(tok);
            tok = NULL;
        }
        p3_native_blob *blobs = NULL;
        size_t n = 0;
        if (CHECK_OK(p3_native_gather_blobs(src, &blobs, &n, &err), &err)) {
            p3_native nat = {.blobs = blobs, .n_blobs = n};
            if (CHECK_OK(p3_tokenizer_load_native(&nat, "native", &tok, &err), &err)) {
                pass = run_llamacpp_vectors(t, tok, "native tokenizer.gguf", &total);
                CHECK(total >= 40 && pass == total);
                CHECK_EQ_INT(p3_tokenizer_chat_format(tok), P3_CHAT_PHI3_APR2024);
                p3_tokenizer_free(tok);
                tok = NULL;
            }
            p3_native_blobs_free(blobs, n);
        }
        p3_source_close(src);
    }
    /* the HF files as blobs: the whole HF oracle through p3_tokenizer_load_native */
    static const char *const names[] = {"tokenizer.json", "tokenizer_config.json"};
    p3_native_blob blobs[2];
    memset(blobs, 0, sizeof blobs);
    bool ok = true;
    for (size_t i = 0; i < 2; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "data/phi3/tokenizer-phi-3-mini/%s", names[i]);
        snprintf(blobs[i].name, sizeof blobs[i].name, "%s", names[i]);
        blobs[i].data = p3_test_read_file(t, shared_path(rel), &blobs[i].size);
        ok &= blobs[i].data != NULL;
    }
    p3_native nat = {.blobs = blobs, .n_blobs = 2};
    if (ok && CHECK_OK(p3_tokenizer_load_native(&nat, "native", &tok, &err), &err)) {
        case_stats st = {0};
        run_cases(t, tok, FIXTURES "tokenizer-phi-3-mini.cases", &st);
        CHECK(st.encode_total >= 300 && st.encode_pass == st.encode_total);
        CHECK(!p3_tokenizer_add_bos(tok)); /* tokenizer_config.json was read from its blob */
        p3_tokenizer_free(tok);
    }
    for (size_t i = 0; i < 2; i++) free((void *)blobs[i].data);
}

#ifdef P3_FAULT_INJECTION
/* Every allocation failure during load, encode and decode gives PHI3C_ERR_NOMEM (or, for the
 * optional word cache, simply no cache), never a crash or a leak. */
P3_TEST(tokenizer_allocation_failures_are_clean) {
    static const char *const seeds[] = {"tests/fuzz/corpus/fuzz_tokenizer_json/small.json",
                                        "tests/fuzz/corpus/fuzz_spm_model/small.model"};
    static const char config[] = "{\"add_bos_token\": true, \"chat_template\": null}";
    char text[600];
    for (size_t i = 0; i < sizeof text - 1; i++)
        text[i] = "the <|end|> in er\n\xe4\xb8\xad"[i % 22];
    text[sizeof text - 1] = '\0';
    for (size_t s = 0; s < P3_ARRAY_LEN(seeds); s++) {
        size_t size;
        char *data = p3_test_read_file(t, seeds[s], &size);
        if (!data) continue;
        p3_tokenizer_files f = {.what = seeds[s],
                                .tokenizer_config_json = config,
                                .tokenizer_config_json_len = sizeof config - 1};
        if (s == 0)
            f.tokenizer_json = data, f.tokenizer_json_len = size;
        else
            f.spm_model = (const uint8_t *)data, f.spm_model_len = size;
        bool completed = false;
        long n = 0;
        for (; n < 5000 && !completed; n++) {
            p3_tokenizer *tok = NULL;
            int32_t *ids = NULL;
            char *out = NULL;
            size_t n_ids = 0, len = 0;
            p3_error err = {0};
            p3_alloc_fail_after(n);
            p3_status st = p3_tokenizer_load_buffers(&f, &tok, &err);
            if (st == PHI3C_OK)
                st = p3_tokenizer_encode(tok, text, strlen(text), 0, &ids, &n_ids, &err);
            if (st == PHI3C_OK) st = p3_tokenizer_decode(tok, ids, n_ids, 0, &out, &len, &err);
            p3_alloc_fail_after(-1);
            CHECK_MSG(st == PHI3C_OK || st == PHI3C_ERR_NOMEM, "%s n=%ld: %s", seeds[s], n,
                      err.message);
            completed = st == PHI3C_OK;
            p3_free(out);
            p3_free(ids);
            p3_tokenizer_free(tok);
        }
        CHECK_MSG(completed && n > 10, "%s: completed %d after %ld failures", seeds[s], completed,
                  n);
        printf("    %s: %ld allocation failures injected, each handled\n", seeds[s], n - 1);
        free(data);
    }
}
#endif

/* lstrip is on no Phi-3 token: HF's handling is checked on the current tokenizer with lstrip set
 * on <|end|> and <|user|> (the same flags tools/make_tokenizer_tests.py sets before asking HF). */
P3_TEST(tokenizer_lstrip_matches_hf_tokenizers) {
    p3_tokenizer *tok = load_or_fail(t, shared_path("data/phi3/tokenizer-phi-3-mini"));
    if (!tok) return;
    for (size_t i = 0; i < tok->n_added; i++)
        if (tok->added[i].id == 32007 || tok->added[i].id == 32010) tok->added[i].lstrip = true;
    case_stats st = {0};
    run_cases(t, tok, FIXTURES "tokenizer-phi-3-mini-lstrip.cases", &st);
    printf("    lstrip variant: encode %zu/%zu, decode %zu/%zu identical to HF tokenizers\n",
           st.encode_pass, st.encode_total, st.decode_pass, st.decode_total);
    CHECK(st.encode_total >= 10);
    CHECK_EQ_INT(st.encode_pass, st.encode_total);
    p3_tokenizer_free(tok);
}

/* A vocabulary without "▁": every space becomes three byte tokens, unknown characters fuse into one
 * <unk>. Ids from HF tokenizers 0.22.2 (Tokenizer.from_str of this JSON). */
P3_TEST(tokenizer_space_mark_by_byte_fallback) {
    static const char json[] =
        "{\"version\": \"1.0\", \"added_tokens\": [], \"normalizer\": {\"type\": \"Sequence\", "
        "\"normalizers\": [{\"type\": \"Prepend\", \"prepend\": \"\\u2581\"}, {\"type\": "
        "\"Replace\", \"pattern\": {\"String\": \" \"}, \"content\": \"\\u2581\"}]}, "
        "\"pre_tokenizer\": null, \"decoder\": null, \"model\": {\"type\": \"BPE\", \"dropout\": "
        "null, \"unk_token\": \"<unk>\", \"continuing_subword_prefix\": null, "
        "\"end_of_word_suffix\": null, \"fuse_unk\": true, \"byte_fallback\": true, \"vocab\": "
        "{\"<unk>\": 0, \"a\": 1, \"<0xE2>\": 2, \"<0x96>\": 3, \"<0x81>\": 4, \"b\": 5, \"ab\": "
        "6}, \"merges\": [\"a b\"]}}";
    static const int32_t want[] = {2, 3, 4, 1, 2, 3, 4, 2, 3, 4, 6, 2, 3, 4, 0};
    p3_tokenizer_files f = {
        .what = "no-mark", .tokenizer_json = json, .tokenizer_json_len = sizeof json - 1};
    p3_tokenizer *tok = NULL;
    p3_error err = {0};
    if (!CHECK_OK(p3_tokenizer_load_buffers(&f, &tok, &err), &err)) return;
    check_encode(t, tok, "a  ab xyz", 9, 0, want, P3_ARRAY_LEN(want), "no-mark");
    char spaces[300];
    memset(spaces, ' ', sizeof spaces);
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK_OK(p3_tokenizer_encode(tok, spaces, sizeof spaces, 0, &ids, &n, &err), &err);
    CHECK_EQ_INT(n, 3 * (sizeof spaces + 1));
    p3_free(ids);
    p3_tokenizer_free(tok);
}

/* ---- byte-level BPE: Phi-4-mini's tokenizer ---------------------------------------------- */

/* build/phi4-tokenizer: made from bpe-openai's o200k_base ranks by `make phi4-tokenizer` (which
 * `make test` runs first); NULL and the test skipped when it has not been built. */
static p3_tokenizer *load_phi4(p3_test_ctx *t) {
    const char *dir = getenv("PHI3C_PHI4_TOKENIZER");
    if (!dir) dir = "build/phi4-tokenizer";
    char path[512];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    if (access(path, R_OK) != 0) {
        p3_test_skip(t, "%s not built (make phi4-tokenizer)", path);
        return NULL;
    }
    return load_or_fail(t, dir);
}

typedef struct phi4_stats {
    size_t hf, hf_pass, tt, tt_pass, dec, dec_pass, trip, trip_pass, chat, chat_pass;
} phi4_stats;

static void phi4_text_line(p3_test_ctx *t, const p3_tokenizer *tok, const char **f, const char **fe,
                           bool hf, phi4_stats *st) {
    static int32_t want[65536];
    size_t len, n_want = parse_ids(f[2], fe[2], want, 65536);
    char *text = unhex(f[1], fe[1], &len);
    bool ok = check_encode(t, tok, text, len, 0, want, n_want, hf ? "HF" : "tiktoken");
    if (hf) {
        st->hf++, st->hf_pass += ok;
        size_t dlen;
        char *dec = unhex(f[3], fe[3], &dlen);
        bool dok = check_decode(t, tok, want, n_want, 0, dec, dlen, "HF") &&
                   check_stream(t, tok, want, n_want, 0, dec, dlen);
        st->dec++, st->dec_pass += dok;
        /* every text is valid UTF-8: decoding its ids gives it back */
        st->trip++, st->trip_pass += dlen == len && memcmp(dec, text, len) == 0;
        free(dec);
    } else {
        st->tt++, st->tt_pass += ok;
    }
    free(text);
}

static void phi4_decode_line(p3_test_ctx *t, const p3_tokenizer *tok, const char **f,
                             const char **fe, phi4_stats *st) {
    static int32_t ids[4096];
    size_t n = parse_ids(f[1], fe[1], ids, 4096), dlen, slen;
    char *dec = unhex(f[2], fe[2], &dlen), *skip = unhex(f[3], fe[3], &slen);
    bool ok = check_decode(t, tok, ids, n, 0, dec, dlen, "HF") &&
              check_decode(t, tok, ids, n, P3_DECODE_SKIP_SPECIAL, skip, slen, "HF") &&
              check_stream(t, tok, ids, n, 0, dec, dlen);
    st->dec++, st->dec_pass += ok;
    free(dec);
    free(skip);
}

static void phi4_chat_line(p3_test_ctx *t, const p3_tokenizer *tok, const char **f, const char **fe,
                           phi4_stats *st) {
    p3_chat_message msgs[16];
    char *owned[32];
    size_t n_owned = 0, n_msgs = parse_messages(f[2], fe[2], msgs, owned, &n_owned), want_len, len;
    char *want = unhex(f[3], fe[3], &want_len), *text = NULL;
    p3_error err = {0};
    bool ok =
        CHECK_OK(p3_tokenizer_apply_chat(tok, msgs, n_msgs, f[1][0] == '1', &text, &len, &err),
                 &err) &&
        len == want_len && memcmp(text, want, len) == 0;
    CHECK_MSG(ok, "Phi-4 chat rendered \"%s\", jinja2 \"%s\"", text ? text : "", want);
    st->chat++, st->chat_pass += ok;
    p3_free(text);
    free(want);
    for (size_t i = 0; i < n_owned; i++) free(owned[i]);
}

static void run_phi4_cases(p3_test_ctx *t, const p3_tokenizer *tok, const char *label) {
    CHECK_EQ_INT(p3_tokenizer_chat_format(tok), P3_CHAT_PHI4);
    size_t size;
    char *data = p3_test_read_file(t, FIXTURES "phi4-mini.cases", &size);
    phi4_stats st = {0};
    for (char *line = data; data && line < data + size;) {
        char *nl = memchr(line, '\n', (size_t)(data + size - line));
        char *end = nl ? nl : data + size;
        const char *f[5], *fe[5];
        size_t nf = split_fields(line, end, f, fe, 5);
        if (line[0] == 'H' && nf == 4) phi4_text_line(t, tok, f, fe, true, &st);
        if (line[0] == 'T' && nf == 3) phi4_text_line(t, tok, f, fe, false, &st);
        if (line[0] == 'D' && nf == 4) phi4_decode_line(t, tok, f, fe, &st);
        if (line[0] == 'C' && nf == 4) phi4_chat_line(t, tok, f, fe, &st);
        line = end + 1;
    }
    printf("    %s: HF tokenizers %zu/%zu, tiktoken == bpe-openai %zu/%zu, decode %zu/%zu, "
           "round trips %zu/%zu, chat %zu/%zu\n",
           label, st.hf_pass, st.hf, st.tt_pass, st.tt, st.dec_pass, st.dec, st.trip_pass, st.trip,
           st.chat_pass, st.chat);
    CHECK(st.hf >= 500 && st.tt >= 500 && st.chat >= 10);
    CHECK_EQ_INT(st.trip_pass, st.trip);
    free(data);
}

/* tests/fixtures/tokenizer/phi4-mini.cases (tools/make_phi4_tokenizer_tests.py): ids from HF
 * tokenizers and from tiktoken == bpe-openai, decodes from HF, chat renderings from jinja2; through
 * the folder (tokenizer.json + tokenizer_config.json), the same files as in-memory blobs (what a
 * native .phi3c file holds) and the GGUF form (gpt2 / gpt-4o). */
P3_TEST(tokenizer_phi4_matches_hf_and_tiktoken) {
    p3_tokenizer *tok = load_phi4(t);
    if (!tok) return;
    run_phi4_cases(t, tok, "tokenizer.json");
    p3_tokenizer_free(tok);
    const char *dir =
        getenv("PHI3C_PHI4_TOKENIZER") ? getenv("PHI3C_PHI4_TOKENIZER") : "build/phi4-tokenizer";
    char path[512];
    size_t json_len, config_len;
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    char *json = p3_test_read_file(t, path, &json_len);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    char *config = p3_test_read_file(t, path, &config_len);
    p3_tokenizer_files f = {.what = "phi4 blobs",
                            .tokenizer_json = json,
                            .tokenizer_json_len = json_len,
                            .tokenizer_config_json = config,
                            .tokenizer_config_json_len = config_len};
    p3_error err = {0};
    tok = NULL;
    if (json && config && CHECK_OK(p3_tokenizer_load_buffers(&f, &tok, &err), &err))
        run_phi4_cases(t, tok, "blobs");
    p3_tokenizer_free(tok);
    free(json);
    free(config);
    snprintf(path, sizeof path, "%s/tokenizer.gguf", dir);
    tok = load_or_fail(t, path);
    if (tok) run_phi4_cases(t, tok, "tokenizer.gguf");
    p3_tokenizer_free(tok);
    /* `info` names the tokenizer type */
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s info -m %s", p3_test_cli(), path);
    p3_cmd_result res = {0};
    if (CHECK(p3_test_run(t, cmd, &res)))
        CHECK_MSG(res.exit_code == 0 && res.out &&
                      strstr(res.out, "tokenizer                byte-level BPE (o200k split), "
                                      "200024 ids, chat format Phi-4-mini"),
                  "info said: %s", res.out ? res.out : "");
    p3_cmd_result_free(&res);
}

/* Sets `"key": false` to true (same length) in the added token whose content is `content`. */
static bool set_added_flag(char *json, size_t len, const char *content, const char *key) {
    char want[64], flag[32];
    snprintf(want, sizeof want, "\"content\": \"%s\"", content);
    snprintf(flag, sizeof flag, "\"%s\": false", key);
    char *at = memmem(json, len, want, strlen(want));
    char *end = at ? memchr(at, '}', len - (size_t)(at - json)) : NULL;
    char *f = at && end ? memmem(at, (size_t)(end - at), flag, strlen(flag)) : NULL;
    if (!f) return false;
    memcpy(f + strlen(flag) - 5, "true ", 5);
    return true;
}

/* HF's lstrip / rstrip / normalized on byte-level added tokens: the S lines of phi4-mini.cases
 * come from HF on the tokenizer.json with <|end|> rstrip, <|user|> lstrip, <|system|> normalized.
 */
P3_TEST(tokenizer_phi4_strip_flags_match_hf) {
    p3_tokenizer *probe = load_phi4(t);
    if (!probe) return;
    p3_tokenizer_free(probe);
    char path[512];
    snprintf(path, sizeof path, "%s/tokenizer.json",
             getenv("PHI3C_PHI4_TOKENIZER") ? getenv("PHI3C_PHI4_TOKENIZER")
                                            : "build/phi4-tokenizer");
    size_t json_len, size;
    char *json = p3_test_read_file(t, path, &json_len);
    char *data = p3_test_read_file(t, FIXTURES "phi4-mini.cases", &size);
    p3_tokenizer *tok = NULL;
    p3_error err = {0};
    if (!json || !data || !CHECK(set_added_flag(json, json_len, "<|end|>", "rstrip")) ||
        !CHECK(set_added_flag(json, json_len, "<|user|>", "lstrip")) ||
        !CHECK(set_added_flag(json, json_len, "<|system|>", "normalized"))) {
        free(json);
        free(data);
        return;
    }
    p3_tokenizer_files f = {
        .what = "strip variant", .tokenizer_json = json, .tokenizer_json_len = json_len};
    size_t total = 0, pass = 0;
    if (CHECK_OK(p3_tokenizer_load_buffers(&f, &tok, &err), &err)) {
        for (char *line = data; line < data + size;) {
            char *nl = memchr(line, '\n', (size_t)(data + size - line));
            char *end = nl ? nl : data + size;
            const char *fl[3], *fe[3];
            if (line[0] == 'S' && split_fields(line, end, fl, fe, 3) == 3) {
                static int32_t want[4096];
                size_t len, n = parse_ids(fl[2], fe[2], want, 4096);
                char *text = unhex(fl[1], fe[1], &len);
                total++;
                pass += check_encode(t, tok, text, len, 0, want, n, "strip variant");
                free(text);
            }
            line = end + 1;
        }
    }
    printf("    phi4-mini strip/normalized flags: %zu/%zu identical to HF tokenizers\n", pass,
           total);
    CHECK(total >= 14);
    p3_tokenizer_free(tok);
    free(json);
    free(data);
}

/* End to end: a tiny Phi-4-mini-architecture model with the full 200,064-row vocabulary
 * (tests/fixtures/phi4mini-vocab, tools/make_phi4_e2e_fixture.py) beside the Phi-4-mini-style
 * tokenizer: `run -f prompt.txt --greedy` must tokenize the prompt as HF tokenizers did and
 * generate transformers' greedy ids. */
P3_TEST_SLOW(tokenizer_phi4_run_greedy_matches_transformers) {
    p3_tokenizer *probe = load_phi4(t); /* skips when build/phi4-tokenizer is missing */
    if (!probe) return;
    p3_tokenizer_free(probe);
    const char *tok_dir =
        getenv("PHI3C_PHI4_TOKENIZER") ? getenv("PHI3C_PHI4_TOKENIZER") : "build/phi4-tokenizer";
    char *cwd = realpath(".", NULL), *tdir = realpath(tok_dir, NULL);
    const char *dir = p3_test_tmpdir(t);
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "for f in config.json generation_config.json model.safetensors; do "
             "ln -s '%s/tests/fixtures/phi4mini-vocab/hf-bf16/'$f '%s/' || exit 1; done && "
             "ln -s '%s/tokenizer.json' '%s/tokenizer_config.json' '%s/' && "
             "%s run -m '%s' -f tests/fixtures/phi4mini-vocab/prompt.txt -n 16 --greedy --ids "
             "--verbose-prompt",
             cwd ? cwd : "?", dir, tdir ? tdir : "?", tdir ? tdir : "?", dir, p3_test_cli(), dir);
    free(cwd);
    free(tdir);
    size_t psize, gsize;
    char *want_prompt = p3_test_read_file(t, "tests/fixtures/phi4mini-vocab/prompt.ids", &psize);
    char *want_gen = p3_test_read_file(t, "tests/fixtures/phi4mini-vocab/greedy.ids", &gsize);
    p3_cmd_result res = {0};
    if (want_prompt && want_gen && CHECK(p3_test_run(t, cmd, &res)) &&
        CHECK_MSG(res.exit_code == 0, "run failed: %s", res.err ? res.err : "")) {
        static int32_t want[256], got[256];
        size_t nw = parse_ids(want_gen, want_gen + gsize, want, 256);
        size_t ng = res.out ? parse_ids(res.out, res.out + res.out_len, got, 256) : 0;
        CHECK_MSG(nw == 16 && ids_equal(got, ng, want, nw), "greedy ids differ: %s", res.out);
        const char *p = res.err ? strstr(res.err, "prompt ids: ") : NULL;
        size_t np = parse_ids(want_prompt, want_prompt + psize, want, 256);
        ng = p ? parse_ids(p + 12, res.err + res.err_len, got, 256) : 0;
        CHECK_MSG(np > 20 && ids_equal(got, ng, want, np), "prompt ids differ: %s", res.err);
    }
    p3_cmd_result_free(&res);
    free(want_prompt);
    free(want_gen);
}
