/* fuzz_server_json.c: libFuzzer target for the server's own JSON reader (tools/server/json.c,
 * which reads every request body): any bytes parse or fail with a message, a parsed tree is
 * walkable, and every string written back by the writer reads back as the same bytes. */
#include "../../tools/server/json.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void round_trip(const char *s, size_t len) {
    sbuf b = {0};
    sb_json_str(&b, s, len);
    if (b.failed) return;
    char err[128];
    js_node *back = js_parse(b.data, b.len, err, sizeof err);
    if (!back || back->type != JS_STRING || back->len != len || memcmp(back->str, s, len) != 0)
        __builtin_trap();
    js_free(back);
    sb_free(&b);
}

static void walk(const js_node *n, int depth) {
    if (depth > MAX_DEPTH + 1) __builtin_trap();
    if (n->type == JS_STRING) {
        if (n->str[n->len] != '\0') __builtin_trap();
        round_trip(n->str, n->len);
    }
    for (size_t i = 0; i < n->n; i++) {
        if (n->type == JS_OBJECT && (!n->kids[i].key || !js_get(n, n->kids[i].key)))
            __builtin_trap();
        walk(&n->kids[i], depth + 1);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[128] = "";
    js_node *root = js_parse((const char *)data, size, err, sizeof err);
    if (root) {
        walk(root, 0);
        js_free(root);
    } else if (strncmp(err, "at byte ", 8) != 0 && strcmp(err, "out of memory") != 0) {
        __builtin_trap(); /* every error says where */
    }
    return 0;
}
