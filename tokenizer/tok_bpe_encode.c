/* tok_bpe_encode.c: byte-level BPE segment encoding (HF's BPE model after a ByteLevel
 * pre-tokenizer, tiktoken's encode): the o200k split cuts the text into chunks; a chunk that is a
 * piece is taken whole when the model says ignore_merges, else its bytes become byte symbols
 * merged by rank. Pieces are held as raw bytes, so no byte-to-character step is needed here. */
#include "tok_bpe.h"
#include "tok_encode.h"

static void encode_chunk(tok_work *w, const uint8_t *s, size_t n) {
    const p3_tokenizer *tok = w->tok;
    if (tok->ignore_merges || n == 1) {
        int32_t id = n == 1 ? tok->byte_id[s[0]] : tok_lookup(tok, (const char *)s, n);
        if (id >= 0) {
            tok_push_id(w, id);
            return;
        }
    }
    if (!tok_symbols_begin(w, n)) return;
    for (size_t i = 0; i < n; i++) {
        int32_t id = tok->byte_id[s[i]];
        if (id >= 0) tok_push_symbol(w, id); /* a vocabulary without the byte: HF drops it */
    }
    tok_merge_word(w, 0, (int32_t)w->n_sym);
}

void tok_bpe_encode_segment(tok_work *w, const uint8_t *s, size_t n) {
    for (size_t pos = 0; pos < n && !w->oom;) {
        size_t end = tok_o200k_chunk_end(s, n, pos);
        encode_chunk(w, s + pos, end - pos);
        pos = end;
    }
}
