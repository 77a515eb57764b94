/* npu_ir.c: emits the OpenVINO IR (version 11, opset1 operations only, so any NPU compiler-in-
 * driver accepts it) of one INT4-g128 matmul, repacks phi3c's INT4 blocks into OpenVINO's 4-bit
 * layout, and packs IR into the NGRAPH_LITE buffer of the Level Zero graph extension. */
#include "npu_ir.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ---- a growing text buffer; the first failure sticks and is reported once at the end */
typedef struct strbuf {
    char *data;
    size_t len, cap;
    bool failed;
} strbuf;

static void sb_printf(strbuf *sb, const char *fmt, ...) P3_PRINTF(2, 3);
static void sb_printf(strbuf *sb, const char *fmt, ...) {
    if (sb->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = sb->cap - sb->len;
        int n = vsnprintf(sb->data ? sb->data + sb->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            sb->failed = true;
            return;
        }
        if ((size_t)n < room) {
            sb->len += (size_t)n;
            return;
        }
        size_t cap = sb->cap ? sb->cap * 2 : 4096;
        while (cap - sb->len <= (size_t)n) cap *= 2;
        char *grown = p3_realloc(sb->data, cap);
        if (!grown) {
            sb->failed = true;
            return;
        }
        sb->data = grown;
        sb->cap = cap;
    }
}

/* ---- tensor descriptions */
typedef enum elem { E_F16 = 0, E_F32, E_I4, E_U4, E_I64 } elem;

static const char *elem_name(elem e) { /* the IR's element_type attribute */
    static const char *const names[] = {"f16", "f32", "i4", "u4", "i64"};
    return names[e];
}

static const char *elem_precision(elem e) { /* the IR's port precision attribute */
    static const char *const names[] = {"FP16", "FP32", "I4", "U4", "I64"};
    return names[e];
}

typedef struct tensor {
    elem type;
    int rank;
    int64_t dims[3];
} tensor;

static void sb_dims(strbuf *sb, const tensor *t) {
    for (int i = 0; i < t->rank; i++) sb_printf(sb, "<dim>%lld</dim>", (long long)t->dims[i]);
}

static void sb_shape_attr(strbuf *sb, const tensor *t) {
    for (int i = 0; i < t->rank; i++) sb_printf(sb, "%s%lld", i ? "," : "", (long long)t->dims[i]);
}

static void sb_port(strbuf *sb, int id, const tensor *t, const char *names) {
    sb_printf(sb, "<port id=\"%d\" precision=\"%s\"", id, elem_precision(t->type));
    if (names) sb_printf(sb, " names=\"%s\"", names);
    sb_printf(sb, ">");
    sb_dims(sb, t);
    sb_printf(sb, "</port>");
}

/* ---- the graph under construction: layers are written as they are added, edges collected */
#define MAX_EDGES 16
typedef struct graph {
    strbuf xml;
    int n_layers;
    int n_edges;
    int edges[MAX_EDGES][4]; /* from layer, from port, to layer, to port */
    uint8_t *bin;
    size_t bin_size;
} graph;

/* A produced value: the layer and output port it comes from, and its tensor. */
typedef struct value {
    int layer, port;
    tensor t;
} value;

static value add_parameter(graph *g, const char *name, tensor t) {
    int id = g->n_layers++;
    sb_printf(&g->xml, "<layer id=\"%d\" name=\"%s\" type=\"Parameter\" version=\"opset1\">", id,
              name);
    sb_printf(&g->xml, "<data shape=\"");
    sb_shape_attr(&g->xml, &t);
    sb_printf(&g->xml, "\" element_type=\"%s\"/><output>", elem_name(t.type));
    sb_port(&g->xml, 0, &t, name);
    sb_printf(&g->xml, "</output></layer>\n");
    return (value){id, 0, t};
}

/* A Const whose bytes sit at `offset` in the .bin (already written there by the caller). */
static value add_const(graph *g, const char *name, tensor t, size_t offset, size_t size) {
    int id = g->n_layers++;
    sb_printf(&g->xml, "<layer id=\"%d\" name=\"%s\" type=\"Const\" version=\"opset1\">", id, name);
    sb_printf(&g->xml, "<data element_type=\"%s\" shape=\"", elem_name(t.type));
    sb_shape_attr(&g->xml, &t);
    sb_printf(&g->xml, "\" offset=\"%zu\" size=\"%zu\"/><output>", offset, size);
    sb_port(&g->xml, 0, &t, NULL);
    sb_printf(&g->xml, "</output></layer>\n");
    return (value){id, 0, t};
}

static void add_edge(graph *g, value from, int to_layer, int to_port) {
    if (g->n_edges == MAX_EDGES) {
        g->xml.failed = true;
        return;
    }
    int *e = g->edges[g->n_edges++];
    e[0] = from.layer;
    e[1] = from.port;
    e[2] = to_layer;
    e[3] = to_port;
}

/* An operation with up to two inputs and one output (port ids: inputs 0.., output next); the
 * output may carry tensor names (the NPU build flags name the graph's output "y"). */
static value add_op(graph *g, const char *name, const char *type, const char *data, value a,
                    const value *b, tensor out, const char *out_names) {
    int id = g->n_layers++;
    int n_in = b ? 2 : 1;
    sb_printf(&g->xml, "<layer id=\"%d\" name=\"%s\" type=\"%s\" version=\"opset1\">", id, name,
              type);
    if (data) sb_printf(&g->xml, "<data %s/>", data);
    sb_printf(&g->xml, "<input>");
    sb_port(&g->xml, 0, &a.t, NULL);
    if (b) sb_port(&g->xml, 1, &b->t, NULL);
    sb_printf(&g->xml, "</input><output>");
    sb_port(&g->xml, n_in, &out, out_names);
    sb_printf(&g->xml, "</output></layer>\n");
    add_edge(g, a, id, 0);
    if (b) add_edge(g, *b, id, 1);
    return (value){id, n_in, out};
}

static void add_result(graph *g, const char *name, value v) {
    int id = g->n_layers++;
    sb_printf(&g->xml, "<layer id=\"%d\" name=\"%s\" type=\"Result\" version=\"opset1\"><input>",
              id, name);
    sb_port(&g->xml, 0, &v.t, NULL);
    sb_printf(&g->xml, "</input></layer>\n");
    add_edge(g, v, id, 0);
}

size_t p3_npu_weight_bytes(int64_t rows, int64_t cols) {
    return (size_t)rows * (size_t)cols / 2;
}

static p3_status check_spec(const p3_npu_matmul_spec *s, size_t *w_bytes, size_t *s_bytes,
                            p3_error *err) {
    if (s->rows <= 0 || s->cols <= 0 || s->tokens <= 0 || s->cols % P3_QK != 0)
        return p3_fail(err, PHI3C_ERR_INVALID_ARG,
                       "npu IR: matmul %lldx%lld with %lld tokens (K must be a positive multiple "
                       "of 128)",
                       (long long)s->rows, (long long)s->cols, (long long)s->tokens);
    size_t n;
    if (!p3_mul_size((size_t)s->rows, (size_t)s->cols, &n) || s->rows > INT32_MAX ||
        s->cols > INT32_MAX || s->tokens > INT32_MAX ||
        !p3_mul_size((size_t)s->rows, (size_t)(s->cols / P3_QK) * sizeof(uint16_t), s_bytes))
        return p3_fail(err, PHI3C_ERR_INVALID_ARG, "npu IR: matmul %lldx%lld is too large",
                       (long long)s->rows, (long long)s->cols);
    *w_bytes = n / 2;
    if (!s->weights_as_inputs && (!s->weights || !s->scales))
        return p3_fail(err, PHI3C_ERR_INVALID_ARG,
                       "npu IR: constant weights need the weight and scale data");
    if ((unsigned)s->act > P3_NPU_ACT_F32 || (unsigned)s->wtype > P3_NPU_W_U4)
        return p3_fail(err, PHI3C_ERR_INVALID_ARG, "npu IR: unknown activation or weight type");
    return PHI3C_OK;
}

/* The .bin: [weights][scales] for Constants, then the Reshape target (i64 [2]) at an 8-byte
 * boundary, then the U4 zero point (one element of the activation type). */
typedef struct bin_layout {
    size_t weights, scales, shape, zero, size;
} bin_layout;

static bin_layout plan_bin(const p3_npu_matmul_spec *s, size_t w_bytes, size_t s_bytes) {
    bin_layout l = {0};
    size_t at = 0;
    if (!s->weights_as_inputs) {
        l.weights = 0;
        l.scales = w_bytes;
        at = w_bytes + s_bytes;
    }
    l.shape = (at + 7) & ~(size_t)7;
    l.zero = l.shape + 2 * sizeof(int64_t);
    l.size = l.zero + (s->wtype == P3_NPU_W_U4 ? sizeof(float) : 0);
    return l;
}

static void fill_bin(const p3_npu_matmul_spec *s, const bin_layout *l, size_t w_bytes,
                     size_t s_bytes, uint8_t *bin) {
    if (!s->weights_as_inputs) {
        memcpy(bin + l->weights, s->weights, w_bytes);
        memcpy(bin + l->scales, s->scales, s_bytes);
    }
    int64_t shape[2] = {s->rows, s->cols};
    memcpy(bin + l->shape, shape, sizeof shape);
    if (s->wtype == P3_NPU_W_U4) {
        if (s->act == P3_NPU_ACT_F32) {
            float z = 8.0f;
            memcpy(bin + l->zero, &z, sizeof z);
        } else {
            uint16_t z = p3_f32_to_f16(8.0f);
            memcpy(bin + l->zero, &z, sizeof z);
        }
    }
}

/* x [T,K] ─────────────────────────────────────────────┐
 * w4 [O,G,128] → Convert → (U4: Subtract 8) → Multiply → Reshape [O,K] → MatMul(x, W^T) → y
 * scale [O,G,1] → (f32: Convert) ─────────────┘                                                */
static void build_graph(graph *g, const p3_npu_matmul_spec *s, const bin_layout *l, size_t w_bytes,
                        size_t s_bytes) {
    int64_t T = s->tokens, K = s->cols, O = s->rows, G = K / P3_QK;
    elem act = s->act == P3_NPU_ACT_F32 ? E_F32 : E_F16;
    tensor tx = {act, 2, {T, K}}, tw = {s->wtype == P3_NPU_W_U4 ? E_U4 : E_I4, 3, {O, G, P3_QK}};
    tensor ts = {E_F16, 3, {O, G, 1}}, twf = {act, 3, {O, G, P3_QK}};
    char convert[64];
    snprintf(convert, sizeof convert, "destination_type=\"%s\"", elem_name(act));

    sb_printf(&g->xml, "<?xml version=\"1.0\"?>\n<net name=\"p3_matmul_i4g128\" version=\"11\">\n"
                       "<layers>\n");
    value x = add_parameter(g, "x", tx);
    value w = s->weights_as_inputs ? add_parameter(g, "w", tw)
                                   : add_const(g, "w", tw, l->weights, w_bytes);
    value sc = s->weights_as_inputs ? add_parameter(g, "scale", ts)
                                    : add_const(g, "scale", ts, l->scales, s_bytes);
    value wf = add_op(g, "w_dq", "Convert", convert, w, NULL, twf, NULL);
    if (s->wtype == P3_NPU_W_U4) {
        tensor tz = {act, 1, {1}};
        value z = add_const(g, "zero_point", tz, l->zero, act == E_F32 ? 4 : 2);
        wf = add_op(g, "w_centered", "Subtract", "auto_broadcast=\"numpy\"", wf, &z, twf, NULL);
    }
    if (act == E_F32) {
        tensor tsf = {E_F32, 3, {O, G, 1}};
        sc = add_op(g, "scale_f32", "Convert", convert, sc, NULL, tsf, NULL);
    }
    value ws = add_op(g, "w_scaled", "Multiply", "auto_broadcast=\"numpy\"", wf, &sc, twf, NULL);
    value shape = add_const(g, "w_shape", (tensor){E_I64, 1, {2}}, l->shape, 16);
    value w2 = add_op(g, "w_2d", "Reshape", "special_zero=\"false\"", ws, &shape,
                      (tensor){act, 2, {O, K}}, NULL);
    value y = add_op(g, "y_mm", "MatMul", "transpose_a=\"false\" transpose_b=\"true\"", x, &w2,
                     (tensor){act, 2, {T, O}}, "y");
    add_result(g, "y", y);
    sb_printf(&g->xml, "</layers>\n<edges>\n");
    for (int i = 0; i < g->n_edges; i++)
        sb_printf(&g->xml,
                  "<edge from-layer=\"%d\" from-port=\"%d\" to-layer=\"%d\" to-port=\"%d\"/>\n",
                  g->edges[i][0], g->edges[i][1], g->edges[i][2], g->edges[i][3]);
    sb_printf(&g->xml, "</edges>\n</net>\n");
}

p3_status p3_npu_ir_emit(const p3_npu_matmul_spec *spec, p3_npu_ir *out, p3_error *err) {
    memset(out, 0, sizeof *out);
    size_t w_bytes = 0, s_bytes = 0;
    p3_status st = check_spec(spec, &w_bytes, &s_bytes, err);
    if (st != PHI3C_OK) return st;
    bin_layout l = plan_bin(spec, w_bytes, s_bytes);
    graph g = {0};
    g.bin = p3_malloc(l.size);
    if (!g.bin) return p3_fail(err, PHI3C_ERR_NOMEM, "npu IR: out of memory for the .bin");
    fill_bin(spec, &l, w_bytes, s_bytes, g.bin);
    build_graph(&g, spec, &l, w_bytes, s_bytes);
    if (g.xml.failed) {
        p3_free(g.xml.data);
        p3_free(g.bin);
        return p3_fail(err, PHI3C_ERR_NOMEM, "npu IR: out of memory for the XML");
    }
    out->xml = g.xml.data;
    out->xml_size = g.xml.len;
    out->bin = g.bin;
    out->bin_size = l.size;
    return PHI3C_OK;
}

void p3_npu_ir_free(p3_npu_ir *ir) {
    if (!ir) return;
    p3_free(ir->xml);
    p3_free(ir->bin);
    memset(ir, 0, sizeof *ir);
}

void p3_npu_pack_i4s(const p3_block_i4s *blocks, int64_t rows, int64_t cols, p3_npu_wtype wtype,
                     uint8_t *weights, uint16_t *scales) {
    size_t n_blocks = (size_t)rows * (size_t)(cols / P3_QK);
    uint8_t offset = wtype == P3_NPU_W_I4 ? 8 : 0;
    for (size_t b = 0; b < n_blocks; b++) {
        const p3_block_i4s *blk = &blocks[b];
        uint8_t q[P3_QK];
        for (int j = 0; j < P3_QK / 2; j++) { /* phi3c: q[j] low nibble, q[j + 64] high */
            q[j] = blk->qs[j] & 0x0F;
            q[j + P3_QK / 2] = blk->qs[j] >> 4;
        }
        uint8_t *dst = weights + b * (P3_QK / 2);
        for (int j = 0; j < P3_QK / 2; j++) { /* OpenVINO: even element in the low nibble */
            uint8_t lo = (uint8_t)(q[2 * j] - offset) & 0x0F;
            uint8_t hi = (uint8_t)(q[2 * j + 1] - offset) & 0x0F;
            dst[j] = (uint8_t)(lo | (hi << 4));
        }
        scales[b] = blk->d;
    }
}

static uint8_t *put_le(uint8_t *p, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; i++) p[i] = (uint8_t)(v >> (8 * i));
    return p + bytes;
}

p3_status p3_npu_ngraph_lite(uint16_t major, uint16_t minor, const p3_npu_ir *ir, uint8_t **out,
                             size_t *out_size, p3_error *err) {
    *out = NULL;
    *out_size = 0;
    size_t size = 2 + 2 + 4 + 8 + 8;
    if (!p3_add_size(size, ir->xml_size, &size) || !p3_add_size(size, ir->bin_size, &size))
        return p3_fail(err, PHI3C_ERR_INVALID_ARG, "npu: NGRAPH_LITE buffer too large");
    uint8_t *buf = p3_malloc(size), *p = buf;
    if (!buf) return p3_fail(err, PHI3C_ERR_NOMEM, "npu: out of memory for the NGRAPH_LITE buffer");
    p = put_le(p, major, 2);
    p = put_le(p, minor, 2);
    p = put_le(p, 2, 4); /* parts: the XML and the weights */
    p = put_le(p, ir->xml_size, 8);
    if (ir->xml_size) memcpy(p, ir->xml, ir->xml_size);
    p += ir->xml_size;
    p = put_le(p, ir->bin_size, 8);
    if (ir->bin_size) memcpy(p, ir->bin, ir->bin_size);
    *out = buf;
    *out_size = size;
    return PHI3C_OK;
}
