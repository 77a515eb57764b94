/* gguf_phi3.h: a GGUF file as a Phi-3 model source (gguf_phi3.c): config from the phi3.* keys,
 * llama.cpp tensor names mapped to transformers'. */
#ifndef P3_LOADERS_GGUF_PHI3_H
#define P3_LOADERS_GGUF_PHI3_H

#include "gguf.h"

/* Fills cfg from phi3.* keys and the tensors (vocab from token_embd, tied when there is no
 * `output`, LongRoPE factors from rope_factors_long/short) and runs p3_config_finish. Refuses
 * another general.architecture by name. */
p3_status p3_gguf_config(const p3_gguf *g, const char *what, p3_config *cfg, p3_error *err);

/* The HF name of a llama.cpp phi3 tensor name (unknown names map to themselves). */
void p3_gguf_hf_name(const char *gguf_name, char *hf_name, size_t size);

/* Opens a GGUF file into src (mapping, tensors, metadata in src->gguf, config when it has
 * tensors). */
p3_status p3_gguf_open_file(const char *path, p3_model_source *src, p3_error *err);

#endif /* P3_LOADERS_GGUF_PHI3_H */
