/* tok_vocab.c: the tables every tokenizer model shares: pieces (id -> bytes, bytes -> id), the
 * merge table ((left, right) -> rank, result), added tokens, special and stop ids, and the
 * public vocabulary queries. */
#include "tok_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOK_MAX_VOCAB (1 << 24)

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
    /* the pool exists even when every piece is empty: piece pointers are never NULL + 0 */
    tok->pool_cap = 4096;
    tok->pool = p3_malloc(tok->pool_cap);
    if (!tok->what || !tok->piece_off || !tok->piece_len || !tok->piece_type || !tok->special ||
        !tok->byte_of || !tok->pool) {
        p3_tokenizer_free(tok);
        return p3_fail(err, PHI3C_ERR_NOMEM, "%s: out of memory for %ld tokens", what, (long)n);
    }
    for (size_t i = 0; i < n; i++) tok->byte_of[i] = -1;
    tok->bos_id = tok->eos_id = tok->unk_id = tok->pad_id = -1;
    tok->space_id = -1;
    tok->prepend_space = tok->replace_spaces = true;
    tok->fuse_unk = true;
    tok->byte_fallback = true;
    pthread_mutex_init(&tok->merges_lock, NULL);
    atomic_init(&tok->merges_state, TOK_MERGES_READY);
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
    pthread_mutex_destroy(&tok->merges_lock);
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
        size_t cap = tok->pool_cap;
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
    tok->byte_of[id] = (int16_t)(tok->model == TOK_MODEL_SPM ? parse_byte_piece(s, len) : -1);
    if (len > tok->max_piece_len) tok->max_piece_len = len;
    return PHI3C_OK;
}

static uint32_t hash_bytes(const char *s, size_t len) {
    uint32_t h = TOK_HASH_BASIS;
    for (size_t i = 0; i < len; i++) h = tok_hash_step(h, (uint8_t)s[i]);
    return h;
}

int32_t tok_lookup_hashed(const p3_tokenizer *tok, const char *s, size_t len, uint32_t hash) {
    if (!tok->piece_hash) return -1;
    for (size_t i = hash & tok->piece_hash_mask;; i = (i + 1) & tok->piece_hash_mask) {
        int32_t id = tok->piece_hash[i];
        if (id < 0) return -1;
        if (tok->piece_len[id] == len && memcmp(tok_piece(tok, id), s, len) == 0) return id;
    }
}

int32_t tok_lookup(const p3_tokenizer *tok, const char *s, size_t len) {
    return tok_lookup_hashed(tok, s, len, hash_bytes(s, len));
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
        const char *s = tok_piece(tok, id);
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
    tok->space_id = tok_lookup(tok, TOK_SPACE_MARK, TOK_SPACE_MARK_LEN);
    return PHI3C_OK;
}

/* ---- merges ------------------------------------------------------------------------------ */

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

bool tok_merge_get(const p3_tokenizer *tok, int32_t left, int32_t right, int32_t *rank,
                   int32_t *result) {
    const tok_merge_slot *m = tok_merge_find(tok, left, right);
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
    memcpy(buf, tok_piece(tok, left), ll);
    memcpy(buf + ll, tok_piece(tok, right), rl);
    int32_t result = tok_lookup(tok, buf, ll + rl);
    if (buf != stack_buf) p3_free(buf);
    if (result < 0)
        return p3_fail(err, PHI3C_ERR_FORMAT,
                       "%s: merge %ld of tokens %ld and %ld makes a piece not in the vocabulary",
                       tok->what, (long)rank, (long)left, (long)right);
    uint64_t key = tok_merge_key(left, right);
    size_t i = tok_merge_hash(key, tok->merge_mask);
    while (tok->merges[i].key != 0 && tok->merges[i].key != key) i = (i + 1) & tok->merge_mask;
    if (tok->merges[i].key == 0) tok->n_merges++;
    /* a repeated pair takes its later rank, as HF's merge map (built by collecting) does */
    tok->merges[i] = (tok_merge_slot){key, rank, result};
    return PHI3C_OK;
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
        const char *p = tok_piece(tok, id);
        size_t len = tok->piece_len[id];
        for (size_t k = 1; k + 3 <= len; k++)
            if (memcmp(p + k, TOK_SPACE_MARK, TOK_SPACE_MARK_LEN) == 0 &&
                (k < 3 || memcmp(p + k - 3, TOK_SPACE_MARK, TOK_SPACE_MARK_LEN)))
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

/* ---- queries ----------------------------------------------------------------------------- */

const char *p3_tokenizer_type_name(const p3_tokenizer *tok) {
    return tok->model == TOK_MODEL_BYTE_BPE ? "byte-level BPE (o200k split)" : "SentencePiece BPE";
}

int32_t p3_tokenizer_vocab_size(const p3_tokenizer *tok) {
    return tok->n_vocab;
}

const char *p3_tokenizer_piece(const p3_tokenizer *tok, int32_t id, size_t *len) {
    if (id < 0 || id >= tok->n_vocab || tok->piece_type[id] == P3_PIECE_NONE) {
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = tok->piece_len[id];
    return tok_piece(tok, id);
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
