/* phi3c_file_impl.h: internals shared by the native file's reader and writer: the header fields,
 * on-disk dtype codes and limits (docs/FORMAT.md is the specification). */
#ifndef P3_LOADERS_PHI3C_FILE_IMPL_H
#define P3_LOADERS_PHI3C_FILE_IMPL_H

#include "phi3c_file.h"

enum {
    P3N_CODE_F32 = 0,
    P3N_CODE_F16 = 1,
    P3N_CODE_BF16 = 2,
    P3N_CODE_I4G128S = 16,
    P3N_CODE_I4G128A = 17,
};

#define P3N_FLAG_ASYM         1u
#define P3N_HASH_FIELD        120 /* offset of header_hash in the header */
#define P3N_MAX_TENSORS       65536
#define P3N_MAX_BLOBS         256
#define P3N_MAX_DIM           ((int64_t)1 << 40)
#define P3N_CONFIG_ARCH_BYTES 64

typedef struct p3n_header {
    uint32_t version_major, version_minor;
    uint64_t file_bytes, data_offset;
    uint64_t config_offset, config_bytes;
    uint64_t tensor_table_offset;
    uint32_t n_tensors, tensor_entry_bytes;
    uint64_t blob_table_offset;
    uint32_t n_blobs, blob_entry_bytes;
    uint32_t group_size, flags, quant_method;
    uint64_t header_hash;
} p3n_header;

uint32_t p3n_load_u32(const uint8_t *p);
uint64_t p3n_load_u64(const uint8_t *p);
bool p3n_dtype_code(p3_dtype dtype, uint32_t *code);
/* Bytes of a tensor of this dtype and shape (rows of the last dim); false on overflow/bad shape. */
bool p3n_tensor_bytes(p3_dtype dtype, int n_dims, const int64_t *shape, uint64_t *bytes);
p3_status p3n_parse_header(const uint8_t *data, size_t size, const char *what, p3n_header *h,
                           p3_error *err);
/* XXH3-64 of the header region [0, n) with the hash field read as zero. */
uint64_t p3n_header_hash(const uint8_t *region, size_t n);
/* Range and consistency checks of a config read from (or about to be written to) a native file. */
p3_status p3n_check_config(const p3_config *cfg, const char *what, p3_error *err);

/* A growable byte buffer; an allocation failure sets oom and makes later puts no-ops. */
typedef struct p3n_buf {
    uint8_t *p;
    size_t len, cap;
    bool oom;
} p3n_buf;
void p3n_put_bytes(p3n_buf *b, const void *src, size_t n);
void p3n_put_u32(p3n_buf *b, uint32_t v);
void p3n_put_u64(p3n_buf *b, uint64_t v);
void p3n_put_i32(p3n_buf *b, int32_t v);
void p3n_put_f32(p3n_buf *b, float f);
/* name NUL-padded into a field of `field` bytes (truncated to field - 1). */
void p3n_put_name(p3n_buf *b, const char *name, size_t field);
void p3n_put_zeros(p3n_buf *b, size_t n);

#endif /* P3_LOADERS_PHI3C_FILE_IMPL_H */
