/* tok_spm.c: reads a SentencePiece tokenizer.model (a ModelProto in protobuf wire format) without a
 * protobuf library: pieces, scores and types, the trainer's model type and special ids, and the
 * normalizer flags. Every length and offset is checked against the buffer. */
#include "tok_internal.h"

#include <string.h>

typedef struct pb_reader {
    const uint8_t *p, *end;
    const char *what;
} pb_reader;

/* One field of a message: its number and wire type, and its value (varint/fixed) or bytes. */
typedef struct pb_field {
    uint32_t number;
    int wire;
    uint64_t value;
    const uint8_t *data;
    size_t len;
} pb_field;

static bool pb_varint(pb_reader *r, uint64_t *out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end) return false;
        uint8_t b = *r->p++;
        v |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return true;
        }
    }
    return false;
}

/* Reads the next field; returns 1 on a field, 0 at the end of the message, -1 on malformed data. */
static int pb_next(pb_reader *r, pb_field *f) {
    if (r->p >= r->end) return 0;
    uint64_t tag;
    if (!pb_varint(r, &tag) || (tag >> 3) == 0 || (tag >> 3) > 0x1FFFFFFF) return -1;
    f->number = (uint32_t)(tag >> 3);
    f->wire = (int)(tag & 7);
    f->data = NULL;
    f->len = 0;
    f->value = 0;
    size_t left = (size_t)(r->end - r->p);
    switch (f->wire) {
    case 0:
        return pb_varint(r, &f->value) ? 1 : -1;
    case 1:
        if (left < 8) return -1;
        for (int i = 7; i >= 0; i--) f->value = f->value << 8 | r->p[i];
        r->p += 8;
        return 1;
    case 5:
        if (left < 4) return -1;
        for (int i = 3; i >= 0; i--) f->value = f->value << 8 | r->p[i];
        r->p += 4;
        return 1;
    case 2: {
        uint64_t n;
        if (!pb_varint(r, &n)) return -1;
        left = (size_t)(r->end - r->p);
        if (n > left) return -1;
        f->data = r->p;
        f->len = (size_t)n;
        r->p += n;
        return 1;
    }
    default:
        return -1; /* groups (3, 4) and reserved types are not used by SentencePiece */
    }
}

static float pb_float(uint64_t bits) {
    uint32_t u = (uint32_t)bits;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

typedef struct spm_info {
    size_t n_pieces;
    int model_type; /* 1 unigram, 2 BPE, 3 word, 4 char */
    int64_t unk_id, bos_id, eos_id, pad_id;
    bool add_dummy_prefix, remove_extra_whitespaces, escape_whitespaces;
    char norm_name[32];
} spm_info;

static p3_status read_trainer(const uint8_t *d, size_t n, spm_info *info, const char *what,
                              p3_error *err) {
    pb_reader r = {d, d + n, what};
    pb_field f;
    int rc;
    while ((rc = pb_next(&r, &f)) > 0) {
        if (f.wire != 0) continue;
        int64_t v = (int64_t)f.value;
        switch (f.number) {
        case 3:
            info->model_type = (int)(int32_t)v;
            break;
        case 40:
            info->unk_id = (int32_t)v;
            break;
        case 41:
            info->bos_id = (int32_t)v;
            break;
        case 42:
            info->eos_id = (int32_t)v;
            break;
        case 43:
            info->pad_id = (int32_t)v;
            break;
        default:
            break;
        }
    }
    if (rc < 0)
        return p3_fail(err, PHI3C_ERR_FORMAT, "%s: malformed trainer_spec in tokenizer.model",
                       what);
    return PHI3C_OK;
}

static p3_status read_normalizer(const uint8_t *d, size_t n, spm_info *info, const char *what,
                                 p3_error *err) {
    pb_reader r = {d, d + n, what};
    pb_field f;
    int rc;
    while ((rc = pb_next(&r, &f)) > 0) {
        if (f.number == 1 && f.wire == 2) {
            size_t len = P3_MIN(f.len, sizeof info->norm_name - 1);
            memcpy(info->norm_name, f.data, len);
            info->norm_name[len] = '\0';
        } else if (f.wire == 0 && f.number == 3) {
            info->add_dummy_prefix = f.value != 0;
        } else if (f.wire == 0 && f.number == 4) {
            info->remove_extra_whitespaces = f.value != 0;
        } else if (f.wire == 0 && f.number == 5) {
            info->escape_whitespaces = f.value != 0;
        }
    }
    if (rc < 0)
        return p3_fail(err, PHI3C_ERR_FORMAT, "%s: malformed normalizer_spec in tokenizer.model",
                       what);
    return PHI3C_OK;
}

/* First pass: count pieces and read the trainer and normalizer specs. */
static p3_status scan_model(const uint8_t *data, size_t len, spm_info *info, const char *what,
                            p3_error *err) {
    pb_reader r = {data, data + len, what};
    pb_field f;
    int rc;
    p3_status st = PHI3C_OK;
    while (st == PHI3C_OK && (rc = pb_next(&r, &f)) > 0) {
        if (f.wire != 2) continue;
        if (f.number == 1)
            info->n_pieces++;
        else if (f.number == 2)
            st = read_trainer(f.data, f.len, info, what, err);
        else if (f.number == 3)
            st = read_normalizer(f.data, f.len, info, what, err);
    }
    if (st != PHI3C_OK) return st;
    if (rc < 0)
        return p3_fail(err, PHI3C_ERR_FORMAT,
                       "%s: not a SentencePiece model (malformed protobuf at byte %zu)", what,
                       (size_t)(r.p - data));
    return PHI3C_OK;
}

static p3_status read_piece(p3_tokenizer *tok, int32_t id, const uint8_t *d, size_t n,
                            p3_error *err) {
    pb_reader r = {d, d + n, tok->what};
    pb_field f;
    int rc;
    const uint8_t *text = NULL;
    size_t text_len = 0;
    float score = 0.0f;
    int type = P3_PIECE_NORMAL;
    while ((rc = pb_next(&r, &f)) > 0) {
        if (f.number == 1 && f.wire == 2)
            text = f.data, text_len = f.len;
        else if (f.number == 2 && f.wire == 5)
            score = pb_float(f.value);
        else if (f.number == 3 && f.wire == 0)
            type = (int)(int32_t)f.value;
    }
    if (rc < 0 || !text)
        return p3_fail(err, PHI3C_ERR_FORMAT, "%s: malformed piece %ld in tokenizer.model",
                       tok->what, (long)id);
    if (type < P3_PIECE_NORMAL || type > P3_PIECE_BYTE)
        return p3_fail(err, PHI3C_ERR_FORMAT, "%s: piece %ld has unknown type %d", tok->what,
                       (long)id, type);
    if (!p3_utf8_valid((const char *)text, text_len))
        return p3_fail(err, PHI3C_ERR_FORMAT, "%s: piece %ld is not valid UTF-8", tok->what,
                       (long)id);
    tok->score[id] = score;
    return tok_set_piece(tok, id, (const char *)text, text_len, type, err);
}

static p3_status check_spm(const spm_info *info, const char *what, p3_error *err) {
    if (info->n_pieces == 0)
        return p3_fail(err, PHI3C_ERR_FORMAT, "%s: tokenizer.model holds no pieces", what);
    if (info->model_type != 2)
        return p3_fail(err, PHI3C_ERR_UNSUPPORTED,
                       "%s: SentencePiece model type %d is not BPE (phi3c reads Phi-3's BPE "
                       "tokenizer only)",
                       what, info->model_type);
    if (info->norm_name[0] && strcmp(info->norm_name, "identity") != 0)
        return p3_fail(err, PHI3C_ERR_UNSUPPORTED,
                       "%s: SentencePiece normalizer '%s' is not supported (Phi-3 uses identity)",
                       what, info->norm_name);
    if (info->remove_extra_whitespaces || !info->escape_whitespaces)
        return p3_fail(err, PHI3C_ERR_UNSUPPORTED,
                       "%s: SentencePiece whitespace options differ from Phi-3's", what);
    return PHI3C_OK;
}

static int32_t spm_id(int64_t id, size_t n) {
    return id >= 0 && (size_t)id < n ? (int32_t)id : -1;
}

p3_status tok_load_spm(const uint8_t *data, size_t len, const char *what, p3_tokenizer **out,
                       p3_error *err) {
    *out = NULL;
    /* proto defaults: unk 0, bos 1, eos 2, pad -1; dummy prefix and whitespace escaping on */
    spm_info info = {.unk_id = 0,
                     .bos_id = 1,
                     .eos_id = 2,
                     .pad_id = -1,
                     .model_type = 1,
                     .add_dummy_prefix = true,
                     .remove_extra_whitespaces = true,
                     .escape_whitespaces = true};
    p3_status st = scan_model(data, len, &info, what, err);
    if (st == PHI3C_OK) st = check_spm(&info, what, err);
    if (st != PHI3C_OK) return st;
    if (info.n_pieces > INT32_MAX)
        return p3_fail(err, PHI3C_ERR_FORMAT, "%s: too many pieces", what);
    p3_tokenizer *tok;
    st = tok_new(what, (int32_t)info.n_pieces, &tok, err);
    if (st != PHI3C_OK) return st;
    tok->score = p3_calloc(info.n_pieces, sizeof *tok->score);
    if (!tok->score) st = p3_fail(err, PHI3C_ERR_NOMEM, "%s: out of memory", what);
    pb_reader r = {data, data + len, what};
    pb_field f;
    int32_t id = 0;
    while (st == PHI3C_OK && pb_next(&r, &f) > 0)
        if (f.number == 1 && f.wire == 2) st = read_piece(tok, id++, f.data, f.len, err);
    if (st == PHI3C_OK) st = tok_index_pieces(tok, err);
    /* HF's slow LlamaTokenizer matches the control and user-defined pieces (<unk>, <s>, </s>) in
     * text; none of them strips whitespace. */
    for (int32_t i = 0; i < tok->n_vocab && st == PHI3C_OK; i++) {
        int type = tok->piece_type[i];
        if (type == P3_PIECE_CONTROL || type == P3_PIECE_UNKNOWN || type == P3_PIECE_USER_DEFINED)
            st = tok_add_added(tok, i, false, false, type != P3_PIECE_USER_DEFINED, err);
    }
    if (st == PHI3C_OK) tok_merges_defer(tok);
    if (st == PHI3C_OK) {
        tok->prepend_space = info.add_dummy_prefix;
        tok->unk_id = spm_id(info.unk_id, info.n_pieces);
        tok->bos_id = spm_id(info.bos_id, info.n_pieces);
        tok->eos_id = spm_id(info.eos_id, info.n_pieces);
        tok->pad_id = spm_id(info.pad_id, info.n_pieces);
        tok->add_bos = true; /* LlamaTokenizer's default when no tokenizer_config says otherwise */
        st = tok_finish(tok, err);
    }
    if (st != PHI3C_OK) {
        p3_tokenizer_free(tok);
        return st;
    }
    *out = tok;
    return PHI3C_OK;
}
