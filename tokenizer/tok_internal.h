/* tok_internal.h: the tokenizer object shared by the loaders (tok_hf.c, tok_spm.c, tok_gguf.c),
 * the vocabulary and merge tables (tok_vocab.c, tok_spm_merges.c), encoding (tok_encode.c: added
 * tokens and the BPE merge loop; tok_spm_encode.c: SentencePiece normalization), decoding
 * (tok_decode.c) and the chat template (tok_chat.c). A byte-level BPE model plugs in as another
 * segment encoder next to tok_spm_encode.c, with its own decode of pieces in tok_decode.c. */
#ifndef P3_TOK_INTERNAL_H
#define P3_TOK_INTERNAL_H

#include "tokenizer.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

/* U+2581 "▁", SentencePiece's word-start mark that stands for a space. */
#define TOK_SPACE_MARK     "\xe2\x96\x81"
#define TOK_SPACE_MARK_LEN 3

/* SentencePiece piece types (same numbers in tokenizer.model and GGUF token_type). */
enum {
    P3_PIECE_NONE = 0, /* id without a piece (gaps between base vocab and added tokens) */
    P3_PIECE_NORMAL = 1,
    P3_PIECE_UNKNOWN = 2,
    P3_PIECE_CONTROL = 3,
    P3_PIECE_USER_DEFINED = 4,
    P3_PIECE_UNUSED = 5,
    P3_PIECE_BYTE = 6,
};

typedef struct tok_added {
    int32_t id;
    uint32_t off, len; /* content in the piece pool */
    bool lstrip, rstrip, special;
} tok_added;

/* Open-addressing hash slot of the merge table: (left, right) -> rank, result. */
typedef struct tok_merge_slot {
    uint64_t key; /* (left << 32 | right) + 1; 0 marks an empty slot */
    int32_t rank;
    int32_t result;
} tok_merge_slot;

/* The model that turns text between added tokens into ids. */
typedef enum tok_model {
    TOK_MODEL_SPM = 0,      /* SentencePiece-style BPE: "▁" for spaces, <0xXX> byte fallback */
    TOK_MODEL_BYTE_BPE = 1, /* byte-level BPE after the o200k split (Phi-4-mini) */
} tok_model;

struct p3_tokenizer {
    char *what; /* file name for messages */
    tok_model model;
    /* byte-level BPE: pieces are stored as their raw bytes (not in the byte-level alphabet);
     * ignore_merges: a pre-tokenized chunk that is itself a piece is taken whole (HF's
     * ignore_merges, tiktoken's behaviour) */
    bool ignore_merges;
    int32_t n_vocab;
    /* pieces: id -> bytes in pool */
    uint32_t *piece_off, *piece_len;
    uint8_t *piece_type;
    float *score;     /* SentencePiece scores (SPM and GGUF sources), else NULL */
    bool *special;    /* added token marked special */
    int16_t *byte_of; /* id -> byte value of a <0xXX> token, or -1 */
    char *pool;
    size_t pool_len, pool_cap;
    /* piece -> id hash (open addressing, power-of-two size, -1 empty) */
    int32_t *piece_hash;
    size_t piece_hash_mask;
    int32_t byte_id[256];  /* byte value -> id of <0xXX>, -1 when absent */
    int32_t ascii_id[128]; /* single-byte piece -> id, -1 when absent (fast path) */
    int32_t space_id;      /* id of "▁" */
    bool words_split;      /* no piece has "▁" after another character: merge word by word */
    size_t max_piece_len;
    /* merges */
    tok_merge_slot *merges;
    size_t merge_mask;
    size_t n_merges;
    /* SentencePiece sources (tokenizer.model, GGUF) derive their merges on the first encode
     * (tok_merges_ready), so whatever never encodes (run --prompt-ids, detokenize) never pays for
     * them. merges_state is TOK_MERGES_*; the lock orders the one derivation between threads. */
    atomic_int merges_state;
    pthread_mutex_t merges_lock;
    p3_error merges_error; /* why the derivation failed (TOK_MERGES_FAILED) */
    /* added tokens, longest first within each first byte */
    tok_added *added;
    size_t n_added;
    uint8_t added_first[32]; /* bitset of first bytes of added tokens */
    /* normalizer and special ids */
    bool prepend_space;  /* Prepend "▁" to each non-empty segment */
    bool replace_spaces; /* " " -> "▁" */
    int32_t bos_id, eos_id, unk_id, pad_id;
    bool add_bos, add_eos;
    bool fuse_unk;
    bool byte_fallback; /* unknown characters become <0xXX> tokens */
    int32_t stop_ids[16];
    size_t n_stop_ids;
    p3_chat_format chat_format;
    bool have_chat_template; /* a template string was given (known or not) */
};

/* Bytes of piece `id` (tok->piece_len[id] of them) in the pool. */
static inline const char *tok_piece(const p3_tokenizer *tok, int32_t id) {
    return tok->pool + tok->piece_off[id];
}

/* FNV-1a over a piece's bytes: the piece index's hash, computable one byte at a time. */
#define TOK_HASH_BASIS 2166136261u
static inline uint32_t tok_hash_step(uint32_t h, uint8_t byte) {
    return (h ^ byte) * 16777619u;
}

static inline uint64_t tok_merge_key(int32_t left, int32_t right) {
    return ((uint64_t)(uint32_t)left << 32 | (uint32_t)right) + 1;
}

/* Mixes all 64 key bits into the low ones (both ids matter; a plain multiply would leave the
 * left id's high bits out of the slot index). */
static inline size_t tok_merge_hash(uint64_t key, size_t mask) {
    key ^= key >> 31;
    key *= 0x9E3779B97F4A7C15ull;
    key ^= key >> 29;
    return (size_t)key & mask;
}

/* The merge slot of (left, right), NULL when they do not merge. Inline: the encoder's hot path. */
static inline const tok_merge_slot *tok_merge_find(const p3_tokenizer *tok, int32_t left,
                                                   int32_t right) {
    if (!tok->merges) return NULL;
    uint64_t key = tok_merge_key(left, right);
    for (size_t i = tok_merge_hash(key, tok->merge_mask);; i = (i + 1) & tok->merge_mask) {
        const tok_merge_slot *s = &tok->merges[i];
        if (s->key == key) return s;
        if (s->key == 0) return NULL;
    }
}

/* ---- characters (UTF-8 itself: p3_utf8_decode in common/) */

/* Rust's char::is_whitespace (Unicode White_Space), which HF uses for lstrip/rstrip. */
bool tok_is_unicode_space(uint32_t cp);

/* Building (tok_vocab.c). tok_new allocates n_vocab empty ids. */
p3_status tok_new(const char *what, int32_t n_vocab, p3_tokenizer **out, p3_error *err);
p3_status tok_set_piece(p3_tokenizer *tok, int32_t id, const char *s, size_t len, int type,
                        p3_error *err);
/* Registers an added token matched in text; its piece must already be set. */
p3_status tok_add_added(p3_tokenizer *tok, int32_t id, bool lstrip, bool rstrip, bool special,
                        p3_error *err);
/* Builds the piece -> id hash; call after all pieces are set and before merges. When two ids hold
 * the same piece, the lower id is the one found. */
p3_status tok_index_pieces(p3_tokenizer *tok, p3_error *err);
p3_status tok_merges_reserve(p3_tokenizer *tok, size_t n, p3_error *err);
/* Adds merge (left, right) with the given rank; result is the id of left+right, which must exist.
 */
p3_status tok_add_merge(p3_tokenizer *tok, int32_t left, int32_t right, int32_t rank,
                        p3_error *err);
/* Rank and result of merging (left, right); false when they do not merge. */
bool tok_merge_get(const p3_tokenizer *tok, int32_t left, int32_t right, int32_t *rank,
                   int32_t *result);
enum { TOK_MERGES_READY = 0, TOK_MERGES_PENDING = 1, TOK_MERGES_FAILED = 2 };
/* Marks the merges to be derived from the scores on the first encode (tok_spm_merges.c). */
void tok_merges_defer(p3_tokenizer *tok);
/* Derives deferred merges once (thread-safe); PHI3C_OK when the merge table is usable. */
p3_status tok_merges_ready(const p3_tokenizer *tok, p3_error *err);
/* Derives merges from SentencePiece scores (tok_spm_merges.c) the way HF's converter does (every
 * split of a piece into two pieces; ordered by score descending, then piece id, then left id, right
 * id). */
p3_status tok_merges_from_scores(p3_tokenizer *tok, p3_error *err);
/* Final checks and derived tables (stop ids, byte ids, special ids). */
p3_status tok_finish(p3_tokenizer *tok, p3_error *err);
/* Stop ids when no generation_config.json gives them: eos, <|end|>, <|endoftext|>. */
void tok_default_stops(p3_tokenizer *tok);
/* Id of an exact piece, -1 when absent. */
int32_t tok_lookup(const p3_tokenizer *tok, const char *s, size_t len);
/* The same with the piece's hash already computed (TOK_HASH_BASIS stepped over its bytes). */
int32_t tok_lookup_hashed(const p3_tokenizer *tok, const char *s, size_t len, uint32_t hash);
/* Sets the chat format from a template string (NULL: none given). */
void tok_detect_chat(p3_tokenizer *tok, const char *tmpl, size_t len);

/* Loaders: tokenizer.model (tok_spm.c); tokenizer.json and the two config files (tok_hf.c). */
p3_status tok_load_spm(const uint8_t *data, size_t len, const char *what, p3_tokenizer **out,
                       p3_error *err);
p3_status tok_load_hf_json(const char *json, size_t len, const char *what, p3_tokenizer **out,
                           p3_error *err);
/* A GGUF file's tokenizer (tok_gguf.c) and a native .phi3c file's stored tokenizer files. */
p3_status tok_load_gguf_file(const char *path, p3_tokenizer **out, p3_error *err);
p3_status tok_load_native_file(const char *path, p3_tokenizer **out, p3_error *err);
/* Applies tokenizer_config.json (add_bos_token, special token names, chat template) and
 * generation_config.json (stop ids); either may be NULL. */
p3_status tok_apply_configs(p3_tokenizer *tok, const char *config, size_t config_len,
                            const char *generation, size_t generation_len, p3_error *err);

#endif /* P3_TOK_INTERNAL_H */
