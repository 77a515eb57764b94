/* test_engine.c: the forward pass against transformers' logits (tests/fixtures), for every
 * variant, from the safetensors folders and the GGUFs, as one prefill and token by token, across
 * the LongRoPE switch; and a full-size Phi-3-mini shape dry run on synthetic INT4 weights. */
#include "engine.h"
#include "fixture_util.h"
#include "harness.h"
#include "int4.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct fixture_seq {
    int32_t *ids;
    int n;
    float *logits; /* [n, vocab] from transformers */
    double max_logit;
} fixture_seq;

static bool load_seq(p3_test_ctx *t, const char *variant, const char *prec, int seq, int vocab,
                     fixture_seq *out) {
    char path[256];
    snprintf(path, sizeof path, "tests/fixtures/%s/seq%d.ids", variant, seq);
    out->ids = p3_fixture_read_ids(t, path, &out->n);
    snprintf(path, sizeof path, "tests/fixtures/%s/%s.seq%d.logits", variant, prec, seq);
    size_t size = 0;
    out->logits = p3_test_read_file(t, path, &size);
    if (!out->ids || !out->logits) return false;
    if (!CHECK_MSG(size == (size_t)out->n * (size_t)vocab * sizeof(float),
                   "%s: %zu bytes for %d rows of %d", path, size, out->n, vocab))
        return false;
    out->max_logit = p3_max_abs(out->logits, (size_t)out->n * (size_t)vocab);
    return true;
}

static void free_seq(fixture_seq *s) {
    p3_free(s->ids);
    p3_free(s->logits);
}

/* The largest |phi3c - oracle| over rows [r0, r1) of [*, vocab] arrays. */
static double rows_error(const float *a, const float *ref, int r0, int r1, int vocab) {
    return p3_max_abs_diff(a + (size_t)r0 * (size_t)vocab, ref + (size_t)r0 * (size_t)vocab,
                           (size_t)(r1 - r0) * (size_t)vocab);
}

/* Prefill of the whole sequence (in chunks of n_batch) against the oracle rows. */
static double prefill_error(p3_test_ctx *t, const p3_model *m, const fixture_seq *q, int n_batch) {
    int vocab = m->cfg.vocab_size;
    p3_session *s = p3_fixture_session(t, m, q->n, n_batch, true);
    float *logits = p3_malloc((size_t)q->n * (size_t)vocab * sizeof(float));
    p3_error err = {0};
    double e = INFINITY;
    if (s && CHECK_OK(p3_session_feed(s, q->ids, q->n, logits, &err), &err))
        e = rows_error(logits, q->logits, 0, q->n, vocab);
    p3_free(logits);
    p3_session_free(s);
    return e;
}

/* Token-by-token decoding: row p against the oracle's row p for the positions where the oracle's
 * full forward used the same RoPE factors as a forward over ids[0..p] (all rows without LongRoPE;
 * with it, rows whose length p+1 is on the same side of original_max as the whole sequence).
 * Other rows are compared with phi3c's own prefill of ids[0..p]. */
static double decode_error(p3_test_ctx *t, const p3_model *m, const fixture_seq *q) {
    int vocab = m->cfg.vocab_size, orig = m->cfg.original_max_position_embeddings;
    bool longrope = m->cfg.rope.type == P3_ROPE_LONGROPE;
    p3_session *s = p3_fixture_session(t, m, q->n, 8, false);
    p3_session *pre = p3_fixture_session(t, m, q->n, 8, false);
    p3_error err = {0};
    double worst = 0.0;
    for (int p = 0; s && pre && p < q->n; p++) {
        if (!CHECK_OK(p3_session_feed(s, &q->ids[p], 1, NULL, &err), &err)) return INFINITY;
        const float *want = q->logits + (size_t)p * (size_t)vocab;
        bool same_factors = !longrope || (p + 1 > orig) == (q->n > orig);
        if (!same_factors) {
            p3_session_reset(pre);
            if (!CHECK_OK(p3_session_feed(pre, q->ids, p + 1, NULL, &err), &err)) return INFINITY;
            want = pre->host_logits;
        }
        worst = fmax(worst, p3_max_abs_diff(s->host_logits, want, (size_t)vocab));
    }
    if (s && longrope && q->n > orig) CHECK_EQ_INT(s->n_reprefills, 1);
    p3_session_free(s);
    p3_session_free(pre);
    return worst;
}

/* Loads one format of a variant and checks every sequence; bound is relative to max|logit|. */
static void check_format_on(p3_test_ctx *t, const char *backend, const char *variant,
                            const char *file, const char *prec, int n_seqs, double rel_bound) {
    char path[256];
    snprintf(path, sizeof path, "tests/fixtures/%s/%s", variant, file);
    p3_load_options lo;
    p3_load_options_init(&lo);
    lo.n_threads = 2;
    lo.backend = backend;
    p3_model *m = NULL;
    p3_error err = {0};
    if (!CHECK_OK(p3_model_load(path, &lo, &m, &err), &err)) return;
    for (int seq = 0; seq < n_seqs; seq++) {
        fixture_seq q = {0};
        if (load_seq(t, variant, prec, seq, m->cfg.vocab_size, &q)) {
            double bound = rel_bound * q.max_logit;
            double e_full = prefill_error(t, m, &q, 256);
            double e_chunked = prefill_error(t, m, &q, 5); /* chunks crossing the window */
            double e_decode = decode_error(t, m, &q);
            printf("    %s%s%-8s %-15s seq%d: max|phi3c - transformers| prefill %.3g (%.2e of "
                   "max|logit| %.3g), chunked %.3g, decode %.3g\n",
                   backend ? backend : "", backend ? " " : "", variant, file, seq, e_full,
                   e_full / q.max_logit, q.max_logit, e_chunked, e_decode);
            CHECK_MSG(e_full <= bound, "%s seq%d prefill error %g > %g", path, seq, e_full, bound);
            CHECK_MSG(e_chunked <= bound, "%s seq%d chunked error %g > %g", path, seq, e_chunked,
                      bound);
            CHECK_MSG(e_decode <= bound, "%s seq%d decode error %g > %g", path, seq, e_decode,
                      bound);
        }
        free_seq(&q);
    }
    p3_model_free(m);
}

static void check_format(p3_test_ctx *t, const char *variant, const char *file, const char *prec,
                         int n_seqs, double rel_bound) {
    check_format_on(t, NULL, variant, file, prec, n_seqs, rel_bound);
}

#define F32_BOUND  1e-4
#define BF16_BOUND 2e-3

P3_TEST(engine_mini4k_logits_match_transformers) {
    check_format(t, "mini4k", "hf-f32", "f32", 1, F32_BOUND);
    check_format(t, "mini4k", "model-f32.gguf", "f32", 1, F32_BOUND);
    check_format(t, "mini4k", "hf-bf16", "bf16", 1, BF16_BOUND);
    check_format(t, "mini4k", "model-bf16.gguf", "bf16", 1, BF16_BOUND);
}

P3_TEST(engine_longrope_logits_match_transformers_both_sides_of_the_switch) {
    check_format(t, "longrope", "hf-bf16", "bf16", 2, BF16_BOUND);
    check_format(t, "longrope", "model-bf16.gguf", "bf16", 2, BF16_BOUND);
}

P3_TEST(engine_medium_gqa_logits_match_transformers) {
    check_format(t, "medium", "hf-bf16", "bf16", 1, BF16_BOUND);
    check_format(t, "medium", "model-bf16.gguf", "bf16", 1, BF16_BOUND);
}

P3_TEST(engine_phi4mini_partial_rotary_tied_logits_match_transformers) {
    check_format(t, "phi4mini", "hf-bf16", "bf16", 2, BF16_BOUND);
    check_format(t, "phi4mini", "model-bf16.gguf", "bf16", 2, BF16_BOUND);
}

/* The engine never knows which backend runs: every available one must give the same logits. */
P3_TEST_SLOW(engine_every_available_backend_matches_transformers) {
    int tested = 0;
    for (size_t i = 0; i < p3_backend_count(); i++) {
        p3_backend_info info;
        p3_backend_info_at(i, &info);
        if (!info.available) continue;
        printf("    backend %s (%s)\n", info.name, info.devices);
        check_format_on(t, info.name, "mini4k", "model-f32.gguf", "f32", 1, F32_BOUND);
        check_format_on(t, info.name, "longrope", "hf-bf16", "bf16", 2, BF16_BOUND);
        check_format_on(t, info.name, "medium", "hf-bf16", "bf16", 1, BF16_BOUND);
        check_format_on(t, info.name, "phi4mini", "model-bf16.gguf", "bf16", 2, BF16_BOUND);
        tested++;
    }
    CHECK(tested >= 1);
}

P3_TEST(engine_context_full_is_an_error_that_changes_nothing) {
    p3_model *m = NULL;
    p3_error err = {0};
    if (!CHECK_OK(p3_model_load("tests/fixtures/mini4k/hf-bf16", NULL, &m, &err), &err)) return;
    p3_session *s = p3_fixture_session(t, m, 4, 0, false);
    int32_t ids[5] = {1, 2, 3, 4, 5};
    if (s) {
        CHECK_OK(p3_session_feed(s, ids, 3, NULL, &err), &err);
        CHECK_STATUS(p3_session_feed(s, ids, 2, NULL, &err), PHI3C_ERR_CONTEXT_FULL);
        CHECK(strstr(err.message, "context") != NULL);
        CHECK_EQ_INT(s->n_past, 3);
        CHECK_OK(p3_session_feed(s, ids, 1, NULL, &err), &err);
        int32_t bad = 100000;
        p3_session_reset(s);
        CHECK_STATUS(p3_session_feed(s, &bad, 1, NULL, &err), PHI3C_ERR_INVALID_ARG);
    }
    p3_session_free(s);
    p3_model_free(m);
}

#ifdef P3_FAULT_INJECTION
/* Every allocation of load, session creation and a forward pass failing in turn: each gives a
 * clean error with a message (the sanitizer build also proves nothing leaks or crashes). */
P3_TEST(engine_allocation_failures_are_clean_errors) {
    const int32_t ids[5] = {1, 2, 3, 4, 5};
    bool succeeded = false;
    for (long n = 0; n < 5000 && !succeeded; n++) {
        p3_model *m = NULL;
        p3_session *s = NULL;
        p3_error err = {0};
        p3_load_options lo;
        p3_load_options_init(&lo);
        lo.quant = n % 2 ? P3_WQ_INT4_SYM : P3_WQ_NONE;
        lo.n_threads = 1;
        p3_alloc_fail_after(n);
        p3_status st = p3_model_load("tests/fixtures/medium/hf-bf16", &lo, &m, &err);
        if (st == PHI3C_OK) st = p3_session_create(m, NULL, &s, &err);
        if (st == PHI3C_OK) st = p3_session_feed(s, ids, 5, NULL, &err);
        p3_alloc_fail_after(-1);
        p3_session_free(s);
        p3_model_free(m);
        succeeded = st == PHI3C_OK && lo.quant == P3_WQ_INT4_SYM;
        if (st != PHI3C_OK &&
            !CHECK_MSG(err.message[0] != '\0', "failure %ld: %s without a message", n,
                       phi3c_strerror(st)))
            break;
    }
    CHECK_MSG(succeeded, "no run succeeded within 5000 allocations");
}
#endif

/* ---- INT4 wiring: quantizing at load must equal the f32 path run on the dequantized weights. */

static bool is_linear(const p3_tensor *tn) {
    return tn->n_dims == 2 && strcmp(tn->hf_name, "model.embed_tokens.weight") != 0;
}

/* A copy of src whose linear weights are replaced by f32 dequantize(quantize(w)). */
static bool dequantized_copy(p3_test_ctx *t, const p3_model_source *src, p3_dtype fmt,
                             p3_model_source *out, float **blobs) {
    *out = *src;
    out->tensors = p3_calloc(src->n_tensors, sizeof *out->tensors);
    p3_error err = {0};
    for (size_t i = 0; i < src->n_tensors; i++) {
        p3_tensor *tn = &out->tensors[i];
        *tn = src->tensors[i];
        blobs[i] = NULL;
        if (!is_linear(tn)) continue;
        int64_t rows = tn->shape[0], cols = tn->shape[1];
        float *w = p3_malloc((size_t)(rows * cols) * sizeof(float));
        void *blocks = p3_malloc((size_t)p3_groups(cols) * sizeof(p3_block_i4a));
        for (int64_t r = 0; r < rows; r++) {
            float *row = w + r * cols;
            if (!CHECK_OK(p3_tensor_to_f32(tn, (size_t)(r * cols), (size_t)cols, row, &err), &err))
                return false;
            if (fmt == P3_DT_I4G128S) {
                p3_quantize_row_i4s(row, cols, blocks, P3_QUANT_RTN);
                p3_dequantize_row_i4s(blocks, cols, row);
            } else {
                p3_quantize_row_i4a(row, cols, blocks, P3_QUANT_RTN);
                p3_dequantize_row_i4a(blocks, cols, row);
            }
        }
        p3_free(blocks);
        blobs[i] = w;
        tn->dtype = P3_DT_F32;
        tn->data = w;
        tn->nbytes = (size_t)(rows * cols) * sizeof(float);
    }
    return true;
}

static void check_int4_wiring(p3_test_ctx *t, const char *variant, p3_weight_quant q) {
    char path[256];
    snprintf(path, sizeof path, "tests/fixtures/%s/hf-bf16", variant);
    p3_model_source *src = NULL, copy;
    p3_error err = {0};
    if (!CHECK_OK(p3_source_open(path, &src, &err), &err)) return;
    float **blobs = p3_calloc(src->n_tensors, sizeof *blobs);
    p3_dtype fmt = q == P3_WQ_INT4_ASYM ? P3_DT_I4G128A : P3_DT_I4G128S;
    p3_model *quantized = NULL, *reference = NULL;
    p3_load_options lo;
    p3_load_options_init(&lo);
    lo.quant = q;
    lo.act = P3_ACT_F32;
    lo.act_given = true;
    if (dequantized_copy(t, src, fmt, &copy, blobs) &&
        CHECK_OK(p3_model_from_source(src, &lo, &quantized, &err), &err) &&
        CHECK_OK(p3_model_from_source(&copy, NULL, &reference, &err), &err)) {
        fixture_seq s = {0};
        CHECK_EQ_INT(quantized->layers[0].qkv->dtype, fmt);
        CHECK_EQ_INT(reference->layers[0].qkv->dtype, P3_DT_F32);
        if (load_seq(t, variant, "bf16", 0, reference->cfg.vocab_size, &s)) {
            int vocab = reference->cfg.vocab_size;
            p3_session_options so;
            p3_session_options_init(&so);
            so.kv = P3_KV_F32;
            so.kv_given = true;
            so.all_logits = true;
            p3_session *a = NULL, *b = NULL;
            float *la = p3_malloc((size_t)s.n * (size_t)vocab * sizeof(float));
            float *lb = p3_malloc((size_t)s.n * (size_t)vocab * sizeof(float));
            if (CHECK_OK(p3_session_create(quantized, &so, &a, &err), &err) &&
                CHECK_OK(p3_session_create(reference, &so, &b, &err), &err) &&
                CHECK_OK(p3_session_feed(a, s.ids, s.n, la, &err), &err) &&
                CHECK_OK(p3_session_feed(b, s.ids, s.n, lb, &err), &err)) {
                size_t n = (size_t)s.n * (size_t)vocab;
                double e = p3_max_abs_diff(la, lb, n), bound = 1e-4 * p3_max_abs(lb, n);
                double vs_oracle = p3_max_abs_diff(la, s.logits, n);
                printf("    %-8s %s w4a32: max|int4 - f32 on dequantized weights| %.3g "
                       "(vs transformers bf16: %.3g, max|logit| %.3g)\n",
                       variant, p3_weight_quant_name(q), e, vs_oracle, s.max_logit);
                CHECK_MSG(e <= bound, "%s: int4 path differs from dequantized f32 by %g > %g",
                          variant, e, bound);
            }
            p3_free(la);
            p3_free(lb);
            p3_session_free(a);
            p3_session_free(b);
        }
        free_seq(&s);
    }
    p3_model_free(quantized);
    p3_model_free(reference);
    for (size_t i = 0; i < src->n_tensors; i++) p3_free(blobs[i]);
    p3_free(blobs);
    if (copy.tensors != src->tensors) p3_free(copy.tensors);
    p3_source_close(src);
}

P3_TEST(engine_int4_load_quantization_equals_f32_on_dequantized_weights) {
    check_int4_wiring(t, "mini4k", P3_WQ_INT4_SYM);
    check_int4_wiring(t, "medium", P3_WQ_INT4_ASYM);  /* partial groups: 160 and 200 columns */
    check_int4_wiring(t, "phi4mini", P3_WQ_INT4_SYM); /* tied embedding stays unquantized */
}

/* ---- Lower-precision options: measured against transformers, bounds with a margin. */

/* max|logits - oracle| / max|oracle| of a prefill of mini4k seq0 with these options. */
static double relative_error(p3_test_ctx *t, const p3_load_options *lo, p3_kv_dtype kv,
                             const float *versus) {
    p3_model *m = NULL;
    p3_error err = {0};
    fixture_seq q = {0};
    double e = INFINITY;
    if (CHECK_OK(p3_model_load("tests/fixtures/mini4k/hf-f32", lo, &m, &err), &err) &&
        load_seq(t, "mini4k", "f32", 0, m->cfg.vocab_size, &q)) {
        p3_session_options so;
        p3_session_options_init(&so);
        so.kv = kv;
        so.kv_given = true;
        so.all_logits = true;
        p3_session *s = NULL;
        size_t n = (size_t)q.n * (size_t)m->cfg.vocab_size;
        float *got = p3_malloc(n * sizeof(float));
        if (CHECK_OK(p3_session_create(m, &so, &s, &err), &err) &&
            CHECK_OK(p3_session_feed(s, q.ids, q.n, got, &err), &err)) {
            const float *ref = versus ? versus : q.logits;
            e = p3_max_abs_diff(got, ref, n) / p3_max_abs(ref, n);
        }
        p3_session_free(s);
        p3_free(got);
    }
    free_seq(&q);
    p3_model_free(m);
    return e;
}

P3_TEST(engine_kv_f16_q8_and_int4_activation_modes_stay_close) {
    p3_load_options lo;
    p3_load_options_init(&lo);
    double f16 = relative_error(t, &lo, P3_KV_F16, NULL);
    double q8 = relative_error(t, &lo, P3_KV_Q8, NULL);
    printf("    mini4k f32 weights: KV f16 %.2e, KV q8 %.2e of max|logit| from transformers\n", f16,
           q8);
    CHECK_MSG(f16 <= 2e-3, "KV f16 error %g", f16);
    CHECK_MSG(q8 <= 3e-2, "KV q8 error %g", q8);
    CHECK(q8 > 0 && f16 > 0); /* the cache type really changed */
    lo.quant = P3_WQ_INT4_SYM;
    lo.act = P3_ACT_F32;
    lo.act_given = true;
    double w4a32 = relative_error(t, &lo, P3_KV_F32, NULL);
    lo.act = P3_ACT_Q8;
    double w4a8 = relative_error(t, &lo, P3_KV_F32, NULL);
    printf("    mini4k int4-g128: w4a32 %.2e, w4a8 %.2e of max|logit| from transformers (random "
           "weights, 2 layers: int4 noise dominates)\n",
           w4a32, w4a8);
    CHECK(w4a8 < 1.0 && w4a32 < 1.0 && w4a8 != w4a32);
}

/* ---- Full-size shape dry run: Phi-3-mini's real config, synthetic INT4 weights in memory. */

typedef struct synthetic_model {
    p3_model_source src;
    void *blobs[16]; /* one random blob per distinct shape, shared by every layer */
    int n_blobs;
} synthetic_model;

static const void *random_int4(synthetic_model *sm, p3_test_rng *rng, int64_t rows, int64_t cols) {
    size_t bytes = (size_t)rows * (size_t)p3_groups(cols) * sizeof(p3_block_i4s);
    p3_block_i4s *b = p3_malloc(bytes);
    if (!b) return NULL;
    size_t n = bytes / sizeof *b;
    for (size_t i = 0; i < n; i++) {
        b[i].d = p3_f32_to_f16(0.004f);
        for (int j = 0; j < P3_QK / 2; j++) b[i].qs[j] = (uint8_t)p3_test_rng_u64(rng);
    }
    sm->blobs[sm->n_blobs++] = b;
    return b;
}

static bool build_synthetic(p3_test_ctx *t, synthetic_model *sm, const char *config_path) {
    size_t len = 0;
    char *json = p3_test_read_file(t, config_path, &len);
    p3_error err = {0};
    p3_model_source *src = &sm->src;
    memset(sm, 0, sizeof *sm);
    src->path = (char *)"synthetic phi-3-mini";
    src->has_config = true;
    bool ok = json &&
              CHECK_OK(p3_config_parse_json(json, len, config_path, &src->config, &err), &err) &&
              CHECK_OK(p3_config_finish(&src->config, config_path, &err), &err);
    p3_free(json);
    p3_tensor_spec *specs = NULL;
    size_t n = 0;
    if (!ok || !CHECK_OK(p3_config_expected_tensors(&src->config, &specs, &n, &err), &err))
        return false;
    src->tensors = p3_calloc(n, sizeof *src->tensors);
    src->n_tensors = n;
    p3_test_rng rng;
    p3_test_rng_seed(&rng, 3);
    float *ones = p3_malloc((size_t)src->config.hidden_size * sizeof(float));
    for (int i = 0; i < src->config.hidden_size; i++) ones[i] = 1.0f;
    sm->blobs[sm->n_blobs++] = ones;
    for (size_t i = 0; i < n; i++) {
        p3_tensor *tn = &src->tensors[i];
        snprintf(tn->name, sizeof tn->name, "%s", specs[i].hf_name);
        snprintf(tn->hf_name, sizeof tn->hf_name, "%s", specs[i].hf_name);
        tn->n_dims = specs[i].n_dims;
        memcpy(tn->shape, specs[i].shape, sizeof tn->shape);
        if (tn->n_dims == 1) {
            tn->dtype = P3_DT_F32;
            tn->data = ones;
            tn->nbytes = (size_t)tn->shape[0] * sizeof(float);
            continue;
        }
        /* layers share one blob per shape: same bytes, far less memory */
        const p3_tensor *same = NULL;
        for (size_t j = 0; j < i && !same; j++)
            if (src->tensors[j].n_dims == 2 && src->tensors[j].shape[0] == tn->shape[0] &&
                src->tensors[j].shape[1] == tn->shape[1])
                same = &src->tensors[j];
        tn->dtype = P3_DT_I4G128S;
        tn->nbytes = (size_t)tn->shape[0] * (size_t)p3_groups(tn->shape[1]) * sizeof(p3_block_i4s);
        tn->data = same ? same->data : random_int4(sm, &rng, tn->shape[0], tn->shape[1]);
        if (!CHECK(tn->data != NULL)) break;
    }
    p3_free(specs);
    return !p3_test_failed(t);
}

static void free_synthetic(synthetic_model *sm) {
    for (int i = 0; i < sm->n_blobs; i++) p3_free(sm->blobs[i]);
    p3_free(sm->src.tensors);
}

P3_TEST_SLOW(engine_phi3_mini_shape_dry_run_int4) {
    char path[512];
    snprintf(path, sizeof path, "%s/data/phi3/configs/phi-3-mini-4k-instruct-config.json",
             p3_test_shared_dir());
    synthetic_model sm;
    if (!build_synthetic(t, &sm, path)) {
        free_synthetic(&sm);
        return;
    }
    CHECK_EQ_INT(sm.src.config.hidden_size, 3072);
    CHECK_EQ_INT(sm.src.config.num_layers, 32);
    p3_load_options lo;
    p3_load_options_init(&lo);
    p3_model *m = NULL;
    p3_error err = {0};
    if (CHECK_OK(p3_model_from_source(&sm.src, &lo, &m, &err), &err)) {
        p3_session *s = p3_fixture_session(t, m, 16, 0, false);
        int32_t ids[2] = {1, 32010};
        if (s && CHECK_OK(p3_session_feed(s, ids, 2, NULL, &err), &err)) {
            CHECK_EQ_INT(s->n_past, 2);
            bool finite = true;
            for (int i = 0; i < m->cfg.vocab_size; i++)
                finite = finite && isfinite(s->host_logits[i]);
            CHECK_MSG(finite, "logits of the synthetic model are not finite");
            CHECK(p3_max_abs(s->host_logits, (size_t)m->cfg.vocab_size) > 0.0);
        }
        p3_session_free(s);
    }
    p3_model_free(m);
    free_synthetic(&sm);
}
