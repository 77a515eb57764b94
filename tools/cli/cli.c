/* cli.c: argument helpers and error printing shared by the subcommands. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* What a CLI user can do about a library error: the library states the problem and the value,
 * only the CLI knows its flags. `about` (NULL: any message) narrows a status to one problem. */
static const struct {
    phi3c_status status;
    const char *about;
    const char *advice;
} advice_table[] = {
    {PHI3C_ERR_CONTEXT_FULL, NULL, "raise -c/--ctx"},
    {PHI3C_ERR_NOMEM, "KV cache", "lower -c/--ctx"},
    {PHI3C_ERR_DEVICE_OOM, "KV cache", "lower -c/--ctx"},
    {PHI3C_ERR_EXISTS, NULL, "use --force to replace it"},
    {PHI3C_ERR_INVALID_ARG, "does not exist", "choose --device from phi3c info"},
};

static const char *advice_for(const p3_error *err) {
    for (size_t i = 0; i < P3_ARRAY_LEN(advice_table); i++)
        if (err->status == advice_table[i].status &&
            (!advice_table[i].about || strstr(err->message, advice_table[i].about)))
            return advice_table[i].advice;
    return NULL;
}

int cli_fail(const char *cmd, const p3_error *err) {
    const char *msg = err && err->message[0] ? err->message : phi3c_strerror(err ? err->status : 0);
    const char *advice = err ? advice_for(err) : NULL;
    if (advice)
        fprintf(stderr, "phi3c %s: %s (%s)\n", cmd, msg, advice);
    else
        fprintf(stderr, "phi3c %s: %s\n", cmd, msg);
    return CLI_EXIT_FAIL;
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    fprintf(stderr, "phi3c %s: ", cmd);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(run 'phi3c %s --help' for usage)\n", cmd);
    return CLI_EXIT_USAGE;
}

bool cli_is(const char *arg, const char *flag, const char *alias) {
    return strcmp(arg, flag) == 0 || (alias && strcmp(arg, alias) == 0);
}

const char *cli_value(const char *cmd, int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        cli_usage_error(cmd, "%s needs a value", argv[*i]);
        return NULL;
    }
    *i += 1;
    return argv[*i];
}

bool cli_int(const char *cmd, const char *flag, const char *text, long lo, long hi, long *out) {
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < lo || v > hi) {
        cli_usage_error(cmd, "%s wants a whole number in [%ld, %ld], got '%s'", flag, lo, hi, text);
        return false;
    }
    *out = v;
    return true;
}

bool cli_float(const char *cmd, const char *flag, const char *text, double lo, double hi,
               double *out) {
    char *end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !(v >= lo && v <= hi)) {
        cli_usage_error(cmd, "%s wants a number in [%g, %g], got '%s'", flag, lo, hi, text);
        return false;
    }
    *out = v;
    return true;
}

/* The cause of the first failed flush of stdout: glibc drops the buffer after a failed write, so
 * a later flush succeeds and errno no longer tells why the output was lost. */
static int stdout_errno;

bool cli_flush_stdout(void) {
    errno = 0;
    if (fflush(stdout) != 0 && !stdout_errno) stdout_errno = errno ? errno : EIO;
    return !ferror(stdout);
}

int cli_finish_stdout(const char *cmd, int rc) {
    if (cli_flush_stdout()) return rc;
    fprintf(stderr, "phi3c %s: cannot write to stdout: %s\n", cmd,
            stdout_errno ? strerror(stdout_errno) : "write error");
    return rc == CLI_EXIT_OK ? CLI_EXIT_FAIL : rc;
}

volatile sig_atomic_t cli_stop_signal;

static void on_stop_signal(int sig) {
    cli_stop_signal = sig;
}

void cli_catch_stop_signals(void) {
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE};
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < P3_ARRAY_LEN(sigs); i++) sigaction(sigs[i], &sa, NULL);
}

bool cli_wants_help(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (cli_is(argv[i], "--help", "-h")) return true;
    return false;
}

/* `--name=value` with a name of letters, digits and dashes; a prompt such as "--a b=c" is not. */
static bool is_long_flag_with_value(const char *a) {
    if (strncmp(a, "--", 2) != 0 || a[2] == '\0' || a[2] == '=') return false;
    for (const char *p = a + 2; *p; p++) {
        if (*p == '=') return true;
        if (!(*p == '-' || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9'))) return false;
    }
    return false;
}

char **cli_split_equals(int argc, char **argv, int *argc_out) {
    char **out = calloc((size_t)argc * 2 + 1, sizeof *out);
    if (!out) return NULL;
    int n = 0;
    bool rest = false;
    for (int i = 0; i < argc; i++) {
        char *eq = rest ? NULL : strchr(argv[i], '=');
        if (!rest && strcmp(argv[i], "--") == 0) rest = true;
        if (eq && is_long_flag_with_value(argv[i])) {
            *eq = '\0'; /* argv strings are writable (C11 5.1.2.2.1) */
            out[n++] = argv[i];
            out[n++] = eq + 1;
        } else {
            out[n++] = argv[i];
        }
    }
    *argc_out = n;
    return out;
}

uint64_t cli_random_seed(void) {
    uint64_t s = 0;
    if (getrandom(&s, sizeof s, 0) != (ssize_t)sizeof s) /* no entropy source: time and pid */
        s = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();
    return s & 0x7fffffffffffffffull;
}

int cli_core_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

void cli_progress_init(cli_progress *p, const char *label) {
    memset(p, 0, sizeof *p);
    p->label = label;
    p->t0 = p3_time_now();
    p->tty = isatty(STDERR_FILENO) == 1;
}

void cli_progress_draw(cli_progress *p, uint64_t done, uint64_t total, const char *detail) {
    enum { WIDTH = 24 };
    if (!p->tty || total == 0) return;
    double now = p3_time_now();
    if (p->drawn && now - p->last < 0.1 && done < total) return;
    p->last = now;
    p->drawn = true;
    double frac = (double)(done > total ? total : done) / (double)total;
    char bar[WIDTH + 1];
    int filled = (int)(frac * WIDTH);
    for (int i = 0; i < WIDTH; i++) bar[i] = i < filled ? '#' : '.';
    bar[WIDTH] = '\0';
    double el = now - p->t0, eta = frac > 0 ? el * (1.0 - frac) / frac : 0.0;
    fprintf(stderr, "\r%s [%s] %3.0f%%  %s  %s %.0f s\033[K", p->label, bar, 100.0 * frac,
            detail ? detail : "", done < total ? "ETA" : "in", done < total ? eta : el);
    fflush(stderr);
}

void cli_progress_end(cli_progress *p, bool keep) {
    if (!p->drawn) return;
    fputs(keep ? "\n" : "\r\033[K", stderr);
    fflush(stderr);
    p->drawn = false;
}

bool cli_progress_tensors(void *user, uint64_t done, uint64_t total) {
    char detail[64];
    snprintf(detail, sizeof detail, "%llu/%llu weight tensors", (unsigned long long)done,
             (unsigned long long)total);
    cli_progress_draw(user, done, total, detail);
    return true;
}
