#!/usr/bin/env python3
"""requant_q4km.py: what re-quantizing a Q4_K_M GGUF to INT4-g128 costs against quantizing the
original weights.

Writes a small synthetic Phi-3 GGUF in F32 (shapes that are multiples of 256 so every linear weight
can be a K-quant; Gaussian weights with a few outlier input channels), has llama.cpp's own quantizer
(llama-cpp-python, PyPI) turn it into Q4_K_M, then runs `phi3c quantize` on both and prints the NMSE
of each model's linear weights against the F32 originals (tools/quant_accuracy --compare).

usage: requant_q4km.py OUT_DIR [PHI3C_BUILD_DIR]   (needs numpy, gguf and llama-cpp-python)
"""
import os
import subprocess
import sys

import gguf
import numpy as np

from phi3_gguf import add_phi3_hparams

HIDDEN, INTER, LAYERS, HEADS, VOCAB = 512, 1024, 2, 8, 512


def synthetic_weights(rng, outliers):
    def linear(rows, cols):
        w = rng.normal(0.0, 0.02, size=(rows, cols)).astype(np.float32)
        if outliers:  # 1 % of the input channels 8x larger, as real LLM weights show
            w[:, rng.choice(cols, cols // 100, replace=False)] *= 8.0
        return w

    t = {"token_embd.weight": linear(VOCAB, HIDDEN), "output.weight": linear(VOCAB, HIDDEN),
         "output_norm.weight": (1 + 0.1 * rng.normal(size=HIDDEN)).astype(np.float32)}
    for i in range(LAYERS):
        p = f"blk.{i}."
        t[p + "attn_norm.weight"] = (1 + 0.1 * rng.normal(size=HIDDEN)).astype(np.float32)
        t[p + "ffn_norm.weight"] = (1 + 0.1 * rng.normal(size=HIDDEN)).astype(np.float32)
        t[p + "attn_qkv.weight"] = linear(3 * HIDDEN, HIDDEN)
        t[p + "attn_output.weight"] = linear(HIDDEN, HIDDEN)
        t[p + "ffn_up.weight"] = linear(2 * INTER, HIDDEN)
        t[p + "ffn_down.weight"] = linear(HIDDEN, INTER)
    return t


def write_f32_gguf(path, tensors):
    w = gguf.GGUFWriter(path, "phi3")
    add_phi3_hparams(w, "phi3c requant experiment", 4096, HIDDEN, INTER, LAYERS, HEADS,
                     gguf.LlamaFileType.ALL_F32)
    w.add_sliding_window(0)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    # llama.cpp's quantizer loads the vocabulary too: a minimal SPM-style one.
    w.add_tokenizer_model("llama")
    w.add_token_list([f"<t{i}>".encode() for i in range(VOCAB)])
    w.add_token_scores([0.0] * VOCAB)
    w.add_token_types([gguf.TokenType.NORMAL] * VOCAB)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    for name in sorted(tensors):
        w.add_tensor(name, tensors[name])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def q4_k_m(src, dst):
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M
    params.nthread = 2
    rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), params)
    if rc != 0:
        raise SystemExit(f"llama_model_quantize failed ({rc})")


def logits(build, model, out):
    ids = " ".join(str(i) for i in np.random.default_rng(3).integers(3, VOCAB, 64))
    path = os.path.join(out, "logits.f32")
    subprocess.run([os.path.join(build, "phi3c"), "logits", "-m", model, "--ids", ids, "-o", path,
                    "--act", "w4a32"], check=True, capture_output=True)
    return np.fromfile(path, dtype="<f4").reshape(-1, VOCAB).astype(np.float64)


def rel_err2(ref, z):
    return float(((z - ref) ** 2).sum() / (ref ** 2).sum())


def kl(ref, z):
    def log_softmax(x):
        x = x - x.max(axis=1, keepdims=True)
        return x - np.log(np.exp(x).sum(axis=1, keepdims=True))
    lp, lq = log_softmax(ref), log_softmax(z)
    return float((np.exp(lp) * (lp - lq)).sum(axis=1).mean())


def main():
    out = sys.argv[1]
    build = sys.argv[2] if len(sys.argv) > 2 else "build"
    os.makedirs(out, exist_ok=True)
    for kind in ("gaussian", "outliers"):
        f32 = os.path.join(out, f"{kind}-f32.gguf")
        q4km = os.path.join(out, f"{kind}-q4_k_m.gguf")
        write_f32_gguf(f32, synthetic_weights(np.random.default_rng(7), kind == "outliers"))
        q4_k_m(f32, q4km)
        natives = []
        for src, tag in ((f32, "from-f32"), (q4km, "from-q4_k_m")):
            for method in ("rtn", "search"):
                dst = os.path.join(out, f"{kind}-int4-{method}-{tag}.phi3c")
                subprocess.run([os.path.join(build, "phi3c"), "quantize", "-m", src, "-o", dst,
                                "--method", method, "--force"], check=True)
                natives.append(dst)
        subprocess.run([os.path.join(build, "tools", "quant_accuracy"), "--compare", f32, q4km,
                        *natives], check=True)
        print(f"\n| {kind}: logits vs the F32 model (phi3c, 64 random tokens) | rel err^2 | KL |")
        print("|---|---|---|")
        ref = logits(build, f32, out)
        for m in (q4km, *natives):
            z = logits(build, m, out)
            print(f"| {os.path.basename(m)} | {rel_err2(ref, z):.4f} | {kl(ref, z):.4f} |")


if __name__ == "__main__":
    main()
