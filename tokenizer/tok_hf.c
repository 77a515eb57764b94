/* tok_hf.c: reads HF tokenizer.json (BPE model, merges, added tokens with their lstrip/rstrip
 * flags, normalizer; SentencePiece-style as Phi-3's, or byte-level with the o200k split as
 * Phi-4-mini's) and applies tokenizer_config.json and generation_config.json. Configurations
 * phi3c does not implement (other split patterns, Metaspace, dropout...) are refused by name
 * rather than tokenized differently from HF. */
#include "json.h"
#include "tok_bpe.h"

#include <string.h>

static bool str_eq(const json_value *v, const char *s) {
    const char *t = json_string(v);
    return t && strcmp(t, s) == 0;
}

static bool is_bytelevel(const json_value *v) {
    if (str_eq(json_object_get(v, "type"), "ByteLevel")) return true;
    const json_value *list = json_object_get(v, "pretokenizers");
    if (!list) list = json_object_get(v, "decoders");
    for (size_t i = 0; i < json_array_len(list); i++)
        if (is_bytelevel(json_array_at(list, i))) return true;
    return false;
}

/* Accepts a null normalizer or a Sequence of Prepend("▁") and Replace(" " -> "▁"), Phi-3's. */
static p3_status read_normalizer(p3_tokenizer *tok, const json_value *norm, p3_error *err) {
    tok->prepend_space = tok->replace_spaces = false;
    if (!norm || json_is_null(norm)) return PHI3C_OK;
    const json_value *list = json_object_get(norm, "normalizers");
    size_t n = str_eq(json_object_get(norm, "type"), "Sequence") ? json_array_len(list) : 1;
    for (size_t i = 0; i < n; i++) {
        const json_value *step = list ? json_array_at(list, i) : norm;
        const json_value *type = json_object_get(step, "type");
        if (str_eq(type, "Prepend") && str_eq(json_object_get(step, "prepend"), "\xe2\x96\x81")) {
            tok->prepend_space = true;
        } else if (str_eq(type, "Replace") &&
                   str_eq(json_object_get(json_object_get(step, "pattern"), "String"), " ") &&
                   str_eq(json_object_get(step, "content"), "\xe2\x96\x81")) {
            tok->replace_spaces = true;
        } else {
            const char *name = json_string(type);
            return p3_fail(err, PHI3C_ERR_UNSUPPORTED,
                           "%s: normalizer step '%s' is not supported (phi3c implements Phi-3's "
                           "Prepend + Replace normalizer)",
                           tok->what, name ? name : "?");
        }
    }
    return PHI3C_OK;
}

/* The o200k pattern (OpenAI's o200k_base, Phi-4-mini's Split pre-tokenizer), the one split
 * tok_o200k.c implements. */
static const char O200K_PATTERN[] =
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+"
    "[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static bool flag_is(const json_value *obj, const char *key, bool want) {
    bool v = !want;
    return json_get_bool(json_object_get(obj, key), &v) && v == want;
}

/* Byte-level pre-tokenizer: Sequence [Split(o200k, Isolated), ByteLevel(no prefix space, no
 * regex)], the form Phi-4-mini's tokenizer.json has. Anything else is refused by name. */
static p3_status check_bytelevel_pre(const char *what, const json_value *pre, p3_error *err) {
    const json_value *list = json_object_get(pre, "pretokenizers");
    const json_value *split = json_array_at(list, 0), *bl = json_array_at(list, 1);
    if (!str_eq(json_object_get(pre, "type"), "Sequence") || json_array_len(list) != 2 ||
        !str_eq(json_object_get(split, "type"), "Split") ||
        !str_eq(json_object_get(bl, "type"), "ByteLevel"))
        return p3_fail(err, PHI3C_ERR_UNSUPPORTED,
                       "%s: byte-level pre-tokenizer '%s' is not supported (phi3c reads "
                       "Sequence[Split(o200k), ByteLevel] as Phi-4-mini's)",
                       what,
                       json_string(json_object_get(pre, "type"))
                           ? json_string(json_object_get(pre, "type"))
                           : "?");
    const char *pattern = json_string(json_object_get(json_object_get(split, "pattern"), "Regex"));
    if (!pattern || strcmp(pattern, O200K_PATTERN) != 0)
        return p3_fail(err, PHI3C_ERR_UNSUPPORTED,
                       "%s: Split pattern '%.80s%s' is not supported (phi3c implements the o200k "
                       "pattern only)",
                       what, pattern ? pattern : "(not a Regex)",
                       pattern && strlen(pattern) > 80 ? "..." : "");
    if (!str_eq(json_object_get(split, "behavior"), "Isolated") || flag_is(split, "invert", true))
        return p3_fail(err, PHI3C_ERR_UNSUPPORTED,
                       "%s: Split behavior other than Isolated is not supported", what);
    if (flag_is(bl, "add_prefix_space", true) || flag_is(bl, "use_regex", true))
        return p3_fail(err, PHI3C_ERR_UNSUPPORTED,
                       "%s: ByteLevel pre-tokenizer with add_prefix_space or use_regex is not "
                       "supported (Phi-4-mini's has neither)",
                       what);
    return PHI3C_OK;
}

static p3_status check_model(const char *what, const json_value *root, tok_model *kind,
                             p3_error *err) {
    const json_value *model = json_object_get(root, "model");
    if (json_typeof(model) != JSON_OBJECT)
        return p3_fail(err, PHI3C_ERR_FORMAT, "%s: no \"model\" object", what);
    const char *type = json_string(json_object_get(model, "type"));
    if (type && strcmp(type, "BPE") != 0)
        return p3_fail(err, PHI3C_ERR_UNSUPPORTED,
                       "%s: tokenizer model type '%s' is not supported (phi3c reads BPE)", what,
                       type);
    const json_value *pre = json_object_get(root, "pre_tokenizer");
    *kind = is_bytelevel(pre) || is_bytelevel(json_object_get(root, "decoder")) ? TOK_MODEL_BYTE_BPE
                                                                                : TOK_MODEL_SPM;
    if (*kind == TOK_MODEL_BYTE_BPE) {
        p3_status st = check_bytelevel_pre(what, pre, err);
        if (st != PHI3C_OK) return st;
        const json_value *dec = json_object_get(root, "decoder");
        if (!str_eq(json_object_get(dec, "type"), "ByteLevel"))
            return p3_fail(err, PHI3C_ERR_UNSUPPORTED,
                           "%s: a byte-level tokenizer needs the ByteLevel decoder", what);
        if (flag_is(model, "byte_fallback", true))
            return p3_fail(err, PHI3C_ERR_UNSUPPORTED,
                           "%s: byte_fallback with a byte-level vocabulary is not supported", what);
    } else if (pre && !json_is_null(pre)) {
        return p3_fail(err, PHI3C_ERR_UNSUPPORTED,
                       "%s: pre_tokenizer '%s' is not supported (Phi-3's tokenizer has none)", what,
                       json_string(json_object_get(pre, "type"))
                           ? json_string(json_object_get(pre, "type"))
                           : "?");
    }
    static const char *const unsupported[] = {"dropout", "continuing_subword_prefix",
                                              "end_of_word_suffix"};
    for (size_t i = 0; i < P3_ARRAY_LEN(unsupported); i++) {
        const json_value *v = json_object_get(model, unsupported[i]);
        if (v && !json_is_null(v))
            return p3_fail(err, PHI3C_ERR_UNSUPPORTED, "%s: BPE option %s is not supported", what,
                           unsupported[i]);
    }
    if (*kind == TOK_MODEL_SPM && flag_is(model, "ignore_merges", true))
        return p3_fail(err, PHI3C_ERR_UNSUPPORTED,
                       "%s: BPE option ignore_merges is not supported without a byte-level "
                       "vocabulary",
                       what);
    return PHI3C_OK;
}

static p3_status get_id(const char *what, const json_value *v, const char *field, int64_t *id,
                        p3_error *err) {
    if (!json_get_int(v, id) || *id < 0 || *id >= (1 << 24))
        return p3_fail(err, PHI3C_ERR_FORMAT, "%s: %s has a bad token id", what, field);
    return PHI3C_OK;
}

/* Vocabulary size: one past the highest id of the model vocab and the added tokens. */
static p3_status count_vocab(const char *what, const json_value *vocab, const json_value *added,
                             int32_t *n, p3_error *err) {
    int64_t max_id = -1, id;
    for (size_t i = 0; i < json_object_size(vocab); i++) {
        p3_status st = get_id(what, json_object_value_at(vocab, i), "model.vocab", &id, err);
        if (st != PHI3C_OK) return st;
        max_id = P3_MAX(max_id, id);
    }
    for (size_t i = 0; i < json_array_len(added); i++) {
        p3_status st =
            get_id(what, json_object_get(json_array_at(added, i), "id"), "added_tokens", &id, err);
        if (st != PHI3C_OK) return st;
        max_id = P3_MAX(max_id, id);
    }
    if (max_id < 0) return p3_fail(err, PHI3C_ERR_FORMAT, "%s: empty vocabulary", what);
    *n = (int32_t)(max_id + 1);
    return PHI3C_OK;
}

static p3_status read_vocab(p3_tokenizer *tok, const json_value *vocab, p3_error *err) {
    p3_status st = PHI3C_OK;
    for (size_t i = 0; i < json_object_size(vocab) && st == PHI3C_OK; i++) {
        size_t len;
        const char *piece = json_object_key_at(vocab, i, &len);
        int64_t id = 0;
        json_get_int(json_object_value_at(vocab, i), &id);
        if (tok->model == TOK_MODEL_BYTE_BPE) {
            st = tok_bytelevel_set_piece(tok, (int32_t)id, piece, len, err);
            continue;
        }
        int type = len == 6 && strncmp(piece, "<0x", 3) == 0 ? P3_PIECE_BYTE : P3_PIECE_NORMAL;
        st = tok_set_piece(tok, (int32_t)id, piece, len, type, err);
    }
    return st;
}

static p3_status read_added(p3_tokenizer *tok, const json_value *added, bool set_pieces,
                            p3_error *err) {
    for (size_t i = 0; i < json_array_len(added); i++) {
        const json_value *a = json_array_at(added, i);
        int64_t id = 0;
        json_get_int(json_object_get(a, "id"), &id);
        const char *content;
        size_t len;
        if (!json_get_string(json_object_get(a, "content"), &content, &len))
            return p3_fail(err, PHI3C_ERR_FORMAT, "%s: added token %ld has no content", tok->what,
                           (long)id);
        bool lstrip = false, rstrip = false, special = false, single_word = false,
             normalized = false;
        json_get_bool(json_object_get(a, "single_word"), &single_word);
        json_get_bool(json_object_get(a, "normalized"), &normalized);
        /* without a normalizer (byte-level), "normalized" matches the same text */
        if (tok->model == TOK_MODEL_BYTE_BPE) normalized = false;
        if (single_word || normalized) /* matched differently by HF: refuse rather than differ */
            return p3_fail(err, PHI3C_ERR_UNSUPPORTED,
                           "%s: added token %ld (%.40s) is %s, which phi3c does not implement "
                           "(Phi-3's added tokens are neither)",
                           tok->what, (long)id, content,
                           single_word ? "single_word" : "normalized");
        json_get_bool(json_object_get(a, "lstrip"), &lstrip);
        json_get_bool(json_object_get(a, "rstrip"), &rstrip);
        json_get_bool(json_object_get(a, "special"), &special);
        p3_status st = PHI3C_OK;
        if (set_pieces) /* the added vocabulary's content wins over the model's piece */
            st = tok_set_piece(tok, (int32_t)id, content, len,
                               special ? P3_PIECE_CONTROL : P3_PIECE_USER_DEFINED, err);
        else
            st = tok_add_added(tok, (int32_t)id, lstrip, rstrip, special, err);
        if (st != PHI3C_OK) return st;
    }
    return PHI3C_OK;
}

/* The id of one side of a merge (byte-level: converted to raw bytes first), -1 when unknown. */
static int32_t merge_side(const p3_tokenizer *tok, const char *s, size_t len) {
    if (!s) return -1;
    return tok->model == TOK_MODEL_BYTE_BPE ? tok_bytelevel_lookup(tok, s, len)
                                            : tok_lookup(tok, s, len);
}

/* A merge is "left right" (one space) or, in newer files, ["left", "right"]. */
static p3_status read_merges(p3_tokenizer *tok, const json_value *merges, p3_error *err) {
    /* absent means none; anything but a list (an object, a string) would silently mean none too */
    if (merges && json_typeof(merges) != JSON_ARRAY)
        return p3_fail(err, PHI3C_ERR_FORMAT, "%s: model.merges must be a list", tok->what);
    size_t n = json_array_len(merges);
    if (n > INT32_MAX) return p3_fail(err, PHI3C_ERR_FORMAT, "%s: too many merges", tok->what);
    p3_status st = tok_merges_reserve(tok, n, err);
    for (size_t i = 0; i < n && st == PHI3C_OK; i++) {
        const json_value *m = json_array_at(merges, i);
        const char *l = NULL, *r = NULL, *s;
        size_t ll = 0, rl = 0, len;
        if (json_get_string(m, &s, &len)) {
            const char *sp = memchr(s, ' ', len);
            if (sp && !memchr(sp + 1, ' ', len - (size_t)(sp + 1 - s))) {
                l = s, ll = (size_t)(sp - s);
                r = sp + 1, rl = len - ll - 1;
            }
        } else if (json_array_len(m) == 2) {
            json_get_string(json_array_at(m, 0), &l, &ll);
            json_get_string(json_array_at(m, 1), &r, &rl);
        }
        int32_t li = merge_side(tok, l, ll), ri = merge_side(tok, r, rl);
        if (li < 0 || ri < 0)
            return p3_fail(err, PHI3C_ERR_FORMAT,
                           "%s: merge %zu is malformed or names a piece "
                           "not in the vocabulary",
                           tok->what, i);
        st = tok_add_merge(tok, li, ri, (int32_t)i, err);
    }
    return st;
}

static p3_status build_from_json(const char *what, const json_value *root, p3_tokenizer **out,
                                 p3_error *err) {
    tok_model kind = TOK_MODEL_SPM;
    p3_status st = check_model(what, root, &kind, err);
    if (st != PHI3C_OK) return st;
    const json_value *model = json_object_get(root, "model");
    const json_value *vocab = json_object_get(model, "vocab");
    const json_value *added = json_object_get(root, "added_tokens");
    if (json_typeof(vocab) != JSON_OBJECT)
        return p3_fail(err, PHI3C_ERR_FORMAT, "%s: model.vocab is not an object", what);
    int32_t n_vocab = 0;
    st = count_vocab(what, vocab, added, &n_vocab, err);
    if (st != PHI3C_OK) return st;
    p3_tokenizer *tok = NULL;
    st = tok_new(what, n_vocab, &tok, err);
    if (st == PHI3C_OK) {
        tok->model = kind;
        tok->ignore_merges = flag_is(model, "ignore_merges", true);
        st = read_vocab(tok, vocab, err);
    }
    if (st == PHI3C_OK) st = read_added(tok, added, true, err);
    if (st == PHI3C_OK) st = tok_index_pieces(tok, err);
    if (st == PHI3C_OK) st = read_added(tok, added, false, err);
    if (st == PHI3C_OK) st = read_merges(tok, json_object_get(model, "merges"), err);
    if (st == PHI3C_OK) st = read_normalizer(tok, json_object_get(root, "normalizer"), err);
    if (st == PHI3C_OK) {
        bool flag = true;
        if (json_get_bool(json_object_get(model, "byte_fallback"), &flag))
            tok->byte_fallback = flag;
        else
            tok->byte_fallback = false;
        flag = false;
        json_get_bool(json_object_get(model, "fuse_unk"), &flag);
        tok->fuse_unk = flag;
        const char *unk = json_string(json_object_get(model, "unk_token"));
        tok->unk_id = unk ? tok_lookup(tok, unk, strlen(unk)) : -1;
        /* without tokenizer_config.json: LlamaTokenizerFast's defaults */
        tok->bos_id = tok_lookup(tok, "<s>", 3);
        tok->eos_id = tok_lookup(tok, "</s>", 4);
        tok->add_bos = kind == TOK_MODEL_SPM;
        if (kind == TOK_MODEL_BYTE_BPE) tok_bytelevel_finish(tok);
    }
    if (st != PHI3C_OK) {
        p3_tokenizer_free(tok);
        return st;
    }
    *out = tok;
    return PHI3C_OK;
}

p3_status tok_load_hf_json(const char *json, size_t len, const char *what, p3_tokenizer **out,
                           p3_error *err) {
    *out = NULL;
    json_doc *doc;
    p3_status st = json_parse(json, len, what, &doc, err);
    if (st != PHI3C_OK) return st;
    st = build_from_json(what, json_root(doc), out, err);
    json_free(doc);
    if (st == PHI3C_OK) st = tok_finish(*out, err);
    return st;
}

/* A special token in tokenizer_config.json: "<s>" or {"content": "<s>", ...}. */
static int32_t config_token(const p3_tokenizer *tok, const json_value *v) {
    const char *s = json_string(v);
    if (!s) s = json_string(json_object_get(v, "content"));
    return s ? tok_lookup(tok, s, strlen(s)) : -1;
}

static void read_tokenizer_config(p3_tokenizer *tok, const json_value *root) {
    bool flag;
    if (json_get_bool(json_object_get(root, "add_bos_token"), &flag)) tok->add_bos = flag;
    if (json_get_bool(json_object_get(root, "add_eos_token"), &flag)) tok->add_eos = flag;
    int32_t id;
    if ((id = config_token(tok, json_object_get(root, "bos_token"))) >= 0) tok->bos_id = id;
    if ((id = config_token(tok, json_object_get(root, "eos_token"))) >= 0) tok->eos_id = id;
    if ((id = config_token(tok, json_object_get(root, "unk_token"))) >= 0) tok->unk_id = id;
    if ((id = config_token(tok, json_object_get(root, "pad_token"))) >= 0) tok->pad_id = id;
    /* chat_template is a string, or a list of {name, template} where "default" is used */
    const json_value *tmpl = json_object_get(root, "chat_template");
    const char *s = NULL;
    size_t len = 0;
    if (!json_get_string(tmpl, &s, &len)) {
        for (size_t i = 0; i < json_array_len(tmpl); i++) {
            const json_value *t = json_array_at(tmpl, i);
            if (str_eq(json_object_get(t, "name"), "default"))
                json_get_string(json_object_get(t, "template"), &s, &len);
        }
        if (!s && tmpl && !json_is_null(tmpl)) s = "", len = 0; /* present but not understood */
    }
    tok_detect_chat(tok, s, len);
}

static void read_generation_config(p3_tokenizer *tok, const json_value *root) {
    const json_value *eos = json_object_get(root, "eos_token_id");
    int64_t id;
    size_t n = json_typeof(eos) == JSON_ARRAY ? json_array_len(eos) : 1;
    size_t kept = 0;
    int32_t ids[P3_ARRAY_LEN(tok->stop_ids)];
    for (size_t i = 0; i < n && kept < P3_ARRAY_LEN(ids); i++) {
        const json_value *v = json_typeof(eos) == JSON_ARRAY ? json_array_at(eos, i) : eos;
        if (json_get_int(v, &id) && id >= 0 && id < tok->n_vocab) ids[kept++] = (int32_t)id;
    }
    if (kept) {
        memcpy(tok->stop_ids, ids, kept * sizeof ids[0]);
        tok->n_stop_ids = kept;
    }
}

p3_status tok_apply_configs(p3_tokenizer *tok, const char *config, size_t config_len,
                            const char *generation, size_t generation_len, p3_error *err) {
    json_doc *doc;
    p3_status st;
    if (config) {
        st = json_parse(config, config_len, "tokenizer_config.json", &doc, err);
        if (st != PHI3C_OK) return st;
        read_tokenizer_config(tok, json_root(doc));
        json_free(doc);
    }
    tok->n_stop_ids = 0;
    if (generation) {
        st = json_parse(generation, generation_len, "generation_config.json", &doc, err);
        if (st != PHI3C_OK) return st;
        read_generation_config(tok, json_root(doc));
        json_free(doc);
    }
    if (!generation || tok->n_stop_ids == 0) tok_default_stops(tok);
    return PHI3C_OK;
}
