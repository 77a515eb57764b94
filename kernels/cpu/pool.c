/* pool.c: the CPU backend's persistent thread pool. A task is cut into chunks that whichever thread
 * is free claims in turn, and the task is over when every chunk is done: a thread the OS has not
 * scheduled yet (a busy machine) does not hold the others at the end, it finds no chunk left.
 * Workers spin briefly for the next task (ops arrive every few microseconds during decode) and then
 * sleep on a condition variable. */
#include "cpu.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ __volatile__("yield")
#else
#define cpu_relax() ((void)0)
#endif

#define SPIN_ROUNDS 2000

/* The task word: generation (24 bits) | chunks of the task (20) | next chunk to claim (20). A
 * claim is a compare-and-swap of the whole word, so a thread still holding an old generation can
 * never take a chunk of a newer task, and the count it compares with is that task's own. */
#define FIELD_BITS 20
#define FIELD_MASK ((1ull << FIELD_BITS) - 1)
#define GEN_SHIFT  (2 * FIELD_BITS)

static uint64_t task_word(uint64_t gen, uint64_t n_chunks, uint64_t next) {
    return gen << GEN_SHIFT | n_chunks << FIELD_BITS | next;
}
static uint64_t word_gen(uint64_t w) {
    return w >> GEN_SHIFT;
}
static uint64_t word_chunks(uint64_t w) {
    return (w >> FIELD_BITS) & FIELD_MASK;
}
static uint64_t word_next(uint64_t w) {
    return w & FIELD_MASK;
}

struct cpu_pool {
    int n_threads;
    pthread_t *threads;
    pthread_mutex_t lock;
    pthread_cond_t wake;    /* workers sleeping for a new generation */
    pthread_cond_t done_cv; /* the caller sleeping for the last chunk */
    _Atomic uint64_t word;  /* see task_word */
    atomic_int done;        /* chunks finished in the current generation */
    atomic_int sleepers;    /* workers in (or entering) pthread_cond_wait on `wake` */
    atomic_bool waiting;    /* the caller in (or entering) pthread_cond_wait on `done_cv` */
    atomic_bool quit;
    cpu_task_fn fn; /* written before the generation that uses them is published */
    void *arg;
};

typedef struct worker_arg {
    cpu_pool *pool;
    int index;
} worker_arg;

static worker_arg *worker_args_of(cpu_pool *pool) {
    return (worker_arg *)(pool->threads + pool->n_threads);
}

/* Claims and runs chunks of generation `gen` until none is left; returns the chunks it finished. */
static int run_chunks(cpu_pool *pool, uint64_t gen) {
    int finished = 0;
    uint64_t w = atomic_load_explicit(&pool->word, memory_order_acquire);
    for (;;) {
        if (word_gen(w) != gen || word_next(w) >= word_chunks(w)) return finished;
        uint64_t n = word_chunks(w), c = word_next(w);
        if (!atomic_compare_exchange_weak_explicit(&pool->word, &w, task_word(gen, n, c + 1),
                                                   memory_order_acq_rel, memory_order_acquire))
            continue; /* w now holds the current word */
        /* The generation cannot end while this chunk is unfinished: fn and arg are its own. */
        pool->fn(pool->arg, (int)c, (int)n);
        finished++;
        if (atomic_fetch_add(&pool->done, 1) + 1 == (int)n) { /* seq_cst: pairs with `waiting` */
            if (atomic_load(&pool->waiting)) { /* the caller is asleep for this last chunk */
                pthread_mutex_lock(&pool->lock);
                pthread_cond_broadcast(&pool->done_cv);
                pthread_mutex_unlock(&pool->lock);
            }
            return finished;
        }
        w = atomic_load_explicit(&pool->word, memory_order_acquire);
    }
}

/* Waits until the generation moves past `seen`; returns the new one. */
static uint64_t wait_generation(cpu_pool *pool, uint64_t seen) {
    for (int i = 0; i < SPIN_ROUNDS; i++) {
        uint64_t g = word_gen(atomic_load_explicit(&pool->word, memory_order_acquire));
        if (g != seen || atomic_load_explicit(&pool->quit, memory_order_relaxed)) return g;
        cpu_relax();
    }
    pthread_mutex_lock(&pool->lock);
    atomic_fetch_add(&pool->sleepers, 1); /* seq_cst: pairs with publish's load */
    uint64_t g;
    while ((g = word_gen(atomic_load(&pool->word))) == seen && !atomic_load(&pool->quit))
        pthread_cond_wait(&pool->wake, &pool->lock);
    atomic_fetch_sub(&pool->sleepers, 1);
    pthread_mutex_unlock(&pool->lock);
    return g;
}

static void *worker_main(void *p) {
    worker_arg *wa = p;
    cpu_pool *pool = wa->pool;
    uint64_t seen = 0;
    for (;;) {
        seen = wait_generation(pool, seen);
        if (atomic_load(&pool->quit)) return NULL;
        run_chunks(pool, seen);
    }
}

p3_status cpu_pool_create(int n_threads, cpu_pool **out, p3_error *err) {
    cpu_pool *pool = p3_calloc(1, sizeof *pool);
    if (!pool) return p3_fail(err, PHI3C_ERR_NOMEM, "cpu backend: out of memory for thread pool");
    pool->n_threads = n_threads;
    size_t extra = (size_t)n_threads * (sizeof(pthread_t) + sizeof(worker_arg));
    pool->threads = p3_calloc(1, extra);
    if (!pool->threads) {
        p3_free(pool);
        return p3_fail(err, PHI3C_ERR_NOMEM, "cpu backend: out of memory for thread pool");
    }
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pthread_cond_init(&pool->done_cv, NULL);
    atomic_init(&pool->word, 0);
    atomic_init(&pool->done, 0);
    atomic_init(&pool->sleepers, 0);
    atomic_init(&pool->waiting, false);
    atomic_init(&pool->quit, false);
    worker_arg *args = worker_args_of(pool);
    for (int i = 1; i < n_threads; i++) {
        args[i].pool = pool;
        args[i].index = i;
        if (pthread_create(&pool->threads[i], NULL, worker_main, &args[i]) != 0) {
            pool->n_threads = i; /* destroy joins the ones that started */
            cpu_pool_destroy(pool);
            return p3_fail(err, PHI3C_ERR_IO, "cpu backend: could not start thread %d of %d", i,
                           n_threads);
        }
    }
    *out = pool;
    return PHI3C_OK;
}

/* Makes a new word visible and wakes the workers that went to sleep (a spinning one sees it). */
static void publish(cpu_pool *pool, uint64_t word) {
    atomic_store(&pool->word, word); /* seq_cst: pairs with the sleepers' increment */
    if (atomic_load(&pool->sleepers) > 0) {
        pthread_mutex_lock(&pool->lock);
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->lock);
    }
}

void cpu_pool_destroy(cpu_pool *pool) {
    if (!pool) return;
    if (pool->n_threads > 1) {
        atomic_store(&pool->quit, true);
        pthread_mutex_lock(&pool->lock);
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->lock);
        for (int i = 1; i < pool->n_threads; i++) pthread_join(pool->threads[i], NULL);
    }
    pthread_mutex_destroy(&pool->lock);
    pthread_cond_destroy(&pool->wake);
    pthread_cond_destroy(&pool->done_cv);
    p3_free(pool->threads);
    p3_free(pool);
}

int cpu_pool_threads(const cpu_pool *pool) {
    return pool->n_threads;
}

void cpu_pool_run_chunks(cpu_pool *pool, cpu_task_fn fn, void *arg, int n_chunks) {
    if (n_chunks < 1) return;
    if (pool->n_threads == 1 || n_chunks == 1) {
        for (int c = 0; c < n_chunks; c++) fn(arg, c, n_chunks);
        return;
    }
    if (n_chunks > (int)FIELD_MASK) n_chunks = (int)FIELD_MASK; /* callers stay far below */
    uint64_t gen = word_gen(atomic_load_explicit(&pool->word, memory_order_relaxed)) + 1;
    gen &= (1ull << (64 - GEN_SHIFT)) - 1;
    pool->fn = fn;
    pool->arg = arg;
    atomic_store_explicit(&pool->done, 0, memory_order_relaxed);
    publish(pool, task_word(gen, (uint64_t)n_chunks, 0));
    run_chunks(pool, gen);
    /* Every chunk is claimed now; wait for the ones other threads hold. Spin briefly (they end
     * about together with ours), then sleep: on a busy machine a spinning caller would take the
     * core the holder of the last chunk needs. */
    for (int i = 0; i < SPIN_ROUNDS; i++) {
        if (atomic_load_explicit(&pool->done, memory_order_acquire) == n_chunks) return;
        cpu_relax();
    }
    pthread_mutex_lock(&pool->lock);
    atomic_store(&pool->waiting, true);
    while (atomic_load(&pool->done) != n_chunks) pthread_cond_wait(&pool->done_cv, &pool->lock);
    atomic_store(&pool->waiting, false);
    pthread_mutex_unlock(&pool->lock);
}

void cpu_pool_run(cpu_pool *pool, cpu_task_fn fn, void *arg) {
    cpu_pool_run_chunks(pool, fn, arg, pool->n_threads);
}
