/* tok_encode.c: text -> ids. Splits the text on added tokens (HF's AddedVocabulary: leftmost
 * longest match, lstrip/rstrip), hands each piece in between to the model's segment encoder, and
 * holds the BPE merge loop the segment encoders share (priority queue over a linked list of
 * symbols, merge ranks in the hash map of tok_vocab.c, a per-call cache of merged words). */
#include "tok_encode.h"

#include <stdlib.h>

enum { TOK_CACHE_MAX_SYMBOLS = 48 };

bool tok_grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return true;
    size_t ncap = *cap ? *cap : 64;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2 / elem) return false;
        ncap *= 2;
    }
    void *np = p3_realloc(*p, ncap * elem);
    if (!np) return false;
    *p = np;
    *cap = ncap;
    return true;
}

void tok_push_id(tok_work *w, int32_t id) {
    if (w->oom || !tok_grow((void **)&w->ids, &w->cap_ids, w->n_ids + 1, sizeof *w->ids)) {
        w->oom = true;
        return;
    }
    w->ids[w->n_ids++] = id;
}

bool tok_symbols_begin(tok_work *w, size_t max_symbols) {
    w->n_sym = 0;
    if (w->oom || max_symbols > INT32_MAX ||
        !tok_grow((void **)&w->sym, &w->cap_sym, max_symbols, sizeof *w->sym))
        w->oom = true;
    return !w->oom;
}

static bool heap_less(const tok_heap_item *a, const tok_heap_item *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void heap_push(tok_work *w, tok_heap_item item) {
    size_t i = w->n_heap++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!heap_less(&item, &w->heap[parent])) break;
        w->heap[i] = w->heap[parent];
        i = parent;
    }
    w->heap[i] = item;
}

static tok_heap_item heap_pop(tok_work *w) {
    tok_heap_item top = w->heap[0], last = w->heap[--w->n_heap];
    size_t i = 0, n = w->n_heap;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= n) break;
        if (child + 1 < n && heap_less(&w->heap[child + 1], &w->heap[child])) child++;
        if (!heap_less(&w->heap[child], &last)) break;
        w->heap[i] = w->heap[child];
        i = child;
    }
    if (n) w->heap[i] = last;
    return top;
}

/* Queues the merge of the symbol at pos with its right neighbour, if they merge and the
 * neighbour is inside the current word (symbols [.., end)). */
static void queue_pair(tok_work *w, int32_t pos, int32_t end) {
    const tok_symbol *s = &w->sym[pos];
    if (s->next >= end) return;
    const tok_merge_slot *m = tok_merge_find(w->tok, s->id, w->sym[s->next].id);
    if (m) heap_push(w, (tok_heap_item){m->rank, pos, m->result});
}

/* HF's Word::merge_all on symbols [start, end): repeatedly merge the pair of lowest rank
 * (leftmost on ties). */
static void merge_symbols(tok_work *w, int32_t start, int32_t end) {
    w->n_heap = 0;
    /* initial pairs plus at most two new pairs per merge */
    if (!tok_grow((void **)&w->heap, &w->cap_heap, 3 * (size_t)(end - start) + 4,
                  sizeof *w->heap)) {
        w->oom = true;
        return;
    }
    for (int32_t i = start; i + 1 < end; i++) queue_pair(w, i, end);
    while (w->n_heap) {
        tok_heap_item top = heap_pop(w);
        tok_symbol *s = &w->sym[top.pos];
        if (s->id < 0 || s->next >= end) continue;
        tok_symbol *right = &w->sym[s->next];
        const tok_merge_slot *m = tok_merge_find(w->tok, s->id, right->id);
        if (!m || m->result != top.result) continue; /* stale entry */
        s->id = top.result;
        right->id = -1;
        s->next = right->next;
        if (s->next < end) w->sym[s->next].prev = top.pos;
        if (s->prev >= start) queue_pair(w, s->prev, end);
        queue_pair(w, top.pos, end);
    }
}

static uint32_t hash_ids(const tok_symbol *sym, int32_t start, int32_t end) {
    uint32_t h = TOK_HASH_BASIS;
    for (int32_t i = start; i < end; i++) h = (h ^ (uint32_t)sym[i].id) * 16777619u;
    return h;
}

/* The cached entry for the word's initial symbols, or the empty slot where it belongs (NULL when
 * there is no cache). */
static tok_cache_entry *cache_slot(tok_work *w, int32_t start, int32_t end, uint32_t h) {
    if (!w->cache) return NULL;
    uint32_t n = (uint32_t)(end - start);
    for (size_t i = h & w->cache_mask;; i = (i + 1) & w->cache_mask) {
        tok_cache_entry *e = &w->cache[i];
        if (e->n_in == 0) return e;
        if (e->hash != h || e->n_in != n) continue;
        bool same = true;
        for (uint32_t k = 0; k < n && same; k++)
            same = w->arena[e->in_off + k] == w->sym[start + (int32_t)k].id;
        if (same) return e;
    }
}

static void cache_store(tok_work *w, tok_cache_entry *e, uint32_t h, int32_t start, int32_t end,
                        const int32_t *in_ids) {
    uint32_t n_in = (uint32_t)(end - start);
    size_t n_out = 0;
    for (int32_t i = start; i < end; i = w->sym[i].next) n_out++;
    if (w->cache_used * 2 >= w->cache_mask ||
        !tok_grow((void **)&w->arena, &w->cap_arena, w->n_arena + n_in + n_out, sizeof *w->arena))
        return; /* full: merge the remaining words without caching */
    *e = (tok_cache_entry){h, (uint32_t)w->n_arena, n_in, (uint32_t)(w->n_arena + n_in),
                           (uint32_t)n_out};
    memcpy(w->arena + w->n_arena, in_ids, n_in * sizeof *in_ids);
    w->n_arena += n_in;
    for (int32_t i = start; i < end; i = w->sym[i].next) w->arena[w->n_arena++] = w->sym[i].id;
    w->cache_used++;
}

void tok_merge_word(tok_work *w, int32_t start, int32_t end) {
    if (w->oom || start >= end) return;
    int32_t in_ids[TOK_CACHE_MAX_SYMBOLS];
    tok_cache_entry *e = NULL;
    uint32_t h = 0;
    if (end - start > 1 && end - start <= TOK_CACHE_MAX_SYMBOLS) {
        h = hash_ids(w->sym, start, end);
        e = cache_slot(w, start, end, h);
        if (e && e->n_in) {
            for (uint32_t k = 0; k < e->n_out; k++) tok_push_id(w, w->arena[e->out_off + k]);
            return;
        }
        if (e)
            for (int32_t i = start; i < end; i++) in_ids[i - start] = w->sym[i].id;
    }
    if (end - start > 1) merge_symbols(w, start, end);
    if (w->oom) return;
    if (e) cache_store(w, e, h, start, end, in_ids);
    for (int32_t i = start; i < end; i = w->sym[i].next) tok_push_id(w, w->sym[i].id);
}

/* Leftmost-longest added token starting at or after `from`; returns its index or -1. */
static long find_added(const p3_tokenizer *tok, const uint8_t *s, size_t n, size_t from,
                       bool skip_special, size_t *at) {
    if (tok->n_added == 0) return -1;
    for (size_t p = from; p < n; p++) {
        uint8_t b = s[p];
        if (!(tok->added_first[b >> 3] & (1u << (b & 7)))) continue;
        for (size_t i = 0; i < tok->n_added; i++) {
            const tok_added *a = &tok->added[i];
            if (a->len > n - p || (uint8_t)tok->pool[a->off] != b) continue;
            if (skip_special && a->special) continue;
            if (memcmp(tok->pool + a->off, s + p, a->len) == 0) {
                *at = p;
                return (long)i;
            }
        }
    }
    return -1;
}

/* Start of the run of whitespace characters that ends at `end` (not before `floor`). */
static size_t whitespace_run_start(const uint8_t *s, size_t floor, size_t end) {
    size_t start = end;
    while (start > floor) {
        size_t c = start - 1;
        while (c > floor && p3_utf8_is_continuation(s[c])) c--;
        uint32_t cp;
        size_t len = p3_utf8_decode(s + c, end - c, &cp);
        if (len != start - c || !tok_is_unicode_space(cp)) break;
        start = c;
    }
    return start;
}

static size_t whitespace_run_end(const uint8_t *s, size_t n, size_t from) {
    size_t end = from;
    while (end < n) {
        uint32_t cp;
        size_t len = p3_utf8_decode(s + end, n - end, &cp);
        if (len == 0 || !tok_is_unicode_space(cp)) break;
        end += len;
    }
    return end;
}

/* One piece of text between added tokens, through the model's segment encoder. */
static void encode_segment(tok_work *w, const uint8_t *s, size_t n) {
    if (n == 0 || w->oom) return;
    if (w->tok->model == TOK_MODEL_BYTE_BPE)
        tok_bpe_encode_segment(w, s, n);
    else
        tok_spm_encode_segment(w, s, n);
}

p3_status p3_tokenizer_encode(const p3_tokenizer *tok, const char *text, size_t len, unsigned flags,
                              int32_t **ids, size_t *n_ids, p3_error *err) {
    *ids = NULL;
    *n_ids = 0;
    if (!text && len) return p3_fail(err, PHI3C_ERR_INVALID_ARG, "encode: NULL text");
    if (len > INT32_MAX / 4)
        return p3_fail(err, PHI3C_ERR_INVALID_ARG, "encode: text of %zu bytes is too long", len);
    p3_status st = tok_merges_ready(tok, err);
    if (st != PHI3C_OK) return st;
    const uint8_t *s = (const uint8_t *)text;
    tok_work w = {.tok = tok};
    bool cache = tok->words_split || tok->model == TOK_MODEL_BYTE_BPE;
    if (cache && len >= 256) { /* a word cache pays off beyond a short prompt */
        size_t slots = 64;
        while (slots < len / 8 && slots < 65536) slots *= 2;
        w.cache = p3_calloc(slots, sizeof *w.cache);
        w.cache_mask = w.cache ? slots - 1 : 0; /* without memory, simply no cache */
    }
    if ((flags & P3_ENCODE_ADD_BOS) && tok->bos_id >= 0) tok_push_id(&w, tok->bos_id);
    /* AddedVocabulary::find_matches: split on added tokens, honouring lstrip/rstrip; each piece
     * in between is normalized and encoded on its own. */
    size_t seg_start = 0, search = 0, at = 0;
    bool skip_special = (flags & P3_ENCODE_NO_SPECIAL) != 0;
    long k;
    while (search < len && (k = find_added(tok, s, len, search, skip_special, &at)) >= 0) {
        const tok_added *a = &tok->added[k];
        size_t start = at, stop = at + a->len;
        if (a->lstrip) start = P3_MAX(whitespace_run_start(s, 0, start), seg_start);
        if (a->rstrip) stop = whitespace_run_end(s, len, stop);
        if (seg_start < start) encode_segment(&w, s + seg_start, start - seg_start);
        tok_push_id(&w, a->id);
        seg_start = stop;
        search = at + a->len;
    }
    if (seg_start < len) encode_segment(&w, s + seg_start, len - seg_start);
    p3_free(w.sym);
    p3_free(w.heap);
    p3_free(w.cache);
    p3_free(w.arena);
    if (w.oom) {
        p3_free(w.ids);
        return p3_fail(err, PHI3C_ERR_NOMEM, "encode: out of memory for %zu bytes of text", len);
    }
    *ids = w.ids;
    *n_ids = w.n_ids;
    return PHI3C_OK;
}
