/* tokenizer.h: Phi-3's SentencePiece-style BPE tokenizer, identical to HF's fast tokenizer: loading
 * (tokenizer.json + tokenizer_config.json, tokenizer.model, GGUF tokenizer.ggml.* metadata, or the
 * same bytes held in memory), encode, decode, a streaming decoder and the chat template. */
#ifndef P3_TOKENIZER_H
#define P3_TOKENIZER_H

#include "p3.h"

typedef struct p3_tokenizer p3_tokenizer;
struct p3_gguf; /* loaders/gguf.h */

/* The raw tokenizer files, from a folder or from a container that stores their bytes (the native
 * .phi3c file). Any pointer may be NULL (len 0): tokenizer_json or spm_model must be present;
 * tokenizer.json wins when both are. `what` names the container in error messages. */
typedef struct p3_tokenizer_files {
    const char *what;
    const char *tokenizer_json;
    size_t tokenizer_json_len;
    const char *tokenizer_config_json;
    size_t tokenizer_config_json_len;
    const char *generation_config_json;
    size_t generation_config_json_len;
    const uint8_t *spm_model; /* tokenizer.model (SentencePiece ModelProto) */
    size_t spm_model_len;
} p3_tokenizer_files;

/* Loads whatever `path` is: a folder (tokenizer.json [+ tokenizer_config.json,
 * generation_config.json], or only tokenizer.model), a .gguf file, a native .phi3c file, or a
 * tokenizer.json / tokenizer.model file (its folder is read). */
p3_status p3_tokenizer_load_path(const char *path, p3_tokenizer **out, p3_error *err);
p3_status p3_tokenizer_load_dir(const char *dir, p3_tokenizer **out, p3_error *err);
p3_status p3_tokenizer_load_buffers(const p3_tokenizer_files *files, p3_tokenizer **out,
                                    p3_error *err);
/* From a parsed GGUF's tokenizer.ggml.* metadata (model "llama" only; "gpt2" is refused). */
p3_status p3_tokenizer_load_gguf(const struct p3_gguf *gguf, const char *what, p3_tokenizer **out,
                                 p3_error *err);
/* From an opened native .phi3c file (src->native): its blobs named tokenizer.json,
 * tokenizer_config.json, generation_config.json and tokenizer.model, or tokenizer.gguf (a GGUF
 * source's tokenizer metadata). */
struct p3_native;
p3_status p3_tokenizer_load_native(const struct p3_native *nat, const char *what,
                                   p3_tokenizer **out, p3_error *err);
/* The tokenizer of an opened model (loaders/source.h): its native blobs, GGUF metadata or
 * tokenizer folder. What run/chat use after p3_source_open. */
struct p3_model_source;
p3_status p3_tokenizer_load_source(const struct p3_model_source *src, p3_tokenizer **out,
                                   p3_error *err);
void p3_tokenizer_free(p3_tokenizer *tok);

/* Encode flags. Special tokens written in the text are recognised (HF's default) unless
 * P3_ENCODE_NO_SPECIAL, which, like HF's split_special_tokens, leaves only the added tokens that
 * are not marked special (e.g. the current tokenizer's "</s>") recognisable. BOS is added only with
 * P3_ENCODE_ADD_BOS (callers that follow tokenizer_config use p3_tokenizer_add_bos). */
enum { P3_ENCODE_ADD_BOS = 1u, P3_ENCODE_NO_SPECIAL = 2u };
/* Text bytes to ids in a new p3_malloc'd array (free with p3_free; NULL when *n_ids == 0).
 * Invalid UTF-8 bytes become their byte-fallback tokens <0xXX>, as HF would for those bytes. */
p3_status p3_tokenizer_encode(const p3_tokenizer *tok, const char *text, size_t len, unsigned flags,
                              int32_t **ids, size_t *n_ids, p3_error *err);

/* Decode flags: P3_DECODE_SKIP_SPECIAL drops the added tokens marked special (HF's
 * skip_special_tokens). */
enum { P3_DECODE_SKIP_SPECIAL = 1u };
/* Ids to UTF-8 text (NUL-terminated, p3_malloc'd) exactly as HF decodes: "▁" -> " ", runs of byte
 * tokens fused (one U+FFFD per byte when a run is not valid UTF-8), one leading space stripped.
 * Ids without a token (at or above the vocabulary size, such as Phi-3's embedding padding rows
 * 32011..32063) decode to nothing, as in HF; a negative id is an error. */
p3_status p3_tokenizer_decode(const p3_tokenizer *tok, const int32_t *ids, size_t n_ids,
                              unsigned flags, char **text, size_t *len, p3_error *err);

/* Streaming decoder for token-by-token printing: each push returns the bytes that became final
 * (never a partial UTF-8 character). The concatenation of all outputs plus the finish equals
 * p3_tokenizer_decode whenever every byte-token run is valid UTF-8; an invalid byte becomes one
 * U+FFFD. Allocates only in init. */
typedef struct p3_detok_stream {
    const p3_tokenizer *tok;
    unsigned flags;
    bool at_start;      /* the leading space of the text is still to be stripped */
    uint8_t pending[4]; /* bytes of an unfinished UTF-8 character */
    int n_pending;
    char *out; /* the last returned text */
    size_t out_cap;
} p3_detok_stream;
p3_status p3_detok_stream_init(p3_detok_stream *s, const p3_tokenizer *tok, unsigned flags,
                               p3_error *err);
p3_status p3_detok_stream_push(p3_detok_stream *s, int32_t id, const char **text, size_t *len,
                               p3_error *err);
/* Flushes an unfinished character (as U+FFFD per byte) and resets the stream for a new text. */
void p3_detok_stream_finish(p3_detok_stream *s, const char **text, size_t *len);
void p3_detok_stream_free(p3_detok_stream *s);

/* What kind of tokenizer: "SentencePiece BPE" (Phi-3) or "byte-level BPE (o200k split)"
 * (Phi-4-mini). */
const char *p3_tokenizer_type_name(const p3_tokenizer *tok);

/* Vocabulary queries. */
int32_t p3_tokenizer_vocab_size(const p3_tokenizer *tok); /* highest id + 1 */
/* The piece text as stored in the vocabulary ("▁the", "<0x0A>", "<|end|>"); NULL for ids without
 * a piece. */
const char *p3_tokenizer_piece(const p3_tokenizer *tok, int32_t id, size_t *len);
/* Id of an exact piece text, or -1. */
int32_t p3_tokenizer_find(const p3_tokenizer *tok, const char *piece, size_t len);
int32_t p3_tokenizer_bos_id(const p3_tokenizer *tok); /* -1 when none */
int32_t p3_tokenizer_eos_id(const p3_tokenizer *tok);
int32_t p3_tokenizer_unk_id(const p3_tokenizer *tok);
bool p3_tokenizer_add_bos(const p3_tokenizer *tok); /* tokenizer_config's add_bos_token */
bool p3_tokenizer_is_special(const p3_tokenizer *tok, int32_t id);
/* Ids that end generation: generation_config.json's eos_token_id list when given, else the eos
 * id plus <|end|> and <|endoftext|> when present. */
size_t p3_tokenizer_stop_ids(const p3_tokenizer *tok, const int32_t **ids);
bool p3_tokenizer_is_stop(const p3_tokenizer *tok, int32_t id);

/* Chat formats phi3c can render without a template engine. */
typedef enum p3_chat_format {
    P3_CHAT_UNKNOWN =
        0,          /* a template string phi3c does not recognise (or none and no Phi-3 tokens) */
    P3_CHAT_PHI3,   /* <|system|>\n..<|end|>\n<|user|>\n..<|end|>\n<|assistant|>\n (current) */
    P3_CHAT_PHI3_5, /* as P3_CHAT_PHI3 but an empty system message is left out */
    P3_CHAT_PHI3_APR2024, /* {{bos}} then <|user|>\n..<|end|>\n<|assistant|>\n; no system role */
    P3_CHAT_PHI3_MEDIUM,  /* as APR2024 without the BOS text */
    P3_CHAT_PHI4,         /* Phi-4-mini: <|system|>..<|end|><|user|>..<|end|><|assistant|> */
} p3_chat_format;

typedef struct p3_chat_message {
    const char *role; /* "system", "user" or "assistant" */
    const char *content;
} p3_chat_message;

p3_chat_format p3_tokenizer_chat_format(const p3_tokenizer *tok);
const char *p3_chat_format_name(p3_chat_format format); /* "Phi-3", ..., "unknown" */
/* Renders messages exactly as the detected template would (add_generation_prompt as in HF's
 * apply_chat_template). The text holds any BOS the template writes: encode it with flags 0 (no
 * P3_ENCODE_ADD_BOS). Fails with a clear message when the template is unknown. */
p3_status p3_tokenizer_apply_chat(const p3_tokenizer *tok, const p3_chat_message *messages,
                                  size_t n_messages, bool add_generation_prompt, char **text,
                                  size_t *len, p3_error *err);

#endif /* P3_TOKENIZER_H */
