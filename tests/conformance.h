/* conformance.h: helpers of the backend conformance suite (tests/test_conformance.c): opening every
 * registered backend (every CPU ISA level), guarded device buffers, and the per-op error table. */
#ifndef P3_TESTS_CONFORMANCE_H
#define P3_TESTS_CONFORMANCE_H

#include "backend.h"
#include "harness.h"

#define CONF_MAX_TARGETS 16
#define CONF_GUARD       256 /* guard bytes before and after every buffer an op may write */

/* One backend under test: a registered, available backend opened with one variant. */
typedef struct conf_target {
    p3_backend be;
    char label[64]; /* "cpu/avx512", "opencl" */
} conf_target;

/* Opens every available backend, and for the CPU every ISA level this machine runs (levels the
 * CPU lacks are left out); n_threads as given. Returns how many were opened. */
int conf_open_all(p3_test_ctx *t, conf_target *out, int n_threads);
void conf_close_all(conf_target *targets, int n);

/* A buffer of `bytes` payload with CONF_GUARD pattern bytes on each side; the payload starts at
 * ref.offset. Filled with `init` (may be NULL: pattern everywhere). */
typedef struct conf_buf {
    p3_buffer *buf;
    p3_ref ref;
    size_t bytes;
} conf_buf;
bool conf_buf_alloc(p3_test_ctx *t, p3_backend *be, size_t bytes, const void *init, conf_buf *b);
/* Reads the payload into dst (may be NULL) and checks both guards; false (and a failed check
 * naming `what`) when a guard byte changed. */
bool conf_buf_read(p3_test_ctx *t, p3_backend *be, conf_buf *b, void *dst, const char *what);
void conf_buf_free(p3_backend *be, conf_buf *b);

/* Compares got with the reference: records the NMSE for the report and fails the test when it is
 * above bound. `what` names the case (op, target, shape). */
bool conf_expect(p3_test_ctx *t, const char *op, const char *target, const char *what,
                 const float *got, const float *ref, size_t n, double bound);
/* Prints the table (op, target, bound, worst NMSE, cases) of everything recorded so far. */
void conf_report(FILE *f);

#endif /* P3_TESTS_CONFORMANCE_H */
