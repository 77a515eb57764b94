#!/usr/bin/env python3
"""bench_llamacpp.py: phi3c against llama.cpp on the same machine, in one run (`make bench`).

Builds (once, cached) a synthetic full-shape Phi-3-mini GGUF in Q4_0 with random weights (3072
hidden, 32 layers, 32 heads, 8192 intermediate, 32064 vocabulary; Q4_0 blocks written directly as
random nibbles with sane f16 scales), then for each repetition and thread count times llama.cpp
(llama-cpp-python's low-level API, llama-bench's definitions: pp = one batch of N prompt tokens on
an empty cache, tg = N single-token steps from an empty cache, warm-up excluded) and `phi3c bench
--e2e` (a synthetic INT4-g128 Phi-3-mini of the same shapes, which also measures the memory
bandwidth in its own process) alternately. Prints medians, ratios phi3c / llama.cpp and the share
of the measured bandwidth each decode reaches; writes the table as Markdown too.

usage: bench_llamacpp.py [--build build] [--threads 1,2] [--reps 3] [--pp 512] [--tg 128]
                         [--gguf PATH] [--out build/bench/side_by_side.md]
needs: numpy, gguf, llama-cpp-python (tools/requirements-bench.txt)
"""
import argparse
import resource
import ctypes
import os
import statistics
import subprocess
import sys
import time

import numpy as np

from phi3_gguf import add_phi3_hparams

HIDDEN, INTER, LAYERS, HEADS, VOCAB, CTX, EOT = 3072, 8192, 32, 32, 32064, 4096, 32000
Q4_0_BLOCK, Q4_0_BYTES = 32, 18


def q4_0_rows(rng, rows, cols):
    """Random Q4_0 bytes for a [rows, cols] matrix: f16 scale in [0.002, 0.006] + 16 nibble bytes."""
    nb = cols // Q4_0_BLOCK
    blocks = rng.integers(0, 256, size=(rows, nb, Q4_0_BYTES), dtype=np.uint8)
    scales = rng.uniform(0.002, 0.006, size=(rows, nb)).astype(np.float16)
    blocks[:, :, 0:2] = scales.view(np.uint8).reshape(rows, nb, 2)
    return blocks.reshape(rows, nb * Q4_0_BYTES)


def write_gguf(path):
    import gguf

    rng = np.random.default_rng(2024)
    tmp = path + ".tmp"
    w = gguf.GGUFWriter(tmp, "phi3")
    add_phi3_hparams(w, "phi3c synthetic phi3-mini q4_0", CTX, HIDDEN, INTER, LAYERS, HEADS,
                     gguf.LlamaFileType.MOSTLY_Q4_0)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    # llama.cpp loads the vocabulary too: a SentencePiece-style one with the 256 byte tokens it
    # looks up (<0x0A> for the newline), unk/bos/eos, and placeholders up to Phi-3's 32064.
    tokens, types = [b"<unk>", b"<s>", b"</s>"], [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL,
                                                 gguf.TokenType.CONTROL]
    tokens += [f"<0x{b:02X}>".encode() for b in range(256)]
    types += [gguf.TokenType.BYTE] * 256
    tokens += [f"\u2581t{i}".encode() for i in range(len(tokens), VOCAB)]
    types += [gguf.TokenType.NORMAL] * (VOCAB - len(types))
    # Phi-3's end of text at its real id: llama.cpp looks it up by name for phi3 models.
    tokens[EOT], types[EOT] = b"<|endoftext|>", gguf.TokenType.CONTROL
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * VOCAB)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(EOT)
    w.add_unk_token_id(0)
    q4 = gguf.GGMLQuantizationType.Q4_0
    ones = np.ones(HIDDEN, dtype=np.float32)
    # Every layer shares one set of random matrices (speed does not depend on the values, and the
    # writer then holds ~300 MB instead of 2 GB); the file still stores each layer's own copy.
    shared = {"attn_qkv": q4_0_rows(rng, 3 * HIDDEN, HIDDEN),
              "attn_output": q4_0_rows(rng, HIDDEN, HIDDEN),
              "ffn_up": q4_0_rows(rng, 2 * INTER, HIDDEN),
              "ffn_down": q4_0_rows(rng, HIDDEN, INTER)}
    w.add_tensor("token_embd.weight", q4_0_rows(rng, VOCAB, HIDDEN), raw_dtype=q4)
    w.add_tensor("output_norm.weight", ones)
    w.add_tensor("output.weight", q4_0_rows(rng, VOCAB, HIDDEN), raw_dtype=q4)
    for i in range(LAYERS):
        w.add_tensor(f"blk.{i}.attn_norm.weight", ones)
        w.add_tensor(f"blk.{i}.ffn_norm.weight", ones)
        for name, data in shared.items():
            w.add_tensor(f"blk.{i}.{name}.weight", data, raw_dtype=q4)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.replace(tmp, path)


def q4_0_stream_bytes():
    """Bytes a Q4_0 decode step reads: every linear weight (the embedding is one row)."""
    per_row = lambda cols: cols // Q4_0_BLOCK * Q4_0_BYTES
    layer = (3 * HIDDEN + HIDDEN + 2 * INTER) * per_row(HIDDEN) + HIDDEN * per_row(INTER)
    return LAYERS * layer + VOCAB * per_row(HIDDEN)


class LlamaCpp:
    """llama.cpp through llama-cpp-python's C bindings, timed like llama-bench."""

    def __init__(self, path, max_batch, n_ctx, quiet=True):
        import llama_cpp as L

        self.L = L
        if quiet:  # llama.cpp logs every graph build at debug level: that costs time in tg
            self._log = L.llama_log_callback(lambda level, text, user: None)
            L.llama_log_set(self._log, ctypes.c_void_p(0))
        L.llama_backend_init()
        self.system_info = L.llama_print_system_info().decode(errors="replace").strip()
        mp = L.llama_model_default_params()
        load = getattr(L, "llama_model_load_from_file", None) or L.llama_load_model_from_file
        self.model = load(path.encode(), mp)
        if not self.model:
            raise SystemExit(f"llama.cpp could not load {path}")
        cp = L.llama_context_default_params()
        cp.n_ctx, cp.n_batch, cp.n_ubatch = n_ctx, max_batch, max_batch
        cp.n_threads = cp.n_threads_batch = 1
        init = getattr(L, "llama_init_from_model", None) or L.llama_new_context_with_model
        self.ctx = init(self.model, cp)
        if not self.ctx:
            raise SystemExit("llama.cpp could not create a context")
        self.batch = L.llama_batch_init(max_batch, 0, 1)
        self.version = getattr(L, "__version__", "?")

    def clear(self):
        L = self.L
        if hasattr(L, "llama_get_memory") and hasattr(L, "llama_memory_clear"):
            L.llama_memory_clear(L.llama_get_memory(self.ctx), True)
        else:
            L.llama_kv_self_clear(self.ctx)

    def decode(self, tokens, pos0):
        b = self.batch
        b.n_tokens = len(tokens)
        for i, tok in enumerate(tokens):
            b.token[i] = tok
            b.pos[i] = pos0 + i
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = 0
            b.logits[i] = 1 if i == len(tokens) - 1 else 0
        if self.L.llama_decode(self.ctx, b) != 0:
            raise SystemExit("llama_decode failed")
        self.L.llama_synchronize(self.ctx)

    def set_threads(self, n):
        self.L.llama_set_n_threads(self.ctx, n, n)

    def prefill(self, n, rng):
        self.clear()
        tokens = [int(t) for t in rng.integers(3, VOCAB, n)]
        t0 = time.perf_counter()
        self.decode(tokens, 0)
        return n / (time.perf_counter() - t0)

    def generate(self, n, rng):
        self.clear()
        t0 = time.perf_counter()
        for i in range(n):
            self.decode([int(rng.integers(3, VOCAB))], i)
        return n / (time.perf_counter() - t0)


def run_phi3c(binary, threads, pp, tg):
    cmd = [binary, "bench", "--e2e", "--synthetic", "phi3-mini", "-t", str(threads), "--reps", "1",
           "--pp", str(pp), "--tg", str(tg)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    line = next(l for l in out.splitlines() if l.startswith("bench-result:"))
    return {k: float(v) for k, v in (f.split("=") for f in line.split()[1:])}


def loadavg():
    return os.getloadavg()[0]


def report(a, threads, res, llama, llama_rss_mib, la0, start, final):
    """The table of the repetitions done so far (rewritten after each one)."""
    la1 = loadavg()
    n_done = max(len(res[("phi3c", t)]["pp"]) for t in threads)
    med = statistics.median
    llama_gb = q4_0_stream_bytes() / 1e9
    lines = [f"Side by side, {start}, load average {la0:.1f} -> {la1:.1f}, medians of {n_done} "
             f"alternating runs, pp{a.pp} / tg{a.tg} (llama-bench definitions)",
             f"llama.cpp: llama-cpp-python {llama.version}, synthetic Phi-3-mini Q4_0 "
             f"({llama_gb:.2f} GB read per token); phi3c: synthetic Phi-3-mini INT4-g128 w4a8",
             f"llama.cpp CPU features: {llama.system_info}; OMP_WAIT_POLICY="
             f"{a.policy or 'default'}",
             "",
             "| threads | engine | pp tok/s | tg tok/s | decode GB/s | % of measured BW | peak RSS MiB |",
             "|---|---|---|---|---|---|---|"]
    for t in threads:
        r, q = res[("llama", t)], res[("phi3c", t)]
        if not q["pp"]:
            continue
        bw = med(q["bw"])
        l_gbs, p_gbs = med(r["tg"]) * llama_gb, med(q["tg"]) * q["decode_gbs_per_tps"]
        lines.append(f"| {t} | llama.cpp Q4_0 | {med(r['pp']):.2f} | {med(r['tg']):.2f} | "
                     f"{l_gbs:.1f} | {100 * l_gbs / bw:.0f}% | {llama_rss_mib:.0f} (after warm-up) |")
        lines.append(f"| {t} | phi3c INT4-g128 | {med(q['pp']):.2f} | {med(q['tg']):.2f} | "
                     f"{p_gbs:.1f} | {100 * p_gbs / bw:.0f}% | {med(q['rss']):.0f} |")
        lines.append(f"| {t} | ratio phi3c / llama.cpp | {med(q['pp']) / med(r['pp']):.2f}x | "
                     f"{med(q['tg']) / med(r['tg']):.2f}x | | (bandwidth {bw:.1f} GB/s) | |")
    text = "\n".join(lines)
    if final:
        print(text)
    out = a.out or os.path.join(a.build, "bench", "side_by_side.md")
    with open(out, "w") as f:
        f.write(text + "\n")
    if final:
        print(f"\nwritten to {out}", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--pp", type=int, default=512)
    ap.add_argument("--tg", type=int, default=128)
    ap.add_argument("--gguf", default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--llama-lib", default=None,
                    help="folder of llama.cpp shared libraries to use instead of the package's "
                         "own (e.g. a ggml-cpu built with -DGGML_NATIVE=ON)")
    ap.add_argument("--verbose", action="store_true", help="keep llama.cpp's log")
    ap.add_argument("--omp-wait", choices=("auto", "active", "passive"), default="auto",
                    help="llama.cpp's OpenMP wait policy; auto = passive when the load average "
                         "exceeds the cores (spinning threads then lose their time slices), else "
                         "OpenMP's default")
    a = ap.parse_args()
    policy = os.environ.get("OMP_WAIT_POLICY")
    if policy is None and a.omp_wait != "auto":
        policy = a.omp_wait.upper()
    elif policy is None and loadavg() > (os.cpu_count() or 1):
        policy = "PASSIVE"
    a.policy = policy
    if policy:  # read by libgomp when llama.cpp is loaded, so before the import below
        os.environ["OMP_WAIT_POLICY"] = policy
    if a.llama_lib:
        os.environ["LLAMA_CPP_LIB_PATH"] = os.path.abspath(a.llama_lib)
    threads = [int(t) for t in a.threads.split(",")]
    gguf_path = a.gguf or os.path.join(a.build, "bench", "phi3-mini-synthetic-q4_0-v2.gguf")
    os.makedirs(os.path.dirname(gguf_path), exist_ok=True)
    if not os.path.exists(gguf_path):
        print(f"writing {gguf_path} (synthetic Phi-3-mini, Q4_0, random weights)", file=sys.stderr)
        write_gguf(gguf_path)
    binary = os.path.join(a.build, "phi3c")
    la0, start = loadavg(), time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    llama = LlamaCpp(gguf_path, max(a.pp, 1), a.pp + a.tg + 8, quiet=not a.verbose)
    print(f"llama.cpp system info: {llama.system_info}", file=sys.stderr)
    rng = np.random.default_rng(1)
    llama.set_threads(max(threads))
    llama.decode([1] * min(a.pp, 32), 0)  # warm-up: page in the weights, first-call costs
    llama.clear()
    llama_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    res = {(e, t): {"pp": [], "tg": [], "bw": [], "rss": []} for e in ("llama", "phi3c")
           for t in threads}
    for rep in range(a.reps):
        for t in threads:
            llama.set_threads(t)
            llama.generate(2, rng)  # warm-up at this thread count
            r = res[("llama", t)]
            r["pp"].append(llama.prefill(a.pp, rng))
            r["tg"].append(llama.generate(a.tg, rng))
            p = run_phi3c(binary, t, a.pp, a.tg)
            q = res[("phi3c", t)]
            q["pp"].append(p["pp_tps"])
            q["tg"].append(p["tg_tps"])
            q["bw"].append(p["bw_gbs"])
            q["rss"].append(p["rss_peak_mib"])
            q["decode_gbs_per_tps"] = p["decode_gbs"] / p["tg_tps"]
            print(f"[rep {rep + 1}/{a.reps}, {t} thread(s): llama.cpp pp {r['pp'][-1]:.2f} "
                  f"tg {r['tg'][-1]:.2f} | phi3c pp {p['pp_tps']:.2f} tg {p['tg_tps']:.2f} | "
                  f"bandwidth {p['bw_gbs']:.1f} GB/s | load {loadavg():.1f}]", file=sys.stderr,
                  flush=True)
        report(a, threads, res, llama, llama_rss_mib, la0, start, final=False)
    report(a, threads, res, llama, llama_rss_mib, la0, start, final=True)


if __name__ == "__main__":
    main()
