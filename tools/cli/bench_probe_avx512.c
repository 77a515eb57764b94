/* bench_probe_avx512.c: the AVX-512 loops of `phi3c bench`'s machine probe: a streaming read (the
 * STREAM-like bandwidth test) and a register-only vpdpbusd loop (the int8 dot-product peak). */
#include "bench.h"

#if defined(__x86_64__) && defined(__AVX512F__) && defined(__AVX512VNNI__)
#include <immintrin.h>

bool bench_probe_avx512_usable(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vnni");
}

/* Wrapping sum of the register's bytes as 64-bit lanes (the reduce intrinsics add in signed
 * arithmetic, which overflows on these meaningless sums). */
static uint64_t lanes_sum(__m512i v) {
    uint64_t lane[8], sum = 0;
    _mm512_storeu_si512((void *)lane, v);
    for (int i = 0; i < 8; i++) sum += lane[i];
    return sum;
}

uint64_t bench_read_avx512(const void *p, size_t n) {
    const uint8_t *b = p;
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i + 256 <= n; i += 256) {
        a0 = _mm512_add_epi64(a0, _mm512_load_si512((const void *)(b + i)));
        a1 = _mm512_add_epi64(a1, _mm512_load_si512((const void *)(b + i + 64)));
        a2 = _mm512_add_epi64(a2, _mm512_load_si512((const void *)(b + i + 128)));
        a3 = _mm512_add_epi64(a3, _mm512_load_si512((const void *)(b + i + 192)));
    }
    return lanes_sum(_mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3)));
}

/* 16 independent accumulators hide vpdpbusd's latency; the operands stay in registers, so this
 * is the issue rate of the instruction, an upper bound no real kernel reaches. */
int64_t bench_vnni_loop_avx512(int64_t iters) {
    __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(-2);
    /* distinct starting values, or the compiler merges the identical chains into one */
#define START(j) _mm512_set1_epi32(j)
    __m512i c0 = START(0), c1 = START(1), c2 = START(2), c3 = START(3), c4 = START(4),
            c5 = START(5), c6 = START(6), c7 = START(7), c8 = START(8), c9 = START(9),
            c10 = START(10), c11 = START(11), c12 = START(12), c13 = START(13), c14 = START(14),
            c15 = START(15);
#undef START
    for (int64_t i = 0; i < iters; i++) { /* named accumulators: they must stay in registers */
        c0 = _mm512_dpbusd_epi32(c0, a, b);
        c1 = _mm512_dpbusd_epi32(c1, a, b);
        c2 = _mm512_dpbusd_epi32(c2, a, b);
        c3 = _mm512_dpbusd_epi32(c3, a, b);
        c4 = _mm512_dpbusd_epi32(c4, a, b);
        c5 = _mm512_dpbusd_epi32(c5, a, b);
        c6 = _mm512_dpbusd_epi32(c6, a, b);
        c7 = _mm512_dpbusd_epi32(c7, a, b);
        c8 = _mm512_dpbusd_epi32(c8, a, b);
        c9 = _mm512_dpbusd_epi32(c9, a, b);
        c10 = _mm512_dpbusd_epi32(c10, a, b);
        c11 = _mm512_dpbusd_epi32(c11, a, b);
        c12 = _mm512_dpbusd_epi32(c12, a, b);
        c13 = _mm512_dpbusd_epi32(c13, a, b);
        c14 = _mm512_dpbusd_epi32(c14, a, b);
        c15 = _mm512_dpbusd_epi32(c15, a, b);
        __asm__ volatile("" : "+v"(a), "+v"(b)); /* keeps the loop from being folded */
    }
    __m512i s0 = _mm512_add_epi32(_mm512_add_epi32(c0, c1), _mm512_add_epi32(c2, c3));
    __m512i s1 = _mm512_add_epi32(_mm512_add_epi32(c4, c5), _mm512_add_epi32(c6, c7));
    __m512i s2 = _mm512_add_epi32(_mm512_add_epi32(c8, c9), _mm512_add_epi32(c10, c11));
    __m512i s3 = _mm512_add_epi32(_mm512_add_epi32(c12, c13), _mm512_add_epi32(c14, c15));
    __m512i s = _mm512_add_epi32(_mm512_add_epi32(s0, s1), _mm512_add_epi32(s2, s3));
    return (int64_t)lanes_sum(s);
}
#else
bool bench_probe_avx512_usable(void) {
    return false;
}
uint64_t bench_read_avx512(const void *p, size_t n) {
    (void)p;
    (void)n;
    return 0;
}
int64_t bench_vnni_loop_avx512(int64_t iters) {
    return iters;
}
#endif
