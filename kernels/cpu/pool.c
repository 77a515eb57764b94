/* pool.c: the CPU backend's persistent thread pool. Workers spin briefly on a generation counter
 * (ops arrive every few microseconds during decode) and then sleep on a condition variable. */
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

struct cpu_pool {
    int n_threads;
    pthread_t *threads;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_cond_t done;    /* signalled when the last worker finishes a task */
    atomic_uint generation; /* bumped for every task */
    atomic_int pending;     /* workers still running the current task */
    atomic_bool quit;
    cpu_task_fn fn;
    void *arg;
};

typedef struct worker_arg {
    cpu_pool *pool;
    int index;
} worker_arg;

static worker_arg *worker_args_of(cpu_pool *pool) {
    return (worker_arg *)(pool->threads + pool->n_threads);
}

/* Waits until the generation moves past `seen`; returns the new value. */
static unsigned wait_generation(cpu_pool *pool, unsigned seen) {
    for (int i = 0; i < SPIN_ROUNDS; i++) {
        unsigned g = atomic_load_explicit(&pool->generation, memory_order_acquire);
        if (g != seen) return g;
        cpu_relax();
    }
    pthread_mutex_lock(&pool->lock);
    unsigned g;
    while ((g = atomic_load_explicit(&pool->generation, memory_order_acquire)) == seen)
        pthread_cond_wait(&pool->wake, &pool->lock);
    pthread_mutex_unlock(&pool->lock);
    return g;
}

static void *worker_main(void *p) {
    worker_arg *wa = p;
    cpu_pool *pool = wa->pool;
    unsigned seen = 0;
    for (;;) {
        seen = wait_generation(pool, seen);
        if (atomic_load(&pool->quit)) return NULL;
        pool->fn(pool->arg, wa->index, pool->n_threads);
        if (atomic_fetch_sub_explicit(&pool->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&pool->lock);
            pthread_cond_broadcast(&pool->done);
            pthread_mutex_unlock(&pool->lock);
        }
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
    pthread_cond_init(&pool->done, NULL);
    atomic_init(&pool->generation, 0);
    atomic_init(&pool->pending, 0);
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

static void publish(cpu_pool *pool) {
    pthread_mutex_lock(&pool->lock);
    atomic_fetch_add_explicit(&pool->generation, 1, memory_order_release);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
}

void cpu_pool_destroy(cpu_pool *pool) {
    if (!pool) return;
    if (pool->n_threads > 1) {
        atomic_store(&pool->quit, true);
        publish(pool);
        for (int i = 1; i < pool->n_threads; i++) pthread_join(pool->threads[i], NULL);
    }
    pthread_mutex_destroy(&pool->lock);
    pthread_cond_destroy(&pool->wake);
    pthread_cond_destroy(&pool->done);
    p3_free(pool->threads);
    p3_free(pool);
}

int cpu_pool_threads(const cpu_pool *pool) {
    return pool->n_threads;
}

void cpu_pool_run(cpu_pool *pool, cpu_task_fn fn, void *arg) {
    if (pool->n_threads == 1) {
        fn(arg, 0, 1);
        return;
    }
    pool->fn = fn;
    pool->arg = arg;
    atomic_store_explicit(&pool->pending, pool->n_threads - 1, memory_order_release);
    publish(pool);
    fn(arg, 0, pool->n_threads);
    /* Spin briefly (the others usually finish together with us), then sleep: on a busy machine
     * a spinning caller would take the core a worker needs. */
    for (int i = 0; i < SPIN_ROUNDS; i++) {
        if (atomic_load_explicit(&pool->pending, memory_order_acquire) == 0) return;
        cpu_relax();
    }
    pthread_mutex_lock(&pool->lock);
    while (atomic_load_explicit(&pool->pending, memory_order_acquire) != 0)
        pthread_cond_wait(&pool->done, &pool->lock);
    pthread_mutex_unlock(&pool->lock);
}
