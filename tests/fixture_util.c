/* fixture_util.c: fixture readers and session setup shared by the end-to-end test suites. */
#include "fixture_util.h"

#include <stdlib.h>

int32_t *p3_fixture_read_ids(p3_test_ctx *t, const char *path, int *n) {
    size_t size;
    char *text = p3_test_read_file(t, path, &size);
    if (!text) return NULL;
    /* Each id takes at least one digit and one separator, so size / 2 + 1 always suffices. */
    int32_t *ids = p3_malloc((size / 2 + 1) * sizeof *ids);
    int count = 0;
    for (char *p = text, *end;; p = end) {
        long v = strtol(p, &end, 10);
        if (end == p) break;
        ids[count++] = (int32_t)v;
    }
    p3_free(text);
    *n = count;
    return ids;
}

p3_session *p3_fixture_session(p3_test_ctx *t, const p3_model *m, int n_ctx, int n_batch,
                               bool all_logits) {
    p3_session_options so;
    p3_session_options_init(&so);
    so.n_ctx = n_ctx;
    so.n_batch = n_batch;
    so.all_logits = all_logits;
    p3_session *s = NULL;
    p3_error err = {0};
    CHECK_OK(p3_session_create(m, &so, &s, &err), &err);
    return s;
}
