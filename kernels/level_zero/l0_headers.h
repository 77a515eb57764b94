/* l0_headers.h: whether the Level Zero headers (libze-dev) were there at build time, for the GPU
 * and NPU backends, and the probe both report when they were not. */
#ifndef P3_L0_HEADERS_H
#define P3_L0_HEADERS_H

#if defined(__has_include)
#if __has_include(<level_zero/ze_api.h>)
#define P3_HAVE_ZE_HEADERS 1
#endif
#endif

#ifndef P3_HAVE_ZE_HEADERS
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* Built without libze-dev: the backend is listed but explains why it cannot run. */
static inline bool p3_l0_probe_without_headers(char *why, size_t why_len, char *devices,
                                               size_t devices_len) {
    snprintf(why, why_len, "built without the Level Zero headers (install libze-dev)");
    if (devices_len) devices[0] = '\0';
    return false;
}
#endif

#endif
