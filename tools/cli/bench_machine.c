/* bench_machine.c: what this machine can do, measured in the same process as the kernels it is
 * compared with: memory read bandwidth (a STREAM-like read of a large buffer, split over threads),
 * the int8 dot-product peak (a register-only loop), and peak RSS. */
#include "bench.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

double bench_median(double *v, int n) {
    for (int i = 1; i < n; i++) /* insertion sort: n is a handful of repetitions */
        for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    if (n == 0) return 0;
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Portable read loop for machines without the AVX-512 one. */
static uint64_t read_plain(const void *p, size_t n) {
    const uint64_t *w = p;
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = 0; i + 4 <= n / 8; i += 4) {
        s0 += w[i];
        s1 += w[i + 1];
        s2 += w[i + 2];
        s3 += w[i + 3];
    }
    return s0 + s1 + s2 + s3;
}

/* Threads start together at a barrier; the caller times from before the barrier opens to after
 * every thread has joined, so the figure is the aggregate bandwidth. */
typedef struct read_job {
    const uint8_t *p;
    size_t n;
    bool avx512;
    pthread_barrier_t *go;
    uint64_t sink;
    double seconds;
} read_job;

static void *read_worker(void *arg) {
    read_job *j = arg;
    pthread_barrier_wait(j->go);
    double t0 = p3_time_now();
    j->sink = j->avx512 ? bench_read_avx512(j->p, j->n) : read_plain(j->p, j->n);
    j->seconds = p3_time_now() - t0;
    return NULL;
}

enum { MAX_THREADS = 64, MAX_REPS = 64 };

static double timed_read(const uint8_t *buf, size_t bytes, int threads, bool avx512) {
    read_job jobs[MAX_THREADS];
    pthread_t tid[MAX_THREADS];
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, (unsigned)threads);
    size_t slice = bytes / (size_t)threads / 256 * 256;
    int started = 0;
    for (int t = 0; t < threads; t++) {
        jobs[t] = (read_job){.p = buf + (size_t)t * slice, .n = slice, .avx512 = avx512, .go = &go};
        if (t > 0 && pthread_create(&tid[t], NULL, read_worker, &jobs[t]) != 0) break;
        started++;
    }
    if (started < threads) { /* cannot happen short of resource exhaustion: measure nothing */
        for (int t = 1; t < started; t++) pthread_cancel(tid[t]);
        pthread_barrier_destroy(&go);
        return -1;
    }
    read_worker(&jobs[0]);
    double slowest = jobs[0].seconds;
    for (int t = 1; t < threads; t++) {
        pthread_join(tid[t], NULL);
        if (jobs[t].seconds > slowest) slowest = jobs[t].seconds;
    }
    pthread_barrier_destroy(&go);
    volatile uint64_t keep = jobs[0].sink;
    (void)keep;
    return slowest > 0 ? (double)slice * (double)threads / slowest : -1;
}

static void summarize(bench_bandwidth *b) {
    double v[MAX_REPS];
    int n = b->n < MAX_REPS ? b->n : MAX_REPS;
    memcpy(v, b->samples, (size_t)n * sizeof v[0]);
    b->median_gbs = bench_median(v, n); /* sorted now */
    b->min_gbs = n ? v[0] : 0;
    b->max_gbs = n ? v[n - 1] : 0;
}

bool bench_read_bandwidth(size_t bytes, int threads, int reps, bench_bandwidth *out) {
    memset(out, 0, sizeof *out);
    if (threads < 1 || threads > MAX_THREADS || reps < 1 || reps > MAX_REPS) return false;
    uint8_t *buf = p3_malloc_large(bytes); /* the pages the weights get */
    if (!buf) return false;
    memset(buf, 1, bytes); /* fault every page in before timing */
    bool avx512 = bench_probe_avx512_usable();
    double gbs[MAX_REPS];
    int n = 0;
    for (int r = 0; r < reps; r++) {
        double bps = timed_read(buf, bytes, threads, avx512);
        if (bps > 0) gbs[n++] = bps / 1e9;
    }
    p3_free_aligned(buf);
    if (n == 0) return false;
    memcpy(out->samples, gbs, (size_t)n * sizeof gbs[0]);
    out->n = n;
    out->bytes = bytes;
    out->threads = threads;
    summarize(out);
    return true;
}

void bench_bandwidth_merge(bench_bandwidth *a, const bench_bandwidth *b) {
    for (int i = 0; i < b->n && a->n < (int)(sizeof a->samples / sizeof a->samples[0]); i++)
        a->samples[a->n++] = b->samples[i];
    summarize(a);
}

/* The peak is a property of a core, not of the machine's current load: it is timed in the
 * thread's own CPU time, so time slices given to other processes do not count. */
static double thread_cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct peak_job {
    int64_t iters;
    pthread_barrier_t *go;
    int64_t sink;
    double seconds;
} peak_job;

static void *peak_worker(void *arg) {
    peak_job *j = arg;
    pthread_barrier_wait(j->go);
    double t0 = thread_cpu_seconds();
    j->sink = bench_vnni_loop_avx512(j->iters);
    j->seconds = thread_cpu_seconds() - t0;
    return NULL;
}

static double timed_peak(int threads, int64_t iters) {
    peak_job jobs[MAX_THREADS];
    pthread_t tid[MAX_THREADS];
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, (unsigned)threads);
    for (int t = 0; t < threads; t++) {
        jobs[t] = (peak_job){.iters = iters, .go = &go};
        if (t > 0 && pthread_create(&tid[t], NULL, peak_worker, &jobs[t]) != 0) {
            for (int u = 1; u < t; u++) pthread_cancel(tid[u]);
            pthread_barrier_destroy(&go);
            return -1;
        }
    }
    peak_worker(&jobs[0]);
    double slowest = jobs[0].seconds;
    for (int t = 1; t < threads; t++) {
        pthread_join(tid[t], NULL);
        if (jobs[t].seconds > slowest) slowest = jobs[t].seconds;
    }
    pthread_barrier_destroy(&go);
    double ops = (double)iters * BENCH_VNNI_PER_ITER * BENCH_VNNI_OPS * threads;
    return slowest > 0 ? ops / slowest : -1;
}

void bench_int8_peak(int threads, int reps, bench_peak *out) {
    memset(out, 0, sizeof *out);
    out->threads = threads;
    if (!bench_probe_avx512_usable() || threads < 1 || threads > MAX_THREADS || reps < 1 ||
        reps > MAX_REPS)
        return;
    double gops[MAX_REPS];
    int n = 0;
    for (int r = 0; r < reps; r++) {
        double ops = timed_peak(threads, 20 * 1000 * 1000); /* ~0.1-0.3 s */
        if (ops > 0) gops[n++] = ops / 1e9;
    }
    if (n == 0) return;
    out->isa = "avx512-vnni";
    out->median_gops = bench_median(gops, n);
}

/* A "Name:   123 kB" line of /proc/self/status, in bytes; 0 when absent. */
static size_t proc_status_kb(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    size_t len = strlen(key), kb = 0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, len) == 0 && line[len] == ':') {
            kb = (size_t)strtoull(line + len + 1, NULL, 10);
            break;
        }
    fclose(f);
    return kb * 1024;
}

size_t bench_peak_rss(void) {
    size_t hwm = proc_status_kb("VmHWM");
    if (hwm) return hwm;
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (size_t)ru.ru_maxrss * 1024; /* kB on Linux */
}

size_t bench_current_rss(void) {
    return proc_status_kb("VmRSS");
}

bool bench_reset_peak_rss(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return false;
    bool ok = fputs("5", f) >= 0;
    return fclose(f) == 0 && ok;
}
