/* npu_backend.c: the Intel NPU backend (p3_backend_level_zero_npu, "level-zero-npu"). INT4-g128
 * symmetric matmuls run on the NPU as graphs compiled by the driver from phi3c's own OpenVINO IR
 * (npu_ir.c) through the Level Zero graph extension (npu_graph_ext.h); every other weight, op,
 * buffer and the KV cache are the "cpu" backend's: the registered table is an overlay
 * (kernels/overlay.h) of this file's primary table over "cpu". Not yet run on an NPU: see
 * kernels/level_zero/NPU.md. */
#include "int4.h"
#include "l0_headers.h"
#include "npu_ir.h"
#include "overlay.h"

#include <stdio.h>
#include <string.h>

#ifndef P3_HAVE_ZE_HEADERS
static p3_status npu_create_stub(const p3_backend_options *opt, void **ctx, p3_error *err) {
    (void)opt;
    (void)ctx;
    return p3_fail(err, PHI3C_ERR_UNAVAILABLE,
                   "level-zero-npu: built without the Level Zero headers");
}
const p3_backend_iface p3_backend_level_zero_npu = {
    .version = P3_BACKEND_IFACE_VERSION,
    .name = "level-zero-npu",
    .probe = p3_l0_probe_without_headers,
    .create = npu_create_stub,
};
#else

#include "l0_loader.h"
#include "npu_graph_ext.h"

/* ---- discovery: an NPU (a VPU-type device) and the graph extension of its driver */
typedef struct npu_found {
    ze_driver_handle_t driver;
    ze_device_handle_t device;
    char name[ZE_MAX_DEVICE_NAME];
    char ext_name[ZE_MAX_EXTENSION_NAME];
    uint32_t ext_version;
    p3_ze_graph_table *graph;
    p3_ze_device_graph_properties props;
} npu_found;

static const char *const no_npu_hint =
    "NPU drivers install libze_intel_npu.so, which Debian's loader 1.8 loads only with "
    "ZE_ENABLE_ALT_DRIVERS=/path/libze_intel_npu.so";

/* The first VPU-type device of any driver. */
static bool find_device(const l0_api *api, npu_found *f, char *why, size_t why_len) {
    ze_result_t r = p3_l0_init(api);
    uint32_t n_drivers = 0;
    if (r == ZE_RESULT_SUCCESS) r = api->zeDriverGet(&n_drivers, NULL);
    if (r != ZE_RESULT_SUCCESS || n_drivers == 0) {
        snprintf(why, why_len, "no Level Zero driver found (%s): %s",
                 r != ZE_RESULT_SUCCESS ? p3_ze_result_name(r) : "0 drivers", no_npu_hint);
        return false;
    }
    ze_driver_handle_t drivers[8];
    if (n_drivers > 8) n_drivers = 8;
    if (api->zeDriverGet(&n_drivers, drivers) != ZE_RESULT_SUCCESS) n_drivers = 0;
    for (uint32_t d = 0; d < n_drivers; d++) {
        ze_device_handle_t devs[16];
        uint32_t n_dev = 16;
        if (api->zeDeviceGet(drivers[d], &n_dev, devs) != ZE_RESULT_SUCCESS) continue;
        for (uint32_t i = 0; i < n_dev && i < 16; i++) {
            ze_device_properties_t props = {.stype = ZE_STRUCTURE_TYPE_DEVICE_PROPERTIES};
            if (api->zeDeviceGetProperties(devs[i], &props) != ZE_RESULT_SUCCESS ||
                props.type != ZE_DEVICE_TYPE_VPU)
                continue;
            f->driver = drivers[d];
            f->device = devs[i];
            snprintf(f->name, sizeof f->name, "%s", props.name);
            return true;
        }
    }
    snprintf(why, why_len, "%u Level Zero driver(s) found, but no NPU (VPU-type) device; %s",
             n_drivers, no_npu_hint);
    return false;
}

/* The newest "ZE_extension_graph*" entry the driver lists (older drivers list one name per
 * version, e.g. ZE_extension_graph_1_5), its function table and the device's compiler version. */
static bool find_graph_ext(const l0_api *api, npu_found *f, char *why, size_t why_len) {
    uint32_t n = 0;
    ze_driver_extension_properties_t ext[64];
    if (api->zeDriverGetExtensionProperties(f->driver, &n, NULL) != ZE_RESULT_SUCCESS) n = 0;
    if (n > 64) n = 64;
    for (uint32_t i = 0; i < n; i++) ext[i] = (ze_driver_extension_properties_t){0};
    if (n && api->zeDriverGetExtensionProperties(f->driver, &n, ext) != ZE_RESULT_SUCCESS) n = 0;
    f->ext_version = 0;
    for (uint32_t i = 0; i < n; i++) {
        ext[i].name[ZE_MAX_EXTENSION_NAME - 1] = '\0';
        if (strncmp(ext[i].name, P3_ZE_GRAPH_EXT_NAME, strlen(P3_ZE_GRAPH_EXT_NAME)) != 0 ||
            ext[i].version <= f->ext_version)
            continue;
        f->ext_version = ext[i].version;
        memcpy(f->ext_name, ext[i].name, sizeof f->ext_name); /* NUL-terminated above */
    }
    if (f->ext_version == 0) {
        snprintf(why, why_len,
                 "NPU %s found, but its driver does not offer the graph extension (%s)", f->name,
                 P3_ZE_GRAPH_EXT_NAME);
        return false;
    }
    if (f->ext_version < P3_ZE_GRAPH_EXT_MIN_VERSION) {
        snprintf(why, why_len, "NPU %s: graph extension %s is version %u.%u, phi3c needs 1.8",
                 f->name, f->ext_name, ZE_MAJOR_VERSION(f->ext_version),
                 ZE_MINOR_VERSION(f->ext_version));
        return false;
    }
    void *table = NULL;
    ze_result_t r = api->zeDriverGetExtensionFunctionAddress(f->driver, f->ext_name, &table);
    if (r != ZE_RESULT_SUCCESS || !table) {
        snprintf(why, why_len, "NPU %s: zeDriverGetExtensionFunctionAddress(%s) failed (%s)",
                 f->name, f->ext_name, p3_ze_result_name(r));
        return false;
    }
    f->graph = table;
    f->props = (p3_ze_device_graph_properties){.stype = P3_ZE_STYPE_DEVICE_GRAPH_PROPERTIES};
    if (!f->graph->pfnDeviceGetGraphProperties || !f->graph->pfnCreate2 ||
        !f->graph->pfnGetProperties2 ||
        f->graph->pfnDeviceGetGraphProperties(f->device, &f->props) != ZE_RESULT_SUCCESS) {
        snprintf(why, why_len, "NPU %s: the graph extension's device properties are unavailable",
                 f->name);
        return false;
    }
    if (!(f->props.graphFormatsSupported & P3_ZE_GRAPH_FORMAT_NGRAPH_LITE)) {
        snprintf(why, why_len, "NPU %s: its compiler does not take IR (no NGRAPH_LITE format)",
                 f->name);
        return false;
    }
    return true;
}

static bool find_npu(l0_api *api, npu_found *f, char *why, size_t why_len) {
    memset(f, 0, sizeof *f);
    /* the loader itself loads no driver until zeInit: a missing loader is reported in every build
     */
    return p3_l0_api_load(api, why, why_len) && p3_l0_sanitizer_may_probe(why, why_len) &&
           find_device(api, f, why, why_len) && find_graph_ext(api, f, why, why_len);
}

static bool npu_probe(char *why, size_t why_len, char *devices, size_t devices_len) {
    if (devices_len) devices[0] = '\0';
    l0_api api;
    npu_found f;
    if (!find_npu(&api, &f, why, why_len)) return false;
    snprintf(devices, devices_len, "0: %s (%s %u.%u, compiler %u.%u, opset <= %u)", f.name,
             f.ext_name, ZE_MAJOR_VERSION(f.ext_version), ZE_MINOR_VERSION(f.ext_version),
             f.props.compilerMajor, f.props.compilerMinor, f.props.maxOVOpsetVersionSupported);
    return true;
}

/* ---- the context */
typedef struct npu_graph {
    int64_t rows, cols, tokens;
    p3_ze_graph_handle_t handle;
} npu_graph;

typedef struct npu_ctx {
    l0_api api;
    npu_found npu;
    ze_context_handle_t context;
    ze_command_queue_handle_t queue;
    ze_command_list_handle_t list;
    ze_fence_handle_t fence;
    npu_graph *graphs; /* compiled once per (rows, cols, tokens) */
    int n_graphs, cap_graphs;
    uint16_t *x16, *y16; /* host memory the NPU reads and writes: f16 [tokens][cols / rows] */
    size_t x16_cap, y16_cap;
} npu_ctx;

/* An uploaded weight in NPU form (4-bit [O, K/128, 128] in OpenVINO order + f16 scales, in host
 * memory the NPU reads): symmetric INT4 with K % 128 == 0; the overlay gives others to "cpu". */
typedef struct npu_weight {
    p3_weight pub;
    uint8_t *q;
    uint16_t *scales;
    size_t bytes;
} npu_weight;

#define ZE_TRY(call, what)    P3_ZE_TRY("level-zero-npu", call, what)
#define ze_fail(err, r, what) p3_ze_fail(err, "level-zero-npu", r, what)

static p3_status host_alloc(npu_ctx *c, size_t size, void **out, p3_error *err) {
    ze_host_mem_alloc_desc_t hd = {.stype = ZE_STRUCTURE_TYPE_HOST_MEM_ALLOC_DESC};
    ze_result_t r = c->api.zeMemAllocHost(c->context, &hd, size ? size : 1, 64, out);
    if (r != ZE_RESULT_SUCCESS) {
        *out = NULL;
        return p3_fail(err, PHI3C_ERR_NOMEM,
                       "level-zero-npu: cannot allocate %zu bytes of host memory for the NPU (%s)",
                       size, p3_ze_result_name(r));
    }
    return PHI3C_OK;
}

static void host_free(npu_ctx *c, void *p) {
    if (p) c->api.zeMemFree(c->context, p);
}

/* Closes the list, runs it, waits on the fence and makes the list reusable. */
static p3_status run_list(npu_ctx *c, p3_error *err) {
    ZE_TRY(c->api.zeCommandListClose(c->list), "zeCommandListClose");
    ze_result_t r = c->api.zeCommandQueueExecuteCommandLists(c->queue, 1, &c->list, c->fence);
    if (r == ZE_RESULT_SUCCESS) r = c->api.zeFenceHostSynchronize(c->fence, UINT64_MAX);
    c->api.zeFenceReset(c->fence);
    c->api.zeCommandListReset(c->list);
    return r == ZE_RESULT_SUCCESS ? PHI3C_OK : ze_fail(err, r, "running the NPU command list");
}

static void npu_destroy(void *ctx) {
    npu_ctx *c = ctx;
    if (!c) return;
    for (int i = 0; i < c->n_graphs; i++) c->npu.graph->pfnDestroy(c->graphs[i].handle);
    p3_free(c->graphs);
    host_free(c, c->x16);
    host_free(c, c->y16);
    if (c->fence) c->api.zeFenceDestroy(c->fence);
    if (c->list) c->api.zeCommandListDestroy(c->list);
    if (c->queue) c->api.zeCommandQueueDestroy(c->queue);
    if (c->context) c->api.zeContextDestroy(c->context);
    p3_free(c);
}

/* The first queue group that computes (the NPU's inference engine). */
static p3_status compute_ordinal(npu_ctx *c, uint32_t *ordinal, p3_error *err) {
    ze_command_queue_group_properties_t props[16];
    uint32_t n = 16;
    for (uint32_t i = 0; i < n; i++)
        props[i] = (ze_command_queue_group_properties_t){
            .stype = ZE_STRUCTURE_TYPE_COMMAND_QUEUE_GROUP_PROPERTIES};
    ZE_TRY(c->api.zeDeviceGetCommandQueueGroupProperties(c->npu.device, &n, props),
           "zeDeviceGetCommandQueueGroupProperties");
    for (uint32_t i = 0; i < n && i < 16; i++)
        if (props[i].flags & ZE_COMMAND_QUEUE_GROUP_PROPERTY_FLAG_COMPUTE) {
            *ordinal = i;
            return PHI3C_OK;
        }
    return p3_fail(err, PHI3C_ERR_UNAVAILABLE, "level-zero-npu: %s has no compute queue group",
                   c->npu.name);
}

static p3_status create_objects(npu_ctx *c, p3_error *err) {
    ze_context_desc_t cd = {.stype = ZE_STRUCTURE_TYPE_CONTEXT_DESC};
    ZE_TRY(c->api.zeContextCreate(c->npu.driver, &cd, &c->context), "zeContextCreate");
    uint32_t ordinal = 0;
    p3_status s = compute_ordinal(c, &ordinal, err);
    if (s != PHI3C_OK) return s;
    ze_command_queue_desc_t qd = {.stype = ZE_STRUCTURE_TYPE_COMMAND_QUEUE_DESC,
                                  .ordinal = ordinal,
                                  .mode = ZE_COMMAND_QUEUE_MODE_ASYNCHRONOUS};
    ZE_TRY(c->api.zeCommandQueueCreate(c->context, c->npu.device, &qd, &c->queue),
           "zeCommandQueueCreate");
    ze_command_list_desc_t ld = {.stype = ZE_STRUCTURE_TYPE_COMMAND_LIST_DESC,
                                 .commandQueueGroupOrdinal = ordinal};
    ZE_TRY(c->api.zeCommandListCreate(c->context, c->npu.device, &ld, &c->list),
           "zeCommandListCreate");
    ze_fence_desc_t fd = {.stype = ZE_STRUCTURE_TYPE_FENCE_DESC};
    ZE_TRY(c->api.zeFenceCreate(c->queue, &fd, &c->fence), "zeFenceCreate");
    return PHI3C_OK;
}

static p3_status npu_create(const p3_backend_options *opt, void **out, p3_error *err) {
    *out = NULL;
    npu_ctx *c = p3_calloc(1, sizeof *c);
    if (!c) return p3_fail(err, PHI3C_ERR_NOMEM, "level-zero-npu: out of memory");
    char why[512];
    if (!find_npu(&c->api, &c->npu, why, sizeof why)) {
        p3_free(c);
        return p3_fail(err, PHI3C_ERR_UNAVAILABLE, "level-zero-npu: %s", why);
    }
    if (opt && opt->device != 0) {
        p3_free(c);
        return p3_fail(err, PHI3C_ERR_INVALID_ARG,
                       "level-zero-npu: device %d does not exist (one NPU is used)", opt->device);
    }
    p3_status s = create_objects(c, err);
    if (s != PHI3C_OK) {
        npu_destroy(c);
        return s;
    }
    *out = c;
    return PHI3C_OK;
}

static void npu_describe(void *ctx, char *buf, size_t len) {
    npu_ctx *c = ctx;
    snprintf(buf, len, "level-zero-npu %s (INT4 matmuls)", c->npu.name);
}

/* ---- graphs: one per (rows, cols, tokens), compiled by the driver on first use */
static const char *const build_flags =
    "--inputs_precisions=\"x:FP16 w:I4 scale:FP16\" --inputs_layouts=\"x:NC w:CHW scale:CHW\" "
    "--outputs_precisions=\"y:FP16\" --outputs_layouts=\"y:NC\"";

/* Arguments in the order the extension numbers them: inputs x, w, scale, then output y. */
static p3_status check_arguments(npu_ctx *c, p3_ze_graph_handle_t g, p3_error *err) {
    p3_ze_graph_properties_2 gp = {.stype = P3_ZE_STYPE_GRAPH_PROPERTIES_2};
    ZE_TRY(c->npu.graph->pfnGetProperties2(g, &gp), "graph pfnGetProperties2");
    if (gp.numGraphArgs != 4)
        return p3_fail(err, PHI3C_ERR_BACKEND,
                       "level-zero-npu: the compiled graph has %u arguments, expected 4 (x, w, "
                       "scale, y)",
                       gp.numGraphArgs);
    for (uint32_t i = 0; i < 4 && c->npu.graph->pfnGetArgumentProperties; i++) {
        p3_ze_graph_argument_properties ap = {.stype = P3_ZE_STYPE_GRAPH_ARGUMENT_PROPERTIES};
        ZE_TRY(c->npu.graph->pfnGetArgumentProperties(g, i, &ap), "graph argument properties");
        uint32_t want = i < 3 ? P3_ZE_GRAPH_ARGUMENT_TYPE_INPUT : P3_ZE_GRAPH_ARGUMENT_TYPE_OUTPUT;
        if (ap.type != want)
            return p3_fail(err, PHI3C_ERR_BACKEND,
                           "level-zero-npu: graph argument %u (%.64s) is not an %s", i, ap.name,
                           i < 3 ? "input" : "output");
    }
    if (gp.initStageRequired & P3_ZE_GRAPH_STAGE_INITIALIZE)
        ZE_TRY(c->npu.graph->pfnGraphInitialize(g), "graph pfnGraphInitialize");
    if (gp.initStageRequired & P3_ZE_GRAPH_STAGE_COMMAND_LIST_INITIALIZE) {
        ZE_TRY(c->npu.graph->pfnAppendGraphInitialize(c->list, g, NULL, 0, NULL),
               "graph pfnAppendGraphInitialize");
        return run_list(c, err);
    }
    return PHI3C_OK;
}

/* The driver's build log, when it has one, for the error message. */
static void build_log(npu_ctx *c, p3_ze_graph_handle_t g, char *text, size_t len) {
    text[0] = '\0';
    uint32_t size = 0;
    if (!c->npu.graph->pfnBuildLogGetString ||
        c->npu.graph->pfnBuildLogGetString(g, &size, NULL) != ZE_RESULT_SUCCESS || size == 0)
        return;
    char *full = p3_malloc((size_t)size + 1);
    if (full && c->npu.graph->pfnBuildLogGetString(g, &size, full) == ZE_RESULT_SUCCESS) {
        full[size] = '\0';
        snprintf(text, len, "%s", full);
    }
    p3_free(full);
}

static p3_status compile_graph(npu_ctx *c, int64_t rows, int64_t cols, int64_t tokens,
                               p3_ze_graph_handle_t *out, p3_error *err) {
    p3_npu_matmul_spec spec = {.rows = rows,
                               .cols = cols,
                               .tokens = tokens,
                               .act = P3_NPU_ACT_F16,
                               .wtype = P3_NPU_W_I4,
                               .weights_as_inputs = true};
    p3_npu_ir ir;
    p3_status s = p3_npu_ir_emit(&spec, &ir, err);
    if (s != PHI3C_OK) return s;
    uint8_t *input = NULL;
    size_t size = 0;
    s = p3_npu_ngraph_lite(c->npu.props.compilerMajor, c->npu.props.compilerMinor, &ir, &input,
                           &size, err);
    p3_npu_ir_free(&ir);
    if (s != PHI3C_OK) return s;
    p3_ze_graph_desc_2 desc = {.stype = P3_ZE_STYPE_GRAPH_DESC_2,
                               .format = P3_ZE_GRAPH_FORMAT_NGRAPH_LITE,
                               .inputSize = size,
                               .pInput = input,
                               .pBuildFlags = build_flags};
    *out = NULL;
    ze_result_t r = c->npu.graph->pfnCreate2(c->context, c->npu.device, &desc, out);
    p3_free(input);
    if (r != ZE_RESULT_SUCCESS) {
        char log[384];
        build_log(c, *out, log, sizeof log);
        return p3_fail(err, PHI3C_ERR_BACKEND,
                       "level-zero-npu: compiling the %lldx%lld matmul graph for %lld tokens "
                       "failed (%s); build log: %s",
                       (long long)rows, (long long)cols, (long long)tokens, p3_ze_result_name(r),
                       log[0] ? log : "(empty)");
    }
    s = check_arguments(c, *out, err);
    if (s != PHI3C_OK) {
        c->npu.graph->pfnDestroy(*out);
        *out = NULL;
    }
    return s;
}

static p3_status get_graph(npu_ctx *c, int64_t rows, int64_t cols, int64_t tokens,
                           p3_ze_graph_handle_t *out, p3_error *err) {
    for (int i = 0; i < c->n_graphs; i++) {
        const npu_graph *g = &c->graphs[i];
        if (g->rows == rows && g->cols == cols && g->tokens == tokens) {
            *out = g->handle;
            return PHI3C_OK;
        }
    }
    if (c->n_graphs == c->cap_graphs) {
        int cap = c->cap_graphs ? 2 * c->cap_graphs : 16;
        npu_graph *grown = p3_realloc(c->graphs, (size_t)cap * sizeof *grown);
        if (!grown) return p3_fail(err, PHI3C_ERR_NOMEM, "level-zero-npu: out of memory");
        c->graphs = grown;
        c->cap_graphs = cap;
    }
    p3_status s = compile_graph(c, rows, cols, tokens, out, err);
    if (s == PHI3C_OK) c->graphs[c->n_graphs++] = (npu_graph){rows, cols, tokens, *out};
    return s;
}

/* ---- weights */
static bool runs_on_npu(const p3_weight_desc *d) {
    return d->dtype == P3_DT_I4G128S && d->cols % P3_QK == 0 && d->rows > 0 && d->cols > 0 &&
           d->rows <= INT32_MAX && d->cols <= INT32_MAX;
}

static p3_status upload_npu(npu_ctx *c, const p3_weight_desc *d, npu_weight *w, p3_error *err) {
    size_t groups = (size_t)d->rows * (size_t)(d->cols / P3_QK), q_bytes, s_bytes;
    if (!p3_mul_size(groups, P3_QK / 2, &q_bytes) ||
        !p3_mul_size(groups, sizeof(uint16_t), &s_bytes))
        return p3_fail(err, PHI3C_ERR_INVALID_ARG, "level-zero-npu: weight %s is too large",
                       d->name);
    void *q = NULL, *s = NULL;
    p3_status st = host_alloc(c, q_bytes, &q, err);
    if (st == PHI3C_OK) st = host_alloc(c, s_bytes, &s, err);
    if (st != PHI3C_OK) {
        host_free(c, q);
        return st;
    }
    p3_npu_pack_i4s(d->data, d->rows, d->cols, P3_NPU_W_I4, q, s);
    w->q = q;
    w->scales = s;
    w->bytes = q_bytes + s_bytes;
    return PHI3C_OK;
}

static p3_status npu_weight_upload(void *ctx, const p3_weight_desc *d, p3_weight **out,
                                   p3_error *err) {
    npu_ctx *c = ctx;
    if (!runs_on_npu(d))
        return p3_fail(err, PHI3C_ERR_UNSUPPORTED, "level-zero-npu: %s stays on the fallback",
                       d->name);
    npu_weight *w = p3_calloc(1, sizeof *w);
    if (!w) return p3_fail(err, PHI3C_ERR_NOMEM, "level-zero-npu: out of memory");
    p3_status s = upload_npu(c, d, w, err);
    if (s != PHI3C_OK) {
        p3_free(w);
        return s;
    }
    w->pub = (p3_weight){.dtype = d->dtype, .rows = d->rows, .cols = d->cols, .act = d->act};
    *out = &w->pub;
    return PHI3C_OK;
}

static void npu_weight_free(void *ctx, p3_weight *pw) {
    npu_ctx *c = ctx;
    npu_weight *w = (npu_weight *)pw;
    if (!w) return;
    host_free(c, w->q);
    host_free(c, w->scales);
    p3_free(w);
}

static size_t npu_weight_bytes(void *ctx, const p3_weight *pw) {
    (void)ctx;
    return ((const npu_weight *)pw)->bytes;
}

/* ---- ops */
static void *host_at(p3_ref r) {
    return (uint8_t *)r.buf->host + r.offset;
}

/* Rows of an NPU-form table, dequantized on the host (an INT4 embedding table). */
static p3_status npu_embed(void *ctx, p3_ref out, const p3_weight *table, p3_ref ids, int n_tokens,
                           p3_error *err) {
    (void)ctx;
    const npu_weight *w = (const npu_weight *)table;
    const int32_t *id = host_at(ids);
    float *y = host_at(out);
    int64_t groups = table->cols / P3_QK;
    for (int t = 0; t < n_tokens; t++, y += table->cols) {
        if (id[t] < 0 || id[t] >= table->rows) {
            memset(y, 0, (size_t)table->cols * sizeof *y);
            return p3_fail(err, PHI3C_ERR_INVALID_ARG,
                           "level-zero-npu embed: token id %d is outside the table (%lld rows)",
                           id[t], (long long)table->rows);
        }
        for (int64_t k = 0; k < table->cols; k++) {
            size_t e = (size_t)id[t] * (size_t)table->cols + (size_t)k;
            int nib = (w->q[e / 2] >> (e % 2 ? 4 : 0)) & 0xF;
            float d = p3_f16_to_f32(w->scales[(size_t)id[t] * (size_t)groups + (size_t)k / P3_QK]);
            y[k] = d * (float)(nib >= 8 ? nib - 16 : nib);
        }
    }
    return PHI3C_OK;
}

/* Grows one of the f16 staging areas the graphs read and write. */
static p3_status staging(npu_ctx *c, uint16_t **buf, size_t *cap, size_t elems, p3_error *err) {
    if (elems <= *cap) return PHI3C_OK;
    host_free(c, *buf);
    *buf = NULL;
    *cap = 0;
    void *mem = NULL;
    p3_status s = host_alloc(c, elems * sizeof(uint16_t), &mem, err);
    if (s == PHI3C_OK) {
        *buf = mem;
        *cap = elems;
    }
    return s;
}

/* The compiled token counts: decode, then prefill chunks; a remainder is zero padded. */
static int64_t chunk_tokens(int64_t left) {
    static const int64_t sizes[] = {1, 16, 32, 128};
    for (size_t i = 0; i < P3_ARRAY_LEN(sizes); i++)
        if (left <= sizes[i]) return sizes[i];
    return 128;
}

/* One graph execution: x rows [t0, t0 + n) in f16, padded to `tokens`, and y back to f32. */
static p3_status run_chunk(npu_ctx *c, const npu_weight *w, float *y, const float *x, int64_t n,
                           int64_t tokens, p3_error *err) {
    int64_t K = w->pub.cols, O = w->pub.rows;
    p3_ze_graph_handle_t g;
    p3_status s = get_graph(c, O, K, tokens, &g, err);
    if (s == PHI3C_OK) s = staging(c, &c->x16, &c->x16_cap, (size_t)(tokens * K), err);
    if (s == PHI3C_OK) s = staging(c, &c->y16, &c->y16_cap, (size_t)(tokens * O), err);
    if (s != PHI3C_OK) return s;
    for (int64_t i = 0; i < tokens * K; i++) c->x16[i] = i < n * K ? p3_f32_to_f16(x[i]) : 0;
    const p3_ze_graph_table *gt = c->npu.graph;
    const void *args[4] = {c->x16, w->q, w->scales, c->y16};
    for (uint32_t i = 0; i < 4; i++)
        ZE_TRY(gt->pfnSetArgumentValue(g, i, args[i]), "graph pfnSetArgumentValue");
    ZE_TRY(gt->pfnAppendGraphExecute(c->list, g, NULL, NULL, 0, NULL), "pfnAppendGraphExecute");
    s = run_list(c, err);
    if (s != PHI3C_OK) return s;
    for (int64_t i = 0; i < n * O; i++) y[i] = p3_f16_to_f32(c->y16[i]);
    return PHI3C_OK;
}

static p3_status npu_matmul(void *ctx, p3_ref y, p3_ref x, const p3_weight *pw, int n_tokens,
                            p3_error *err) {
    npu_ctx *c = ctx;
    const npu_weight *w = (const npu_weight *)pw;
    const float *xs = host_at(x);
    float *ys = host_at(y);
    for (int64_t t = 0; t < n_tokens;) {
        int64_t left = n_tokens - t, tokens = chunk_tokens(left), n = P3_MIN(left, tokens);
        p3_status s = run_chunk(c, w, ys + t * pw->rows, xs + t * pw->cols, n, tokens, err);
        if (s != PHI3C_OK) return s;
        t += n;
    }
    return PHI3C_OK;
}

/* The NPU's own entries; everything else is the fallback's (overlay.h). */
static const p3_backend_iface npu_primary = {
    .version = P3_BACKEND_IFACE_VERSION,
    .name = "level-zero-npu",
    .create = npu_create,
    .destroy = npu_destroy,
    .describe = npu_describe,
    .weight_upload = npu_weight_upload,
    .weight_free = npu_weight_free,
    .weight_bytes = npu_weight_bytes,
    .embed = npu_embed,
    .matmul = npu_matmul,
};

static p3_status npu_overlay_create(const p3_backend_options *opt, void **ctx, p3_error *err) {
    return p3_overlay_create(&npu_primary, "cpu", opt, ctx, err);
}

const p3_backend_iface p3_backend_level_zero_npu = {
    .version = P3_BACKEND_IFACE_VERSION,
    .name = "level-zero-npu",
    .probe = npu_probe,
    .create = npu_overlay_create,
    P3_OVERLAY_METHODS,
};
#endif /* P3_HAVE_ZE_HEADERS */
