/* harness.h: phi3c's small test harness. Tests register themselves with P3_TEST; the runner
 * (tests/harness.c) runs them in order, prints one line per test and ends with the line
 * "N passed, N failed, N skipped". Every check must compare against something computed
 * independently (fixtures from transformers/gguf/tokenizers, or the scalar reference). */
#ifndef P3_TESTS_HARNESS_H
#define P3_TESTS_HARNESS_H

#include "p3.h"

#include <stdio.h>

typedef struct p3_test_ctx p3_test_ctx;
typedef void (*p3_test_fn)(p3_test_ctx *t);

enum { P3_TEST_FLAG_SLOW = 1 }; /* skipped when PHI3C_TEST_FAST=1 (the sanitizer run) */

void p3_test_register(const char *name, const char *file, p3_test_fn fn, unsigned flags);

#define P3_TEST_DEFINE(name, flags)                                                                \
    static void name(p3_test_ctx *t);                                                              \
    __attribute__((constructor)) static void name##_register(void) {                               \
        p3_test_register(#name, __FILE__, name, flags);                                            \
    }                                                                                              \
    static void name(p3_test_ctx *t)

#define P3_TEST(name)      P3_TEST_DEFINE(name, 0)
#define P3_TEST_SLOW(name) P3_TEST_DEFINE(name, P3_TEST_FLAG_SLOW)

/* Records a failure (the test goes on, so one run shows every broken check). Returns cond. */
bool p3_check(p3_test_ctx *t, bool cond, const char *file, int line, const char *fmt, ...)
    P3_PRINTF(5, 6);
/* Marks the test skipped with a reason (a missing optional tool, e.g. no OpenCL platform). */
void p3_test_skip(p3_test_ctx *t, const char *fmt, ...) P3_PRINTF(2, 3);
bool p3_test_failed(const p3_test_ctx *t);

#define CHECK(cond)          p3_check(t, (cond), __FILE__, __LINE__, "%s", #cond)
#define CHECK_MSG(cond, ...) p3_check(t, (cond), __FILE__, __LINE__, __VA_ARGS__)
#define CHECK_EQ_INT(a, b)                                                                         \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        p3_check(t, a_ == b_, __FILE__, __LINE__, "%s == %s (%lld vs %lld)", #a, #b, a_, b_);      \
    } while (0)
#define CHECK_NEAR(a, b, tol)                                                                      \
    do {                                                                                           \
        double a_ = (double)(a), b_ = (double)(b), tol_ = (double)(tol);                           \
        p3_check(t, fabs(a_ - b_) <= tol_, __FILE__, __LINE__, "%s ~= %s (%.9g vs %.9g, tol %g)",  \
                 #a, #b, a_, b_, tol_);                                                            \
    } while (0)
/* Checks a call returned PHI3C_OK; prints the error message otherwise. */
#define CHECK_OK(expr, errp)                                                                       \
    p3_check(t, (expr) == PHI3C_OK, __FILE__, __LINE__, "%s failed: %s", #expr, (errp)->message)
#define CHECK_STATUS(expr, want)                                                                   \
    do {                                                                                           \
        p3_status s_ = (expr);                                                                     \
        p3_check(t, s_ == (want), __FILE__, __LINE__, "%s returned %s, want %s", #expr,            \
                 phi3c_strerror(s_), phi3c_strerror(want));                                        \
    } while (0)

/* Paths: the repo root is the working directory; ../shared is PHI3C_SHARED; the CLI binary under
 * test is PHI3C_BIN (release or sanitizer build). Returned strings are static per call site use. */
const char *p3_test_shared_dir(void);
const char *p3_test_cli(void);
/* A fresh empty directory for this test (removed after the run). */
const char *p3_test_tmpdir(p3_test_ctx *t);

/* Runs a shell command line, capturing stdout and stderr (heap strings, may be NULL) and the exit
 * status (-1 if it died from a signal: a crash is never a clean error). */
typedef struct p3_cmd_result {
    int exit_code;
    int signal; /* non-zero when killed by a signal */
    char *out;
    size_t out_len;
    char *err;
    size_t err_len;
} p3_cmd_result;
bool p3_test_run(p3_test_ctx *t, const char *cmdline, p3_cmd_result *res);
void p3_cmd_result_free(p3_cmd_result *res);

/* Reads a whole file (fixture) into memory; fails the test and returns NULL when missing. */
void *p3_test_read_file(p3_test_ctx *t, const char *path, size_t *size);
/* Deterministic random numbers for test inputs (xorshift64*). */
typedef struct p3_test_rng {
    uint64_t state;
} p3_test_rng;
void p3_test_rng_seed(p3_test_rng *r, uint64_t seed);
uint64_t p3_test_rng_u64(p3_test_rng *r);
float p3_test_rng_uniform(p3_test_rng *r); /* [0, 1) */
float p3_test_rng_normal(p3_test_rng *r);  /* N(0, 1) */
/* Normalised mean squared error sum((a-b)^2) / sum(b^2) (b is the reference). */
double p3_nmse(const float *a, const float *ref, size_t n);
/* max |a - b| and max |b|. */
double p3_max_abs_diff(const float *a, const float *b, size_t n);
double p3_max_abs(const float *a, size_t n);

#endif /* P3_TESTS_HARNESS_H */
