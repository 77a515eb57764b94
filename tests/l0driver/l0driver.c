/* l0driver.c: a test-only Level Zero driver (libp3_l0_test_driver.so) that the stock loader loads
 * through ZE_ENABLE_ALT_DRIVERS. It exposes one GPU-type device and runs the backend's real SPIR-V
 * modules on the CPU through OpenCL (PoCL): SPIR-V becomes SPIR 1.2 bitcode with `llvm-spirv-15 -r`
 * at module creation, allocations are OpenCL SVM, command lists are recorded and replayed on one
 * in-order queue, and fences complete with clFinish. It supports what kernels/level_zero uses;
 * every other entry of every table the loader asks for returns ZE_RESULT_ERROR_UNSUPPORTED_FEATURE.
 * Test infrastructure: it prints nothing and keeps its state in file-level statics. */
#define CL_TARGET_OPENCL_VERSION 200
#include <CL/cl.h>
#include <level_zero/ze_ddi.h>
#include <level_zero/zes_ddi.h>
#include <level_zero/zet_ddi.h>

#include "l0graph.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- the OpenCL side: one platform, device, context and in-order queue for the process */
static struct {
    int ready;
    cl_platform_id platform;
    cl_device_id device;
    cl_context context;
    cl_command_queue queue;
    char name[128];
} cl;

static ze_result_t cl_setup(void) {
    if (cl.ready) return ZE_RESULT_SUCCESS;
    cl_platform_id platforms[8];
    cl_uint n = 0;
    if (clGetPlatformIDs(8, platforms, &n) != CL_SUCCESS || n == 0)
        return ZE_RESULT_ERROR_UNINITIALIZED;
    for (cl_uint i = 0; i < n && i < 8; i++) {
        cl_uint nd = 0;
        if (clGetDeviceIDs(platforms[i], CL_DEVICE_TYPE_CPU, 1, &cl.device, &nd) == CL_SUCCESS &&
            nd > 0) {
            cl.platform = platforms[i];
            break;
        }
    }
    if (!cl.platform) return ZE_RESULT_ERROR_UNINITIALIZED;
    cl_int rc;
    cl.context = clCreateContext(NULL, 1, &cl.device, NULL, NULL, &rc);
    if (rc != CL_SUCCESS) return ZE_RESULT_ERROR_UNINITIALIZED;
    cl.queue = clCreateCommandQueueWithProperties(cl.context, cl.device, NULL, &rc);
    if (rc != CL_SUCCESS) return ZE_RESULT_ERROR_UNINITIALIZED;
    char dev_name[96] = "";
    clGetDeviceInfo(cl.device, CL_DEVICE_NAME, sizeof dev_name - 1, dev_name, NULL);
    snprintf(cl.name, sizeof cl.name, "phi3c test driver on OpenCL %s", dev_name);
    cl.ready = 1;
    return ZE_RESULT_SUCCESS;
}

/* ---- handles: the API's opaque structs, defined here */
struct _ze_driver_handle_t {
    int unused;
};
struct _ze_device_handle_t {
    int unused;
};
struct _ze_context_handle_t {
    int unused;
};
struct _ze_command_queue_handle_t {
    int unused;
};
struct _ze_fence_handle_t {
    int signaled;
};
struct _ze_module_build_log_handle_t {
    char *text;
};
struct _ze_module_handle_t {
    cl_program program;
};

typedef struct kernel_arg {
    size_t size;
    void *value; /* NULL for local memory */
    int is_set;
} kernel_arg;

struct _ze_kernel_handle_t {
    cl_kernel kernel;
    uint32_t group[3];
    cl_uint n_args;
    kernel_arg *args;
};

typedef enum op_kind { OP_LAUNCH, OP_COPY, OP_FILL, OP_HOST } op_kind;

typedef struct recorded_op {
    op_kind kind;
    /* launch */
    ze_kernel_handle_t kernel;
    size_t global[3], local[3];
    kernel_arg *args; /* snapshot taken at append time, as Level Zero specifies */
    /* copy / fill */
    void *dst;
    const void *src;
    size_t size;
    uint8_t pattern[16];
    size_t pattern_size;
    /* host call (the mock NPU graphs of l0graph.c): run in order after the queued OpenCL work */
    void (*host_fn)(const void *arg);
    uint8_t host_arg[64];
} recorded_op;

struct _ze_command_list_handle_t {
    recorded_op *ops;
    size_t n_ops, cap;
    int closed;
};

static struct _ze_driver_handle_t the_driver;
static struct _ze_device_handle_t the_device;

/* ---- allocations: kernel pointer arguments are recognised by falling inside one of these */
typedef struct allocation {
    char *base;
    size_t size;
} allocation;
static allocation *allocs;
static size_t n_allocs, cap_allocs;

static int alloc_track(void *p, size_t size) {
    if (n_allocs == cap_allocs) {
        size_t cap = cap_allocs ? 2 * cap_allocs : 64;
        allocation *a = realloc(allocs, cap * sizeof *a);
        if (!a) return 0;
        allocs = a;
        cap_allocs = cap;
    }
    allocs[n_allocs].base = p;
    allocs[n_allocs].size = size;
    n_allocs++;
    return 1;
}

static int alloc_find(const void *p) {
    for (size_t i = 0; i < n_allocs; i++)
        if ((const char *)p >= allocs[i].base && (const char *)p < allocs[i].base + allocs[i].size)
            return (int)i;
    return -1;
}

static ze_result_t unsupported(void) {
    return ZE_RESULT_ERROR_UNSUPPORTED_FEATURE;
}

/* Every table is a struct of function pointers only: point them all at `unsupported` first. */
static void fill_unsupported(void *table, size_t size) {
    ze_result_t (*fn)(void) = unsupported;
    for (size_t off = 0; off + sizeof fn <= size; off += sizeof fn)
        memcpy((char *)table + off, &fn, sizeof fn);
}

/* ---- Global, driver, device */
static ze_result_t drv_init(ze_init_flags_t flags) {
    if (flags && !(flags & ZE_INIT_FLAG_GPU_ONLY)) return ZE_RESULT_ERROR_UNINITIALIZED;
    return cl_setup();
}

static ze_result_t drv_driver_get(uint32_t *count, ze_driver_handle_t *drivers) {
    if (!count) return ZE_RESULT_ERROR_INVALID_NULL_POINTER;
    if (*count == 0 || !drivers) {
        *count = 1;
        return ZE_RESULT_SUCCESS;
    }
    drivers[0] = &the_driver;
    *count = 1;
    return ZE_RESULT_SUCCESS;
}

static ze_result_t drv_driver_api_version(ze_driver_handle_t d, ze_api_version_t *v) {
    (void)d;
    *v = ZE_API_VERSION_1_4;
    return ZE_RESULT_SUCCESS;
}

static ze_result_t drv_driver_properties(ze_driver_handle_t d, ze_driver_properties_t *p) {
    (void)d;
    memset(p->uuid.id, 0x5a, sizeof p->uuid.id);
    p->driverVersion = 1;
    return ZE_RESULT_SUCCESS;
}

static ze_result_t drv_driver_ext_props(ze_driver_handle_t d, uint32_t *count,
                                        ze_driver_extension_properties_t *props) {
    (void)d;
    return l0graph_ext_props(count, props); /* none unless P3_L0DRV_GRAPH_EXT is set */
}

static ze_result_t drv_driver_ext_address(ze_driver_handle_t d, const char *name, void **out) {
    (void)d;
    return l0graph_ext_address(name, out);
}

static ze_result_t drv_device_get(ze_driver_handle_t d, uint32_t *count, ze_device_handle_t *devs) {
    (void)d;
    if (!count) return ZE_RESULT_ERROR_INVALID_NULL_POINTER;
    if (getenv("P3_L0DRV_NO_DEVICE")) { /* lets tests see "driver without devices" */
        *count = 0;
        return ZE_RESULT_SUCCESS;
    }
    if (*count == 0 || !devs) {
        *count = 1;
        return ZE_RESULT_SUCCESS;
    }
    devs[0] = &the_device;
    *count = 1;
    return ZE_RESULT_SUCCESS;
}

static ze_result_t drv_device_properties(ze_device_handle_t d, ze_device_properties_t *p) {
    (void)d;
    void *next = p->pNext;
    ze_structure_type_t stype = p->stype;
    memset(p, 0, sizeof *p);
    p->stype = stype;
    p->pNext = next;
    /* P3_L0DRV_DEVICE_TYPE=vpu: an NPU-typed device without the graph extension, for the NPU
     * backend's "no graph extension" error (tests/test_npu.c) */
    const char *type = getenv("P3_L0DRV_GRAPH_EXT") ? "vpu" : getenv("P3_L0DRV_DEVICE_TYPE");
    p->type = type && strcmp(type, "vpu") == 0 ? ZE_DEVICE_TYPE_VPU : ZE_DEVICE_TYPE_GPU;
    p->vendorId = 0xffff;
    p->maxMemAllocSize = (uint64_t)1 << 32;
    p->numThreadsPerEU = 1;
    p->physicalEUSimdWidth = 8;
    p->numEUsPerSubslice = 1;
    p->numSubslicesPerSlice = 1;
    p->numSlices = 1;
    memset(p->uuid.id, 0xa5, sizeof p->uuid.id);
    snprintf(p->name, sizeof p->name, "%s", cl.name);
    return ZE_RESULT_SUCCESS;
}

static ze_result_t drv_device_compute(ze_device_handle_t d, ze_device_compute_properties_t *p) {
    (void)d;
    p->maxTotalGroupSize = 256;
    p->maxGroupSizeX = p->maxGroupSizeY = p->maxGroupSizeZ = 256;
    p->maxGroupCountX = p->maxGroupCountY = p->maxGroupCountZ = 1u << 30;
    p->maxSharedLocalMemory = 32768;
    p->numSubGroupSizes = 1;
    p->subGroupSizes[0] = 1;
    return ZE_RESULT_SUCCESS;
}

static ze_result_t drv_device_queue_groups(ze_device_handle_t d, uint32_t *count,
                                           ze_command_queue_group_properties_t *p) {
    (void)d;
    if (*count == 0 || !p) {
        *count = 1;
        return ZE_RESULT_SUCCESS;
    }
    p[0].flags =
        ZE_COMMAND_QUEUE_GROUP_PROPERTY_FLAG_COMPUTE | ZE_COMMAND_QUEUE_GROUP_PROPERTY_FLAG_COPY;
    p[0].maxMemoryFillPatternSize = 16;
    p[0].numQueues = 1;
    *count = 1;
    return ZE_RESULT_SUCCESS;
}

/* ---- context, queue, fence */
static ze_result_t drv_context_create(ze_driver_handle_t d, const ze_context_desc_t *desc,
                                      ze_context_handle_t *out) {
    (void)d;
    (void)desc;
    *out = calloc(1, sizeof **out);
    return *out ? ZE_RESULT_SUCCESS : ZE_RESULT_ERROR_OUT_OF_HOST_MEMORY;
}

static ze_result_t drv_context_destroy(ze_context_handle_t c) {
    free(c);
    return ZE_RESULT_SUCCESS;
}

static ze_result_t drv_queue_create(ze_context_handle_t c, ze_device_handle_t d,
                                    const ze_command_queue_desc_t *desc,
                                    ze_command_queue_handle_t *out) {
    (void)c;
    (void)d;
    (void)desc;
    *out = calloc(1, sizeof **out);
    return *out ? ZE_RESULT_SUCCESS : ZE_RESULT_ERROR_OUT_OF_HOST_MEMORY;
}

static ze_result_t drv_queue_destroy(ze_command_queue_handle_t q) {
    clFinish(cl.queue);
    free(q);
    return ZE_RESULT_SUCCESS;
}

static ze_result_t replay(const recorded_op *op) {
    cl_int rc = CL_SUCCESS;
    switch (op->kind) {
    case OP_COPY:
        rc = clEnqueueSVMMemcpy(cl.queue, CL_FALSE, op->dst, op->src, op->size, 0, NULL, NULL);
        break;
    case OP_FILL:
        rc = clEnqueueSVMMemFill(cl.queue, op->dst, op->pattern, op->pattern_size, op->size, 0,
                                 NULL, NULL);
        break;
    case OP_HOST:
        rc = clFinish(cl.queue);
        if (rc == CL_SUCCESS) op->host_fn(op->host_arg);
        break;
    case OP_LAUNCH: {
        cl_kernel k = op->kernel->kernel;
        for (cl_uint i = 0; i < op->kernel->n_args && rc == CL_SUCCESS; i++) {
            const kernel_arg *a = &op->args[i];
            void *ptr = NULL;
            if (a->value && a->size == sizeof ptr) memcpy(&ptr, a->value, sizeof ptr);
            if (ptr && alloc_find(ptr) >= 0)
                rc = clSetKernelArgSVMPointer(k, i, ptr);
            else
                rc = clSetKernelArg(k, i, a->size, a->value);
        }
        if (rc == CL_SUCCESS)
            rc = clEnqueueNDRangeKernel(cl.queue, k, 3, NULL, op->global, op->local, 0, NULL, NULL);
        break;
    }
    }
    return rc == CL_SUCCESS ? ZE_RESULT_SUCCESS : ZE_RESULT_ERROR_DEVICE_LOST;
}

static ze_result_t drv_queue_execute(ze_command_queue_handle_t q, uint32_t n,
                                     ze_command_list_handle_t *lists, ze_fence_handle_t fence) {
    (void)q;
    for (uint32_t l = 0; l < n; l++) {
        if (!lists[l]->closed) return ZE_RESULT_ERROR_INVALID_ARGUMENT;
        for (size_t i = 0; i < lists[l]->n_ops; i++) {
            ze_result_t r = replay(&lists[l]->ops[i]);
            if (r != ZE_RESULT_SUCCESS) return r;
        }
    }
    if (clFinish(cl.queue) != CL_SUCCESS) return ZE_RESULT_ERROR_DEVICE_LOST;
    if (fence) fence->signaled = 1;
    return ZE_RESULT_SUCCESS;
}

static ze_result_t drv_queue_sync(ze_command_queue_handle_t q, uint64_t timeout) {
    (void)q;
    (void)timeout;
    return clFinish(cl.queue) == CL_SUCCESS ? ZE_RESULT_SUCCESS : ZE_RESULT_ERROR_DEVICE_LOST;
}

static ze_result_t drv_fence_create(ze_command_queue_handle_t q, const ze_fence_desc_t *desc,
                                    ze_fence_handle_t *out) {
    (void)q;
    *out = calloc(1, sizeof **out);
    if (!*out) return ZE_RESULT_ERROR_OUT_OF_HOST_MEMORY;
    (*out)->signaled = (desc->flags & ZE_FENCE_FLAG_SIGNALED) != 0;
    return ZE_RESULT_SUCCESS;
}

static ze_result_t drv_fence_destroy(ze_fence_handle_t f) {
    free(f);
    return ZE_RESULT_SUCCESS;
}

static ze_result_t drv_fence_sync(ze_fence_handle_t f, uint64_t timeout) {
    (void)timeout;
    return f->signaled ? ZE_RESULT_SUCCESS : ZE_RESULT_NOT_READY;
}

static ze_result_t drv_fence_query(ze_fence_handle_t f) {
    return f->signaled ? ZE_RESULT_SUCCESS : ZE_RESULT_NOT_READY;
}

static ze_result_t drv_fence_reset(ze_fence_handle_t f) {
    f->signaled = 0;
    return ZE_RESULT_SUCCESS;
}

/* ---- command lists */
static ze_result_t drv_list_create(ze_context_handle_t c, ze_device_handle_t d,
                                   const ze_command_list_desc_t *desc,
                                   ze_command_list_handle_t *out) {
    (void)c;
    (void)d;
    (void)desc;
    *out = calloc(1, sizeof **out);
    return *out ? ZE_RESULT_SUCCESS : ZE_RESULT_ERROR_OUT_OF_HOST_MEMORY;
}

static void list_clear(ze_command_list_handle_t l) {
    for (size_t i = 0; i < l->n_ops; i++) {
        recorded_op *op = &l->ops[i];
        if (op->kind != OP_LAUNCH) continue;
        for (cl_uint a = 0; a < op->kernel->n_args; a++) free(op->args[a].value);
        free(op->args);
    }
    l->n_ops = 0;
    l->closed = 0;
}

static ze_result_t drv_list_destroy(ze_command_list_handle_t l) {
    list_clear(l);
    free(l->ops);
    free(l);
    return ZE_RESULT_SUCCESS;
}

static ze_result_t drv_list_close(ze_command_list_handle_t l) {
    l->closed = 1;
    return ZE_RESULT_SUCCESS;
}

static ze_result_t drv_list_reset(ze_command_list_handle_t l) {
    list_clear(l);
    return ZE_RESULT_SUCCESS;
}

static recorded_op *list_push(ze_command_list_handle_t l) {
    if (l->closed) return NULL;
    if (l->n_ops == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        recorded_op *ops = realloc(l->ops, cap * sizeof *ops);
        if (!ops) return NULL;
        l->ops = ops;
        l->cap = cap;
    }
    recorded_op *op = &l->ops[l->n_ops];
    memset(op, 0, sizeof *op);
    return op;
}

/* Events are not used by the backend: appends that name any are refused. */
#define NO_EVENTS(signal, n_wait)                                                                  \
    if ((signal) || (n_wait)) return ZE_RESULT_ERROR_UNSUPPORTED_FEATURE

static ze_result_t drv_append_copy(ze_command_list_handle_t l, void *dst, const void *src,
                                   size_t size, ze_event_handle_t signal, uint32_t n_wait,
                                   ze_event_handle_t *wait) {
    (void)wait;
    NO_EVENTS(signal, n_wait);
    recorded_op *op = list_push(l);
    if (!op) return ZE_RESULT_ERROR_OUT_OF_HOST_MEMORY;
    op->kind = OP_COPY;
    op->dst = dst;
    op->src = src;
    op->size = size;
    l->n_ops++;
    return ZE_RESULT_SUCCESS;
}

static ze_result_t drv_append_fill(ze_command_list_handle_t l, void *dst, const void *pattern,
                                   size_t pattern_size, size_t size, ze_event_handle_t signal,
                                   uint32_t n_wait, ze_event_handle_t *wait) {
    (void)wait;
    NO_EVENTS(signal, n_wait);
    if (pattern_size == 0 || pattern_size > 16 || (pattern_size & (pattern_size - 1)) ||
        size % pattern_size)
        return ZE_RESULT_ERROR_INVALID_SIZE;
    recorded_op *op = list_push(l);
    if (!op) return ZE_RESULT_ERROR_OUT_OF_HOST_MEMORY;
    op->kind = OP_FILL;
    op->dst = dst;
    op->size = size;
    memcpy(op->pattern, pattern, pattern_size);
    op->pattern_size = pattern_size;
    l->n_ops++;
    return ZE_RESULT_SUCCESS;
}

static ze_result_t drv_append_barrier(ze_command_list_handle_t l, ze_event_handle_t signal,
                                      uint32_t n_wait, ze_event_handle_t *wait) {
    (void)l;
    (void)wait;
    NO_EVENTS(signal, n_wait);
    return ZE_RESULT_SUCCESS; /* the replay queue is in order */
}

static ze_result_t drv_append_launch(ze_command_list_handle_t l, ze_kernel_handle_t k,
                                     const ze_group_count_t *groups, ze_event_handle_t signal,
                                     uint32_t n_wait, ze_event_handle_t *wait) {
    (void)wait;
    NO_EVENTS(signal, n_wait);
    for (cl_uint a = 0; a < k->n_args; a++)
        if (!k->args[a].is_set) return ZE_RESULT_ERROR_INVALID_KERNEL_ARGUMENT_INDEX;
    recorded_op *op = list_push(l);
    if (!op) return ZE_RESULT_ERROR_OUT_OF_HOST_MEMORY;
    op->kind = OP_LAUNCH;
    op->kernel = k;
    uint32_t counts[3] = {groups->groupCountX, groups->groupCountY, groups->groupCountZ};
    for (int d = 0; d < 3; d++) {
        op->local[d] = k->group[d];
        op->global[d] = (size_t)counts[d] * k->group[d];
        if (op->global[d] == 0) return ZE_RESULT_ERROR_INVALID_GROUP_SIZE_DIMENSION;
    }
    op->args = calloc(k->n_args ? k->n_args : 1, sizeof *op->args);
    if (!op->args) return ZE_RESULT_ERROR_OUT_OF_HOST_MEMORY;
    for (cl_uint a = 0; a < k->n_args; a++) {
        op->args[a] = k->args[a];
        op->args[a].value = NULL;
        if (k->args[a].value) {
            op->args[a].value = malloc(k->args[a].size);
            if (!op->args[a].value) {
                for (cl_uint b = 0; b < a; b++) free(op->args[b].value);
                free(op->args);
                return ZE_RESULT_ERROR_OUT_OF_HOST_MEMORY;
            }
            memcpy(op->args[a].value, k->args[a].value, k->args[a].size);
        }
    }
    l->n_ops++;
    return ZE_RESULT_SUCCESS;
}

/* ---- memory */
static ze_result_t svm_alloc(size_t size, size_t alignment, void **out) {
    if (size == 0) return ZE_RESULT_ERROR_UNSUPPORTED_SIZE;
    *out = clSVMAlloc(cl.context, CL_MEM_READ_WRITE, size, (cl_uint)alignment);
    if (!*out) return ZE_RESULT_ERROR_OUT_OF_DEVICE_MEMORY;
    if (!alloc_track(*out, size)) {
        clSVMFree(cl.context, *out);
        return ZE_RESULT_ERROR_OUT_OF_HOST_MEMORY;
    }
    return ZE_RESULT_SUCCESS;
}

static ze_result_t drv_alloc_device(ze_context_handle_t c, const ze_device_mem_alloc_desc_t *desc,
                                    size_t size, size_t alignment, ze_device_handle_t d,
                                    void **out) {
    (void)c;
    (void)desc;
    (void)d;
    return svm_alloc(size, alignment, out);
}

static ze_result_t drv_alloc_shared(ze_context_handle_t c, const ze_device_mem_alloc_desc_t *dd,
                                    const ze_host_mem_alloc_desc_t *hd, size_t size,
                                    size_t alignment, ze_device_handle_t d, void **out) {
    (void)c;
    (void)dd;
    (void)hd;
    (void)d;
    return svm_alloc(size, alignment, out);
}

static ze_result_t drv_alloc_host(ze_context_handle_t c, const ze_host_mem_alloc_desc_t *hd,
                                  size_t size, size_t alignment, void **out) {
    (void)c;
    (void)hd;
    return svm_alloc(size, alignment, out);
}

/* Appends a host call to a command list (l0graph.h); arg is copied. */
ze_result_t l0drv_append_host(ze_command_list_handle_t l, void (*fn)(const void *arg),
                              const void *arg, size_t size) {
    recorded_op *op = size <= sizeof op->host_arg ? list_push(l) : NULL;
    if (!op) return ZE_RESULT_ERROR_INVALID_ARGUMENT;
    op->kind = OP_HOST;
    op->host_fn = fn;
    memcpy(op->host_arg, arg, size);
    l->n_ops++;
    return ZE_RESULT_SUCCESS;
}

static ze_result_t drv_mem_free(ze_context_handle_t c, void *p) {
    (void)c;
    int i = alloc_find(p);
    if (i < 0 || allocs[i].base != p) return ZE_RESULT_ERROR_INVALID_ARGUMENT;
    clFinish(cl.queue);
    clSVMFree(cl.context, p);
    allocs[i] = allocs[--n_allocs];
    return ZE_RESULT_SUCCESS;
}

/* ---- modules: SPIR-V -> SPIR 1.2 bitcode (llvm-spirv-15 -r, spawned) -> PoCL binary program */
static int run_translator(const char *in, const char *out) {
    const char *tool = getenv("P3_L0DRV_LLVM_SPIRV");
    if (!tool) tool = "llvm-spirv-15";
    pid_t pid = fork();
    if (pid < 0) return 0;
    if (pid == 0) {
        execlp(tool, tool, "-r", in, "-o", out, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) return 0;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static unsigned char *read_whole(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    unsigned char *data = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0) n = ftell(f);
    if (n > 0 && fseek(f, 0, SEEK_SET) == 0) data = malloc((size_t)n);
    if (data && fread(data, 1, (size_t)n, f) != (size_t)n) {
        free(data);
        data = NULL;
    }
    fclose(f);
    *size = data ? (size_t)n : 0;
    return data;
}

static void set_log(ze_module_build_log_handle_t *out, const char *text) {
    if (!out) return;
    *out = calloc(1, sizeof **out);
    if (*out) (*out)->text = strdup(text ? text : "");
}

static unsigned char *spirv_to_spir(const uint8_t *spv, size_t n, size_t *out_size) {
    const char *tmp = getenv("TMPDIR");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/p3l0drvXXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) return NULL;
    char in[600], out[600];
    snprintf(in, sizeof in, "%s/m.spv", dir);
    snprintf(out, sizeof out, "%s/m.bc", dir);
    unsigned char *bc = NULL;
    FILE *f = fopen(in, "wb");
    if (f) {
        int ok = fwrite(spv, 1, n, f) == n;
        ok = fclose(f) == 0 && ok;
        if (ok && run_translator(in, out)) bc = read_whole(out, out_size);
    }
    unlink(in);
    unlink(out);
    rmdir(dir);
    return bc;
}

static ze_result_t drv_module_create(ze_context_handle_t c, ze_device_handle_t d,
                                     const ze_module_desc_t *desc, ze_module_handle_t *out,
                                     ze_module_build_log_handle_t *log) {
    (void)c;
    (void)d;
    if (getenv("P3_L0DRV_FAIL_BUILD")) { /* lets tests see the build log reach the user */
        set_log(log, "test driver: injected build failure (P3_L0DRV_FAIL_BUILD)");
        return ZE_RESULT_ERROR_MODULE_BUILD_FAILURE;
    }
    if (desc->format != ZE_MODULE_FORMAT_IL_SPIRV) {
        set_log(log, "test driver: only SPIR-V modules are supported");
        return ZE_RESULT_ERROR_INVALID_ENUMERATION;
    }
    size_t bc_size = 0;
    unsigned char *bc = spirv_to_spir(desc->pInputModule, desc->inputSize, &bc_size);
    if (!bc) {
        set_log(log, "test driver: llvm-spirv-15 -r could not translate the SPIR-V module");
        return ZE_RESULT_ERROR_MODULE_BUILD_FAILURE;
    }
    cl_int rc, status;
    const unsigned char *bins[1] = {bc};
    cl_program prog =
        clCreateProgramWithBinary(cl.context, 1, &cl.device, &bc_size, bins, &status, &rc);
    free(bc);
    if (rc != CL_SUCCESS) {
        set_log(log, "test driver: OpenCL refused the SPIR binary");
        return ZE_RESULT_ERROR_MODULE_BUILD_FAILURE;
    }
    /* The module's build flags (OpenCL-style options, as Intel's driver takes them) follow. */
    char options[512];
    snprintf(options, sizeof options, "-x spir -spir-std=1.2 %s",
             desc->pBuildFlags ? desc->pBuildFlags : "");
    rc = clBuildProgram(prog, 1, &cl.device, options, NULL, NULL);
    size_t log_size = 0;
    clGetProgramBuildInfo(prog, cl.device, CL_PROGRAM_BUILD_LOG, 0, NULL, &log_size);
    char *text = calloc(1, log_size + 1);
    if (text) clGetProgramBuildInfo(prog, cl.device, CL_PROGRAM_BUILD_LOG, log_size, text, NULL);
    set_log(log, text);
    free(text);
    if (rc != CL_SUCCESS) {
        clReleaseProgram(prog);
        return ZE_RESULT_ERROR_MODULE_BUILD_FAILURE;
    }
    *out = calloc(1, sizeof **out);
    if (!*out) {
        clReleaseProgram(prog);
        return ZE_RESULT_ERROR_OUT_OF_HOST_MEMORY;
    }
    (*out)->program = prog;
    return ZE_RESULT_SUCCESS;
}

static ze_result_t drv_module_destroy(ze_module_handle_t m) {
    clReleaseProgram(m->program);
    free(m);
    return ZE_RESULT_SUCCESS;
}

static ze_result_t drv_log_destroy(ze_module_build_log_handle_t l) {
    free(l->text);
    free(l);
    return ZE_RESULT_SUCCESS;
}

static ze_result_t drv_log_string(ze_module_build_log_handle_t l, size_t *size, char *buf) {
    size_t n = strlen(l->text) + 1;
    if (!buf) {
        *size = n;
        return ZE_RESULT_SUCCESS;
    }
    if (*size < n) return ZE_RESULT_ERROR_INVALID_SIZE;
    memcpy(buf, l->text, n);
    return ZE_RESULT_SUCCESS;
}

/* ---- kernels */
static ze_result_t drv_kernel_create(ze_module_handle_t m, const ze_kernel_desc_t *desc,
                                     ze_kernel_handle_t *out) {
    cl_int rc;
    cl_kernel k = clCreateKernel(m->program, desc->pKernelName, &rc);
    if (rc != CL_SUCCESS) return ZE_RESULT_ERROR_INVALID_KERNEL_NAME;
    cl_uint n = 0;
    clGetKernelInfo(k, CL_KERNEL_NUM_ARGS, sizeof n, &n, NULL);
    ze_kernel_handle_t h = calloc(1, sizeof *h);
    kernel_arg *args = calloc(n ? n : 1, sizeof *args);
    if (!h || !args) {
        free(h);
        free(args);
        clReleaseKernel(k);
        return ZE_RESULT_ERROR_OUT_OF_HOST_MEMORY;
    }
    h->kernel = k;
    h->n_args = n;
    h->args = args;
    h->group[0] = h->group[1] = h->group[2] = 1;
    *out = h;
    return ZE_RESULT_SUCCESS;
}

static ze_result_t drv_kernel_destroy(ze_kernel_handle_t k) {
    for (cl_uint a = 0; a < k->n_args; a++) free(k->args[a].value);
    free(k->args);
    clReleaseKernel(k->kernel);
    free(k);
    return ZE_RESULT_SUCCESS;
}

static ze_result_t drv_kernel_group_size(ze_kernel_handle_t k, uint32_t x, uint32_t y, uint32_t z) {
    if (!x || !y || !z || (uint64_t)x * y * z > 256)
        return ZE_RESULT_ERROR_INVALID_GROUP_SIZE_DIMENSION;
    k->group[0] = x;
    k->group[1] = y;
    k->group[2] = z;
    return ZE_RESULT_SUCCESS;
}

/* The largest power of two up to `limit` dividing n. */
static uint32_t pow2_divisor(uint32_t n, uint32_t limit) {
    uint32_t g = 1;
    while (g * 2 <= limit && n % (g * 2) == 0) g *= 2;
    return g;
}

static ze_result_t drv_kernel_suggest(ze_kernel_handle_t k, uint32_t gx, uint32_t gy, uint32_t gz,
                                      uint32_t *x, uint32_t *y, uint32_t *z) {
    (void)k;
    (void)gz;
    *x = pow2_divisor(gx, 64);
    *y = pow2_divisor(gy, 64 / *x);
    *z = 1;
    return ZE_RESULT_SUCCESS;
}

static ze_result_t drv_kernel_arg(ze_kernel_handle_t k, uint32_t index, size_t size,
                                  const void *value) {
    if (index >= k->n_args) return ZE_RESULT_ERROR_INVALID_KERNEL_ARGUMENT_INDEX;
    kernel_arg *a = &k->args[index];
    void *copy = NULL;
    if (value) {
        copy = malloc(size ? size : 1);
        if (!copy) return ZE_RESULT_ERROR_OUT_OF_HOST_MEMORY;
        memcpy(copy, value, size);
    }
    free(a->value);
    a->value = copy;
    a->size = size;
    a->is_set = 1;
    return ZE_RESULT_SUCCESS;
}

/* ---- the exported table getters the loader requires */
ze_result_t ZE_APICALL zeGetGlobalProcAddrTable(ze_api_version_t v, ze_global_dditable_t *t) {
    (void)v;
    fill_unsupported(t, sizeof *t);
    t->pfnInit = drv_init;
    return ZE_RESULT_SUCCESS;
}

ze_result_t ZE_APICALL zeGetDriverProcAddrTable(ze_api_version_t v, ze_driver_dditable_t *t) {
    (void)v;
    fill_unsupported(t, sizeof *t);
    t->pfnGet = drv_driver_get;
    t->pfnGetApiVersion = drv_driver_api_version;
    t->pfnGetProperties = drv_driver_properties;
    t->pfnGetExtensionProperties = drv_driver_ext_props;
    t->pfnGetExtensionFunctionAddress = drv_driver_ext_address;
    return ZE_RESULT_SUCCESS;
}

ze_result_t ZE_APICALL zeGetDeviceProcAddrTable(ze_api_version_t v, ze_device_dditable_t *t) {
    (void)v;
    fill_unsupported(t, sizeof *t);
    t->pfnGet = drv_device_get;
    t->pfnGetProperties = drv_device_properties;
    t->pfnGetComputeProperties = drv_device_compute;
    t->pfnGetCommandQueueGroupProperties = drv_device_queue_groups;
    return ZE_RESULT_SUCCESS;
}

ze_result_t ZE_APICALL zeGetContextProcAddrTable(ze_api_version_t v, ze_context_dditable_t *t) {
    (void)v;
    fill_unsupported(t, sizeof *t);
    t->pfnCreate = drv_context_create;
    t->pfnDestroy = drv_context_destroy;
    return ZE_RESULT_SUCCESS;
}

ze_result_t ZE_APICALL zeGetCommandQueueProcAddrTable(ze_api_version_t v,
                                                      ze_command_queue_dditable_t *t) {
    (void)v;
    fill_unsupported(t, sizeof *t);
    t->pfnCreate = drv_queue_create;
    t->pfnDestroy = drv_queue_destroy;
    t->pfnExecuteCommandLists = drv_queue_execute;
    t->pfnSynchronize = drv_queue_sync;
    return ZE_RESULT_SUCCESS;
}

ze_result_t ZE_APICALL zeGetCommandListProcAddrTable(ze_api_version_t v,
                                                     ze_command_list_dditable_t *t) {
    (void)v;
    fill_unsupported(t, sizeof *t);
    t->pfnCreate = drv_list_create;
    t->pfnDestroy = drv_list_destroy;
    t->pfnClose = drv_list_close;
    t->pfnReset = drv_list_reset;
    t->pfnAppendMemoryCopy = drv_append_copy;
    t->pfnAppendMemoryFill = drv_append_fill;
    t->pfnAppendBarrier = drv_append_barrier;
    t->pfnAppendLaunchKernel = drv_append_launch;
    return ZE_RESULT_SUCCESS;
}

ze_result_t ZE_APICALL zeGetFenceProcAddrTable(ze_api_version_t v, ze_fence_dditable_t *t) {
    (void)v;
    fill_unsupported(t, sizeof *t);
    t->pfnCreate = drv_fence_create;
    t->pfnDestroy = drv_fence_destroy;
    t->pfnHostSynchronize = drv_fence_sync;
    t->pfnQueryStatus = drv_fence_query;
    t->pfnReset = drv_fence_reset;
    return ZE_RESULT_SUCCESS;
}

ze_result_t ZE_APICALL zeGetMemProcAddrTable(ze_api_version_t v, ze_mem_dditable_t *t) {
    (void)v;
    fill_unsupported(t, sizeof *t);
    t->pfnAllocDevice = drv_alloc_device;
    t->pfnAllocShared = drv_alloc_shared;
    t->pfnAllocHost = drv_alloc_host;
    t->pfnFree = drv_mem_free;
    return ZE_RESULT_SUCCESS;
}

ze_result_t ZE_APICALL zeGetModuleProcAddrTable(ze_api_version_t v, ze_module_dditable_t *t) {
    (void)v;
    fill_unsupported(t, sizeof *t);
    t->pfnCreate = drv_module_create;
    t->pfnDestroy = drv_module_destroy;
    return ZE_RESULT_SUCCESS;
}

ze_result_t ZE_APICALL zeGetModuleBuildLogProcAddrTable(ze_api_version_t v,
                                                        ze_module_build_log_dditable_t *t) {
    (void)v;
    fill_unsupported(t, sizeof *t);
    t->pfnDestroy = drv_log_destroy;
    t->pfnGetString = drv_log_string;
    return ZE_RESULT_SUCCESS;
}

ze_result_t ZE_APICALL zeGetKernelProcAddrTable(ze_api_version_t v, ze_kernel_dditable_t *t) {
    (void)v;
    fill_unsupported(t, sizeof *t);
    t->pfnCreate = drv_kernel_create;
    t->pfnDestroy = drv_kernel_destroy;
    t->pfnSetGroupSize = drv_kernel_group_size;
    t->pfnSuggestGroupSize = drv_kernel_suggest;
    t->pfnSetArgumentValue = drv_kernel_arg;
    return ZE_RESULT_SUCCESS;
}

/* Tables whose every entry is unsupported. */
#define UNSUPPORTED_TABLE(getter, type)                                                            \
    ze_result_t ZE_APICALL getter(ze_api_version_t v, type *t) {                                   \
        (void)v;                                                                                   \
        fill_unsupported(t, sizeof *t);                                                            \
        return ZE_RESULT_SUCCESS;                                                                  \
    }

UNSUPPORTED_TABLE(zeGetEventProcAddrTable, ze_event_dditable_t)
UNSUPPORTED_TABLE(zeGetEventPoolProcAddrTable, ze_event_pool_dditable_t)
UNSUPPORTED_TABLE(zeGetImageProcAddrTable, ze_image_dditable_t)
UNSUPPORTED_TABLE(zeGetPhysicalMemProcAddrTable, ze_physical_mem_dditable_t)
UNSUPPORTED_TABLE(zeGetSamplerProcAddrTable, ze_sampler_dditable_t)
UNSUPPORTED_TABLE(zeGetVirtualMemProcAddrTable, ze_virtual_mem_dditable_t)

UNSUPPORTED_TABLE(zetGetDeviceProcAddrTable, zet_device_dditable_t)
UNSUPPORTED_TABLE(zetGetContextProcAddrTable, zet_context_dditable_t)
UNSUPPORTED_TABLE(zetGetCommandListProcAddrTable, zet_command_list_dditable_t)
UNSUPPORTED_TABLE(zetGetKernelProcAddrTable, zet_kernel_dditable_t)
UNSUPPORTED_TABLE(zetGetModuleProcAddrTable, zet_module_dditable_t)
UNSUPPORTED_TABLE(zetGetDebugProcAddrTable, zet_debug_dditable_t)
UNSUPPORTED_TABLE(zetGetMetricProcAddrTable, zet_metric_dditable_t)
UNSUPPORTED_TABLE(zetGetMetricGroupProcAddrTable, zet_metric_group_dditable_t)
UNSUPPORTED_TABLE(zetGetMetricQueryProcAddrTable, zet_metric_query_dditable_t)
UNSUPPORTED_TABLE(zetGetMetricQueryPoolProcAddrTable, zet_metric_query_pool_dditable_t)
UNSUPPORTED_TABLE(zetGetMetricStreamerProcAddrTable, zet_metric_streamer_dditable_t)
UNSUPPORTED_TABLE(zetGetTracerExpProcAddrTable, zet_tracer_exp_dditable_t)

UNSUPPORTED_TABLE(zesGetDeviceProcAddrTable, zes_device_dditable_t)
UNSUPPORTED_TABLE(zesGetDriverProcAddrTable, zes_driver_dditable_t)
UNSUPPORTED_TABLE(zesGetDiagnosticsProcAddrTable, zes_diagnostics_dditable_t)
UNSUPPORTED_TABLE(zesGetEngineProcAddrTable, zes_engine_dditable_t)
UNSUPPORTED_TABLE(zesGetFabricPortProcAddrTable, zes_fabric_port_dditable_t)
UNSUPPORTED_TABLE(zesGetFanProcAddrTable, zes_fan_dditable_t)
UNSUPPORTED_TABLE(zesGetFirmwareProcAddrTable, zes_firmware_dditable_t)
UNSUPPORTED_TABLE(zesGetFrequencyProcAddrTable, zes_frequency_dditable_t)
UNSUPPORTED_TABLE(zesGetLedProcAddrTable, zes_led_dditable_t)
UNSUPPORTED_TABLE(zesGetMemoryProcAddrTable, zes_memory_dditable_t)
UNSUPPORTED_TABLE(zesGetPerformanceFactorProcAddrTable, zes_performance_factor_dditable_t)
UNSUPPORTED_TABLE(zesGetPowerProcAddrTable, zes_power_dditable_t)
UNSUPPORTED_TABLE(zesGetPsuProcAddrTable, zes_psu_dditable_t)
UNSUPPORTED_TABLE(zesGetRasProcAddrTable, zes_ras_dditable_t)
UNSUPPORTED_TABLE(zesGetSchedulerProcAddrTable, zes_scheduler_dditable_t)
UNSUPPORTED_TABLE(zesGetStandbyProcAddrTable, zes_standby_dditable_t)
UNSUPPORTED_TABLE(zesGetTemperatureProcAddrTable, zes_temperature_dditable_t)
