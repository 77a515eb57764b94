#!/usr/bin/env python3
"""Train the small KJV demo model that `make run` ships (tools/demo-model/).

Owns: corpus extraction from Debian's bible-kjv, the held-out split, training, the bf16 export in HF
layout, the reference held-out perplexity that phi3c's perplexity tool must reproduce, and TRAINING.md.

Usage (from the repo root; versions pinned in tools/requirements-demo.txt):
    python tools/train_demo.py                      # full run, writes tools/demo-model/
    python tools/train_demo.py --smoke --out /tmp/x # a minute-long check of the whole pipeline
    python tools/train_demo.py --write-heldout F    # only regenerate the held-out text
    python tools/train_demo.py --eval-folder DIR    # reference perplexity of a saved folder on its heldout.txt
"""
import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# Shared data sits beside the repo (../shared); the SHARED environment variable overrides, like the Makefile.
SHARED_DIR = Path(os.environ.get("SHARED", REPO_ROOT.parent / "shared"))
DEFAULT_TOKENIZER_DIR = SHARED_DIR / "data" / "phi3" / "tokenizer-phi-3-mini"
DEFAULT_OUT = REPO_ROOT / "tools" / "demo-model"

VERSE_RANGE = "gen1:1-rev22:21"
EXPECTED_VERSES = 31102
# The last four books of the New Testament (bible-kjv's abbreviations): 456 verses, never trained on.
HELDOUT_BOOKS = ("2Jn", "3Jn", "Jude", "Rev")
# `bible -f` prints one verse per line: "<Book><chapter>:<verse> <text>", e.g. "1Sm3:10 And the LORD came".
VERSE_LINE = re.compile(r"^([1-3]?[A-Za-z]+)(\d+):(\d+) (.+)$")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")

# Model shape: hidden 128 (one full INT4 group of 128 per row), head_dim 32, tied 32064-row embedding.
MODEL_SHAPE = dict(
    vocab_size=32064,
    hidden_size=128,
    intermediate_size=512,
    num_hidden_layers=8,
    num_attention_heads=4,
    num_key_value_heads=4,
    max_position_embeddings=512,
    original_max_position_embeddings=512,
    rope_theta=10000.0,
    rope_scaling=None,
    sliding_window=None,
    rms_norm_eps=1e-5,
    tie_word_embeddings=True,
    bos_token_id=1,
    eos_token_id=32000,
    pad_token_id=32000,
)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="model folder to write")
    p.add_argument("--tokenizer-dir", type=Path, default=DEFAULT_TOKENIZER_DIR)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--steps", type=int, default=900, help="length of the learning-rate schedule")
    p.add_argument("--stop-at", type=int, metavar="N",
                   help="stop after N steps of the --steps schedule (lr not fully decayed)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=256, help="training sequence length = perplexity window")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--min-lr-ratio", type=float, default=0.1)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--log-every", type=int, default=25)
    p.add_argument("--eval-every", type=int, default=150)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--smoke", action="store_true", help="20 steps, for checking the pipeline")
    p.add_argument("--write-heldout", type=Path, metavar="PATH",
                   help="write the held-out text to PATH and exit (no training)")
    p.add_argument("--eval-folder", type=Path, metavar="DIR",
                   help="load a saved model folder in f32 and print its perplexity on DIR/heldout.txt (no training)")
    return p.parse_args()


def read_kjv_verses():
    """Return [(book, text)] for every verse, in canonical order, references stripped."""
    if shutil.which("bible") is None:
        sys.exit("train_demo: the `bible` command is missing; install it with: apt-get install bible-kjv")
    out = subprocess.run(["bible", "-f", VERSE_RANGE], check=True, capture_output=True, text=True).stdout
    verses = []
    for line in out.splitlines():
        m = VERSE_LINE.match(line)
        if not m:
            sys.exit(f"train_demo: unexpected line from `bible -f`: {line[:80]!r}")
        # A few verses contain a double space after a sentence; keep the text exactly as printed.
        verses.append((m.group(1), m.group(4)))
    if len(verses) != EXPECTED_VERSES:
        sys.exit(f"train_demo: `bible -f {VERSE_RANGE}` gave {len(verses)} verses, expected {EXPECTED_VERSES}")
    return verses


def split_corpus(verses):
    """One verse per line, '\\n'-terminated. Returns (train_text, heldout_text)."""
    train = [t for b, t in verses if b not in HELDOUT_BOOKS]
    held = [t for b, t in verses if b in HELDOUT_BOOKS]
    missing = set(HELDOUT_BOOKS) - {b for b, _ in verses}
    if missing:
        sys.exit(f"train_demo: held-out books not found in bible-kjv output: {sorted(missing)}")
    return "\n".join(train) + "\n", "\n".join(held) + "\n"


def encode(tokenizer, text):
    # The whole text is one string, with no BOS: exactly what phi3c's perplexity tool does with a file.
    return tokenizer.encode(text, add_special_tokens=False).ids


def perplexity(model, ids, window):
    """Windows of `window` tokens, no BOS, non-overlapping, starting at token 0; the trailing partial window
    is dropped. Every token of a window except its first is predicted from the tokens before it in the same
    window. perplexity = exp(total NLL / number of predicted tokens), NLL summed in float64."""
    import torch

    n_windows = len(ids) // window
    data = torch.tensor(ids[: n_windows * window], dtype=torch.long).view(n_windows, window)
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for start in range(0, n_windows, 8):
            batch = data[start:start + 8]
            logits = model(input_ids=batch).logits.float()
            nll = torch.nn.functional.cross_entropy(
                logits[:, :-1].reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1), reduction="none")
            total += nll.double().sum().item()
            count += nll.numel()
    return math.exp(total / count), n_windows, count


def lr_at(step, args):
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    progress = (step - args.warmup) / max(1, args.steps - args.warmup)
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    return args.lr * (args.min_lr_ratio + (1.0 - args.min_lr_ratio) * cosine)


def build_model(torch, seed):
    from transformers import Phi3Config, Phi3ForCausalLM

    torch.manual_seed(seed)
    config = Phi3Config(**MODEL_SHAPE, attn_implementation="sdpa")
    return Phi3ForCausalLM(config)


def train(torch, model, train_ids, heldout_ids, args, log):
    """Random crops of seq_len+... tokens from the training stream; returns the loss curve rows."""
    data = torch.tensor(train_ids, dtype=torch.long)
    gen = torch.Generator().manual_seed(args.seed)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.95))
    curve, window_losses, t0 = [], [], time.time()
    offsets = torch.arange(args.seq_len)
    for step in range(args.stop_at or args.steps):
        model.train()
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args)
        starts = torch.randint(0, len(data) - args.seq_len, (args.batch,), generator=gen)
        batch = data[starts[:, None] + offsets]
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        window_losses.append(loss.item())
        last = step + 1 == (args.stop_at or args.steps)
        if (step + 1) % args.log_every == 0 or last:
            row = {"step": step + 1, "train_loss": sum(window_losses) / len(window_losses),
                   "lr": lr_at(step, args), "elapsed_s": time.time() - t0}
            window_losses = []
            if (step + 1) % args.eval_every == 0 or last:
                row["heldout_ppl"] = perplexity(model, heldout_ids, args.seq_len)[0]
            curve.append(row)
            log(json.dumps(row))
    return curve, time.time() - t0


def round_to_bf16(torch, model):
    """A copy of the model whose weights are the bf16-rounded trained weights, held in f32."""
    import copy

    rounded = copy.deepcopy(model)
    with torch.no_grad():
        for p in rounded.parameters():
            p.copy_(p.to(torch.bfloat16).to(torch.float32))
    return rounded


def generate_samples(torch, model, tokenizer, seed):
    prompts = ["In the beginning", "And Jesus said unto them,", "The LORD is my shepherd;"]
    samples = []
    model.eval()
    for prompt in prompts:
        ids = torch.tensor([encode(tokenizer, prompt)])
        mask = torch.ones_like(ids)
        greedy = model.generate(ids, attention_mask=mask, max_new_tokens=60, do_sample=False)
        torch.manual_seed(seed)
        sampled = model.generate(ids, attention_mask=mask, max_new_tokens=60, do_sample=True, temperature=0.8,
                                 top_k=40, top_p=1.0)
        samples.append({"prompt": prompt,
                        "greedy": tokenizer.decode(greedy[0].tolist(), skip_special_tokens=False),
                        "sampled": tokenizer.decode(sampled[0].tolist(), skip_special_tokens=False)})
    return samples


def save_model(torch, model, out, tokenizer_dir):
    from transformers import GenerationConfig

    out.mkdir(parents=True, exist_ok=True)
    bf16 = round_to_bf16(torch, model).to(torch.bfloat16)
    bf16.config.use_cache = True
    bf16.save_pretrained(out, safe_serialization=True)
    # transformers 4.57 writes "dtype"; released Phi-3 config.json files (and older loaders) use "torch_dtype".
    config_path = out / "config.json"
    config = json.loads(config_path.read_text())
    config["torch_dtype"] = config.get("dtype", "bfloat16")
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    GenerationConfig(bos_token_id=1, eos_token_id=32000, pad_token_id=32000).save_pretrained(out)
    for name in TOKENIZER_FILES:
        shutil.copyfile(tokenizer_dir / name, out / name)


def portable_args(args):
    """The arguments as JSON, with paths relative to the repo root (tracked files hold no absolute paths)."""
    def show(value):
        if isinstance(value, Path):
            return os.path.relpath(value.resolve(), REPO_ROOT)
        return value
    return json.dumps({k: show(v) for k, v in vars(args).items()})


def write_report(path, args, info):
    """TRAINING.md: everything needed to reproduce and check the run."""
    cmd = "python tools/train_demo.py" + ("" if info["default_args"] else " " + " ".join(info["argv"]))
    steps_done = args.stop_at or args.steps
    stop_note = (f"{steps_done} steps, stopped early (`--stop-at`) in a {args.steps}-step schedule, lr "
                 f"{info['curve'][-1]['lr']:.2e} at the stop" if args.stop_at else f"{steps_done} steps")
    lines = [
        "# Demo model training record",
        "",
        "Written by `tools/train_demo.py` at the end of the run it describes; do not edit by hand.",
        "",
        "## Run",
        f"- Command (from the repo root, with tools/requirements-demo.txt installed): `{cmd}`",
        f"- Full argument set: `{portable_args(args)}`",
        f"- Seed: {args.seed} (model init, batch sampling and the sampled generations below)",
        f"- Threads: {args.threads} (`torch.set_num_threads`), run under `nice -n 10` on a shared 2-core machine",
        f"- Versions: torch {info['torch']}, transformers {info['transformers']}, tokenizers {info['tokenizers']}",
        f"- Training wall time: {info['train_seconds'] / 60:.1f} min ({stop_note}); whole script "
        f"{info['total_seconds'] / 60:.1f} min",
    ]
    if info.get("note"):
        lines += ["", info["note"]]
    lines += [
        "",
        "## Data",
        f"- King James Bible from Debian's `bible-kjv` (`bible -f '{VERSE_RANGE}'`, {EXPECTED_VERSES} verses), "
        "verse references stripped, one verse per line, each line ending in `\\n`.",
        f"- Held out (never trained on): {', '.join(HELDOUT_BOOKS)} (2 John, 3 John, Jude, Revelation); "
        f"{info['heldout_verses']} verses, {info['heldout_bytes']} bytes, {info['heldout_tokens']} tokens "
        "(tools/demo-model/heldout.txt).",
        f"- Training text: {info['train_verses']} verses, {info['train_bytes']} bytes, {info['train_tokens']} "
        "tokens. Each text is tokenized as one string with the Phi-3 tokenizer (tokenizer.json, no BOS, no "
        "special tokens).",
        f"- Batches: {args.batch} random crops of {args.seq_len} tokens per step from the training token "
        f"stream (~{steps_done * args.batch * args.seq_len / info['train_tokens']:.2f} epochs).",
        "",
        "## Model",
        "Phi3ForCausalLM: " + ", ".join(f"{k}={v}" for k, v in MODEL_SHAPE.items()) +
        f". {info['params']} parameters (embedding {info['embed_params']}, tied with lm_head).",
        "",
        "## Optimizer",
        f"AdamW (betas 0.9/0.95, weight decay {args.weight_decay} on matrices only), peak lr {args.lr}, "
        f"linear warmup {args.warmup} steps, cosine decay to {args.min_lr_ratio}x peak, grad-norm clip 1.0, "
        "f32 weights and compute.",
        "",
        "## Held-out perplexity (the number phi3c must reproduce)",
        f"Convention: the held-out file tokenized as one string (no BOS, no special tokens); windows of "
        f"C = {args.seq_len} tokens, non-overlapping, starting at token 0, the trailing partial window dropped; "
        "no BOS inside windows; the first token of each window is not predicted; perplexity = exp(sum of NLL "
        "over all predicted tokens in all windows / their count). Logits and NLL in f32 (sum in f64), "
        "transformers eager attention.",
        f"- Windows: {info['ppl_windows']}, predicted tokens: {info['ppl_count']}",
        f"- f32 trained weights: **{info['ppl_f32']:.6g}**",
        f"- bf16-rounded weights (as stored in model.safetensors), f32 compute: **{info['ppl_bf16']:.6g}** "
        "(phi3c's f32 path on this folder must match this within 0.1%)",
        "",
        "## Loss curve",
        f"Mean training loss (nats/token) over the previous {args.log_every} steps; held-out perplexity "
        f"(f32 weights, convention above) every {args.eval_every} steps.",
        "",
        "| step | train loss | lr | held-out ppl | elapsed s |",
        "|---:|---:|---:|---:|---:|",
    ]
    for row in info["curve"]:
        ppl = f"{row['heldout_ppl']:.3f}" if "heldout_ppl" in row else ""
        lines.append(f"| {row['step']} | {row['train_loss']:.4f} | {row['lr']:.2e} | {ppl} | "
                     f"{row['elapsed_s']:.0f} |")
    lines += [
        "",
        f"Final train loss (last {args.log_every} steps): {info['curve'][-1]['train_loss']:.4f}",
        "",
        "## Samples (bf16-rounded weights, f32 compute, transformers generate)",
        f"Greedy, and sampled with temperature 0.8, top-k 40, torch seed {args.seed}; 60 new tokens each.",
        "",
    ]
    for s in info["samples"]:
        lines += [f"Prompt `{s['prompt']}`", "", "Greedy:", "```", s["greedy"], "```", "Sampled:", "```",
                  s["sampled"], "```", ""]
    path.write_text("\n".join(lines))


def eval_folder(folder, window, threads):
    """Recompute the reference perplexity from the files as stored (bf16 weights loaded into f32)."""
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(threads)
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager")
    ids = encode(tokenizer, (folder / "heldout.txt").read_text())
    ppl, n_windows, count = perplexity(model, ids, window)
    print(f"{folder}: {len(ids)} tokens, {n_windows} windows of {window}, {count} predicted, perplexity {ppl:.6g}")


def main():
    args = parse_args()
    if args.eval_folder:
        eval_folder(args.eval_folder, args.seq_len, args.threads)
        return
    if args.smoke:
        args.steps, args.warmup, args.log_every, args.eval_every = 20, 5, 5, 10
    verses = read_kjv_verses()
    train_text, heldout_text = split_corpus(verses)
    if args.write_heldout:
        args.write_heldout.write_text(heldout_text)
        return

    import tokenizers
    import torch
    import transformers
    from tokenizers import Tokenizer

    t_start = time.time()
    torch.set_num_threads(args.threads)
    tokenizer = Tokenizer.from_file(str(args.tokenizer_dir / "tokenizer.json"))
    train_ids, heldout_ids = encode(tokenizer, train_text), encode(tokenizer, heldout_text)

    def log(msg):
        print(msg, flush=True)

    log(f"train tokens {len(train_ids)}, held-out tokens {len(heldout_ids)}")
    model = build_model(torch, args.seed)
    curve, train_seconds = train(torch, model, train_ids, heldout_ids, args, log)

    model.config._attn_implementation = "eager"
    ppl_f32, n_windows, count = perplexity(model, heldout_ids, args.seq_len)
    rounded = round_to_bf16(torch, model)
    ppl_bf16 = perplexity(rounded, heldout_ids, args.seq_len)[0]
    log(f"held-out perplexity f32 {ppl_f32:.6g}, bf16-rounded {ppl_bf16:.6g}")
    samples = generate_samples(torch, rounded, tokenizer, args.seed)
    for s in samples:
        log(json.dumps(s))

    save_model(torch, model, args.out, args.tokenizer_dir)
    (args.out / "heldout.txt").write_text(heldout_text)
    info = dict(
        argv=sys.argv[1:], default_args=not sys.argv[1:], torch=torch.__version__,
        transformers=transformers.__version__, tokenizers=tokenizers.__version__,
        train_seconds=train_seconds, total_seconds=time.time() - t_start,
        heldout_verses=sum(b in HELDOUT_BOOKS for b, _ in verses), heldout_bytes=len(heldout_text.encode()),
        heldout_tokens=len(heldout_ids),
        train_verses=sum(b not in HELDOUT_BOOKS for b, _ in verses), train_bytes=len(train_text.encode()),
        train_tokens=len(train_ids),
        params=sum(p.numel() for p in model.parameters()),
        embed_params=model.model.embed_tokens.weight.numel(),
        ppl_windows=n_windows, ppl_count=count, ppl_f32=ppl_f32, ppl_bf16=ppl_bf16,
        curve=curve, samples=samples)
    write_report(args.out / "TRAINING.md", args, info)
    (args.out / "training-curve.json").write_text(json.dumps(curve, indent=1) + "\n")
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
