/* test_loaders_json.c: the JSON reader against hand-derived expectations (RFC 8259 grammar, UTF-8
 * encodings from the Unicode standard) and against Python's json module's view of the real
 * Phi-3 tokenizer.json (counts and ids below were read with Python, not with phi3c). */
#include "harness.h"
#include "json.h"

#include <string.h>

static json_doc *parse_ok(p3_test_ctx *t, const char *text) {
    json_doc *doc = NULL;
    p3_error err = {0};
    CHECK_MSG(json_parse(text, strlen(text), "t.json", &doc, &err) == PHI3C_OK, "%s: %s", text,
              err.message);
    return doc;
}

/* Parses text that must fail; checks the message names the file and the byte offset. */
static void parse_bad(p3_test_ctx *t, const char *text, size_t len, size_t want_byte) {
    json_doc *doc = NULL;
    p3_error err = {0};
    p3_status st = json_parse(text, len, "bad.json", &doc, &err);
    CHECK_MSG(st == PHI3C_ERR_FORMAT, "accepted %.*s", (int)len, text);
    CHECK(doc == NULL);
    char want[64];
    snprintf(want, sizeof want, "bad.json: byte %zu:", want_byte);
    CHECK_MSG(strncmp(err.message, want, strlen(want)) == 0, "for %.*s got '%s', want '%s...'",
              (int)len, text, err.message, want);
}

P3_TEST(json_values_and_types) {
    json_doc *doc = parse_ok(t, " {\"a\": [1, -2.5, true, false, null, \"x\"], \"b\": {}, "
                                "\"c\": [], \"d\": {\"e\": \"f\"}} \n");
    if (!doc) return;
    const json_value *root = json_root(doc);
    CHECK(json_typeof(root) == JSON_OBJECT);
    CHECK_EQ_INT(json_object_size(root), 4);
    const json_value *a = json_object_get(root, "a");
    CHECK_EQ_INT(json_array_len(a), 6);
    int64_t i = 0;
    double d = 0;
    bool b = false;
    CHECK(json_get_int(json_array_at(a, 0), &i) && i == 1);
    CHECK(json_get_double(json_array_at(a, 1), &d) && d == -2.5);
    CHECK(!json_get_int(json_array_at(a, 1), &i));
    CHECK(json_get_bool(json_array_at(a, 2), &b) && b);
    CHECK(json_get_bool(json_array_at(a, 3), &b) && !b);
    CHECK(json_is_null(json_array_at(a, 4)));
    CHECK(strcmp(json_string(json_array_at(a, 5)), "x") == 0);
    CHECK(json_array_at(a, 6) == NULL);
    CHECK(json_typeof(json_object_get(root, "b")) == JSON_OBJECT);
    CHECK_EQ_INT(json_object_size(json_object_get(root, "b")), 0);
    CHECK_EQ_INT(json_array_len(json_object_get(root, "c")), 0);
    CHECK(strcmp(json_string(json_object_get(json_object_get(root, "d"), "e")), "f") == 0);
    CHECK(json_object_get(root, "missing") == NULL);
    CHECK(json_object_get(json_object_get(root, "missing"), "x") == NULL); /* NULL chains */
    CHECK(!json_is_null(json_object_get(root, "missing")));
    size_t len = 0;
    CHECK(strcmp(json_object_key_at(root, 3, &len), "d") == 0 && len == 1);
    CHECK(json_object_key_at(root, 4, NULL) == NULL);
    json_free(doc);

    /* top-level scalars are documents too */
    doc = parse_ok(t, "\"only\"");
    CHECK(doc && strcmp(json_string(json_root(doc)), "only") == 0);
    json_free(doc);
}

P3_TEST(json_numbers) {
    static const struct {
        const char *text;
        bool is_int;
        int64_t i;
        double d;
    } cases[] = {
        {"0", true, 0, 0.0},
        {"-0", true, 0, 0.0},
        {"7", true, 7, 7.0},
        {"7.0", false, 0, 7.0}, /* written as a float: not an int */
        {"7e0", false, 0, 7.0},
        {"1E2", false, 0, 100.0},
        {"7.5", false, 0, 7.5},
        {"0.1", false, 0, 0.1},
        {"1e-05", false, 0, 1e-05},
        {"-9223372036854775808", true, INT64_MIN, -9223372036854775808.0},
        {"9223372036854775807", true, INT64_MAX, 9223372036854775807.0},
        {"9223372036854775808", false, 0, 9223372036854775808.0},
        {"131072", true, 131072, 131072.0},
        {"10000.0", false, 0, 10000.0},
    };
    for (size_t k = 0; k < P3_ARRAY_LEN(cases); k++) {
        json_doc *doc = parse_ok(t, cases[k].text);
        if (!doc) continue;
        int64_t i = 0;
        double d = 0;
        CHECK_MSG(json_get_int(json_root(doc), &i) == cases[k].is_int, "%s int", cases[k].text);
        if (cases[k].is_int) CHECK_MSG(i == cases[k].i, "%s -> %lld", cases[k].text, (long long)i);
        CHECK(json_get_double(json_root(doc), &d) && d == cases[k].d);
        json_free(doc);
    }
    parse_bad(t, "01", 2, 0);
    parse_bad(t, "1.", 2, 0);
    parse_bad(t, "1e", 2, 0);
    parse_bad(t, "-", 1, 0);
    parse_bad(t, "+1", 2, 0);
    parse_bad(t, ".5", 2, 0);
    parse_bad(t, "[1e400]", 7, 1);
    parse_bad(t, "NaN", 3, 0);
}

P3_TEST(json_string_escapes_to_utf8) {
    json_doc *doc =
        parse_ok(t, "[\"\\u00e9\", \"\\ud83d\\ude00\", \"a\\u0000b\", "
                    "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\", \"\xe2\x96\x81the\", \"\\u2581\"]");
    if (!doc) return;
    const json_value *a = json_root(doc);
    const char *s;
    size_t len;
    CHECK(json_get_string(json_array_at(a, 0), &s, &len) && len == 2 &&
          memcmp(s, "\xc3\xa9", 2) == 0);
    /* U+1F600 from the surrogate pair D83D DE00 */
    CHECK(json_get_string(json_array_at(a, 1), &s, &len) && len == 4 &&
          memcmp(s, "\xf0\x9f\x98\x80", 4) == 0);
    CHECK(json_get_string(json_array_at(a, 2), &s, &len) && len == 3 && memcmp(s, "a\0b", 3) == 0);
    CHECK(json_get_string(json_array_at(a, 3), &s, &len) && len == 8 &&
          memcmp(s, "\"\\/\b\f\n\r\t", 8) == 0);
    CHECK(json_get_string(json_array_at(a, 4), &s, &len) && len == 6 &&
          memcmp(s, "\xe2\x96\x81the", 6) == 0);
    CHECK(json_get_string(json_array_at(a, 5), &s, &len) && len == 3 &&
          memcmp(s, "\xe2\x96\x81", 3) == 0 && s[3] == '\0');
    json_free(doc);
}

P3_TEST(json_rejects_bad_strings) {
    parse_bad(t, "\"\\ud83d\"", 8, 1);         /* lone high surrogate */
    parse_bad(t, "\"\\ude00\"", 8, 1);         /* lone low surrogate */
    parse_bad(t, "\"\\ud83d\\u0041\"", 14, 1); /* high + non-low */
    parse_bad(t, "\"\\u12g4\"", 8, 1);         /* bad hex */
    parse_bad(t, "\"\\x\"", 4, 1);             /* unknown escape */
    parse_bad(t, "\"a\tb\"", 5, 2);            /* raw control character */
    parse_bad(t, "\"abc", 4, 0);               /* unterminated */
    parse_bad(t, "\"\xc0\x80\"", 4, 1);        /* overlong NUL */
    parse_bad(t, "\"\xed\xa0\x80\"", 5, 1);    /* UTF-8 encoded surrogate */
    parse_bad(t, "\"ok\xff\"", 5, 3);          /* stray byte */
    parse_bad(t, "\"\xe2\x96\"", 4, 1);        /* truncated sequence */
    parse_bad(t, "{\"k\xfe\": 1}", 9, 3);      /* non-UTF-8 key */
    parse_bad(t, "\"\\u00", 5, 0);             /* unterminated inside an escape */
}

P3_TEST(json_rejects_bad_structure) {
    parse_bad(t, "", 0, 0);
    parse_bad(t, "   ", 3, 3);
    parse_bad(t, "{} x", 4, 3);
    parse_bad(t, "[1] [2]", 7, 4);
    parse_bad(t, "[1,]", 4, 3);
    parse_bad(t, "[1 2]", 5, 3);
    parse_bad(t, "{\"a\" 1}", 7, 5);
    parse_bad(t, "{\"a\":1,}", 8, 7);
    parse_bad(t, "{1:2}", 5, 1);
    parse_bad(t, "[", 1, 1);
    parse_bad(t, "[1", 2, 0);
    parse_bad(t, "tru", 3, 0);
    parse_bad(t, "nulll", 5, 4);
    parse_bad(t, "{\"a\":1", 6, 0);
    /* text with an embedded NUL is not "the value then nothing" */
    parse_bad(t, "1\0", 2, 1);
}

P3_TEST(json_depth_limit) {
    char buf[2 * (JSON_MAX_DEPTH + 2) + 1];
    for (int depth = JSON_MAX_DEPTH + 1; depth <= JSON_MAX_DEPTH + 2; depth++) {
        size_t n = 0;
        for (int k = 0; k < depth; k++) buf[n++] = '[';
        for (int k = 0; k < depth; k++) buf[n++] = ']';
        json_doc *doc = NULL;
        p3_error err = {0};
        p3_status st = json_parse(buf, n, "deep.json", &doc, &err);
        /* depth+1 brackets = JSON_MAX_DEPTH levels below the root: the deepest accepted */
        if (depth == JSON_MAX_DEPTH + 1) {
            CHECK_MSG(st == PHI3C_OK, "%s", err.message);
        } else {
            CHECK(st == PHI3C_ERR_FORMAT && strstr(err.message, "deep.json: byte") &&
                  strstr(err.message, "nesting"));
        }
        json_free(doc);
    }
    /* hostile depth far beyond the limit stops at the limit (no stack exhaustion) */
    size_t n = 1u << 20;
    char *deep = p3_malloc(n);
    memset(deep, '[', n);
    json_doc *doc = NULL;
    p3_error err = {0};
    CHECK_STATUS(json_parse(deep, n, "deep.json", &doc, &err), PHI3C_ERR_FORMAT);
    p3_free(deep);
}

P3_TEST(json_duplicate_keys_last_wins) {
    /* small (scanned) and large (hashed) objects agree, as Python's json does */
    json_doc *doc = parse_ok(t, "{\"k\":1,\"k\":2}");
    int64_t v = 0;
    CHECK(doc && json_get_int(json_object_get(json_root(doc), "k"), &v) && v == 2);
    json_free(doc);
    char big[1024];
    size_t n = (size_t)snprintf(big, sizeof big, "{");
    for (int k = 0; k < 40; k++)
        n += (size_t)snprintf(big + n, sizeof big - n, "\"m%d\":%d,", k, k);
    snprintf(big + n, sizeof big - n, "\"m7\":99}");
    doc = parse_ok(t, big);
    if (!doc) return;
    const json_value *root = json_root(doc);
    CHECK_EQ_INT(json_object_size(root), 41);
    for (int k = 0; k < 40; k++) {
        char key[16];
        snprintf(key, sizeof key, "m%d", k);
        CHECK(json_get_int(json_object_get(root, key), &v) && v == (k == 7 ? 99 : k));
    }
    CHECK(json_object_get(root, "m40") == NULL);
    CHECK(json_object_getn(root, "m1x", 2) == json_object_get(root, "m1"));
    json_free(doc);
}

P3_TEST(json_real_tokenizer_json) {
    char path[512];
    snprintf(path, sizeof path, "%s/data/phi3/tokenizer-phi-3-mini/tokenizer.json",
             p3_test_shared_dir());
    json_doc *doc = NULL;
    p3_error err = {0};
    if (!CHECK_OK(json_parse_file(path, &doc, &err), &err)) return;
    const json_value *model = json_object_get(json_root(doc), "model");
    CHECK(strcmp(json_string(json_object_get(model, "type")), "BPE") == 0);
    const json_value *vocab = json_object_get(model, "vocab");
    const json_value *merges = json_object_get(model, "merges");
    /* Python: len(vocab) 32000, len(merges) 61249, vocab['▁the'] 278, vocab['<0x0A>'] 13,
     * merges[0] '▁ t', 14 added tokens, the last <|user|> 32010 rstrip true */
    CHECK_EQ_INT(json_object_size(vocab), 32000);
    CHECK_EQ_INT(json_array_len(merges), 61249);
    int64_t id = -1;
    CHECK(json_get_int(json_object_get(vocab, "\xe2\x96\x81the"), &id) && id == 278);
    CHECK(json_get_int(json_object_get(vocab, "<0x0A>"), &id) && id == 13);
    CHECK(strcmp(json_string(json_array_at(merges, 0)), "\xe2\x96\x81 t") == 0);
    const json_value *added = json_object_get(json_root(doc), "added_tokens");
    CHECK_EQ_INT(json_array_len(added), 14);
    const json_value *last = json_array_at(added, 13);
    bool rstrip = false;
    CHECK(json_get_int(json_object_get(last, "id"), &id) && id == 32010);
    CHECK(json_get_bool(json_object_get(last, "rstrip"), &rstrip) && rstrip);
    CHECK(strcmp(json_string(json_object_get(last, "content")), "<|user|>") == 0);
    json_free(doc);
}

P3_TEST(json_missing_file_names_it) {
    json_doc *doc = NULL;
    p3_error err = {0};
    CHECK_STATUS(json_parse_file("/nonexistent/x.json", &doc, &err), PHI3C_ERR_IO);
    CHECK(strstr(err.message, "/nonexistent/x.json") != NULL);
}

#ifdef P3_FAULT_INJECTION
P3_TEST(json_allocation_failures_are_clean) {
    const char *text = "{\"a\": [1, 2, {\"b\": \"\\u00e9\"}], \"c\": \"dddddddddddddddddd\", "
                       "\"k0\":0,\"k1\":1,\"k2\":2,\"k3\":3,\"k4\":4,\"k5\":5,\"k6\":6,\"k7\":7}";
    for (long n = 0; n < 100; n++) {
        json_doc *doc = NULL;
        p3_error err = {0};
        p3_alloc_fail_after(n);
        p3_status st = json_parse(text, strlen(text), "t.json", &doc, &err);
        p3_alloc_fail_after(-1);
        if (st == PHI3C_OK) {
            json_free(doc);
            break;
        }
        CHECK_MSG(st == PHI3C_ERR_NOMEM && doc == NULL, "n=%ld: %s", n, err.message);
    }
}
#endif
