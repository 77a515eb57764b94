/* registry.c: the list of compiled-in backends, their probe results (the one piece of global
 * mutable state: filled once, under a lock, read-only afterwards) and opening one by name. */
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

static pthread_once_t probe_once = PTHREAD_ONCE_INIT;
static p3_backend_info probe_results[P3_ARRAY_LEN(backends)];

static void probe_all(void) {
    for (size_t i = 0; i < P3_ARRAY_LEN(backends); i++) {
        const p3_backend_iface *b = backends[i];
        p3_backend_info *info = &probe_results[i];
        if (!b) continue;
        info->name = b->name;
        info->available =
            b->version == P3_BACKEND_IFACE_VERSION &&
            b->probe(info->why, sizeof info->why, info->devices, sizeof info->devices);
        if (b->version != P3_BACKEND_IFACE_VERSION)
            snprintf(info->why, sizeof info->why, "built for interface version %d, engine has %d",
                     b->version, P3_BACKEND_IFACE_VERSION);
    }
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
    pthread_once(&probe_once, probe_all);
    size_t s = slot_of(i);
    memset(info, 0, sizeof *info);
    if (s < P3_ARRAY_LEN(backends)) *info = probe_results[s];
}

static p3_status open_slot(size_t s, const p3_backend_options *opt, p3_backend *out,
                           p3_error *err) {
    const p3_backend_iface *b = backends[s];
    if (!probe_results[s].available)
        return p3_fail(err, PHI3C_ERR_UNAVAILABLE, "backend %s is not available: %s", b->name,
                       probe_results[s].why);
    out->iface = b;
    out->ctx = NULL;
    p3_backend_options defaults = {0};
    return b->create(opt ? opt : &defaults, &out->ctx, err);
}

p3_status p3_backend_open(const char *name, const p3_backend_options *opt, p3_backend *out,
                          p3_error *err) {
    pthread_once(&probe_once, probe_all);
    memset(out, 0, sizeof *out);
    bool any = !name || strcmp(name, "auto") == 0;
    for (size_t s = 0; s < P3_ARRAY_LEN(backends); s++) {
        if (!backends[s]) continue;
        if (any && probe_results[s].available) return open_slot(s, opt, out, err);
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
