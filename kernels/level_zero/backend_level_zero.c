/* backend_level_zero.c: the Level Zero GPU backend (p3_backend_level_zero). Opens the loader with
 * dlopen (no link-time dependency), picks a GPU device and builds one of the embedded SPIR-V
 * modules: the OpenCL backend's kernels (the .cl files of kernels/clk/) compiled offline
 * (build.mk). The ops are the OpenCL backend's too (clk_ops.c: kernels, arguments, grids, weight
 * and KV layouts); this file turns their launches into Level Zero calls. Every op of a step is
 * appended to one command list, submitted once when the host needs a result (buffer_read, sync) and
 * waited on with a fence. */
#include "backend.h"
#include "clk_ops.h"
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
    uint32_t vendor[P3_L0_MAX_DEVICES];
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
            gpus->vendor[gpus->n] = props.vendorId;
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
    if (p3_l0_module_count == 0) {
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
typedef struct l0_ctx {
    p3_clk_host host; /* first: the shared ops receive the context as a p3_clk_host */
    l0_api api;
    ze_device_handle_t device;
    char device_name[ZE_MAX_DEVICE_NAME];
    const p3_l0_module *module_src; /* the variant built */
    ze_context_handle_t context;
    ze_command_queue_handle_t queue;
    ze_command_list_handle_t list;
    ze_fence_handle_t fence;
    ze_module_handle_t module;
    ze_kernel_handle_t kernels[P3_CLK_COUNT];
    size_t pending;  /* commands appended since the last submission */
    int32_t *bad_id; /* device flag raised by embed on an out-of-range id */
    int32_t bad_id_host;
} l0_ctx;

#define ZE_TRY(call, what) P3_ZE_TRY("level-zero", call, what)

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
    if (r != ZE_RESULT_SUCCESS) return p3_ze_fail(err, "level-zero", r, "running the command list");
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
    if (r != ZE_RESULT_SUCCESS) return p3_ze_fail(err, "level-zero", r, what);
    ZE_TRY(c->api.zeCommandListAppendBarrier(c->list, NULL, 0, NULL), "zeCommandListAppendBarrier");
    c->pending++;
    return PHI3C_OK;
}

/* ---- the shared ops' host (clk_ops.h) */

/* Sets a launch's arguments: buffers are device pointers (an allocation's base; kernels add the
 * element offsets they are passed). */
static p3_status set_args(l0_ctx *c, ze_kernel_handle_t k, const p3_clk_launch *l, p3_error *err) {
    for (int i = 0; i < l->n_args; i++) {
        size_t size;
        const void *value = p3_clk_arg_bytes(&l->args[i], &size);
        ze_result_t r = c->api.zeKernelSetArgumentValue(k, (uint32_t)i, size, value);
        if (r != ZE_RESULT_SUCCESS) return p3_ze_fail(err, "level-zero", r, l->op);
    }
    return PHI3C_OK;
}

/* Level Zero launches whole groups: without a fixed group size, dimension 0 gets up to 64 lanes
 * and is rounded up (every such kernel checks its bound), the others one. */
static p3_status host_launch(p3_clk_host *h, const p3_clk_launch *l, p3_error *err) {
    l0_ctx *c = (l0_ctx *)h;
    uint32_t size[3] = {1, 1, 1}, count[3] = {1, 1, 1};
    for (unsigned d = 0; d < l->dims; d++) {
        if (l->global[d] == 0) return PHI3C_OK;
        if (l->local[0])
            size[d] = (uint32_t)l->local[d];
        else if (d == 0)
            while (size[0] < 64 && size[0] < l->global[0]) size[0] *= 2;
        size_t groups = (l->global[d] + size[d] - 1) / size[d];
        if (groups > UINT32_MAX)
            return p3_fail(err, PHI3C_ERR_UNSUPPORTED, "level-zero %s: grid too large", l->op);
        count[d] = (uint32_t)groups;
    }
    ze_kernel_handle_t k = c->kernels[l->kernel];
    ZE_TRY(c->api.zeKernelSetGroupSize(k, size[0], size[1], size[2]), "zeKernelSetGroupSize");
    p3_status st = set_args(c, k, l, err);
    if (st != PHI3C_OK) return st;
    ze_group_count_t groups = {count[0], count[1], count[2]};
    return appended(c, c->api.zeCommandListAppendLaunchKernel(c->list, k, &groups, NULL, 0, NULL),
                    p3_clk_kernel_names[l->kernel], err);
}

static p3_status host_alloc(p3_clk_host *h, size_t bytes, const char *what, void **mem,
                            p3_error *err) {
    l0_ctx *c = (l0_ctx *)h;
    ze_device_mem_alloc_desc_t md = {.stype = ZE_STRUCTURE_TYPE_DEVICE_MEM_ALLOC_DESC};
    ze_result_t r = c->api.zeMemAllocDevice(c->context, &md, bytes ? bytes : 1, 64, c->device, mem);
    if (r == ZE_RESULT_SUCCESS) return PHI3C_OK;
    *mem = NULL;
    bool oom = r == ZE_RESULT_ERROR_OUT_OF_DEVICE_MEMORY || r == ZE_RESULT_ERROR_UNSUPPORTED_SIZE ||
               r == ZE_RESULT_ERROR_OUT_OF_HOST_MEMORY;
    return p3_fail(err, oom ? PHI3C_ERR_DEVICE_OOM : PHI3C_ERR_BACKEND,
                   "level-zero: cannot allocate %zu bytes of device memory for %s on %s (%s)",
                   bytes, what, c->device_name, p3_ze_result_name(r));
}

/* Memory is freed only once no queued command can still use it. */
static void host_release(p3_clk_host *h, void *mem) {
    l0_ctx *c = (l0_ctx *)h;
    if (!mem) return;
    p3_error ignored;
    submit_and_wait(c, &ignored);
    c->api.zeMemFree(c->context, mem);
}

/* Host -> device, ordered after everything queued before, complete on return (src is the
 * caller's and need not outlive the call). */
static p3_status host_write(p3_clk_host *h, void *dst, const void *src, size_t size,
                            p3_error *err) {
    l0_ctx *c = (l0_ctx *)h;
    p3_status s = submit_and_wait(c, err);
    if (s != PHI3C_OK || size == 0) return s;
    s = appended(c, c->api.zeCommandListAppendMemoryCopy(c->list, dst, src, size, NULL, 0, NULL),
                 "zeCommandListAppendMemoryCopy", err);
    return s != PHI3C_OK ? s : submit_and_wait(c, err);
}

/* ---- module and kernels */

/* The module variant: the option, else PHI3C_L0_VARIANT (as PHI3C_CPU for the CPU backend);
 * "auto" (or neither) takes the Intel sub-group module on Intel devices and the portable one
 * elsewhere; otherwise the named variant (cl2spv.sh VARIANTS). */
static p3_status choose_module(l0_ctx *c, const char *variant, uint32_t vendor, p3_error *err) {
    if (!variant || !variant[0]) variant = getenv("PHI3C_L0_VARIANT");
    if (!variant || !variant[0] || strcmp(variant, "auto") == 0)
        variant = vendor == 0x8086 ? "intel-sg" : "portable";
    for (size_t i = 0; i < p3_l0_module_count; i++)
        if (strcmp(p3_l0_modules[i].variant, variant) == 0) {
            c->module_src = &p3_l0_modules[i];
            return PHI3C_OK;
        }
    return p3_fail(err, PHI3C_ERR_INVALID_ARG,
                   "level-zero: unknown variant '%s' (auto, portable, int-dot-emulated, intel-sg)",
                   variant);
}

/* The driver's build log, flattened into text (empty when there is none). */
static void module_build_log(l0_ctx *c, ze_module_build_log_handle_t log, char *text, size_t len) {
    size_t size = 0;
    text[0] = '\0';
    if (!log || c->api.zeModuleBuildLogGetString(log, &size, NULL) != ZE_RESULT_SUCCESS) return;
    char *full = p3_malloc(size + 1);
    if (full && c->api.zeModuleBuildLogGetString(log, &size, full) == ZE_RESULT_SUCCESS)
        snprintf(text, len, "%s", full);
    p3_free(full);
}

static p3_status build_module(l0_ctx *c, p3_error *err) {
    /* Correctly rounded division, as the OpenCL backend asks for (w4a8 activation scales). */
    ze_module_desc_t desc = {.stype = ZE_STRUCTURE_TYPE_MODULE_DESC,
                             .format = ZE_MODULE_FORMAT_IL_SPIRV,
                             .inputSize = c->module_src->size,
                             .pInputModule = c->module_src->spirv,
                             .pBuildFlags = "-cl-fp32-correctly-rounded-divide-sqrt"};
    ze_module_build_log_handle_t log = NULL;
    ze_result_t r = c->api.zeModuleCreate(c->context, c->device, &desc, &c->module, &log);
    if (r != ZE_RESULT_SUCCESS) {
        char text[1024];
        module_build_log(c, log, text, sizeof text);
        if (log) c->api.zeModuleBuildLogDestroy(log);
        c->module = NULL;
        return p3_fail(err, PHI3C_ERR_BACKEND,
                       "level-zero: building the %s SPIR-V module failed on %s (%s); build log: %s",
                       c->module_src->variant, c->device_name, p3_ze_result_name(r),
                       text[0] ? text : "(empty)");
    }
    if (log) c->api.zeModuleBuildLogDestroy(log);
    for (int k = 0; k < P3_CLK_COUNT; k++) {
        ze_kernel_desc_t kd = {.stype = ZE_STRUCTURE_TYPE_KERNEL_DESC,
                               .pKernelName = p3_clk_kernel_names[k]};
        r = c->api.zeKernelCreate(c->module, &kd, &c->kernels[k]);
        if (r != ZE_RESULT_SUCCESS) {
            c->kernels[k] = NULL;
            return p3_fail(err, PHI3C_ERR_BACKEND, "level-zero: zeKernelCreate(%s) failed (%s)",
                           p3_clk_kernel_names[k], p3_ze_result_name(r));
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
    if (c->context) p3_clk_host_release(&c->host);
    for (int k = 0; k < P3_CLK_COUNT; k++)
        if (c->kernels[k]) c->api.zeKernelDestroy(c->kernels[k]);
    if (c->module) c->api.zeModuleDestroy(c->module);
    if (c->bad_id) c->api.zeMemFree(c->context, c->bad_id);
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
    void *flag = NULL;
    st = host_alloc(&c->host, sizeof(int32_t), "the error flag", &flag, err);
    if (st != PHI3C_OK) return st;
    c->bad_id = flag;
    c->host.bad_id = flag;
    int32_t zero = 0;
    ZE_TRY(c->api.zeCommandListAppendMemoryFill(c->list, c->bad_id, &zero, sizeof zero, sizeof zero,
                                                NULL, 0, NULL),
           "zeCommandListAppendMemoryFill");
    c->pending++;
    st = build_module(c, err);
    if (st != PHI3C_OK) return st;
    return submit_and_wait(c, err);
}

static p3_status l0_create(const p3_backend_options *opt, void **out, p3_error *err) {
    *out = NULL;
    char why[512];
    if (p3_l0_module_count == 0)
        return p3_fail(err, PHI3C_ERR_UNAVAILABLE, "level-zero: built without SPIR-V modules (%s)",
                       p3_l0_spirv_missing);
    if (!p3_l0_sanitizer_may_probe(why, sizeof why))
        return p3_fail(err, PHI3C_ERR_UNAVAILABLE, "level-zero: %s", why);
    l0_ctx *c = p3_calloc(1, sizeof *c);
    if (!c) return p3_fail(err, PHI3C_ERR_NOMEM, "level-zero: out of memory");
    c->host = (p3_clk_host){.api = "level-zero",
                            .alloc = host_alloc,
                            .release = host_release,
                            .write = host_write,
                            .launch = host_launch};
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
    p3_status s = choose_module(c, opt ? opt->variant : NULL, gpus.vendor[dev], err);
    if (s == PHI3C_OK) s = create_objects(c, gpus.driver[dev], err);
    if (s != PHI3C_OK) {
        l0_destroy(c);
        return s;
    }
    *out = c;
    return PHI3C_OK;
}

static void l0_describe(void *ctx, char *buf, size_t len) {
    l0_ctx *c = ctx;
    snprintf(buf, len, "level-zero %s, kernels: kernels/clk as SPIR-V, %s variant", c->device_name,
             c->module_src->variant);
}

/* ---- buffers: a p3_buffer's impl is its device pointer, as the shared ops expect */
static p3_status l0_buffer_alloc(void *ctx, size_t size, p3_buffer **out, p3_error *err) {
    p3_buffer *b = p3_calloc(1, sizeof *b);
    if (!b) return p3_fail(err, PHI3C_ERR_NOMEM, "level-zero: out of memory");
    p3_status s = host_alloc(ctx, size, "a buffer", &b->impl, err);
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
    host_release(ctx, buf->impl);
    p3_free(buf);
}

static p3_status l0_buffer_write(void *ctx, p3_ref dst, const void *src, size_t size,
                                 p3_error *err) {
    return host_write(ctx, dev_ptr(dst), src, size, err);
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
    .buffer_alloc = l0_buffer_alloc,
    .buffer_free = l0_buffer_free,
    .buffer_write = l0_buffer_write,
    .buffer_read = l0_buffer_read,
    P3_CLK_METHODS,
    .copy = l0_copy,
    .sync = l0_sync,
};
#endif /* P3_HAVE_ZE_HEADERS */
