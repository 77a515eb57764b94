/* cli.c: argument helpers and error printing shared by the subcommands. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

int cli_fail(const char *cmd, const p3_error *err) {
    const char *msg = err && err->message[0] ? err->message : phi3c_strerror(err ? err->status : 0);
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

bool cli_wants_help(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (cli_is(argv[i], "--help", "-h")) return true;
    return false;
}
