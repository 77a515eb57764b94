#!/usr/bin/env python3
"""Builds the oracle fixtures every phi3c test compares against (tests/fixtures/).

Tiny random Phi3ForCausalLM models (one per Phi-3 variant) are saved as HF folders (bf16, plus a sharded f32
folder for mini4k) and as GGUF files with llama.cpp's phi3 names and keys; for each, transformers' logits for
fixed token sequences and its greedy generation are written next to them. A GGUF with one small tensor per
quantization type and the `gguf` package's dequantization of each is written to gguf-quant/.

Usage: python tools/make_fixtures.py [--out tests/fixtures]
Test-time only (never used by the engine). Pinned versions: tools/requirements-fixtures.txt.
Running it twice gives byte-identical files; never edit the outputs by hand.
"""

import argparse
import contextlib
import json
import math
import os
import shutil
import sys

import numpy as np
import torch

import gguf
import safetensors
import transformers
from transformers import AutoModelForCausalLM, Phi3Config, Phi3ForCausalLM
from transformers.models.phi3 import modeling_phi3

INIT_STD = 0.08  # larger than transformers' 0.02: peaked logits, greedy choices far from ties
NORM_STD = 0.1  # norm weights are 1 + NORM_STD * randn, so a missing norm weight shows
GEN_NEW_TOKENS = 32
EOS_ID = 2
BOS_ID = 1
MIN_GEN_MARGIN = 0.01  # smallest accepted top1 - top2 logit gap at any greedy step
MIN_DISTINCT_GEN = 10  # generated ids must not collapse into one repeated token

# One entry per Phi-3 variant. head_dim is always hidden / heads (Phi3Config validates LongRoPE factor
# lengths with that, so no explicit head_dim is set).
VARIANTS = {
    "mini4k": dict(
        seed=101,
        about="Phi-3-mini-4k style: MHA, no rope scaling, sliding window 8 < sequence length (the window cuts)",
        config=dict(vocab_size=256, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=4096,
                    original_max_position_embeddings=4096, rope_theta=10000.0, sliding_window=8,
                    tie_word_embeddings=False),
        seq_lens=[24], gen_prompt_len=8, with_f32=True),
    "longrope": dict(
        seed=202,
        about="Phi-3-mini-128k / Phi-3.5 style: LongRoPE, original_max 32, max 128 (attention factor "
              "sqrt(1+ln4/ln32)); seq0 is shorter than 32 (short factors), seq1 longer (long factors at every "
              "position); generation crosses 32 (re-prefill)",
        config=dict(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                    num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128,
                    original_max_position_embeddings=32, rope_theta=10000.0, sliding_window=262144,
                    tie_word_embeddings=False),
        longrope=True, seq_lens=[24, 48], gen_prompt_len=20, with_f32=False),
    "medium": dict(
        seed=303,
        about="Phi-3-medium style: GQA (8 heads, 2 KV heads), hidden 160 and intermediate 200 (not multiples "
              "of 128: partial INT4 groups), head_dim 20, rope_theta 50000, sliding window 16 < sequence length",
        config=dict(vocab_size=256, hidden_size=160, intermediate_size=200, num_hidden_layers=2,
                    num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=4096,
                    original_max_position_embeddings=4096, rope_theta=50000.0, sliding_window=16,
                    tie_word_embeddings=False),
        seq_lens=[24], gen_prompt_len=8, with_f32=False),
    "phi4mini": dict(
        seed=404,
        about="Phi-4-mini style: partial_rotary_factor 0.75 (rotary dims 24 of head_dim 32), tied embeddings "
              "(no lm_head tensor), GQA (4 heads, 2 KV heads), no sliding window, LongRoPE with original_max 32, "
              "max 256 (attention factor sqrt(1+ln8/ln32)); seq1 and generation cross 32",
        config=dict(vocab_size=512, hidden_size=128, intermediate_size=128, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                    original_max_position_embeddings=32, rope_theta=10000.0, sliding_window=None,
                    partial_rotary_factor=0.75, tie_word_embeddings=True),
        longrope=True, seq_lens=[24, 48], gen_prompt_len=20, with_f32=False),
}

# HF name suffix -> llama.cpp phi3 name, only used to cross-check gguf's own tensor map below.
EXPECTED_GGUF_NAMES = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.qkv_proj.weight": "attn_qkv.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}


def versions():
    return {"python": sys.version.split()[0], "torch": torch.__version__, "transformers": transformers.__version__,
            "gguf": gguf_version(), "safetensors": safetensors.__version__, "numpy": np.__version__}


def gguf_version():
    from importlib.metadata import version
    return version("gguf")


# ----------------------------------------------------------------------------------------------------------
# Model construction


def rotary_dims(cfg):
    return int(cfg["hidden_size"] // cfg["num_attention_heads"] * cfg.get("partial_rotary_factor", 1.0))


def longrope_factors(gen, n):
    """Short and long factors, exactly representable in f32 (multiples of 1/64), different from each other.
    Long ones grow with the dimension index like the real checkpoints'; short ones stay near 1."""
    short = [1.0 + int(k) / 64.0 for k in torch.randint(0, 24, (n,), generator=gen)]
    steps = torch.randint(1, 48, (n,), generator=gen).tolist()
    long, acc = [], 64
    for s in steps:
        acc += s
        long.append(acc / 64.0)
    return short, long


def make_config(spec, gen):
    cfg = dict(spec["config"])
    if spec.get("longrope"):
        short, long = longrope_factors(gen, rotary_dims(cfg) // 2)
        cfg["rope_scaling"] = {"type": "longrope", "short_factor": short, "long_factor": long}
    return Phi3Config(**cfg, rms_norm_eps=1e-5, bos_token_id=BOS_ID, eos_token_id=EOS_ID, pad_token_id=None,
                      attn_implementation="eager")


def random_weights(model, gen):
    """Every parameter in name order from one generator: Linear/Embedding N(0, INIT_STD), norms 1+N(0, NORM_STD).
    Tied embeddings appear once in named_parameters, so they get one draw."""
    weights = {}
    for name, p in sorted(model.named_parameters()):
        if p.dim() == 1:
            weights[name] = 1.0 + NORM_STD * torch.randn(p.shape, generator=gen)
        else:
            weights[name] = INIT_STD * torch.randn(p.shape, generator=gen)
    return weights


def bf16_rounded(weights):
    return {k: v.to(torch.bfloat16).to(torch.float32) for k, v in weights.items()}


def build_model(config, weights):
    model = Phi3ForCausalLM(config).to(torch.float32).eval()
    with torch.no_grad():
        params = dict(model.named_parameters())
        for name, w in weights.items():
            params[name].copy_(w)
    if config.tie_word_embeddings:
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    return model


# ----------------------------------------------------------------------------------------------------------
# Oracles


def logits_of(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].to(torch.float32).numpy()


@contextlib.contextmanager
def fixed_reprefill():
    """transformers 4.57.6's Phi3ForCausalLM.prepare_inputs_for_generation drops the cache when the sequence
    first exceeds original_max_position_embeddings and passes the whole sequence, but keeps the one-element
    cache_position of the decode step: the attention mask is then built for a single query row and broadcast
    to all rows, so the re-prefill attends non-causally and the cache it leaves behind is wrong (verified below:
    its ids differ from a full forward at every step). This wrapper also resets cache_position to cover the
    whole sequence, which is the evident intent; the result equals a full forward at every step."""
    original = modeling_phi3.Phi3ForCausalLM.prepare_inputs_for_generation

    def patched(self, input_ids, past_key_values=None, attention_mask=None, inputs_embeds=None,
                cache_position=None, **kwargs):
        orig_max = self.config.original_max_position_embeddings
        if (past_key_values and self.config.rope_scaling and input_ids.shape[1] >= orig_max + 1
                and cache_position[0] <= orig_max):
            past_key_values = None
            cache_position = torch.arange(input_ids.shape[1])
        return original(self, input_ids, past_key_values=past_key_values, attention_mask=attention_mask,
                        inputs_embeds=inputs_embeds, cache_position=cache_position, **kwargs)

    modeling_phi3.Phi3ForCausalLM.prepare_inputs_for_generation = patched
    try:
        yield
    finally:
        modeling_phi3.Phi3ForCausalLM.prepare_inputs_for_generation = original


@contextlib.contextmanager
def no_reprefill():
    """The wrong alternative the oracle must be able to reject: keep the short-factor cache when the length
    crosses original_max (generic GenerationMixin input preparation, Phi3's cache drop skipped)."""
    original = modeling_phi3.Phi3ForCausalLM.prepare_inputs_for_generation
    modeling_phi3.Phi3ForCausalLM.prepare_inputs_for_generation = \
        transformers.GenerationMixin.prepare_inputs_for_generation
    try:
        yield
    finally:
        modeling_phi3.Phi3ForCausalLM.prepare_inputs_for_generation = original


def hf_generate(model, prompt, trace=None):
    """transformers' greedy generate; min_new_tokens masks EOS so exactly GEN_NEW_TOKENS tokens come out."""
    handle = None
    if trace is not None:
        def record(_mod, _args, kwargs):
            pkv = kwargs.get("past_key_values")
            trace.append({"input_len": int(kwargs["input_ids"].shape[1]),
                          "cached_before": 0 if pkv is None else int(pkv.get_seq_length()),
                          "first_position": int(kwargs["position_ids"][0, 0])})
        handle = model.model.register_forward_pre_hook(record, with_kwargs=True)
    try:
        ids = torch.tensor([prompt])
        with torch.no_grad():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                 max_new_tokens=GEN_NEW_TOKENS, min_new_tokens=GEN_NEW_TOKENS,
                                 pad_token_id=EOS_ID, eos_token_id=EOS_ID)
    finally:
        if handle is not None:
            handle.remove()
    return out[0, len(prompt):].tolist()


def full_forward_greedy(model, prompt):
    """Greedy by a full forward over the whole sequence at every step (no cache): the unambiguous definition.
    EOS is not masked here, so equality with hf_generate proves the EOS suppression never changed a choice.
    Returns the ids and the smallest top1 - top2 gap seen."""
    ids, new, margin = list(prompt), [], float("inf")
    for _ in range(GEN_NEW_TOKENS):
        row = logits_of(model, ids)[-1]
        top2 = np.sort(row)[-2:]
        margin = min(margin, float(top2[1] - top2[0]))
        tok = int(np.argmax(row))
        new.append(tok)
        ids.append(tok)
    return new, margin


def random_ids(gen, n, vocab):
    return torch.randint(0, vocab, (n,), generator=gen).tolist()


def wrong_longrope_generations(model, prompt):
    """Ids from the two wrong LongRoPE treatments: no re-prefill at the crossing, and short factors forever."""
    with no_reprefill():
        kept_cache = hf_generate(model, prompt)
    short_cfg = Phi3Config(**model.config.to_dict())
    short_cfg.rope_scaling = {**short_cfg.rope_scaling, "long_factor": list(short_cfg.rope_scaling["short_factor"])}
    short_cfg._attn_implementation = "eager"
    short_model = build_model(short_cfg, {k: v for k, v in model.named_parameters()})
    always_short, _ = full_forward_greedy(short_model, prompt)
    return {"without_reprefill": kept_cache, "always_short_factors": always_short}


def acceptable(ids, margin, wrong):
    """No EOS, no near-tie (robust to f32 rounding), not degenerate, and the wrong treatments give other ids."""
    return (EOS_ID not in ids and margin >= MIN_GEN_MARGIN and len(set(ids)) >= MIN_DISTINCT_GEN
            and all(w != ids for w in wrong.values()))


def pick_gen_prompt(spec, models, gen):
    """First candidate prompt acceptable for every weight precision."""
    vocab = spec["config"]["vocab_size"]
    for attempt in range(200):
        prompt = random_ids(gen, spec["gen_prompt_len"], vocab)
        results, ok = {}, True
        for prec, m in models.items():
            ids, margin = full_forward_greedy(m, prompt)
            wrong = wrong_longrope_generations(m, prompt) if m.config.rope_scaling else {}
            results[prec] = (ids, margin, wrong)
            ok = ok and acceptable(ids, margin, wrong)
            if not ok:
                break
        if ok:
            return prompt, results, attempt
    raise RuntimeError("no acceptable generation prompt found")


# ----------------------------------------------------------------------------------------------------------
# Independent float64 reference (numpy), written from phi3-facts, to cross-check transformers itself.


def numpy_reference_logits(config, weights, ids):
    c = config
    w = {k: v.double().numpy() for k, v in weights.items()}
    n_h, n_kv = c.num_attention_heads, c.num_key_value_heads
    hd = c.hidden_size // n_h
    rd = int(hd * c.partial_rotary_factor)
    T = len(ids)
    ext = np.ones(rd // 2)
    mscale = 1.0
    if c.rope_scaling:
        orig = c.original_max_position_embeddings
        ext = np.array(c.rope_scaling["long_factor"] if T > orig else c.rope_scaling["short_factor"])
        s = c.max_position_embeddings / orig
        mscale = math.sqrt(1 + math.log(s) / math.log(orig)) if s > 1 else 1.0
    inv_freq = 1.0 / (ext * c.rope_theta ** (np.arange(0, rd, 2) / rd))
    ang = np.arange(T)[:, None] * inv_freq[None, :]
    cos, sin = np.cos(ang) * mscale, np.sin(ang) * mscale

    def rms(x, g):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + c.rms_norm_eps) * g

    def rope(x):  # x [T, heads, hd]; pairs (i, i + rd/2)
        x = x.copy()
        a, b = x[..., : rd // 2].copy(), x[..., rd // 2: rd].copy()
        x[..., : rd // 2] = a * cos[:, None] - b * sin[:, None]
        x[..., rd // 2: rd] = b * cos[:, None] + a * sin[:, None]
        return x

    allowed = np.tril(np.ones((T, T), bool))
    if c.sliding_window is not None:
        allowed &= (np.arange(T)[None, :] > np.arange(T)[:, None] - c.sliding_window)
    h = w["model.embed_tokens.weight"][ids]
    for L in range(c.num_hidden_layers):
        p = f"model.layers.{L}."
        qkv = rms(h, w[p + "input_layernorm.weight"]) @ w[p + "self_attn.qkv_proj.weight"].T
        q = rope(qkv[:, : n_h * hd].reshape(T, n_h, hd))
        k = rope(qkv[:, n_h * hd: (n_h + n_kv) * hd].reshape(T, n_kv, hd))
        v = qkv[:, (n_h + n_kv) * hd:].reshape(T, n_kv, hd)
        att = np.zeros((T, n_h, hd))
        for head in range(n_h):
            kvh = head // (n_h // n_kv)
            sc = q[:, head] @ k[:, kvh].T / math.sqrt(hd)
            sc = np.where(allowed, sc, -np.inf)
            pr = np.exp(sc - sc.max(-1, keepdims=True))
            pr /= pr.sum(-1, keepdims=True)
            att[:, head] = pr @ v[:, kvh]
        h = h + att.reshape(T, n_h * hd) @ w[p + "self_attn.o_proj.weight"].T
        gu = rms(h, w[p + "post_attention_layernorm.weight"]) @ w[p + "mlp.gate_up_proj.weight"].T
        gate, up = gu[:, : c.intermediate_size], gu[:, c.intermediate_size:]
        h = h + (gate / (1 + np.exp(-gate)) * up) @ w[p + "mlp.down_proj.weight"].T
    h = rms(h, w["model.norm.weight"])
    head_w = w["model.embed_tokens.weight"] if c.tie_word_embeddings else w["lm_head.weight"]
    return h @ head_w.T


# ----------------------------------------------------------------------------------------------------------
# Writers


def write_ids(path, ids):
    with open(path, "w") as f:
        f.write(" ".join(str(i) for i in ids) + "\n")


def write_f32(path, array):
    np.ascontiguousarray(array, dtype="<f4").tofile(path)


def save_hf_folder(model_f32, path, dtype, max_shard_size=None):
    model = model_f32 if dtype == torch.float32 else Phi3ForCausalLM(model_f32.config).to(dtype)
    if dtype != torch.float32:
        model.load_state_dict({k: v.to(dtype) for k, v in model_f32.state_dict().items()})
    kwargs = {"safe_serialization": True}
    if max_shard_size is not None:
        kwargs["max_shard_size"] = max_shard_size
    model.save_pretrained(path, **kwargs)


def gguf_tensor_name(hf_name, n_layers):
    """llama.cpp's name via gguf's own tensor map (what convert_hf_to_gguf uses), checked against the table."""
    name_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH.PHI3, n_layers)
    mapped = name_map.get_name(hf_name, try_suffixes=(".weight",))
    parts = hf_name.split(".")
    if parts[1] == "layers":
        expected = f"blk.{parts[2]}." + EXPECTED_GGUF_NAMES[".".join(parts[3:])]
    else:
        expected = EXPECTED_GGUF_NAMES[hf_name]
    assert mapped == expected, (hf_name, mapped, expected)
    return mapped


def write_gguf(path, variant, config, weights, precision):
    """Mirrors convert_hf_to_gguf.py's Phi3MiniModel: same keys, same extra tensors, 1-D tensors in F32,
    2-D ones in the output type (BF16 or F32). No tokenizer metadata: the logits tests need none."""
    c = config
    rd = rotary_dims(c.to_dict())
    writer = gguf.GGUFWriter(path, "phi3")
    writer.add_type("model")
    writer.add_name(f"phi3c fixture {variant}")
    writer.add_context_length(c.max_position_embeddings)
    writer.add_rope_scaling_orig_ctx_len(c.original_max_position_embeddings)
    writer.add_embedding_length(c.hidden_size)
    writer.add_feed_forward_length(c.intermediate_size)
    writer.add_block_count(c.num_hidden_layers)
    writer.add_head_count(c.num_attention_heads)
    writer.add_head_count_kv(c.num_key_value_heads)
    writer.add_layer_norm_rms_eps(c.rms_norm_eps)
    writer.add_rope_dimension_count(rd)
    writer.add_rope_freq_base(c.rope_theta)
    ftype = gguf.LlamaFileType.MOSTLY_BF16 if precision == "bf16" else gguf.LlamaFileType.ALL_F32
    writer.add_file_type(ftype)
    writer.add_sliding_window(c.sliding_window if c.sliding_window is not None else 0)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    if c.rope_scaling:
        writer.add_rope_scaling_attn_factors(attention_factor(c))
        long_f = np.array(c.rope_scaling["long_factor"], dtype=np.float32)
        short_f = np.array(c.rope_scaling["short_factor"], dtype=np.float32)
        assert len(long_f) == len(short_f) == rd // 2
        writer.add_tensor("rope_factors_long.weight", long_f)
        writer.add_tensor("rope_factors_short.weight", short_f)
    for hf_name in sorted(weights):
        w = weights[hf_name].contiguous()
        name = gguf_tensor_name(hf_name, c.num_hidden_layers)
        if w.dim() == 1 or precision == "f32":
            writer.add_tensor(name, w.to(torch.float32).numpy())
        else:
            raw = w.to(torch.bfloat16).view(torch.int16).numpy().view(np.uint8)  # bf16 bits, row-major
            writer.add_tensor(name, raw, raw_dtype=gguf.GGMLQuantizationType.BF16)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def attention_factor(c):
    s = c.max_position_embeddings / c.original_max_position_embeddings
    return math.sqrt(1 + math.log(s) / math.log(c.original_max_position_embeddings)) if s > 1 else 1.0


def weights_from_gguf(path, config):
    """Reads a fixture GGUF back into HF names (f32 tensors) and checks its metadata against the config."""
    reader = gguf.GGUFReader(path)
    fields = {f.name: f.contents() for f in reader.fields.values()}
    c = config
    assert fields["general.architecture"] == "phi3"
    assert fields["phi3.rope.dimension_count"] == rotary_dims(c.to_dict())
    assert fields["phi3.rope.scaling.original_context_length"] == c.original_max_position_embeddings
    assert fields["phi3.attention.sliding_window"] == (c.sliding_window or 0)
    assert fields["phi3.attention.head_count_kv"] == c.num_key_value_heads
    back = {}
    names = {gguf_tensor_name(k, c.num_hidden_layers): k for k in Phi3ForCausalLM(c).state_dict()}
    for t in reader.tensors:
        data = gguf.quants.dequantize(t.data, t.tensor_type)
        if t.name.startswith("rope_factors_"):
            key = "long_factor" if "long" in t.name else "short_factor"
            assert np.array_equal(data, np.array(c.rope_scaling[key], np.float32))
            continue
        back[names[t.name]] = torch.from_numpy(np.array(data, dtype=np.float32).reshape(
            [int(d) for d in reversed(t.shape)]))
    return back, fields


# ----------------------------------------------------------------------------------------------------------
# Per-variant driver


def verify_sliding_window(config, weights, ids, meta_checks):
    """The window must really cut in transformers' eager attention: logits change when the window changes,
    and only at positions >= window."""
    base = logits_of(build_model(config, weights), ids)
    wider = Phi3Config(**{**config.to_dict(), "sliding_window": config.sliding_window + 1})
    wider._attn_implementation = "eager"
    none = Phi3Config(**{**config.to_dict(), "sliding_window": None})
    none._attn_implementation = "eager"
    l_wider = logits_of(build_model(wider, weights), ids)
    l_none = logits_of(build_model(none, weights), ids)
    W = config.sliding_window
    assert np.array_equal(base[:W], l_none[:W]), "window changed rows it cannot affect"
    d_none = float(np.abs(base[W:] - l_none[W:]).max())
    d_wider = float(np.abs(base - l_wider).max())
    assert d_none > 1e-3 and d_wider > 1e-3, "sliding window has no effect"
    meta_checks["sliding_window"] = (
        f"transformers {transformers.__version__} eager attention applies sliding_window={W} (query i sees keys j "
        f"with i-W < j <= i): rows < {W} are identical to a run without window, rows >= {W} differ by up to "
        f"{d_none:.4g}; window {W + 1} instead of {W} changes the logits by up to {d_wider:.4g}")


def verify_longrope_switch(model, config, long_ids, meta_checks):
    orig = config.original_max_position_embeddings
    full = logits_of(model, long_ids)
    prefix = logits_of(model, long_ids[:orig])
    d = float(np.abs(full[:orig] - prefix).max())
    assert d > 1e-3, "LongRoPE did not switch factors"
    rot = model.model.rotary_emb
    hd = config.hidden_size // config.num_attention_heads
    rd = int(hd * config.partial_rotary_factor)
    expo = torch.arange(0, rd, 2, dtype=torch.int64).float() / rd
    with torch.no_grad():
        for length, key in ((orig, "short_factor"), (orig + 1, "long_factor")):
            pos = torch.arange(length)[None]
            rot(torch.zeros(1, dtype=torch.float32), pos)
            want = 1.0 / (torch.tensor(config.rope_scaling[key]) * config.rope_theta ** expo)
            assert torch.equal(rot.inv_freq, want), key
    assert abs(rot.attention_scaling - attention_factor(config)) < 1e-12
    meta_checks["longrope_switch"] = (
        f"transformers {transformers.__version__}: Phi3RotaryEmbedding's dynamic_rope_update uses long_factor when "
        f"max(position_ids)+1 > original_max_position_embeddings ({orig}), else short_factor, for the whole "
        f"forward (every position). Checked: inv_freq for a {orig}-token forward = short, for {orig + 1} = long; "
        f"rows 0..{orig - 1} of the {len(long_ids)}-token forward differ from a {orig}-token forward of the same "
        f"prefix by up to {d:.4g}. cos and sin are both multiplied by attention_factor "
        f"{attention_factor(config):.9f} = sqrt(1+ln(max/orig)/ln(orig)), for short and long alike.")


def make_variant(out_root, variant, spec):
    out = os.path.join(out_root, variant)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    gen = torch.Generator().manual_seed(spec["seed"])
    config = make_config(spec, gen)
    weights_f32 = random_weights(Phi3ForCausalLM(config), gen)
    weight_sets = {"bf16": bf16_rounded(weights_f32)}
    if spec["with_f32"]:
        weight_sets["f32"] = weights_f32
    models = {prec: build_model(config, w) for prec, w in weight_sets.items()}
    checks, files = {}, {}

    # HF folders (config.json and generation_config.json exactly as save_pretrained writes them).
    save_hf_folder(models["bf16"], os.path.join(out, "hf-bf16"), torch.bfloat16)
    if "f32" in models:
        total = sum(w.numel() * 4 for w in weights_f32.values())
        save_hf_folder(models["f32"], os.path.join(out, "hf-f32"), torch.float32, max_shard_size=total * 6 // 10)
        shards = sorted(f for f in os.listdir(os.path.join(out, "hf-f32")) if f.endswith(".safetensors"))
        assert shards == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"], shards

    # GGUF files from the same weights.
    for prec in weight_sets:
        write_gguf(os.path.join(out, f"model-{prec}.gguf"), variant, config, weight_sets[prec], prec)

    # Logits oracle: one full-sequence forward per sequence.
    seq_gen = torch.Generator().manual_seed(spec["seed"] + 1)
    seqs = [random_ids(seq_gen, n, config.vocab_size) for n in spec["seq_lens"]]
    for i, ids in enumerate(seqs):
        write_ids(os.path.join(out, f"seq{i}.ids"), ids)
        for prec, model in models.items():
            logits = logits_of(model, ids)
            name = f"{prec}.seq{i}.logits"
            write_f32(os.path.join(out, name), logits)
            ref = numpy_reference_logits(config, weight_sets[prec], ids)
            ref_err = float(np.abs(ref - logits).max())
            max_abs = float(np.abs(logits).max())
            assert ref_err <= 1e-5 * max_abs, (variant, name, ref_err)
            files[name] = {"ids": f"seq{i}.ids", "shape": list(logits.shape), "max_abs_logit": max_abs,
                           "max_abs_diff_vs_float64_numpy_reference": ref_err}

    # The saved folders and GGUFs must reproduce the oracle exactly.
    checks["reload"] = verify_reloads(out, config, weight_sets, seqs[0], files)

    if config.sliding_window is not None and config.sliding_window < max(spec["seq_lens"]):
        verify_sliding_window(config, weight_sets["bf16"], seqs[0], checks)
    if config.rope_scaling:
        verify_longrope_switch(models["bf16"], config, seqs[-1], checks)

    # Greedy generation oracle.
    prompt, greedy, attempts = pick_gen_prompt(spec, models, torch.Generator().manual_seed(spec["seed"] + 2))
    write_ids(os.path.join(out, "gen.prompt.ids"), prompt)
    gen_meta = {"prompt": "gen.prompt.ids", "prompt_len": len(prompt), "new_tokens": GEN_NEW_TOKENS,
                "prompt_candidates_rejected": attempts}
    for prec, model in models.items():
        trace = []
        with fixed_reprefill():
            new = hf_generate(model, prompt, trace)
        ref_ids, margin, wrong = greedy[prec]
        assert new == ref_ids, (variant, prec, "generate (cache) != full-forward greedy")
        name = f"{prec}.gen.out.ids"
        write_ids(os.path.join(out, name), new)
        entry = {"min_top1_top2_gap": margin, "distinct_ids": len(set(new)), "forward_calls": summarize_trace(trace)}
        if config.rope_scaling:
            unpatched = hf_generate(model, prompt)
            entry["unpatched_transformers_generate"] = unpatched
            entry["unpatched_equals_oracle"] = unpatched == new
            entry["wrong_treatments_give_other_ids"] = wrong
        gen_meta[name] = entry
    checks["generation"] = generation_note(config, spec)

    meta = {
        "variant": variant, "about": spec["about"], "seed": spec["seed"],
        "seeds": {"weights_and_rope_factors": spec["seed"], "sequences": spec["seed"] + 1,
                  "gen_prompt": spec["seed"] + 2},
        "init": {"linear_and_embedding_std": INIT_STD, "norm_weights": f"1 + {NORM_STD} * randn"},
        "config": config_summary(config), "versions": versions(), "logits": files, "generation": gen_meta,
        "checks": checks,
        "precisions": {
            "bf16": "weights rounded to bf16 (round-to-nearest-even), upcast to f32, f32 compute; these are the "
                    "weights in hf-bf16/ and model-bf16.gguf (norms stored as F32 there, with bf16-exact values)",
            "f32": "the original f32 weights (hf-f32/, model-f32.gguf)" if spec["with_f32"] else "not made",
        },
    }
    with open(os.path.join(out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
        f.write("\n")


def verify_reloads(out, config, weight_sets, ids, files):
    notes = []
    for prec in weight_sets:
        want = np.fromfile(os.path.join(out, f"{prec}.seq0.logits"), dtype="<f4").reshape(len(ids), -1)
        folder = os.path.join(out, f"hf-{prec}")
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager")
        assert np.array_equal(logits_of(model.eval(), ids), want), folder
        back, _ = weights_from_gguf(os.path.join(out, f"model-{prec}.gguf"), config)
        assert set(back) == set(weight_sets[prec]), sorted(set(back) ^ set(weight_sets[prec]))
        for k, v in back.items():
            assert torch.equal(v, weight_sets[prec][k]), k
        assert np.array_equal(logits_of(build_model(config, back), ids), want)
        notes.append(f"hf-{prec}/ loaded by from_pretrained (f32) and model-{prec}.gguf read back with "
                     f"gguf.GGUFReader give weights and seq0 logits identical to the oracle")
    return notes


def summarize_trace(trace):
    """Compresses the forward-call trace: prefills are kept, runs of one-token decode steps are counted."""
    out, run = [], 0
    for call in trace:
        if call["input_len"] == 1:
            run += 1
            continue
        if run:
            out.append(f"{run} decode steps of 1 token")
            run = 0
        out.append(f"forward of {call['input_len']} tokens (positions {call['first_position']}.."
                   f"{call['first_position'] + call['input_len'] - 1}) with {call['cached_before']} cached")
    if run:
        out.append(f"{run} decode steps of 1 token")
    return out


def generation_note(config, spec):
    text = ("Oracle = transformers' greedy generate (do_sample=False, min_new_tokens=max_new_tokens="
            f"{GEN_NEW_TOKENS}, which masks EOS={EOS_ID}), run in f32; <prec>.gen.out.ids holds only the "
            f"{GEN_NEW_TOKENS} new ids. It equals greedy by a full forward (no cache) over the whole sequence at "
            "every step with EOS NOT masked, so the EOS mask never changed a choice and phi3c can compare "
            f"`-n {GEN_NEW_TOKENS}` greedy output directly. Every step's top1-top2 gap is >= {MIN_GEN_MARGIN} and the "
            f"new ids hold >= {MIN_DISTINCT_GEN} distinct values (prompts failing this are skipped).")
    if config.sliding_window is not None and config.sliding_window < spec["gen_prompt_len"] + GEN_NEW_TOKENS:
        text += (f" The sliding window ({config.sliding_window}) cuts during generation; transformers' "
                 "DynamicSlidingWindowLayer cache gives the same ids as the full forward.")
    if config.rope_scaling:
        orig = config.original_max_position_embeddings
        text += (f" LongRoPE: the prompt is shorter than original_max ({orig}) and generation crosses it. "
                 "Phi3ForCausalLM.prepare_inputs_for_generation drops the cache when the sequence first reaches "
                 f"{orig + 1} tokens and re-prefills all of them (long factors at every position); later steps "
                 "decode one token against that cache. In transformers 4.57.6 that re-prefill keeps the stale "
                 "one-element cache_position, so its attention mask is a single broadcast row (non-causal) and "
                 "the ids diverge from a full forward (see unpatched_transformers_generate). make_fixtures.py "
                 "corrects only cache_position during generate (fixed_reprefill); the oracle is that corrected "
                 "generate, which equals the full-forward greedy. phi3c must re-prefill causally with the long "
                 "factors when the length first exceeds original_max. The prompt is chosen so that both wrong "
                 "treatments (keeping the short-factor cache across the crossing, and short factors forever) "
                 "give other ids (wrong_treatments_give_other_ids).")
    return text


def config_summary(c):
    hd = c.hidden_size // c.num_attention_heads
    summary = {"vocab_size": c.vocab_size, "hidden_size": c.hidden_size, "intermediate_size": c.intermediate_size,
               "num_hidden_layers": c.num_hidden_layers, "num_attention_heads": c.num_attention_heads,
               "num_key_value_heads": c.num_key_value_heads, "head_dim": hd,
               "rotary_dims": int(hd * c.partial_rotary_factor), "partial_rotary_factor": c.partial_rotary_factor,
               "max_position_embeddings": c.max_position_embeddings,
               "original_max_position_embeddings": c.original_max_position_embeddings,
               "rope_theta": c.rope_theta, "rope_scaling": c.rope_scaling, "sliding_window": c.sliding_window,
               "rms_norm_eps": c.rms_norm_eps, "tie_word_embeddings": c.tie_word_embeddings,
               "bos_token_id": c.bos_token_id, "eos_token_id": c.eos_token_id}
    if c.rope_scaling:
        summary["attention_factor"] = attention_factor(c)
    return summary


# ----------------------------------------------------------------------------------------------------------
# GGUF dequantization oracle


def f16_scales(rng, n, lo, hi):
    return rng.uniform(lo, hi, n).astype(np.float16)


def kquant_blocks(rng, qtype, n_blocks):
    """Random K-quant blocks: random quant/scale bytes, finite positive f16 super-block scales."""
    _, type_size = gguf.GGML_QUANT_SIZES[qtype]
    blocks = rng.integers(0, 256, (n_blocks, type_size), dtype=np.uint8)
    if qtype in (gguf.GGMLQuantizationType.Q4_K, gguf.GGMLQuantizationType.Q5_K):
        blocks[:, 0:2] = f16_scales(rng, n_blocks, 1e-3, 0.05).view(np.uint8).reshape(n_blocks, 2)  # d
        blocks[:, 2:4] = f16_scales(rng, n_blocks, 1e-3, 0.05).view(np.uint8).reshape(n_blocks, 2)  # dmin
    elif qtype == gguf.GGMLQuantizationType.Q6_K:
        blocks[:, -2:] = f16_scales(rng, n_blocks, 1e-4, 0.01).view(np.uint8).reshape(n_blocks, 2)  # d (last)
    return blocks


QUANT_TENSORS = [  # name, type, torch-order shape [rows, cols]
    ("t_f32", gguf.GGMLQuantizationType.F32, (3, 40)),
    ("t_f16", gguf.GGMLQuantizationType.F16, (4, 36)),
    ("t_bf16", gguf.GGMLQuantizationType.BF16, (5, 24)),
    ("t_q8_0", gguf.GGMLQuantizationType.Q8_0, (3, 96)),
    ("t_q4_0", gguf.GGMLQuantizationType.Q4_0, (4, 64)),
    ("t_q4_k", gguf.GGMLQuantizationType.Q4_K, (3, 512)),
    ("t_q5_k", gguf.GGMLQuantizationType.Q5_K, (2, 512)),
    ("t_q6_k", gguf.GGMLQuantizationType.Q6_K, (3, 256)),
]


def make_gguf_quant(out_root):
    out = os.path.join(out_root, "gguf-quant")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    rng = np.random.default_rng(505)
    Q = gguf.GGMLQuantizationType
    writer = gguf.GGUFWriter(os.path.join(out, "quant-types.gguf"), "phi3c-quant-test")
    writer.add_name("phi3c dequantization oracle")
    entries = {}
    for name, qtype, (rows, cols) in QUANT_TENSORS:
        values = rng.normal(0.0, 1.0, (rows, cols)).astype(np.float32)
        if qtype == Q.F32:
            writer.add_tensor(name, values)
            stored = values.view(np.uint8)
        elif qtype == Q.F16:
            writer.add_tensor(name, values.astype(np.float16))
            stored = values.astype(np.float16).view(np.uint8)
        elif qtype in (Q.BF16, Q.Q8_0, Q.Q4_0):
            stored = gguf.quants.quantize(values, qtype)  # gguf's own quantizer (uint8 rows)
            writer.add_tensor(name, stored, raw_dtype=qtype)
        else:
            block, type_size = gguf.GGML_QUANT_SIZES[qtype]
            stored = kquant_blocks(rng, qtype, rows * cols // block).reshape(rows, cols // block * type_size)
            writer.add_tensor(name, stored, raw_dtype=qtype)
        deq = gguf.quants.dequantize(stored.reshape(rows, -1), qtype).reshape(rows, cols)
        assert np.all(np.isfinite(deq)), name
        write_f32(os.path.join(out, f"{name}.f32"), deq)
        entries[name] = {"type": qtype.name, "shape_hf_order": [rows, cols], "ggml_ne": [cols, rows],
                         "f32_file": f"{name}.f32", "max_abs": float(np.abs(deq).max())}
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    verify_quant_file(out, entries)
    meta = {"file": "quant-types.gguf", "architecture": "phi3c-quant-test (not a model)", "tensors": entries,
            "versions": versions(), "seed": 505,
            "notes": "Each <name>.f32 is gguf.quants.dequantize of the stored tensor, raw little-endian f32 in "
                     "row-major HF order [rows, cols]. F32/F16 are stored directly; BF16, Q8_0 and Q4_0 come from "
                     "gguf.quants.quantize of N(0,1) values; Q4_K, Q5_K and Q6_K blocks are random bytes with "
                     "finite positive f16 super-block scales (the package cannot quantize K-quants)."}
    with open(os.path.join(out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
        f.write("\n")


def verify_quant_file(out, entries):
    reader = gguf.GGUFReader(os.path.join(out, "quant-types.gguf"))
    assert len(reader.tensors) == len(entries)
    for t in reader.tensors:
        e = entries[t.name]
        assert gguf.GGMLQuantizationType(t.tensor_type).name == e["type"]
        assert [int(d) for d in t.shape] == e["ggml_ne"]
        want = np.fromfile(os.path.join(out, e["f32_file"]), dtype="<f4")
        got = gguf.quants.dequantize(t.data, t.tensor_type).reshape(-1)
        assert np.array_equal(got, want), t.name


# ----------------------------------------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="tests/fixtures", help="output directory (default tests/fixtures)")
    parser.add_argument("--only", nargs="*", help="subset of: " + " ".join([*VARIANTS, "gguf-quant"]))
    args = parser.parse_args()
    # One thread and deterministic kernels: the same bytes on every run (and likely on other machines).
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    transformers.logging.set_verbosity_error()
    wanted = args.only or [*VARIANTS, "gguf-quant"]
    os.makedirs(args.out, exist_ok=True)
    for variant, spec in VARIANTS.items():
        if variant in wanted:
            print(f"[make_fixtures] {variant}", flush=True)
            make_variant(args.out, variant, spec)
    if "gguf-quant" in wanted:
        print("[make_fixtures] gguf-quant", flush=True)
        make_gguf_quant(args.out)


if __name__ == "__main__":
    main()
