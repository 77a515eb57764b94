/* quant_accuracy.c: weight reconstruction error (NMSE = sum (w - deq)^2 / sum w^2) of INT4-g128
 * (sym/asym, RTN and search) against ggml's Q4_0 (32 weights per f16 scale, implemented here from
 * the format definition) on synthetic matrices and on raw f32 matrices given on the command line.
 *
 * usage: quant_accuracy [--synthetic ROWS COLS] [--raw FILE ROWS COLS KIND]... [--threads N]
 *        quant_accuracy --compare ORIG MODEL...
 * Prints one markdown row per matrix kind. --compare prints, for each MODEL (any loader input:
 * HF folder, GGUF, native file), the NMSE of its linear weights against ORIG's. */
#include "quantize.h"
#include "source.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { N_METHODS = 5, Q4_0_BLOCK = 32 };
static const char *const method_names[N_METHODS] = {"I4 sym RTN", "I4 sym search", "I4 asym RTN",
                                                    "I4 asym search", "Q4_0 (g32)"};

/* ggml Q4_0 as its format defines it: per 32 weights, d = (signed absmax) / -8 stored as f16,
 * q = clamp(round(x / d) + 8, 0, 15), w = d * (q - 8). */
static void q4_0_roundtrip(const float *x, int64_t n, float *y) {
    for (int64_t b = 0; b < n; b += Q4_0_BLOCK) {
        int64_t m = P3_MIN((int64_t)Q4_0_BLOCK, n - b);
        float amax = 0.0f, max = 0.0f;
        for (int64_t j = 0; j < m; j++)
            if (fabsf(x[b + j]) > amax) amax = fabsf(max = x[b + j]);
        float d = max / -8.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        float d16 = p3_f16_to_f32(p3_f32_to_f16(d));
        for (int64_t j = 0; j < m; j++) {
            float q = nearbyintf(x[b + j] * id) + 8.0f;
            q = q < 0.0f ? 0.0f : (q > 15.0f ? 15.0f : q);
            y[b + j] = d16 * (q - 8.0f);
        }
    }
}

typedef struct accum {
    char kind[64];
    double err[N_METHODS], norm;
    int64_t weights;
} accum;

static int roundtrip(const float *w, int64_t rows, int64_t cols, int method, int threads,
                     float *y) {
    if (method == 4) {
        for (int64_t r = 0; r < rows; r++) q4_0_roundtrip(w + r * cols, cols, y + r * cols);
        return 0;
    }
    p3_dtype fmt = method >= 2 ? P3_DT_I4G128A : P3_DT_I4G128S;
    p3_quant_method qm = (method % 2) ? P3_QUANT_SEARCH : P3_QUANT_RTN;
    size_t bytes;
    if (!p3_quant_matrix_bytes(fmt, rows, cols, &bytes)) return -1;
    uint8_t *q = malloc(bytes);
    p3_error err = {0};
    if (!q || p3_quantize_matrix_f32(w, rows, cols, fmt, qm, threads, q, &err) != PHI3C_OK) {
        free(q);
        return -1;
    }
    size_t rb = bytes / (size_t)rows;
    for (int64_t r = 0; r < rows; r++) {
        if (fmt == P3_DT_I4G128S)
            p3_dequantize_row_i4s((const p3_block_i4s *)(q + (size_t)r * rb), cols, y + r * cols);
        else
            p3_dequantize_row_i4a((const p3_block_i4a *)(q + (size_t)r * rb), cols, y + r * cols);
    }
    free(q);
    return 0;
}

static int measure(accum *a, const float *w, int64_t rows, int64_t cols, int threads) {
    size_t n = (size_t)(rows * cols);
    float *y = malloc(n * sizeof *y);
    if (!y) return -1;
    for (size_t i = 0; i < n; i++) a->norm += (double)w[i] * w[i];
    for (int m = 0; m < N_METHODS; m++) {
        if (roundtrip(w, rows, cols, m, threads, y) != 0) {
            free(y);
            return -1;
        }
        for (size_t i = 0; i < n; i++) a->err[m] += ((double)w[i] - y[i]) * ((double)w[i] - y[i]);
    }
    a->weights += rows * cols;
    free(y);
    return 0;
}

static accum *find_kind(accum *list, int *n, const char *kind) {
    for (int i = 0; i < *n; i++)
        if (strcmp(list[i].kind, kind) == 0) return &list[i];
    accum *a = &list[(*n)++];
    memset(a, 0, sizeof *a);
    snprintf(a->kind, sizeof a->kind, "%s", kind);
    return a;
}

/* xorshift64* + Box-Muller: reproducible Gaussian matrices. */
static double uniform01(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return (double)((*s * 2685821657736338717ull) >> 11) * (1.0 / 9007199254740992.0);
}

static void gaussian(float *w, size_t n, uint64_t seed) {
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) {
        double u = uniform01(&s) + 1e-300, v = uniform01(&s);
        w[i] = (float)(0.02 * sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
    }
}

/* Outlier input channels: 1 in 128 columns (at varying positions) scaled by 10, as real LLM
 * weights show a few large input channels. */
static void add_outlier_channels(float *w, int64_t rows, int64_t cols) {
    for (int64_t c = 37; c < cols; c += 128)
        for (int64_t r = 0; r < rows; r++) w[r * cols + c] *= 10.0f;
}

static float *read_raw(const char *path, int64_t rows, int64_t cols) {
    FILE *f = fopen(path, "rb");
    size_t n = (size_t)(rows * cols);
    float *w = f ? malloc(n * sizeof *w) : NULL;
    if (!w || fread(w, sizeof *w, n, f) != n) {
        fprintf(stderr, "quant_accuracy: cannot read %lld x %lld f32 from %s\n", (long long)rows,
                (long long)cols, path);
        free(w);
        w = NULL;
    }
    if (f) fclose(f);
    return w;
}

static void print_table(const accum *list, int n) {
    printf("| weights | count |");
    for (int m = 0; m < N_METHODS; m++) printf(" %s |", method_names[m]);
    printf(" search/RTN (sym) |\n|---|---|");
    for (int m = 0; m <= N_METHODS; m++) printf("---|");
    printf("\n");
    for (int i = 0; i < n; i++) {
        printf("| %s | %.2fM |", list[i].kind, (double)list[i].weights / 1e6);
        for (int m = 0; m < N_METHODS; m++) printf(" %.3e |", list[i].err[m] / list[i].norm);
        printf(" %.3f |\n", list[i].err[1] / list[i].err[0]);
    }
}

/* NMSE of every 2-D weight but the embedding of `other` against the same tensor of `orig`. */
static int compare_models(const char *orig_path, char **paths, int n_paths) {
    p3_model_source *orig = NULL;
    p3_error err = {0};
    if (p3_source_open(orig_path, &orig, &err) != PHI3C_OK) {
        fprintf(stderr, "quant_accuracy: %s\n", err.message);
        return 1;
    }
    printf("| model (linear weights vs %s) | NMSE | dtypes |\n|---|---|---|\n", orig_path);
    for (int m = 0; m < n_paths; m++) {
        p3_model_source *o = NULL;
        if (p3_source_open(paths[m], &o, &err) != PHI3C_OK) {
            fprintf(stderr, "quant_accuracy: %s\n", err.message);
            return 1;
        }
        double e = 0, s = 0;
        char dtypes[128] = "";
        for (size_t i = 0; i < orig->n_tensors; i++) {
            const p3_tensor *a = &orig->tensors[i], *b = p3_source_find(o, a->hf_name);
            if (a->n_dims != 2 || !strcmp(a->hf_name, "model.embed_tokens.weight")) continue;
            size_t n = (size_t)(a->shape[0] * a->shape[1]);
            float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
            if (!b || !x || !y || p3_tensor_to_f32(a, 0, n, x, &err) != PHI3C_OK ||
                p3_tensor_to_f32(b, 0, n, y, &err) != PHI3C_OK) {
                fprintf(stderr, "quant_accuracy: %s: %s\n", a->hf_name,
                        b ? err.message : "missing");
                return 1;
            }
            for (size_t j = 0; j < n; j++) {
                e += ((double)x[j] - y[j]) * ((double)x[j] - y[j]);
                s += (double)x[j] * x[j];
            }
            if (!strstr(dtypes, p3_dtype_name(b->dtype)) && strlen(dtypes) < 100) {
                strcat(dtypes, dtypes[0] ? "+" : "");
                strcat(dtypes, p3_dtype_name(b->dtype));
            }
            free(x);
            free(y);
        }
        printf("| %s | %.3e | %s |\n", paths[m], e / s, dtypes);
        p3_source_close(o);
    }
    p3_source_close(orig);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 4 && strcmp(argv[1], "--compare") == 0)
        return compare_models(argv[2], argv + 3, argc - 3);
    accum list[64];
    int n = 0, threads = 0;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) threads = atoi(argv[++i]);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--synthetic") == 0 && i + 2 < argc) {
            int64_t rows = atoll(argv[i + 1]), cols = atoll(argv[i + 2]);
            i += 2;
            float *w = malloc((size_t)(rows * cols) * sizeof *w);
            if (!w) return 1;
            gaussian(w, (size_t)(rows * cols), 1);
            if (measure(find_kind(list, &n, "Gaussian"), w, rows, cols, threads)) return 1;
            add_outlier_channels(w, rows, cols);
            if (measure(find_kind(list, &n, "Gaussian + outlier channels"), w, rows, cols, threads))
                return 1;
            free(w);
        } else if (strcmp(argv[i], "--raw") == 0 && i + 4 < argc && n < 60) {
            int64_t rows = atoll(argv[i + 2]), cols = atoll(argv[i + 3]);
            float *w = read_raw(argv[i + 1], rows, cols);
            if (!w || measure(find_kind(list, &n, argv[i + 4]), w, rows, cols, threads)) return 1;
            free(w);
            i += 4;
        } else if (strcmp(argv[i], "--threads") == 0) {
            i++;
        } else {
            fprintf(stderr, "usage: quant_accuracy [--synthetic ROWS COLS] "
                            "[--raw FILE ROWS COLS KIND]... [--threads N]\n");
            return 2;
        }
    }
    print_table(list, n);
    return 0;
}
