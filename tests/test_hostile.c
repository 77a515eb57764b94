/* test_hostile.c: the CLI and library under hostile input and faults (issue 15): empty and
 * unusual input that once tripped UBSan or leaked, output that cannot be written, values that
 * gave NaN or silently wrong results. Under the sanitizer build (PHI3C_BIN=build/asan/phi3c)
 * a UBSan report or a leak makes the command fail, so these checks catch those too. */
#include "harness.h"
#include "source.h"
#include "tokenizer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define DEMO "tools/demo-model"

/* Runs `printf INPUT | phi3c ARGS` (ARGS a shell fragment; no pipe when input is NULL) and checks
 * it ended with exit code `want` and no signal, with `want_err` (if not NULL) and no sanitizer
 * report on stderr. */
static void check_cli_input(p3_test_ctx *t, const char *input, const char *args, int want,
                            const char *want_err) {
    char cmd[2048];
    /* timeout: a command that blocks (the old logits opening a FIFO) fails instead of hanging */
    snprintf(cmd, sizeof cmd, "%s%s%stimeout -k 5 120 %s %s", input ? "printf '" : "",
             input ? input : "", input ? "' | " : "", p3_test_cli(), args);
    p3_cmd_result r;
    if (!p3_test_run(t, cmd, &r)) return;
    const char *err = r.err ? r.err : "";
    CHECK_MSG(r.signal == 0 && r.exit_code == want, "%s: exit %d (want %d), signal %d: %s", cmd,
              r.exit_code, want, r.signal, err);
    CHECK_MSG(!strstr(err, "runtime error") && !strstr(err, "Sanitizer"), "%s: %s", cmd, err);
    if (want_err)
        CHECK_MSG(strstr(err, want_err) != NULL, "%s: stderr lacks '%s': %s", cmd, want_err, err);
    p3_cmd_result_free(&r);
}

static void check_cli(p3_test_ctx *t, const char *args, int want, const char *want_err) {
    check_cli_input(t, NULL, args, want, want_err);
}

P3_TEST(hostile_chat_with_no_turn_at_all) {
    /* no message was ever added: dropping "all" messages at the end touched a NULL array */
    check_cli(t, "chat -m " DEMO " -n 4 < /dev/null", 0, NULL);
    check_cli_input(t, "/exit\\n", "chat -m " DEMO " -n 4", 0, NULL);
}

P3_TEST(hostile_empty_prompt_ids_are_refused_without_a_leak) {
    check_cli(t, "run -m " DEMO " --prompt-ids ''", 2, "--prompt-ids wants decimal token ids");
    check_cli(t, "run -m " DEMO " --prompt-ids ' , '", 2, "--prompt-ids wants decimal token ids");
    check_cli(t, "run -m " DEMO " --prompt-ids '1 2 x'", 2, "--prompt-ids wants decimal");
    check_cli(t, "logits -m " DEMO " --ids '' --out /dev/null", 2, "--ids wants decimal");
}

P3_TEST(hostile_repeat_penalty_must_be_positive) {
    check_cli(t, "run -m " DEMO " -p hi -n 2 --repeat-penalty 0", 2,
              "--repeat-penalty must be > 0");
    check_cli(t, "chat -m " DEMO " --repeat-penalty -1 < /dev/null", 2, "--repeat-penalty");
    /* positive as a double but 0 as the float the sampler keeps (found by fuzz_cli_args) */
    check_cli(t, "run -m " DEMO " -p hi -n 2 --repeat-penalty 1e-46", 2,
              "--repeat-penalty must be > 0");
    /* the library refuses it too, before it can divide by zero */
    phi3c_model_params mp = phi3c_model_params_default();
    mp.backend = "cpu";
    phi3c_model *m = NULL;
    phi3c_session *s = NULL;
    phi3c_error err = {0};
    phi3c_session_params sp = phi3c_session_params_default();
    sp.n_ctx = 16;
    if (!CHECK_OK(phi3c_model_load("tests/fixtures/mini4k/hf-f32", &mp, &m, &err), &err)) return;
    if (CHECK_OK(phi3c_session_create(m, &sp, &s, &err), &err)) {
        int32_t ids[3] = {1, 2, 3};
        CHECK_OK(phi3c_session_feed_tokens(s, ids, 3, NULL, &err), &err);
        phi3c_sampler_params p = phi3c_sampler_params_default();
        for (int k = 0; k < 2; k++) {
            p.repeat_penalty = k == 0 ? 0.0f : -2.0f;
            CHECK_STATUS(phi3c_generate(s, &p, 2, NULL, NULL, NULL, &err), PHI3C_ERR_INVALID_ARG);
            CHECK_MSG(strstr(err.message, "repeat_penalty") != NULL, "%s", err.message);
        }
        phi3c_session_free(s);
    }
    phi3c_model_free(m);
}

P3_TEST(hostile_unwritable_stdout_fails_the_command) {
    check_cli(t, "run -m " DEMO " -p hi -n 4 --seed 1 > /dev/full", 1, "No space left on device");
    check_cli_input(t, "hello\\n", "chat -m " DEMO " -n 4 > /dev/full", 1, "No space left");
    check_cli(t, "tokenize -m " DEMO " hello > /dev/full", 1, "No space left on device");
    check_cli(t, "--version > /dev/full", 1, "No space left on device");
    check_cli(t, "run -m " DEMO " -p hi -n 4 --seed 1 > /dev/null", 0, NULL); /* the control */
}

P3_TEST(hostile_perplexity_needs_two_token_windows) {
    check_cli(t, "perplexity -m " DEMO " -f " DEMO "/heldout.txt -c 1", 2, "-c must be at least 2");
}

P3_TEST(hostile_endless_input_stops_at_the_read_limit) {
    /* /dev/zero never ends: reading stops at P3_FILE_READ_MAX with a message, not at OOM */
    check_cli(t, "tokenize -m " DEMO " --file /dev/zero", 1, "larger than the limit of 256 MiB");
    check_cli(t, "tokenize -m " DEMO " --file - < /dev/zero", 1,
              "larger than the limit of 256 MiB");
    check_cli(t, "run -m " DEMO " -f /dev/zero -n 1", 1, "larger than the limit of 256 MiB");
}

/* ---- output files: only a regular file or a new path, never a partial file ---- */

static const char *tmp_path(p3_test_ctx *t, const char *name) {
    static char paths[4][512];
    static int next;
    char *p = paths[next++ & 3];
    snprintf(p, sizeof paths[0], "%s/%s", p3_test_tmpdir(t), name);
    return p;
}

/* Entries of the test folder other than the given ones (the harness's .stdout/.stderr aside). */
static int count_entries_except(p3_test_ctx *t, const char *keep) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "ls -A '%s' | grep -v -x -e .stdout -e .stderr -e '%s' | wc -l",
             p3_test_tmpdir(t), keep);
    p3_cmd_result r;
    if (!p3_test_run(t, cmd, &r)) return -1;
    int n = r.out ? atoi(r.out) : -1;
    p3_cmd_result_free(&r);
    return n;
}

static bool is_kind(const char *path, mode_t kind) {
    struct stat st;
    return lstat(path, &st) == 0 && (st.st_mode & S_IFMT) == kind;
}

P3_TEST(hostile_outputs_never_replace_devices_fifos_or_directories) {
    const char *fifo = tmp_path(t, "fifo"), *dir = tmp_path(t, "dir"), *dev = tmp_path(t, "null");
    CHECK(mkfifo(fifo, 0600) == 0 && mkdir(dir, 0700) == 0);
    bool have_dev = geteuid() == 0 && mknod(dev, S_IFCHR | 0600, makedev(1, 3)) == 0;
    const char *targets[] = {fifo, dir, have_dev ? dev : NULL};
    const mode_t kinds[] = {S_IFIFO, S_IFDIR, S_IFCHR};
    for (size_t i = 0; i < 3; i++) {
        if (!targets[i]) continue;
        char args[1024];
        snprintf(args, sizeof args, "quantize -m tests/fixtures/mini4k/hf-bf16 -o '%s' --force",
                 targets[i]);
        check_cli(t, args, 1, "not a regular file");
        snprintf(args, sizeof args,
                 "logits -m tests/fixtures/mini4k/hf-bf16 --ids '1 2' --out '%s'", targets[i]);
        check_cli(t, args, 1, "not a regular file");
        CHECK_MSG(is_kind(targets[i], kinds[i]), "%s was replaced", targets[i]);
    }
    CHECK_EQ_INT(count_entries_except(t, "fifo\\|dir\\|null"), 0); /* no temp file left */
}

P3_TEST(hostile_logits_leaves_no_partial_or_empty_file) {
    const char *out = tmp_path(t, "l.bin");
    char args[1024];
    snprintf(args, sizeof args, "logits -m tests/fixtures/mini4k/hf-bf16 --ids '1 999999' --out %s",
             out);
    check_cli(t, args, 1, NULL); /* an id past the vocabulary */
    CHECK_MSG(!p3_file_exists(out), "an invalid id left %s", out);
    CHECK_EQ_INT(count_entries_except(t, "-"), 0);
    /* a full disk: a 32 KiB tmpfs cannot hold one row of the demo model's 32064 floats */
    const char *mnt = tmp_path(t, "mnt");
    if (geteuid() != 0 || mkdir(mnt, 0700) != 0 ||
        mount("tmpfs", mnt, "tmpfs", 0, "size=32k") != 0) {
        p3_test_skip(t, "cannot mount a tmpfs here (%s)", strerror(errno));
        return;
    }
    snprintf(args, sizeof args, "logits -m " DEMO " --ids '1 2 3' --out %s/l.bin", mnt);
    check_cli(t, args, 1, "No space left on device");
    char listing[600];
    snprintf(listing, sizeof listing, "ls -A %s | wc -l", mnt);
    p3_cmd_result r;
    if (p3_test_run(t, listing, &r))
        CHECK_MSG(r.out && atoi(r.out) == 0, "the full disk keeps %s files", r.out ? r.out : "?");
    p3_cmd_result_free(&r);
    umount(mnt);
    rmdir(mnt);
}

P3_TEST(hostile_quantize_removes_its_temp_file_on_every_stop_signal) {
    static const char *const sigs[] = {"sigint", "sigterm", "sighup", "sigquit", "sigpipe"};
    const char *out = tmp_path(t, "q.phi3c");
    for (size_t i = 0; i < P3_ARRAY_LEN(sigs); i++) {
        char args[1024];
        snprintf(args, sizeof args,
                 "quantize -m tests/fixtures/mini4k/hf-bf16 -o %s --method rtn -t 1 "
                 "</dev/null; echo \"exit $?\" >&2",
                 out);
        char cmd[1500];
        snprintf(cmd, sizeof cmd, "PHI3C_TEST_WRITE_FAULT=%s:100000 timeout -k 5 120 %s %s",
                 sigs[i], p3_test_cli(), args);
        p3_cmd_result r;
        if (!p3_test_run(t, cmd, &r)) continue;
        const char *err = r.err ? r.err : "";
        CHECK_MSG(strstr(err, "interrupted") && strstr(err, "exit 1"), "%s: %s", sigs[i], err);
        CHECK_MSG(!p3_file_exists(out), "%s: the output exists", sigs[i]);
        CHECK_MSG(count_entries_except(t, "-") == 0, "%s left a temp file", sigs[i]);
        p3_cmd_result_free(&r);
    }
}

/* ---- wrong JSON types are errors naming the key, not silently ignored or converted ---- */

static void check_config_refused(p3_test_ctx *t, const char *json, const char *why) {
    p3_config cfg;
    p3_error err = {0};
    p3_status st = p3_config_parse_json(json, strlen(json), "config.json", &cfg, &err);
    if (st == PHI3C_OK) st = p3_config_finish(&cfg, "config.json", &err);
    CHECK_MSG(st != PHI3C_OK && strstr(err.message, why), "%s: status %d, message '%s'", json,
              (int)st, err.message);
}

P3_TEST(hostile_config_values_of_the_wrong_type) {
    static const char base[] =
        "\"hidden_size\": 64, \"num_hidden_layers\": 2, \"num_attention_heads\": 2, "
        "\"intermediate_size\": 32, \"vocab_size\": 8, \"max_position_embeddings\": 64";
    char json[1024];
    snprintf(json, sizeof json, "{\"architectures\": [\"Phi3ForCausalLM\"], %s}", base);
    p3_config cfg;
    p3_error err = {0};
    CHECK_OK(p3_config_parse_json(json, strlen(json), "config.json", &cfg, &err), &err);
    snprintf(json, sizeof json, "{\"architectures\": [\"Phi3ForCausalLM\"], \"hidden_act\": 5, %s}",
             base);
    check_config_refused(t, json, "hidden_act");
    snprintf(json, sizeof json, "{\"architectures\": [], \"model_type\": \"phi3\", %s}", base);
    check_config_refused(t, json, "architectures");
    snprintf(json, sizeof json,
             "{\"architectures\": [\"Phi3ForCausalLM\"], %s, \"vocab_size\": 8.0}", base);
    check_config_refused(t, json, "vocab_size");
}

P3_TEST(hostile_tokenizer_merges_of_the_wrong_type) {
    static const char json[] =
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, "
        "\"merges\": {\"a\": \"b\"}}}";
    p3_tokenizer_files files = {
        .what = "tokenizer.json", .tokenizer_json = json, .tokenizer_json_len = strlen(json)};
    p3_tokenizer *tok = NULL;
    p3_error err = {0};
    CHECK_STATUS(p3_tokenizer_load_buffers(&files, &tok, &err), PHI3C_ERR_FORMAT);
    CHECK_MSG(strstr(err.message, "merges must be a list"), "message: %s", err.message);
    p3_tokenizer_free(tok);
}

/* The ids of a command's "prompt ids:" stderr line, or of its stdout. */
static char *ids_of(p3_test_ctx *t, const char *cmd, bool from_stderr) {
    p3_cmd_result r;
    if (!p3_test_run(t, cmd, &r)) return NULL;
    CHECK_MSG(r.exit_code == 0, "%s: exit %d: %s", cmd, r.exit_code, r.err ? r.err : "");
    const char *src = from_stderr ? r.err : r.out, *at = src ? src : "";
    if (from_stderr) at = (at = strstr(at, "prompt ids:")) ? at + 11 : "";
    while (*at == ' ') at++;
    size_t n = strcspn(at, "\n");
    char *ids = p3_malloc(n + 1);
    memcpy(ids, at, n);
    ids[n] = '\0';
    p3_cmd_result_free(&r);
    return ids;
}

P3_TEST(hostile_run_file_keeps_bytes_after_a_nul) {
    const char *path = tmp_path(t, "nul.txt");
    FILE *f = fopen(path, "wb");
    if (!CHECK(f != NULL)) return;
    fwrite("And God\0 said", 1, 13, f);
    fclose(f);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s run -m " DEMO " -f %s -n 1 --greedy --verbose-prompt",
             p3_test_cli(), path);
    char *run_ids = ids_of(t, cmd, true);
    snprintf(cmd, sizeof cmd, "%s tokenize -m " DEMO " --file %s", p3_test_cli(), path);
    char *tok_ids = ids_of(t, cmd, false);
    snprintf(cmd, sizeof cmd, "%s tokenize -m " DEMO " 'And God'", p3_test_cli());
    char *cut_ids = ids_of(t, cmd, false);
    if (run_ids && tok_ids && cut_ids) {
        CHECK_MSG(strcmp(run_ids, tok_ids) == 0, "run -f ids '%s', tokenize --file '%s'", run_ids,
                  tok_ids);
        CHECK_MSG(strcmp(run_ids, cut_ids) != 0, "run -f stopped at the NUL: '%s'", run_ids);
    }
    p3_free(run_ids);
    p3_free(tok_ids);
    p3_free(cut_ids);
    snprintf(cmd, sizeof cmd, "run -m " DEMO " -f %s -n 1 --chat", path);
    check_cli(t, cmd, 1, "NUL byte at offset 7");
}

/* ---- paths that exist but are not regular files: said so, never "no such file" ---- */

P3_TEST(hostile_model_paths_that_are_not_regular_files) {
    const char *fifo = tmp_path(t, "model.gguf"), *loop_a = tmp_path(t, "loop-a");
    const char *loop_b = tmp_path(t, "loop-b"), *folder = tmp_path(t, "folder");
    CHECK(mkfifo(fifo, 0600) == 0);
    CHECK(symlink(loop_b, loop_a) == 0 && symlink(loop_a, loop_b) == 0);
    char sub[600], args[1400];
    snprintf(sub, sizeof sub, "%s/config.json", folder); /* a folder where config.json belongs */
    CHECK(mkdir(folder, 0700) == 0 && mkdir(sub, 0700) == 0);
    static const char *const cmds[] = {"info -m", "run -p hi -n 1 -m", "tokenize hi -m"};
    for (size_t c = 0; c < P3_ARRAY_LEN(cmds); c++) {
        snprintf(args, sizeof args, "%s %s", cmds[c], fifo);
        check_cli(t, args, 1, "is a FIFO");
        snprintf(args, sizeof args, "%s /dev/zero", cmds[c]);
        check_cli(t, args, 1, "is a character device");
        snprintf(args, sizeof args, "%s %s", cmds[c], loop_a);
        check_cli(t, args, 1, "symbolic links");
    }
    snprintf(args, sizeof args, "info -m %s", folder);
    check_cli(t, args, 1, "config.json: is a directory");
}

/* ---- a tokenizer that is there but unusable is reported with its cause ---- */

P3_TEST(hostile_corrupt_tokenizer_is_reported_as_such) {
    const char *m = tmp_path(t, "m");
    char cmd[1600];
    snprintf(cmd, sizeof cmd,
             "cp -r " DEMO " %s && head -c 5000 " DEMO "/tokenizer.json > %s/tokenizer.json", m, m);
    p3_cmd_result r;
    if (!p3_test_run(t, cmd, &r) || !CHECK(r.exit_code == 0)) return;
    p3_cmd_result_free(&r);
    static const char *const cmds[] = {"run -p hi -n 1 -m", "chat -m",
                                       "perplexity -f " DEMO "/heldout.txt -m"};
    for (size_t i = 0; i < P3_ARRAY_LEN(cmds); i++) {
        snprintf(cmd, sizeof cmd, "%s %s < /dev/null", cmds[i], m);
        check_cli(t, cmd, 1, "tokenizer.json: "); /* the file and the parser's position */
        check_cli(t, cmd, 1, "unterminated string");
    }
    const char *out = tmp_path(t, "q.phi3c");
    snprintf(cmd, sizeof cmd, "quantize -m %s -o %s --method rtn", m, out);
    check_cli(t, cmd, 1, "unterminated string"); /* once copied into the output, exit 0 */
    CHECK_MSG(!p3_file_exists(out), "quantize wrote %s with a corrupt tokenizer", out);
}

/* ---- an integer weight matrix is refused, not converted and run ---- */

P3_TEST(hostile_gguf_i32_weight_is_refused) {
    size_t n = 0;
    uint8_t *b = p3_test_read_file(t, "tests/fixtures/mini4k/model-f32.gguf", &n);
    if (!b) return;
    /* the tensor info: u64 name length, name, u32 n_dims, n_dims x u64, u32 type (F32 = 0) */
    static const char name[] = "blk.0.ffn_down.weight";
    uint8_t *at = memmem(b, n, name, sizeof name - 1);
    if (CHECK(at != NULL && at + sizeof name - 1 + 4 < b + n)) {
        uint8_t *p = at + sizeof name - 1;
        uint32_t n_dims;
        memcpy(&n_dims, p, 4);
        p += 4 + 8 * (size_t)n_dims;
        uint32_t type, i32 = 26;
        memcpy(&type, p, 4);
        CHECK_EQ_INT(type, 0);
        memcpy(p, &i32, 4); /* I32 has F32's size: the file stays consistent */
        const char *path = tmp_path(t, "i32.gguf");
        FILE *f = fopen(path, "wb");
        if (CHECK(f != NULL)) {
            fwrite(b, 1, n, f);
            fclose(f);
            char args[700];
            snprintf(args, sizeof args, "run -m %s --prompt-ids '1 2' -n 1", path);
            check_cli(t, args, 1, "dtype I32");
        }
    }
    p3_free(b);
}

/* ---- a 5.x config with two original_max_position_embeddings: the top-level one counts ---- */

P3_TEST(hostile_config_top_level_original_max_position_wins) {
    char json[2048], factors[600] = "";
    size_t k = 0;
    for (int i = 0; i < 16; i++)
        k += (size_t)snprintf(factors + k, sizeof factors - k, "%s1.0", i ? ", " : "");
    snprintf(json, sizeof json,
             "{\"architectures\": [\"Phi3ForCausalLM\"], \"hidden_size\": 64, "
             "\"num_hidden_layers\": 2, \"num_attention_heads\": 2, \"intermediate_size\": 32, "
             "\"vocab_size\": 8, \"max_position_embeddings\": 8192, "
             "\"original_max_position_embeddings\": 4096, \"rope_parameters\": {\"rope_type\": "
             "\"longrope\", \"rope_theta\": 10000.0, \"original_max_position_embeddings\": 2048, "
             "\"short_factor\": [%s], \"long_factor\": [%s]}}",
             factors, factors);
    p3_config cfg;
    p3_error err = {0};
    if (CHECK_OK(p3_config_parse_json(json, strlen(json), "config.json", &cfg, &err), &err))
        CHECK_EQ_INT(cfg.original_max_position_embeddings, 4096);
}
