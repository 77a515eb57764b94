/* tok_spm_merges.c: SentencePiece scores -> BPE merges, as HF's converter derives them: every
 * split of a normal piece into two pieces is a merge, ranked by the piece's score. Linear in the
 * vocabulary's bytes: the pieces that prefix a piece are found with one running hash over it, the
 * pieces that end it with one running hash over its bytes read backwards. */
#include "tok_internal.h"

#include <math.h>
#include <stdlib.h>

typedef struct spm_merge {
    float score;
    int32_t target, left, right;
} spm_merge;

static int cmp_spm_merge(const void *pa, const void *pb) {
    const spm_merge *a = pa, *b = pb;
    /* NaN scores (hostile files) sort last so the order stays total */
    float sa = a->score == a->score ? a->score : -INFINITY;
    float sb = b->score == b->score ? b->score : -INFINITY;
    if (sa != sb) return sa > sb ? -1 : 1;
    if (a->target != b->target) return a->target < b->target ? -1 : 1;
    if (a->left != b->left) return a->left < b->left ? -1 : 1;
    return (a->right > b->right) - (a->right < b->right);
}

/* Pieces keyed by the hash of their bytes read backwards, so every suffix of a piece is looked up
 * in O(1) while walking it from the end. Holds the same ids tok_lookup finds (the lowest id of a
 * duplicate piece). */
typedef struct suffix_index {
    int32_t *slot; /* -1 empty */
    size_t mask;
} suffix_index;

static uint32_t hash_reversed(const char *s, size_t len) {
    uint32_t h = TOK_HASH_BASIS;
    for (size_t i = len; i > 0; i--) h = tok_hash_step(h, (uint8_t)s[i - 1]);
    return h;
}

static int32_t suffix_lookup(const p3_tokenizer *tok, const suffix_index *ix, const char *s,
                             size_t len, uint32_t h) {
    for (size_t i = h & ix->mask;; i = (i + 1) & ix->mask) {
        int32_t id = ix->slot[i];
        if (id < 0) return -1;
        if (tok->piece_len[id] == len && memcmp(tok_piece(tok, id), s, len) == 0) return id;
    }
}

static p3_status suffix_index_build(const p3_tokenizer *tok, suffix_index *ix, p3_error *err) {
    size_t size = tok->piece_hash_mask + 1; /* at least twice the vocabulary */
    ix->slot = p3_malloc(size * sizeof *ix->slot);
    if (!ix->slot) return p3_fail(err, PHI3C_ERR_NOMEM, "%s: out of memory", tok->what);
    ix->mask = size - 1;
    for (size_t i = 0; i < size; i++) ix->slot[i] = -1;
    for (int32_t id = 0; id < tok->n_vocab; id++) {
        if (tok->piece_type[id] == P3_PIECE_NONE) continue;
        const char *s = tok_piece(tok, id);
        size_t len = tok->piece_len[id];
        if (tok_lookup(tok, s, len) != id) continue; /* a later copy of a piece */
        size_t i = hash_reversed(s, len) & ix->mask;
        while (ix->slot[i] >= 0) i = (i + 1) & ix->mask;
        ix->slot[i] = id;
    }
    return PHI3C_OK;
}

typedef struct merge_list {
    spm_merge *item;
    size_t n, cap;
} merge_list;

static bool list_push(merge_list *l, spm_merge m) {
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 65536;
        spm_merge *ni =
            ncap < SIZE_MAX / sizeof *ni ? p3_realloc(l->item, ncap * sizeof *ni) : NULL;
        if (!ni) return false;
        l->item = ni;
        l->cap = ncap;
    }
    l->item[l->n++] = m;
    return true;
}

/* The merges of one piece: split k (at a character boundary) is a merge when s[0..k) and s[k..len)
 * are both pieces. left[k] holds the id of the prefix of length k (scratch, len entries). */
static bool piece_merges(const p3_tokenizer *tok, const suffix_index *ix, int32_t id, int32_t *left,
                         merge_list *out) {
    const char *s = tok_piece(tok, id);
    size_t len = tok->piece_len[id];
    uint32_t h = TOK_HASH_BASIS;
    for (size_t k = 1; k < len; k++) {
        h = tok_hash_step(h, (uint8_t)s[k - 1]);
        left[k] = p3_utf8_is_continuation((uint8_t)s[k]) ? -1 : tok_lookup_hashed(tok, s, k, h);
    }
    float score = tok->score ? tok->score[id] : 0.0f;
    h = TOK_HASH_BASIS;
    for (size_t k = len; k-- > 1;) {
        h = tok_hash_step(h, (uint8_t)s[k]);
        if (left[k] < 0) continue;
        int32_t r = suffix_lookup(tok, ix, s + k, len - k, h);
        if (r >= 0 && !list_push(out, (spm_merge){score, id, left[k], r})) return false;
    }
    return true;
}

p3_status tok_merges_from_scores(p3_tokenizer *tok, p3_error *err) {
    suffix_index ix = {0};
    merge_list list = {0};
    int32_t *left = p3_malloc((tok->max_piece_len + 1) * sizeof *left);
    p3_status st = left ? suffix_index_build(tok, &ix, err)
                        : p3_fail(err, PHI3C_ERR_NOMEM, "%s: out of memory", tok->what);
    for (int32_t id = 0; id < tok->n_vocab && st == PHI3C_OK; id++) {
        if (tok->piece_type[id] != P3_PIECE_NORMAL) continue;
        if (!piece_merges(tok, &ix, id, left, &list))
            st = p3_fail(err, PHI3C_ERR_NOMEM, "%s: out of memory for merges", tok->what);
    }
    p3_free(left);
    p3_free(ix.slot);
    if (st == PHI3C_OK && list.n > INT32_MAX)
        st = p3_fail(err, PHI3C_ERR_FORMAT, "%s: too many merges", tok->what);
    if (st == PHI3C_OK) {
        if (list.n) qsort(list.item, list.n, sizeof *list.item, cmp_spm_merge);
        st = tok_merges_reserve(tok, list.n, err);
    }
    for (size_t i = 0; i < list.n && st == PHI3C_OK; i++)
        st = tok_add_merge(tok, list.item[i].left, list.item[i].right, (int32_t)i, err);
    p3_free(list.item);
    return st;
}

void tok_merges_defer(p3_tokenizer *tok) {
    atomic_store(&tok->merges_state, TOK_MERGES_PENDING);
}

p3_status tok_merges_ready(const p3_tokenizer *ctok, p3_error *err) {
    int state = atomic_load_explicit(&ctok->merges_state, memory_order_acquire);
    if (state == TOK_MERGES_READY) return PHI3C_OK;
    /* the merge table is the lazily built part of an otherwise read-only tokenizer */
    p3_tokenizer *tok = (p3_tokenizer *)ctok;
    pthread_mutex_lock(&tok->merges_lock);
    state = atomic_load_explicit(&tok->merges_state, memory_order_relaxed);
    if (state == TOK_MERGES_PENDING) {
        p3_status st = tok_merges_from_scores(tok, &tok->merges_error);
        state = st == PHI3C_OK ? TOK_MERGES_READY : TOK_MERGES_FAILED;
        atomic_store_explicit(&tok->merges_state, state, memory_order_release);
    }
    pthread_mutex_unlock(&tok->merges_lock);
    if (state == TOK_MERGES_READY) return PHI3C_OK;
    return p3_fail(err, tok->merges_error.status, "%s", tok->merges_error.message);
}
