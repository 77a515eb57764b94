/* gguf.h: the GGUF v2/v3 container reader: metadata of every type (nested arrays included)
 * readable in place, tensor infos checked against the file and presented as p3_tensors in HF
 * shape order (hf_name is the file's name here; gguf_phi3.h maps Phi-3's to transformers'). */
#ifndef P3_LOADERS_GGUF_H
#define P3_LOADERS_GGUF_H

#include "source.h"

/* GGUF metadata value types (the numbers are the file format's). */
typedef enum p3_gguf_type {
    P3_GGUF_U8 = 0,
    P3_GGUF_I8 = 1,
    P3_GGUF_U16 = 2,
    P3_GGUF_I16 = 3,
    P3_GGUF_U32 = 4,
    P3_GGUF_I32 = 5,
    P3_GGUF_F32 = 6,
    P3_GGUF_BOOL = 7,
    P3_GGUF_STRING = 8,
    P3_GGUF_ARRAY = 9,
    P3_GGUF_U64 = 10,
    P3_GGUF_I64 = 11,
    P3_GGUF_F64 = 12,
    P3_GGUF_TYPE_COUNT
} p3_gguf_type;

/* A string inside the mapped file: NOT NUL-terminated, use len. */
typedef struct p3_gguf_str {
    const char *s;
    size_t len;
} p3_gguf_str;

typedef struct p3_gguf_value p3_gguf_value;
struct p3_gguf_value {
    p3_gguf_type type;
    union {
        uint64_t u; /* U8, U16, U32, U64, BOOL (0/1) */
        int64_t i;  /* I8, I16, I32, I64 */
        double f;   /* F32, F64 */
        p3_gguf_str str;
        struct {
            p3_gguf_type elem; /* element type */
            size_t count;
            const uint8_t *data;        /* numeric/bool elements: raw little-endian, in place */
            const p3_gguf_str *strings; /* elem == STRING: count views into the file */
            const p3_gguf_value *items; /* elem == ARRAY: count nested arrays */
        } arr;
    } v;
};

typedef struct p3_gguf_kv {
    p3_gguf_str key; /* valid UTF-8 (checked) */
    p3_gguf_value value;
} p3_gguf_kv;

typedef struct p3_gguf {
    uint32_t version; /* 2 or 3 */
    size_t alignment; /* general.alignment or 32 */
    p3_gguf_kv *kvs;  /* in file order */
    size_t n_kvs;
    p3_tensor *tensors; /* HF-order shapes, hf_name mapped from llama.cpp names */
    size_t n_tensors;
    uint64_t data_offset; /* start of the tensor data section */
    void *arena;          /* private: owns string/array tables */
} p3_gguf;

/* Parses a GGUF file held in memory (the bytes must outlive the result). Checks every count,
 * length, dimension product and offset against the size before allocating; refuses tensor types
 * phi3c cannot read, naming them. `what` names the file in messages. */
p3_status p3_gguf_parse(const uint8_t *data, size_t size, const char *what, p3_gguf **out,
                        p3_error *err);
void p3_gguf_free(p3_gguf *g);

/* "UINT32", "STRING", "ARRAY", ... */
const char *p3_gguf_type_name(p3_gguf_type type);
/* Bytes of one scalar of type t as stored in GGUF; 0 for strings, arrays and unknown types. */
size_t p3_gguf_scalar_size(p3_gguf_type t);
/* The ggml tensor type name for a raw type id ("Q4_K", "IQ2_XXS", ...), "?" if unknown. */
const char *p3_gguf_ggml_type_name(uint32_t ggml_type);

/* Metadata lookups (NULL / false when absent or of an incompatible type). */
const p3_gguf_kv *p3_gguf_find(const p3_gguf *g, const char *key);
/* Integers of any width and sign (value must fit), floats, bools, strings. */
bool p3_gguf_get_int(const p3_gguf *g, const char *key, int64_t *out);
bool p3_gguf_get_float(const p3_gguf *g, const char *key, double *out); /* F32/F64 or integer */
bool p3_gguf_get_bool(const p3_gguf *g, const char *key, bool *out);
bool p3_gguf_get_string(const p3_gguf *g, const char *key, p3_gguf_str *out);
/* An array value (any element type); NULL when absent or not an array. */
const p3_gguf_value *p3_gguf_get_array(const p3_gguf *g, const char *key);

/* Element access on an array value (false when i is out of range or the type does not fit):
 * strings in place (32k tokenizer strings are not copied), numbers converted. */
size_t p3_gguf_array_len(const p3_gguf_value *arr);
bool p3_gguf_array_string(const p3_gguf_value *arr, size_t i, p3_gguf_str *out);
bool p3_gguf_array_int(const p3_gguf_value *arr, size_t i, int64_t *out);
bool p3_gguf_array_float(const p3_gguf_value *arr, size_t i, double *out);
const p3_gguf_value *p3_gguf_array_item(const p3_gguf_value *arr, size_t i); /* nested arrays */

#endif /* P3_LOADERS_GGUF_H */
