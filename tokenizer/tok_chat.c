/* tok_chat.c: Phi-3's and Phi-4-mini's chat formats rendered in C. The tokenizer_config.json
 * template string is only compared with the templates phi3c knows (ignoring white space); no Jinja
 * engine is involved. */
#include "tok_internal.h"

#include <string.h>

typedef struct known_template {
    p3_chat_format format;
    const char *text;
} known_template;

static const known_template known_templates[] = {
    /* Phi-3-mini-4k/128k-instruct, current tokenizer_config.json */
    {P3_CHAT_PHI3,
     "{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\n' + "
     "message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\n' + "
     "message['content'] + '<|end|>\n'}}{% elif message['role'] == 'assistant' "
     "%}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}{% if "
     "add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"},
    /* Phi-3.5-mini-instruct: a system message is written only when it has content */
    {P3_CHAT_PHI3_5,
     "{% for message in messages %}{% if message['role'] == 'system' and message['content'] "
     "%}{{'<|system|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' "
     "%}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == "
     "'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% "
     "endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% "
     "endif %}"},
    /* April-2024 Phi-3-mini (also llama.cpp's Phi-3 GGUF files) */
    {P3_CHAT_PHI3_APR2024,
     "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') "
     "%}{{'<|user|>' + '\n' + message['content'] + '<|end|>' + '\n' + '<|assistant|>' + "
     "'\n'}}{% elif (message['role'] == 'assistant') %}{{message['content'] + '<|end|>' + "
     "'\n'}}{% endif %}{% endfor %}"},
    /* Phi-3-medium */
    {P3_CHAT_PHI3_MEDIUM,
     "{% for message in messages %}{% if (message['role'] == 'user') %}{{'<|user|>' + '\n' + "
     "message['content'] + '<|end|>' + '\n' + '<|assistant|>' + '\n'}}{% elif "
     "(message['role'] == 'assistant') %}{{message['content'] + '<|end|>' + '\n'}}{% endif "
     "%}{% endfor %}"},
    /* Phi-4-mini-instruct (a system message may carry tools; phi3c's messages have none) */
    {P3_CHAT_PHI4,
     "{% for message in messages %}{% if message['role'] == 'system' and 'tools' in message and "
     "message['tools'] is not none %}{{ '<|' + message['role'] + '|>' + message['content'] + "
     "'<|tool|>' + message['tools'] + '<|/tool|>' + '<|end|>' }}{% else %}{{ '<|' + "
     "message['role'] + '|>' + message['content'] + '<|end|>' }}{% endif %}{% endfor %}{% if "
     "add_generation_prompt %}{{ '<|assistant|>' }}{% else %}{{ eos_token }}{% endif %}"},
};

static bool is_space(char c) {
    return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

/* Equal when both hold the same characters apart from white space. */
static bool same_but_space(const char *a, size_t an, const char *b, size_t bn) {
    size_t i = 0, j = 0;
    for (;;) {
        while (i < an && is_space(a[i])) i++;
        while (j < bn && is_space(b[j])) j++;
        if (i == an || j == bn) return i == an && j == bn;
        if (a[i++] != b[j++]) return false;
    }
}

void tok_detect_chat(p3_tokenizer *tok, const char *tmpl, size_t len) {
    tok->have_chat_template = tmpl != NULL;
    tok->chat_format = P3_CHAT_UNKNOWN;
    if (!tmpl) {
        /* no template: the current Phi-3 format when the vocabulary has its tokens */
        if (tok_lookup(tok, "<|user|>", 8) >= 0 && tok_lookup(tok, "<|assistant|>", 13) >= 0 &&
            tok_lookup(tok, "<|end|>", 7) >= 0)
            tok->chat_format = P3_CHAT_PHI3;
        return;
    }
    for (size_t i = 0; i < P3_ARRAY_LEN(known_templates); i++) {
        const char *k = known_templates[i].text;
        if (same_but_space(tmpl, len, k, strlen(k))) {
            tok->chat_format = known_templates[i].format;
            return;
        }
    }
}

p3_chat_format p3_tokenizer_chat_format(const p3_tokenizer *tok) {
    return tok->chat_format;
}

typedef struct chat_buf {
    char *data;
    size_t len, cap;
    bool oom;
} chat_buf;

static void put(chat_buf *b, const char *s, size_t n) {
    if (b->oom) return;
    size_t need;
    if (!p3_add_size(b->len, n + 1, &need)) {
        b->oom = true;
        return;
    }
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
        char *d = p3_realloc(b->data, cap);
        if (!d) {
            b->oom = true;
            return;
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void puts_(chat_buf *b, const char *s) {
    put(b, s, strlen(s));
}

static void put_piece(chat_buf *b, const p3_tokenizer *tok, int32_t id) {
    size_t n;
    const char *p = p3_tokenizer_piece(tok, id, &n);
    if (p) put(b, p, n);
}

static const char *format_name(p3_chat_format f) {
    switch (f) {
    case P3_CHAT_PHI3:
        return "Phi-3";
    case P3_CHAT_PHI3_5:
        return "Phi-3.5";
    case P3_CHAT_PHI3_APR2024:
        return "Phi-3 (April 2024)";
    case P3_CHAT_PHI3_MEDIUM:
        return "Phi-3-medium";
    case P3_CHAT_PHI4:
        return "Phi-4-mini";
    default:
        return "unknown";
    }
}

const char *p3_chat_format_name(p3_chat_format format) {
    return format_name(format);
}

static void render_phi4(chat_buf *b, const p3_tokenizer *tok, const p3_chat_message *m, size_t n,
                        bool add_generation_prompt) {
    for (size_t i = 0; i < n; i++) {
        puts_(b, "<|");
        puts_(b, m[i].role);
        puts_(b, "|>");
        puts_(b, m[i].content ? m[i].content : "");
        puts_(b, "<|end|>");
    }
    if (add_generation_prompt)
        puts_(b, "<|assistant|>");
    else
        put_piece(b, tok, tok->eos_id);
}

static void render(chat_buf *b, const p3_tokenizer *tok, const p3_chat_message *m, size_t n,
                   bool add_generation_prompt) {
    p3_chat_format f = tok->chat_format;
    if (f == P3_CHAT_PHI4) {
        render_phi4(b, tok, m, n, add_generation_prompt);
        return;
    }
    bool with_system = f == P3_CHAT_PHI3 || f == P3_CHAT_PHI3_5;
    if (f == P3_CHAT_PHI3_APR2024) put_piece(b, tok, tok->bos_id);
    for (size_t i = 0; i < n; i++) {
        const char *role = m[i].role, *content = m[i].content ? m[i].content : "";
        if (with_system) {
            bool is_sys = strcmp(role, "system") == 0;
            if (is_sys && f == P3_CHAT_PHI3_5 && !content[0]) continue;
            puts_(b, is_sys                      ? "<|system|>\n"
                     : strcmp(role, "user") == 0 ? "<|user|>\n"
                                                 : "<|assistant|>\n");
            puts_(b, content);
            puts_(b, "<|end|>\n");
        } else if (strcmp(role, "user") == 0) {
            puts_(b, "<|user|>\n");
            puts_(b, content);
            puts_(b, "<|end|>\n<|assistant|>\n");
        } else if (strcmp(role, "assistant") == 0) {
            puts_(b, content);
            puts_(b, "<|end|>\n");
        } /* these templates drop system messages */
    }
    if (with_system) {
        if (add_generation_prompt)
            puts_(b, "<|assistant|>\n");
        else
            put_piece(b, tok, tok->eos_id);
    }
}

p3_status p3_tokenizer_apply_chat(const p3_tokenizer *tok, const p3_chat_message *messages,
                                  size_t n_messages, bool add_generation_prompt, char **text,
                                  size_t *len, p3_error *err) {
    *text = NULL;
    *len = 0;
    if (tok->chat_format == P3_CHAT_UNKNOWN)
        return p3_fail(err, PHI3C_ERR_UNSUPPORTED,
                       tok->have_chat_template
                           ? "%s: the chat template in tokenizer_config.json is not one of the "
                             "formats phi3c knows (Phi-3, Phi-3.5, Phi-3 April 2024, "
                             "Phi-3-medium, Phi-4-mini)"
                           : "%s: no chat template and no Phi-3 chat tokens in the vocabulary",
                       tok->what);
    for (size_t i = 0; i < n_messages; i++) {
        const char *r = messages[i].role;
        if (!r || (strcmp(r, "system") && strcmp(r, "user") && strcmp(r, "assistant")))
            return p3_fail(err, PHI3C_ERR_INVALID_ARG,
                           "chat: message %zu has role '%s' (want system, user or assistant)", i,
                           r ? r : "(null)");
    }
    chat_buf b = {0};
    put(&b, "", 0);
    render(&b, tok, messages, n_messages, add_generation_prompt);
    if (b.oom) {
        p3_free(b.data);
        return p3_fail(err, PHI3C_ERR_NOMEM, "chat: out of memory");
    }
    *text = b.data;
    *len = b.len;
    return PHI3C_OK;
}
