/* harness.c: the test runner. Usage: phi3c-tests [--list] [SUBSTRING...]: runs every registered
 * test whose name contains one of the substrings (all when none), prints a line per test and
 * the closing "N passed, N failed, N skipped" line; exits 1 when any test failed. */
#include "harness.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct test_entry {
    const char *name;
    const char *file;
    p3_test_fn fn;
    unsigned flags;
} test_entry;

/* Filled by constructors before main and read-only afterwards. */
static test_entry *registered;
static size_t n_registered, cap_registered;

struct p3_test_ctx {
    const char *name;
    int failures;
    bool skipped;
    char skip_reason[256];
    char tmpdir[256];
};

void p3_test_register(const char *name, const char *file, p3_test_fn fn, unsigned flags) {
    if (n_registered == cap_registered) {
        cap_registered = cap_registered ? cap_registered * 2 : 64;
        registered = realloc(registered, cap_registered * sizeof *registered);
        if (!registered) abort();
    }
    registered[n_registered++] = (test_entry){name, file, fn, flags};
}

bool p3_check(p3_test_ctx *t, bool cond, const char *file, int line, const char *fmt, ...) {
    if (cond) return true;
    if (t->failures < 20) {
        fprintf(stdout, "    %s:%d: ", file, line);
        va_list ap;
        va_start(ap, fmt);
        vfprintf(stdout, fmt, ap);
        va_end(ap);
        fputc('\n', stdout);
    }
    t->failures++;
    return false;
}

void p3_test_skip(p3_test_ctx *t, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->skip_reason, sizeof t->skip_reason, fmt, ap);
    va_end(ap);
    t->skipped = true;
}

bool p3_test_failed(const p3_test_ctx *t) {
    return t->failures > 0;
}

const char *p3_test_shared_dir(void) {
    const char *s = getenv("PHI3C_SHARED");
    return s && *s ? s : "../shared";
}

const char *p3_test_cli(void) {
    const char *s = getenv("PHI3C_BIN");
    return s && *s ? s : "build/phi3c";
}

const char *p3_test_tmpdir(p3_test_ctx *t) {
    if (!t->tmpdir[0]) {
        snprintf(t->tmpdir, sizeof t->tmpdir, "/tmp/phi3c-test-XXXXXX");
        if (!mkdtemp(t->tmpdir)) {
            p3_check(t, false, __FILE__, __LINE__, "mkdtemp failed");
            snprintf(t->tmpdir, sizeof t->tmpdir, "/tmp");
        }
    }
    return t->tmpdir;
}

static char *slurp(const char *path, size_t *len) {
    char *data = NULL;
    size_t size = 0;
    if (p3_file_read_all(path, &data, &size, NULL) != PHI3C_OK) return NULL;
    *len = size;
    return data;
}

bool p3_test_run(p3_test_ctx *t, const char *cmdline, p3_cmd_result *res) {
    memset(res, 0, sizeof *res);
    const char *dir = p3_test_tmpdir(t);
    char out_path[300], err_path[300];
    snprintf(out_path, sizeof out_path, "%s/.stdout", dir);
    snprintf(err_path, sizeof err_path, "%s/.stderr", dir);
    size_t n = strlen(cmdline) + 2 * sizeof out_path + 64;
    char *full = malloc(n);
    if (!full) return false;
    snprintf(full, n, "(%s) >'%s' 2>'%s' </dev/null", cmdline, out_path, err_path);
    int status = system(full);
    free(full);
    if (status == -1) return p3_check(t, false, __FILE__, __LINE__, "system() failed");
    if (WIFEXITED(status)) {
        res->exit_code = WEXITSTATUS(status);
        /* the shell reports a child killed by signal N as exit 128+N */
        if (res->exit_code > 128 && res->exit_code < 160) res->signal = res->exit_code - 128;
    } else {
        res->exit_code = -1;
        res->signal = WIFSIGNALED(status) ? WTERMSIG(status) : -1;
    }
    res->out = slurp(out_path, &res->out_len);
    res->err = slurp(err_path, &res->err_len);
    return true;
}

void p3_cmd_result_free(p3_cmd_result *res) {
    p3_free(res->out);
    p3_free(res->err);
    memset(res, 0, sizeof *res);
}

void *p3_test_read_file(p3_test_ctx *t, const char *path, size_t *size) {
    char *data = NULL;
    p3_error err = {0};
    if (p3_file_read_all(path, &data, size, &err) != PHI3C_OK) {
        p3_check(t, false, __FILE__, __LINE__, "cannot read fixture: %s", err.message);
        return NULL;
    }
    return data;
}

void p3_test_rng_seed(p3_test_rng *r, uint64_t seed) {
    r->state = seed ? seed : 0x9e3779b97f4a7c15ull;
}

uint64_t p3_test_rng_u64(p3_test_rng *r) {
    uint64_t x = r->state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->state = x;
    return x * 0x2545f4914f6cdd1dull;
}

float p3_test_rng_uniform(p3_test_rng *r) {
    return (float)(p3_test_rng_u64(r) >> 40) / 16777216.0f;
}

float p3_test_rng_normal(p3_test_rng *r) {
    double u1 = ((double)(p3_test_rng_u64(r) >> 11) + 1.0) / 9007199254740993.0;
    double u2 = (double)(p3_test_rng_u64(r) >> 11) / 9007199254740992.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

double p3_nmse(const float *a, const float *ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)ref[i];
        num += d * d;
        den += (double)ref[i] * (double)ref[i];
    }
    if (isnan(num)) return INFINITY;
    return den > 0 ? num / den : num;
}

double p3_max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (isnan(d)) return INFINITY;
        if (d > m) m = d;
    }
    return m;
}

double p3_max_abs(const float *a, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs((double)a[i]) > m) m = fabs((double)a[i]);
    return m;
}

static void remove_tmpdir(const char *dir) {
    if (!dir[0] || strncmp(dir, "/tmp/phi3c-test-", 16) != 0) return;
    char cmd[320];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", dir);
}

static bool selected(const char *name, int argc, char **argv) {
    int filters = 0;
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-') continue;
        filters++;
        if (strstr(name, argv[i])) return true;
    }
    return filters == 0;
}

int main(int argc, char **argv) {
    bool list = argc > 1 && strcmp(argv[1], "--list") == 0;
    const char *fast = getenv("PHI3C_TEST_FAST");
    bool skip_slow = fast && strcmp(fast, "1") == 0;
    int passed = 0, failed = 0, skipped = 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (size_t i = 0; i < n_registered; i++) {
        test_entry *e = &registered[i];
        if (!selected(e->name, argc, argv)) continue;
        if (list) {
            printf("%s\n", e->name);
            continue;
        }
        p3_test_ctx ctx = {.name = e->name};
        double t0 = p3_time_now();
        if (skip_slow && (e->flags & P3_TEST_FLAG_SLOW)) {
            p3_test_skip(&ctx, "slow test, skipped when PHI3C_TEST_FAST=1");
        } else {
            e->fn(&ctx);
        }
        double dt = p3_time_now() - t0;
        if (ctx.failures) {
            printf("FAIL %s (%d failed checks, %.2fs)\n", e->name, ctx.failures, dt);
            failed++;
        } else if (ctx.skipped) {
            printf("SKIP %s: %s\n", e->name, ctx.skip_reason);
            skipped++;
        } else {
            printf("PASS %s (%.2fs)\n", e->name, dt);
            passed++;
        }
        remove_tmpdir(ctx.tmpdir);
    }
    free(registered);
    if (!list) printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed ? 1 : 0;
}
