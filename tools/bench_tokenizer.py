#!/usr/bin/env python3
"""bench_tokenizer.py: encode throughput of phi3c's tokenizer against HF `tokenizers` on the same
multi-MB text, in one run. Writes a deterministic text (prose built from the tokenizer's own word
pieces, code with tabs, CRLF, numbers, and the multilingual/emoji oracle strings), runs
build/tools/bench_tokenizer on it, then times HF's Tokenizer.encode the same way (each "\\n\\n"
document on its own, then the whole text in one call; best of N), checks both produced the same
ids (checksum), and prints MB/s, tokens/s and the phi3c/HF ratio.

Then the same for Phi-4-mini's byte-level BPE (the tokenizer.json `make phi4-tokenizer` builds from
bpe-openai's o200k_base ranks) on a multilingual text without special tokens, against HF tokenizers,
tiktoken (an Encoding on the same ranks) and bpe-openai, all single-threaded (one encode call per
document or for the whole text; RAYON_NUM_THREADS=1 for HF).

Usage: make bench-tokenizer   (or: python tools/bench_tokenizer.py [--shared ../shared] [--mb 4] [--bin build/tools/bench_tokenizer] [--phi4 build/phi4-tokenizer])
"""
import argparse
import os
import random
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("RAYON_NUM_THREADS", "1")  # HF tokenizers single-threaded, as phi3c
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import tokenizers

HERE = os.path.dirname(os.path.abspath(__file__))


def run_ours(args, tok_dir, text):
    """Times phi3c's encoder (tools/bench_tokenizer.c) on text; returns its rows by mode."""
    with tempfile.NamedTemporaryFile("wb", suffix=".txt", delete=False) as f:
        f.write(text.encode("utf-8"))
        path = f.name
    try:
        out = subprocess.run([args.bin, tok_dir, path, str(args.repeats)], check=True,
                             capture_output=True, text=True).stdout
    finally:
        os.unlink(path)
    ours = {}
    for line in out.splitlines():
        kv = dict(item.split("=", 1) for item in line.split())
        ours[kv["mode"]] = kv
    return ours


def oracle_texts():
    path = os.path.join(HERE, "..", "tests", "fixtures", "tokenizer", "tokenizer-phi-3-mini.cases")
    out = []
    with open(path, encoding="ascii") as f:
        for line in f:
            if line.startswith("E;"):
                out.append(bytes.fromhex(line.split(";")[1]).decode("utf-8"))
    return [t for t in out if t]


def make_text(tok_json, megabytes, seed=7):
    rng = random.Random(seed)
    vocab = tokenizers.Tokenizer.from_file(tok_json).get_vocab(with_added_tokens=False)
    words = sorted(p[1:] for p in vocab if p.startswith("\u2581") and p[1:].isalpha() and len(p) > 2)
    extra = oracle_texts()
    code = ["def f(x):\n\treturn x * 2\n", "for (int i = 0; i < n; i++) {\n    s += a[i];\n}\n",
            "if x:\r\n    y = 1\r\n", "{\"key\": [1, 2.5, -3e10, null, true]}"]
    docs, size = [], 0
    while size < megabytes * 1e6:
        parts = []
        for _ in range(rng.randint(3, 12)):
            sentence = " ".join(rng.choice(words) for _ in range(rng.randint(4, 20)))
            parts.append(sentence[0].upper() + sentence[1:] + rng.choice([".", ".", "?", "!", ","]))
            r = rng.random()
            if r < 0.1:
                parts.append(rng.choice(extra))
            elif r < 0.15:
                parts.append(rng.choice(code))
            elif r < 0.2:
                parts.append(str(rng.randint(0, 10 ** rng.randint(1, 9))))
        doc = " ".join(parts)
        docs.append(doc)
        size += len(doc.encode("utf-8")) + 2
    return "\n\n".join(docs)


def checksum(ids_lists):
    c = 0
    for ids in ids_lists:
        for i, v in enumerate(ids):
            c = (c + v * (i + 1)) & 0xFFFFFFFF
    return c


def time_hf(tok, text, repeats):
    docs = text.split("\n\n")
    best = {}
    for _ in range(repeats):
        t0 = time.perf_counter()
        ids = [tok.encode(d, add_special_tokens=False).ids for d in docs]
        t_docs = time.perf_counter() - t0
        t0 = time.perf_counter()
        whole = tok.encode(text, add_special_tokens=False).ids
        t_whole = time.perf_counter() - t0
        for mode, t, lists in (("docs", t_docs, ids), ("whole", t_whole, [whole])):
            if mode not in best or t < best[mode]["seconds"]:
                nbytes = sum(len(d.encode("utf-8")) for d in docs) if mode == "docs" else len(text.encode("utf-8"))
                best[mode] = {"seconds": t, "bytes": nbytes, "tokens": sum(len(x) for x in lists),
                              "checksum": checksum(lists)}
    return best


def phi4_text(megabytes, seed=11):
    """Multilingual documents without special tokens: prose, the oracle's texts, code, numbers."""
    rng = random.Random(seed)
    path = os.path.join(HERE, "..", "tests", "fixtures", "tokenizer", "phi4-mini.cases")
    texts = []
    with open(path, encoding="ascii") as f:
        for line in f:
            if line.startswith("T;"):
                t = bytes.fromhex(line.split(";")[1]).decode("utf-8")
                if t and len(t) < 400:
                    texts.append(t)
    words = ("the of and to in is that for it as with was on be by this are or from at an but not "
             "have which one can all their there been has more were if will when would who so no "
             "tokenizer model language phi mini byte level merge rank split unicode").split()
    docs, size = [], 0
    while size < megabytes * 1e6:
        parts = []
        for _ in range(rng.randint(3, 12)):
            sentence = " ".join(rng.choice(words) for _ in range(rng.randint(4, 20)))
            parts.append(sentence[0].upper() + sentence[1:] + rng.choice([".", "?", "!", ","]))
            if rng.random() < 0.5:
                parts.append(rng.choice(texts))
        doc = " ".join(parts)
        docs.append(doc)
        size += len(doc.encode("utf-8")) + 2
    return "\n\n".join(docs)


def time_fn(encode, text, repeats):
    """Best of `repeats` for encoding each document and for the whole text in one call."""
    docs = text.split("\n\n")
    best = {}
    for _ in range(repeats):
        for mode, inputs in (("docs", docs), ("whole", [text])):
            t0 = time.perf_counter()
            try:
                lists = [encode(d) for d in inputs]
            except ValueError:  # bpe-openai refuses a multi-MB single input
                best[mode] = None
                continue
            t = time.perf_counter() - t0
            if mode not in best or t < best[mode]["seconds"]:
                best[mode] = {"seconds": t, "bytes": sum(len(d.encode("utf-8")) for d in inputs),
                              "tokens": sum(len(x) for x in lists), "checksum": checksum(lists)}
    return best


def bench_phi4(args):
    tok_dir = args.phi4
    if not os.path.exists(os.path.join(tok_dir, "tokenizer.json")):
        print("phi4: %s/tokenizer.json not built (make phi4-tokenizer); skipped" % tok_dir)
        return True
    import bpe_openai
    import tiktoken
    text = phi4_text(args.mb)
    ours = run_ours(args, tok_dir, text)
    hf = tokenizers.Tokenizer.from_file(os.path.join(tok_dir, "tokenizer.json"))
    reg = bpe_openai.registry.o200k_base()
    tk = tiktoken.Encoding(name="o200k_local", pat_str=reg["pat_str"],
                           mergeable_ranks=reg["mergeable_ranks"], special_tokens=reg["special_tokens"])
    bo = bpe_openai.get_encoding("o200k_base")
    others = [("HF tokenizers %s" % tokenizers.__version__,
               time_fn(lambda d: hf.encode(d, add_special_tokens=False).ids, text, args.repeats)),
              ("tiktoken %s" % tiktoken.__version__, time_fn(tk.encode_ordinary, text, args.repeats)),
              ("bpe-openai %s" % bpe_openai.__version__, time_fn(bo.encode_ordinary, text, args.repeats))]
    print("Phi-4-mini byte-level BPE (o200k) on %.1f MB of multilingual text, best of %d, single thread" %
          (len(text.encode("utf-8")) / 1e6, args.repeats))
    ok = True
    for mode in ("docs", "whole"):
        o = ours[mode]
        o_mbs = float(o["mb_per_s"])
        print("  %-5s phi3c %7.2f MB/s" % (mode, o_mbs))
        for name, res in others:
            r = res[mode]
            if r is None:
                print("        %-22s refuses an input this long" % name)
                continue
            same = int(o["checksum"]) == r["checksum"] and int(o["tokens"]) == r["tokens"]
            ok &= same
            mbs = r["bytes"] / r["seconds"] / 1e6
            print("        %-22s %7.2f MB/s | phi3c/it %.2fx | ids %s" %
                  (name, mbs, o_mbs / mbs, "identical" if same else "DIFFER"))
    return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.path.join(HERE, "..", "..", "shared"))
    ap.add_argument("--mb", type=float, default=4.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--bin", default=os.path.join("build", "tools", "bench_tokenizer"))
    ap.add_argument("--phi4", default=os.path.join("build", "phi4-tokenizer"))
    args = ap.parse_args()
    folder = os.path.join(args.shared, "data", "phi3", "tokenizer-phi-3-mini")
    tok_json = os.path.join(folder, "tokenizer.json")
    text = make_text(tok_json, args.mb)
    ours = run_ours(args, folder, text)
    hf = time_hf(tokenizers.Tokenizer.from_file(tok_json), text, args.repeats)
    print("tokenizer throughput on %.1f MB (%s), best of %d, tokenizers %s" %
          (len(text.encode("utf-8")) / 1e6, "tokenizer-phi-3-mini", args.repeats, tokenizers.__version__))
    ok = True
    for mode in ("docs", "whole"):
        o, h = ours[mode], hf[mode]
        same = int(o["checksum"]) == h["checksum"] and int(o["tokens"]) == h["tokens"]
        ok &= same
        o_mbs, h_mbs = float(o["mb_per_s"]), h["bytes"] / h["seconds"] / 1e6
        o_tps, h_tps = float(o["tokens_per_s"]), h["tokens"] / h["seconds"]
        print("  %-5s phi3c %7.2f MB/s %10.0f tok/s | HF %7.2f MB/s %10.0f tok/s | ratio %.2fx | ids %s" %
              (mode, o_mbs, o_tps, h_mbs, h_tps, o_tps / h_tps, "identical" if same else "DIFFER"))
    ok &= bench_phi4(args)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
