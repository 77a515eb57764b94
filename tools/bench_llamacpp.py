#!/usr/bin/env python3
"""bench_llamacpp.py: phi3c against llama.cpp's own `llama-bench` on the same machine, in one run.

Writes once a synthetic full-shape Phi-3-mini GGUF in Q4_0 with random weights (3072 hidden, 32
layers, 32 heads, 8192 intermediate, 32064 vocabulary), then runs, alternately and as separate
processes (no Python API in the timing path):
    llama-bench -m GGUF -p PP -n TG -t T -r R -d DEPTH -ctk K -ctv K -fa 1 -o json
    phi3c bench --e2e --synthetic phi3-mini -t T --reps R --pp PP --tg TG --depth DEPTH --kv K
for T = 1 .. nproc at depth 0 (pp512 and tg128), at the largest T for each depth and KV type
(decode only), and once more at the largest T with a busy process on one core (the loaded line).
phi3c measures the memory bandwidth in its own process; both engines' decode GB/s (weights + the
KV bytes a step reads) are given as a share of it. Prints one Markdown table, also written to
--out. The engine that goes first alternates from round to round.

usage: bench_llamacpp.py --llama-bench PATH | --gguf-only [--build build] [--threads 1,2] [--reps 2]
                         [--rounds 2] [--depths 0,1024,4096] [--kv f16,q8] [--depth-tg 64]
                         [--no-loaded] [--gguf PATH] [--out build/bench/side_by_side.md]
needs: numpy, gguf (tools/requirements-bench.txt) to write the GGUF once
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

from phi3_gguf import add_phi3_hparams

HIDDEN, INTER, LAYERS, HEADS, VOCAB, CTX, EOT = 3072, 8192, 32, 32, 32064, 8192, 32000
Q4_0_BLOCK, Q4_0_BYTES = 32, 18
# KV bytes per element as llama.cpp stores them: f16, and q8_0 (32 int8 + one f16 scale per block)
LLAMA_KV_ELEM = {"f16": 2.0, "q8": 34.0 / 32.0}
LLAMA_KV_NAME = {"f16": "f16", "q8": "q8_0"}


def q4_0_rows(rng, rows, cols):
    """Random Q4_0 bytes for a [rows, cols] matrix: f16 scale in [0.002, 0.006] + 16 nibble bytes."""
    import numpy as np

    nb = cols // Q4_0_BLOCK
    blocks = rng.integers(0, 256, size=(rows, nb, Q4_0_BYTES), dtype=np.uint8)
    scales = rng.uniform(0.002, 0.006, size=(rows, nb)).astype(np.float16)
    blocks[:, :, 0:2] = scales.view(np.uint8).reshape(rows, nb, 2)
    return blocks.reshape(rows, nb * Q4_0_BYTES)


def write_gguf(path):
    import gguf
    import numpy as np

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
    """Bytes of weights a Q4_0 decode step reads: every linear weight (the embedding is one row)."""
    per_row = lambda cols: cols // Q4_0_BLOCK * Q4_0_BYTES
    layer = (3 * HIDDEN + HIDDEN + 2 * INTER) * per_row(HIDDEN) + HIDDEN * per_row(INTER)
    return LAYERS * layer + VOCAB * per_row(HIDDEN)


def llama_kv_read_bytes(kv, depth, tg):
    """KV bytes llama.cpp reads in an average decode step: K and V of depth + tg/2 positions."""
    return 2.0 * LAYERS * HIDDEN * LLAMA_KV_ELEM[kv] * (depth + tg / 2.0)


def loadavg():
    return os.getloadavg()[0]


class Config:
    """One row of the table: threads, depth, KV type, what is timed, and whether a core is busy."""

    def __init__(self, threads, depth, kv, pp, tg, loaded=False):
        self.threads, self.depth, self.kv, self.pp, self.tg, self.loaded = (
            threads, depth, kv, pp, tg, loaded)
        self.llama = {"pp": [], "tg": []}
        self.phi3c = {"pp": [], "tg": [], "bw": [], "step_mb": None}
        self.loads = []

    def label(self):
        return "busy core" if self.loaded else ""


def run_llama_bench(a, c, env):
    cmd = [a.llama_bench, "-m", a.gguf, "-p", str(c.pp), "-n", str(c.tg), "-t", str(c.threads),
           "-r", str(a.reps), "-d", str(c.depth), "-ctk", LLAMA_KV_NAME[c.kv], "-ctv",
           LLAMA_KV_NAME[c.kv], "-fa", "1", "-o", "json"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    tests = json.loads(out)
    for t in tests:
        a.llama_info = t
        key = "pp" if t["n_prompt"] > 0 else "tg"
        c.llama[key].extend(t.get("samples_ts") or [t["avg_ts"]])


def run_phi3c(a, c):
    cmd = [os.path.join(a.build, "phi3c"), "bench", "--e2e", "--synthetic", "phi3-mini", "-t",
           str(c.threads), "--reps", str(a.reps), "--pp", str(max(c.pp, 1)), "--tg", str(c.tg),
           "--depth", str(c.depth), "--kv", c.kv]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    line = next(l for l in out.splitlines() if l.startswith("bench-result:"))
    r = {}
    for f in line.split()[1:]:
        k, v = f.split("=")
        try:
            r[k] = float(v)
        except ValueError:
            r[k] = v
    if c.pp > 0:
        c.phi3c["pp"].append(r["pp_tps"])
    c.phi3c["tg"].append(r["tg_tps"])
    c.phi3c["bw"].append(r["bw_gbs"])
    c.phi3c["step_mb"] = r["step_mb"]


class BusyCore:
    """A busy loop pinned to the last core while the loaded line runs."""

    def __enter__(self):
        core = str((os.cpu_count() or 1) - 1)
        self.p = subprocess.Popen(["taskset", "-c", core, "sh", "-c", "while :; do :; done"])
        return self

    def __exit__(self, *exc):
        self.p.kill()
        self.p.wait()


def med(v):
    return statistics.median(v) if v else float("nan")


def fmt(x, digits=2):
    return "-" if x != x else f"{x:.{digits}f}"


def table(a, configs, header):
    """The Markdown table of the runs so far."""
    lines = header + ["",
                      "| threads | depth | KV | llama.cpp pp | phi3c pp | pp ratio | llama.cpp tg | "
                      "phi3c tg | tg ratio | llama.cpp decode GB/s (% BW) | phi3c decode GB/s "
                      "(% BW) | BW GB/s | load |",
                      "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    weights = q4_0_stream_bytes()
    for c in configs:
        if not c.phi3c["tg"] or not c.llama["tg"]:
            continue
        bw = med(c.phi3c["bw"])
        lpp, ppp, ltg, ptg = med(c.llama["pp"]), med(c.phi3c["pp"]), med(c.llama["tg"]), med(
            c.phi3c["tg"])
        l_gbs = ltg * (weights + llama_kv_read_bytes(c.kv, c.depth, c.tg)) / 1e9
        p_gbs = ptg * c.phi3c["step_mb"] / 1e3
        thr = f"{c.threads}" + (", one core busy" if c.loaded else "")
        lines.append(f"| {thr} | {c.depth} | {c.kv} | {fmt(lpp)} | {fmt(ppp)} | "
                     f"{fmt(ppp / lpp if c.pp else float('nan'))}x | {fmt(ltg)} | {fmt(ptg)} | "
                     f"{fmt(ptg / ltg)}x | {l_gbs:.1f} ({100 * l_gbs / bw:.0f}%) | "
                     f"{p_gbs:.1f} ({100 * p_gbs / bw:.0f}%) | {bw:.1f} | "
                     f"{fmt(med(c.loads), 1)} |")
    return lines


def checks(configs):
    """The targets of the comparison, each with its figures."""
    base = {c.threads: c for c in configs if c.depth == 0 and c.kv == "f16" and c.pp and
            not c.loaded and c.phi3c["tg"]}
    out = []
    if len(base) > 1:
        lo, hi = min(base), max(base)
        out.append(f"- phi3c prefill scaling pp{base[hi].pp}(T={hi}) / pp(T={lo}): "
                   f"{med(base[hi].phi3c['pp']) / med(base[lo].phi3c['pp']):.2f}x; llama.cpp "
                   f"{med(base[hi].llama['pp']) / med(base[lo].llama['pp']):.2f}x")
    loaded = [c for c in configs if c.loaded and c.phi3c["tg"]]
    if loaded and 1 in base:
        c = loaded[0]
        out.append(f"- one core busy: phi3c tg at T={c.threads} {med(c.phi3c['tg']):.2f} tok/s "
                   f"against its own T=1 figure {med(base[1].phi3c['tg']):.2f} "
                   f"(its row's load {med(base[1].loads):.1f}); "
                   f"llama.cpp {med(c.llama['tg']):.2f} against {med(base[1].llama['tg']):.2f}")
    return out


def header_lines(a, start, la0):
    info = getattr(a, "llama_info", {}) or {}
    cpu = info.get("cpu_info") or platform.processor()
    commit = os.environ.get("BENCH_COMMIT") or subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip() or "?"
    return [f"Side by side, {start}, load average {la0:.2f} at the start, {loadavg():.2f} now; "
            f"{os.cpu_count()} cores ({cpu}); medians of {a.rounds} rounds x {a.reps} "
            f"repetitions, engines alternated",
            f"llama.cpp: llama-bench build {info.get('build_commit', '?')} "
            f"({a.llama_build_info}), Q4_0 with its load-time repacking, flash attention on "
            f"(-fa 1), OMP_WAIT_POLICY={a.policy or 'default'}; weights {q4_0_stream_bytes() / 1e9:.2f}"
            f" GB read per token",
            f"phi3c {commit}: bench --e2e, synthetic INT4-g128 w4a8; depth rows time decode only "
            f"(tg{a.depth_tg}); BW = phi3c's bandwidth probe in the same process"]


def build_configs(a, threads):
    tmax = max(threads)
    configs = [Config(t, 0, "f16", a.pp, a.tg) for t in threads]
    if a.loaded:
        configs.append(Config(tmax, 0, "f16", a.pp, a.tg, loaded=True))
    depths = sorted(int(x) for x in a.depths.split(","))
    for d in depths:  # shallow first: a run cut short still has them
        for kv in a.kv.split(","):
            if d == 0 and kv == "f16":
                continue  # the T = max row above
            configs.append(Config(tmax, d, kv, 0, a.depth_tg))
    return configs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--llama-bench", help="llama.cpp's llama-bench binary")
    ap.add_argument("--gguf-only", action="store_true", help="write the GGUF and stop")
    ap.add_argument("--llama-build-info", default="", help="one line on how it was built")
    ap.add_argument("--build", default="build")
    ap.add_argument("--threads", default=",".join(str(t) for t in range(1, (os.cpu_count() or 1) + 1)))
    ap.add_argument("--reps", type=int, default=2, help="repetitions inside each engine's run")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds of every row")
    ap.add_argument("--pp", type=int, default=512)
    ap.add_argument("--tg", type=int, default=128)
    ap.add_argument("--depths", default="0,1024,4096")
    ap.add_argument("--kv", default="f16,q8")
    ap.add_argument("--depth-tg", type=int, default=64, help="decode steps timed at each depth")
    ap.add_argument("--no-loaded", dest="loaded", action="store_false")
    ap.add_argument("--gguf", default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--omp-wait", choices=("auto", "active", "passive"), default="auto",
                    help="llama.cpp's OpenMP wait policy; auto = passive when the load average "
                         "exceeds the cores (spinning threads then lose their time slices)")
    a = ap.parse_args()
    a.llama_build_info = a.llama_build_info or "?"
    env = dict(os.environ)
    policy = env.get("OMP_WAIT_POLICY")
    if policy is None and a.omp_wait != "auto":
        policy = a.omp_wait.upper()
    elif policy is None and loadavg() > (os.cpu_count() or 1):
        policy = "PASSIVE"
    a.policy = policy
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    a.gguf = a.gguf or os.path.join(a.build, "bench", "phi3-mini-synthetic-q4_0-v3.gguf")
    os.makedirs(os.path.dirname(a.gguf), exist_ok=True)
    if not os.path.exists(a.gguf):
        print(f"writing {a.gguf} (synthetic Phi-3-mini, Q4_0, random weights)", file=sys.stderr)
        write_gguf(a.gguf)
    if a.gguf_only:
        return
    if not a.llama_bench:
        ap.error("--llama-bench PATH is needed")
    out = a.out or os.path.join(a.build, "bench", "side_by_side.md")
    threads = [int(t) for t in a.threads.split(",")]
    configs = build_configs(a, threads)
    la0, start = loadavg(), time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    for rnd in range(a.rounds):
        for c in configs:
            runs = [("llama.cpp", lambda: run_llama_bench(a, c, env)), ("phi3c", lambda: run_phi3c(a, c))]
            if rnd % 2:
                runs.reverse()
            busy = BusyCore() if c.loaded else None
            if busy:
                busy.__enter__()
            try:
                for name, fn in runs:
                    t0 = time.time()
                    fn()
                    c.loads.append(loadavg())
                    print(f"[round {rnd + 1}/{a.rounds}] {name} T={c.threads} depth={c.depth} "
                          f"kv={c.kv}{' busy core' if c.loaded else ''}: {time.time() - t0:.0f} s, "
                          f"load {loadavg():.1f}", file=sys.stderr, flush=True)
            finally:
                if busy:
                    busy.__exit__()
            text = "\n".join(table(a, configs, header_lines(a, start, la0)) + [""] + checks(configs))
            with open(out, "w") as f:
                f.write(text + "\n")
    print(text)
    print(f"\nwritten to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
