/* outfile.c: how phi3c writes an output file (quantize's model, logits): only over a regular file
 * or at a new path, never over a device, FIFO, socket or directory (even when replacing is
 * allowed), and always through a temp file beside it that is fsync'ed and renamed into place, so
 * a reader never sees a partial file. */
#include "p3.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

p3_status p3_output_check(const char *path, bool replace, p3_error *err) {
    if (!path || !*path) return p3_fail(err, PHI3C_ERR_INVALID_ARG, "no output path given");
    p3_error what = {0};
    switch (p3_path_check(path, &what)) {
    case P3_PATH_MISSING:
        return PHI3C_OK;
    case P3_PATH_FILE:
        return replace ? PHI3C_OK : p3_fail(err, PHI3C_ERR_EXISTS, "%s: exists", path);
    default:
        /* rename() would put a regular file in place of a device node (/dev/null as root) */
        return p3_fail(err, PHI3C_ERR_INVALID_ARG,
                       "%s (output files are written only as a new file or over a regular file)",
                       what.message);
    }
}

static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return p3_strdup(".");
    if (slash == path) return p3_strdup("/");
    size_t n = (size_t)(slash - path);
    char *d = p3_malloc(n + 1);
    if (d) {
        memcpy(d, path, n);
        d[n] = 0;
    }
    return d;
}

p3_status p3_output_temp(const char *path, char **tmp_path, int *fd, p3_error *err) {
    *tmp_path = NULL;
    *fd = -1;
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    char *dir = dir_of(path);
    size_t n = (dir ? strlen(dir) : 0) + strlen(base) + 32;
    char *tmp = p3_malloc(n);
    if (!dir || !tmp) {
        p3_free(dir);
        p3_free(tmp);
        return p3_fail(err, PHI3C_ERR_NOMEM, "%s: out of memory", path);
    }
    snprintf(tmp, n, "%s/.%s.tmp-XXXXXX", dir, base);
    p3_free(dir);
    *fd = mkostemp(tmp, O_CLOEXEC);
    if (*fd < 0) {
        p3_status st = p3_fail(err, PHI3C_ERR_IO, "%s: cannot create a temp file in its folder: %s",
                               path, strerror(errno));
        p3_free(tmp);
        return st;
    }
    *tmp_path = tmp;
    return PHI3C_OK;
}

static void sync_dir(const char *path) {
    char *dir = dir_of(path);
    if (!dir) return;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd); /* best effort: the rename is already visible */
        close(fd);
    }
    p3_free(dir);
}

p3_status p3_output_commit(const char *tmp_path, const char *path, bool replace, p3_error *err) {
    /* checked again: the path may have changed while the file was written */
    p3_status st = p3_output_check(path, replace, err);
    if (st != PHI3C_OK) return st;
    int rc;
    if (replace) {
        rc = rename(tmp_path, path);
    } else { /* atomic no-replace: link + unlink where renameat2 is missing */
        rc = renameat2(AT_FDCWD, tmp_path, AT_FDCWD, path, RENAME_NOREPLACE);
        if (rc != 0 && (errno == EINVAL || errno == ENOSYS)) {
            rc = link(tmp_path, path);
            if (rc == 0) unlink(tmp_path);
        }
    }
    if (rc != 0) {
        if (errno == EEXIST) return p3_fail(err, PHI3C_ERR_EXISTS, "%s: exists", path);
        return p3_fail(err, PHI3C_ERR_IO, "%s: cannot rename the temp file into place: %s", path,
                       strerror(errno));
    }
    sync_dir(path);
    return PHI3C_OK;
}
