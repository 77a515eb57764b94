/* conformance.c: helpers of the backend conformance suite: opening targets, guarded buffers, the
 * NMSE table. Backend-generic: a new backend is tested by registering it in kernels/registry.c. */
#include "conformance.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const cpu_levels[] = {"scalar", "avx2", "avx2-novnni", "avx512", "amx", "neon"};

static bool open_one(p3_test_ctx *t, const char *name, const char *variant, int n_threads,
                     conf_target *out) {
    p3_backend_options opt = {.n_threads = n_threads, .variant = variant};
    p3_error err = {0};
    p3_status st = p3_backend_open(name, &opt, &out->be, &err);
    if (st == PHI3C_ERR_UNAVAILABLE) return false; /* e.g. an ISA this CPU lacks */
    if (!CHECK_MSG(st == PHI3C_OK, "opening %s/%s: %s", name, variant ? variant : "default",
                   err.message))
        return false;
    snprintf(out->label, sizeof out->label, "%s%s%s", name, variant ? "/" : "",
             variant ? variant : "");
    return true;
}

int conf_open_all(p3_test_ctx *t, conf_target *out, int n_threads) {
    int n = 0;
    /* PHI3C_CONF_BACKEND=name limits the run to one backend (a stage testing one backend) */
    const char *only = getenv("PHI3C_CONF_BACKEND");
    for (size_t i = 0; i < p3_backend_count(); i++) {
        p3_backend_info info;
        p3_backend_info_at(i, &info);
        if (!info.available || (only && *only && strcmp(info.name, only) != 0)) continue;
        if (strcmp(info.name, "cpu") == 0) {
            for (size_t l = 0; l < P3_ARRAY_LEN(cpu_levels) && n < CONF_MAX_TARGETS; l++)
                n += open_one(t, info.name, cpu_levels[l], n_threads, &out[n]);
        } else if (n < CONF_MAX_TARGETS) {
            /* PHI3C_CONF_VARIANT=v opens the other backends with that kernel variant */
            const char *variant = getenv("PHI3C_CONF_VARIANT");
            n += open_one(t, info.name, variant && *variant ? variant : NULL, n_threads, &out[n]);
        }
    }
    CHECK_MSG(n > 0, "no backend could be opened");
    return n;
}

void conf_close_all(conf_target *targets, int n) {
    for (int i = 0; i < n; i++) p3_backend_close(&targets[i].be);
}

static uint8_t guard_byte(size_t i) {
    return (uint8_t)(0xA5 ^ (i * 7));
}

bool conf_buf_alloc(p3_test_ctx *t, p3_backend *be, size_t bytes, const void *init, conf_buf *b) {
    p3_error err = {0};
    memset(b, 0, sizeof *b);
    size_t total = bytes + 2 * CONF_GUARD;
    if (!CHECK_OK(p3_be_buffer_alloc(be, total, &b->buf, &err), &err)) return false;
    uint8_t *img = p3_malloc(total);
    if (!CHECK(img != NULL)) return false;
    for (size_t i = 0; i < total; i++) img[i] = guard_byte(i);
    if (init) memcpy(img + CONF_GUARD, init, bytes);
    bool ok = CHECK_OK(p3_be_write(be, p3_ref_at(b->buf, 0), img, total, &err), &err);
    p3_free(img);
    /* The wrappers check refs against the buffer size, so give ops a buffer view without the
     * trailing guard: the buffer size stays total, but the ref starts after the leading guard. */
    b->ref = p3_ref_at(b->buf, CONF_GUARD);
    b->bytes = bytes;
    return ok;
}

bool conf_buf_read(p3_test_ctx *t, p3_backend *be, conf_buf *b, void *dst, const char *what) {
    p3_error err = {0};
    size_t total = b->bytes + 2 * CONF_GUARD;
    uint8_t *img = p3_malloc(total);
    if (!CHECK(img != NULL)) return false;
    bool ok = CHECK_OK(p3_be_read(be, p3_ref_at(b->buf, 0), img, total, &err), &err);
    for (size_t i = 0; ok && i < total; i++) {
        if (i >= CONF_GUARD && i < CONF_GUARD + b->bytes) continue;
        if (img[i] != guard_byte(i)) {
            ok = CHECK_MSG(false, "%s: guard byte %s the output changed (offset %zd)", what,
                           i < CONF_GUARD ? "before" : "after",
                           i < CONF_GUARD ? (ssize_t)i - CONF_GUARD
                                          : (ssize_t)(i - CONF_GUARD - b->bytes));
        }
    }
    if (ok && dst) memcpy(dst, img + CONF_GUARD, b->bytes);
    p3_free(img);
    return ok;
}

void conf_buf_free(p3_backend *be, conf_buf *b) {
    if (b->buf) p3_be_buffer_free(be, b->buf);
    memset(b, 0, sizeof *b);
}

/* ---- the table */

typedef struct conf_row {
    char op[40];
    char target[48];
    double bound, worst;
    int cases;
} conf_row;

static conf_row table[512];
static int table_len;

static conf_row *row_for(const char *op, const char *target, double bound) {
    for (int i = 0; i < table_len; i++)
        if (!strcmp(table[i].op, op) && !strcmp(table[i].target, target)) return &table[i];
    if (table_len == (int)P3_ARRAY_LEN(table)) return NULL;
    conf_row *r = &table[table_len++];
    snprintf(r->op, sizeof r->op, "%s", op);
    snprintf(r->target, sizeof r->target, "%s", target);
    r->bound = bound;
    return r;
}

bool conf_expect(p3_test_ctx *t, const char *op, const char *target, const char *what,
                 const float *got, const float *ref, size_t n, double bound) {
    double e = p3_nmse(got, ref, n);
    conf_row *r = row_for(op, target, bound);
    if (r) {
        if (e > r->worst || isnan(e)) r->worst = e;
        r->cases++;
    }
    const char *verbose = getenv("PHI3C_CONF_VERBOSE");
    if (verbose && verbose[0] == '1')
        printf("  %-10s %-12s %-40s nmse %.3g\n", op, target, what, e);
    return CHECK_MSG(e <= bound, "%s on %s, %s: NMSE %.3g > bound %.3g (max |diff| %.3g)", op,
                     target, what, e, bound, p3_max_abs_diff(got, ref, n));
}

void conf_report(FILE *f) {
    fprintf(f, "| op | target | NMSE bound | worst NMSE | cases |\n|---|---|---|---|---|\n");
    for (int i = 0; i < table_len; i++)
        fprintf(f, "| %s | %s | %.0e | %.3g | %d |\n", table[i].op, table[i].target, table[i].bound,
                table[i].worst, table[i].cases);
}
