/* test_tokenizer_cli.c: `phi3c tokenize` / `phi3c detokenize` against HF tokenizers' ids and texts
 * (tests/fixtures/tokenizer/), byte for byte, for each kind of PATH; usage and error exits. */
#include "harness.h"

#include <stdlib.h>
#include <string.h>

static int hexval(char c) {
    return c <= '9' ? c - '0' : c - 'a' + 10;
}

static char *unhex(const char *s, const char *e, size_t *len) {
    size_t n = (size_t)(e - s) / 2;
    char *out = malloc(n + 1);
    for (size_t i = 0; i < n; i++) out[i] = (char)(hexval(s[2 * i]) * 16 + hexval(s[2 * i + 1]));
    out[n] = '\0';
    *len = n;
    return out;
}

static bool write_file(const char *path, const char *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = fwrite(data, 1, len, f) == len;
    return fclose(f) == 0 && ok;
}

static char *tok_dir(const char *version) {
    static char buf[4][512];
    static int next;
    char *b = buf[next++ & 3];
    snprintf(b, sizeof buf[0], "%s/data/phi3/%s", p3_test_shared_dir(), version);
    return b;
}

/* Runs tokenize --file and detokenize on the first `limit` oracle cases of a version. */
static void cli_roundtrip_cases(p3_test_ctx *t, const char *version, const char *model,
                                size_t limit) {
    char path[300];
    snprintf(path, sizeof path, "tests/fixtures/tokenizer/%s.cases", version);
    size_t size;
    char *data = p3_test_read_file(t, path, &size);
    if (!data) return;
    char text_file[400], cmd[4096];
    snprintf(text_file, sizeof text_file, "%s/text", p3_test_tmpdir(t));
    size_t done = 0, pass = 0;
    for (char *line = data; line < data + size && done < limit;) {
        char *nl = memchr(line, '\n', (size_t)(data + size - line));
        char *end = nl ? nl : data + size;
        const char *f[6];
        size_t nf = 0;
        for (char *p = line; p < end && nf < 6; nf++) {
            f[nf] = p;
            char *semi = memchr(p, ';', (size_t)(end - p));
            p = semi ? semi + 1 : end;
        }
        /* the ids field is short enough for one command line; skip the long random texts */
        if (line[0] == 'E' && nf == 6 && f[3] - f[2] < 1000) {
            size_t len, dlen;
            char *text = unhex(f[1], f[2] - 1, &len);
            char *dec = unhex(f[3], f[4] - 1, &dlen);
            char ids[1100];
            size_t idl = (size_t)(f[3] - 1 - f[2]);
            memcpy(ids, f[2], idl);
            ids[idl] = '\0';
            write_file(text_file, text, len);
            p3_cmd_result r;
            snprintf(cmd, sizeof cmd, "%s tokenize -m '%s' --file '%s'", p3_test_cli(), model,
                     text_file);
            bool ok = p3_test_run(t, cmd, &r) && r.exit_code == 0 && r.out_len == idl + 1 &&
                      memcmp(r.out, ids, idl) == 0 && r.out[idl] == '\n';
            CHECK_MSG(ok, "tokenize of \"%.40s\" printed \"%.80s\" (exit %d), want \"%s\\n\"", text,
                      r.out ? r.out : "", r.exit_code, ids);
            p3_cmd_result_free(&r);
            snprintf(cmd, sizeof cmd, "%s detokenize -m '%s' %s", p3_test_cli(), model,
                     idl ? ids : "");
            bool ok2 = p3_test_run(t, cmd, &r) && r.exit_code == 0 && r.out_len == dlen &&
                       memcmp(r.out, dec, dlen) == 0;
            CHECK_MSG(ok2, "detokenize %s gave \"%.60s\", want \"%.60s\"", ids, r.out ? r.out : "",
                      dec);
            p3_cmd_result_free(&r);
            pass += ok && ok2;
            done++;
            free(text);
            free(dec);
        }
        line = end + 1;
    }
    printf("    %s via %s: %zu/%zu CLI round trips identical to HF\n", version, model, pass, done);
    free(data);
}

P3_TEST_SLOW(tokenizer_cli_matches_hf) {
    cli_roundtrip_cases(t, "tokenizer-phi-3-mini", tok_dir("tokenizer-phi-3-mini"), 40);
    cli_roundtrip_cases(t, "tokenizer-phi-3-apr2024", tok_dir("tokenizer-phi-3-apr2024"), 15);
}

P3_TEST(tokenizer_cli_flags_and_paths) {
    char cmd[2048];
    p3_cmd_result r;
    const char *mini = tok_dir("tokenizer-phi-3-mini");
    /* BOS only with --bos; special tokens parsed unless --no-special (ids from HF tokenizers
     * 0.22.2: Tokenizer.from_file(...).encode(text, add_special_tokens=False)) */
    snprintf(cmd, sizeof cmd, "%s tokenize -m '%s' --bos 'Hello world'", p3_test_cli(), mini);
    p3_test_run(t, cmd, &r);
    CHECK_MSG(r.exit_code == 0 && r.out && strcmp(r.out, "1 15043 3186\n") == 0, "got %s", r.out);
    p3_cmd_result_free(&r);
    snprintf(cmd, sizeof cmd, "%s tokenize -m '%s' '<|end|>x'", p3_test_cli(), mini);
    p3_test_run(t, cmd, &r);
    CHECK_MSG(r.out && strcmp(r.out, "32007 921\n") == 0, "got %s", r.out);
    p3_cmd_result_free(&r);
    snprintf(cmd, sizeof cmd, "%s tokenize -m '%s' --no-special '<|end|>'", p3_test_cli(), mini);
    p3_test_run(t, cmd, &r);
    CHECK_MSG(r.out && strcmp(r.out, "529 29989 355 29989 29958\n") == 0, "got %s", r.out);
    p3_cmd_result_free(&r);
    /* a folder holding only tokenizer.model (a symlink to the shared file) */
    char spm_dir[400], link[500], target[500];
    snprintf(spm_dir, sizeof spm_dir, "%s/spm", p3_test_tmpdir(t));
    snprintf(link, sizeof link, "%s/tokenizer.model", spm_dir);
    snprintf(target, sizeof target, "%s/tokenizer.model", mini);
    char *abs_target = realpath(target, NULL);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && ln -s '%s' '%s'", spm_dir,
             abs_target ? abs_target : target, link);
    free(abs_target);
    CHECK(system(cmd) == 0);
    snprintf(cmd, sizeof cmd, "%s tokenize -m '%s' 'Hello world'", p3_test_cli(), spm_dir);
    p3_test_run(t, cmd, &r);
    CHECK_MSG(r.exit_code == 0 && r.out && strcmp(r.out, "15043 3186\n") == 0, "got %s (%s)", r.out,
              r.err);
    p3_cmd_result_free(&r);
    /* the vocab-only GGUF */
    snprintf(cmd, sizeof cmd,
             "%s tokenize -m '%s/data/llamacpp/ggml-vocab-phi-3.gguf' 'Hello world'", p3_test_cli(),
             p3_test_shared_dir());
    p3_test_run(t, cmd, &r);
    CHECK_MSG(r.exit_code == 0 && r.out && strcmp(r.out, "15043 3186\n") == 0, "got %s (%s)", r.out,
              r.err);
    p3_cmd_result_free(&r);
    /* detokenize: ids as one quoted list, no newline added, --skip-special */
    snprintf(cmd, sizeof cmd, "%s detokenize -m '%s' --skip-special '32010 15043, 3186' 32007",
             p3_test_cli(), mini);
    p3_test_run(t, cmd, &r);
    CHECK_MSG(r.exit_code == 0 && r.out_len == 11 && memcmp(r.out, "Hello world", 11) == 0,
              "got '%s'", r.out);
    p3_cmd_result_free(&r);
    /* errors: usage (2) and failures (1) with a message, never a crash */
    static const struct {
        const char *args;
        int code;
        const char *msg;
    } bad[] = {
        {"tokenize 'x'", 2, "-m PATH is required"},
        {"tokenize -m /nonexistent/x 'x'", 1, "no such file"},
        {"tokenize -m MINI", 2, "TEXT or --file"},
        {"tokenize -m MINI --frob x", 2, "unknown option"},
        {"detokenize -m MINI 12x", 2, "not a token id"},
        {"detokenize -m MINI 999999", 1, "out of range"},
    };
    for (size_t i = 0; i < P3_ARRAY_LEN(bad); i++) {
        char args[512];
        const char *m = strstr(bad[i].args, "MINI");
        if (m)
            snprintf(args, sizeof args, "%.*s'%s'%s", (int)(m - bad[i].args), bad[i].args, mini,
                     m + 4);
        else
            snprintf(args, sizeof args, "%s", bad[i].args);
        snprintf(cmd, sizeof cmd, "%s %s", p3_test_cli(), args);
        p3_test_run(t, cmd, &r);
        CHECK_MSG(r.exit_code == bad[i].code && r.signal == 0, "%s: exit %d", args, r.exit_code);
        CHECK_MSG(r.err && strstr(r.err, bad[i].msg), "%s: stderr '%s'", args, r.err);
        p3_cmd_result_free(&r);
    }
}
