/* phi3c.h: the one public header of phi3c, a C11 inference engine for the Phi-3 family.
 * Opaque handles, one prefix, every call returns a phi3c_status; the library never prints or exits. */
#ifndef PHI3C_H
#define PHI3C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PHI3C_VERSION "0.1.0"

typedef enum phi3c_status {
    PHI3C_OK = 0,
    PHI3C_ERR_INVALID_ARG,  /* the caller passed something impossible (NULL, bad size, bad flag) */
    PHI3C_ERR_IO,           /* open/read/write/mmap/rename failed; the message names the file */
    PHI3C_ERR_FORMAT,       /* a file is malformed, truncated or hostile; the message says where */
    PHI3C_ERR_UNSUPPORTED,  /* valid input this build cannot handle (architecture, dtype, op) */
    PHI3C_ERR_NOMEM,        /* host allocation failed */
    PHI3C_ERR_CHECKSUM,     /* a checksum of the native file did not match */
    PHI3C_ERR_CONTEXT_FULL, /* the sequence would not fit in the KV cache */
    PHI3C_ERR_BACKEND,      /* a device runtime failed (build log or runtime error in the message) */
    PHI3C_ERR_UNAVAILABLE,  /* a backend, library, device or extension is not present */
    PHI3C_ERR_EXISTS,       /* refusing to overwrite an existing file */
    PHI3C_ERR_INTERRUPTED,  /* stopped by the user (signal) or by a callback */
    PHI3C_ERR_DEVICE_OOM,   /* a device allocation failed */
    PHI3C_STATUS_COUNT
} phi3c_status;

/* Every failing call fills one of these (when the caller passes one): status and a message that
 * names the file or object and the problem, e.g. "model.safetensors: header length 9e9 exceeds
 * file size 1234". */
typedef struct phi3c_error {
    phi3c_status status;
    char message[512];
} phi3c_error;

/* A short constant description of a status code ("file format error", ...). */
const char *phi3c_strerror(phi3c_status status);

#ifdef __cplusplus
}
#endif
#endif /* PHI3C_H */
