/* routes.c: the OpenAI-shaped JSON of the endpoints: completion requests read and checked (every
 * bad field a 400 naming it), responses and streamed chunks written, /tokenize, /detokenize and
 * /v1/models. */
#include "routes.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int bad(char *why, size_t why_len, const char *fmt, const char *field) {
    snprintf(why, why_len, fmt, field);
    return 400;
}

static char *dup_n(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* A number field in [lo, hi] (absent: untouched). */
static int number_field(const js_node *body, const char *key, double lo, double hi, double *out,
                        char *why, size_t why_len) {
    const js_node *v = js_get(body, key);
    if (!v || v->type == JS_NULL) return 0;
    if (v->type != JS_NUMBER) return bad(why, why_len, "'%s' must be a number", key);
    if (v->number < lo || v->number > hi) {
        snprintf(why, why_len, "'%s' is %g, outside [%g, %g]", key, v->number, lo, hi);
        return 400;
    }
    *out = v->number;
    return 0;
}

static int int_field(const js_node *body, const char *key, double lo, double hi, double *out,
                     char *why, size_t why_len) {
    int st = number_field(body, key, lo, hi, out, why, why_len);
    if (st == 0 && js_get(body, key) && js_get(body, key)->type == JS_NUMBER && *out != floor(*out))
        return bad(why, why_len, "'%s' must be an integer", key);
    return st;
}

static int bool_field(const js_node *body, const char *key, bool *out, char *why, size_t why_len) {
    const js_node *v = js_get(body, key);
    if (!v || v->type == JS_NULL) return 0;
    if (v->type != JS_BOOL) return bad(why, why_len, "'%s' must be true or false", key);
    *out = v->boolean;
    return 0;
}

static int read_stops(const js_node *body, request *req, char *why, size_t why_len) {
    const js_node *v = js_get(body, "stop");
    if (!v || v->type == JS_NULL) return 0;
    size_t n = v->type == JS_ARRAY ? v->n : 1;
    if (v->type != JS_STRING && v->type != JS_ARRAY)
        return bad(why, why_len, "'%s' must be a string or an array of strings", "stop");
    if (n > 4) return bad(why, why_len, "'%s' takes at most 4 sequences", "stop");
    req->stops = calloc(n ? n : 1, sizeof *req->stops);
    if (!req->stops) return 500;
    for (size_t i = 0; i < n; i++) {
        const js_node *s = v->type == JS_ARRAY ? &v->kids[i] : v;
        if (s->type != JS_STRING || s->len == 0 || strlen(s->str) != s->len)
            return bad(why, why_len, "'%s' entries must be non-empty strings", "stop");
        req->stops[req->n_stops++] = dup_n(s->str, s->len);
    }
    return 0;
}

/* Sampling and length fields shared by both completion endpoints. */
static int read_common(const js_node *body, request *req, char *why, size_t why_len) {
    phi3c_sampler_params *sp = &req->sampler;
    *sp = phi3c_sampler_params_default();
    sp->temperature = 1.0f, sp->top_k = 0, sp->top_p = 1.0f, sp->min_p = 0.0f; /* OpenAI's */
    double d, n = 1;
    int st;
    if ((st = int_field(body, "n", 1, 1, &n, why, why_len))) return st;
    d = 0;
    if ((st = number_field(body, "frequency_penalty", -2, 2, &d, why, why_len))) return st;
    if (d != 0) return bad(why, why_len, "'%s' is not supported (only 0)", "frequency_penalty");
    if ((st = number_field(body, "presence_penalty", -2, 2, &d, why, why_len))) return st;
    if (d != 0) return bad(why, why_len, "'%s' is not supported (only 0)", "presence_penalty");
    d = sp->temperature;
    if ((st = number_field(body, "temperature", 0, 2, &d, why, why_len))) return st;
    sp->temperature = (float)d;
    d = sp->top_p;
    if ((st = number_field(body, "top_p", 0, 1, &d, why, why_len))) return st;
    sp->top_p = (float)d;
    d = sp->min_p;
    if ((st = number_field(body, "min_p", 0, 1, &d, why, why_len))) return st;
    sp->min_p = (float)d;
    d = sp->top_k;
    if ((st = int_field(body, "top_k", 0, 1 << 20, &d, why, why_len))) return st;
    sp->top_k = (int)d;
    d = -1;
    if ((st = int_field(body, "seed", -9.2e18, 9.2e18, &d, why, why_len))) return st;
    sp->seed = d >= 0 ? (uint64_t)d : (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)req;
    d = 0;
    if ((st = int_field(body, "max_tokens", 0, 1 << 24, &d, why, why_len))) return st;
    if ((st = int_field(body, "max_completion_tokens", 0, 1 << 24, &d, why, why_len))) return st;
    req->max_tokens = (int)d;
    d = -1; /* absent: the server's --lookup */
    if ((st = int_field(body, "lookup", 0, PHI3C_LOOKUP_MAX, &d, why, why_len))) return st;
    req->lookup = (int)d;
    if ((st = bool_field(body, "stream", &req->stream, why, why_len))) return st;
    const js_node *so = js_get(body, "stream_options");
    if (so && so->type != JS_NULL) {
        if (so->type != JS_OBJECT)
            return bad(why, why_len, "'%s' must be an object", "stream_options");
        if ((st = bool_field(so, "include_usage", &req->include_usage, why, why_len))) return st;
    }
    return read_stops(body, req, why, why_len);
}

static bool known_role(const char *r) {
    return strcmp(r, "system") == 0 || strcmp(r, "user") == 0 || strcmp(r, "assistant") == 0;
}

/* A message's content: a string, or an array of {"type":"text","text":...} parts joined. */
static int message_content(const js_node *c, char **out, char *why, size_t why_len) {
    if (c && c->type == JS_STRING) {
        *out = dup_n(c->str, c->len);
        return *out ? 0 : 500;
    }
    if (!c || c->type != JS_ARRAY)
        return bad(why, why_len, "'%s' must be a string or an array of text parts", "content");
    sbuf b = {0};
    for (size_t i = 0; i < c->n; i++) {
        const js_node *t = js_get(&c->kids[i], "text"), *ty = js_get(&c->kids[i], "type");
        if (!t || t->type != JS_STRING || !ty || ty->type != JS_STRING || strcmp(ty->str, "text")) {
            sb_free(&b);
            return bad(why, why_len, "'%s' parts must be {\"type\": \"text\", \"text\": ...}",
                       "content");
        }
        sb_add(&b, t->str, t->len);
    }
    sb_add(&b, "", 0);
    *out = b.data;
    return b.failed ? 500 : 0;
}

static int read_messages(const js_node *body, request *req, char *why, size_t why_len) {
    const js_node *m = js_get(body, "messages");
    if (!m || m->type != JS_ARRAY) return bad(why, why_len, "'%s' must be an array", "messages");
    if (m->n == 0) return bad(why, why_len, "'%s' must not be empty", "messages");
    if (m->n > 4096) return bad(why, why_len, "'%s' has too many entries", "messages");
    req->msgs = calloc(m->n, sizeof *req->msgs);
    if (!req->msgs) return 500;
    for (size_t i = 0; i < m->n; i++) {
        const js_node *role = js_get(&m->kids[i], "role");
        if (m->kids[i].type != JS_OBJECT || !role || role->type != JS_STRING)
            return bad(why, why_len, "every message needs a string '%s'", "role");
        if (!known_role(role->str)) {
            snprintf(why, why_len, "unknown role '%.64s' (system, user or assistant)", role->str);
            return 400;
        }
        char *content = NULL;
        int st = message_content(js_get(&m->kids[i], "content"), &content, why, why_len);
        if (st) return st;
        req->msgs[req->n_msgs++] = (phi3c_chat_message){dup_n(role->str, role->len), content};
    }
    return 0;
}

static int too_long(size_t n_prompt, int n_ctx, char *why, size_t why_len) {
    snprintf(why, why_len,
             "This model's maximum context length is %d tokens. However, your prompt has %zu "
             "tokens (and at least 1 is needed for the answer).",
             n_ctx, n_prompt);
    return 400;
}

int route_parse_chat(phi3c_model *model, int n_ctx, const js_node *body, request *req, char *why,
                     size_t why_len) {
    if (body->type != JS_OBJECT) return bad(why, why_len, "the body must be a JSON %s", "object");
    int st = read_common(body, req, why, why_len);
    if (!st) st = read_messages(body, req, why, why_len);
    if (st) return st;
    req->chat = true;
    phi3c_error err = {0};
    char *text = NULL;
    size_t len = 0;
    int32_t *ids = NULL;
    if (phi3c_chat_render(model, req->msgs, req->n_msgs, true, &text, &len, &err) != PHI3C_OK ||
        phi3c_tokenize(model, text, len, false, &ids, &req->n_prompt, &err) != PHI3C_OK) {
        phi3c_free(text);
        snprintf(why, why_len, "%s", err.message);
        return 400;
    }
    phi3c_free(text);
    phi3c_free(ids);
    if (req->n_prompt + 1 > (size_t)n_ctx) return too_long(req->n_prompt, n_ctx, why, why_len);
    return 0;
}

/* A prompt given as token ids (as OpenAI's API allows), fed as they are. */
static int prompt_ids(phi3c_model *model, int n_ctx, const js_node *p, request *req, char *why,
                      size_t why_len) {
    int vocab = phi3c_model_vocab_size(model);
    if (p->n == 0) return bad(why, why_len, "'%s' must not be empty", "prompt");
    req->prompt = malloc(p->n * sizeof *req->prompt);
    if (!req->prompt) return 500;
    for (size_t i = 0; i < p->n; i++) {
        const js_node *v = &p->kids[i];
        if (v->type != JS_NUMBER || v->number != floor(v->number) || v->number < 0 ||
            v->number >= vocab) {
            snprintf(why, why_len, "'prompt' must be a string or token ids in 0..%d", vocab - 1);
            return 400;
        }
        req->prompt[i] = (int32_t)v->number;
    }
    req->n_prompt = p->n;
    if (req->n_prompt + 1 > (size_t)n_ctx) return too_long(req->n_prompt, n_ctx, why, why_len);
    return 0;
}

int route_parse_completion(phi3c_model *model, int n_ctx, const js_node *body, request *req,
                           char *why, size_t why_len) {
    if (body->type != JS_OBJECT) return bad(why, why_len, "the body must be a JSON %s", "object");
    int st = read_common(body, req, why, why_len);
    if (st) return st;
    const js_node *p = js_get(body, "prompt");
    if (p && p->type == JS_ARRAY) return prompt_ids(model, n_ctx, p, req, why, why_len);
    if (!p || p->type != JS_STRING)
        return bad(why, why_len, "'%s' must be a string or an array of token ids", "prompt");
    if (p->len == 0) return bad(why, why_len, "'%s' must not be empty", "prompt");
    phi3c_error err = {0};
    int32_t *ids = NULL;
    if (phi3c_tokenize(model, p->str, p->len, true, &ids, &req->n_prompt, &err) != PHI3C_OK) {
        snprintf(why, why_len, "%s", err.message);
        return 400;
    }
    req->prompt = malloc((req->n_prompt ? req->n_prompt : 1) * sizeof *req->prompt);
    if (req->prompt) memcpy(req->prompt, ids, req->n_prompt * sizeof *ids);
    phi3c_free(ids);
    if (!req->prompt) return 500;
    if (req->n_prompt == 0) return bad(why, why_len, "'%s' has no tokens", "prompt");
    if (req->n_prompt + 1 > (size_t)n_ctx) return too_long(req->n_prompt, n_ctx, why, why_len);
    return 0;
}

/* ---- responses */

/* Lookup drafts are reported as OpenAI reports predicted outputs: the draft tokens the model
 * kept and the ones it did not. */
static void usage_json(const request *req, sbuf *out) {
    sb_printf(out,
              "\"usage\":{\"prompt_tokens\":%zu,\"completion_tokens\":%d,\"total_tokens\":%zu,"
              "\"completion_tokens_details\":{\"accepted_prediction_tokens\":%d,"
              "\"rejected_prediction_tokens\":%d}}",
              req->n_prompt, req->n_generated, req->n_prompt + (size_t)req->n_generated,
              req->n_accepted, req->n_drafted - req->n_accepted);
}

static void head_json(const request *req, const char *model, const char *object, sbuf *out) {
    sb_printf(out, "{\"id\":\"%s\",\"object\":\"%s\",\"created\":%lld,\"model\":", req->id, object,
              req->created);
    sb_json_str(out, model, strlen(model));
}

void route_request_json(const request *req, const char *model, sbuf *out) {
    const char *text = req->text.data ? req->text.data : "";
    if (req->chat) {
        head_json(req, model, "chat.completion", out);
        sb_puts(out, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
    } else {
        head_json(req, model, "text_completion", out);
        sb_puts(out, ",\"choices\":[{\"index\":0,\"logprobs\":null,\"text\":");
    }
    sb_json_str(out, text, req->text.len);
    if (req->chat) sb_puts(out, "}");
    sb_printf(out, ",\"finish_reason\":\"%s\"}],", req->finish ? req->finish : "stop");
    usage_json(req, out);
    sb_puts(out, "}");
}

static void sse_begin(request *req, const char *model) {
    sb_puts(&req->sse, "data: ");
    head_json(req, model, req->chat ? "chat.completion.chunk" : "text_completion", &req->sse);
}

void route_stream_delta(request *req, const char *model, const char *text, size_t len) {
    if (!text && !req->chat) return; /* completions have no role chunk */
    sse_begin(req, model);
    if (req->chat) {
        sb_puts(&req->sse, ",\"choices\":[{\"index\":0,\"delta\":{");
        if (!text)
            sb_puts(&req->sse, "\"role\":\"assistant\",\"content\":\"\"");
        else
            sb_puts(&req->sse, "\"content\":"), sb_json_str(&req->sse, text, len);
        sb_puts(&req->sse, "},\"finish_reason\":null}]}\n\n");
    } else {
        sb_puts(&req->sse, ",\"choices\":[{\"index\":0,\"logprobs\":null,\"text\":");
        sb_json_str(&req->sse, text, len);
        sb_puts(&req->sse, ",\"finish_reason\":null}]}\n\n");
    }
}

void route_stream_end(request *req, const char *model) {
    sse_begin(req, model);
    if (req->chat)
        sb_printf(&req->sse,
                  ",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"%s\"}]}\n\n",
                  req->finish);
    else
        sb_printf(&req->sse,
                  ",\"choices\":[{\"index\":0,\"logprobs\":null,\"text\":\"\",\"finish_reason\":"
                  "\"%s\"}]}\n\n",
                  req->finish);
    if (req->include_usage) {
        sse_begin(req, model);
        sb_puts(&req->sse, ",\"choices\":[],");
        usage_json(req, &req->sse);
        sb_puts(&req->sse, "}\n\n");
    }
    sb_puts(&req->sse, "data: [DONE]\n\n");
}

int route_tokenize(phi3c_model *model, const js_node *body, sbuf *out, char *why, size_t why_len) {
    const js_node *c = js_get(body, "content");
    if (!c || c->type != JS_STRING) return bad(why, why_len, "'%s' must be a string", "content");
    bool add_special = false;
    int st = bool_field(body, "add_special", &add_special, why, why_len);
    if (st) return st;
    phi3c_error err = {0};
    int32_t *ids = NULL;
    size_t n = 0;
    if (phi3c_tokenize(model, c->str, c->len, add_special, &ids, &n, &err) != PHI3C_OK) {
        snprintf(why, why_len, "%s", err.message);
        return 400;
    }
    sb_puts(out, "{\"tokens\":[");
    for (size_t i = 0; i < n; i++) sb_printf(out, "%s%d", i ? "," : "", (int)ids[i]);
    sb_puts(out, "]}");
    phi3c_free(ids);
    return 0;
}

int route_detokenize(phi3c_model *model, const js_node *body, sbuf *out, char *why,
                     size_t why_len) {
    const js_node *t = js_get(body, "tokens");
    if (!t || t->type != JS_ARRAY) return bad(why, why_len, "'%s' must be an array", "tokens");
    int vocab = phi3c_model_vocab_size(model);
    int32_t *ids = malloc((t->n ? t->n : 1) * sizeof *ids);
    if (!ids) return 500;
    for (size_t i = 0; i < t->n; i++) {
        const js_node *v = &t->kids[i];
        if (v->type != JS_NUMBER || v->number != floor(v->number) || v->number < 0 ||
            v->number >= vocab) {
            free(ids);
            snprintf(why, why_len, "'tokens' must hold ids in 0..%d", vocab - 1);
            return 400;
        }
        ids[i] = (int32_t)v->number;
    }
    phi3c_error err = {0};
    char *text = NULL;
    phi3c_status st = phi3c_detokenize(model, ids, t->n, &text, &err);
    free(ids);
    if (st != PHI3C_OK) {
        snprintf(why, why_len, "%s", err.message);
        return 400;
    }
    sb_puts(out, "{\"content\":");
    sb_json_str(out, text, strlen(text));
    sb_puts(out, "}");
    phi3c_free(text);
    return 0;
}

void route_models(const char *model, long long created, sbuf *out) {
    sb_puts(out, "{\"object\":\"list\",\"data\":[{\"id\":");
    sb_json_str(out, model, strlen(model));
    sb_printf(out, ",\"object\":\"model\",\"created\":%lld,\"owned_by\":\"phi3c\"}]}", created);
}
