/* quantize.c: multi-threaded whole-matrix quantization. Workers take chunks of rows from a shared
 * counter; each row's result depends on that row only, so any thread count gives the same bytes. */
#include "quantize.h"

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

enum { ROWS_PER_CHUNK = 16, MAX_THREADS = 256 };

typedef struct quant_shared {
    const p3_quant_matrix_args *a;
    uint8_t *out;
    size_t row_bytes;
    atomic_llong next_row;  /* next chunk start */
    atomic_llong rows_done; /* for progress */
    atomic_bool stop;       /* an error or a cancel */
    pthread_mutex_t err_lock;
    p3_status status; /* first failure, under err_lock */
    p3_error err;
} quant_shared;

bool p3_quant_matrix_bytes(p3_dtype fmt, int64_t rows, int64_t cols, size_t *bytes) {
    if (rows < 0 || cols <= 0) return false;
    size_t block;
    if (fmt == P3_DT_I4G128S)
        block = sizeof(p3_block_i4s);
    else if (fmt == P3_DT_I4G128A)
        block = sizeof(p3_block_i4a);
    else
        return false;
    size_t row_bytes;
    return p3_mul_size((size_t)p3_groups(cols), block, &row_bytes) &&
           p3_mul_size(row_bytes, (size_t)rows, bytes);
}

static void record_failure(quant_shared *s, p3_status st, const p3_error *err) {
    pthread_mutex_lock(&s->err_lock);
    if (s->status == PHI3C_OK) {
        s->status = st;
        if (err) s->err = *err;
    }
    pthread_mutex_unlock(&s->err_lock);
    atomic_store(&s->stop, true);
}

/* Quantizes one chunk of rows; returns false when there was nothing left or the run stopped. */
static bool quantize_chunk(quant_shared *s, float *row) {
    const p3_quant_matrix_args *a = s->a;
    if (atomic_load(&s->stop)) return false;
    long long first = atomic_fetch_add(&s->next_row, ROWS_PER_CHUNK);
    if (first >= a->rows) return false;
    long long end = P3_MIN(first + ROWS_PER_CHUNK, (long long)a->rows);
    for (long long r = first; r < end; r++) {
        p3_error err = {0};
        p3_status st = a->fetch(a->fetch_user, r, row, &err);
        if (st != PHI3C_OK) {
            record_failure(s, st, &err);
            return false;
        }
        void *dst = s->out + (size_t)r * s->row_bytes;
        if (a->fmt == P3_DT_I4G128S)
            p3_quantize_row_i4s(row, a->cols, dst, a->method);
        else
            p3_quantize_row_i4a(row, a->cols, dst, a->method);
    }
    atomic_fetch_add(&s->rows_done, end - first);
    return true;
}

static void *worker_main(void *arg) {
    quant_shared *s = arg;
    float *row = p3_malloc((size_t)s->a->cols * sizeof *row);
    if (!row) {
        record_failure(s, PHI3C_ERR_NOMEM, NULL);
        return NULL;
    }
    while (quantize_chunk(s, row)) {
    }
    p3_free(row);
    return NULL;
}

static int thread_count(int requested) {
    if (requested > 0) return P3_MIN(requested, MAX_THREADS);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)P3_MIN(n, (long)MAX_THREADS) : 1;
}

/* The calling thread works too, reporting progress between its chunks. */
static void run_caller_share(quant_shared *s, float *row) {
    const p3_quant_matrix_args *a = s->a;
    while (quantize_chunk(s, row)) {
        if (a->progress && !a->progress(a->progress_user, atomic_load(&s->rows_done), a->rows)) {
            p3_error e = {0};
            p3_fail(&e, PHI3C_ERR_INTERRUPTED, "quantization cancelled");
            record_failure(s, PHI3C_ERR_INTERRUPTED, &e);
        }
    }
}

p3_status p3_quantize_matrix(const p3_quant_matrix_args *a, void *out, p3_error *err) {
    size_t total;
    if (!a || !out || !a->fetch || !p3_quant_matrix_bytes(a->fmt, a->rows, a->cols, &total))
        return p3_fail(err, PHI3C_ERR_INVALID_ARG, "quantize: bad matrix arguments");
    quant_shared s = {.a = a, .out = out, .row_bytes = total / (size_t)P3_MAX(a->rows, 1)};
    if (a->rows == 0) return PHI3C_OK;
    atomic_init(&s.next_row, 0);
    atomic_init(&s.rows_done, 0);
    atomic_init(&s.stop, false);
    pthread_mutex_init(&s.err_lock, NULL);
    float *row = p3_malloc((size_t)a->cols * sizeof *row);
    if (!row) {
        pthread_mutex_destroy(&s.err_lock);
        return p3_fail(err, PHI3C_ERR_NOMEM, "quantize: out of memory for a %lld-column row",
                       (long long)a->cols);
    }
    int n = thread_count(a->n_threads);
    pthread_t tids[MAX_THREADS];
    int started = 0;
    for (int i = 1; i < n; i++) {
        if (pthread_create(&tids[started], NULL, worker_main, &s) != 0) break;
        started++;
    }
    run_caller_share(&s, row);
    for (int i = 0; i < started; i++) pthread_join(tids[i], NULL);
    p3_free(row);
    pthread_mutex_destroy(&s.err_lock);
    if (s.status != PHI3C_OK) {
        if (err) *err = s.err;
        if (err && !err->message[0])
            p3_fail(err, s.status, "quantize: %s", phi3c_strerror(s.status));
        return s.status;
    }
    if (a->progress) a->progress(a->progress_user, a->rows, a->rows);
    return PHI3C_OK;
}

typedef struct f32_source {
    const float *src;
    int64_t cols;
} f32_source;

static p3_status fetch_f32_row(void *user, int64_t row, float *out, p3_error *err) {
    (void)err;
    const f32_source *f = user;
    const float *src = f->src + (size_t)row * (size_t)f->cols;
    for (int64_t j = 0; j < f->cols; j++) out[j] = src[j];
    return PHI3C_OK;
}

p3_status p3_quantize_matrix_f32(const float *src, int64_t rows, int64_t cols, p3_dtype fmt,
                                 p3_quant_method method, int n_threads, void *out, p3_error *err) {
    if (!src) return p3_fail(err, PHI3C_ERR_INVALID_ARG, "quantize: NULL source");
    f32_source f = {src, cols};
    p3_quant_matrix_args a = {.rows = rows,
                              .cols = cols,
                              .fmt = fmt,
                              .method = method,
                              .fetch = fetch_f32_row,
                              .fetch_user = &f,
                              .n_threads = n_threads};
    return p3_quantize_matrix(&a, out, err);
}
