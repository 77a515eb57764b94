/* fuzz_chat_template.c: libFuzzer target for the chat-template renderer (p3_tokenizer_apply_chat)
 * and the tokenizer_config.json side that picks the template. Input: one flag byte (bit 0:
 * add_generation_prompt; bits 1-2: the tokenizer: Phi-3-mini, Phi-3 April 2024, Phi-3-medium from
 * $PHI3C_SHARED, or 3: the next field is a tokenizer_config.json applied to a small tokenizer),
 * then NUL-separated fields: role, content, role, content... (a role without content has NULL
 * content). Checks: no faults or leaks; a refusal is an unknown role or an unknown template, and
 * says so; the text is NUL-terminated at its length, bounded by its inputs and holds every kept
 * message's content in order; Phi-3 and Phi-4-mini texts are exactly what their templates write;
 * rendering twice gives the same text; on the real tokenizers every <|end|> a message gets stays
 * one special token whatever the contents hold. (The text does not tokenize and decode back to
 * itself on Phi-3's tokenizer, in HF neither: <|end|> strips the newline after it.) */
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { MAX_MESSAGES = 64, N_REAL = 3 };

static void check(bool ok) {
    if (!ok) __builtin_trap();
}

static const char *shared_dir(void) {
    const char *s = getenv("PHI3C_SHARED");
    return s && *s ? s : "../shared";
}

/* The three real Phi-3 tokenizers (loaded once per process): their vocabulary has the chat
 * tokens, their tokenizer_config.json (none for mini: the format comes from the vocabulary)
 * picks the format. */
static const p3_tokenizer *real_tokenizer(int which) {
    static p3_tokenizer *toks[N_REAL];
    static const char *const dirs[N_REAL] = {"tokenizer-phi-3-mini", "tokenizer-phi-3-apr2024",
                                             "tokenizer-phi-3-medium"};
    if (toks[which]) return toks[which];
    char path[1024];
    snprintf(path, sizeof path, "%s/data/phi3/%s", shared_dir(), dirs[which]);
    p3_error err = {0};
    if (p3_tokenizer_load_path(path, &toks[which], &err) != PHI3C_OK) {
        fprintf(stderr, "fuzz_chat_template: %s\n", err.message);
        abort();
    }
    return toks[which];
}

/* A small tokenizer.json (the tokenizer_json fuzzer's seed) that fuzzed configs are applied to. */
static const char *small_tokenizer_json(size_t *len) {
    static char *json;
    static size_t json_len;
    if (json) {
        *len = json_len;
        return json;
    }
    p3_error err = {0};
    if (p3_file_read_all("tests/fuzz/corpus/fuzz_tokenizer_json/small.json", &json, &json_len,
                         &err) != PHI3C_OK) {
        fprintf(stderr, "fuzz_chat_template: %s (run from the repository)\n", err.message);
        abort();
    }
    *len = json_len;
    return json;
}

/* The fields, each in its own allocation so that a read past a field's NUL is caught. */
typedef struct fields {
    char *s[2 * MAX_MESSAGES + 1];
    size_t n;
} fields;

static void free_fields(fields *f) {
    for (size_t i = 0; i < f->n; i++) free(f->s[i]);
}

static bool split_fields(const uint8_t *data, size_t size, fields *f) {
    f->n = 0;
    for (size_t at = 0; at < size && f->n < P3_ARRAY_LEN(f->s);) {
        const uint8_t *nul = memchr(data + at, 0, size - at);
        size_t len = nul ? (size_t)(nul - (data + at)) : size - at;
        if (!(f->s[f->n] = strndup((const char *)data + at, len))) {
            free_fields(f);
            return false;
        }
        f->n++;
        at += len + 1;
    }
    return true;
}

static bool valid_role(const char *r) {
    return !strcmp(r, "system") || !strcmp(r, "user") || !strcmp(r, "assistant");
}

/* Messages the format leaves out: system for the April-2024 and medium templates, an empty
 * system message for Phi-3.5. */
static bool dropped(p3_chat_format f, const p3_chat_message *m) {
    bool sys = strcmp(m->role, "system") == 0;
    if (f == P3_CHAT_PHI3_APR2024 || f == P3_CHAT_PHI3_MEDIUM) return sys;
    return f == P3_CHAT_PHI3_5 && sys && !(m->content && m->content[0]);
}

static size_t piece_len(const p3_tokenizer *tok, int32_t id) {
    size_t n = 0;
    return p3_tokenizer_piece(tok, id, &n) ? n : 0;
}

/* The text the Phi-3 and Phi-4-mini templates write, built here from the template strings'
 * rules (tokenizer-phi-3-mini has none: HF's current Phi-3-mini template is the reference). */
static void check_exact(const p3_tokenizer *tok, p3_chat_format f, const p3_chat_message *m,
                        size_t n, bool gen, const char *text, size_t len) {
    size_t at = 0;
    const char *nl = f == P3_CHAT_PHI4 ? "" : "\n";
    for (size_t i = 0; i < n; i++) {
        const char *content = m[i].content ? m[i].content : "";
        int w = 0;
        char head[32];
        snprintf(head, sizeof head, "<|%s|>%s", m[i].role, nl);
        w = (int)strlen(head);
        check(at + (size_t)w <= len && memcmp(text + at, head, (size_t)w) == 0);
        at += (size_t)w;
        size_t cl = strlen(content);
        check(at + cl <= len && memcmp(text + at, content, cl) == 0);
        at += cl;
        size_t el = strlen("<|end|>") + strlen(nl);
        check(at + el <= len && memcmp(text + at, "<|end|>", 7) == 0 &&
              !memcmp(text + at + 7, nl, el - 7));
        at += el;
    }
    if (gen) {
        const char *tail = f == P3_CHAT_PHI4 ? "<|assistant|>" : "<|assistant|>\n";
        check(len - at == strlen(tail) && memcmp(text + at, tail, strlen(tail)) == 0);
    } else {
        size_t el;
        const char *eos = p3_tokenizer_piece(tok, p3_tokenizer_eos_id(tok), &el);
        check(len - at == (eos ? el : 0) && (!eos || memcmp(text + at, eos, el) == 0));
    }
}

/* On a real Phi-3 tokenizer: every kept message's <|end|> is one special token (contents may add
 * more, never take one away), and the ids are in the vocabulary and decode. */
static void check_tokens(const p3_tokenizer *tok, size_t n_kept, const char *text, size_t len) {
    int32_t *ids = NULL;
    size_t n = 0;
    p3_error err = {0};
    check(p3_tokenizer_encode(tok, text, len, 0, &ids, &n, &err) == PHI3C_OK);
    int32_t end_id = p3_tokenizer_find(tok, "<|end|>", 7);
    size_t n_end = 0;
    for (size_t i = 0; i < n; i++) {
        check(ids[i] >= 0 && ids[i] < p3_tokenizer_vocab_size(tok));
        n_end += ids[i] == end_id;
    }
    check(n_end >= n_kept);
    /* the ids decode (not back to the text: <|end|> strips the newline after it and each
     * segment gets a leading "\xe2\x96\x81", in HF too, so the chat text does not round-trip) */
    char *back = NULL;
    size_t back_len = 0;
    check(p3_tokenizer_decode(tok, ids, n, 0, &back, &back_len, &err) == PHI3C_OK);
    p3_free(back);
    p3_free(ids);
}

static void check_render(const p3_tokenizer *tok, const p3_chat_message *m, size_t n, bool gen,
                         bool real) {
    p3_chat_format f = p3_tokenizer_chat_format(tok);
    char *text = NULL;
    size_t len = 0;
    p3_error err = {0};
    p3_status st = p3_tokenizer_apply_chat(tok, m, n, gen, &text, &len, &err);
    bool roles_ok = true;
    size_t bound =
        64 + piece_len(tok, p3_tokenizer_bos_id(tok)) + piece_len(tok, p3_tokenizer_eos_id(tok));
    for (size_t i = 0; i < n; i++) {
        roles_ok = roles_ok && valid_role(m[i].role);
        bound += 32 + strlen(m[i].role) + (m[i].content ? strlen(m[i].content) : 0);
    }
    if (st != PHI3C_OK) {
        check(text == NULL && err.message[0]);
        check((st == PHI3C_ERR_UNSUPPORTED && f == P3_CHAT_UNKNOWN) ||
              (st == PHI3C_ERR_INVALID_ARG && !roles_ok && strstr(err.message, "role")));
        return;
    }
    check(roles_ok && f != P3_CHAT_UNKNOWN && text != NULL);
    check(text[len] == '\0' && strlen(text) == len && len <= bound);
    size_t at = 0, n_kept = 0;
    for (size_t i = 0; i < n; i++) {
        if (dropped(f, &m[i])) continue;
        n_kept++;
        const char *c = m[i].content ? m[i].content : "";
        const char *hit = memmem(text + at, len - at, c, strlen(c));
        check(hit != NULL);
        at = (size_t)(hit - text) + strlen(c);
    }
    if (f == P3_CHAT_PHI3 || f == P3_CHAT_PHI4) check_exact(tok, f, m, n, gen, text, len);
    char *again = NULL;
    size_t again_len = 0;
    check(p3_tokenizer_apply_chat(tok, m, n, gen, &again, &again_len, &err) == PHI3C_OK);
    check(again_len == len && memcmp(again, text, len) == 0);
    p3_free(again);
    if (real) check_tokens(tok, n_kept, text, len);
    p3_free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    bool gen = data[0] & 1;
    int which = (data[0] >> 1) & 3;
    fields f;
    if (!split_fields(data + 1, size - 1, &f)) return 0;
    size_t first = 0;
    p3_tokenizer *own = NULL;
    const p3_tokenizer *tok;
    if (which < N_REAL) {
        tok = real_tokenizer(which);
    } else {
        size_t json_len;
        const char *json = small_tokenizer_json(&json_len);
        const char *config = f.n ? f.s[0] : "";
        first = f.n ? 1 : 0;
        p3_tokenizer_files files = {.what = "fuzz",
                                    .tokenizer_json = json,
                                    .tokenizer_json_len = json_len,
                                    .tokenizer_config_json = config,
                                    .tokenizer_config_json_len = strlen(config)};
        p3_error err = {0};
        if (p3_tokenizer_load_buffers(&files, &own, &err) != PHI3C_OK) {
            check(err.message[0] != '\0'); /* a bad config is refused with a reason */
            free_fields(&f);
            return 0;
        }
        tok = own;
    }
    p3_chat_message m[MAX_MESSAGES];
    size_t n = 0;
    for (size_t i = first; i < f.n && n < MAX_MESSAGES; i += 2)
        m[n++] = (p3_chat_message){f.s[i], i + 1 < f.n ? f.s[i + 1] : NULL};
    check_render(tok, m, n, gen, which < N_REAL);
    p3_tokenizer_free(own);
    free_fields(&f);
    return 0;
}
