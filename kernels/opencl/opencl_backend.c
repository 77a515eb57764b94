/* opencl_backend.c: the OpenCL backend (kernels/backend.h): device discovery, one context and
 * in-order queue per backend, the embedded kernels (the .cl files of kernels/opencl/) built once
 * per context as one program, device buffers, weights repacked at upload into the K-major layout of
 * matmul.cl, and every op enqueued without host round trips; buffer_read and sync are the only
 * waits. */
#include "backend.h"
#include "int4.h"
#include "ocl_api.h"
#include "opencl_internal.h"
#include "opencl_source.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every kernel the .cl files define, in one table so creation and release are loops. */
#define P3_OCL_KERNELS(X)                                                                          \
    X(embed_f32, "p3_embed_f32")                                                                   \
    X(embed_f16, "p3_embed_f16")                                                                   \
    X(embed_bf16, "p3_embed_bf16")                                                                 \
    X(embed_i4, "p3_embed_i4")                                                                     \
    X(rmsnorm, "p3_rmsnorm")                                                                       \
    X(rope, "p3_rope")                                                                             \
    X(swiglu, "p3_swiglu")                                                                         \
    X(add, "p3_add")                                                                               \
    X(kv_write_f32, "p3_kv_write_f32")                                                             \
    X(kv_write_f16, "p3_kv_write_f16")                                                             \
    X(kv_write_q8, "p3_kv_write_q8")                                                               \
    X(attention_f32, "p3_attention_f32")                                                           \
    X(attention_f16, "p3_attention_f16")                                                           \
    X(attention_q8, "p3_attention_q8")                                                             \
    X(attention_merge, "p3_attention_merge")                                                       \
    X(mm_i4_t1, "p3_mm_i4_t1")                                                                     \
    X(mm_i4_t4, "p3_mm_i4_t4")                                                                     \
    X(mm_f32_t1, "p3_mm_f32_t1")                                                                   \
    X(mm_f32_t4, "p3_mm_f32_t4")                                                                   \
    X(mm_f16_t1, "p3_mm_f16_t1")                                                                   \
    X(mm_f16_t4, "p3_mm_f16_t4")                                                                   \
    X(mm_bf16_t1, "p3_mm_bf16_t1")                                                                 \
    X(mm_bf16_t4, "p3_mm_bf16_t4")                                                                 \
    X(quant_act, "p3_quant_act")                                                                   \
    X(mm_i4q8_t1, "p3_mm_i4q8_t1")                                                                 \
    X(mm_i4q8_t4, "p3_mm_i4q8_t4")

typedef struct ocl_kernels {
#define P3_KFIELD(field, name) cl_kernel field;
    P3_OCL_KERNELS(P3_KFIELD)
#undef P3_KFIELD
} ocl_kernels;

/* Matmul geometry shared with matmul.cl (P3_MM_LR x P3_MM_LK work-groups). */
enum { MM_LR = 16, MM_LK = 4, MM_TT = 4, ATT_WG = 64, ATT_MAX_HEAD_DIM = 256, NORM_WG = 64 };
/* A decode step over more than 2 chunks of keys splits them over work-groups (attention.cl). */
enum { ATT_CHUNK = 256 };

typedef struct ocl_ctx {
    p3_ocl_api api;
    cl_platform_id platform;
    cl_device_id device;
    cl_context context;
    cl_command_queue queue;
    cl_program program;
    ocl_kernels k;
    cl_mem bad_id; /* int flag raised by embed kernels for ids outside the table */
    cl_ulong max_alloc, global_mem;
    char name[128], platform_name[96], version[64];
    bool int_dot;          /* cl_khr_integer_dot_product on an OpenCL 3.0 device: DP4A variant */
    bool int_dot_emulated; /* the same variant with the built-in emulated (tests) */
    bool intel_sg;         /* cl_intel_subgroups: INT4 weight words by sub-group block reads */
    bool exact_divide;     /* -cl-fp32-correctly-rounded-divide-sqrt available */
    /* w4a8 scratch: int8 activations [T][groups*128], scales and sums [T][groups]; grown to the
     * largest matmul seen (the first prefill), then reused: the queue is in order. */
    cl_mem act_q, act_d, act_s;
    size_t act_groups; /* capacity in token-groups */
    cl_mem att_part;   /* split-decode partials, grown like the w4a8 scratch */
    size_t att_part_bytes;
} ocl_ctx;

/* An uploaded weight: a (INT4 nibble words or plain [cols][rows]), b (INT4 scales), c (INT4 zero
 * points). */
typedef struct ocl_weight {
    p3_weight pub;
    cl_mem a, b, c;
    size_t stride; /* INT4: rows rounded up to MM_LR (matmul.cl) */
    size_t bytes;
} ocl_weight;

typedef struct ocl_kv {
    p3_kv_cache pub;
    cl_mem k, v;
    cl_mem ks, vs;      /* q8 only: f32 scales [layer][kv_head][n_ctx] */
    size_t layer_elems; /* n_kv_heads * n_ctx * head_dim */
    size_t layer_rows;  /* n_kv_heads * n_ctx */
} ocl_kv;

static size_t round_up(size_t n, size_t m) {
    return (n + m - 1) / m * m;
}

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

static bool probe(char *why, size_t why_len, char *devices, size_t devices_len) {
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
    cl_int rc;
#define P3_KCREATE(field, kname)                                                                   \
    c->k.field = c->api.clCreateKernel(c->program, kname, &rc);                                    \
    if (rc != CL_SUCCESS)                                                                          \
        return p3_fail(err, PHI3C_ERR_BACKEND, "opencl: kernel %s: %s (%d)", kname,                \
                       p3_ocl_strerror(rc), (int)rc);
    P3_OCL_KERNELS(P3_KCREATE)
#undef P3_KCREATE
    return PHI3C_OK;
}

static void destroy(void *ctx) {
    ocl_ctx *c = ctx;
    if (!c) return;
    if (c->queue) c->api.clFinish(c->queue);
#define P3_KRELEASE(field, kname)                                                                  \
    if (c->k.field) c->api.clReleaseKernel(c->k.field);
    P3_OCL_KERNELS(P3_KRELEASE)
#undef P3_KRELEASE
    if (c->bad_id) c->api.clReleaseMemObject(c->bad_id);
    if (c->act_q) c->api.clReleaseMemObject(c->act_q);
    if (c->act_d) c->api.clReleaseMemObject(c->act_d);
    if (c->act_s) c->api.clReleaseMemObject(c->act_s);
    if (c->att_part) c->api.clReleaseMemObject(c->att_part);
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
                       "opencl: --device %d does not exist (%zu device(s): 0..%zu, see phi3c info)",
                       index, list.n, list.n - 1);
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

static p3_status create(const p3_backend_options *opt, void **out, p3_error *err) {
    char why[256];
    ocl_ctx *c = p3_calloc(1, sizeof *c);
    if (!c) return p3_fail(err, PHI3C_ERR_NOMEM, "opencl: out of host memory");
    *out = NULL;
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
    }
    if (st == PHI3C_OK) st = build_program(c, err);
    if (st == PHI3C_OK) st = create_kernels(c, err);
    if (st != PHI3C_OK) {
        destroy(c);
        return st;
    }
    *out = c;
    return PHI3C_OK;
}

static void describe(void *ctx, char *buf, size_t len) {
    ocl_ctx *c = ctx;
    snprintf(buf, len, "opencl %s (%s, %s), kernels: portable OpenCL C%s%s", c->name,
             c->platform_name, c->version,
             c->int_dot_emulated ? ", w4a8 integer dots emulated"
             : c->int_dot        ? ", w4a8 with integer dot products"
                                 : "",
             c->intel_sg ? ", Intel sub-group block reads" : "");
}

static bool supports(void *ctx, p3_op op, p3_dtype weight, p3_act_mode act, p3_kv_dtype kv) {
    (void)ctx;
    if (op == P3_OP_KV_WRITE || op == P3_OP_ATTENTION)
        return kv == P3_KV_F32 || kv == P3_KV_F16 || kv == P3_KV_Q8;
    if (op == P3_OP_MATMUL || op == P3_OP_EMBED) {
        if (weight == P3_DT_I4G128S || weight == P3_DT_I4G128A)
            return act == P3_ACT_F32 || act == P3_ACT_Q8;
        return weight == P3_DT_F32 || weight == P3_DT_F16 || weight == P3_DT_BF16;
    }
    return true;
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

static p3_status buffer_alloc(void *ctx, size_t size, p3_buffer **out, p3_error *err) {
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

static void buffer_free(void *ctx, p3_buffer *buf) {
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

static p3_status buffer_write(void *ctx, p3_ref dst, const void *src, size_t size, p3_error *err) {
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

static p3_status buffer_read(void *ctx, p3_ref src, void *dst, size_t size, p3_error *err) {
    return finish_step(ctx, &src, dst, size, err);
}

static p3_status sync(void *ctx, p3_error *err) {
    return finish_step(ctx, NULL, NULL, 0, err);
}

/* ---- weights ------------------------------------------------------------------------------- */

static size_t plain_elem_size(p3_dtype dt) {
    return dt == P3_DT_F32 ? 4 : 2;
}

/* Plain weights are transposed to [cols][rows] (see matmul.cl for why). */
static p3_status upload_plain(ocl_ctx *c, const p3_weight_desc *d, ocl_weight *w, p3_error *err) {
    size_t es = plain_elem_size(d->dtype), n, bytes;
    if (!p3_mul_size((size_t)d->rows, (size_t)d->cols, &n) || !p3_mul_size(n, es, &bytes))
        return p3_fail(err, PHI3C_ERR_INVALID_ARG, "opencl: weight %s is too large", d->name);
    uint8_t *t = p3_malloc(bytes);
    if (!t) return p3_fail(err, PHI3C_ERR_NOMEM, "opencl: no host memory to repack %s", d->name);
    const uint8_t *src = d->data;
    size_t rows = (size_t)d->rows, cols = (size_t)d->cols;
    for (size_t r = 0; r < rows; r++)
        for (size_t k = 0; k < cols; k++)
            memcpy(t + (k * rows + r) * es, src + (r * cols + k) * es, es);
    p3_status st = device_alloc(c, bytes, d->name, &w->a, err);
    if (st == PHI3C_OK) st = upload(c, w->a, 0, t, bytes, err);
    p3_free(t);
    w->bytes = bytes;
    return st;
}

/* INT4: nibble words [cols/8 rounded up to whole groups][rows], scales and zero points
 * [groups][rows]. The block's nibble order (q[j] low, q[j+64] high) becomes 8 consecutive
 * weights per word, low nibble first. */
static p3_status upload_int4(ocl_ctx *c, const p3_weight_desc *d, ocl_weight *w, p3_error *err) {
    bool sym = d->dtype == P3_DT_I4G128S;
    size_t rows = (size_t)d->rows, groups = (size_t)p3_groups(d->cols);
    size_t stride = round_up(rows, MM_LR); /* padding rows stay zero (calloc): they add 0 */
    size_t block = sym ? sizeof(p3_block_i4s) : sizeof(p3_block_i4a);
    size_t nq, nqb, ng;
    if (!p3_mul_size(groups * 16, stride, &nq) || !p3_mul_size(nq, 4, &nqb) ||
        !p3_mul_size(groups, stride, &ng))
        return p3_fail(err, PHI3C_ERR_INVALID_ARG, "opencl: weight %s is too large", d->name);
    w->stride = stride;
    uint32_t *qw = p3_calloc(nq, 4);
    uint16_t *scale = p3_calloc(ng, sizeof(uint16_t));
    uint8_t *zero = p3_calloc(ng, 1);
    p3_status st = PHI3C_OK;
    if (!qw || !scale || !zero)
        st = p3_fail(err, PHI3C_ERR_NOMEM, "opencl: no host memory to repack %s", d->name);
    for (size_t r = 0; st == PHI3C_OK && r < rows; r++) {
        for (size_t g = 0; g < groups; g++) {
            const uint8_t *b = (const uint8_t *)d->data + (r * groups + g) * block;
            uint16_t dh;
            memcpy(&dh, b, 2);
            const uint8_t *qs = b + (sym ? 2 : 4);
            scale[g * stride + r] = dh;
            zero[g * stride + r] = sym ? 8 : b[2];
            for (size_t j = 0; j < 16; j++) {
                uint32_t word = 0;
                for (size_t i = 0; i < 8; i++) {
                    size_t k = j * 8 + i; /* weight k of the group */
                    uint32_t q = k < 64 ? qs[k] & 15u : qs[k - 64] >> 4;
                    word |= q << (4 * i);
                }
                qw[(g * 16 + j) * stride + r] = word;
            }
        }
    }
    if (st == PHI3C_OK) st = device_alloc(c, nqb, d->name, &w->a, err);
    if (st == PHI3C_OK) st = device_alloc(c, ng * sizeof(uint16_t), d->name, &w->b, err);
    if (st == PHI3C_OK) st = device_alloc(c, ng, d->name, &w->c, err);
    if (st == PHI3C_OK) st = upload(c, w->a, 0, qw, nqb, err);
    if (st == PHI3C_OK) st = upload(c, w->b, 0, scale, ng * sizeof(uint16_t), err);
    if (st == PHI3C_OK) st = upload(c, w->c, 0, zero, ng, err);
    w->bytes = nqb + ng * (sizeof(uint16_t) + 1);
    p3_free(qw);
    p3_free(scale);
    p3_free(zero);
    return st;
}

static void weight_free(void *ctx, p3_weight *pw) {
    ocl_ctx *c = ctx;
    ocl_weight *w = (ocl_weight *)pw;
    if (!w) return;
    if (w->a) c->api.clReleaseMemObject(w->a);
    if (w->b) c->api.clReleaseMemObject(w->b);
    if (w->c) c->api.clReleaseMemObject(w->c);
    p3_free(w);
}

static p3_status weight_upload(void *ctx, const p3_weight_desc *d, p3_weight **out, p3_error *err) {
    ocl_ctx *c = ctx;
    bool int4 = d->dtype == P3_DT_I4G128S || d->dtype == P3_DT_I4G128A;
    bool plain = d->dtype == P3_DT_F32 || d->dtype == P3_DT_F16 || d->dtype == P3_DT_BF16;
    if (!int4 && !plain)
        return p3_fail(err, PHI3C_ERR_UNSUPPORTED,
                       "opencl: weight %s has dtype %d (F32, F16, BF16, "
                       "I4G128S or I4G128A expected)",
                       d->name, (int)d->dtype);
    if (d->rows > INT32_MAX || d->cols > INT32_MAX)
        return p3_fail(err, PHI3C_ERR_UNSUPPORTED, "opencl: weight %s is too large", d->name);
    ocl_weight *w = p3_calloc(1, sizeof *w);
    if (!w) return p3_fail(err, PHI3C_ERR_NOMEM, "opencl: out of host memory");
    w->pub.dtype = d->dtype;
    w->pub.rows = d->rows;
    w->pub.cols = d->cols;
    w->pub.act = d->act;
    w->pub.impl = w;
    p3_status st = int4 ? upload_int4(c, d, w, err) : upload_plain(c, d, w, err);
    if (st != PHI3C_OK) {
        weight_free(c, &w->pub);
        return st;
    }
    *out = &w->pub;
    return PHI3C_OK;
}

static size_t weight_bytes(void *ctx, const p3_weight *w) {
    (void)ctx;
    return ((const ocl_weight *)w)->bytes;
}

/* ---- KV cache ------------------------------------------------------------------------------ */

static void kv_free(void *ctx, p3_kv_cache *pkv) {
    ocl_ctx *c = ctx;
    ocl_kv *kv = (ocl_kv *)pkv;
    if (!kv) return;
    cl_mem mems[4] = {kv->k, kv->v, kv->ks, kv->vs};
    for (int i = 0; i < 4; i++)
        if (mems[i]) c->api.clReleaseMemObject(mems[i]);
    p3_free(kv);
}

static p3_status kv_alloc(void *ctx, const p3_kv_desc *d, p3_kv_cache **out, p3_error *err) {
    ocl_ctx *c = ctx;
    if (d->dtype != P3_KV_F32 && d->dtype != P3_KV_F16 && d->dtype != P3_KV_Q8)
        return p3_fail(err, PHI3C_ERR_UNSUPPORTED, "opencl: KV cache type %d", (int)d->dtype);
    if (d->head_dim > ATT_MAX_HEAD_DIM)
        return p3_fail(err, PHI3C_ERR_UNSUPPORTED, "opencl: head_dim %d exceeds %d", d->head_dim,
                       ATT_MAX_HEAD_DIM);
    size_t elem = d->dtype == P3_KV_F32 ? 4 : d->dtype == P3_KV_F16 ? 2 : 1;
    size_t rows, layer, all, bytes, scale_bytes;
    if (!p3_mul_size((size_t)d->n_kv_heads, (size_t)d->n_ctx, &rows) ||
        !p3_mul_size(rows, (size_t)d->head_dim, &layer) ||
        !p3_mul_size(layer, (size_t)d->n_layers, &all) || !p3_mul_size(all, elem, &bytes) ||
        !p3_mul_size(rows * 4, (size_t)d->n_layers, &scale_bytes))
        return p3_fail(err, PHI3C_ERR_INVALID_ARG, "opencl: KV cache size overflows");
    ocl_kv *kv = p3_calloc(1, sizeof *kv);
    if (!kv) return p3_fail(err, PHI3C_ERR_NOMEM, "opencl: out of host memory");
    kv->pub.desc = *d;
    kv->pub.impl = kv;
    kv->layer_elems = layer;
    kv->layer_rows = rows;
    p3_status st = device_alloc(c, bytes, "the KV cache (keys)", &kv->k, err);
    if (st == PHI3C_OK) st = device_alloc(c, bytes, "the KV cache (values)", &kv->v, err);
    if (st == PHI3C_OK && d->dtype == P3_KV_Q8)
        st = device_alloc(c, scale_bytes, "the KV cache (key scales)", &kv->ks, err);
    if (st == PHI3C_OK && d->dtype == P3_KV_Q8)
        st = device_alloc(c, scale_bytes, "the KV cache (value scales)", &kv->vs, err);
    if (st != PHI3C_OK) {
        kv_free(c, &kv->pub);
        return st;
    }
    *out = &kv->pub;
    return PHI3C_OK;
}

/* ---- launching ----------------------------------------------------------------------------- */

/* Kernel arguments are set in order through a small builder that remembers the first error. */
typedef struct kargs {
    ocl_ctx *c;
    cl_kernel k;
    cl_uint i;
    cl_int rc;
} kargs;

static void arg(kargs *a, size_t size, const void *value) {
    cl_int rc = a->c->api.clSetKernelArg(a->k, a->i++, size, value);
    if (a->rc == CL_SUCCESS) a->rc = rc;
}
static void arg_mem(kargs *a, cl_mem m) {
    arg(a, sizeof m, &m);
}
static void arg_int(kargs *a, int v) {
    cl_int x = v;
    arg(a, sizeof x, &x);
}
static void arg_ulong(kargs *a, size_t v) {
    cl_ulong x = v;
    arg(a, sizeof x, &x);
}
static void arg_float(kargs *a, float v) {
    cl_float x = v;
    arg(a, sizeof x, &x);
}

/* A buffer and the element offset of a p3_ref; refs must be element aligned. */
static bool arg_ref(kargs *a, p3_ref r, size_t elem) {
    arg_mem(a, (cl_mem)r.buf->impl);
    arg_ulong(a, r.offset / elem);
    return r.offset % elem == 0;
}

static p3_status launch(kargs *a, const char *op, cl_uint dims, const size_t *global,
                        const size_t *local, p3_error *err) {
    if (a->rc != CL_SUCCESS)
        return p3_fail(err, PHI3C_ERR_BACKEND, "opencl %s: setting argument %u: %s", op,
                       (unsigned)a->i, p3_ocl_strerror(a->rc));
    cl_int rc = a->c->api.clEnqueueNDRangeKernel(a->c->queue, a->k, dims, NULL, global, local, 0,
                                                 NULL, NULL);
    if (rc != CL_SUCCESS)
        return p3_fail(err, rc == CL_OUT_OF_RESOURCES ? PHI3C_ERR_DEVICE_OOM : PHI3C_ERR_BACKEND,
                       "opencl %s: clEnqueueNDRangeKernel: %s (%d)", op, p3_ocl_strerror(rc),
                       (int)rc);
    return PHI3C_OK;
}

static p3_status misaligned(const char *op, p3_error *err) {
    return p3_fail(err, PHI3C_ERR_INVALID_ARG,
                   "opencl %s: a buffer offset is not a multiple of the element size", op);
}

/* ---- ops ----------------------------------------------------------------------------------- */

static p3_status embed(void *ctx, p3_ref out, const p3_weight *table, p3_ref ids, int n_tokens,
                       p3_error *err) {
    ocl_ctx *c = ctx;
    const ocl_weight *w = table->impl;
    bool int4 = table->dtype == P3_DT_I4G128S || table->dtype == P3_DT_I4G128A;
    cl_kernel k = int4                        ? c->k.embed_i4
                  : table->dtype == P3_DT_F32 ? c->k.embed_f32
                  : table->dtype == P3_DT_F16 ? c->k.embed_f16
                                              : c->k.embed_bf16;
    kargs a = {c, k, 0, CL_SUCCESS};
    bool ok = arg_ref(&a, out, 4);
    arg_mem(&a, w->a);
    if (int4) {
        arg_mem(&a, w->b);
        arg_mem(&a, w->c);
    }
    ok &= arg_ref(&a, ids, 4);
    arg_int(&a, (int)table->rows);
    if (int4) arg_int(&a, (int)w->stride);
    arg_int(&a, (int)table->cols);
    arg_mem(&a, c->bad_id);
    if (!ok) return misaligned("embed", err);
    size_t global[2] = {round_up((size_t)table->cols, 64), (size_t)n_tokens};
    return launch(&a, "embed", 2, global, NULL, err);
}

static p3_status rmsnorm(void *ctx, p3_ref out, p3_ref x, p3_ref w, int n_tokens, int dim,
                         float eps, p3_error *err) {
    ocl_ctx *c = ctx;
    kargs a = {c, c->k.rmsnorm, 0, CL_SUCCESS};
    bool ok = arg_ref(&a, out, 4);
    ok &= arg_ref(&a, x, 4);
    ok &= arg_ref(&a, w, 4);
    arg_int(&a, dim);
    arg_float(&a, eps);
    if (!ok) return misaligned("rmsnorm", err);
    size_t global[2] = {NORM_WG, (size_t)n_tokens}, local[2] = {NORM_WG, 1};
    return launch(&a, "rmsnorm", 2, global, local, err);
}

/* Grows the w4a8 scratch to hold `need` token-groups (only the first prefill allocates). */
static p3_status ensure_act_scratch(ocl_ctx *c, size_t need, p3_error *err) {
    if (need <= c->act_groups) return PHI3C_OK;
    cl_mem q = NULL, d = NULL, s = NULL;
    p3_status st = device_alloc(c, need * 128, "w4a8 activations", &q, err);
    if (st == PHI3C_OK) st = device_alloc(c, need * 4, "w4a8 activation scales", &d, err);
    if (st == PHI3C_OK) st = device_alloc(c, need * 4, "w4a8 activation sums", &s, err);
    if (st != PHI3C_OK) {
        if (q) c->api.clReleaseMemObject(q);
        if (d) c->api.clReleaseMemObject(d);
        return st;
    }
    if (c->act_q) c->api.clReleaseMemObject(c->act_q);
    if (c->act_d) c->api.clReleaseMemObject(c->act_d);
    if (c->act_s) c->api.clReleaseMemObject(c->act_s);
    c->act_q = q;
    c->act_d = d;
    c->act_s = s;
    c->act_groups = need;
    return PHI3C_OK;
}

/* w4a8: quantize the activations into the scratch, then the integer matmul. */
static p3_status matmul_q8(ocl_ctx *c, p3_ref y, p3_ref x, const p3_weight *pw, int n_tokens,
                           p3_error *err) {
    const ocl_weight *w = pw->impl;
    size_t groups = (size_t)p3_groups(pw->cols);
    p3_status st = ensure_act_scratch(c, groups * (size_t)n_tokens, err);
    if (st != PHI3C_OK) return st;
    kargs q = {c, c->k.quant_act, 0, CL_SUCCESS};
    arg_mem(&q, c->act_q);
    arg_mem(&q, c->act_d);
    arg_mem(&q, c->act_s);
    bool ok = arg_ref(&q, x, 4);
    arg_int(&q, (int)pw->cols);
    size_t qglobal[2] = {64 * groups, (size_t)n_tokens}, qlocal[2] = {64, 1};
    if (!ok) return misaligned("matmul", err);
    st = launch(&q, "matmul (activation quantization)", 2, qglobal, qlocal, err);
    if (st != PHI3C_OK) return st;
    bool wide = n_tokens > 1;
    kargs a = {c, wide ? c->k.mm_i4q8_t4 : c->k.mm_i4q8_t1, 0, CL_SUCCESS};
    ok = arg_ref(&a, y, 4);
    arg_mem(&a, c->act_q);
    arg_mem(&a, c->act_d);
    arg_mem(&a, c->act_s);
    arg_mem(&a, w->a);
    arg_mem(&a, w->b);
    arg_mem(&a, w->c);
    arg_int(&a, (int)pw->rows);
    arg_int(&a, (int)w->stride);
    arg_int(&a, (int)pw->cols);
    arg_int(&a, n_tokens);
    if (!ok) return misaligned("matmul", err);
    size_t tiles = wide ? ((size_t)n_tokens + MM_TT - 1) / MM_TT : 1;
    size_t global[3] = {round_up((size_t)pw->rows, MM_LR), MM_LK, tiles};
    size_t local[3] = {MM_LR, MM_LK, 1};
    return launch(&a, "matmul", 3, global, local, err);
}

static p3_status matmul(void *ctx, p3_ref y, p3_ref x, const p3_weight *pw, int n_tokens,
                        p3_error *err) {
    ocl_ctx *c = ctx;
    const ocl_weight *w = pw->impl;
    bool wide = n_tokens > 1, int4 = pw->dtype == P3_DT_I4G128S || pw->dtype == P3_DT_I4G128A;
    if (int4 && pw->act == P3_ACT_Q8) return matmul_q8(c, y, x, pw, n_tokens, err);
    cl_kernel k;
    switch (pw->dtype) {
    case P3_DT_F32:
        k = wide ? c->k.mm_f32_t4 : c->k.mm_f32_t1;
        break;
    case P3_DT_F16:
        k = wide ? c->k.mm_f16_t4 : c->k.mm_f16_t1;
        break;
    case P3_DT_BF16:
        k = wide ? c->k.mm_bf16_t4 : c->k.mm_bf16_t1;
        break;
    default:
        k = wide ? c->k.mm_i4_t4 : c->k.mm_i4_t1;
        break;
    }
    kargs a = {c, k, 0, CL_SUCCESS};
    bool ok = arg_ref(&a, y, 4);
    ok &= arg_ref(&a, x, 4);
    arg_mem(&a, w->a);
    if (int4) {
        arg_mem(&a, w->b);
        arg_mem(&a, w->c);
    }
    arg_int(&a, (int)pw->rows);
    if (int4) arg_int(&a, (int)w->stride);
    arg_int(&a, (int)pw->cols);
    arg_int(&a, n_tokens);
    if (!ok) return misaligned("matmul", err);
    size_t tiles = wide ? ((size_t)n_tokens + MM_TT - 1) / MM_TT : 1;
    size_t global[3] = {round_up((size_t)pw->rows, MM_LR), MM_LK, tiles};
    size_t local[3] = {MM_LR, MM_LK, 1};
    return launch(&a, "matmul", 3, global, local, err);
}

static p3_status rope(void *ctx, p3_ref qkv, int n_tokens, int pos0, const p3_rope_params *p,
                      p3_error *err) {
    ocl_ctx *c = ctx;
    kargs a = {c, c->k.rope, 0, CL_SUCCESS};
    bool ok = arg_ref(&a, qkv, 4);
    ok &= arg_ref(&a, p->inv_freq, 4);
    arg_int(&a, pos0);
    arg_int(&a, p->n_heads);
    arg_int(&a, p->n_kv_heads);
    arg_int(&a, p->head_dim);
    arg_int(&a, p->rot_dim);
    arg_float(&a, p->mscale);
    if (!ok) return misaligned("rope", err);
    size_t global[3] = {(size_t)p->rot_dim / 2, (size_t)(p->n_heads + p->n_kv_heads),
                        (size_t)n_tokens};
    return launch(&a, "rope", 3, global, NULL, err);
}

static p3_status kv_write(void *ctx, p3_kv_cache *pkv, int layer, p3_ref qkv, int n_tokens,
                          int pos0, const p3_attn_params *p, p3_error *err) {
    ocl_ctx *c = ctx;
    ocl_kv *kv = pkv->impl;
    p3_kv_dtype dt = pkv->desc.dtype;
    cl_kernel k = dt == P3_KV_F16  ? c->k.kv_write_f16
                  : dt == P3_KV_Q8 ? c->k.kv_write_q8
                                   : c->k.kv_write_f32;
    kargs a = {c, k, 0, CL_SUCCESS};
    arg_mem(&a, kv->k);
    arg_mem(&a, kv->v);
    arg_ulong(&a, (size_t)layer * kv->layer_elems);
    if (dt == P3_KV_Q8) {
        arg_mem(&a, kv->ks);
        arg_mem(&a, kv->vs);
        arg_ulong(&a, (size_t)layer * kv->layer_rows);
    }
    bool ok = arg_ref(&a, qkv, 4);
    arg_int(&a, pos0);
    arg_int(&a, pkv->desc.n_ctx);
    arg_int(&a, p->n_heads);
    arg_int(&a, p->n_kv_heads);
    arg_int(&a, p->head_dim);
    if (!ok) return misaligned("kv_write", err);
    if (dt == P3_KV_Q8) { /* one work-group per (kv head, token) */
        size_t global[2] = {(size_t)ATT_WG * (size_t)p->n_kv_heads, (size_t)n_tokens};
        size_t local[2] = {ATT_WG, 1};
        return launch(&a, "kv_write", 2, global, local, err);
    }
    size_t global[2] = {round_up((size_t)p->n_kv_heads * (size_t)p->head_dim, 64),
                        (size_t)n_tokens};
    return launch(&a, "kv_write", 2, global, NULL, err);
}

/* Grows the split-decode scratch (the first long decode step allocates it once). */
static p3_status ensure_att_part(ocl_ctx *c, size_t bytes, p3_error *err) {
    if (bytes <= c->att_part_bytes) return PHI3C_OK;
    cl_mem m;
    p3_status st = device_alloc(c, bytes, "attention partials", &m, err);
    if (st != PHI3C_OK) return st;
    if (c->att_part) c->api.clReleaseMemObject(c->att_part);
    c->att_part = m;
    c->att_part_bytes = bytes;
    return PHI3C_OK;
}

static p3_status attention(void *ctx, p3_ref out, p3_ref qkv, p3_kv_cache *pkv, int layer,
                           int n_tokens, int pos0, const p3_attn_params *p, p3_error *err) {
    ocl_ctx *c = ctx;
    ocl_kv *kv = pkv->impl;
    if (p->head_dim > ATT_MAX_HEAD_DIM)
        return p3_fail(err, PHI3C_ERR_UNSUPPORTED, "opencl attention: head_dim %d exceeds %d",
                       p->head_dim, ATT_MAX_HEAD_DIM);
    p3_kv_dtype dt = pkv->desc.dtype;
    cl_kernel k = dt == P3_KV_F16  ? c->k.attention_f16
                  : dt == P3_KV_Q8 ? c->k.attention_q8
                                   : c->k.attention_f32;
    kargs a = {c, k, 0, CL_SUCCESS};
    bool ok = arg_ref(&a, out, 4);
    ok &= arg_ref(&a, qkv, 4);
    arg_mem(&a, kv->k);
    arg_mem(&a, kv->v);
    arg_ulong(&a, (size_t)layer * kv->layer_elems);
    /* f32/f16 kernels never read the scales: any valid buffer will do */
    arg_mem(&a, dt == P3_KV_Q8 ? kv->ks : c->bad_id);
    arg_mem(&a, dt == P3_KV_Q8 ? kv->vs : c->bad_id);
    arg_ulong(&a, (size_t)layer * kv->layer_rows);
    arg_int(&a, pkv->desc.n_ctx);
    arg_int(&a, p->n_heads);
    arg_int(&a, p->n_kv_heads);
    arg_int(&a, p->head_dim);
    arg_int(&a, pos0);
    arg_int(&a, p->window);
    arg_float(&a, p->scale);
    if (!ok) return misaligned("attention", err);
    int lo = p->window > 0 ? P3_MAX(0, pos0 - p->window + 1) : 0;
    size_t keys = (size_t)(pos0 - lo + 1), chunks = (keys + ATT_CHUNK - 1) / ATT_CHUNK;
    bool split = n_tokens == 1 && chunks > 2;
    if (split) {
        size_t bytes = (size_t)p->n_heads * chunks * ((size_t)p->head_dim + 2) * sizeof(float);
        p3_status st = ensure_att_part(c, bytes, err);
        if (st != PHI3C_OK) return st;
    }
    arg_int(&a, split ? ATT_CHUNK : 0);
    arg_mem(&a, split ? c->att_part : c->bad_id);
    size_t global[3] = {(size_t)ATT_WG * (size_t)p->n_heads, (size_t)n_tokens, split ? chunks : 1};
    size_t local[3] = {ATT_WG, 1, 1};
    p3_status st = launch(&a, "attention", 3, global, local, err);
    if (st != PHI3C_OK || !split) return st;
    kargs m = {c, c->k.attention_merge, 0, CL_SUCCESS};
    arg_ref(&m, out, 4);
    arg_mem(&m, c->att_part);
    arg_int(&m, p->head_dim);
    arg_int(&m, (int)chunks);
    size_t mglobal[1] = {(size_t)ATT_WG * (size_t)p->n_heads}, mlocal[1] = {ATT_WG};
    return launch(&m, "attention (merge)", 1, mglobal, mlocal, err);
}

static p3_status swiglu(void *ctx, p3_ref out, p3_ref gate_up, int n_tokens, int dim,
                        p3_error *err) {
    ocl_ctx *c = ctx;
    kargs a = {c, c->k.swiglu, 0, CL_SUCCESS};
    bool ok = arg_ref(&a, out, 4);
    ok &= arg_ref(&a, gate_up, 4);
    arg_int(&a, dim);
    if (!ok) return misaligned("swiglu", err);
    size_t global[2] = {round_up((size_t)dim, 64), (size_t)n_tokens};
    return launch(&a, "swiglu", 2, global, NULL, err);
}

static p3_status add(void *ctx, p3_ref x, p3_ref y, size_t n, p3_error *err) {
    ocl_ctx *c = ctx;
    if (n == 0) return PHI3C_OK;
    kargs a = {c, c->k.add, 0, CL_SUCCESS};
    bool ok = arg_ref(&a, x, 4);
    ok &= arg_ref(&a, y, 4);
    arg_ulong(&a, n);
    if (!ok) return misaligned("add", err);
    size_t global[1] = {round_up(n, 64)};
    return launch(&a, "add", 1, global, NULL, err);
}

static p3_status copy(void *ctx, p3_ref dst, p3_ref src, size_t size, p3_error *err) {
    ocl_ctx *c = ctx;
    if (size == 0) return PHI3C_OK;
    cl_int rc = c->api.clEnqueueCopyBuffer(c->queue, (cl_mem)src.buf->impl, (cl_mem)dst.buf->impl,
                                           src.offset, dst.offset, size, 0, NULL, NULL);
    return rc == CL_SUCCESS ? PHI3C_OK : cl_fail(err, rc, "clEnqueueCopyBuffer");
}

const p3_backend_iface p3_backend_opencl = {
    .version = P3_BACKEND_IFACE_VERSION,
    .name = "opencl",
    .probe = probe,
    .create = create,
    .destroy = destroy,
    .describe = describe,
    .supports = supports,
    .buffer_alloc = buffer_alloc,
    .buffer_free = buffer_free,
    .buffer_write = buffer_write,
    .buffer_read = buffer_read,
    .buffer_wrap_host = NULL,
    .weight_upload = weight_upload,
    .weight_free = weight_free,
    .weight_bytes = weight_bytes,
    .kv_alloc = kv_alloc,
    .kv_free = kv_free,
    .embed = embed,
    .rmsnorm = rmsnorm,
    .matmul = matmul,
    .rope = rope,
    .kv_write = kv_write,
    .attention = attention,
    .swiglu = swiglu,
    .add = add,
    .copy = copy,
    .sync = sync,
};

p3_status p3_opencl_build_test(int device, const char *source, p3_error *err) {
    p3_backend_options opt = {0};
    opt.device = device;
    void *ctx = NULL;
    p3_status st = create(&opt, &ctx, err);
    if (st != PHI3C_OK) return st;
    ocl_ctx *c = ctx;
    cl_program prog = NULL;
    st = build_source(c, source, strlen(source), &prog, err);
    if (prog) c->api.clReleaseProgram(prog);
    destroy(c);
    return st;
}
