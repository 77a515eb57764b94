/* cmd_info.c: `phi3c info [-m PATH] [--json]`: a model's config, tensors (HF-order shapes), file
 * size and GGUF metadata, and the compiled-in backends with why each is (not) available. The JSON
 * keys are a contract (issue 2): later versions add keys, never change their meaning. */
#include "backend.h"
#include "cli.h"
#include "gguf.h"
#include "phi3c_file.h"
#include "source.h"
#include "tokenizer.h"

#include <math.h>
#include <string.h>

static const char *const CMD = "info";

static void usage(FILE *f) {
    fprintf(
        f, "usage: phi3c info [-m PATH] [--json] [--no-verify]\n\n"
           "Shows a model's config (architecture, dims, layers, heads, kv heads, vocab, rope type\n"
           "and factors, sliding window, tied embeddings), every tensor with its dtype and shape\n"
           "(HF order: [out, in]), the total size of its files, GGUF metadata, and the backends\n"
           "of this build with why each is or is not available. Without -m: only the backends.\n\n"
           "  -m, --model PATH  model folder (config.json + safetensors), GGUF file, or native\n"
           "                    .phi3c file\n"
           "  --json            one JSON object instead of text\n"
           "  --no-verify       native file: skip the per-tensor checksum pass\n");
}

/* ---- JSON output ---- */

/* Writes s as a JSON string; bytes that are not UTF-8 become U+FFFD. */
static void json_str(FILE *f, const char *s, size_t n) {
    fputc('"', f);
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            fprintf(f, "\\%c", c);
            i++;
        } else if (c < 0x20) {
            fprintf(f, "\\u%04x", c);
            i++;
        } else if (c < 0x80) {
            fputc(c, f);
            i++;
        } else {
            size_t len = (c & 0xe0) == 0xc0   ? 2
                         : (c & 0xf0) == 0xe0 ? 3
                         : (c & 0xf8) == 0xf0 ? 4
                                              : 1;
            if (len > 1 && len <= n - i && p3_utf8_valid(s + i, len)) {
                fwrite(s + i, 1, len, f);
                i += len;
            } else {
                fputs("\\ufffd", f);
                i++;
            }
        }
    }
    fputc('"', f);
}

static void json_cstr(FILE *f, const char *s) {
    json_str(f, s, strlen(s));
}

static void json_num(FILE *f, double v) {
    if (isfinite(v))
        fprintf(f, "%.9g", v);
    else
        fputs("null", f);
}

static void json_factors(FILE *f, const float *v, int n) {
    fputc('[', f);
    for (int i = 0; i < n; i++) {
        if (i) fputs(", ", f);
        json_num(f, v[i]);
    }
    fputc(']', f);
}

static const char *format_name(p3_source_format fmt) {
    switch (fmt) {
    case P3_FORMAT_SAFETENSORS:
        return "safetensors";
    case P3_FORMAT_GGUF:
        return "gguf";
    case P3_FORMAT_PHI3C:
        return "phi3c";
    }
    return "?";
}

static void json_config(FILE *f, const p3_config *c) {
    const p3_rope_config *r = &c->rope;
    fprintf(f, "  \"architecture\": ");
    json_cstr(f, c->architecture);
    fprintf(f,
            ",\n  \"hidden_size\": %d,\n  \"num_layers\": %d,\n  \"num_heads\": %d,\n"
            "  \"num_kv_heads\": %d,\n  \"head_dim\": %d,\n  \"intermediate_size\": %d,\n"
            "  \"vocab_size\": %d,\n  \"max_position_embeddings\": %d,\n",
            c->hidden_size, c->num_layers, c->num_heads, c->num_kv_heads, c->head_dim,
            c->intermediate_size, c->vocab_size, c->max_position_embeddings);
    fprintf(f, "  \"rope\": {\"type\": \"%s\", \"theta\": ",
            r->type == P3_ROPE_LONGROPE ? "longrope" : "default");
    json_num(f, r->theta);
    fprintf(f, ", \"partial_rotary_factor\": ");
    json_num(f, r->partial_rotary_factor);
    fprintf(f, ", \"rot_dim\": %d, \"original_max_position_embeddings\": %d, \"attn_factor\": ",
            r->rot_dim, c->original_max_position_embeddings);
    json_num(f, r->attn_factor);
    fprintf(f, ",\n           \"short_factor\": ");
    if (r->type == P3_ROPE_LONGROPE)
        json_factors(f, r->short_factor, r->n_factors);
    else
        fputs("null", f);
    fprintf(f, ",\n           \"long_factor\": ");
    if (r->type == P3_ROPE_LONGROPE)
        json_factors(f, r->long_factor, r->n_factors);
    else
        fputs("null", f);
    fprintf(f, "},\n  \"sliding_window\": ");
    if (c->sliding_window > 0)
        fprintf(f, "%d", c->sliding_window);
    else
        fputs("null", f);
    fprintf(f, ",\n  \"tie_word_embeddings\": %s,\n  \"rms_norm_eps\": ",
            c->tie_word_embeddings ? "true" : "false");
    json_num(f, c->rms_norm_eps);
    fprintf(f,
            ",\n  \"bos_token_id\": %d, \"eos_token_id\": %d, \"pad_token_id\": %d, "
            "\"stop_ids\": [",
            c->bos_id, c->eos_id, c->pad_id);
    for (int i = 0; i < c->n_stop_ids; i++) fprintf(f, "%s%d", i ? ", " : "", c->stop_ids[i]);
    fprintf(f, "],\n");
}

static void json_null_config(FILE *f) {
    static const char *const keys[] = {"architecture",
                                       "hidden_size",
                                       "num_layers",
                                       "num_heads",
                                       "num_kv_heads",
                                       "head_dim",
                                       "intermediate_size",
                                       "vocab_size",
                                       "max_position_embeddings",
                                       "rope",
                                       "sliding_window",
                                       "tie_word_embeddings"};
    for (size_t i = 0; i < P3_ARRAY_LEN(keys); i++) fprintf(f, "  \"%s\": null,\n", keys[i]);
}

static void json_tensors(FILE *f, const p3_model_source *src) {
    fprintf(f, "  \"tensors\": [");
    for (size_t i = 0; i < src->n_tensors; i++) {
        const p3_tensor *t = &src->tensors[i];
        fprintf(f, "%s\n    {\"name\": ", i ? "," : "");
        json_cstr(f, t->name);
        fprintf(f, ", \"dtype\": \"%s\", \"shape\": [", p3_dtype_name(t->dtype));
        for (int d = 0; d < t->n_dims; d++)
            fprintf(f, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
        fprintf(f, "]");
        if (strcmp(t->name, t->hf_name) != 0) {
            fprintf(f, ", \"hf_name\": ");
            json_cstr(f, t->hf_name);
        }
        fprintf(f, "}");
    }
    fprintf(f, "%s],\n", src->n_tensors ? "\n  " : "");
}

/* Long arrays are summarised: their length, element type and first few elements. */
enum { ARRAY_PREVIEW = 8 };

/* Prints a non-array value with the given string and number printers; false for an array. */
static bool print_gguf_scalar(FILE *f, const p3_gguf_value *v,
                              void (*print_str)(FILE *, const char *, size_t),
                              void (*print_num)(FILE *, double)) {
    switch (v->type) {
    case P3_GGUF_STRING:
        print_str(f, v->v.str.s, v->v.str.len);
        return true;
    case P3_GGUF_BOOL:
        fputs(v->v.u ? "true" : "false", f);
        return true;
    case P3_GGUF_F32:
    case P3_GGUF_F64:
        print_num(f, v->v.f);
        return true;
    case P3_GGUF_I8:
    case P3_GGUF_I16:
    case P3_GGUF_I32:
    case P3_GGUF_I64:
        fprintf(f, "%lld", (long long)v->v.i);
        return true;
    case P3_GGUF_ARRAY:
        return false;
    default:
        fprintf(f, "%llu", (unsigned long long)v->v.u);
        return true;
    }
}

static void json_gguf_value(FILE *f, const p3_gguf_value *v) {
    if (print_gguf_scalar(f, v, json_str, json_num)) return;
    size_t n = p3_gguf_array_len(v);
    fprintf(f, "{\"element_type\": \"%s\", \"length\": %zu, \"%s\": [",
            p3_gguf_type_name(v->v.arr.elem), n, n > ARRAY_PREVIEW ? "first" : "values");
    for (size_t i = 0; i < n && i < ARRAY_PREVIEW; i++) {
        if (i) fputs(", ", f);
        p3_gguf_str s;
        double d;
        int64_t x;
        if (p3_gguf_array_string(v, i, &s))
            json_str(f, s.s, s.len);
        else if (p3_gguf_array_item(v, i))
            json_gguf_value(f, p3_gguf_array_item(v, i));
        else if (v->v.arr.elem == P3_GGUF_F32 || v->v.arr.elem == P3_GGUF_F64) {
            p3_gguf_array_float(v, i, &d);
            json_num(f, d);
        } else if (p3_gguf_array_int(v, i, &x))
            fprintf(f, "%lld", (long long)x);
        else if (p3_gguf_array_float(v, i, &d))
            json_num(f, d); /* u64 beyond int64 */
    }
    fputs("]}", f);
}

static void json_metadata(FILE *f, const p3_gguf *g) {
    fprintf(f, "  \"gguf_version\": %u,\n  \"metadata\": [", g->version);
    for (size_t i = 0; i < g->n_kvs; i++) {
        fprintf(f, "%s\n    {\"key\": ", i ? "," : "");
        json_str(f, g->kvs[i].key.s, g->kvs[i].key.len);
        fprintf(f, ", \"type\": \"%s\", \"value\": ", p3_gguf_type_name(g->kvs[i].value.type));
        json_gguf_value(f, &g->kvs[i].value);
        fputc('}', f);
    }
    fprintf(f, "%s],\n", g->n_kvs ? "\n  " : "");
}

static void json_native(FILE *f, const p3_native *n) {
    fprintf(f,
            "  \"native\": {\"version\": \"%u.%u\", \"group_size\": %u, \"symmetric\": %s, "
            "\"checksums\": \"%s\", \"verify_ms\": %.1f},\n",
            n->version_major, n->version_minor, n->group_size, n->asym ? "false" : "true",
            n->verified ? "verified" : "not checked", n->verify_ms);
}

static void json_backends(FILE *f) {
    fprintf(f, "  \"backends\": [");
    size_t n = p3_backend_count();
    for (size_t i = 0; i < n; i++) {
        p3_backend_info info;
        p3_backend_info_at(i, &info);
        fprintf(f, "%s\n    {\"name\": ", i ? "," : "");
        json_cstr(f, info.name ? info.name : "?");
        fprintf(f, ", \"available\": %s, \"%s\": ", info.available ? "true" : "false",
                info.available ? "devices" : "why");
        json_cstr(f, info.available ? info.devices : info.why);
        fputc('}', f);
    }
    fprintf(f, "%s]", n ? "\n  " : "");
}

/* The model's tokenizer: its kind, ids and chat format, or why there is none. */
static void describe_tokenizer(const p3_model_source *src, char *buf, size_t len, bool json) {
    p3_tokenizer *tok = NULL;
    p3_error err = {0};
    if (p3_tokenizer_load_source(src, &tok, &err) != PHI3C_OK) {
        snprintf(buf, len, json ? "null" : "none (%s)", err.message);
        return;
    }
    const char *type = p3_tokenizer_type_name(tok);
    const char *chat = p3_chat_format_name(p3_tokenizer_chat_format(tok));
    if (json)
        snprintf(buf, len, "{\"type\": \"%s\", \"ids\": %ld, \"chat\": \"%s\"}", type,
                 (long)p3_tokenizer_vocab_size(tok), chat);
    else
        snprintf(buf, len, "%s, %ld ids, chat format %s", type, (long)p3_tokenizer_vocab_size(tok),
                 chat);
    p3_tokenizer_free(tok);
}

static void print_json(FILE *f, const p3_model_source *src) {
    fprintf(f, "{\n");
    if (src) {
        fprintf(f, "  \"path\": ");
        json_cstr(f, src->path);
        fprintf(f, ",\n  \"format\": \"%s\",\n", format_name(src->format));
        if (src->has_config)
            json_config(f, &src->config);
        else
            json_null_config(f);
        json_tensors(f, src);
        char tok[1024];
        describe_tokenizer(src, tok, sizeof tok, true);
        fprintf(f, "  \"tokenizer\": %s,\n", tok);
        if (src->gguf) json_metadata(f, src->gguf);
        if (src->native) json_native(f, src->native);
        fprintf(f, "  \"file_bytes\": %llu,\n", (unsigned long long)src->file_bytes);
    }
    json_backends(f);
    fprintf(f, "\n}\n");
}

/* ---- text output ---- */

static void text_factors(FILE *f, const char *name, const float *v, int n) {
    fprintf(f, "  %-22s", name);
    for (int i = 0; i < n; i++) {
        if (i && i % 12 == 0) fprintf(f, "\n  %-22s", "");
        fprintf(f, " %g", (double)v[i]);
    }
    fputc('\n', f);
}

static void text_config(FILE *f, const p3_config *c) {
    const p3_rope_config *r = &c->rope;
    fprintf(f, "architecture             %s\n", c->architecture);
    fprintf(f, "hidden_size              %d\n", c->hidden_size);
    fprintf(f, "num_layers               %d\n", c->num_layers);
    fprintf(f, "num_heads                %d\n", c->num_heads);
    fprintf(f, "num_kv_heads             %d\n", c->num_kv_heads);
    fprintf(f, "head_dim                 %d\n", c->head_dim);
    fprintf(f, "intermediate_size        %d\n", c->intermediate_size);
    fprintf(f, "vocab_size               %d\n", c->vocab_size);
    fprintf(f, "max_position_embeddings  %d (original %d)\n", c->max_position_embeddings,
            c->original_max_position_embeddings);
    fprintf(f,
            "rope                     %s, theta %g, partial_rotary_factor %g (rot_dim %d), "
            "attn_factor %.6g\n",
            r->type == P3_ROPE_LONGROPE ? "longrope" : "default", (double)r->theta,
            (double)r->partial_rotary_factor, r->rot_dim, (double)r->attn_factor);
    if (r->type == P3_ROPE_LONGROPE) {
        text_factors(f, "short_factor", r->short_factor, r->n_factors);
        text_factors(f, "long_factor", r->long_factor, r->n_factors);
    }
    if (c->sliding_window > 0)
        fprintf(f, "sliding_window           %d\n", c->sliding_window);
    else
        fprintf(f, "sliding_window           none\n");
    fprintf(f, "tie_word_embeddings      %s\n", c->tie_word_embeddings ? "true" : "false");
    fprintf(f, "rms_norm_eps             %g\n", (double)c->rms_norm_eps);
    fprintf(f, "bos / eos / pad          %d / %d / %d, stop ids", c->bos_id, c->eos_id, c->pad_id);
    for (int i = 0; i < c->n_stop_ids; i++) fprintf(f, " %d", c->stop_ids[i]);
    fputc('\n', f);
}

/* One line of a string value: quoted, control characters escaped, long ones cut. */
static void text_str(FILE *f, const char *s, size_t n) {
    fputc('"', f);
    for (size_t i = 0; i < n && i < 60; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n')
            fputs("\\n", f);
        else if (c < 0x20)
            fprintf(f, "\\x%02x", c);
        else
            fputc(c, f);
    }
    fprintf(f, "%s\"", n > 60 ? "..." : "");
}

static void text_num(FILE *f, double v) {
    fprintf(f, "%g", v);
}

static void text_gguf_value(FILE *f, const p3_gguf_value *v) {
    if (print_gguf_scalar(f, v, text_str, text_num)) return;
    size_t n = p3_gguf_array_len(v);
    fprintf(f, "[%zu x %s]", n, p3_gguf_type_name(v->v.arr.elem));
    for (size_t i = 0; i < n && i < 5; i++) {
        fputs(i ? ", " : " ", f);
        p3_gguf_str s;
        double d;
        int64_t x;
        if (p3_gguf_array_string(v, i, &s))
            text_str(f, s.s, s.len);
        else if (p3_gguf_array_item(v, i))
            text_gguf_value(f, p3_gguf_array_item(v, i));
        else if (v->v.arr.elem != P3_GGUF_F32 && v->v.arr.elem != P3_GGUF_F64 &&
                 p3_gguf_array_int(v, i, &x))
            fprintf(f, "%lld", (long long)x);
        else if (p3_gguf_array_float(v, i, &d))
            fprintf(f, "%g", d);
    }
    if (n > 5) fputs(", ...", f);
}

static void text_metadata(FILE *f, const p3_gguf *g) {
    fprintf(f, "\nGGUF v%u metadata (%zu keys):\n", g->version, g->n_kvs);
    for (size_t i = 0; i < g->n_kvs; i++) {
        const p3_gguf_kv *kv = &g->kvs[i];
        fprintf(f, "  %-44.*s %-8s ", (int)P3_MIN(kv->key.len, 200), kv->key.s,
                kv->value.type == P3_GGUF_ARRAY ? "ARRAY" : p3_gguf_type_name(kv->value.type));
        text_gguf_value(f, &kv->value);
        fputc('\n', f);
    }
}

static void text_tensors(FILE *f, const p3_model_source *src) {
    if (!src->n_tensors) {
        fprintf(f, "\nno tensors (a vocabulary-only file: it holds a tokenizer, not a model)\n");
        return;
    }
    fprintf(f, "\ntensors (%zu, shapes in HF order [out, in]):\n", src->n_tensors);
    for (size_t i = 0; i < src->n_tensors; i++) {
        const p3_tensor *t = &src->tensors[i];
        char shape[96];
        size_t k = (size_t)snprintf(shape, sizeof shape, "[");
        for (int d = 0; d < t->n_dims; d++)
            k += (size_t)snprintf(shape + k, sizeof shape - k, "%s%lld", d ? ", " : "",
                                  (long long)t->shape[d]);
        snprintf(shape + k, sizeof shape - k, "]");
        fprintf(f, "  %-48s %-8s %s", t->name, p3_dtype_name(t->dtype), shape);
        if (strcmp(t->name, t->hf_name) != 0) fprintf(f, "  (%s)", t->hf_name);
        fputc('\n', f);
    }
}

static void text_backends(FILE *f) {
    size_t n = p3_backend_count();
    fprintf(f, "backends (%zu compiled in):\n", n);
    for (size_t i = 0; i < n; i++) {
        p3_backend_info info;
        p3_backend_info_at(i, &info);
        fprintf(f, "  %-14s %s: %s\n", info.name ? info.name : "?",
                info.available ? "available" : "not available",
                info.available ? info.devices : info.why);
    }
}

static void print_text(FILE *f, const p3_model_source *src) {
    if (src) {
        fprintf(f, "model                    %s\n", src->path);
        fprintf(f, "format                   %s (%zu file%s)\n", format_name(src->format),
                src->n_files, src->n_files == 1 ? "" : "s");
        if (src->native)
            fprintf(f,
                    "native file              v%u.%u, INT4 group %u %s, checksums %s (%.0f ms)\n",
                    src->native->version_major, src->native->version_minor, src->native->group_size,
                    src->native->asym ? "asymmetric" : "symmetric",
                    src->native->verified ? "verified" : "not checked", src->native->verify_ms);
        if (src->has_config)
            text_config(f, &src->config);
        else
            fprintf(f, "config                   none (no model in this file)\n");
        char tok[1024];
        describe_tokenizer(src, tok, sizeof tok, false);
        fprintf(f, "tokenizer                %s\n", tok);
        if (src->gguf) text_metadata(f, src->gguf);
        text_tensors(f, src);
        fprintf(f, "\nfile_bytes               %llu (%.1f MiB)\n\n",
                (unsigned long long)src->file_bytes, (double)src->file_bytes / (1 << 20));
    }
    text_backends(f);
}

int cmd_info(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    const char *model = NULL;
    bool json = false, verify = true;
    for (int i = 1; i < argc; i++) {
        if (cli_is(argv[i], "-m", "--model")) {
            if (!(model = cli_value(CMD, argc, argv, &i))) return CLI_EXIT_USAGE;
        } else if (cli_is(argv[i], "--json", NULL)) {
            json = true;
        } else if (cli_is(argv[i], "--no-verify", NULL)) {
            verify = false;
        } else {
            return cli_usage_error(CMD, "unknown argument '%s'", argv[i]);
        }
    }
    p3_model_source *src = NULL;
    if (model) {
        p3_error err = {0};
        if (p3_source_open_verify(model, verify, &src, &err) != PHI3C_OK)
            return cli_fail(CMD, &err);
        /* a model whose tensors do not fit its config is broken: say so instead of listing it */
        if (src->has_config && p3_source_check_tensors(src, &err) != PHI3C_OK) {
            p3_source_close(src);
            return cli_fail(CMD, &err);
        }
    }
    if (json)
        print_json(stdout, src);
    else
        print_text(stdout, src);
    p3_source_close(src);
    return cli_flush_stdout() ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}
