/* tok_encode.h: what a model's segment encoder (tok_spm_encode.c; a byte-level BPE one next to it)
 * shares with the encode driver (tok_encode.c): the scratch of one encode call, its symbol list and
 * the BPE merge loop. The driver splits the text on added tokens; a segment encoder turns one piece
 * of text between them into symbols and merges them word by word. */
#ifndef P3_TOK_ENCODE_H
#define P3_TOK_ENCODE_H

#include "tok_internal.h"

typedef struct tok_symbol {
    int32_t id; /* -1 once merged into its left neighbour */
    int32_t prev, next;
} tok_symbol;

typedef struct tok_heap_item {
    int32_t rank, pos, result;
} tok_heap_item;

typedef struct tok_cache_entry {
    uint32_t hash;
    uint32_t in_off, n_in, out_off, n_out; /* n_in == 0: empty slot */
} tok_cache_entry;

/* Scratch for one encode call: ids out, symbols and heap of the current segment, and a cache of
 * words already merged in this call (initial symbol ids -> result ids, both in `arena`). */
typedef struct tok_work {
    const p3_tokenizer *tok;
    int32_t *ids;
    size_t n_ids, cap_ids;
    tok_symbol *sym;
    size_t n_sym, cap_sym;
    tok_heap_item *heap;
    size_t n_heap, cap_heap;
    tok_cache_entry *cache; /* NULL: no cache */
    size_t cache_mask, cache_used;
    int32_t *arena;
    size_t n_arena, cap_arena;
    bool oom;
} tok_work;

/* Grows *p (cap elements of elem bytes) to hold need; false when out of memory. */
bool tok_grow(void **p, size_t *cap, size_t need, size_t elem);
void tok_push_id(tok_work *w, int32_t id);
/* Starts a segment of at most max_symbols symbols (false: out of memory, w->oom set). */
bool tok_symbols_begin(tok_work *w, size_t max_symbols);
/* Appends a symbol; capacity was reserved by tok_symbols_begin. */
static inline void tok_push_symbol(tok_work *w, int32_t id) {
    int32_t pos = (int32_t)w->n_sym;
    w->sym[w->n_sym++] = (tok_symbol){id, pos - 1, pos + 1};
}
/* HF's Word::merge_all on the word of symbols [start, end): repeatedly merges the pair of lowest
 * rank (leftmost on ties), then appends the word's ids. A word seen before in this call reuses its
 * result when the call has a cache. */
void tok_merge_word(tok_work *w, int32_t start, int32_t end);

/* SentencePiece-style segment encoder (tok_spm_encode.c). */
void tok_spm_encode_segment(tok_work *w, const uint8_t *s, size_t n);
/* Byte-level BPE segment encoder: o200k split, then merges per chunk (tok_bpe_encode.c). */
void tok_bpe_encode_segment(tok_work *w, const uint8_t *s, size_t n);

#endif /* P3_TOK_ENCODE_H */
