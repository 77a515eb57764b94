"""phi3_gguf.py: the hyperparameters of a Phi-3-architecture GGUF as llama.cpp reads them, for the
tools that write synthetic models for llama.cpp (bench_llamacpp.py, requant_q4km.py)."""


def add_phi3_hparams(w, name, ctx, hidden, inter, layers, heads, file_type):
    """Writes the model metadata of a Phi-3 (MHA, plain RoPE, theta 1e4) into GGUFWriter w."""
    import gguf

    w.add_type("model")
    w.add_name(name)
    w.add_context_length(ctx)
    w.add_rope_scaling_orig_ctx_len(ctx)
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(inter)
    w.add_block_count(layers)
    w.add_head_count(heads)
    w.add_head_count_kv(heads)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(hidden // heads)
    w.add_rope_freq_base(10000.0)
    w.add_file_type(file_type)
