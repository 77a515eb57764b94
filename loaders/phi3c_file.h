/* phi3c_file.h: the native .phi3c model file (docs/FORMAT.md): one self-contained, checksummed
 * file holding the config, the tokenizer files and the INT4-g128 weights, 64-byte aligned for mmap.
 * The writer streams a model source into a temp file and renames it into place; the reader maps
 * a file, checks every offset and checksum, and presents it as a p3_model_source. */
#ifndef P3_LOADERS_PHI3C_FILE_H
#define P3_LOADERS_PHI3C_FILE_H

#include "quantize.h"
#include "source.h"

#define P3N_MAGIC              "PHI3C\0\x1a\n" /* 8 bytes; the \0 and \x1a stop text tools early */
#define P3N_MAGIC_LEN          8
#define P3N_VERSION_MAJOR      1 /* readers refuse other majors */
#define P3N_VERSION_MINOR      0 /* readers accept any minor of their major (additions only) */
#define P3N_ALIGN              64
#define P3N_HEADER_BYTES       128
#define P3N_TENSOR_ENTRY_BYTES 192
#define P3N_BLOB_ENTRY_BYTES   96
#define P3N_BLOB_NAME_MAX      64

/* True when the first bytes of a file are the native magic (p3_source_open dispatches on it). */
bool p3_native_is_magic(const void *head, size_t n);

/* A named byte string stored in the file (tokenizer.json, tokenizer.model, ...). */
typedef struct p3_native_blob {
    char name[P3N_BLOB_NAME_MAX];
    const uint8_t *data;
    size_t size;
} p3_native_blob;

/* What a native file adds to a p3_model_source (src->native). */
typedef struct p3_native {
    uint32_t version_major, version_minor;
    uint32_t group_size;   /* 128 */
    bool asym;             /* I4G128A linear weights instead of I4G128S */
    uint32_t quant_method; /* p3_quant_method used when writing (informational) */
    bool verified;         /* every checksum was checked at open */
    double verify_ms;      /* time spent checking them */
    uint64_t header_hash;  /* XXH3-64 of header + config + tables */
    p3_native_blob *blobs; /* views into the mapped file */
    size_t n_blobs;
    void *owned_image; /* p3_native_quantize_in_memory: the file image, else NULL */
} p3_native;

/* Finds a stored blob by name; NULL when absent. */
const p3_native_blob *p3_native_find_blob(const p3_native *n, const char *name);

/* Opens a native file. verify: check the XXH3-64 of every tensor and blob (the header and tables
 * are always checked). On success *out owns the mapping; free it with p3_native_close (or
 * p3_source_close once it knows src->native). */
p3_status p3_native_open(const char *path, bool verify, p3_model_source **out, p3_error *err);
/* Same on bytes already in memory (the fuzz target); `what` names them in messages. The bytes
 * must outlive the source. */
p3_status p3_native_open_memory(const uint8_t *data, size_t size, const char *what, bool verify,
                                p3_model_source **out, p3_error *err);
void p3_native_close(p3_model_source *src);
/* Frees what p3_native_open put in src->native (called by p3_native_close). */
void p3_native_free(p3_native *n);

/* ---- writer */

/* Converts `count` elements of t from element `first` to f32 (p3_tensor_to_f32's signature). */
typedef p3_status (*p3_tensor_f32_fn)(const p3_tensor *t, size_t first, size_t count, float *out,
                                      p3_error *err);
/* Progress: tensor i of n being written, bytes of tensor data written so far and in total. Return
 * false to cancel (the writer removes its temp file and returns PHI3C_ERR_INTERRUPTED). */
typedef bool (*p3_native_progress_fn)(void *user, size_t tensor_index, size_t n_tensors,
                                      uint64_t bytes_done, uint64_t bytes_total);

typedef enum p3_native_fault {
    P3N_FAULT_NONE = 0,
    P3N_FAULT_ENOSPC,  /* the write fails as on a full disk */
    P3N_FAULT_SIGKILL, /* the process kills itself (kill -9) */
    P3N_FAULT_SIGINT,  /* the process raises SIGINT (the CLI's handler then cancels) */
    P3N_FAULT_SIGNAL,  /* the process raises test_fault_signal (HUP, QUIT, TERM, PIPE...) */
} p3_native_fault;

/* What p3_native_write did (when opts.stats is given): for `phi3c quantize`'s summary. */
typedef struct p3_native_write_stats {
    size_t n_tensors, n_int4; /* tensors written, of them INT4 */
    uint64_t bytes_in;        /* the source tensors' bytes as stored */
    uint64_t bytes_out;       /* the output file */
    uint64_t int4_weights, int4_bytes;
    double nmse_sum; /* sum over INT4 tensors of ||w - dequant(q)||^2 / ||w||^2 */
} p3_native_write_stats;

typedef struct p3_native_write_opts {
    bool asym;              /* I4G128A instead of I4G128S */
    p3_quant_method method; /* P3_QUANT_SEARCH recommended */
    bool embed_int4;        /* embedding INT4 too (default: 16-bit, see docs/FORMAT.md) */
    bool force;             /* replace an existing output file */
    int n_threads;          /* <= 0: all CPUs */
    p3_tensor_f32_fn to_f32;
    p3_native_progress_fn progress;
    void *progress_user;
    /* Optional: filled by p3_native_write. The weight error costs a second read of each INT4
     * tensor's source values and a dequantization (single-threaded; a few % of a search). */
    p3_native_write_stats *stats;
    /* Testing: when the file reaches test_fault_at bytes, simulate test_fault (a full disk, a
     * kill -9 or a Ctrl-C) there. The CLI sets it from PHI3C_TEST_WRITE_FAULT. */
    uint64_t test_fault_at;
    p3_native_fault test_fault;
    int test_fault_signal;
} p3_native_write_opts;

/* The blobs a native file of src should carry (docs/FORMAT.md): a HF folder's tokenizer and
 * config files, a native source's blobs, a GGUF's tokenizer metadata. Free with
 * p3_native_blobs_free. */
p3_status p3_native_gather_blobs(const p3_model_source *src, p3_native_blob **blobs, size_t *n,
                                 p3_error *err);
void p3_native_blobs_free(p3_native_blob *blobs, size_t n);

/* The dtype a source tensor gets in a native file. */
p3_dtype p3_native_plan_dtype(const p3_tensor *t, const p3_native_write_opts *o);

/* Writes src (config and tensors) plus the blobs to out_path: a temp file in the same folder,
 * fsync'd, then renamed. Refuses an existing out_path unless o->force (PHI3C_ERR_EXISTS). On any
 * failure the temp file is removed and out_path is untouched. */
p3_status p3_native_write(const p3_model_source *src, const p3_native_blob *blobs, size_t n_blobs,
                          const char *out_path, const p3_native_write_opts *o, p3_error *err);

/* Load-time quantization (`--quant int4-g128`): builds the native file image of src in memory
 * (same tensors, byte for byte, as p3_native_write with the same options, on o->n_threads threads)
 * and opens it as a source (format P3_FORMAT_PHI3C, tokenizer files as blobs). src may be closed
 * afterwards; close the result with p3_source_close / p3_native_close. */
p3_status p3_native_quantize_in_memory(const p3_model_source *src, const p3_native_write_opts *o,
                                       p3_model_source **out, p3_error *err);

#endif /* P3_LOADERS_PHI3C_FILE_H */
