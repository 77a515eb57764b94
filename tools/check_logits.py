#!/usr/bin/env python3
"""Compares two raw little-endian float32 logits files (rows of vocab_size): prints max |A-B|, max |A|, their ratio
and the worst position. For humans; the C tests do the same comparison themselves.

Usage: python tools/check_logits.py A B [--vocab N]   (vocab defaults to the row width found in a nearby meta.json,
else the whole file is treated as one row)
"""

import argparse
import json
import os
import sys

import numpy as np


def guess_vocab(path):
    """Looks for meta.json next to the file (fixture layout) and takes its config.vocab_size."""
    meta = os.path.join(os.path.dirname(os.path.abspath(path)), "meta.json")
    if os.path.exists(meta):
        with open(meta) as f:
            return json.load(f).get("config", {}).get("vocab_size")
    return None


def main():
    parser = argparse.ArgumentParser(description="max abs difference of two float32 logits files")
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--vocab", type=int, help="row width (vocab_size)")
    args = parser.parse_args()
    a = np.fromfile(args.a, dtype="<f4")
    b = np.fromfile(args.b, dtype="<f4")
    if a.size != b.size:
        print(f"size mismatch: {args.a} has {a.size} floats, {args.b} has {b.size}", file=sys.stderr)
        return 1
    vocab = args.vocab or guess_vocab(args.a) or guess_vocab(args.b) or a.size
    if a.size % vocab:
        print(f"{a.size} floats is not a whole number of rows of {vocab}", file=sys.stderr)
        return 1
    diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    max_abs = float(np.abs(a).max()) if a.size else 0.0
    worst = int(np.argmax(diff)) if diff.size else 0
    print(f"rows {a.size // vocab} x vocab {vocab}")
    print(f"max|A-B| = {diff.max():.6g} at row {worst // vocab}, column {worst % vocab}")
    print(f"max|A|   = {max_abs:.6g}")
    print(f"ratio    = {diff.max() / max_abs if max_abs else float('inf'):.3g}  (bounds: 1e-4 f32 weights, 2e-3 bf16)")
    if np.isnan(a).any() or np.isnan(b).any():
        print("NaN present", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
