/* p3.h: small shared utilities used by every folder: status/error reporting, checked allocation and
 * size arithmetic, f16/bf16 conversion, read-only file mapping and a monotonic clock. */
#ifndef P3_COMMON_H
#define P3_COMMON_H

#include "phi3c.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef phi3c_status p3_status;
typedef phi3c_error p3_error;

#define P3_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define P3_MIN(a, b)    ((a) < (b) ? (a) : (b))
#define P3_MAX(a, b)    ((a) > (b) ? (a) : (b))

/* Returns the status of expr from the enclosing function when it is not PHI3C_OK. */
#define P3_TRY(expr)                                                                               \
    do {                                                                                           \
        p3_status p3_try_status_ = (expr);                                                         \
        if (p3_try_status_ != PHI3C_OK) return p3_try_status_;                                     \
    } while (0)

#if defined(__GNUC__)
#define P3_PRINTF(fmt_index, first_arg) __attribute__((format(printf, fmt_index, first_arg)))
#else
#define P3_PRINTF(fmt_index, first_arg)
#endif

/* Records status and a formatted message in err (err may be NULL) and returns status, so callers
 * can write `return p3_fail(err, PHI3C_ERR_FORMAT, "%s: bad header", path);`. */
p3_status p3_fail(p3_error *err, p3_status status, const char *fmt, ...) P3_PRINTF(3, 4);
/* Prefixes an existing message with "context: " (used when a lower layer's error needs the file).
 */
void p3_error_prefix(p3_error *err, const char *fmt, ...) P3_PRINTF(2, 3);
void p3_error_clear(p3_error *err);

/* Every allocation goes through these so a test build (-DP3_FAULT_INJECTION) can make the n-th
 * allocation of the calling thread fail with p3_alloc_fail_after(n); n < 0 turns that off. */
void *p3_malloc(size_t size);
void *p3_calloc(size_t count, size_t size);
void *p3_realloc(void *ptr, size_t size);
void p3_free(void *ptr);
char *p3_strdup(const char *s);
#ifdef P3_FAULT_INJECTION
void p3_alloc_fail_after(long n);
long p3_alloc_count(void); /* allocations the calling thread has asked for so far */
#endif
/* Aligned allocation (alignment a power of two >= sizeof(void *)); free with p3_free_aligned. */
void *p3_malloc_aligned(size_t size, size_t alignment);
void p3_free_aligned(void *ptr);
/* For large arrays streamed end to end (weights, KV cache, the bandwidth probe): 64-byte aligned;
 * from 2 MiB on, 2 MiB aligned with transparent huge pages asked for the whole 2 MiB pages inside
 * (fewer TLB misses at full bandwidth; the tail keeps small pages, so no memory is added). Free
 * with p3_free_aligned. */
void *p3_malloc_large(size_t size);

/* Overflow-checked size arithmetic: return false (and leave *out alone) when the result wraps. */
bool p3_mul_size(size_t a, size_t b, size_t *out);
bool p3_add_size(size_t a, size_t b, size_t *out);
bool p3_mul_u64(uint64_t a, uint64_t b, uint64_t *out);
bool p3_add_u64(uint64_t a, uint64_t b, uint64_t *out);

/* IEEE half and bfloat16 conversions; f32->f16/bf16 round to nearest even, NaN stays NaN. */
float p3_f16_to_f32(uint16_t h);
uint16_t p3_f32_to_f16(float f);
float p3_bf16_to_f32(uint16_t b);
uint16_t p3_f32_to_bf16(float f);

/* A whole file mapped read-only. One object owns the mapping; views into it stay valid until
 * p3_file_unmap. Empty files map to data == NULL, size == 0. */
typedef struct p3_mapped_file {
    const uint8_t *data;
    size_t size;
    char *path;
} p3_mapped_file;

p3_status p3_file_map(p3_mapped_file *file, const char *path, p3_error *err);
void p3_file_unmap(p3_mapped_file *file);
/* Reads a whole (small) file into a NUL-terminated heap buffer; pipes and devices too (a prompt
 * from `<(...)`), but never more than P3_FILE_READ_MAX bytes: past that (a huge file, /dev/zero)
 * it fails with a message giving the limit instead of growing without bound. */
#define P3_FILE_READ_MAX ((size_t)256 << 20)
p3_status p3_file_read_all(const char *path, char **data, size_t *size, p3_error *err);
/* True when path is (or links to) a regular file / a directory. */
bool p3_file_exists(const char *path);
bool p3_is_directory(const char *path);

/* What is at a path (symlinks followed). For P3_PATH_DIR and P3_PATH_OTHER, err (may be NULL)
 * already says what is there instead of a file ("is a directory", "is a FIFO", "is a character
 * device", a symlink loop, no permission), so a caller never reports such a path as missing. */
typedef enum p3_path_kind {
    P3_PATH_MISSING = 0, /* nothing there (ENOENT, or a dangling symlink) */
    P3_PATH_FILE,        /* a regular file */
    P3_PATH_DIR,         /* a directory */
    P3_PATH_OTHER,       /* a device, FIFO, socket, or the path cannot be looked at (ELOOP...) */
} p3_path_kind;
p3_path_kind p3_path_check(const char *path, p3_error *err);
/* For a file that may be absent (config.json, a shard, tokenizer.json): *present is true for a
 * regular file and false when nothing is there; anything else there (a directory, FIFO, device,
 * symlink loop) is an error saying what it is, never taken as "missing". */
p3_status p3_file_probe(const char *path, bool *present, p3_error *err);

/* Output files (common/outfile.c): written only as a new file or over a regular file, through a
 * temp file beside the target that is fsync'ed and renamed into place. */
/* OK when path is missing or (with replace) a regular file; PHI3C_ERR_EXISTS for an existing file
 * without replace; PHI3C_ERR_INVALID_ARG for a directory, device, FIFO or socket, even with
 * replace. */
p3_status p3_output_check(const char *path, bool replace, p3_error *err);
/* Creates the temp file ".NAME.tmp-XXXXXX" beside path: *tmp_path (free with p3_free) and an
 * open *fd. The caller writes, fsyncs and closes fd, then commits, or unlinks tmp_path. */
p3_status p3_output_temp(const char *path, char **tmp_path, int *fd, p3_error *err);
/* Checks the target again and renames tmp_path onto path (with !replace atomically refusing an
 * existing path), then syncs the folder. On failure tmp_path is left for the caller to unlink. */
p3_status p3_output_commit(const char *tmp_path, const char *path, bool replace, p3_error *err);
/* Joins dir and name with one '/' into a new heap string (NULL on allocation failure). */
char *p3_path_join(const char *dir, const char *name);

/* Seconds from an arbitrary monotonic origin. */
double p3_time_now(void);

/* UTF-8 (common/utf8.c), the one decoder every folder uses. Valid means: no overlong forms, no
 * surrogates, nothing above U+10FFFF, no truncated sequence. */
/* Bytes of the valid character at s[0..n) (1..4), storing its code point in *cp (cp may be NULL);
 * 0 when n is 0 or the bytes there do not start a valid character. */
size_t p3_utf8_decode(const uint8_t *s, size_t n, uint32_t *cp);
/* Writes the UTF-8 form of cp (<= U+10FFFF, not a surrogate) to out; returns its length 1..4, or
 * 0 (nothing written) when cp is not a Unicode scalar value. */
size_t p3_utf8_encode(uint32_t cp, char out[4]);
/* True when the n bytes are valid UTF-8. */
bool p3_utf8_valid(const char *s, size_t n);
/* True for 10xxxxxx, a byte that never starts a character. */
static inline bool p3_utf8_is_continuation(uint8_t c) {
    return (c & 0xC0) == 0x80;
}

#endif /* P3_COMMON_H */
