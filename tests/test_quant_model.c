/* test_quant_model.c: INT4-g128 at the model level, through the CLI on the oracle fixtures.
 *
 * Accuracy bound, derived rather than tuned: each quantized matmul y = W x gets a relative error
 * whose square is the NMSE e_i of its weight (uncorrelated rounding errors: E|dW x|^2 = e |W x|^2
 * for inputs not aligned with the error). Independent errors from the n quantized matmuls add in
 * quadrature in the logits, times a propagation gain through residual stream and norms that we
 * allow to be up to 2 (measured ~1-1.5 here): |dz|^2 / |z|^2 <= 2 * sum_i e_i, with each e_i
 * measured on the file's own weights. For errors not aligned with the logits, cosine ~ 1 -
 * |dz|^2/(2|z|^2). KL(P_ref || P_int4) ~ Var_P(dz) / 2 to second order: checked against E_P[dz^2] /
 * 2 with 50 % slack for the higher-order terms. Top-1 may only flip where the reference's top1-top2
 * gap is below 3 sqrt(2) rms(dz) (a 3-sigma difference of two logit errors). Also: `phi3c quantize`
 * then `logits` equals load-time quantization (`--quant int4-g128`) bit for bit. */
#include "harness.h"
#include "phi3c_file.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIX "tests/fixtures/"

static bool run_ok(p3_test_ctx *t, const char *cmd) {
    p3_cmd_result r = {0};
    p3_test_run(t, cmd, &r);
    bool ok = CHECK_MSG(r.exit_code == 0, "%s failed: %s", cmd, r.err ? r.err : "");
    p3_cmd_result_free(&r);
    return ok;
}

/* Sum over quantized 2-D weights of their NMSE against the source (the e_i of the header). */
static double sum_weight_nmse(p3_test_ctx *t, const char *src_path, const char *native) {
    p3_model_source *a = NULL, *b = NULL;
    p3_error err = {0};
    double total = 0;
    if (!CHECK_OK(p3_source_open(src_path, &a, &err), &err) ||
        !CHECK_OK(p3_source_open(native, &b, &err), &err))
        goto done;
    for (size_t i = 0; i < b->n_tensors; i++) {
        const p3_tensor *q = &b->tensors[i], *s = p3_source_find(a, q->hf_name);
        if (!p3_dtype_is_int4(q->dtype)) continue;
        size_t n = (size_t)(q->shape[0] * q->shape[1]);
        float *x = p3_malloc(n * sizeof *x), *y = p3_malloc(n * sizeof *y);
        if (s && CHECK_OK(p3_tensor_to_f32(s, 0, n, x, &err), &err) &&
            CHECK_OK(p3_tensor_to_f32(q, 0, n, y, &err), &err))
            total += p3_nmse(y, x, n);
        p3_free(x);
        p3_free(y);
    }
done:
    p3_source_close(a);
    p3_source_close(b);
    return total;
}

typedef struct logit_stats {
    double rel_err2, cos_mean, cos_min, kl_mean, kl_second_order, top1;
    int unexplained_flips;
} logit_stats;

static void log_softmax(const float *z, int v, double *out) {
    double m = z[0], s = 0;
    for (int i = 1; i < v; i++) m = fmax(m, z[i]);
    for (int i = 0; i < v; i++) s += exp(z[i] - m);
    for (int i = 0; i < v; i++) out[i] = z[i] - m - log(s);
}

static int argmax(const float *z, int v) {
    int k = 0;
    for (int i = 1; i < v; i++)
        if (z[i] > z[k]) k = i;
    return k;
}

static logit_stats compare_logits(const float *ref, const float *q, int rows, int v) {
    logit_stats s = {.cos_min = 1};
    double *lp = p3_malloc((size_t)v * sizeof *lp), *lq = p3_malloc((size_t)v * sizeof *lq);
    double dd = 0, zz = 0, ms_total = 0;
    int agree = 0;
    for (int r = 0; r < rows; r++) {
        const float *a = ref + (size_t)r * v, *b = q + (size_t)r * v;
        double ab = 0, aa = 0, bb = 0, kl = 0, ep_d2 = 0, ep_d = 0, ms = 0;
        log_softmax(a, v, lp);
        log_softmax(b, v, lq);
        for (int i = 0; i < v; i++) {
            double d = (double)b[i] - a[i], p = exp(lp[i]);
            ab += (double)a[i] * b[i];
            aa += (double)a[i] * a[i];
            bb += (double)b[i] * b[i];
            kl += p * (lp[i] - lq[i]);
            ep_d += p * d;
            ep_d2 += p * d * d;
            ms += d * d;
        }
        dd += ms;
        zz += aa;
        ms_total += ms / v;
        double c = ab / sqrt(aa * bb);
        s.cos_mean += c / rows;
        s.cos_min = fmin(s.cos_min, c);
        s.kl_mean += kl / rows;
        s.kl_second_order += 0.5 * (ep_d2 - ep_d * ep_d) / rows;
        int ka = argmax(a, v), kb = argmax(b, v);
        agree += ka == kb;
        float second = -INFINITY;
        for (int i = 0; i < v; i++)
            if (i != ka && a[i] > second) second = a[i];
        if (ka != kb && a[ka] - second > 3 * sqrt(2.0 * ms / v)) s.unexplained_flips++;
    }
    s.rel_err2 = dd / zz;
    s.top1 = (double)agree / rows;
    (void)ms_total;
    p3_free(lp);
    p3_free(lq);
    return s;
}

static int vocab_of(p3_test_ctx *t, const char *src) {
    p3_model_source *s = NULL;
    p3_error err = {0};
    if (!CHECK_OK(p3_source_open(src, &s, &err), &err)) return 0;
    int v = s->config.vocab_size;
    p3_source_close(s);
    return v;
}

static void check_variant(p3_test_ctx *t, const char *variant, const char *src_dir,
                          const char *oracle, const char *act) {
    char src[256], nat[512], out[512], ids[256], ref_path[256], cmd[2048];
    snprintf(src, sizeof src, FIX "%s/%s", variant, src_dir);
    snprintf(ids, sizeof ids, FIX "%s/seq0.ids", variant);
    snprintf(ref_path, sizeof ref_path, FIX "%s/%s", variant, oracle);
    snprintf(nat, sizeof nat, "%s/%s.phi3c", p3_test_tmpdir(t), variant);
    snprintf(out, sizeof out, "%s/%s.%s.logits", p3_test_tmpdir(t), variant, act);
    snprintf(cmd, sizeof cmd, "%s quantize -m %s -o %s --force", p3_test_cli(), src, nat);
    if (!run_ok(t, cmd)) return;
    snprintf(cmd, sizeof cmd, "%s logits -m %s --ids-file %s -o %s --act %s", p3_test_cli(), nat,
             ids, out, act);
    if (!run_ok(t, cmd)) return;
    int v = vocab_of(t, src);
    size_t na = 0, nb = 0;
    float *ref = p3_test_read_file(t, ref_path, &na), *q = p3_test_read_file(t, out, &nb);
    if (ref && q && CHECK(v > 0 && na == nb && na % ((size_t)v * 4) == 0)) {
        int rows = (int)(na / ((size_t)v * 4));
        double e_sum = sum_weight_nmse(t, src, nat), bound = 2 * e_sum;
        logit_stats s = compare_logits(ref, q, rows, v);
        printf("    %-8s %-5s: rel err^2 %.4f (bound %.4f), cosine mean %.4f min %.4f, KL mean "
               "%.4f (2nd order %.4f), top-1 %.0f%%\n",
               variant, act, s.rel_err2, bound, s.cos_mean, s.cos_min, s.kl_mean, s.kl_second_order,
               100 * s.top1);
        CHECK_MSG(s.rel_err2 <= bound, "%s: relative logit error^2 %.4f > %.4f", variant,
                  s.rel_err2, bound);
        CHECK_MSG(s.cos_mean >= 1 - bound / 2, "%s: cosine %.4f < %.4f", variant, s.cos_mean,
                  1 - bound / 2);
        CHECK_MSG(s.kl_mean <= 1.5 * s.kl_second_order, "%s: KL %.4f vs second order %.4f", variant,
                  s.kl_mean, s.kl_second_order);
        CHECK_EQ_INT(s.unexplained_flips, 0);
    }
    p3_free(ref);
    p3_free(q);
}

P3_TEST_SLOW(quant_model_logits_accuracy) {
    check_variant(t, "mini4k", "hf-f32", "f32.seq0.logits", "w4a8");
    check_variant(t, "mini4k", "hf-f32", "f32.seq0.logits", "w4a32");
    check_variant(t, "longrope", "hf-bf16", "bf16.seq0.logits", "w4a8");
    check_variant(t, "medium", "hf-bf16", "bf16.seq0.logits", "w4a8");
    check_variant(t, "phi4mini", "hf-bf16", "bf16.seq0.logits", "w4a8");
}

/* The file written by `phi3c quantize` and load-time quantization give the same logits, bit for
 * bit (same method: the engine quantizes at load with RTN). */
P3_TEST_SLOW(quant_model_file_equals_load_time) {
    static const char *const srcs[] = {FIX "medium/hf-bf16", FIX "medium/model-bf16.gguf"};
    const char *dir = p3_test_tmpdir(t);
    char cmd[2048], a[512], b[512], nat[512];
    for (int asym = 0; asym < 2; asym++) {
        snprintf(nat, sizeof nat, "%s/m.phi3c", dir);
        snprintf(a, sizeof a, "%s/file.logits", dir);
        snprintf(cmd, sizeof cmd, "%s quantize -m %s -o %s --method rtn --force %s", p3_test_cli(),
                 srcs[0], nat, asym ? "--asym" : "");
        if (!run_ok(t, cmd)) return;
        snprintf(cmd, sizeof cmd, "%s logits -m %s --ids-file " FIX "medium/seq0.ids -o %s",
                 p3_test_cli(), nat, a);
        if (!run_ok(t, cmd)) return;
        for (size_t i = 0; i < P3_ARRAY_LEN(srcs); i++) {
            snprintf(b, sizeof b, "%s/load%zu.logits", dir, i);
            snprintf(cmd, sizeof cmd,
                     "%s logits -m %s --quant %s --ids-file " FIX "medium/seq0.ids -o %s",
                     p3_test_cli(), srcs[i], asym ? "int4-g128-asym" : "int4-g128", b);
            if (!run_ok(t, cmd)) return;
            size_t na = 0, nb = 0;
            char *x = p3_test_read_file(t, a, &na), *y = p3_test_read_file(t, b, &nb);
            CHECK_MSG(x && y && na == nb && memcmp(x, y, na) == 0,
                      "%s (%s): logits differ from the quantized file's", srcs[i],
                      asym ? "asym" : "sym");
            p3_free(x);
            p3_free(y);
        }
    }
}
