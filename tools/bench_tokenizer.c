/* bench_tokenizer.c: encode throughput of phi3c's tokenizer on a text file, the same way
 * tools/bench_tokenizer.py times HF tokenizers: every document (split at "\n\n") encoded on its
 * own, then the whole file in one call. Prints one line per mode:
 *   mode=docs bytes=N tokens=N seconds=S mb_per_s=X tokens_per_s=Y checksum=C
 * (checksum: sum of id * position mod 2^32, to show both tokenizers produced the same ids).
 *
 * usage: bench_tokenizer TOKENIZER_PATH TEXT_FILE [REPEATS] */
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct bench_result {
    size_t bytes, tokens;
    double seconds;
    uint32_t checksum;
} bench_result;

static bool encode_span(const p3_tokenizer *tok, const char *s, size_t n, bench_result *r) {
    int32_t *ids = NULL;
    size_t n_ids = 0;
    p3_error err = {0};
    if (p3_tokenizer_encode(tok, s, n, 0, &ids, &n_ids, &err) != PHI3C_OK) {
        fprintf(stderr, "bench_tokenizer: %s\n", err.message);
        return false;
    }
    for (size_t i = 0; i < n_ids; i++) r->checksum += (uint32_t)ids[i] * (uint32_t)(i + 1);
    r->tokens += n_ids;
    r->bytes += n;
    p3_free(ids);
    return true;
}

/* Documents are the spans between "\n\n" separators (the separators are not encoded). */
static bool run_docs(const p3_tokenizer *tok, const char *text, size_t len, bench_result *r) {
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *q = memmem(p, (size_t)(end - p), "\n\n", 2);
        const char *stop = q ? q : end;
        if (!encode_span(tok, p, (size_t)(stop - p), r)) return false;
        p = q ? q + 2 : end;
    }
    return true;
}

static void report(const char *mode, const bench_result *r) {
    printf("mode=%s bytes=%zu tokens=%zu seconds=%.4f mb_per_s=%.2f tokens_per_s=%.0f "
           "checksum=%u\n",
           mode, r->bytes, r->tokens, r->seconds, r->bytes / r->seconds / 1e6,
           r->tokens / r->seconds, r->checksum);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: bench_tokenizer TOKENIZER_PATH TEXT_FILE [REPEATS]\n");
        return 2;
    }
    int repeats = argc > 3 ? atoi(argv[3]) : 3;
    p3_error err = {0};
    p3_tokenizer *tok = NULL;
    char *text = NULL;
    size_t len = 0;
    if (p3_tokenizer_load_path(argv[1], &tok, &err) != PHI3C_OK ||
        p3_file_read_all(argv[2], &text, &len, &err) != PHI3C_OK) {
        fprintf(stderr, "bench_tokenizer: %s\n", err.message);
        return 1;
    }
    /* best of `repeats` for each mode (the machine is shared and noisy) */
    bench_result best_docs = {0}, best_whole = {0};
    for (int i = 0; i < repeats; i++) {
        bench_result d = {0}, w = {0};
        double t0 = p3_time_now();
        if (!run_docs(tok, text, len, &d)) return 1;
        d.seconds = p3_time_now() - t0;
        t0 = p3_time_now();
        if (!encode_span(tok, text, len, &w)) return 1;
        w.seconds = p3_time_now() - t0;
        if (i == 0 || d.seconds < best_docs.seconds) best_docs = d;
        if (i == 0 || w.seconds < best_whole.seconds) best_whole = w;
    }
    report("docs", &best_docs);
    report("whole", &best_whole);
    p3_free(text);
    p3_tokenizer_free(tok);
    return 0;
}
