/* tok_core.c: the tokenizer's vocabulary tables, BPE merges (priority queue over a linked list of
 * symbols, merge ranks in a hash map), added-token splitting, encode and decode, following the
 * semantics of HF tokenizers' BPE model with byte fallback and its AddedVocabulary. */
#include "tok_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOK_MAX_VOCAB (1 << 24)

static const char SPACE_MARK[] = "\xe2\x96\x81"; /* U+2581 "▁" */

/* ---- building ---------------------------------------------------------------------------- */

p3_status tok_new(const char *what, int32_t n_vocab, p3_tokenizer **out, p3_error *err) {
    *out = NULL;
    if (n_vocab <= 0 || n_vocab > TOK_MAX_VOCAB)
        return p3_fail(err, PHI3C_ERR_FORMAT, "%s: vocabulary size %ld out of range (1..%d)", what,
                       (long)n_vocab, TOK_MAX_VOCAB);
    p3_tokenizer *tok = p3_calloc(1, sizeof *tok);
    if (!tok) return p3_fail(err, PHI3C_ERR_NOMEM, "%s: out of memory", what);
    size_t n = (size_t)n_vocab;
    tok->what = p3_strdup(what ? what : "tokenizer");
    tok->n_vocab = n_vocab;
    tok->piece_off = p3_calloc(n, sizeof *tok->piece_off);
    tok->piece_len = p3_calloc(n, sizeof *tok->piece_len);
    tok->piece_type = p3_calloc(n, 1);
    tok->special = p3_calloc(n, sizeof *tok->special);
    tok->byte_of = p3_malloc(n * sizeof *tok->byte_of);
    if (!tok->what || !tok->piece_off || !tok->piece_len || !tok->piece_type || !tok->special ||
        !tok->byte_of) {
        p3_tokenizer_free(tok);
        return p3_fail(err, PHI3C_ERR_NOMEM, "%s: out of memory for %ld tokens", what, (long)n);
    }
    for (size_t i = 0; i < n; i++) tok->byte_of[i] = -1;
    tok->bos_id = tok->eos_id = tok->unk_id = tok->pad_id = -1;
    tok->space_id = -1;
    tok->prepend_space = tok->replace_spaces = true;
    tok->fuse_unk = true;
    tok->byte_fallback = true;
    *out = tok;
    return PHI3C_OK;
}

void p3_tokenizer_free(p3_tokenizer *tok) {
    if (!tok) return;
    p3_free(tok->what);
    p3_free(tok->piece_off);
    p3_free(tok->piece_len);
    p3_free(tok->piece_type);
    p3_free(tok->score);
    p3_free(tok->special);
    p3_free(tok->byte_of);
    p3_free(tok->pool);
    p3_free(tok->piece_hash);
    p3_free(tok->merges);
    p3_free(tok->added);
    p3_free(tok);
}

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* HF's ByteFallback decoder treats any 6-byte "<0xHH>" token as the byte HH. */
static int parse_byte_piece(const char *s, size_t len) {
    if (len != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int hi = hex_digit(s[3]), lo = hex_digit(s[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

p3_status tok_set_piece(p3_tokenizer *tok, int32_t id, const char *s, size_t len, int type,
                        p3_error *err) {
    if (id < 0 || id >= tok->n_vocab)
        return p3_fail(err, PHI3C_ERR_FORMAT, "%s: token id %ld out of range (vocab %ld)",
                       tok->what, (long)id, (long)tok->n_vocab);
    if (len > UINT32_MAX / 2 || tok->pool_len > UINT32_MAX - len)
        return p3_fail(err, PHI3C_ERR_FORMAT, "%s: token pieces too large", tok->what);
    if (tok->pool_len + len > tok->pool_cap) {
        size_t cap = tok->pool_cap ? tok->pool_cap : 4096;
        while (cap < tok->pool_len + len) cap *= 2;
        char *pool = p3_realloc(tok->pool, cap);
        if (!pool) return p3_fail(err, PHI3C_ERR_NOMEM, "%s: out of memory", tok->what);
        tok->pool = pool;
        tok->pool_cap = cap;
    }
    if (len) memcpy(tok->pool + tok->pool_len, s, len);
    tok->piece_off[id] = (uint32_t)tok->pool_len;
    tok->piece_len[id] = (uint32_t)len;
    tok->piece_type[id] = (uint8_t)type;
    tok->pool_len += len;
    tok->byte_of[id] = (int16_t)parse_byte_piece(s, len);
    if (len > tok->max_piece_len) tok->max_piece_len = len;
    return PHI3C_OK;
}

static const char *piece_ptr(const p3_tokenizer *tok, int32_t id) {
    return tok->pool + tok->piece_off[id];
}

static uint32_t hash_bytes(const char *s, size_t len) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

int32_t tok_lookup(const p3_tokenizer *tok, const char *s, size_t len) {
    if (!tok->piece_hash) return -1;
    size_t i = hash_bytes(s, len) & tok->piece_hash_mask;
    for (;;) {
        int32_t id = tok->piece_hash[i];
        if (id < 0) return -1;
        if (tok->piece_len[id] == len && memcmp(piece_ptr(tok, id), s, len) == 0) return id;
        i = (i + 1) & tok->piece_hash_mask;
    }
}

p3_status tok_index_pieces(p3_tokenizer *tok, p3_error *err) {
    size_t size = 64;
    while (size < 2 * (size_t)tok->n_vocab) size *= 2;
    p3_free(tok->piece_hash);
    tok->piece_hash = p3_malloc(size * sizeof *tok->piece_hash);
    if (!tok->piece_hash) return p3_fail(err, PHI3C_ERR_NOMEM, "%s: out of memory", tok->what);
    tok->piece_hash_mask = size - 1;
    for (size_t i = 0; i < size; i++) tok->piece_hash[i] = -1;
    for (int32_t id = 0; id < tok->n_vocab; id++) {
        if (tok->piece_type[id] == P3_PIECE_NONE) continue;
        const char *s = piece_ptr(tok, id);
        size_t len = tok->piece_len[id];
        if (tok_lookup(tok, s, len) >= 0) continue; /* the first id of a duplicate piece wins */
        size_t i = hash_bytes(s, len) & tok->piece_hash_mask;
        while (tok->piece_hash[i] >= 0) i = (i + 1) & tok->piece_hash_mask;
        tok->piece_hash[i] = id;
    }
    char name[8];
    for (int b = 0; b < 256; b++) {
        snprintf(name, sizeof name, "<0x%02X>", b);
        tok->byte_id[b] = tok_lookup(tok, name, 6);
    }
    for (int c = 0; c < 128; c++) {
        char ch = (char)c;
        tok->ascii_id[c] = tok_lookup(tok, &ch, 1);
    }
    tok->space_id = tok_lookup(tok, SPACE_MARK, 3);
    return PHI3C_OK;
}

/* ---- merges ------------------------------------------------------------------------------ */

static uint64_t merge_key(int32_t left, int32_t right) {
    return ((uint64_t)(uint32_t)left << 32 | (uint32_t)right) + 1;
}

/* Mixes all 64 key bits into the low ones (both ids matter; a plain multiply would leave the
 * left id's high bits out of the slot index). */
static size_t merge_hash(uint64_t key, size_t mask) {
    key ^= key >> 31;
    key *= 0x9E3779B97F4A7C15ull;
    key ^= key >> 29;
    return (size_t)key & mask;
}

p3_status tok_merges_reserve(p3_tokenizer *tok, size_t n, p3_error *err) {
    size_t size = 64;
    while (size < 2 * n + 2) {
        if (size > SIZE_MAX / 4 / sizeof(tok_merge_slot))
            return p3_fail(err, PHI3C_ERR_FORMAT, "%s: too many merges", tok->what);
        size *= 2;
    }
    p3_free(tok->merges);
    tok->merges = p3_calloc(size, sizeof *tok->merges);
    if (!tok->merges) return p3_fail(err, PHI3C_ERR_NOMEM, "%s: out of memory", tok->what);
    tok->merge_mask = size - 1;
    tok->n_merges = 0;
    return PHI3C_OK;
}

static const tok_merge_slot *merge_find(const p3_tokenizer *tok, int32_t left, int32_t right) {
    if (!tok->merges) return NULL;
    uint64_t key = merge_key(left, right);
    for (size_t i = merge_hash(key, tok->merge_mask);; i = (i + 1) & tok->merge_mask) {
        const tok_merge_slot *s = &tok->merges[i];
        if (s->key == key) return s;
        if (s->key == 0) return NULL;
    }
}

bool tok_merge_get(const p3_tokenizer *tok, int32_t left, int32_t right, int32_t *rank,
                   int32_t *result) {
    const tok_merge_slot *m = merge_find(tok, left, right);
    if (m) *rank = m->rank, *result = m->result;
    return m != NULL;
}

p3_status tok_add_merge(p3_tokenizer *tok, int32_t left, int32_t right, int32_t rank,
                        p3_error *err) {
    if (!tok->merges || tok->n_merges + 1 > (tok->merge_mask + 1) / 2)
        return p3_fail(err, PHI3C_ERR_INVALID_ARG, "%s: merge table full", tok->what);
    size_t ll = tok->piece_len[left], rl = tok->piece_len[right];
    char stack_buf[256];
    char *buf = ll + rl <= sizeof stack_buf ? stack_buf : p3_malloc(ll + rl);
    if (!buf) return p3_fail(err, PHI3C_ERR_NOMEM, "%s: out of memory", tok->what);
    memcpy(buf, piece_ptr(tok, left), ll);
    memcpy(buf + ll, piece_ptr(tok, right), rl);
    int32_t result = tok_lookup(tok, buf, ll + rl);
    if (buf != stack_buf) p3_free(buf);
    if (result < 0)
        return p3_fail(err, PHI3C_ERR_FORMAT,
                       "%s: merge %ld of tokens %ld and %ld makes a piece not in the vocabulary",
                       tok->what, (long)rank, (long)left, (long)right);
    uint64_t key = merge_key(left, right);
    size_t i = merge_hash(key, tok->merge_mask);
    while (tok->merges[i].key != 0 && tok->merges[i].key != key) i = (i + 1) & tok->merge_mask;
    if (tok->merges[i].key == 0) tok->n_merges++;
    /* a repeated pair takes its later rank, as HF's merge map (built by collecting) does */
    tok->merges[i] = (tok_merge_slot){key, rank, result};
    return PHI3C_OK;
}

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

static bool utf8_is_continuation(uint8_t c) {
    return (c & 0xC0) == 0x80;
}

/* HF's SentencePiece converter: for every piece, every split at a character boundary into two
 * pieces is a merge; merges are ordered by the piece's score (descending, stable over piece id),
 * ties inside a piece by (left id, right id). */
p3_status tok_merges_from_scores(p3_tokenizer *tok, p3_error *err) {
    size_t n = 0, cap = 0;
    spm_merge *list = NULL;
    p3_status st = PHI3C_OK;
    for (int32_t id = 0; id < tok->n_vocab && st == PHI3C_OK; id++) {
        if (tok->piece_type[id] != P3_PIECE_NORMAL) continue;
        const char *s = piece_ptr(tok, id);
        size_t len = tok->piece_len[id];
        for (size_t k = 1; k < len; k++) {
            if (utf8_is_continuation((uint8_t)s[k])) continue;
            int32_t l = tok_lookup(tok, s, k), r = tok_lookup(tok, s + k, len - k);
            if (l < 0 || r < 0) continue;
            if (n == cap) {
                size_t ncap = cap ? cap * 2 : 65536;
                spm_merge *nl = p3_realloc(list, ncap * sizeof *nl);
                if (!nl) {
                    st = p3_fail(err, PHI3C_ERR_NOMEM, "%s: out of memory", tok->what);
                    break;
                }
                list = nl;
                cap = ncap;
            }
            list[n++] = (spm_merge){tok->score ? tok->score[id] : 0.0f, id, l, r};
        }
    }
    if (st == PHI3C_OK && n > INT32_MAX)
        st = p3_fail(err, PHI3C_ERR_FORMAT, "%s: too many merges", tok->what);
    if (st == PHI3C_OK) {
        if (n) qsort(list, n, sizeof *list, cmp_spm_merge);
        st = tok_merges_reserve(tok, n, err);
    }
    for (size_t i = 0; i < n && st == PHI3C_OK; i++)
        st = tok_add_merge(tok, list[i].left, list[i].right, (int32_t)i, err);
    p3_free(list);
    return st;
}

/* ---- added tokens ------------------------------------------------------------------------ */

p3_status tok_add_added(p3_tokenizer *tok, int32_t id, bool lstrip, bool rstrip, bool special,
                        p3_error *err) {
    if (id < 0 || id >= tok->n_vocab || tok->piece_type[id] == P3_PIECE_NONE)
        return p3_fail(err, PHI3C_ERR_FORMAT, "%s: added token id %ld has no piece", tok->what,
                       (long)id);
    tok->special[id] = special;
    if (tok->piece_len[id] == 0) return PHI3C_OK; /* an empty token can never match */
    for (size_t i = 0; i < tok->n_added; i++) {
        if (tok->added[i].id == id) { /* listed twice: the last flags win */
            tok->added[i].lstrip = lstrip;
            tok->added[i].rstrip = rstrip;
            tok->added[i].special = special;
            return PHI3C_OK;
        }
    }
    tok_added *a = p3_realloc(tok->added, (tok->n_added + 1) * sizeof *a);
    if (!a) return p3_fail(err, PHI3C_ERR_NOMEM, "%s: out of memory", tok->what);
    tok->added = a;
    a[tok->n_added++] =
        (tok_added){id, tok->piece_off[id], tok->piece_len[id], lstrip, rstrip, special};
    return PHI3C_OK;
}

static int cmp_added(const void *pa, const void *pb) {
    const tok_added *a = pa, *b = pb;
    if (a->len != b->len) return a->len > b->len ? -1 : 1; /* longest first: leftmost-longest */
    return (a->id > b->id) - (a->id < b->id);
}

static void add_stop(p3_tokenizer *tok, int32_t id) {
    if (id < 0 || tok->n_stop_ids >= P3_ARRAY_LEN(tok->stop_ids)) return;
    for (size_t i = 0; i < tok->n_stop_ids; i++)
        if (tok->stop_ids[i] == id) return;
    tok->stop_ids[tok->n_stop_ids++] = id;
}

/* True when some piece holds "▁" right after a character other than "▁" (then a merge could
 * join the end of one word to the start of the next). */
static bool has_mark_after_char(const p3_tokenizer *tok) {
    for (int32_t id = 0; id < tok->n_vocab; id++) {
        const char *p = piece_ptr(tok, id);
        size_t len = tok->piece_len[id];
        for (size_t k = 1; k + 3 <= len; k++)
            if (memcmp(p + k, SPACE_MARK, 3) == 0 && (k < 3 || memcmp(p + k - 3, SPACE_MARK, 3)))
                return true;
    }
    return false;
}

void tok_default_stops(p3_tokenizer *tok) {
    tok->n_stop_ids = 0;
    add_stop(tok, tok->eos_id);
    add_stop(tok, tok_lookup(tok, "<|end|>", 7));
    add_stop(tok, tok_lookup(tok, "<|endoftext|>", 13));
}

p3_status tok_finish(p3_tokenizer *tok, p3_error *err) {
    (void)err;
    if (tok->n_added) qsort(tok->added, tok->n_added, sizeof *tok->added, cmp_added);
    memset(tok->added_first, 0, sizeof tok->added_first);
    for (size_t i = 0; i < tok->n_added; i++) {
        uint8_t b = (uint8_t)tok->pool[tok->added[i].off];
        tok->added_first[b >> 3] |= (uint8_t)(1u << (b & 7));
    }
    if (tok->n_stop_ids == 0) tok_default_stops(tok);
    tok->words_split = tok->space_id >= 0 && !has_mark_after_char(tok);
    return PHI3C_OK;
}

/* ---- UTF-8 helpers ----------------------------------------------------------------------- */

/* Length of the valid UTF-8 character at s[0..n), or 0 when the bytes there are not one (a stray
 * byte, a truncated sequence, an overlong form, a surrogate, or above U+10FFFF). */
static size_t utf8_char_len(const uint8_t *s, size_t n, uint32_t *cp) {
    uint8_t c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    uint32_t v, min;
    if ((c & 0xE0) == 0xC0)
        len = 2, v = c & 0x1F, min = 0x80;
    else if ((c & 0xF0) == 0xE0)
        len = 3, v = c & 0x0F, min = 0x800;
    else if ((c & 0xF8) == 0xF0)
        len = 4, v = c & 0x07, min = 0x10000;
    else
        return 0;
    if (len > n) return 0;
    for (size_t i = 1; i < len; i++) {
        if (!utf8_is_continuation(s[i])) return 0;
        v = v << 6 | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return len;
}

/* Rust's char::is_whitespace (Unicode White_Space), which HF uses for lstrip/rstrip. */
static bool is_unicode_space(uint32_t cp) {
    if (cp == 0x20 || (cp >= 0x09 && cp <= 0x0D)) return true;
    if (cp < 0x85) return false;
    return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
           cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

/* ---- encode ------------------------------------------------------------------------------ */

typedef struct tok_symbol {
    int32_t id; /* -1 once merged into its left neighbour */
    int32_t prev, next;
} tok_symbol;

typedef struct tok_heap_item {
    int32_t rank, pos, result;
} tok_heap_item;

/* Scratch for one encode call: ids out, symbols and heap of the current segment. */
typedef struct tok_work {
    const p3_tokenizer *tok;
    int32_t *ids;
    size_t n_ids, cap_ids;
    tok_symbol *sym;
    size_t n_sym, cap_sym;
    tok_heap_item *heap;
    size_t n_heap, cap_heap;
    /* words already merged in this call: initial symbol ids -> result ids (both in `arena`) */
    struct tok_cache_entry *cache;
    size_t cache_mask, cache_used;
    int32_t *arena;
    size_t n_arena, cap_arena;
    bool oom;
} tok_work;

typedef struct tok_cache_entry {
    uint32_t hash;
    uint32_t in_off, n_in, out_off, n_out; /* n_in == 0: empty slot */
} tok_cache_entry;

enum { TOK_CACHE_MAX_SYMBOLS = 48 };

static bool grow(void **p, size_t *cap, size_t need, size_t elem) {
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

static void push_id(tok_work *w, int32_t id) {
    if (w->oom || !grow((void **)&w->ids, &w->cap_ids, w->n_ids + 1, sizeof *w->ids)) {
        w->oom = true;
        return;
    }
    w->ids[w->n_ids++] = id;
}

static void push_symbol(tok_work *w, int32_t id) {
    /* capacity is reserved per segment before symbols are pushed */
    int32_t pos = (int32_t)w->n_sym;
    w->sym[w->n_sym++] = (tok_symbol){id, pos - 1, pos + 1};
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
    const tok_merge_slot *m = merge_find(w->tok, s->id, w->sym[s->next].id);
    if (m) heap_push(w, (tok_heap_item){m->rank, pos, m->result});
}

/* HF's Word::merge_all on symbols [start, end): repeatedly merge the pair of lowest rank
 * (leftmost on ties). */
static void merge_symbols(tok_work *w, int32_t start, int32_t end) {
    w->n_heap = 0;
    /* initial pairs plus at most two new pairs per merge */
    if (!grow((void **)&w->heap, &w->cap_heap, 3 * (size_t)(end - start) + 4, sizeof *w->heap)) {
        w->oom = true;
        return;
    }
    for (int32_t i = start; i + 1 < end; i++) queue_pair(w, i, end);
    while (w->n_heap) {
        tok_heap_item top = heap_pop(w);
        tok_symbol *s = &w->sym[top.pos];
        if (s->id < 0 || s->next >= end) continue;
        tok_symbol *right = &w->sym[s->next];
        const tok_merge_slot *m = merge_find(w->tok, s->id, right->id);
        if (!m || m->result != top.result) continue; /* stale entry */
        s->id = top.result;
        right->id = -1;
        s->next = right->next;
        if (s->next < end) w->sym[s->next].prev = top.pos;
        if (s->prev >= start) queue_pair(w, s->prev, end);
        queue_pair(w, top.pos, end);
    }
}

/* Merges the segment's symbols and appends the resulting ids. When no piece of the vocabulary
 * holds a "▁" right after another character (true of Phi-3's), no merge can cross the start of a
 * word (a "▁" after a non-"▁" symbol), so each word is merged on its own: same result, smaller
 * heaps. */
static uint32_t hash_ids(const tok_symbol *sym, int32_t start, int32_t end) {
    uint32_t h = 2166136261u;
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
        !grow((void **)&w->arena, &w->cap_arena, w->n_arena + n_in + n_out, sizeof *w->arena))
        return; /* full: merge the remaining words without caching */
    *e = (tok_cache_entry){h, (uint32_t)w->n_arena, n_in, (uint32_t)(w->n_arena + n_in),
                           (uint32_t)n_out};
    memcpy(w->arena + w->n_arena, in_ids, n_in * sizeof *in_ids);
    w->n_arena += n_in;
    for (int32_t i = start; i < end; i = w->sym[i].next) w->arena[w->n_arena++] = w->sym[i].id;
    w->cache_used++;
}

/* Merges the segment's symbols and appends the resulting ids. When no piece of the vocabulary
 * holds a "▁" right after another character (true of Phi-3's), no merge can cross the start of a
 * word (a "▁" after a non-"▁" symbol), so each word is merged on its own: the same result, with
 * small heaps, and a word seen before in this text reuses its result. */
static void merge_and_emit(tok_work *w) {
    const p3_tokenizer *tok = w->tok;
    int32_t n = (int32_t)w->n_sym;
    int32_t in_ids[TOK_CACHE_MAX_SYMBOLS];
    for (int32_t start = 0; start < n;) {
        int32_t end = n;
        if (tok->words_split)
            for (end = start + 1; end < n; end++)
                if (w->sym[end].id == tok->space_id && w->sym[end - 1].id != tok->space_id) break;
        tok_cache_entry *e = NULL;
        uint32_t h = 0;
        if (end - start > 1 && end - start <= TOK_CACHE_MAX_SYMBOLS && tok->words_split) {
            h = hash_ids(w->sym, start, end);
            e = cache_slot(w, start, end, h);
            if (e && e->n_in) {
                for (uint32_t k = 0; k < e->n_out; k++) push_id(w, w->arena[e->out_off + k]);
                start = end;
                continue;
            }
            for (int32_t i = start; i < end; i++) in_ids[i - start] = w->sym[i].id;
        }
        if (end - start > 1) merge_symbols(w, start, end);
        if (w->oom) return;
        if (e) cache_store(w, e, h, start, end, in_ids);
        for (int32_t i = start; i < end; i = w->sym[i].next) push_id(w, w->sym[i].id);
        start = end;
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
            if (*unk_pending) push_symbol(w, tok->unk_id), *unk_pending = false;
            for (size_t i = 0; i < len; i++) push_symbol(w, tok->byte_id[(uint8_t)c[i]]);
            return;
        }
        if (tok->unk_id < 0) return; /* no unk: HF drops the character */
        if (*unk_pending && tok->fuse_unk) return;
        if (*unk_pending) push_symbol(w, tok->unk_id);
        *unk_pending = true;
        return;
    }
    if (*unk_pending) push_symbol(w, tok->unk_id), *unk_pending = false;
    push_symbol(w, id);
}

/* One text segment between added tokens: normalize ("▁" prefix, spaces to "▁"), split into
 * characters, merge. */
static void encode_segment(tok_work *w, const uint8_t *s, size_t n) {
    const p3_tokenizer *tok = w->tok;
    if (n == 0 || w->oom) return;
    /* each byte gives at most one symbol, except a space when "▁" is not in the vocabulary: then
     * it is three byte tokens (the prefix "▁" likewise) */
    size_t need_sym;
    if (!p3_mul_size(n, tok->space_id >= 0 ? 1 : 3, &need_sym) ||
        !p3_add_size(need_sym, 4, &need_sym) ||
        !grow((void **)&w->sym, &w->cap_sym, need_sym, sizeof *w->sym)) {
        w->oom = true;
        return;
    }
    w->n_sym = 0;
    bool unk_pending = false;
    if (tok->prepend_space) add_char(w, SPACE_MARK, 3, &unk_pending);
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t len = utf8_char_len(s + i, n - i, &cp);
        if (len == 0) { /* invalid UTF-8: the byte itself, as byte fallback would give it */
            if (unk_pending) push_symbol(w, tok->unk_id), unk_pending = false;
            int32_t b =
                tok->byte_id[s[i]] >= 0 && tok->byte_fallback ? tok->byte_id[s[i]] : tok->unk_id;
            if (b >= 0) push_symbol(w, b);
            i++;
            continue;
        }
        if (cp == ' ' && tok->replace_spaces)
            add_char(w, SPACE_MARK, 3, &unk_pending);
        else
            add_char(w, (const char *)s + i, len, &unk_pending);
        i += len;
    }
    if (unk_pending) push_symbol(w, tok->unk_id);
    if (w->n_sym == 0) return;
    merge_and_emit(w);
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
        while (c > floor && utf8_is_continuation(s[c])) c--;
        uint32_t cp;
        size_t len = utf8_char_len(s + c, end - c, &cp);
        if (len != start - c || !is_unicode_space(cp)) break;
        start = c;
    }
    return start;
}

static size_t whitespace_run_end(const uint8_t *s, size_t n, size_t from) {
    size_t end = from;
    while (end < n) {
        uint32_t cp;
        size_t len = utf8_char_len(s + end, n - end, &cp);
        if (len == 0 || !is_unicode_space(cp)) break;
        end += len;
    }
    return end;
}

p3_status p3_tokenizer_encode(const p3_tokenizer *tok, const char *text, size_t len, unsigned flags,
                              int32_t **ids, size_t *n_ids, p3_error *err) {
    *ids = NULL;
    *n_ids = 0;
    if (!text && len) return p3_fail(err, PHI3C_ERR_INVALID_ARG, "encode: NULL text");
    if (len > INT32_MAX / 4)
        return p3_fail(err, PHI3C_ERR_INVALID_ARG, "encode: text of %zu bytes is too long", len);
    const uint8_t *s = (const uint8_t *)text;
    tok_work w = {.tok = tok};
    if (tok->words_split && len >= 256) { /* a word cache pays off beyond a short prompt */
        size_t slots = 64;
        while (slots < len / 8 && slots < 65536) slots *= 2;
        w.cache = p3_calloc(slots, sizeof *w.cache);
        w.cache_mask = w.cache ? slots - 1 : 0; /* without memory, simply no cache */
    }
    if ((flags & P3_ENCODE_ADD_BOS) && tok->bos_id >= 0) push_id(&w, tok->bos_id);
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
        push_id(&w, a->id);
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

/* ---- decode ------------------------------------------------------------------------------ */

typedef struct tok_buf {
    char *data;
    size_t len, cap;
    bool oom;
} tok_buf;

static void buf_put(tok_buf *b, const void *p, size_t n) {
    if (b->oom || !grow((void **)&b->data, &b->cap, b->len + n + 1, 1)) {
        b->oom = true;
        return;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static const char REPLACEMENT[] = "\xef\xbf\xbd"; /* U+FFFD */

/* Writes a piece with every "▁" turned into a space. Returns bytes written to out. */
static size_t unescape_piece(const char *p, size_t n, char *out) {
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        if (i + 3 <= n && memcmp(p + i, SPACE_MARK, 3) == 0) {
            out[o++] = ' ';
            i += 3;
        } else {
            out[o++] = p[i++];
        }
    }
    return o;
}

/* HF ByteFallback: a run of byte tokens is its bytes when valid UTF-8, else one U+FFFD per byte. */
static void flush_bytes(tok_buf *b, const uint8_t *run, size_t n) {
    if (!n) return;
    if (p3_utf8_valid((const char *)run, n)) {
        buf_put(b, run, n);
    } else {
        for (size_t i = 0; i < n; i++) buf_put(b, REPLACEMENT, 3);
    }
}

/* HF drops ids it has no token for (e.g. Phi-3's embedding padding rows 32011..32063). */
static bool decode_skips(const p3_tokenizer *tok, int32_t id, unsigned flags) {
    return id >= tok->n_vocab || tok->piece_type[id] == P3_PIECE_NONE ||
           ((flags & P3_DECODE_SKIP_SPECIAL) && tok->special[id]);
}

p3_status p3_tokenizer_decode(const p3_tokenizer *tok, const int32_t *ids, size_t n_ids,
                              unsigned flags, char **text, size_t *len, p3_error *err) {
    *text = NULL;
    *len = 0;
    tok_buf b = {0};
    uint8_t *run = NULL;
    size_t n_run = 0;
    char *piece = p3_malloc(tok->max_piece_len + 1);
    if (n_ids) run = p3_malloc(n_ids);
    if (!piece || (n_ids && !run)) b.oom = true;
    for (size_t i = 0; i < n_ids && !b.oom; i++) {
        int32_t id = ids[i];
        if (id < 0) {
            p3_free(piece);
            p3_free(run);
            p3_free(b.data);
            return p3_fail(err, PHI3C_ERR_INVALID_ARG, "decode: negative token id %ld", (long)id);
        }
        if (decode_skips(tok, id, flags)) continue;
        if (tok->byte_of[id] >= 0) {
            run[n_run++] = (uint8_t)tok->byte_of[id];
            continue;
        }
        flush_bytes(&b, run, n_run);
        n_run = 0;
        size_t n = unescape_piece(piece_ptr(tok, id), tok->piece_len[id], piece);
        buf_put(&b, piece, n);
    }
    flush_bytes(&b, run, n_run);
    buf_put(&b, "", 0);
    p3_free(piece);
    p3_free(run);
    if (b.oom) {
        p3_free(b.data);
        return p3_fail(err, PHI3C_ERR_NOMEM, "decode: out of memory");
    }
    size_t skip = b.len > 0 && b.data[0] == ' ' ? 1 : 0; /* the Strip decoder: one leading space */
    memmove(b.data, b.data + skip, b.len - skip);
    b.len -= skip;
    b.data[b.len] = '\0';
    *text = b.data;
    *len = b.len;
    return PHI3C_OK;
}

/* ---- streaming decode -------------------------------------------------------------------- */

p3_status p3_detok_stream_init(p3_detok_stream *s, const p3_tokenizer *tok, unsigned flags,
                               p3_error *err) {
    memset(s, 0, sizeof *s);
    s->tok = tok;
    s->flags = flags;
    s->at_start = true;
    s->out_cap = tok->max_piece_len + 32;
    s->out = p3_malloc(s->out_cap);
    if (!s->out) return p3_fail(err, PHI3C_ERR_NOMEM, "detokenizer: out of memory");
    return PHI3C_OK;
}

void p3_detok_stream_free(p3_detok_stream *s) {
    p3_free(s->out);
    s->out = NULL;
}

/* Emits pending bytes that form complete characters; invalid leading bytes become U+FFFD. With
 * `final`, an unfinished character is flushed as U+FFFD per byte too. */
static size_t stream_drain(p3_detok_stream *s, char *out, bool final) {
    size_t o = 0;
    while (s->n_pending > 0) {
        uint32_t cp;
        size_t n = (size_t)s->n_pending;
        size_t clen = utf8_char_len(s->pending, n, &cp);
        if (clen == 0) {
            /* is it the valid start of a longer character? then wait for more bytes */
            uint8_t probe[4] = {0};
            memcpy(probe, s->pending, n);
            uint8_t c = probe[0];
            size_t want = (c & 0xE0) == 0xC0   ? 2
                          : (c & 0xF0) == 0xE0 ? 3
                          : (c & 0xF8) == 0xF0 ? 4
                                               : 0;
            bool prefix_ok = want > n;
            for (size_t i = 1; i < n && prefix_ok; i++) prefix_ok = utf8_is_continuation(probe[i]);
            if (prefix_ok && !final) break;
            memcpy(out + o, REPLACEMENT, 3);
            o += 3;
            memmove(s->pending, s->pending + 1, n - 1);
            s->n_pending--;
            continue;
        }
        memcpy(out + o, s->pending, clen);
        o += clen;
        memmove(s->pending, s->pending + clen, n - clen);
        s->n_pending -= (int)clen;
    }
    return o;
}

static void stream_strip(p3_detok_stream *s, const char **text, size_t *len) {
    if (s->at_start && *len > 0) {
        if ((*text)[0] == ' ') (*text)++, (*len)--;
        s->at_start = false;
    }
}

p3_status p3_detok_stream_push(p3_detok_stream *s, int32_t id, const char **text, size_t *len,
                               p3_error *err) {
    const p3_tokenizer *tok = s->tok;
    *text = s->out;
    *len = 0;
    if (id < 0)
        return p3_fail(err, PHI3C_ERR_INVALID_ARG, "decode: negative token id %ld", (long)id);
    if (decode_skips(tok, id, s->flags)) return PHI3C_OK;
    size_t o;
    if (tok->byte_of[id] >= 0) {
        s->pending[s->n_pending++] = (uint8_t)tok->byte_of[id];
        o = stream_drain(s, s->out, false);
    } else {
        o = stream_drain(s, s->out, true);
        o += unescape_piece(piece_ptr(tok, id), tok->piece_len[id], s->out + o);
    }
    *len = o;
    stream_strip(s, text, len);
    return PHI3C_OK;
}

void p3_detok_stream_finish(p3_detok_stream *s, const char **text, size_t *len) {
    *text = s->out;
    *len = s->out ? stream_drain(s, s->out, true) : 0;
    stream_strip(s, text, len);
    s->at_start = true;
}

/* ---- queries ----------------------------------------------------------------------------- */

int32_t p3_tokenizer_vocab_size(const p3_tokenizer *tok) {
    return tok->n_vocab;
}

const char *p3_tokenizer_piece(const p3_tokenizer *tok, int32_t id, size_t *len) {
    if (id < 0 || id >= tok->n_vocab || tok->piece_type[id] == P3_PIECE_NONE) {
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = tok->piece_len[id];
    return piece_ptr(tok, id);
}

int32_t p3_tokenizer_find(const p3_tokenizer *tok, const char *piece, size_t len) {
    return tok_lookup(tok, piece, len);
}

int32_t p3_tokenizer_bos_id(const p3_tokenizer *tok) {
    return tok->bos_id;
}
int32_t p3_tokenizer_eos_id(const p3_tokenizer *tok) {
    return tok->eos_id;
}
int32_t p3_tokenizer_unk_id(const p3_tokenizer *tok) {
    return tok->unk_id;
}
bool p3_tokenizer_add_bos(const p3_tokenizer *tok) {
    return tok->add_bos;
}

bool p3_tokenizer_is_special(const p3_tokenizer *tok, int32_t id) {
    return id >= 0 && id < tok->n_vocab && tok->special[id];
}

size_t p3_tokenizer_stop_ids(const p3_tokenizer *tok, const int32_t **ids) {
    *ids = tok->stop_ids;
    return tok->n_stop_ids;
}

bool p3_tokenizer_is_stop(const p3_tokenizer *tok, int32_t id) {
    for (size_t i = 0; i < tok->n_stop_ids; i++)
        if (tok->stop_ids[i] == id) return true;
    return false;
}
