#!/usr/bin/env python3
"""make_phi4_e2e_fixture.py: a tiny Phi-4-mini-architecture model with the full 200,064-row
vocabulary (tied embeddings, partial rotary 0.75, GQA) in bf16, and transformers' greedy
generation from a text prompt tokenized by HF tokenizers with the Phi-4-mini-style tokenizer.json
(`make phi4-tokenizer`). Writes tests/fixtures/phi4mini-vocab/:
  hf-bf16/config.json, generation_config.json, model.safetensors  (about 6.5 MB; no tokenizer: the
      test puts build/phi4-tokenizer's files beside them)
  prompt.txt      the prompt text (a chat turn rendered by the template, special tokens included)
  prompt.ids      HF tokenizers' ids of prompt.txt
  greedy.ids      transformers' greedy continuation (f32 compute on the bf16 weights), N ids
  meta.json       versions, seed, the smallest top1-top2 logit gap along the generation
Run in the fixtures venv (make fixtures' build/venv-fixtures):
  build/venv-fixtures/bin/python tools/make_phi4_e2e_fixture.py build/phi4-tokenizer
"""
import json
import os
import sys

import tokenizers
import torch
import transformers
from transformers import Phi3Config, Phi3ForCausalLM

OUT = os.path.join("tests", "fixtures", "phi4mini-vocab")
N_NEW = 16
PROMPT = ("<|system|>You are a helpful assistant.<|end|><|user|>Write one line about Unicode: "
          "héllo 世界, I'LL count 12345!<|end|><|assistant|>")
STOPS = [199999, 200020]


def make_model(seed):
    torch.manual_seed(seed)
    cfg = Phi3Config(vocab_size=200064, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                     num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
                     original_max_position_embeddings=512, partial_rotary_factor=0.75,
                     tie_word_embeddings=True, rope_theta=10000.0, rms_norm_eps=1e-5,
                     bos_token_id=199999, eos_token_id=199999, pad_token_id=199999,
                     sliding_window=None, attn_implementation="eager")
    model = Phi3ForCausalLM(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():  # wide logits so greedy choices are far from ties
            p.copy_((torch.randn_like(p) * (1.0 if p.dim() == 2 else 0.1) + (1.0 if p.dim() == 1 else 0.0))
                    .to(torch.bfloat16).to(torch.float32))
    return cfg, model


def greedy(model, ids):
    """Greedy by full forwards (no cache), and the smallest top1-top2 gap along the way."""
    seq, gap = list(ids), float("inf")
    with torch.no_grad():
        for _ in range(N_NEW):
            logits = model(torch.tensor([seq])).logits[0, -1]
            top = torch.topk(logits, 2).values
            gap = min(gap, float(top[0] - top[1]))
            seq.append(int(torch.argmax(logits)))
    return seq[len(ids):], gap


def main():
    tok_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join("build", "phi4-tokenizer")
    tok = tokenizers.Tokenizer.from_file(os.path.join(tok_dir, "tokenizer.json"))
    ids = tok.encode(PROMPT, add_special_tokens=False).ids
    for seed in range(100):
        cfg, model = make_model(seed)
        new, gap = greedy(model, ids)
        with torch.no_grad():
            gen = model.generate(torch.tensor([ids]), max_new_tokens=N_NEW, do_sample=False,
                                 eos_token_id=STOPS, pad_token_id=199999)[0, len(ids):].tolist()
        if gap >= 1e-2 and gen == new and not set(new) & set(STOPS) and len(set(new)) >= 6:
            break
    else:
        sys.exit("no seed gave a clear greedy generation")
    hf = os.path.join(OUT, "hf-bf16")
    os.makedirs(hf, exist_ok=True)
    model.to(torch.bfloat16).save_pretrained(hf, safe_serialization=True)
    gen_cfg = {"bos_token_id": 199999, "eos_token_id": STOPS, "pad_token_id": 199999}
    with open(os.path.join(hf, "generation_config.json"), "w") as f:
        json.dump(gen_cfg, f, indent=2)
    with open(os.path.join(OUT, "prompt.txt"), "w", encoding="utf-8") as f:
        f.write(PROMPT)
    for name, vals in (("prompt.ids", ids), ("greedy.ids", new)):
        with open(os.path.join(OUT, name), "w") as f:
            f.write(" ".join(map(str, vals)) + "\n")
    meta = {"seed": seed, "min_top_gap": gap, "n_new": N_NEW, "generate_equals_full_forward": True,
            "torch": torch.__version__, "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
            "about": "weights N(0,1) (matrices) / 1+N(0,0.1) (norms), rounded to bf16; compute f32"}
    with open(os.path.join(OUT, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print("phi4mini-vocab: seed %d, %d prompt ids, greedy %s, min gap %.4f" % (seed, len(ids), new, gap))


if __name__ == "__main__":
    main()
