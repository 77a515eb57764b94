/* arch_phi3.c: Phi-3's tensor table (arch.h), the one list of its tensors: names in transformers
 * and llama.cpp, shapes, and where each goes. Phi-4-mini has the same architecture. */
#include "arch.h"

#include <stdio.h>

static const p3_arch_tensor phi3_tensors[] = {
    {P3_SLOT_EMBED, false, "model.embed_tokens.weight", "token_embd.weight", P3_DIM_VOCAB,
     P3_DIM_HIDDEN},
    {P3_SLOT_ATTN_NORM, true, "input_layernorm.weight", "attn_norm.weight", P3_DIM_HIDDEN,
     P3_DIM_NONE},
    {P3_SLOT_QKV, true, "self_attn.qkv_proj.weight", "attn_qkv.weight", P3_DIM_QKV, P3_DIM_HIDDEN},
    {P3_SLOT_O, true, "self_attn.o_proj.weight", "attn_output.weight", P3_DIM_HIDDEN, P3_DIM_Q},
    {P3_SLOT_FFN_NORM, true, "post_attention_layernorm.weight", "ffn_norm.weight", P3_DIM_HIDDEN,
     P3_DIM_NONE},
    /* llama.cpp keeps Phi-3's fused gate+up under the name ffn_up */
    {P3_SLOT_GATE_UP, true, "mlp.gate_up_proj.weight", "ffn_up.weight", P3_DIM_2INTER,
     P3_DIM_HIDDEN},
    {P3_SLOT_DOWN, true, "mlp.down_proj.weight", "ffn_down.weight", P3_DIM_HIDDEN, P3_DIM_INTER},
    {P3_SLOT_FINAL_NORM, false, "model.norm.weight", "output_norm.weight", P3_DIM_HIDDEN,
     P3_DIM_NONE},
    {P3_SLOT_LM_HEAD, false, "lm_head.weight", "output.weight", P3_DIM_VOCAB, P3_DIM_HIDDEN},
};

static const p3_arch phi3 = {"Phi3ForCausalLM", phi3_tensors, P3_ARRAY_LEN(phi3_tensors)};

const p3_arch *p3_arch_of(const p3_config *cfg) {
    (void)cfg;
    return &phi3;
}

int64_t p3_arch_dim(const p3_config *c, p3_dim dim) {
    switch (dim) {
    case P3_DIM_VOCAB:
        return c->vocab_size;
    case P3_DIM_HIDDEN:
        return c->hidden_size;
    case P3_DIM_Q:
        return (int64_t)c->num_heads * c->head_dim;
    case P3_DIM_QKV:
        return ((int64_t)c->num_heads + 2 * (int64_t)c->num_kv_heads) * c->head_dim;
    case P3_DIM_INTER:
        return c->intermediate_size;
    case P3_DIM_2INTER:
        return 2 * (int64_t)c->intermediate_size;
    default:
        return 0;
    }
}

bool p3_arch_has(const p3_config *cfg, const p3_arch_tensor *t) {
    return t->slot != P3_SLOT_LM_HEAD || !cfg->tie_word_embeddings;
}

void p3_arch_hf_name(const p3_arch_tensor *t, int layer, char *buf, size_t size) {
    if (t->per_layer)
        snprintf(buf, size, "model.layers.%d.%s", layer, t->hf);
    else
        snprintf(buf, size, "%s", t->hf);
}
