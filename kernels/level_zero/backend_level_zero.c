/* backend_level_zero.c: the Level Zero GPU backend (p3_backend_level_zero). Opens the loader with
 * dlopen (no link-time dependency), picks a GPU device, builds the embedded SPIR-V module
 * (l0_kernels.cl, see build.mk) and appends every op of a step to one command list, which is
 * submitted once when the host needs a result (buffer_read, sync) and waited on with a fence. */
#include "backend.h"
#include "int4.h"
#include "l0_headers.h"
#include "l0_spirv.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef P3_HAVE_ZE_HEADERS
static p3_status l0_create_stub(const p3_backend_options *opt, void **ctx, p3_error *err) {
    (void)opt;
    (void)ctx;
    return p3_fail(err, PHI3C_ERR_UNAVAILABLE, "level-zero: built without the Level Zero headers");
}
const p3_backend_iface p3_backend_level_zero = {
    .version = P3_BACKEND_IFACE_VERSION,
    .name = "level-zero",
    .probe = p3_l0_probe_without_headers,
    .create = l0_create_stub,
};
#else

#include "l0_loader.h"

/* The GPU devices of every driver, in driver order. */
#define P3_L0_MAX_DEVICES 16
typedef struct l0_gpu_list {
    int n;
    ze_driver_handle_t driver[P3_L0_MAX_DEVICES];
    ze_device_handle_t device[P3_L0_MAX_DEVICES];
    char name[P3_L0_MAX_DEVICES][ZE_MAX_DEVICE_NAME];
} l0_gpu_list;

static bool list_gpus(const l0_api *api, l0_gpu_list *gpus, char *why, size_t why_len) {
    memset(gpus, 0, sizeof *gpus);
    ze_result_t r = p3_l0_init(api);
    uint32_t n_drivers = 0;
    if (r == ZE_RESULT_SUCCESS) r = api->zeDriverGet(&n_drivers, NULL);
    if (r != ZE_RESULT_SUCCESS || n_drivers == 0) {
        snprintf(why, why_len, "no Level Zero driver found (%s): %s",
                 r != ZE_RESULT_SUCCESS ? p3_ze_result_name(r) : "0 drivers", p3_l0_no_driver_hint);
        return false;
    }
    ze_driver_handle_t drivers[8];
    if (n_drivers > 8) n_drivers = 8;
    if (api->zeDriverGet(&n_drivers, drivers) != ZE_RESULT_SUCCESS) n_drivers = 0;
    for (uint32_t d = 0; d < n_drivers; d++) {
        uint32_t n_dev = 0;
        if (api->zeDeviceGet(drivers[d], &n_dev, NULL) != ZE_RESULT_SUCCESS) continue;
        ze_device_handle_t devs[P3_L0_MAX_DEVICES];
        if (n_dev > P3_L0_MAX_DEVICES) n_dev = P3_L0_MAX_DEVICES;
        if (n_dev == 0 || api->zeDeviceGet(drivers[d], &n_dev, devs) != ZE_RESULT_SUCCESS) continue;
        for (uint32_t i = 0; i < n_dev && gpus->n < P3_L0_MAX_DEVICES; i++) {
            ze_device_properties_t props = {.stype = ZE_STRUCTURE_TYPE_DEVICE_PROPERTIES};
            if (api->zeDeviceGetProperties(devs[i], &props) != ZE_RESULT_SUCCESS) continue;
            if (props.type != ZE_DEVICE_TYPE_GPU) continue;
            gpus->driver[gpus->n] = drivers[d];
            gpus->device[gpus->n] = devs[i];
            snprintf(gpus->name[gpus->n], ZE_MAX_DEVICE_NAME, "%s", props.name);
            gpus->n++;
        }
    }
    if (gpus->n == 0) {
        snprintf(why, why_len, "%u Level Zero driver(s) found, but no GPU device", n_drivers);
        return false;
    }
    return true;
}

static bool l0_probe(char *why, size_t why_len, char *devices, size_t devices_len) {
    if (devices_len) devices[0] = '\0';
    if (p3_l0_spirv_size == 0) {
        snprintf(why, why_len, "built without SPIR-V modules (%s)", p3_l0_spirv_missing);
        return false;
    }
    l0_api api;
    l0_gpu_list gpus;
    /* the loader itself loads no driver until zeInit: a missing loader is reported in every build
     */
    if (!p3_l0_api_load(&api, why, why_len) || !p3_l0_sanitizer_may_probe(why, why_len) ||
        !list_gpus(&api, &gpus, why, why_len))
        return false;
    size_t used = 0;
    for (int i = 0; i < gpus.n && used < devices_len; i++) {
        int n = snprintf(devices + used, devices_len - used, "%s%d: %s", i ? ", " : "", i,
                         gpus.name[i]);
        if (n < 0) break;
        used += (size_t)n;
    }
    return true;
}

/* ---- the context */
typedef enum l0_kernel_id {
    K_EMBED_F32 = 0,
    K_EMBED_F16,
    K_EMBED_BF16,
    K_EMBED_I4,
    K_RMSNORM,
    K_MATMUL_F32,
    K_MATMUL_F16,
    K_MATMUL_BF16,
    K_MATMUL_I4,
    K_QUANTIZE_Q8,
    K_MATMUL_I4_Q8,
    K_ROPE,
    K_KV_WRITE_F32, /* the three cache types in p3_kv_dtype order */
    K_KV_WRITE_F16,
    K_KV_WRITE_Q8,
    K_ATTENTION_F32,
    K_ATTENTION_F16,
    K_ATTENTION_Q8,
    K_SWIGLU,
    K_ADD,
    K_COUNT
} l0_kernel_id;

static const char *const kernel_names[K_COUNT] = {
    "p3_embed_f32",     "p3_embed_f16",     "p3_embed_bf16",   "p3_embed_i4",     "p3_rmsnorm",
    "p3_matmul_f32",    "p3_matmul_f16",    "p3_matmul_bf16",  "p3_matmul_i4",    "p3_quantize_q8",
    "p3_matmul_i4_q8",  "p3_rope",          "p3_kv_write_f32", "p3_kv_write_f16", "p3_kv_write_q8",
    "p3_attention_f32", "p3_attention_f16", "p3_attention_q8", "p3_swiglu",       "p3_add",
};

typedef struct l0_ctx {
    l0_api api;
    ze_device_handle_t device;
    char device_name[ZE_MAX_DEVICE_NAME];
    ze_context_handle_t context;
    ze_command_queue_handle_t queue;
    ze_command_list_handle_t list;
    ze_fence_handle_t fence;
    ze_module_handle_t module;
    ze_kernel_handle_t kernels[K_COUNT];
    size_t pending;  /* commands appended since the last submission */
    int32_t *bad_id; /* device flag raised by embed on an out-of-range id */
    int32_t bad_id_host;
    void *q8_scratch; /* w4a8 activations: int8 groups, then f32 scales */
    size_t q8_scratch_size;
} l0_ctx;

typedef struct l0_weight_impl {
    void *dev;
    size_t bytes;
    size_t scale_off, zero_off; /* INT4 only: byte offsets of the scale and zero arrays */
} l0_weight_impl;

/* Per layer: values [n_ctx][n_kv_heads * head_dim] (f32, f16 bits or int8) and, for q8, f32
 * scales [n_ctx][n_kv_heads]; K and V in separate allocations. */
typedef struct l0_kv_impl {
    char *k, *v;
    char *k_scale, *v_scale; /* q8 only */
    size_t layer_bytes, layer_scale_bytes;
} l0_kv_impl;

static p3_status ze_fail(p3_error *err, ze_result_t r, const char *what) {
    p3_status s = r == ZE_RESULT_ERROR_OUT_OF_DEVICE_MEMORY ? PHI3C_ERR_DEVICE_OOM
                  : r == ZE_RESULT_ERROR_OUT_OF_HOST_MEMORY ? PHI3C_ERR_NOMEM
                                                            : PHI3C_ERR_BACKEND;
    return p3_fail(err, s, "level-zero: %s failed (%s, 0x%x)", what, p3_ze_result_name(r),
                   (unsigned)r);
}

#define ZE_TRY(call, what)                                                                         \
    do {                                                                                           \
        ze_result_t r_ = (call);                                                                   \
        if (r_ != ZE_RESULT_SUCCESS) return ze_fail(err, r_, what);                                \
    } while (0)

static void *dev_ptr(p3_ref ref) {
    return (char *)ref.buf->impl + ref.offset;
}

/* Closes the command list, runs it and waits on the fence, then checks the embed flag. */
static p3_status submit_and_wait(l0_ctx *c, p3_error *err) {
    if (c->pending == 0) return PHI3C_OK;
    ZE_TRY(c->api.zeCommandListAppendMemoryCopy(c->list, &c->bad_id_host, c->bad_id,
                                                sizeof c->bad_id_host, NULL, 0, NULL),
           "zeCommandListAppendMemoryCopy");
    ZE_TRY(c->api.zeCommandListClose(c->list), "zeCommandListClose");
    c->pending = 0;
    ze_result_t r = c->api.zeCommandQueueExecuteCommandLists(c->queue, 1, &c->list, c->fence);
    if (r == ZE_RESULT_SUCCESS) r = c->api.zeFenceHostSynchronize(c->fence, UINT64_MAX);
    c->api.zeFenceReset(c->fence);
    c->api.zeCommandListReset(c->list);
    if (r != ZE_RESULT_SUCCESS) return ze_fail(err, r, "running the command list");
    if (c->bad_id_host) {
        c->bad_id_host = 0;
        int32_t zero = 0;
        ZE_TRY(c->api.zeCommandListAppendMemoryFill(c->list, c->bad_id, &zero, sizeof zero,
                                                    sizeof zero, NULL, 0, NULL),
               "zeCommandListAppendMemoryFill");
        c->pending++;
        return p3_fail(err, PHI3C_ERR_INVALID_ARG,
                       "level-zero embed: a token id was outside the table (rows were zeroed)");
    }
    return PHI3C_OK;
}

/* Every command is followed by a barrier: Level Zero only orders commands of a list that are
 * separated by one. */
static p3_status appended(l0_ctx *c, ze_result_t r, const char *what, p3_error *err) {
    if (r != ZE_RESULT_SUCCESS) return ze_fail(err, r, what);
    ZE_TRY(c->api.zeCommandListAppendBarrier(c->list, NULL, 0, NULL), "zeCommandListAppendBarrier");
    c->pending++;
    return PHI3C_OK;
}

/* Kernel arguments collected before a launch. */
typedef struct l0_args {
    int n;
    size_t size[12];
    unsigned char value[12][8];
} l0_args;

static void arg_ptr(l0_args *a, const void *p) {
    a->size[a->n] = sizeof p;
    memcpy(a->value[a->n++], &p, sizeof p);
}
static void arg_int(l0_args *a, int v) {
    a->size[a->n] = sizeof v;
    memcpy(a->value[a->n++], &v, sizeof v);
}
static void arg_float(l0_args *a, float v) {
    a->size[a->n] = sizeof v;
    memcpy(a->value[a->n++], &v, sizeof v);
}

/* Launches kernel k over a grid of gx * gy * gz work-items in groups of `group` along x (0: up
 * to 64, the kernel checks x against its bound), one along y and z. */
static p3_status launch_grouped(l0_ctx *c, l0_kernel_id k, size_t gx, size_t gy, size_t gz,
                                uint32_t group, const l0_args *a, p3_error *err) {
    if (gx == 0 || gy == 0 || gz == 0) return PHI3C_OK;
    if (gx > INT_MAX || gy > INT_MAX || gz > INT_MAX)
        return p3_fail(err, PHI3C_ERR_UNSUPPORTED, "level-zero %s: grid too large",
                       kernel_names[k]);
    ze_kernel_handle_t kern = c->kernels[k];
    if (group == 0)
        for (group = 1; group < 64 && group < gx;) group *= 2;
    ZE_TRY(c->api.zeKernelSetGroupSize(kern, group, 1, 1), "zeKernelSetGroupSize");
    for (int i = 0; i < a->n; i++)
        ZE_TRY(c->api.zeKernelSetArgumentValue(kern, (uint32_t)i, a->size[i], a->value[i]),
               "zeKernelSetArgumentValue");
    ze_group_count_t count = {(uint32_t)((gx + group - 1) / group), (uint32_t)gy, (uint32_t)gz};
    return appended(c, c->api.zeCommandListAppendLaunchKernel(c->list, kern, &count, NULL, 0, NULL),
                    kernel_names[k], err);
}

static p3_status launch(l0_ctx *c, l0_kernel_id k, size_t gx, size_t gy, size_t gz,
                        const l0_args *a, p3_error *err) {
    return launch_grouped(c, k, gx, gy, gz, 0, a, err);
}

static p3_status build_module(l0_ctx *c, p3_error *err) {
    ze_module_desc_t desc = {.stype = ZE_STRUCTURE_TYPE_MODULE_DESC,
                             .format = ZE_MODULE_FORMAT_IL_SPIRV,
                             .inputSize = p3_l0_spirv_size,
                             .pInputModule = p3_l0_spirv,
                             .pBuildFlags = ""};
    ze_module_build_log_handle_t log = NULL;
    ze_result_t r = c->api.zeModuleCreate(c->context, c->device, &desc, &c->module, &log);
    if (r != ZE_RESULT_SUCCESS) {
        char text[1024] = "";
        size_t size = 0;
        if (log && c->api.zeModuleBuildLogGetString(log, &size, NULL) == ZE_RESULT_SUCCESS) {
            char *full = p3_malloc(size + 1);
            if (full && c->api.zeModuleBuildLogGetString(log, &size, full) == ZE_RESULT_SUCCESS)
                snprintf(text, sizeof text, "%s", full);
            p3_free(full);
        }
        if (log) c->api.zeModuleBuildLogDestroy(log);
        c->module = NULL;
        return p3_fail(err, PHI3C_ERR_BACKEND,
                       "level-zero: building the SPIR-V module failed (%s); build log: %s",
                       p3_ze_result_name(r), text[0] ? text : "(empty)");
    }
    if (log) c->api.zeModuleBuildLogDestroy(log);
    for (int k = 0; k < K_COUNT; k++) {
        ze_kernel_desc_t kd = {.stype = ZE_STRUCTURE_TYPE_KERNEL_DESC,
                               .pKernelName = kernel_names[k]};
        r = c->api.zeKernelCreate(c->module, &kd, &c->kernels[k]);
        if (r != ZE_RESULT_SUCCESS) {
            c->kernels[k] = NULL;
            return p3_fail(err, PHI3C_ERR_BACKEND, "level-zero: zeKernelCreate(%s) failed (%s)",
                           kernel_names[k], p3_ze_result_name(r));
        }
    }
    return PHI3C_OK;
}

static void l0_destroy(void *ctx) {
    l0_ctx *c = ctx;
    if (!c) return;
    if (c->list && c->queue && c->fence && c->pending) {
        p3_error ignored;
        submit_and_wait(c, &ignored);
    }
    for (int k = 0; k < K_COUNT; k++)
        if (c->kernels[k]) c->api.zeKernelDestroy(c->kernels[k]);
    if (c->module) c->api.zeModuleDestroy(c->module);
    if (c->bad_id) c->api.zeMemFree(c->context, c->bad_id);
    if (c->q8_scratch) c->api.zeMemFree(c->context, c->q8_scratch);
    if (c->fence) c->api.zeFenceDestroy(c->fence);
    if (c->list) c->api.zeCommandListDestroy(c->list);
    if (c->queue) c->api.zeCommandQueueDestroy(c->queue);
    if (c->context) c->api.zeContextDestroy(c->context);
    p3_free(c);
}

/* The first queue group that runs compute kernels (GPUs also have copy-only engines). */
static p3_status compute_ordinal(l0_ctx *c, uint32_t *ordinal, p3_error *err) {
    uint32_t n = 0;
    ZE_TRY(c->api.zeDeviceGetCommandQueueGroupProperties(c->device, &n, NULL),
           "zeDeviceGetCommandQueueGroupProperties");
    ze_command_queue_group_properties_t props[16];
    if (n > 16) n = 16;
    for (uint32_t i = 0; i < n; i++)
        props[i] = (ze_command_queue_group_properties_t){
            .stype = ZE_STRUCTURE_TYPE_COMMAND_QUEUE_GROUP_PROPERTIES};
    ZE_TRY(c->api.zeDeviceGetCommandQueueGroupProperties(c->device, &n, props),
           "zeDeviceGetCommandQueueGroupProperties");
    for (uint32_t i = 0; i < n; i++)
        if (props[i].flags & ZE_COMMAND_QUEUE_GROUP_PROPERTY_FLAG_COMPUTE) {
            *ordinal = i;
            return PHI3C_OK;
        }
    return p3_fail(err, PHI3C_ERR_UNAVAILABLE, "level-zero: %s has no compute queue group",
                   c->device_name);
}

static p3_status create_objects(l0_ctx *c, ze_driver_handle_t driver, p3_error *err) {
    ze_context_desc_t cd = {.stype = ZE_STRUCTURE_TYPE_CONTEXT_DESC};
    ZE_TRY(c->api.zeContextCreate(driver, &cd, &c->context), "zeContextCreate");
    uint32_t ordinal = 0;
    p3_status st = compute_ordinal(c, &ordinal, err);
    if (st != PHI3C_OK) return st;
    ze_command_queue_desc_t qd = {.stype = ZE_STRUCTURE_TYPE_COMMAND_QUEUE_DESC,
                                  .ordinal = ordinal,
                                  .mode = ZE_COMMAND_QUEUE_MODE_ASYNCHRONOUS};
    ZE_TRY(c->api.zeCommandQueueCreate(c->context, c->device, &qd, &c->queue),
           "zeCommandQueueCreate");
    ze_command_list_desc_t ld = {.stype = ZE_STRUCTURE_TYPE_COMMAND_LIST_DESC,
                                 .commandQueueGroupOrdinal = ordinal};
    ZE_TRY(c->api.zeCommandListCreate(c->context, c->device, &ld, &c->list), "zeCommandListCreate");
    ze_fence_desc_t fd = {.stype = ZE_STRUCTURE_TYPE_FENCE_DESC};
    ZE_TRY(c->api.zeFenceCreate(c->queue, &fd, &c->fence), "zeFenceCreate");
    ze_device_mem_alloc_desc_t md = {.stype = ZE_STRUCTURE_TYPE_DEVICE_MEM_ALLOC_DESC};
    void *flag = NULL;
    ZE_TRY(c->api.zeMemAllocDevice(c->context, &md, sizeof(int32_t), sizeof(int32_t), c->device,
                                   &flag),
           "zeMemAllocDevice");
    c->bad_id = flag;
    int32_t zero = 0;
    ZE_TRY(c->api.zeCommandListAppendMemoryFill(c->list, c->bad_id, &zero, sizeof zero, sizeof zero,
                                                NULL, 0, NULL),
           "zeCommandListAppendMemoryFill");
    c->pending++;
    p3_status s = build_module(c, err);
    if (s != PHI3C_OK) return s;
    return submit_and_wait(c, err);
}

static p3_status l0_create(const p3_backend_options *opt, void **out, p3_error *err) {
    *out = NULL;
    char why[512];
    if (p3_l0_spirv_size == 0)
        return p3_fail(err, PHI3C_ERR_UNAVAILABLE, "level-zero: built without SPIR-V modules (%s)",
                       p3_l0_spirv_missing);
    if (!p3_l0_sanitizer_may_probe(why, sizeof why))
        return p3_fail(err, PHI3C_ERR_UNAVAILABLE, "level-zero: %s", why);
    l0_ctx *c = p3_calloc(1, sizeof *c);
    if (!c) return p3_fail(err, PHI3C_ERR_NOMEM, "level-zero: out of memory");
    l0_gpu_list gpus;
    if (!p3_l0_api_load(&c->api, why, sizeof why) || !list_gpus(&c->api, &gpus, why, sizeof why)) {
        p3_free(c);
        return p3_fail(err, PHI3C_ERR_UNAVAILABLE, "level-zero: %s", why);
    }
    int dev = opt ? opt->device : 0;
    if (dev < 0 || dev >= gpus.n) {
        p3_free(c);
        return p3_fail(err, PHI3C_ERR_INVALID_ARG,
                       "level-zero: device %d does not exist (%d GPU device(s) found)", dev,
                       gpus.n);
    }
    c->device = gpus.device[dev];
    snprintf(c->device_name, sizeof c->device_name, "%s", gpus.name[dev]);
    p3_status s = create_objects(c, gpus.driver[dev], err);
    if (s != PHI3C_OK) {
        l0_destroy(c);
        return s;
    }
    *out = c;
    return PHI3C_OK;
}

static void l0_describe(void *ctx, char *buf, size_t len) {
    l0_ctx *c = ctx;
    snprintf(buf, len, "level-zero %s", c->device_name);
}

static bool l0_supports(void *ctx, p3_op op, p3_dtype weight, p3_act_mode act, p3_kv_dtype kv) {
    (void)ctx;
    switch (op) {
    case P3_OP_EMBED:
    case P3_OP_MATMUL:
        if (weight == P3_DT_I4G128S || weight == P3_DT_I4G128A)
            return op == P3_OP_EMBED || act == P3_ACT_F32 || act == P3_ACT_Q8;
        return weight == P3_DT_F32 || weight == P3_DT_F16 || weight == P3_DT_BF16;
    case P3_OP_KV_WRITE:
    case P3_OP_ATTENTION:
        return kv == P3_KV_F32 || kv == P3_KV_F16 || kv == P3_KV_Q8;
    default:
        return true;
    }
}

/* ---- buffers */
static p3_status dev_alloc(l0_ctx *c, size_t size, void **out, p3_error *err) {
    ze_device_mem_alloc_desc_t md = {.stype = ZE_STRUCTURE_TYPE_DEVICE_MEM_ALLOC_DESC};
    ze_result_t r = c->api.zeMemAllocDevice(c->context, &md, size ? size : 1, 64, c->device, out);
    if (r != ZE_RESULT_SUCCESS) {
        *out = NULL;
        return p3_fail(err,
                       r == ZE_RESULT_ERROR_OUT_OF_DEVICE_MEMORY ||
                               r == ZE_RESULT_ERROR_UNSUPPORTED_SIZE
                           ? PHI3C_ERR_DEVICE_OOM
                           : PHI3C_ERR_BACKEND,
                       "level-zero: cannot allocate %zu bytes of device memory (%s)", size,
                       p3_ze_result_name(r));
    }
    return PHI3C_OK;
}

/* Memory is freed only once no queued command can still use it. */
static void dev_free(l0_ctx *c, void *p) {
    if (!p) return;
    p3_error ignored;
    submit_and_wait(c, &ignored);
    c->api.zeMemFree(c->context, p);
}

static p3_status l0_buffer_alloc(void *ctx, size_t size, p3_buffer **out, p3_error *err) {
    l0_ctx *c = ctx;
    p3_buffer *b = p3_calloc(1, sizeof *b);
    if (!b) return p3_fail(err, PHI3C_ERR_NOMEM, "level-zero: out of memory");
    p3_status s = dev_alloc(c, size, &b->impl, err);
    if (s != PHI3C_OK) {
        p3_free(b);
        return s;
    }
    b->size = size;
    *out = b;
    return PHI3C_OK;
}

static void l0_buffer_free(void *ctx, p3_buffer *buf) {
    if (!buf) return;
    dev_free(ctx, buf->impl);
    p3_free(buf);
}

/* Host -> device, ordered after everything queued before, complete on return (src is the
 * caller's and need not outlive the call). */
static p3_status write_now(l0_ctx *c, void *dst, const void *src, size_t size, p3_error *err) {
    p3_status s = submit_and_wait(c, err);
    if (s != PHI3C_OK || size == 0) return s;
    s = appended(c, c->api.zeCommandListAppendMemoryCopy(c->list, dst, src, size, NULL, 0, NULL),
                 "zeCommandListAppendMemoryCopy", err);
    return s != PHI3C_OK ? s : submit_and_wait(c, err);
}

static p3_status l0_buffer_write(void *ctx, p3_ref dst, const void *src, size_t size,
                                 p3_error *err) {
    return write_now(ctx, dev_ptr(dst), src, size, err);
}

static p3_status l0_buffer_read(void *ctx, p3_ref src, void *dst, size_t size, p3_error *err) {
    l0_ctx *c = ctx;
    if (size == 0) return submit_and_wait(c, err);
    p3_status s = appended(
        c, c->api.zeCommandListAppendMemoryCopy(c->list, dst, dev_ptr(src), size, NULL, 0, NULL),
        "zeCommandListAppendMemoryCopy", err);
    return s != PHI3C_OK ? s : submit_and_wait(c, err);
}

static p3_status l0_sync(void *ctx, p3_error *err) {
    return submit_and_wait(ctx, err);
}

/* ---- weights: float types are copied as they are; INT4 is split into nibbles, f32 scales and
 * zero points (8 for symmetric) so one kernel serves both and loads stay aligned. */
static p3_status upload_float(l0_ctx *c, const p3_weight_desc *d, l0_weight_impl *w,
                              p3_error *err) {
    size_t elem = d->dtype == P3_DT_F32 ? sizeof(float) : sizeof(uint16_t), n;
    if (!p3_mul_size((size_t)d->rows, (size_t)d->cols, &n) || !p3_mul_size(n, elem, &w->bytes))
        return p3_fail(err, PHI3C_ERR_INVALID_ARG, "level-zero: weight %s is too large", d->name);
    p3_status s = dev_alloc(c, w->bytes, &w->dev, err);
    return s != PHI3C_OK ? s : write_now(c, w->dev, d->data, w->bytes, err);
}

static void repack_i4(const p3_weight_desc *d, size_t groups, uint8_t *qs, float *scale,
                      uint8_t *zero) {
    bool asym = d->dtype == P3_DT_I4G128A;
    size_t block = asym ? sizeof(p3_block_i4a) : sizeof(p3_block_i4s);
    const uint8_t *src = d->data;
    for (size_t g = 0; g < (size_t)d->rows * groups; g++, src += block) {
        uint16_t h;
        memcpy(&h, src, sizeof h);
        scale[g] = p3_f16_to_f32(h);
        zero[g] = asym ? src[2] : 8;
        memcpy(qs + g * (P3_QK / 2), src + (asym ? 4 : 2), P3_QK / 2);
    }
}

static p3_status upload_i4(l0_ctx *c, const p3_weight_desc *d, l0_weight_impl *w, p3_error *err) {
    size_t groups = (size_t)p3_groups(d->cols), n_groups, qs_bytes, scale_bytes, total;
    if (!p3_mul_size(groups, (size_t)d->rows, &n_groups) ||
        !p3_mul_size(n_groups, P3_QK / 2, &qs_bytes) ||
        !p3_mul_size(n_groups, sizeof(float), &scale_bytes) ||
        !p3_add_size(qs_bytes, scale_bytes, &total) || !p3_add_size(total, n_groups, &total))
        return p3_fail(err, PHI3C_ERR_INVALID_ARG, "level-zero: weight %s is too large", d->name);
    uint8_t *host = p3_malloc(total);
    if (!host) return p3_fail(err, PHI3C_ERR_NOMEM, "level-zero: out of memory for %s", d->name);
    w->scale_off = qs_bytes; /* a multiple of 64: the floats stay aligned */
    w->zero_off = qs_bytes + scale_bytes;
    w->bytes = total;
    repack_i4(d, groups, host, (float *)(void *)(host + w->scale_off), host + w->zero_off);
    p3_status s = dev_alloc(c, total, &w->dev, err);
    if (s == PHI3C_OK) s = write_now(c, w->dev, host, total, err);
    p3_free(host);
    return s;
}

static p3_status l0_weight_upload(void *ctx, const p3_weight_desc *d, p3_weight **out,
                                  p3_error *err) {
    l0_ctx *c = ctx;
    bool i4 = d->dtype == P3_DT_I4G128S || d->dtype == P3_DT_I4G128A;
    if (!i4 && d->dtype != P3_DT_F32 && d->dtype != P3_DT_F16 && d->dtype != P3_DT_BF16)
        return p3_fail(err, PHI3C_ERR_UNSUPPORTED,
                       "level-zero: weight %s: only F32, F16, BF16 and INT4 g128 are implemented",
                       d->name);
    if (d->rows <= 0 || d->cols <= 0 || d->rows > INT_MAX || d->cols > INT_MAX)
        return p3_fail(err, PHI3C_ERR_INVALID_ARG, "level-zero: weight %s has shape %lldx%lld",
                       d->name, (long long)d->rows, (long long)d->cols);
    p3_weight *w = p3_calloc(1, sizeof *w);
    l0_weight_impl *impl = p3_calloc(1, sizeof *impl);
    if (!w || !impl) {
        p3_free(w);
        p3_free(impl);
        return p3_fail(err, PHI3C_ERR_NOMEM, "level-zero: out of memory");
    }
    p3_status s = i4 ? upload_i4(c, d, impl, err) : upload_float(c, d, impl, err);
    if (s != PHI3C_OK) {
        dev_free(c, impl->dev);
        p3_free(impl);
        p3_free(w);
        return s;
    }
    w->dtype = d->dtype;
    w->rows = d->rows;
    w->cols = d->cols;
    w->act = d->act;
    w->impl = impl;
    *out = w;
    return PHI3C_OK;
}

static void l0_weight_free(void *ctx, p3_weight *w) {
    if (!w) return;
    l0_weight_impl *impl = w->impl;
    dev_free(ctx, impl->dev);
    p3_free(impl);
    p3_free(w);
}

static size_t l0_weight_bytes(void *ctx, const p3_weight *w) {
    (void)ctx;
    return ((const l0_weight_impl *)w->impl)->bytes;
}

/* ---- KV cache */
static p3_status l0_kv_alloc(void *ctx, const p3_kv_desc *desc, p3_kv_cache **out, p3_error *err) {
    l0_ctx *c = ctx;
    size_t elem = desc->dtype == P3_KV_F32 ? 4 : desc->dtype == P3_KV_F16 ? 2 : 1;
    size_t per_pos = (size_t)desc->n_kv_heads * (size_t)desc->head_dim, layer, bytes, scales = 0;
    if (desc->n_layers <= 0 || desc->n_ctx <= 0 || per_pos == 0 ||
        !p3_mul_size(per_pos * elem, (size_t)desc->n_ctx, &layer) ||
        !p3_mul_size(layer, (size_t)desc->n_layers, &bytes) ||
        !p3_mul_size((size_t)desc->n_ctx * (size_t)desc->n_kv_heads * sizeof(float),
                     (size_t)desc->n_layers, &scales))
        return p3_fail(err, PHI3C_ERR_INVALID_ARG, "level-zero: bad KV cache shape");
    bool q8 = desc->dtype == P3_KV_Q8;
    p3_kv_cache *kv = p3_calloc(1, sizeof *kv);
    l0_kv_impl *impl = p3_calloc(1, sizeof *impl);
    if (!kv || !impl) {
        p3_free(kv);
        p3_free(impl);
        return p3_fail(err, PHI3C_ERR_NOMEM, "level-zero: out of memory");
    }
    void *mem[4] = {NULL, NULL, NULL, NULL};
    p3_status s = dev_alloc(c, bytes, &mem[0], err);
    if (s == PHI3C_OK) s = dev_alloc(c, bytes, &mem[1], err);
    if (s == PHI3C_OK && q8) s = dev_alloc(c, scales, &mem[2], err);
    if (s == PHI3C_OK && q8) s = dev_alloc(c, scales, &mem[3], err);
    if (s != PHI3C_OK) {
        for (int i = 0; i < 4; i++) dev_free(c, mem[i]);
        p3_free(kv);
        p3_free(impl);
        return s;
    }
    impl->k = mem[0];
    impl->v = mem[1];
    impl->k_scale = q8 ? mem[2] : mem[0]; /* unused by the f32/f16 kernels, but a valid pointer */
    impl->v_scale = q8 ? mem[3] : mem[1];
    impl->layer_bytes = layer;
    impl->layer_scale_bytes = q8 ? scales / (size_t)desc->n_layers : 0;
    kv->desc = *desc;
    kv->impl = impl;
    *out = kv;
    return PHI3C_OK;
}

static void l0_kv_free(void *ctx, p3_kv_cache *kv) {
    if (!kv) return;
    l0_kv_impl *impl = kv->impl;
    dev_free(ctx, impl->k);
    dev_free(ctx, impl->v);
    if (kv->desc.dtype == P3_KV_Q8) {
        dev_free(ctx, impl->k_scale);
        dev_free(ctx, impl->v_scale);
    }
    p3_free(impl);
    p3_free(kv);
}

/* ---- ops */
static p3_status l0_embed(void *ctx, p3_ref out, const p3_weight *table, p3_ref ids, int n_tokens,
                          p3_error *err) {
    l0_ctx *c = ctx;
    const l0_weight_impl *w = table->impl;
    l0_args a = {0};
    arg_ptr(&a, dev_ptr(out));
    l0_kernel_id k;
    switch (table->dtype) {
    case P3_DT_F32:
        k = K_EMBED_F32;
        break;
    case P3_DT_F16:
        k = K_EMBED_F16;
        break;
    case P3_DT_BF16:
        k = K_EMBED_BF16;
        break;
    default:
        k = K_EMBED_I4;
        break;
    }
    arg_ptr(&a, w->dev);
    if (k == K_EMBED_I4) {
        arg_ptr(&a, (char *)w->dev + w->scale_off);
        arg_ptr(&a, (char *)w->dev + w->zero_off);
    }
    arg_ptr(&a, dev_ptr(ids));
    arg_int(&a, (int)table->rows);
    arg_int(&a, (int)table->cols);
    arg_ptr(&a, c->bad_id);
    return launch(c, k, (size_t)table->cols, (size_t)n_tokens, 1, &a, err);
}

static p3_status l0_rmsnorm(void *ctx, p3_ref out, p3_ref x, p3_ref w, int n_tokens, int dim,
                            float eps, p3_error *err) {
    l0_args a = {0};
    arg_ptr(&a, dev_ptr(out));
    arg_ptr(&a, dev_ptr(x));
    arg_ptr(&a, dev_ptr(w));
    arg_int(&a, n_tokens);
    arg_int(&a, dim);
    arg_float(&a, eps);
    /* l0_kernels.cl: one group of 64 lanes per token */
    return launch_grouped(ctx, K_RMSNORM, (size_t)n_tokens * 64, 1, 1, 64, &a, err);
}

/* The w4a8 activation scratch, grown when a matmul needs more (freeing waits for queued work). */
static p3_status q8_scratch(l0_ctx *c, size_t bytes, p3_error *err) {
    if (bytes <= c->q8_scratch_size) return PHI3C_OK;
    dev_free(c, c->q8_scratch);
    c->q8_scratch = NULL;
    c->q8_scratch_size = 0;
    p3_status s = dev_alloc(c, bytes, &c->q8_scratch, err);
    if (s == PHI3C_OK) c->q8_scratch_size = bytes;
    return s;
}

/* w4a8: quantize the activations into the scratch, then the integer-dot matmul. */
static p3_status matmul_w4a8(l0_ctx *c, p3_ref y, p3_ref x, const p3_weight *w, int n_tokens,
                             p3_error *err) {
    const l0_weight_impl *impl = w->impl;
    size_t groups = (size_t)p3_groups(w->cols), n_groups = groups * (size_t)n_tokens;
    size_t q_bytes = n_groups * P3_QK; /* a multiple of 128: the scales stay aligned */
    p3_status s = q8_scratch(c, q_bytes + n_groups * sizeof(float), err);
    if (s != PHI3C_OK) return s;
    char *xq = c->q8_scratch, *xd = xq + q_bytes;
    l0_args q = {0};
    arg_ptr(&q, xq);
    arg_ptr(&q, xd);
    arg_ptr(&q, dev_ptr(x));
    arg_int(&q, (int)w->cols);
    s = launch(c, K_QUANTIZE_Q8, groups, (size_t)n_tokens, 1, &q, err);
    if (s != PHI3C_OK) return s;
    l0_args a = {0};
    arg_ptr(&a, dev_ptr(y));
    arg_ptr(&a, xq);
    arg_ptr(&a, xd);
    arg_ptr(&a, impl->dev);
    arg_ptr(&a, (char *)impl->dev + impl->scale_off);
    arg_ptr(&a, (char *)impl->dev + impl->zero_off);
    arg_int(&a, (int)w->rows);
    arg_int(&a, (int)w->cols);
    arg_int(&a, n_tokens);
    return launch_grouped(c, K_MATMUL_I4_Q8, (size_t)w->rows * 64, ((size_t)n_tokens + 3) / 4, 1,
                          64, &a, err);
}

static p3_status l0_matmul(void *ctx, p3_ref y, p3_ref x, const p3_weight *w, int n_tokens,
                           p3_error *err) {
    const l0_weight_impl *impl = w->impl;
    bool i4 = w->dtype == P3_DT_I4G128S || w->dtype == P3_DT_I4G128A;
    if (i4 && w->act == P3_ACT_Q8) return matmul_w4a8(ctx, y, x, w, n_tokens, err);
    l0_args a = {0};
    l0_kernel_id k;
    switch (w->dtype) {
    case P3_DT_F32:
        k = K_MATMUL_F32;
        break;
    case P3_DT_F16:
        k = K_MATMUL_F16;
        break;
    case P3_DT_BF16:
        k = K_MATMUL_BF16;
        break;
    default:
        k = K_MATMUL_I4;
        break;
    }
    arg_ptr(&a, dev_ptr(y));
    arg_ptr(&a, dev_ptr(x));
    arg_ptr(&a, impl->dev);
    if (i4) {
        arg_ptr(&a, (char *)impl->dev + impl->scale_off);
        arg_ptr(&a, (char *)impl->dev + impl->zero_off);
    }
    arg_int(&a, (int)w->rows);
    arg_int(&a, (int)w->cols);
    arg_int(&a, n_tokens);
    /* l0_kernels.cl: 64 lanes per output row, 4 tokens per work-group row */
    return launch_grouped(ctx, k, (size_t)w->rows * 64, ((size_t)n_tokens + 3) / 4, 1, 64, &a, err);
}

static p3_status l0_rope(void *ctx, p3_ref qkv, int n_tokens, int pos0, const p3_rope_params *p,
                         p3_error *err) {
    l0_args a = {0};
    arg_ptr(&a, dev_ptr(qkv));
    arg_ptr(&a, dev_ptr(p->inv_freq));
    arg_int(&a, pos0);
    arg_int(&a, p->n_heads);
    arg_int(&a, p->n_kv_heads);
    arg_int(&a, p->head_dim);
    arg_int(&a, p->rot_dim);
    arg_float(&a, p->mscale);
    return launch(ctx, K_ROPE, (size_t)(p->rot_dim / 2), (size_t)(p->n_heads + p->n_kv_heads),
                  (size_t)n_tokens, &a, err);
}

static p3_status l0_kv_write(void *ctx, p3_kv_cache *kv, int layer, p3_ref qkv, int n_tokens,
                             int pos0, const p3_attn_params *p, p3_error *err) {
    const l0_kv_impl *impl = kv->impl;
    size_t base = (size_t)layer * impl->layer_bytes;
    size_t scale_base = (size_t)layer * impl->layer_scale_bytes;
    bool q8 = kv->desc.dtype == P3_KV_Q8;
    l0_args a = {0};
    arg_ptr(&a, impl->k + base);
    if (q8) arg_ptr(&a, impl->k_scale + scale_base);
    arg_ptr(&a, impl->v + base);
    if (q8) arg_ptr(&a, impl->v_scale + scale_base);
    arg_ptr(&a, dev_ptr(qkv));
    arg_int(&a, pos0);
    arg_int(&a, p->n_heads);
    arg_int(&a, p->n_kv_heads);
    arg_int(&a, p->head_dim);
    l0_kernel_id k = (l0_kernel_id)(K_KV_WRITE_F32 + (int)kv->desc.dtype);
    if (q8) return launch(ctx, k, (size_t)p->n_kv_heads, (size_t)n_tokens, 2, &a, err);
    return launch(ctx, k, (size_t)p->n_kv_heads * (size_t)p->head_dim, (size_t)n_tokens, 1, &a,
                  err);
}

static p3_status l0_attention(void *ctx, p3_ref out, p3_ref qkv, p3_kv_cache *kv, int layer,
                              int n_tokens, int pos0, const p3_attn_params *p, p3_error *err) {
    if (p->head_dim > 512)
        return p3_fail(err, PHI3C_ERR_UNSUPPORTED, "level-zero attention: head_dim %d > 512",
                       p->head_dim);
    const l0_kv_impl *impl = kv->impl;
    size_t base = (size_t)layer * impl->layer_bytes;
    size_t scale_base = (size_t)layer * impl->layer_scale_bytes;
    l0_args a = {0};
    arg_ptr(&a, dev_ptr(out));
    arg_ptr(&a, dev_ptr(qkv));
    arg_ptr(&a, impl->k + base);
    arg_ptr(&a, impl->v + base);
    arg_ptr(&a, impl->k_scale + scale_base);
    arg_ptr(&a, impl->v_scale + scale_base);
    arg_int(&a, pos0);
    arg_int(&a, p->n_heads);
    arg_int(&a, p->n_kv_heads);
    arg_int(&a, p->head_dim);
    arg_int(&a, p->window);
    arg_float(&a, p->scale);
    /* l0_kernels.cl: one group of 64 lanes per (head, token), head_dim <= 512 */
    l0_kernel_id k = (l0_kernel_id)(K_ATTENTION_F32 + (int)kv->desc.dtype);
    return launch_grouped(ctx, k, (size_t)p->n_heads * 64, (size_t)n_tokens, 1, 64, &a, err);
}

static p3_status l0_swiglu(void *ctx, p3_ref out, p3_ref gate_up, int n_tokens, int dim,
                           p3_error *err) {
    l0_args a = {0};
    arg_ptr(&a, dev_ptr(out));
    arg_ptr(&a, dev_ptr(gate_up));
    arg_int(&a, dim);
    return launch(ctx, K_SWIGLU, (size_t)dim, (size_t)n_tokens, 1, &a, err);
}

static p3_status l0_add(void *ctx, p3_ref x, p3_ref y, size_t n, p3_error *err) {
    if (n > INT_MAX)
        return p3_fail(err, PHI3C_ERR_UNSUPPORTED, "level-zero add: %zu elements is too many", n);
    l0_args a = {0};
    arg_ptr(&a, dev_ptr(x));
    arg_ptr(&a, dev_ptr(y));
    arg_int(&a, (int)n);
    return launch(ctx, K_ADD, n, 1, 1, &a, err);
}

static p3_status l0_copy(void *ctx, p3_ref dst, p3_ref src, size_t size, p3_error *err) {
    l0_ctx *c = ctx;
    if (size == 0) return PHI3C_OK;
    return appended(c,
                    c->api.zeCommandListAppendMemoryCopy(c->list, dev_ptr(dst), dev_ptr(src), size,
                                                         NULL, 0, NULL),
                    "zeCommandListAppendMemoryCopy", err);
}

const p3_backend_iface p3_backend_level_zero = {
    .version = P3_BACKEND_IFACE_VERSION,
    .name = "level-zero",
    .probe = l0_probe,
    .create = l0_create,
    .destroy = l0_destroy,
    .describe = l0_describe,
    .supports = l0_supports,
    .buffer_alloc = l0_buffer_alloc,
    .buffer_free = l0_buffer_free,
    .buffer_write = l0_buffer_write,
    .buffer_read = l0_buffer_read,
    .weight_upload = l0_weight_upload,
    .weight_free = l0_weight_free,
    .weight_bytes = l0_weight_bytes,
    .kv_alloc = l0_kv_alloc,
    .kv_free = l0_kv_free,
    .embed = l0_embed,
    .rmsnorm = l0_rmsnorm,
    .matmul = l0_matmul,
    .rope = l0_rope,
    .kv_write = l0_kv_write,
    .attention = l0_attention,
    .swiglu = l0_swiglu,
    .add = l0_add,
    .copy = l0_copy,
    .sync = l0_sync,
};
#endif /* P3_HAVE_ZE_HEADERS */
