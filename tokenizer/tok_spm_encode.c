/* tok_spm_encode.c: SentencePiece-style segment encoding, as HF's fast tokenizer does for Phi-3:
 * normalize (a "▁" prefix, spaces to "▁"), one symbol per character (its piece, else its byte
 * tokens <0xXX>, else unk), then BPE merges word by word. */
#include "tok_encode.h"

/* Merges the segment's symbols word by word. When no piece of the vocabulary holds a "▁" right
 * after another character (true of Phi-3's), no merge can cross the start of a word (a "▁" after
 * a non-"▁" symbol), so each word is merged on its own: the same result, with small heaps, and a
 * word seen before in this text reuses its result. Otherwise the segment is one word. */
static void merge_words(tok_work *w) {
    const p3_tokenizer *tok = w->tok;
    int32_t n = (int32_t)w->n_sym;
    if (!tok->words_split) {
        tok_merge_word(w, 0, n);
        return;
    }
    for (int32_t start = 0, end; start < n; start = end) {
        for (end = start + 1; end < n; end++)
            if (w->sym[end].id == tok->space_id && w->sym[end - 1].id != tok->space_id) break;
        tok_merge_word(w, start, end);
    }
}

/* Adds the symbols of one normalized character (its bytes in c): its piece, else its byte
 * tokens, else unk (consecutive unknown characters fused). */
static void add_char(tok_work *w, const char *c, size_t len, bool *unk_pending) {
    const p3_tokenizer *tok = w->tok;
    int32_t id =
        len == 1 && (uint8_t)c[0] < 128 ? tok->ascii_id[(uint8_t)c[0]] : tok_lookup(tok, c, len);
    if (id < 0) {
        bool all_bytes = true;
        for (size_t i = 0; i < len; i++) all_bytes &= tok->byte_id[(uint8_t)c[i]] >= 0;
        if (all_bytes && tok->byte_fallback) {
            if (*unk_pending) tok_push_symbol(w, tok->unk_id), *unk_pending = false;
            for (size_t i = 0; i < len; i++) tok_push_symbol(w, tok->byte_id[(uint8_t)c[i]]);
            return;
        }
        if (tok->unk_id < 0) return; /* no unk: HF drops the character */
        if (*unk_pending && tok->fuse_unk) return;
        if (*unk_pending) tok_push_symbol(w, tok->unk_id);
        *unk_pending = true;
        return;
    }
    if (*unk_pending) tok_push_symbol(w, tok->unk_id), *unk_pending = false;
    tok_push_symbol(w, id);
}

/* One text segment between added tokens: normalize ("▁" prefix, spaces to "▁"), split into
 * characters, merge. */
void tok_spm_encode_segment(tok_work *w, const uint8_t *s, size_t n) {
    const p3_tokenizer *tok = w->tok;
    /* each byte gives at most one symbol, except a space when "▁" is not in the vocabulary: then
     * it is three byte tokens (the prefix "▁" likewise) */
    size_t need_sym;
    if (!p3_mul_size(n, tok->space_id >= 0 ? 1 : 3, &need_sym) ||
        !p3_add_size(need_sym, 4, &need_sym) || !tok_symbols_begin(w, need_sym)) {
        w->oom = true;
        return;
    }
    bool unk_pending = false;
    if (tok->prepend_space) add_char(w, TOK_SPACE_MARK, TOK_SPACE_MARK_LEN, &unk_pending);
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t len = p3_utf8_decode(s + i, n - i, &cp);
        if (len == 0) { /* invalid UTF-8: the byte itself, as byte fallback would give it */
            if (unk_pending) tok_push_symbol(w, tok->unk_id), unk_pending = false;
            int32_t b =
                tok->byte_id[s[i]] >= 0 && tok->byte_fallback ? tok->byte_id[s[i]] : tok->unk_id;
            if (b >= 0) tok_push_symbol(w, b);
            i++;
            continue;
        }
        if (cp == ' ' && tok->replace_spaces)
            add_char(w, TOK_SPACE_MARK, TOK_SPACE_MARK_LEN, &unk_pending);
        else
            add_char(w, (const char *)s + i, len, &unk_pending);
        i += len;
    }
    if (unk_pending) tok_push_symbol(w, tok->unk_id);
    merge_words(w);
}
