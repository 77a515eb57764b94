/* tok_gguf.c: the tokenizer from GGUF tokenizer.ggml.* metadata: tokens, scores and token types
 * (SentencePiece numbering), special ids and add_bos_token. "llama" (SentencePiece, Phi-3): merges
 * come from the scores as HF's converter derives them, so a GGUF tokenizes like tokenizer.json on
 * text without special tokens. "gpt2" with pre-tokenizer "gpt-4o" (byte-level BPE, Phi-4-mini):
 * tokens in the byte-level alphabet and tokenizer.ggml.merges. */
#include "gguf.h"
#include "tok_bpe.h"

#include <string.h>

static bool gguf_str_is(const p3_gguf_str *s, const char *want) {
    return s->len == strlen(want) && memcmp(s->s, want, s->len) == 0;
}

static int32_t gguf_id(const p3_gguf *g, const char *key, int32_t n_vocab) {
    int64_t v;
    return p3_gguf_get_int(g, key, &v) && v >= 0 && v < n_vocab ? (int32_t)v : -1;
}

/* The tokenizer model of the file: "llama", or "gpt2" with the gpt-4o pre-tokenizer. */
static p3_status check_model(const p3_gguf *g, const char *what, tok_model *kind, p3_error *err) {
    p3_gguf_str model, pre;
    if (!p3_gguf_get_string(g, "tokenizer.ggml.model", &model))
        return p3_fail(err, PHI3C_ERR_FORMAT, "%s: no tokenizer.ggml.model in the GGUF metadata",
                       what);
    *kind = TOK_MODEL_SPM;
    if (gguf_str_is(&model, "llama")) return PHI3C_OK;
    if (!gguf_str_is(&model, "gpt2"))
        return p3_fail(err, PHI3C_ERR_UNSUPPORTED,
                       "%s: tokenizer.ggml.model \"%.*s\" is not supported (phi3c reads \"llama\" "
                       "and \"gpt2\")",
                       what, (int)P3_MIN(model.len, 40), model.s);
    if (!p3_gguf_get_string(g, "tokenizer.ggml.pre", &pre)) pre = (p3_gguf_str){"(none)", 6};
    if (!gguf_str_is(&pre, "gpt-4o"))
        return p3_fail(err, PHI3C_ERR_UNSUPPORTED,
                       "%s: byte-level pre-tokenizer \"%.*s\" is not supported (phi3c implements "
                       "\"gpt-4o\", Phi-4-mini's o200k split)",
                       what, (int)P3_MIN(pre.len, 40), pre.s);
    *kind = TOK_MODEL_BYTE_BPE;
    return PHI3C_OK;
}

static p3_status read_tokens(p3_tokenizer *tok, const p3_gguf_value *tokens,
                             const p3_gguf_value *scores, const p3_gguf_value *types,
                             p3_error *err) {
    for (int32_t id = 0; id < tok->n_vocab; id++) {
        p3_gguf_str s;
        if (!p3_gguf_array_string(tokens, (size_t)id, &s) || !p3_utf8_valid(s.s, s.len))
            return p3_fail(err, PHI3C_ERR_FORMAT, "%s: token %ld is not a valid string", tok->what,
                           (long)id);
        int64_t type = P3_PIECE_NORMAL;
        double score = 0.0;
        if (types && !p3_gguf_array_int(types, (size_t)id, &type))
            return p3_fail(err, PHI3C_ERR_FORMAT, "%s: token_type has no entry %ld", tok->what,
                           (long)id);
        if (type < P3_PIECE_NORMAL || type > P3_PIECE_BYTE) type = P3_PIECE_NORMAL;
        if (scores && !p3_gguf_array_float(scores, (size_t)id, &score))
            return p3_fail(err, PHI3C_ERR_FORMAT, "%s: scores has no entry %ld", tok->what,
                           (long)id);
        tok->score[id] = (float)score;
        p3_status st = tok->model == TOK_MODEL_BYTE_BPE && type == P3_PIECE_NORMAL
                           ? tok_bytelevel_set_piece(tok, id, s.s, s.len, err)
                           : tok_set_piece(tok, id, s.s, s.len, (int)type, err);
        if (st != PHI3C_OK) return st;
    }
    return PHI3C_OK;
}

static void read_specials(p3_tokenizer *tok, const p3_gguf *g) {
    tok->bos_id = gguf_id(g, "tokenizer.ggml.bos_token_id", tok->n_vocab);
    tok->eos_id = gguf_id(g, "tokenizer.ggml.eos_token_id", tok->n_vocab);
    tok->unk_id = gguf_id(g, "tokenizer.ggml.unknown_token_id", tok->n_vocab);
    tok->pad_id = gguf_id(g, "tokenizer.ggml.padding_token_id", tok->n_vocab);
    bool flag =
        tok->model == TOK_MODEL_SPM; /* llama.cpp's default for SentencePiece vocabularies */
    p3_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &flag);
    tok->add_bos = flag;
    flag = false;
    p3_gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &flag);
    tok->add_eos = flag;
    p3_gguf_str tmpl;
    if (p3_gguf_get_string(g, "tokenizer.chat_template", &tmpl))
        tok_detect_chat(tok, tmpl.s, tmpl.len);
    else
        tok_detect_chat(tok, NULL, 0);
}

/* GGUF keeps no strip flags. Phi-3's tokenizer.json sets rstrip on every added token but <unk>,
 * <s> and <|endoftext|> (</s> and <|user|>, <|end|>, ... eat the whitespace after them), so text
 * after a special token tokenizes as the model was trained ("<|user|>\nWhat" -> 32010 1724, not
 * 32010 29871 13 5618); llama.cpp does the same for phi3 files. */
static bool phi3_rstrip(const p3_tokenizer *tok, const p3_gguf *g, int32_t id) {
    p3_gguf_str arch;
    if (!p3_gguf_get_string(g, "general.architecture", &arch) || !gguf_str_is(&arch, "phi3"))
        return false;
    static const char *const keep[] = {"<unk>", "<s>", "<|endoftext|>"};
    for (size_t i = 0; i < P3_ARRAY_LEN(keep); i++)
        if (tok->piece_len[id] == strlen(keep[i]) &&
            memcmp(tok_piece(tok, id), keep[i], tok->piece_len[id]) == 0)
            return false;
    return true;
}

/* tokenizer.ggml.merges: "left right" in the byte-level alphabet, in rank order. */
static p3_status read_bpe_merges(p3_tokenizer *tok, const p3_gguf *g, p3_error *err) {
    const p3_gguf_value *merges = p3_gguf_get_array(g, "tokenizer.ggml.merges");
    size_t n = p3_gguf_array_len(merges);
    if (!merges || n > INT32_MAX)
        return p3_fail(err, PHI3C_ERR_FORMAT, "%s: tokenizer.ggml.merges is missing", tok->what);
    p3_status st = tok_merges_reserve(tok, n, err);
    for (size_t i = 0; i < n && st == PHI3C_OK; i++) {
        p3_gguf_str m;
        const char *sp = p3_gguf_array_string(merges, i, &m) ? memchr(m.s, ' ', m.len) : NULL;
        int32_t l = sp ? tok_bytelevel_lookup(tok, m.s, (size_t)(sp - m.s)) : -1;
        int32_t r = sp ? tok_bytelevel_lookup(tok, sp + 1, m.len - (size_t)(sp + 1 - m.s)) : -1;
        if (l < 0 || r < 0)
            return p3_fail(err, PHI3C_ERR_FORMAT,
                           "%s: merge %zu is malformed or names a piece not in the vocabulary",
                           tok->what, i);
        st = tok_add_merge(tok, l, r, (int32_t)i, err);
    }
    return st;
}

/* llama.cpp matches control and user-defined tokens in text. */
static p3_status add_added_tokens(p3_tokenizer *tok, const p3_gguf *g, p3_error *err) {
    p3_status st = PHI3C_OK;
    for (int32_t i = 0; i < tok->n_vocab && st == PHI3C_OK; i++) {
        int type = tok->piece_type[i];
        if (type == P3_PIECE_CONTROL || type == P3_PIECE_USER_DEFINED)
            st = tok_add_added(tok, i, false, tok->model == TOK_MODEL_SPM && phi3_rstrip(tok, g, i),
                               type == P3_PIECE_CONTROL, err);
    }
    return st;
}

p3_status p3_tokenizer_load_gguf(const struct p3_gguf *g, const char *what, p3_tokenizer **out,
                                 p3_error *err) {
    *out = NULL;
    what = what ? what : "gguf";
    tok_model kind = TOK_MODEL_SPM;
    p3_status st = check_model(g, what, &kind, err);
    if (st != PHI3C_OK) return st;
    const p3_gguf_value *tokens = p3_gguf_get_array(g, "tokenizer.ggml.tokens");
    const p3_gguf_value *scores = p3_gguf_get_array(g, "tokenizer.ggml.scores");
    const p3_gguf_value *types = p3_gguf_get_array(g, "tokenizer.ggml.token_type");
    size_t n = p3_gguf_array_len(tokens);
    if (!tokens || n == 0 || n > INT32_MAX)
        return p3_fail(err, PHI3C_ERR_FORMAT, "%s: tokenizer.ggml.tokens is missing or empty",
                       what);
    if ((scores && p3_gguf_array_len(scores) != n) || (types && p3_gguf_array_len(types) != n))
        return p3_fail(err, PHI3C_ERR_FORMAT,
                       "%s: tokenizer.ggml.scores / token_type do not have %zu entries", what, n);
    p3_tokenizer *tok;
    st = tok_new(what, (int32_t)n, &tok, err);
    if (st != PHI3C_OK) return st;
    tok->model = kind;
    tok->ignore_merges = kind == TOK_MODEL_BYTE_BPE; /* tiktoken's rule; see tok_internal.h */
    tok->score = p3_calloc(n, sizeof *tok->score);
    if (!tok->score) st = p3_fail(err, PHI3C_ERR_NOMEM, "%s: out of memory", what);
    if (st == PHI3C_OK) st = read_tokens(tok, tokens, scores, types, err);
    if (st == PHI3C_OK) st = tok_index_pieces(tok, err);
    if (st == PHI3C_OK) st = add_added_tokens(tok, g, err);
    if (st == PHI3C_OK && kind == TOK_MODEL_BYTE_BPE) {
        tok_bytelevel_finish(tok);
        st = read_bpe_merges(tok, g, err);
    } else if (st == PHI3C_OK) {
        tok_merges_defer(tok);
    }
    if (st == PHI3C_OK) {
        read_specials(tok, g);
        st = tok_finish(tok, err);
    }
    if (st != PHI3C_OK) {
        p3_tokenizer_free(tok);
        return st;
    }
    *out = tok;
    return PHI3C_OK;
}

p3_status tok_load_gguf_file(const char *path, p3_tokenizer **out, p3_error *err) {
    *out = NULL;
    p3_mapped_file file = {0};
    p3_status st = p3_file_map(&file, path, err);
    if (st != PHI3C_OK) return st;
    p3_gguf *g = NULL;
    st = p3_gguf_parse(file.data, file.size, path, &g, err);
    if (st == PHI3C_OK) st = p3_tokenizer_load_gguf(g, path, out, err);
    p3_gguf_free(g);
    p3_file_unmap(&file);
    return st;
}
