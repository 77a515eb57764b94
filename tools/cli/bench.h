/* bench.h: the pieces of `phi3c bench` shared between its files: this machine's measured limits
 * (memory read bandwidth, int8 dot-product peak), the synthetic Phi-3-mini model and the roofline
 * plot. */
#ifndef P3_CLI_BENCH_H
#define P3_CLI_BENCH_H

#include "engine.h"

#include <stdio.h>

/* ---- bench_machine.c: limits measured in this process */
typedef struct bench_bandwidth {
    double median_gbs, min_gbs, max_gbs; /* over the repetitions */
    size_t bytes;                        /* bytes read per repetition */
    int threads;
    int n;              /* samples kept (a run that measures twice merges both sets) */
    double samples[64]; /* GB/s */
} bench_bandwidth;

/* Reads a `bytes` buffer (touched first) with `threads` threads, `reps` times; GB/s = 1e9 B/s. */
bool bench_read_bandwidth(size_t bytes, int threads, int reps, bench_bandwidth *out);
/* Adds b's samples to a (same buffer size and threads) and recomputes median and range. */
void bench_bandwidth_merge(bench_bandwidth *a, const bench_bandwidth *b);

typedef struct bench_peak {
    const char *isa;    /* "avx512-vnni", or NULL when no int8 dot-product loop exists here */
    double median_gops; /* int8 ops per second / 1e9, 2 ops per multiply-add */
    int threads;
} bench_peak;

/* Register-only vpdpbusd loop on `threads` threads, `reps` times. */
void bench_int8_peak(int threads, int reps, bench_peak *out);

/* Peak resident set size of this process in bytes (VmHWM, else getrusage); resettable on Linux. */
size_t bench_peak_rss(void);
size_t bench_current_rss(void);
/* Starts a new high-water mark at the current RSS (Linux >= 4.0); false when not possible. */
bool bench_reset_peak_rss(void);

double bench_median(double *v, int n); /* sorts v */

/* ---- bench_probe_avx512.c: the ISA-specific loops (x86-64 with AVX-512 only) */
bool bench_probe_avx512_usable(void);
/* Sums the bytes [p, p + n) as 64-bit lanes (n a multiple of 256, p 64-byte aligned). */
uint64_t bench_read_avx512(const void *p, size_t n);
/* Runs `iters` iterations of 16 independent vpdpbusd; returns a value that depends on them. */
int64_t bench_vnni_loop_avx512(int64_t iters);
enum { BENCH_VNNI_PER_ITER = 16, BENCH_VNNI_OPS = 128 /* 16 lanes x 4 multiply-adds x 2 */ };

/* ---- bench_synth.c: a full-shape Phi-3-mini in memory (random INT4 weights, no file) */
typedef struct bench_synth {
    p3_model_source src;
    void *blobs[8]; /* shared data buffers (every layer views the same bytes) */
    char path[32];
} bench_synth;

/* `layers` transformer blocks (32 for Phi-3-mini; fewer for smoke tests), symmetric INT4-g128
 * linear weights of sane random values, f16 embedding, unit norms. */
p3_status bench_synth_phi3_mini(int layers, bench_synth *out, p3_error *err);
void bench_synth_free(bench_synth *s);

/* ---- bench_verify.c: the cost of a k-token forward at a depth, relative to one token */
enum { BENCH_VERIFY_KS = 5, BENCH_VERIFY_REPS = 64 };
typedef struct bench_verify {
    int depth;
    int k[BENCH_VERIFY_KS];        /* 1, 2, 4, 8, 16 */
    double sec[BENCH_VERIFY_KS];   /* median time of one forward of k tokens */
    double ratio[BENCH_VERIFY_KS]; /* sec / sec of k = 1 */
    double best[BENCH_VERIFY_KS];  /* fastest of the repetitions (a busy machine only slows) */
    double best_ratio[BENCH_VERIFY_KS];
} bench_verify;

/* Prefills `depth` tokens in s (made with n_ctx >= depth + 16, n_batch >= 16), then times
 * forwards of k tokens with the logits of every row, rolling the cache back after each; the
 * sizes alternate within each of `reps` repetitions. */
p3_status bench_verify_cost(p3_session *s, int depth, int reps, bench_verify *out, p3_error *err);

/* ---- bench_svg.c: a hand-written log-log roofline plot */
typedef struct bench_point {
    char label[48];
    double intensity; /* int8 ops per byte of memory traffic */
    double gops;
} bench_point;

bool bench_write_roofline(const char *path, double bandwidth_gbs, double peak_gops,
                          const bench_point *pts, int n, const char *title);

#endif /* P3_CLI_BENCH_H */
