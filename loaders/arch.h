/* arch.h: the tensors of an architecture, written once: each tensor's HF name, GGUF name, shape
 * rule and slot (which part of the model it is; engine/model.c keeps a field per slot). The table
 * drives the expected-tensor check (config.c), the GGUF name mapping (gguf_phi3.c) and the
 * engine's upload and free (engine/model.c). */
#ifndef P3_LOADERS_ARCH_H
#define P3_LOADERS_ARCH_H

#include "source.h"

/* A dimension of a tensor, as a function of the config. */
typedef enum p3_dim {
    P3_DIM_NONE = 0, /* as cols: the tensor is a vector of `rows` */
    P3_DIM_VOCAB,    /* vocab_size */
    P3_DIM_HIDDEN,   /* hidden_size */
    P3_DIM_Q,        /* num_heads * head_dim */
    P3_DIM_QKV,      /* (num_heads + 2 num_kv_heads) * head_dim */
    P3_DIM_INTER,    /* intermediate_size */
    P3_DIM_2INTER,   /* 2 * intermediate_size: gate rows, then up rows */
} p3_dim;

typedef enum p3_slot {
    P3_SLOT_EMBED = 0, /* model-wide */
    P3_SLOT_FINAL_NORM,
    P3_SLOT_LM_HEAD,   /* absent when tie_word_embeddings (the embedding serves) */
    P3_SLOT_ATTN_NORM, /* per layer from here on (engine/model.c relies on the order) */
    P3_SLOT_QKV,
    P3_SLOT_O,
    P3_SLOT_FFN_NORM,
    P3_SLOT_GATE_UP,
    P3_SLOT_DOWN,
    P3_SLOT_COUNT
} p3_slot;

typedef struct p3_arch_tensor {
    p3_slot slot;
    bool per_layer;   /* named model.layers.N.<hf> and blk.N.<gguf> */
    const char *hf;   /* "model.embed_tokens.weight", or the suffix after model.layers.N. */
    const char *gguf; /* llama.cpp's name: "token_embd.weight", or the suffix after blk.N. */
    p3_dim rows, cols;
} p3_arch_tensor;

typedef struct p3_arch {
    const char *name;              /* config.json "architectures" entry */
    const p3_arch_tensor *tensors; /* checkpoint order; per-layer entries are consecutive */
    size_t n_tensors;
} p3_arch;

/* The architecture of a config (Phi3ForCausalLM is the only one; config.c refuses others); cfg may
 * be NULL (a GGUF name before the config is read): Phi-3. */
const p3_arch *p3_arch_of(const p3_config *cfg);
/* The value of a dimension for cfg (0 for P3_DIM_NONE). */
int64_t p3_arch_dim(const p3_config *cfg, p3_dim dim);
/* Whether cfg has the tensor (false only for lm_head when the embeddings are tied). */
bool p3_arch_has(const p3_config *cfg, const p3_arch_tensor *t);
/* The HF name of t in layer `layer` (ignored for model-wide tensors). */
void p3_arch_hf_name(const p3_arch_tensor *t, int layer, char *buf, size_t size);

#endif /* P3_LOADERS_ARCH_H */
