/* tok_decode.c: ids -> text as HF decodes, whole or streamed token by token without ever
 * splitting a UTF-8 character. SentencePiece pieces: "▁" -> " ", byte-fallback runs fused (one
 * U+FFFD per byte of an invalid run), one leading space stripped. Byte-level BPE pieces (held as
 * raw bytes): concatenated, then made UTF-8 as Rust's from_utf8_lossy does (one U+FFFD per
 * maximal invalid subpart). */
#include "tok_encode.h"

typedef struct tok_buf {
    char *data;
    size_t len, cap;
    bool oom;
} tok_buf;

static void buf_put(tok_buf *b, const void *p, size_t n) {
    if (b->oom || !tok_grow((void **)&b->data, &b->cap, b->len + n + 1, 1)) {
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
        if (i + 3 <= n && memcmp(p + i, TOK_SPACE_MARK, TOK_SPACE_MARK_LEN) == 0) {
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

/* ---- byte-level: raw bytes to UTF-8, lossy as Rust's String::from_utf8_lossy */

/* Length of the character a lead byte starts, 0 for a byte that starts none. */
static unsigned utf8_need(uint8_t c) {
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return 2;
    if (c >= 0xE0 && c <= 0xEF) return 3;
    if (c >= 0xF0 && c <= 0xF4) return 4;
    return 0;
}

/* Whether c can be byte k (1..3) of a character led by `lead` (no overlong forms, surrogates or
 * code points above U+10FFFF). */
static bool utf8_cont_ok(uint8_t lead, unsigned k, uint8_t c) {
    uint8_t lo = 0x80, hi = 0xBF;
    if (k == 1 && lead == 0xE0) lo = 0xA0;
    if (k == 1 && lead == 0xED) hi = 0x9F;
    if (k == 1 && lead == 0xF0) lo = 0x90;
    if (k == 1 && lead == 0xF4) hi = 0x8F;
    return c >= lo && c <= hi;
}

/* Writes in[0..n) to out as valid UTF-8 (out holds 3 bytes per input byte): each maximal prefix
 * of a character that cannot complete becomes one U+FFFD. Unless `final`, an unfinished character
 * at the end is left unread. Returns the bytes written; *used the bytes read. */
static size_t utf8_lossy(const uint8_t *in, size_t n, bool final, char *out, size_t *used) {
    size_t o = 0, i = 0;
    while (i < n) {
        unsigned need = utf8_need(in[i]), k = 1;
        while (need && k < need && i + k < n && utf8_cont_ok(in[i], k, in[i + k])) k++;
        if (need && k == need) {
            memcpy(out + o, in + i, need);
            o += need;
        } else if (need && i + k == n && !final) {
            break; /* may still complete */
        } else {
            memcpy(out + o, REPLACEMENT, 3);
            o += 3;
        }
        i += k;
    }
    *used = i;
    return o;
}

static p3_status decode_bytelevel_text(const p3_tokenizer *tok, const int32_t *ids, size_t n_ids,
                                       unsigned flags, char **text, size_t *len, p3_error *err) {
    tok_buf raw = {0}, b = {0};
    for (size_t i = 0; i < n_ids && !raw.oom; i++) {
        if (ids[i] < 0) {
            p3_free(raw.data);
            return p3_fail(err, PHI3C_ERR_INVALID_ARG, "decode: negative token id %ld",
                           (long)ids[i]);
        }
        if (!decode_skips(tok, ids[i], flags))
            buf_put(&raw, tok_piece(tok, ids[i]), tok->piece_len[ids[i]]);
    }
    size_t cap = 0, used;
    if (raw.oom || !p3_mul_size(raw.len, 3, &cap) ||
        !tok_grow((void **)&b.data, &b.cap, cap + 1, 1)) {
        p3_free(raw.data);
        p3_free(b.data);
        return p3_fail(err, PHI3C_ERR_NOMEM, "decode: out of memory");
    }
    b.len = utf8_lossy((const uint8_t *)raw.data, raw.len, true, b.data, &used);
    b.data[b.len] = '\0';
    p3_free(raw.data);
    *text = b.data;
    *len = b.len;
    return PHI3C_OK;
}

p3_status p3_tokenizer_decode(const p3_tokenizer *tok, const int32_t *ids, size_t n_ids,
                              unsigned flags, char **text, size_t *len, p3_error *err) {
    *text = NULL;
    *len = 0;
    tok_buf b = {0};
    if (tok->model == TOK_MODEL_BYTE_BPE)
        return decode_bytelevel_text(tok, ids, n_ids, flags, text, len, err);
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
        size_t n = unescape_piece(tok_piece(tok, id), tok->piece_len[id], piece);
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
    s->at_start = tok->model != TOK_MODEL_BYTE_BPE; /* byte-level decoding strips nothing */
    s->out_cap = tok->max_piece_len + 32;
    if (tok->model == TOK_MODEL_BYTE_BPE) /* U+FFFD per byte at worst, then the input scratch */
        s->out_cap = 4 * (tok->max_piece_len + 4);
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
        size_t clen = p3_utf8_decode(s->pending, n, &cp);
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
            for (size_t i = 1; i < n && prefix_ok; i++)
                prefix_ok = p3_utf8_is_continuation(probe[i]);
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

/* Byte-level: the pending bytes of an unfinished character, then the piece, through utf8_lossy
 * into s->out; an unfinished character at the end waits in s->pending. */
static size_t stream_bytelevel(p3_detok_stream *s, const char *piece, size_t n, bool final) {
    size_t in_cap = s->tok->max_piece_len + 4;
    uint8_t *in = (uint8_t *)s->out + 3 * in_cap; /* scratch after the output room */
    size_t n_in = (size_t)s->n_pending;
    memcpy(in, s->pending, n_in);
    memcpy(in + n_in, piece, n);
    n_in += n;
    size_t used, o = utf8_lossy(in, n_in, final, s->out, &used);
    s->n_pending = (int)(n_in - used); /* at most 3: an unfinished character */
    memcpy(s->pending, in + used, n_in - used);
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
    if (tok->model == TOK_MODEL_BYTE_BPE) {
        *len = stream_bytelevel(s, tok_piece(tok, id), tok->piece_len[id], false);
        return PHI3C_OK;
    }
    size_t o;
    if (tok->byte_of[id] >= 0) {
        s->pending[s->n_pending++] = (uint8_t)tok->byte_of[id];
        o = stream_drain(s, s->out, false);
    } else {
        o = stream_drain(s, s->out, true);
        o += unescape_piece(tok_piece(tok, id), tok->piece_len[id], s->out + o);
    }
    *len = o;
    stream_strip(s, text, len);
    return PHI3C_OK;
}

void p3_detok_stream_finish(p3_detok_stream *s, const char **text, size_t *len) {
    *text = s->out;
    if (s->tok->model == TOK_MODEL_BYTE_BPE) {
        *len = s->out ? stream_bytelevel(s, "", 0, true) : 0;
        return;
    }
    *len = s->out ? stream_drain(s, s->out, true) : 0;
    stream_strip(s, text, len);
    s->at_start = true;
}
