/* fixture_util.h: helpers the end-to-end tests share to read tests/fixtures files and to open a
 * session on a loaded model, so each suite states only what it compares. */
#ifndef P3_FIXTURE_UTIL_H
#define P3_FIXTURE_UTIL_H

#include "engine.h"
#include "harness.h"

#include <stdbool.h>
#include <stdint.h>

/* Whitespace separated decimal ids of a fixture file (seq<N>.ids, gen.*.ids); *n receives the
 * count. NULL (and the test failed) when the file is absent. Free with p3_free. */
int32_t *p3_fixture_read_ids(p3_test_ctx *t, const char *path, int *n);

/* A session on m with the given context, batch and all_logits; NULL (test failed) on error. */
p3_session *p3_fixture_session(p3_test_ctx *t, const p3_model *m, int n_ctx, int n_batch,
                               bool all_logits);

#endif
