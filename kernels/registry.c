/* registry.c: the list of compiled-in backends, their probe results (the one piece of global
 * mutable state: each filled on first use, under a lock, read-only afterwards) and opening one by
 * name. */
#include "backend.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

extern const p3_backend_iface p3_backend_cpu;
extern const p3_backend_iface p3_backend_level_zero;
extern const p3_backend_iface p3_backend_level_zero_npu;
extern const p3_backend_iface p3_backend_opencl;

/* Best first: `auto` picks the first available. Each backend folder adds its table here. */
static const p3_backend_iface *const backends[] = {
    NULL,               /* keeps the array non-empty until the first backend is listed */
    &p3_backend_cpu,    /* the default until a GPU backend is measured faster */
    &p3_backend_opencl, /* after cpu: only PoCL (CPU) has run it, no real GPU was measured */
    &p3_backend_level_zero,
    &p3_backend_level_zero_npu, /* after cpu: never run on an NPU yet */
};

/* Each backend is probed the first time something asks about it (opening `cpu` touches no GPU
 * library; `auto` stops at the first available), once, under the lock; results are then
 * read-only. */
static pthread_mutex_t probe_lock = PTHREAD_MUTEX_INITIALIZER;
static bool probed[P3_ARRAY_LEN(backends)];
static p3_backend_info probe_results[P3_ARRAY_LEN(backends)];

static void probe_one(size_t s) {
    const p3_backend_iface *b = backends[s];
    p3_backend_info *info = &probe_results[s];
    info->name = b->name;
    info->available = b->version == P3_BACKEND_IFACE_VERSION &&
                      b->probe(info->why, sizeof info->why, info->devices, sizeof info->devices);
    if (b->version != P3_BACKEND_IFACE_VERSION)
        snprintf(info->why, sizeof info->why, "built for interface version %d, engine has %d",
                 b->version, P3_BACKEND_IFACE_VERSION);
}

/* The probe result of slot s (a non-NULL entry), probing it on first use. */
static const p3_backend_info *probe_slot(size_t s) {
    pthread_mutex_lock(&probe_lock);
    if (!probed[s]) {
        probe_one(s);
        probed[s] = true;
    }
    pthread_mutex_unlock(&probe_lock);
    return &probe_results[s];
}

size_t p3_backend_count(void) {
    size_t n = 0;
    for (size_t i = 0; i < P3_ARRAY_LEN(backends); i++) n += backends[i] != NULL;
    return n;
}

/* Index among the non-NULL entries. */
static size_t slot_of(size_t i) {
    for (size_t s = 0; s < P3_ARRAY_LEN(backends); s++) {
        if (!backends[s]) continue;
        if (i-- == 0) return s;
    }
    return P3_ARRAY_LEN(backends);
}

void p3_backend_info_at(size_t i, p3_backend_info *info) {
    size_t s = slot_of(i);
    memset(info, 0, sizeof *info);
    if (s < P3_ARRAY_LEN(backends)) *info = *probe_slot(s);
}

static p3_status open_slot(size_t s, const p3_backend_options *opt, p3_backend *out,
                           p3_error *err) {
    const p3_backend_iface *b = backends[s];
    const p3_backend_info *info = probe_slot(s);
    if (!info->available)
        return p3_fail(err, PHI3C_ERR_UNAVAILABLE, "backend %s is not available: %s", b->name,
                       info->why);
    out->iface = b;
    out->ctx = NULL;
    p3_backend_options defaults = {0};
    return b->create(opt ? opt : &defaults, &out->ctx, err);
}

p3_status p3_backend_open(const char *name, const p3_backend_options *opt, p3_backend *out,
                          p3_error *err) {
    memset(out, 0, sizeof *out);
    bool any = !name || strcmp(name, "auto") == 0;
    for (size_t s = 0; s < P3_ARRAY_LEN(backends); s++) {
        if (!backends[s]) continue;
        if (any && probe_slot(s)->available) return open_slot(s, opt, out, err);
        if (!any && strcmp(backends[s]->name, name) == 0) return open_slot(s, opt, out, err);
    }
    if (any) return p3_fail(err, PHI3C_ERR_UNAVAILABLE, "no backend is available");
    return p3_fail(err, PHI3C_ERR_INVALID_ARG,
                   "unknown backend '%s' (known: cpu, opencl, level-zero, level-zero-npu)", name);
}

void p3_backend_close(p3_backend *be) {
    if (be && be->iface && be->ctx) be->iface->destroy(be->ctx);
    if (be) memset(be, 0, sizeof *be);
}
