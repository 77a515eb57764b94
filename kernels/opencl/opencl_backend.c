/* opencl_backend.c: the OpenCL backend (kernels/backend.h): device discovery, one context and
 * in-order queue per backend, the embedded kernels (the .cl files of kernels/clk/) built once
 * per context as one program, and device buffers. The ops themselves (which kernel, its arguments
 * and grid, the weight and KV layouts) are clk_ops.c, shared with the Level Zero backend, which
 * runs the same kernels compiled to SPIR-V; this file turns their launches into OpenCL calls.
 * buffer_read and sync are the only waits. */
#include "backend.h"
#include "clk_ops.h"
#include "ocl_api.h"
#include "opencl_internal.h"
#include "opencl_source.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct ocl_ctx {
    p3_clk_host host; /* first: the shared ops receive the context as a p3_clk_host */
    p3_ocl_api api;
    cl_platform_id platform;
    cl_device_id device;
    cl_context context;
    cl_command_queue queue;
    cl_program program;
    cl_kernel kernels[P3_CLK_COUNT];
    cl_mem bad_id; /* int flag raised by embed kernels for ids outside the table */
    cl_ulong max_alloc, global_mem;
    char name[128], platform_name[96], version[64];
    bool int_dot;          /* cl_khr_integer_dot_product on an OpenCL 3.0 device: DP4A variant */
    bool int_dot_emulated; /* the same variant with the built-in emulated (tests) */
    bool intel_sg;         /* cl_intel_subgroups: INT4 weight words by sub-group block reads */
    bool exact_divide;     /* -cl-fp32-correctly-rounded-divide-sqrt available */
} ocl_ctx;

/* The host API the shared ops of clk_ops.c launch through (defined with the buffers below). */
static p3_status ocl_host_alloc(p3_clk_host *h, size_t bytes, const char *what, void **mem,
                                p3_error *err);
static void ocl_host_release(p3_clk_host *h, void *mem);
static p3_status ocl_host_write(p3_clk_host *h, void *mem, const void *src, size_t bytes,
                                p3_error *err);
static p3_status ocl_host_launch(p3_clk_host *h, const p3_clk_launch *l, p3_error *err);

static p3_status cl_fail(p3_error *err, cl_int rc, const char *what) {
    p3_status st = (rc == CL_MEM_OBJECT_ALLOCATION_FAILURE || rc == CL_OUT_OF_RESOURCES)
                       ? PHI3C_ERR_DEVICE_OOM
                       : PHI3C_ERR_BACKEND;
    return p3_fail(err, st, "opencl: %s failed: %s (%d)", what, p3_ocl_strerror(rc), (int)rc);
}

/* ---- discovery ---------------------------------------------------------------------------- */

enum { MAX_PLATFORMS = 16, MAX_DEVICES = 64 };

typedef struct ocl_device_list {
    size_t n;
    cl_platform_id platform[MAX_DEVICES];
    cl_device_id device[MAX_DEVICES];
} ocl_device_list;

/* Flattens every device of every platform, platform by platform: `--device N` indexes this. */
static bool list_devices(const p3_ocl_api *api, ocl_device_list *list, char *why, size_t why_len) {
    cl_platform_id plats[MAX_PLATFORMS];
    cl_uint np = 0;
    cl_int rc = api->clGetPlatformIDs(MAX_PLATFORMS, plats, &np);
    list->n = 0;
    if (rc != CL_SUCCESS || np == 0) {
        snprintf(why, why_len,
                 "no OpenCL platform found (%s): install a driver (ICD), e.g. Debian "
                 "pocl-opencl-icd or intel-opencl-icd",
                 rc == CL_SUCCESS ? "0 platforms" : p3_ocl_strerror(rc));
        return false;
    }
    for (cl_uint p = 0; p < np && p < MAX_PLATFORMS; p++) {
        cl_device_id devs[MAX_DEVICES];
        cl_uint nd = 0;
        if (api->clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, MAX_DEVICES, devs, &nd) != CL_SUCCESS)
            continue;
        for (cl_uint d = 0; d < nd && list->n < MAX_DEVICES; d++) {
            list->platform[list->n] = plats[p];
            list->device[list->n++] = devs[d];
        }
    }
    if (list->n == 0) {
        snprintf(why, why_len, "%u OpenCL platform(s) but no device", (unsigned)np);
        return false;
    }
    return true;
}

/* A device string truncated to len (the full value may be longer: PoCL's version string is). */
static void device_string(const p3_ocl_api *api, cl_device_id dev, cl_device_info what, char *buf,
                          size_t len) {
    size_t size = 0;
    snprintf(buf, len, "?");
    if (api->clGetDeviceInfo(dev, what, 0, NULL, &size) != CL_SUCCESS || size == 0) return;
    char *full = p3_malloc(size + 1);
    if (!full) return;
    if (api->clGetDeviceInfo(dev, what, size, full, NULL) == CL_SUCCESS) {
        full[size] = 0;
        snprintf(buf, len, "%s", full);
    }
    p3_free(full);
}

/* Sanitizer builds leave OpenCL alone: Intel's ICD dlopens with RTLD_DEEPBIND, which makes
 * AddressSanitizer abort the process, and PoCL leaks by design. PHI3C_OPENCL_SANITIZE=1 opts in
 * (with OCL_ICD_VENDORS naming a clean ICD and ASAN_OPTIONS=detect_leaks=0). */
#if defined(__SANITIZE_ADDRESS__)
#define P3_OCL_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define P3_OCL_SANITIZED 1
#endif
#endif

static bool ocl_probe(char *why, size_t why_len, char *devices, size_t devices_len) {
    p3_ocl_api api;
    ocl_device_list list;
    devices[0] = 0;
#ifdef P3_OCL_SANITIZED
    const char *opt_in = getenv("PHI3C_OPENCL_SANITIZE");
    if (!opt_in || strcmp(opt_in, "1") != 0) {
        snprintf(why, why_len,
                 "not probed in sanitizer builds (vendor ICDs are not sanitizer "
                 "clean; PHI3C_OPENCL_SANITIZE=1 overrides)");
        return false;
    }
#endif
    if (!p3_ocl_api_load(&api, why, why_len)) return false;
    bool ok = list_devices(&api, &list, why, why_len);
    for (size_t i = 0; ok && i < list.n; i++) {
        char name[96], ver[24];
        cl_ulong mem = 0;
        device_string(&api, list.device[i], CL_DEVICE_NAME, name, sizeof name);
        device_string(&api, list.device[i], CL_DEVICE_VERSION, ver, sizeof ver);
        char *sp = strchr(ver, ' '); /* "OpenCL 3.0 <vendor details>": keep "OpenCL 3.0" */
        if (sp && (sp = strchr(sp + 1, ' '))) *sp = 0;
        api.clGetDeviceInfo(list.device[i], CL_DEVICE_GLOBAL_MEM_SIZE, sizeof mem, &mem, NULL);
        size_t used = strlen(devices);
        snprintf(devices + used, devices_len - used, "%s%zu: %s (%s, %llu MiB)", i ? "; " : "", i,
                 name, ver, (unsigned long long)(mem >> 20));
    }
    p3_ocl_api_unload(&api);
    return ok;
}

/* ---- context, program, kernels -------------------------------------------------------------- */

/* The head of a program's build log on one line (newlines become " | "), for messages. */
static void build_log(ocl_ctx *c, cl_program prog, char *out, size_t out_len) {
    size_t size = 0;
    out[0] = 0;
    if (c->api.clGetProgramBuildInfo(prog, c->device, CL_PROGRAM_BUILD_LOG, 0, NULL, &size) !=
            CL_SUCCESS ||
        size == 0)
        return;
    char *log = p3_malloc(size + 1);
    if (!log) return;
    if (c->api.clGetProgramBuildInfo(prog, c->device, CL_PROGRAM_BUILD_LOG, size, log, NULL) ==
        CL_SUCCESS) {
        log[size] = 0;
        size_t o = 0;
        for (const char *p = log; *p && o + 4 < out_len; p++) {
            if (*p == '\n') {
                if (p[1]) o += (size_t)snprintf(out + o, out_len - o, " | ");
            } else {
                out[o++] = *p;
            }
        }
        out[o < out_len ? o : out_len - 1] = 0;
    }
    p3_free(log);
}

/* Builds OpenCL C source for the context's device; on failure the message carries the options
 * and the head of the build log. */
static p3_status build_source(ocl_ctx *c, const char *src, size_t len, cl_program *out,
                              p3_error *err) {
    cl_int rc;
    *out = c->api.clCreateProgramWithSource(c->context, 1, &src, &len, &rc);
    if (rc != CL_SUCCESS) return cl_fail(err, rc, "clCreateProgramWithSource");
    /* Portable OpenCL C 1.2 (3.0 for the integer dot product built-ins); denormals kept, no
     * fast-math; correctly rounded division where offered, so w4a8's activation scales match the
     * reference bit for bit. */
    char options[200];
    snprintf(options, sizeof options, "%s%s%s",
             c->int_dot_emulated ? "-cl-std=CL1.2 -DP3_INT_DOT=1 -DP3_INT_DOT_EMULATE=1"
             : c->int_dot        ? "-cl-std=CL3.0 -DP3_INT_DOT=1"
                                 : "-cl-std=CL1.2",
             c->intel_sg ? " -DP3_INTEL_SG=1" : "",
             c->exact_divide ? " -cl-fp32-correctly-rounded-divide-sqrt" : "");
    rc = c->api.clBuildProgram(*out, 1, &c->device, options, NULL, NULL);
    if (rc == CL_SUCCESS) return PHI3C_OK;
    char log[384];
    build_log(c, *out, log, sizeof log);
    return p3_fail(err, PHI3C_ERR_BACKEND,
                   "opencl: kernels failed to build on %s (%s): %s; build log: %s", c->name,
                   options, p3_ocl_strerror(rc), log[0] ? log : "(empty)");
}

static p3_status build_program(ocl_ctx *c, p3_error *err) {
    return build_source(c, p3_opencl_source, p3_opencl_source_len, &c->program, err);
}

static p3_status create_kernels(ocl_ctx *c, p3_error *err) {
    for (int i = 0; i < P3_CLK_COUNT; i++) {
        cl_int rc;
        c->kernels[i] = c->api.clCreateKernel(c->program, p3_clk_kernel_names[i], &rc);
        if (rc != CL_SUCCESS)
            return p3_fail(err, PHI3C_ERR_BACKEND, "opencl: kernel %s: %s (%d)",
                           p3_clk_kernel_names[i], p3_ocl_strerror(rc), (int)rc);
    }
    return PHI3C_OK;
}

static void ocl_destroy(void *ctx) {
    ocl_ctx *c = ctx;
    if (!c) return;
    if (c->queue) c->api.clFinish(c->queue);
    p3_clk_host_release(&c->host);
    for (int i = 0; i < P3_CLK_COUNT; i++)
        if (c->kernels[i]) c->api.clReleaseKernel(c->kernels[i]);
    if (c->bad_id) c->api.clReleaseMemObject(c->bad_id);

    if (c->program) c->api.clReleaseProgram(c->program);
    if (c->queue) c->api.clReleaseCommandQueue(c->queue);
    if (c->context) c->api.clReleaseContext(c->context);
    p3_ocl_api_unload(&c->api);
    p3_free(c);
}

static p3_status open_device(ocl_ctx *c, int index, p3_error *err) {
    char why[256];
    ocl_device_list list;
    if (!list_devices(&c->api, &list, why, sizeof why))
        return p3_fail(err, PHI3C_ERR_UNAVAILABLE, "opencl: %s", why);
    if (index < 0 || (size_t)index >= list.n)
        return p3_fail(err, PHI3C_ERR_INVALID_ARG,
                       "opencl: device %d does not exist (%zu device(s): 0..%zu)", index, list.n,
                       list.n - 1);
    c->platform = list.platform[index];
    c->device = list.device[index];
    device_string(&c->api, c->device, CL_DEVICE_NAME, c->name, sizeof c->name);
    device_string(&c->api, c->device, CL_DEVICE_VERSION, c->version, sizeof c->version);
    if (c->api.clGetPlatformInfo(c->platform, CL_PLATFORM_NAME, sizeof c->platform_name,
                                 c->platform_name, NULL) != CL_SUCCESS)
        snprintf(c->platform_name, sizeof c->platform_name, "?");
    c->api.clGetDeviceInfo(c->device, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof c->max_alloc,
                           &c->max_alloc, NULL);
    c->api.clGetDeviceInfo(c->device, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof c->global_mem,
                           &c->global_mem, NULL);
    cl_device_fp_config fp = 0;
    c->api.clGetDeviceInfo(c->device, CL_DEVICE_SINGLE_FP_CONFIG, sizeof fp, &fp, NULL);
    c->exact_divide = (fp & CL_FP_CORRECTLY_ROUNDED_DIVIDE_SQRT) != 0;
    char ext[8192];
    device_string(&c->api, c->device, CL_DEVICE_EXTENSIONS, ext, sizeof ext);
    c->int_dot = strstr(ext, "cl_khr_integer_dot_product") != NULL &&
                 strncmp(c->version, "OpenCL 3.", 9) == 0;
    c->intel_sg = strstr(ext, "cl_intel_subgroups") != NULL;
    return PHI3C_OK;
}

/* Kernel variants: NULL or "auto" = the best the device offers; "portable" = OpenCL C 1.2 only;
 * "int-dot" = w4a8 with cl_khr_integer_dot_product (fails when the device lacks it);
 * "int-dot-emulated" = that code path with the built-in emulated, to test it anywhere. */
static p3_status choose_variant(ocl_ctx *c, const char *v, p3_error *err) {
    if (!v || strcmp(v, "auto") == 0) return PHI3C_OK;
    if (strcmp(v, "portable") == 0) {
        c->int_dot = c->intel_sg = false;
        return PHI3C_OK;
    }
    if (strcmp(v, "intel-sg") == 0)
        return c->intel_sg ? PHI3C_OK
                           : p3_fail(err, PHI3C_ERR_UNAVAILABLE,
                                     "opencl: %s lacks cl_intel_subgroups", c->name);
    if (strcmp(v, "int-dot-emulated") == 0) {
        c->int_dot = true;
        c->int_dot_emulated = true;
        return PHI3C_OK;
    }
    if (strcmp(v, "int-dot") == 0)
        return c->int_dot
                   ? PHI3C_OK
                   : p3_fail(err, PHI3C_ERR_UNAVAILABLE,
                             "opencl: %s lacks cl_khr_integer_dot_product on OpenCL 3.0", c->name);
    return p3_fail(err, PHI3C_ERR_INVALID_ARG,
                   "opencl: unknown variant '%s' (auto, portable, int-dot, intel-sg, "
                   "int-dot-emulated)",
                   v);
}

static p3_status ocl_create(const p3_backend_options *opt, void **out, p3_error *err) {
    char why[256];
    ocl_ctx *c = p3_calloc(1, sizeof *c);
    if (!c) return p3_fail(err, PHI3C_ERR_NOMEM, "opencl: out of host memory");
    *out = NULL;
    c->host = (p3_clk_host){.api = "opencl",
                            .alloc = ocl_host_alloc,
                            .release = ocl_host_release,
                            .write = ocl_host_write,
                            .launch = ocl_host_launch};
    if (!p3_ocl_api_load(&c->api, why, sizeof why)) {
        p3_free(c);
        return p3_fail(err, PHI3C_ERR_UNAVAILABLE, "opencl: %s", why);
    }
    cl_int rc;
    p3_status st = open_device(c, opt->device, err);
    if (st == PHI3C_OK) st = choose_variant(c, opt->variant, err);
    if (st == PHI3C_OK) {
        c->context = c->api.clCreateContext(NULL, 1, &c->device, NULL, NULL, &rc);
        if (rc != CL_SUCCESS) st = cl_fail(err, rc, "clCreateContext");
    }
    if (st == PHI3C_OK) {
        c->queue = c->api.clCreateCommandQueue(c->context, c->device, 0, &rc);
        if (rc != CL_SUCCESS) st = cl_fail(err, rc, "clCreateCommandQueue");
    }
    if (st == PHI3C_OK) {
        c->bad_id = c->api.clCreateBuffer(c->context, CL_MEM_READ_WRITE, sizeof(cl_int), NULL, &rc);
        cl_int zero = 0;
        if (rc == CL_SUCCESS)
            rc = c->api.clEnqueueWriteBuffer(c->queue, c->bad_id, CL_TRUE, 0, sizeof zero, &zero, 0,
                                             NULL, NULL);
        if (rc != CL_SUCCESS) st = cl_fail(err, rc, "allocating the error flag");
        c->host.bad_id = c->bad_id;
    }
    if (st == PHI3C_OK) st = build_program(c, err);
    if (st == PHI3C_OK) st = create_kernels(c, err);
    if (st != PHI3C_OK) {
        ocl_destroy(c);
        return st;
    }
    *out = c;
    return PHI3C_OK;
}

static void ocl_describe(void *ctx, char *buf, size_t len) {
    ocl_ctx *c = ctx;
    snprintf(buf, len, "opencl %s (%s, %s), kernels: portable OpenCL C%s%s", c->name,
             c->platform_name, c->version,
             c->int_dot_emulated ? ", w4a8 integer dots emulated"
             : c->int_dot        ? ", w4a8 with integer dot products"
                                 : "",
             c->intel_sg ? ", Intel sub-group block reads" : "");
}

/* ---- buffers ------------------------------------------------------------------------------- */

/* Allocates device memory, refusing sizes the device cannot hold before asking the driver (many
 * drivers allocate lazily and would only fail at first use). */
static p3_status device_alloc(ocl_ctx *c, size_t size, const char *what, cl_mem *out,
                              p3_error *err) {
    if (size > c->max_alloc || size > c->global_mem)
        return p3_fail(err, PHI3C_ERR_DEVICE_OOM,
                       "opencl: %s needs %zu bytes, more than %s allows in one allocation (%llu "
                       "bytes; %llu bytes of device memory)",
                       what, size, c->name, (unsigned long long)c->max_alloc,
                       (unsigned long long)c->global_mem);
    cl_int rc;
    *out = c->api.clCreateBuffer(c->context, CL_MEM_READ_WRITE, size ? size : 4, NULL, &rc);
    if (rc == CL_SUCCESS) return PHI3C_OK;
    *out = NULL;
    if (rc == CL_MEM_OBJECT_ALLOCATION_FAILURE || rc == CL_OUT_OF_RESOURCES ||
        rc == CL_OUT_OF_HOST_MEMORY || rc == CL_INVALID_BUFFER_SIZE)
        return p3_fail(err, PHI3C_ERR_DEVICE_OOM, "opencl: allocating %zu bytes for %s on %s: %s",
                       size, what, c->name, p3_ocl_strerror(rc));
    return cl_fail(err, rc, "clCreateBuffer");
}

static p3_status ocl_buffer_alloc(void *ctx, size_t size, p3_buffer **out, p3_error *err) {
    ocl_ctx *c = ctx;
    p3_buffer *b = p3_calloc(1, sizeof *b);
    if (!b) return p3_fail(err, PHI3C_ERR_NOMEM, "opencl: out of host memory");
    cl_mem mem;
    p3_status st = device_alloc(c, size, "a buffer", &mem, err);
    if (st != PHI3C_OK) {
        p3_free(b);
        return st;
    }
    b->size = size;
    b->impl = mem;
    *out = b;
    return PHI3C_OK;
}

static void ocl_buffer_free(void *ctx, p3_buffer *buf) {
    ocl_ctx *c = ctx;
    if (!buf) return;
    if (buf->impl) c->api.clReleaseMemObject((cl_mem)buf->impl);
    p3_free(buf);
}

static p3_status upload(ocl_ctx *c, cl_mem dst, size_t offset, const void *src, size_t size,
                        p3_error *err) {
    if (size == 0) return PHI3C_OK;
    /* Blocking: the caller's memory need not outlive the call. */
    cl_int rc =
        c->api.clEnqueueWriteBuffer(c->queue, dst, CL_TRUE, offset, size, src, 0, NULL, NULL);
    return rc == CL_SUCCESS ? PHI3C_OK : cl_fail(err, rc, "clEnqueueWriteBuffer");
}

static p3_status ocl_buffer_write(void *ctx, p3_ref dst, const void *src, size_t size,
                                  p3_error *err) {
    return upload(ctx, (cl_mem)dst.buf->impl, dst.offset, src, size, err);
}

/* The wait of a step: the error flag (raised by embed for an id outside its table) is read
 * without blocking, then `wait` (a blocking read or clFinish) completes it too, since the queue
 * runs in order: one round trip, not two. */
static p3_status finish_step(ocl_ctx *c, p3_ref *src, void *dst, size_t size, p3_error *err) {
    cl_int flag = 0, zero = 0;
    cl_int rc = c->api.clEnqueueReadBuffer(c->queue, c->bad_id, CL_FALSE, 0, sizeof flag, &flag, 0,
                                           NULL, NULL);
    if (rc != CL_SUCCESS) return cl_fail(err, rc, "reading the error flag");
    if (src && size)
        rc = c->api.clEnqueueReadBuffer(c->queue, (cl_mem)src->buf->impl, CL_TRUE, src->offset,
                                        size, dst, 0, NULL, NULL);
    else
        rc = c->api.clFinish(c->queue);
    if (rc != CL_SUCCESS) {
        c->api.clFinish(c->queue); /* `flag` must not be written after we return */
        return cl_fail(err, rc, src ? "clEnqueueReadBuffer" : "clFinish");
    }
    if (!flag) return PHI3C_OK;
    c->api.clEnqueueWriteBuffer(c->queue, c->bad_id, CL_TRUE, 0, sizeof zero, &zero, 0, NULL, NULL);
    return p3_fail(err, PHI3C_ERR_INVALID_ARG,
                   "opencl embed: a token id was outside the embedding table");
}

static p3_status ocl_buffer_read(void *ctx, p3_ref src, void *dst, size_t size, p3_error *err) {
    return finish_step(ctx, &src, dst, size, err);
}

static p3_status ocl_sync(void *ctx, p3_error *err) {
    return finish_step(ctx, NULL, NULL, 0, err);
}

/* ---- the shared ops' host (clk_ops.h) -------------------------------------------------------- */

static p3_status ocl_host_alloc(p3_clk_host *h, size_t bytes, const char *what, void **mem,
                                p3_error *err) {
    cl_mem m = NULL;
    p3_status st = device_alloc((ocl_ctx *)h, bytes, what, &m, err);
    *mem = m;
    return st;
}

/* OpenCL keeps a released buffer alive until the queued commands using it have run. */
static void ocl_host_release(p3_clk_host *h, void *mem) {
    ((ocl_ctx *)h)->api.clReleaseMemObject((cl_mem)mem);
}

static p3_status ocl_host_write(p3_clk_host *h, void *mem, const void *src, size_t bytes,
                                p3_error *err) {
    return upload((ocl_ctx *)h, (cl_mem)mem, 0, src, bytes, err);
}

static p3_status ocl_host_launch(p3_clk_host *h, const p3_clk_launch *l, p3_error *err) {
    ocl_ctx *c = (ocl_ctx *)h;
    cl_kernel k = c->kernels[l->kernel];
    for (int i = 0; i < l->n_args; i++) {
        size_t size; /* cl_mem, cl_int, cl_ulong and cl_float are those C types */
        const void *value = p3_clk_arg_bytes(&l->args[i], &size);
        cl_int rc = c->api.clSetKernelArg(k, (cl_uint)i, size, value);
        if (rc != CL_SUCCESS)
            return p3_fail(err, PHI3C_ERR_BACKEND, "opencl %s: setting argument %d: %s", l->op, i,
                           p3_ocl_strerror(rc));
    }
    const size_t *local = l->local[0] ? l->local : NULL;
    cl_int rc =
        c->api.clEnqueueNDRangeKernel(c->queue, k, l->dims, NULL, l->global, local, 0, NULL, NULL);
    if (rc != CL_SUCCESS)
        return p3_fail(err, rc == CL_OUT_OF_RESOURCES ? PHI3C_ERR_DEVICE_OOM : PHI3C_ERR_BACKEND,
                       "opencl %s: clEnqueueNDRangeKernel: %s (%d)", l->op, p3_ocl_strerror(rc),
                       (int)rc);
    return PHI3C_OK;
}

static p3_status ocl_copy(void *ctx, p3_ref dst, p3_ref src, size_t size, p3_error *err) {
    ocl_ctx *c = ctx;
    if (size == 0) return PHI3C_OK;
    cl_int rc = c->api.clEnqueueCopyBuffer(c->queue, (cl_mem)src.buf->impl, (cl_mem)dst.buf->impl,
                                           src.offset, dst.offset, size, 0, NULL, NULL);
    return rc == CL_SUCCESS ? PHI3C_OK : cl_fail(err, rc, "clEnqueueCopyBuffer");
}

const p3_backend_iface p3_backend_opencl = {
    .version = P3_BACKEND_IFACE_VERSION,
    .name = "opencl",
    .probe = ocl_probe,
    .create = ocl_create,
    .destroy = ocl_destroy,
    .describe = ocl_describe,
    .buffer_alloc = ocl_buffer_alloc,
    .buffer_free = ocl_buffer_free,
    .buffer_write = ocl_buffer_write,
    .buffer_read = ocl_buffer_read,
    .buffer_wrap_host = NULL,
    P3_CLK_METHODS,
    .copy = ocl_copy,
    .sync = ocl_sync,
};

p3_status p3_opencl_build_test(int device, const char *source, p3_error *err) {
    p3_backend_options opt = {0};
    opt.device = device;
    void *ctx = NULL;
    p3_status st = ocl_create(&opt, &ctx, err);
    if (st != PHI3C_OK) return st;
    ocl_ctx *c = ctx;
    cl_program prog = NULL;
    st = build_source(c, source, strlen(source), &prog, err);
    if (prog) c->api.clReleaseProgram(prog);
    ocl_destroy(c);
    return st;
}
