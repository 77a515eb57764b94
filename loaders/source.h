/* source.h: what every loader (safetensors folder, GGUF, native phi3c file) produces: the model's
 * config, its tensors as zero-copy views into mapped files, and where its tokenizer lives. */
#ifndef P3_LOADERS_SOURCE_H
#define P3_LOADERS_SOURCE_H

#include "p3.h"
#include "p3_dtype.h"

#define P3_MAX_DIMS        4
#define P3_TENSOR_NAME_MAX 128

typedef struct p3_tensor {
    char name[P3_TENSOR_NAME_MAX];    /* the file's own name (GGUF: blk.0.attn_qkv.weight) */
    char hf_name[P3_TENSOR_NAME_MAX]; /* canonical HF name
                                         (model.layers.0.self_attn.qkv_proj.weight) */
    p3_dtype dtype;
    int n_dims;
    int64_t shape[P3_MAX_DIMS]; /* HF order, outermost first: a linear weight is [out, in] */
    const void *data;           /* view into a mapped file, valid while the source is open */
    size_t nbytes;
} p3_tensor;

typedef enum p3_rope_type { P3_ROPE_DEFAULT = 0, P3_ROPE_LONGROPE } p3_rope_type;

#define P3_MAX_ROPE_FACTORS 256 /* rot_dim / 2 entries; head_dim up to 512 */
#define P3_MAX_STOP_IDS     16

typedef struct p3_rope_config {
    p3_rope_type type;
    float theta;                 /* rope_theta */
    float partial_rotary_factor; /* 1.0 unless given */
    int rot_dim;                 /* int(head_dim * partial_rotary_factor), even */
    int n_factors;               /* rot_dim / 2 for LongRoPE, else 0 */
    float short_factor[P3_MAX_ROPE_FACTORS];
    float long_factor[P3_MAX_ROPE_FACTORS];
    float attn_factor; /* multiplies cos and sin: given, or sqrt(1+ln(s)/ln(orig)), or 1 */
} p3_rope_config;

typedef struct p3_config {
    char architecture[64]; /* "Phi3ForCausalLM"; anything else is refused by name */
    int hidden_size;
    int num_layers;
    int num_heads;
    int num_kv_heads;
    int head_dim; /* hidden_size / num_heads unless given */
    int intermediate_size;
    int vocab_size;
    int max_position_embeddings;
    int original_max_position_embeddings; /* = max_position_embeddings when not given */
    float rms_norm_eps;
    p3_rope_config rope;
    int sliding_window; /* keys per query including itself; 0 = none */
    bool tie_word_embeddings;
    int bos_id, eos_id, pad_id; /* -1 when unknown */
    int n_stop_ids;             /* from generation_config.json / GGUF; eos_id when nothing else */
    int stop_ids[P3_MAX_STOP_IDS];
} p3_config;

typedef enum p3_source_format {
    P3_FORMAT_SAFETENSORS = 0,
    P3_FORMAT_GGUF,
    P3_FORMAT_PHI3C,
} p3_source_format;

struct p3_gguf;   /* loaders/gguf.h */
struct p3_native; /* loaders/phi3c_file.h */

typedef struct p3_model_source {
    p3_source_format format;
    char *path;      /* what the user passed */
    bool has_config; /* false for a vocab-only GGUF */
    p3_config config;
    p3_tensor *tensors; /* n_tensors views; HF order shapes */
    size_t n_tensors;
    p3_mapped_file *files;
    size_t n_files;
    uint64_t file_bytes;      /* total size of all files read */
    struct p3_gguf *gguf;     /* parsed GGUF (metadata incl. tokenizer), NULL for other formats */
    char *tokenizer_dir;      /* folder holding tokenizer.json / tokenizer.model, or NULL */
    struct p3_native *native; /* native file: tokenizer blobs, quant info, checksum state; else NULL
                                 (p3_source_close frees it with p3_native_free) */
} p3_model_source;

/* Opens a model path: a HF folder (config.json + safetensors, single or sharded), a .gguf file or a
 * native .phi3c file. Validates the config and every tensor's bounds; does not check the tensor set
 * against the config (p3_source_check_tensors does). */
p3_status p3_source_open(const char *path, p3_model_source **out, p3_error *err);
/* The same; verify_checksums false skips the per-tensor checksum pass of a native file
 * (`--no-verify`; its header region is always checked). */
p3_status p3_source_open_verify(const char *path, bool verify_checksums, p3_model_source **out,
                                p3_error *err);
void p3_source_close(p3_model_source *src);
/* Describes an in-memory tensor (synthetic models in tests and tools): name and hf_name are
 * hf_name, shape [rows, cols] or [rows] when cols is 0, nbytes what the shape needs in dtype (0
 * when it cannot be computed). data is not copied. */
void p3_tensor_set(p3_tensor *t, const char *hf_name, p3_dtype dtype, int64_t rows, int64_t cols,
                   const void *data);
/* Finds a tensor by canonical HF name; NULL if absent. */
const p3_tensor *p3_source_find(const p3_model_source *src, const char *hf_name);

/* The tensor set a config implies, in HF names and shapes (what the checkpoint must contain). */
typedef struct p3_tensor_spec {
    char hf_name[P3_TENSOR_NAME_MAX];
    int n_dims;
    int64_t shape[P3_MAX_DIMS];
} p3_tensor_spec;
p3_status p3_config_expected_tensors(const p3_config *cfg, p3_tensor_spec **specs, size_t *n,
                                     p3_error *err);
/* Every expected tensor present with the right shape; names the first missing or wrong one. */
p3_status p3_source_check_tensors(const p3_model_source *src, p3_error *err);

/* Parses config.json text (transformers 4.x rope_theta/rope_scaling and 5.x rope_parameters forms;
 * legacy "su"/"yarn" map to longrope). `what` names the file in messages. */
p3_status p3_config_parse_json(const char *json, size_t len, const char *what, p3_config *cfg,
                               p3_error *err);
/* Reads generation_config.json stop ids into cfg (missing file is fine). */
p3_status p3_config_read_generation(const char *path, p3_config *cfg, p3_error *err);
/* Derived values and range checks shared by every loader (head_dim, rot_dim, attn_factor...). */
p3_status p3_config_finish(p3_config *cfg, const char *what, p3_error *err);

/* Converts `count` elements of a tensor's data (any dtype above, ggml block formats dequantized)
 * starting at element `first` (must be a row start for block formats) to f32. */
p3_status p3_tensor_to_f32(const p3_tensor *t, size_t first, size_t count, float *out,
                           p3_error *err);

/* Defaults before parsing: eps 1e-5, theta 1e4, partial factor 1, ids -1, everything else 0.
 * rope.attn_factor 0 means "not given": p3_config_finish computes it then. */
void p3_config_init(p3_config *cfg);

#endif /* P3_LOADERS_SOURCE_H */
