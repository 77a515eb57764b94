/* chat_file.c: saving and loading a chat conversation as JSON (see chat_file.h). */
#include "chat_file.h"

#include "json.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A JSON string: quotes, backslashes and control characters escaped; UTF-8 kept as it is. */
static void write_json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", f);
        else if (*p == '\t')
            fputs("\\t", f);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

p3_status chat_file_save(const char *path, const phi3c_chat_message *msgs, size_t n,
                         p3_error *err) {
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
        return p3_fail(err, PHI3C_ERR_INVALID_ARG, "%s: path too long", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return p3_fail(err, PHI3C_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    fputs("{\"messages\": [", f);
    for (size_t i = 0; i < n; i++) {
        fputs(i ? ",\n  {\"role\": " : "\n  {\"role\": ", f);
        write_json_string(f, msgs[i].role);
        fputs(", \"content\": ", f);
        write_json_string(f, msgs[i].content);
        fputc('}', f);
    }
    fputs("\n]}\n", f);
    bool ok = !ferror(f);
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        return p3_fail(err, PHI3C_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    }
    return PHI3C_OK;
}

static const char *known_role(const char *role) {
    static const char *const roles[] = {"system", "user", "assistant"};
    for (size_t i = 0; i < P3_ARRAY_LEN(roles); i++)
        if (role && strcmp(role, roles[i]) == 0) return roles[i];
    return NULL;
}

static void free_messages(phi3c_chat_message *msgs, size_t n) {
    for (size_t i = 0; i < n; i++) free((char *)msgs[i].content);
    free(msgs);
}

p3_status chat_file_load(const char *path, phi3c_chat_message **out, size_t *n_out, p3_error *err) {
    json_doc *doc = NULL;
    p3_status st = json_parse_file(path, &doc, err);
    if (st != PHI3C_OK) return st;
    const json_value *root = json_root(doc), *list = root;
    if (json_typeof(root) == JSON_OBJECT) list = json_object_get(root, "messages");
    size_t n = json_array_len(list);
    phi3c_chat_message *msgs = calloc(n ? n : 1, sizeof *msgs);
    if (json_typeof(list) != JSON_ARRAY)
        st = p3_fail(err, PHI3C_ERR_FORMAT, "%s: no \"messages\" array", path);
    else if (!msgs)
        st = p3_fail(err, PHI3C_ERR_NOMEM, "%s: out of memory", path);
    for (size_t i = 0; st == PHI3C_OK && i < n; i++) {
        const json_value *m = json_array_at(list, i);
        const char *role = known_role(json_string(json_object_get(m, "role")));
        const char *content = json_string(json_object_get(m, "content"));
        if (!role || !content || strlen(content) == 0 || (i > 0 && role == known_role("system")))
            st = p3_fail(err, PHI3C_ERR_FORMAT,
                         "%s: message %zu: wants a role (system first, user or assistant) and a "
                         "non-empty content string",
                         path, i + 1);
        else if (!(msgs[i].content = strdup(content)))
            st = p3_fail(err, PHI3C_ERR_NOMEM, "%s: out of memory", path);
        msgs[i].role = role;
    }
    json_free(doc);
    if (st != PHI3C_OK) {
        if (msgs) free_messages(msgs, n);
        return st;
    }
    *out = msgs;
    *n_out = n;
    return PHI3C_OK;
}
