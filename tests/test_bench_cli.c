/* test_bench_cli.c: `phi3c bench` does not rot: the kernel lab on small shapes prints every row
 * and a well-formed roofline SVG, the synthetic end-to-end run reports the weight size the INT4
 * format implies, and bad flags are usage errors. Speed itself is never asserted here. */
#include "harness.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double result_field(const char *out, const char *key) {
    const char *line = out ? strstr(out, "bench-result:") : NULL;
    if (!line) return -1;
    char pat[64];
    snprintf(pat, sizeof pat, " %s=", key);
    const char *p = strstr(line, pat);
    return p ? strtod(p + strlen(pat), NULL) : -1;
}

P3_TEST(bench_kernels_small_shapes_print_rows_and_a_roofline) {
    char cmd[1024], svg[512];
    snprintf(svg, sizeof svg, "%s/roof.svg", p3_test_tmpdir(t));
    snprintf(cmd, sizeof cmd,
             "%s bench --kernels --shapes 256x256,128x384 --ctx 64,100 --batch 7 --mem-mb 4 "
             "--reps 1 -t 2 --svg %s",
             p3_test_cli(), svg);
    p3_cmd_result r;
    if (!p3_test_run(t, cmd, &r)) return;
    CHECK_MSG(r.exit_code == 0, "%s: %s", cmd, r.err ? r.err : "");
    const char *o = r.out ? r.out : "";
    CHECK(strstr(o, "memory read bandwidth") != NULL);
    CHECK(strstr(o, "gemv custom      256x256") != NULL);
    CHECK(strstr(o, "gemm custom      128x384           7") != NULL);
    CHECK(strstr(o, "attn decode      ctx 100") != NULL);
    CHECK(strstr(o, "attn prefill") != NULL);
    CHECK(strstr(o, "nan") == NULL && strstr(o, "inf ") == NULL);
    size_t n = 0;
    char *s = r.exit_code == 0 ? p3_test_read_file(t, svg, &n) : NULL;
    if (s) {
        CHECK(n > 6 && strncmp(s, "<svg", 4) == 0);
        CHECK(n > 7 && strncmp(s + n - 7, "</svg>\n", 7) == 0);
        int dots = 0;
        for (const char *p = s; (p = strstr(p, "<circle")) != NULL && p < s + n; p++) dots++;
        CHECK_EQ_INT(dots, 6); /* 2 GEMV + 2 GEMM + 2 decode attention points */
    }
    free(s);
    p3_cmd_result_free(&r);
}

/* One layer of Phi-3-mini's shapes: f16 embedding 32064x3072, INT4-g128 lm_head 32064x3072 and
 * qkv/o/gate_up/down (66 bytes per 128 weights), unit norms. */
P3_TEST_SLOW(bench_e2e_synthetic_one_layer_reports_the_int4_weight_size) {
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "%s bench --e2e --synthetic phi3-mini --layers 1 --pp 8 --tg 2 --reps 1 "
             "--mem-mb 4 -t 2",
             p3_test_cli());
    p3_cmd_result r;
    if (!p3_test_run(t, cmd, &r)) return;
    CHECK_MSG(r.exit_code == 0, "%s: %s", cmd, r.err ? r.err : "");
    double embed = 32064.0 * 3072 * 2, blocks = 66.0 * (3072 / 128);
    double linear = blocks * (32064 + 9216 + 3072 + 16384) + 66.0 * (8192 / 128) * 3072;
    double want_mib = (embed + linear + 2 * 3072 * 4 + 3072 * 4) / 1048576.0;
    double got = result_field(r.out, "weights_mib");
    CHECK_MSG(got > want_mib * 0.99 && got < want_mib * 1.05, "weights %.0f MiB, INT4 says %.0f",
              got, want_mib);
    CHECK(result_field(r.out, "pp_tps") > 0);
    CHECK(result_field(r.out, "tg_tps") > 0);
    /* the weights are resident while running, so the peak RSS cannot be below them */
    CHECK(result_field(r.out, "rss_peak_mib") >= got * 0.99);
    p3_cmd_result_free(&r);
}

/* --depth fills the cache before pp and tg (llama-bench -d): a q8 cache's bytes read per step are
 * the depth plus half the tg positions, of K and V, 96 int8 + one f32 scale per head and layer. */
P3_TEST_SLOW(bench_e2e_depth_counts_the_kv_bytes_a_step_reads) {
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "%s bench --e2e --synthetic phi3-mini --layers 1 --pp 8 --tg 4 --reps 1 "
             "--mem-mb 4 -t 2 --depth 300 --kv q8",
             p3_test_cli());
    p3_cmd_result r;
    if (!p3_test_run(t, cmd, &r)) return;
    CHECK_MSG(r.exit_code == 0, "%s: %s", cmd, r.err ? r.err : "");
    double want_mb = 2.0 * 1 * 32 * (96 + 4) * (300 + 4 / 2.0) / 1e6;
    double got = result_field(r.out, "kv_read_mb");
    CHECK_MSG(fabs(got - want_mb) < 0.06, "KV read %.2f MB a step, want %.2f", got, want_mb);
    CHECK_EQ_INT((int)result_field(r.out, "depth"), 300);
    CHECK(result_field(r.out, "tg_tps") > 0);
    p3_cmd_result_free(&r);
}

/* Past Phi-3-mini-4k's 2047-position sliding window a decode step reads only the window's keys
 * and values, so the bandwidth share must not count the whole depth (it printed 107% at 4096). */
P3_TEST_SLOW(bench_e2e_depth_past_the_window_counts_only_the_window) {
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "%s bench --e2e --synthetic phi3-mini --layers 1 --pp 8 --tg 4 --reps 1 "
             "--mem-mb 4 -t 2 --depth 2100 --kv q8",
             p3_test_cli());
    p3_cmd_result r;
    if (!p3_test_run(t, cmd, &r)) return;
    CHECK_MSG(r.exit_code == 0, "%s: %s", cmd, r.err ? r.err : "");
    double want_mb = 2.0 * 1 * 32 * (96 + 4) * 2047 / 1e6;
    double got = result_field(r.out, "kv_read_mb");
    CHECK_MSG(fabs(got - want_mb) < 0.06, "KV read %.2f MB a step, want %.2f", got, want_mb);
    p3_cmd_result_free(&r);
}

/* --verify-cost: forwards of 1..16 tokens after --pp cached positions; k = 1 is its own unit. */
P3_TEST_SLOW(bench_verify_cost_synthetic_one_layer_prints_every_k) {
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "%s bench --verify-cost --synthetic phi3-mini --layers 1 --pp 24 --reps 1 "
             "--mem-mb 4 -t 2",
             p3_test_cli());
    p3_cmd_result r;
    if (!p3_test_run(t, cmd, &r)) return;
    CHECK_MSG(r.exit_code == 0, "%s: %s", cmd, r.err ? r.err : "");
    CHECK(result_field(r.out, "depth") == 24);
    CHECK(result_field(r.out, "k1_ratio") == 1);
    CHECK(result_field(r.out, "k1_ms") > 0);
    CHECK(result_field(r.out, "k16_ratio") > 0);
    CHECK(strstr(r.out ? r.out : "", "k =  8") != NULL);
    CHECK(strstr(r.out ? r.out : "", "pp_tps") == NULL); /* instead of pp/tg */
    p3_cmd_result_free(&r);
}

P3_TEST(bench_usage_errors) {
    static const char *bad[] = {"--shapes 0x5", "--shapes 12", "--synthetic llama", "--reps 0",
                                "--act w2",     "--bogus",     "--kv q4",           "--depth -1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char cmd[256];
        snprintf(cmd, sizeof cmd, "%s bench %s", p3_test_cli(), bad[i]);
        p3_cmd_result r;
        if (!p3_test_run(t, cmd, &r)) continue;
        CHECK_MSG(r.exit_code == 2, "%s: exit %d", cmd, r.exit_code);
        p3_cmd_result_free(&r);
    }
}
