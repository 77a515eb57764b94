/* synth_native.c: writes a native .phi3c file of a full-shape synthetic Phi-3-mini (or, with
 * --medium, Phi-3-medium: random weights generated on the fly, nothing held in memory), then opens
 * it with checksum verification and reports the file size, the time to write it and the cost of
 * verifying it (ms per GB).
 *
 * usage: synth_native OUT.phi3c [--medium] [--layers N] [--rtn] [--asym] [--embed-int4]
 *                    [--threads N]
 *        synth_native --verify FILE.phi3c   (only the timed open with verification) */
#include "phi3c_file.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { VOCAB = 32064 };

/* Phi-3-mini-4k and Phi-3-medium-4k as their config.json files give them. */
typedef struct synth_shape {
    const char *name;
    int hidden, inter, layers, heads, kv_heads, head_dim;
} synth_shape;
static const synth_shape MINI = {"synthetic-phi3-mini", 3072, 8192, 32, 32, 32, 96};
static const synth_shape MEDIUM = {"synthetic-phi3-medium", 5120, 17920, 40, 40, 10, 128};

/* A deterministic value per (tensor, element) in [-0.05, 0.05): a hash of the tensor's name and
 * the element's index, not a stored array. */
static float synth_value(const char *name, uint64_t i) {
    uint64_t tensor = 0xcbf29ce484222325ull; /* FNV-1a of the name */
    for (const char *p = name; *p; p++) tensor = (tensor ^ (uint8_t)*p) * 0x100000001b3ull;
    uint64_t h = (tensor + 1) * 0x9e3779b97f4a7c15ull ^ i * 0xbf58476d1ce4e5b9ull;
    h ^= h >> 31;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 29;
    return (float)((double)(h >> 11) / 9007199254740992.0 - 0.5) * 0.1f;
}

static p3_status synth_to_f32(const p3_tensor *t, size_t first, size_t count, float *out,
                              p3_error *err) {
    (void)err;
    for (size_t i = 0; i < count; i++) out[i] = synth_value(t->hf_name, first + i);
    return PHI3C_OK;
}

/* The tensors the config implies (p3_config_expected_tensors): matrices generated on the fly by
 * synth_to_f32 (no data), norms copied from `ones`. */
static p3_status build_tensors(p3_model_source *src, const float *ones, p3_error *err) {
    p3_tensor_spec *specs = NULL;
    size_t n = 0;
    P3_TRY(p3_config_expected_tensors(&src->config, &specs, &n, err));
    src->tensors = p3_calloc(n, sizeof *src->tensors);
    if (!src->tensors) {
        p3_free(specs);
        return p3_fail(err, PHI3C_ERR_NOMEM, "synth_native: out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        const p3_tensor_spec *sp = &specs[i];
        bool matrix = sp->n_dims == 2;
        p3_tensor_set(&src->tensors[i], sp->hf_name, P3_DT_F32, sp->shape[0],
                      matrix ? sp->shape[1] : 0, matrix ? NULL : ones);
    }
    src->n_tensors = n;
    p3_free(specs);
    return PHI3C_OK;
}

static void phi3_config(p3_config *c, const synth_shape *sh, int layers) {
    snprintf(c->architecture, sizeof c->architecture, "Phi3ForCausalLM");
    c->hidden_size = sh->hidden;
    c->num_layers = layers;
    c->num_heads = sh->heads;
    c->num_kv_heads = sh->kv_heads;
    c->head_dim = sh->head_dim;
    c->intermediate_size = sh->inter;
    c->vocab_size = VOCAB;
    c->max_position_embeddings = c->original_max_position_embeddings = 4096;
    c->rms_norm_eps = 1e-5f;
    c->rope = (p3_rope_config){.type = P3_ROPE_DEFAULT,
                               .theta = 10000.0f,
                               .partial_rotary_factor = 1.0f,
                               .rot_dim = sh->head_dim,
                               .attn_factor = 1.0f};
    c->sliding_window = 2047;
    c->bos_id = 1;
    c->eos_id = 32000;
    c->pad_id = 32000;
    c->n_stop_ids = 1;
    c->stop_ids[0] = 32000;
}

static bool show_progress(void *user, size_t i, size_t n, uint64_t done, uint64_t total) {
    double *t0 = user, el = p3_time_now() - *t0;
    fprintf(stderr, "\r  tensor %zu/%zu  %.0f/%.0f MB  %.1f MB/s   ", i + 1, n, done / 1e6,
            total / 1e6, el > 0 ? done / 1e6 / el : 0.0);
    return true;
}

static int verify_only(const char *path) {
    p3_model_source *s = NULL;
    p3_error err = {0};
    double t0 = p3_time_now();
    if (p3_native_open(path, true, &s, &err) != PHI3C_OK) {
        fprintf(stderr, "synth_native: %s\n", err.message);
        return 1;
    }
    double gb = (double)s->file_bytes / 1e9;
    printf("%s: %.3f GB opened with verification in %.0f ms (verify %.0f ms = %.0f ms/GB)\n", path,
           gb, (p3_time_now() - t0) * 1e3, s->native->verify_ms, s->native->verify_ms / gb);
    p3_native_close(s);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--verify") == 0) return verify_only(argv[2]);
    if (argc < 2) {
        fprintf(stderr, "usage: synth_native OUT.phi3c [--medium] [--layers N] [--rtn] [--asym] "
                        "[--embed-int4] [--threads N]\n");
        return 2;
    }
    const synth_shape *sh = &MINI;
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], "--medium")) sh = &MEDIUM;
    int layers = sh->layers;
    p3_native_write_opts o = {.method = P3_QUANT_SEARCH, .force = true, .to_f32 = synth_to_f32};
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--layers") && i + 1 < argc)
            layers = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            o.n_threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rtn"))
            o.method = P3_QUANT_RTN;
        else if (!strcmp(argv[i], "--asym"))
            o.asym = true;
        else if (!strcmp(argv[i], "--embed-int4"))
            o.embed_int4 = true;
    }
    float *ones = p3_malloc((size_t)sh->hidden * sizeof *ones); /* the norms */
    for (int i = 0; ones && i < sh->hidden; i++) ones[i] = 1.0f;
    p3_model_source src = {.has_config = true};
    char path[64];
    snprintf(path, sizeof path, "%s", sh->name);
    src.path = path;
    phi3_config(&src.config, sh, layers);
    double t0 = p3_time_now();
    o.progress = show_progress;
    o.progress_user = &t0;
    p3_error err = {0};
    p3_status st = ones ? build_tensors(&src, ones, &err)
                        : p3_fail(&err, PHI3C_ERR_NOMEM, "synth_native: out of memory");
    if (st == PHI3C_OK) st = p3_native_write(&src, NULL, 0, argv[1], &o, &err);
    p3_free(src.tensors);
    p3_free(ones);
    if (st != PHI3C_OK) {
        fprintf(stderr, "\nsynth_native: %s\n", err.message);
        return 1;
    }
    double t_write = p3_time_now() - t0;
    uint64_t linear = 0, embed = 0;
    p3_model_source *s = NULL;
    double t1 = p3_time_now();
    if (p3_native_open(argv[1], true, &s, &err) != PHI3C_OK) {
        fprintf(stderr, "\nsynth_native: %s\n", err.message);
        return 1;
    }
    double t_open = p3_time_now() - t1;
    for (size_t i = 0; i < s->n_tensors; i++) {
        if (i == 0)
            embed = s->tensors[i].nbytes;
        else if (s->tensors[i].n_dims == 2)
            linear += s->tensors[i].nbytes;
    }
    double gb = (double)s->file_bytes / 1e9;
    printf("\nfile %s: %llu bytes (%.3f GB): linear weights %.3f GB, embedding %.3f GB (%s)\n",
           argv[1], (unsigned long long)s->file_bytes, gb, linear / 1e9, embed / 1e9,
           s->tensors[0].dtype == P3_DT_F16 ? "F16" : "INT4");
    printf("written in %.1f s (%s, %s); opened with verification in %.0f ms (verify %.0f ms = %.0f "
           "ms/GB, %.2f GB/s)\n",
           t_write, o.method == P3_QUANT_SEARCH ? "search" : "rtn", o.asym ? "asym" : "sym",
           t_open * 1e3, s->native->verify_ms, s->native->verify_ms / gb,
           gb / (s->native->verify_ms / 1e3));
    p3_native_close(s);
    return 0;
}
