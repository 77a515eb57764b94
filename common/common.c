/* common.c: errors, checked allocation, size arithmetic, file helpers, clock and UTF-8 check. */
#define _POSIX_C_SOURCE 200809L
#include "p3.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *const status_text[PHI3C_STATUS_COUNT] = {
    [PHI3C_OK] = "ok",
    [PHI3C_ERR_INVALID_ARG] = "invalid argument",
    [PHI3C_ERR_IO] = "I/O error",
    [PHI3C_ERR_FORMAT] = "malformed file",
    [PHI3C_ERR_UNSUPPORTED] = "unsupported",
    [PHI3C_ERR_NOMEM] = "out of memory",
    [PHI3C_ERR_CHECKSUM] = "checksum mismatch",
    [PHI3C_ERR_CONTEXT_FULL] = "context full",
    [PHI3C_ERR_BACKEND] = "backend error",
    [PHI3C_ERR_UNAVAILABLE] = "not available",
    [PHI3C_ERR_EXISTS] = "file exists",
    [PHI3C_ERR_INTERRUPTED] = "interrupted",
    [PHI3C_ERR_DEVICE_OOM] = "device out of memory",
};

const char *phi3c_strerror(phi3c_status status) {
    if ((unsigned)status >= PHI3C_STATUS_COUNT) return "unknown status";
    return status_text[status];
}

p3_status p3_fail(p3_error *err, p3_status status, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
        err->status = status;
    }
    return status;
}

void p3_error_prefix(p3_error *err, const char *fmt, ...) {
    if (!err) return;
    char prefix[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    /* build "prefix: old" without format-truncation games: copy pieces by length */
    char old[sizeof err->message];
    memcpy(old, err->message, sizeof old);
    size_t cap = sizeof err->message - 1, n = 0;
    for (const char *parts[3] = {prefix, ": ", old}, **p = parts; p < parts + 3; p++) {
        size_t len = strnlen(*p, cap - n);
        memcpy(err->message + n, *p, len);
        n += len;
    }
    err->message[n] = '\0';
}

void p3_error_clear(p3_error *err) {
    if (!err) return;
    err->status = PHI3C_OK;
    err->message[0] = '\0';
}

#ifdef P3_FAULT_INJECTION
/* Thread-local so parallel tests do not disturb each other; test builds only. */
static _Thread_local long allocs_until_failure = -1, allocs_made;
void p3_alloc_fail_after(long n) {
    allocs_until_failure = n;
}
long p3_alloc_count(void) {
    return allocs_made;
}
static bool injected_failure(void) {
    allocs_made++;
    if (allocs_until_failure < 0) return false;
    if (allocs_until_failure == 0) return true;
    allocs_until_failure--;
    return false;
}
#else
static bool injected_failure(void) {
    return false;
}
#endif

void *p3_malloc(size_t size) {
    return injected_failure() ? NULL : malloc(size ? size : 1);
}
void *p3_calloc(size_t count, size_t size) {
    return injected_failure() ? NULL : calloc(count ? count : 1, size ? size : 1);
}
void *p3_realloc(void *ptr, size_t size) {
    return injected_failure() ? NULL : realloc(ptr, size ? size : 1);
}
void p3_free(void *ptr) {
    free(ptr);
}

char *p3_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *copy = p3_malloc(n);
    if (copy) memcpy(copy, s, n);
    return copy;
}

void *p3_malloc_aligned(size_t size, size_t alignment) {
    if (injected_failure()) return NULL;
    void *ptr = NULL;
    if (posix_memalign(&ptr, alignment, size ? size : 1) != 0) return NULL;
    return ptr;
}
void p3_free_aligned(void *ptr) {
    free(ptr);
}

void *p3_malloc_large(size_t size) {
    enum { HUGE_PAGE = 2 << 20 };
    if (size < HUGE_PAGE) return p3_malloc_aligned(size, 64);
    void *ptr = p3_malloc_aligned(size, HUGE_PAGE);
#ifdef MADV_HUGEPAGE
    /* advice only: without THP (or with it off) the memory works the same with small pages */
    if (ptr) (void)madvise(ptr, size / HUGE_PAGE * HUGE_PAGE, MADV_HUGEPAGE);
#endif
    return ptr;
}

bool p3_mul_size(size_t a, size_t b, size_t *out) {
    size_t r;
    if (__builtin_mul_overflow(a, b, &r)) return false;
    *out = r;
    return true;
}
bool p3_add_size(size_t a, size_t b, size_t *out) {
    size_t r;
    if (__builtin_add_overflow(a, b, &r)) return false;
    *out = r;
    return true;
}
bool p3_mul_u64(uint64_t a, uint64_t b, uint64_t *out) {
    uint64_t r;
    if (__builtin_mul_overflow(a, b, &r)) return false;
    *out = r;
    return true;
}
bool p3_add_u64(uint64_t a, uint64_t b, uint64_t *out) {
    uint64_t r;
    if (__builtin_add_overflow(a, b, &r)) return false;
    *out = r;
    return true;
}

float p3_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (mant << 13); /* inf or NaN */
    } else if (exp != 0) {
        bits = sign | ((exp + 112u) << 23) | (mant << 13);
    } else if (mant == 0) {
        bits = sign;
    } else { /* subnormal: normalise */
        int shift = 0;
        while (!(mant & 0x400u)) {
            mant <<= 1;
            shift++;
        }
        mant &= 0x3ffu;
        bits = sign | ((uint32_t)(113 - shift) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

uint16_t p3_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t abs = x & 0x7fffffffu;
    if (abs > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);  /* NaN */
    if (abs >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds to >= 65520: inf */
    if (abs < 0x38800000u) { /* result is subnormal or zero: scale by 2^24 and round */
        if (abs < 0x33000000u) return (uint16_t)sign; /* < 2^-25: rounds to zero */
        uint32_t exp = abs >> 23;
        uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126u - exp; /* 14..24 */
        uint32_t half = mant >> shift;
        uint32_t rem = mant & ((1u << shift) - 1u);
        uint32_t halfway = 1u << (shift - 1u);
        if (rem > halfway || (rem == halfway && (half & 1u))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t rounded = abs + 0xfffu + ((abs >> 13) & 1u); /* round to nearest even at bit 13 */
    return (uint16_t)(sign | ((rounded - 0x38000000u) >> 13));
}

float p3_bf16_to_f32(uint16_t b) {
    uint32_t bits = (uint32_t)b << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

uint16_t p3_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u); /* quiet NaN */
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

static const char *mode_name(mode_t m) {
    if (S_ISDIR(m)) return "a directory";
    if (S_ISFIFO(m)) return "a FIFO (named pipe)";
    if (S_ISCHR(m)) return "a character device";
    if (S_ISBLK(m)) return "a block device";
    if (S_ISSOCK(m)) return "a socket";
    return "not a regular file";
}

p3_status p3_file_map(p3_mapped_file *file, const char *path, p3_error *err) {
    memset(file, 0, sizeof *file);
    /* O_NONBLOCK: opening a FIFO must not wait for a writer before fstat can refuse it */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return p3_fail(err, PHI3C_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return p3_fail(err, PHI3C_ERR_IO, "%s: is %s, not a regular file", path,
                       mode_name(st.st_mode));
    }
    file->path = p3_strdup(path);
    if (!file->path) {
        close(fd);
        return p3_fail(err, PHI3C_ERR_NOMEM, "%s: out of memory", path);
    }
    file->size = (size_t)st.st_size;
    if (file->size > 0) {
        void *map = mmap(NULL, file->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            close(fd);
            p3_free(file->path);
            file->path = NULL;
            return p3_fail(err, PHI3C_ERR_IO, "%s: mmap failed: %s", path, strerror(errno));
        }
        file->data = map;
    }
    close(fd);
    return PHI3C_OK;
}

void p3_file_unmap(p3_mapped_file *file) {
    if (!file) return;
    if (file->data) munmap((void *)file->data, file->size);
    p3_free(file->path);
    memset(file, 0, sizeof *file);
}

p3_status p3_file_read_all(const char *path, char **data, size_t *size, p3_error *err) {
    *data = NULL;
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return p3_fail(err, PHI3C_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0) memset(&st, 0, sizeof st);
    if (S_ISDIR(st.st_mode)) {
        fclose(f);
        return p3_fail(err, PHI3C_ERR_IO, "%s: is a directory, not a file", path);
    }
    if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > P3_FILE_READ_MAX) {
        fclose(f);
        return p3_fail(err, PHI3C_ERR_IO,
                       "%s: larger than the limit of %zu MiB for files read whole", path,
                       P3_FILE_READ_MAX >> 20);
    }
    size_t cap = 4096, len = 0;
    char *buf = p3_malloc(cap);
    bool too_big = false;
    while (buf) {
        size_t want = P3_MIN(cap - len - 1, P3_FILE_READ_MAX + 1 - len);
        size_t got = fread(buf + len, 1, want, f);
        len += got;
        if (got < want) break;        /* end of file or an error */
        if (len > P3_FILE_READ_MAX) { /* /dev/zero or a huge file: stop, do not grow forever */
            too_big = true;
            break;
        }
        char *grown = p3_realloc(buf, cap * 2);
        if (!grown) {
            p3_free(buf);
            buf = NULL;
            break;
        }
        buf = grown;
        cap *= 2;
    }
    int read_errno = ferror(f) ? errno : 0;
    fclose(f);
    if (!buf) return p3_fail(err, PHI3C_ERR_NOMEM, "%s: out of memory reading the file", path);
    if (too_big || read_errno) {
        p3_free(buf);
        if (too_big)
            return p3_fail(err, PHI3C_ERR_IO,
                           "%s: larger than the limit of %zu MiB for files read "
                           "whole",
                           path, P3_FILE_READ_MAX >> 20);
        return p3_fail(err, PHI3C_ERR_IO, "%s: read error: %s", path, strerror(read_errno));
    }
    buf[len] = '\0';
    *data = buf;
    *size = len;
    return PHI3C_OK;
}

p3_path_kind p3_path_check(const char *path, p3_error *err) {
    struct stat st;
    if (stat(path, &st) != 0) {
        int e = errno;
        if (e == ENOENT) return P3_PATH_MISSING;
        p3_fail(err, PHI3C_ERR_IO, "%s: cannot look at it: %s%s", path, strerror(e),
                e == ELOOP ? " (a symlink loop?)" : "");
        return P3_PATH_OTHER;
    }
    if (S_ISREG(st.st_mode)) return P3_PATH_FILE;
    p3_fail(err, PHI3C_ERR_IO, "%s: is %s, not a regular file", path, mode_name(st.st_mode));
    return S_ISDIR(st.st_mode) ? P3_PATH_DIR : P3_PATH_OTHER;
}

p3_status p3_file_probe(const char *path, bool *present, p3_error *err) {
    p3_path_kind k = p3_path_check(path, err);
    *present = k == P3_PATH_FILE;
    return k == P3_PATH_FILE || k == P3_PATH_MISSING ? PHI3C_OK : PHI3C_ERR_IO;
}

bool p3_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

bool p3_is_directory(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

char *p3_path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    bool slash = a > 0 && dir[a - 1] != '/';
    char *out = p3_malloc(a + b + 2);
    if (!out) return NULL;
    memcpy(out, dir, a);
    if (slash) out[a++] = '/';
    memcpy(out + a, name, b + 1);
    return out;
}

double p3_time_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
