/* l0graph.c: a mock of the Intel NPU graph extension inside the test driver, so that the NPU
 * backend's host code (discovery, NGRAPH_LITE, create, initialise, arguments, execute) runs
 * through the stock loader without an NPU. Enabled with P3_L0DRV_GRAPH_EXT=1 (the device then
 * reports type VPU). It checks the NGRAPH_LITE header against the compiler version it reports,
 * reads the shapes of the x and w Parameters from the IR, requires the f16/i4 build flags, and
 * executes the matmul the IR describes on the host: y = f16(x · (scale · i4)^T), with i4 unpacked
 * low nibble first as OpenVINO defines it. It does not compile the IR: OpenVINO checks that (see
 * tests/stages/npu.sh). Test infrastructure: state in file-level statics. */
#include "l0graph.h"

#include "npu_graph_ext.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MOCK_COMPILER_MAJOR = 7, MOCK_COMPILER_MINOR = 21 };

static char last_log[512];

typedef struct mock_graph {
    long long tokens, cols, rows;
    const void *args[4];
    int initialized;
} mock_graph;

typedef struct mock_exec { /* what an appended execute runs with (arguments as of the append) */
    mock_graph *graph;
    const void *args[4];
} mock_exec;

static bool enabled(void) {
    return getenv("P3_L0DRV_GRAPH_EXT") != NULL;
}

static float half_to_float(uint16_t h) {
    int e = (h >> 10) & 0x1F, m = h & 0x3FF;
    float v = e == 0 ? ldexpf((float)m, -24) : ldexpf((float)(m | 0x400), e - 25);
    if (e == 31) v = m ? NAN : INFINITY;
    return (h & 0x8000) ? -v : v;
}

static uint16_t float_to_half(float f) { /* round to nearest even, finite inputs */
    uint16_t sign = signbit(f) ? 0x8000 : 0;
    float a = fabsf(f);
    if (a >= 65520.0f) return sign | 0x7C00;
    if (a < ldexpf(1.0f, -14)) return sign | (uint16_t)nearbyintf(a * ldexpf(1.0f, 24));
    int e;
    frexpf(a, &e);                           /* a = frac * 2^e, frac in [0.5, 1) */
    float m = nearbyintf(ldexpf(a, 11 - e)); /* 11 significant bits */
    if (m == 2048.0f) {
        m = 1024.0f;
        e++;
    }
    return sign | (uint16_t)((e + 14) << 10) | ((uint16_t)m & 0x3FF);
}

/* ---- IR reading: the shape attribute of the Parameter named `name` */
static bool parameter_shape(const char *xml, const char *name, const char *elem, long long *dims,
                            int rank) {
    char key[64];
    snprintf(key, sizeof key, "name=\"%s\" type=\"Parameter\"", name);
    const char *p = strstr(xml, key);
    const char *end = p ? strstr(p, "</layer>") : NULL;
    const char *shape = p ? strstr(p, "shape=\"") : NULL;
    if (!shape || !end || shape > end) return false;
    char want[64];
    snprintf(want, sizeof want, "element_type=\"%s\"", elem);
    const char *type = strstr(p, want);
    if (!type || type > end) return false;
    shape += 7;
    for (int i = 0; i < rank; i++) {
        char *next;
        dims[i] = strtoll(shape, &next, 10);
        if (next == shape || dims[i] <= 0 || *next != (i + 1 < rank ? ',' : '"')) return false;
        shape = next + 1;
    }
    return true;
}

static ze_result_t fail(const char *msg) {
    snprintf(last_log, sizeof last_log, "mock NPU compiler: %s", msg);
    return ZE_RESULT_ERROR_INVALID_ARGUMENT;
}

static uint64_t get_le(const uint8_t *p, int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* NGRAPH_LITE: u16 major, u16 minor, u32 parts, u64 xml size, xml, u64 bin size, bin. */
static ze_result_t read_input(const p3_ze_graph_desc_2 *d, char **xml) {
    const uint8_t *in = d->pInput;
    size_t n = d->inputSize;
    if (n < 24) return fail("NGRAPH_LITE input shorter than its header");
    if (get_le(in, 2) != MOCK_COMPILER_MAJOR || get_le(in + 2, 2) != MOCK_COMPILER_MINOR)
        return fail("NGRAPH_LITE header carries another compiler version");
    if (get_le(in + 4, 4) != 2) return fail("NGRAPH_LITE must have 2 parts");
    uint64_t xml_size = get_le(in + 8, 8);
    if (xml_size > n - 24) return fail("XML size past the end");
    uint64_t bin_size = get_le(in + 16 + xml_size, 8);
    if (bin_size != n - 24 - xml_size) return fail("weights size does not end the buffer");
    *xml = malloc(xml_size + 1);
    if (!*xml) return ZE_RESULT_ERROR_OUT_OF_HOST_MEMORY;
    memcpy(*xml, in + 16, xml_size);
    (*xml)[xml_size] = '\0';
    return ZE_RESULT_SUCCESS;
}

static ze_result_t ZE_APICALL g_create2(ze_context_handle_t c, ze_device_handle_t dev,
                                        const p3_ze_graph_desc_2 *d, p3_ze_graph_handle_t *out) {
    (void)c;
    (void)dev;
    last_log[0] = '\0';
    if (d->stype != P3_ZE_STYPE_GRAPH_DESC_2 || d->format != P3_ZE_GRAPH_FORMAT_NGRAPH_LITE)
        return fail("expected ze_graph_desc_2_t with the NGRAPH_LITE format");
    if (!d->pBuildFlags || !strstr(d->pBuildFlags, "x:FP16 w:I4 scale:FP16") ||
        !strstr(d->pBuildFlags, "y:FP16"))
        return fail("build flags do not give the precisions x:FP16 w:I4 scale:FP16, y:FP16");
    char *xml = NULL;
    ze_result_t r = read_input(d, &xml);
    if (r != ZE_RESULT_SUCCESS) return r;
    long long x[2], w[3];
    bool ok = parameter_shape(xml, "x", "f16", x, 2) && parameter_shape(xml, "w", "i4", w, 3) &&
              w[2] == 128 && w[1] * 128 == x[1] && strstr(xml, "transpose_b=\"true\"") != NULL;
    free(xml);
    if (!ok) return fail("the IR is not an f16 x [T,K] by i4 w [O,K/128,128] matmul");
    mock_graph *g = calloc(1, sizeof *g);
    if (!g) return ZE_RESULT_ERROR_OUT_OF_HOST_MEMORY;
    g->tokens = x[0];
    g->cols = x[1];
    g->rows = w[0];
    *out = (p3_ze_graph_handle_t)g;
    return ZE_RESULT_SUCCESS;
}

static ze_result_t ZE_APICALL g_destroy(p3_ze_graph_handle_t g) {
    free(g);
    return ZE_RESULT_SUCCESS;
}

static ze_result_t ZE_APICALL g_props2(p3_ze_graph_handle_t g, p3_ze_graph_properties_2 *p) {
    (void)g;
    if (p->stype != P3_ZE_STYPE_GRAPH_PROPERTIES_2) return ZE_RESULT_ERROR_INVALID_ARGUMENT;
    p->numGraphArgs = 4;
    p->initStageRequired = P3_ZE_GRAPH_STAGE_INITIALIZE;
    return ZE_RESULT_SUCCESS;
}

static ze_result_t ZE_APICALL g_arg_props(p3_ze_graph_handle_t g, uint32_t i,
                                          p3_ze_graph_argument_properties *p) {
    (void)g;
    static const char *const names[4] = {"x", "w", "scale", "y"};
    if (i >= 4) return ZE_RESULT_ERROR_INVALID_ARGUMENT;
    snprintf(p->name, sizeof p->name, "%s", names[i]);
    p->type = i < 3 ? P3_ZE_GRAPH_ARGUMENT_TYPE_INPUT : P3_ZE_GRAPH_ARGUMENT_TYPE_OUTPUT;
    return ZE_RESULT_SUCCESS;
}

static ze_result_t ZE_APICALL g_set_arg(p3_ze_graph_handle_t h, uint32_t i, const void *v) {
    mock_graph *g = (mock_graph *)h;
    if (i >= 4 || !v) return ZE_RESULT_ERROR_INVALID_ARGUMENT;
    g->args[i] = v;
    return ZE_RESULT_SUCCESS;
}

static ze_result_t ZE_APICALL g_initialize(p3_ze_graph_handle_t h) {
    ((mock_graph *)h)->initialized = 1;
    return ZE_RESULT_SUCCESS;
}

/* The matmul of the IR, run when the command list executes. */
static void execute(const void *arg) {
    const mock_exec *e = arg;
    const mock_graph *g = e->graph;
    const uint16_t *x = e->args[0], *scale = e->args[2];
    const uint8_t *w = e->args[1];
    uint16_t *y = (uint16_t *)(uintptr_t)e->args[3];
    long long groups = g->cols / 128;
    for (long long t = 0; t < g->tokens; t++)
        for (long long o = 0; o < g->rows; o++) {
            float acc = 0.0f;
            for (long long k = 0; k < g->cols; k++) {
                size_t idx = (size_t)(o * g->cols + k);
                int q = (w[idx / 2] >> (idx % 2 ? 4 : 0)) & 0xF;
                float wv =
                    half_to_float(scale[o * groups + k / 128]) * (float)(q >= 8 ? q - 16 : q);
                acc += half_to_float(x[t * g->cols + k]) * wv;
            }
            y[t * g->rows + o] = float_to_half(acc);
        }
}

static ze_result_t ZE_APICALL g_execute(ze_command_list_handle_t l, p3_ze_graph_handle_t h,
                                        void *profiling, ze_event_handle_t signal, uint32_t n_wait,
                                        ze_event_handle_t *wait) {
    (void)wait;
    mock_graph *g = (mock_graph *)h;
    if (profiling || signal || n_wait) return ZE_RESULT_ERROR_UNSUPPORTED_FEATURE;
    if (!g->initialized) return ZE_RESULT_ERROR_UNINITIALIZED;
    for (int i = 0; i < 4; i++)
        if (!g->args[i]) return ZE_RESULT_ERROR_INVALID_ARGUMENT;
    mock_exec e = {g, {g->args[0], g->args[1], g->args[2], g->args[3]}};
    return l0drv_append_host(l, execute, &e, sizeof e);
}

static ze_result_t ZE_APICALL g_device_props(ze_device_handle_t d,
                                             p3_ze_device_graph_properties *p) {
    (void)d;
    if (p->stype != P3_ZE_STYPE_DEVICE_GRAPH_PROPERTIES) return ZE_RESULT_ERROR_INVALID_ARGUMENT;
    p->graphExtensionVersion = ZE_MAKE_VERSION(1, 8);
    p->compilerMajor = MOCK_COMPILER_MAJOR;
    p->compilerMinor = MOCK_COMPILER_MINOR;
    p->graphFormatsSupported = P3_ZE_GRAPH_FORMAT_NGRAPH_LITE | 0x1;
    p->maxOVOpsetVersionSupported = 11;
    return ZE_RESULT_SUCCESS;
}

static ze_result_t ZE_APICALL g_build_log(p3_ze_graph_handle_t g, uint32_t *size, char *buf) {
    (void)g;
    uint32_t n = (uint32_t)strlen(last_log) + 1;
    if (buf) memcpy(buf, last_log, *size < n ? *size : n);
    *size = n;
    return ZE_RESULT_SUCCESS;
}

static p3_ze_graph_table table = {
    .pfnDestroy = g_destroy,
    .pfnGetArgumentProperties = g_arg_props,
    .pfnSetArgumentValue = g_set_arg,
    .pfnAppendGraphExecute = g_execute,
    .pfnDeviceGetGraphProperties = g_device_props,
    .pfnBuildLogGetString = g_build_log,
    .pfnCreate2 = g_create2,
    .pfnGetProperties2 = g_props2,
    .pfnGraphInitialize = g_initialize,
};

static const char ext_name[] = "ZE_extension_graph_1_8";

ze_result_t l0graph_ext_props(uint32_t *count, ze_driver_extension_properties_t *props) {
    if (!count) return ZE_RESULT_ERROR_INVALID_NULL_POINTER;
    if (!enabled()) {
        *count = 0;
        return ZE_RESULT_SUCCESS;
    }
    if (props && *count >= 1) {
        snprintf(props[0].name, sizeof props[0].name, "%s", ext_name);
        props[0].version = ZE_MAKE_VERSION(1, 8);
    }
    *count = 1;
    return ZE_RESULT_SUCCESS;
}

ze_result_t l0graph_ext_address(const char *name, void **out) {
    if (!enabled() || !name || strcmp(name, ext_name) != 0) return ZE_RESULT_ERROR_INVALID_ARGUMENT;
    *out = &table;
    return ZE_RESULT_SUCCESS;
}
