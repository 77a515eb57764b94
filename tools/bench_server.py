#!/usr/bin/env python3
"""bench_server.py: `phi3c serve` against llama.cpp's `llama-server -np N` on the synthetic
full-shape Phi-3-mini (the Q4_0 GGUF of bench_llamacpp.py; phi3c loads it with --quant int4-g128),
in one run: N = 1, 2, 4, 8, 16 concurrent streaming /v1/completions clients, each with its own
128-token prompt (token ids, so both engines get exactly the same tokens) and 128 generated tokens
(greedy). Reports aggregate generated tok/s (all tokens / wall time from the first request to the
last token) and p50/p99 time to first token, with the load average. Not part of `make test`.

usage: bench_server.py --gguf PATH --llama-server PATH [--phi3c build/phi3c] [--streams 1,2,4,8,16]
                       [--threads 2] [--prompt 128] [--gen 128] [--out build/bench/server.md]
"""
import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import threading
import time
import http.client


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def wait_health(port, proc, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError("server not ready in time")


def stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)


def one_stream(port, prompt, gen, extra, out):
    """Streams one completion; records (ttft seconds, generated tokens, end time)."""
    body = dict(prompt=prompt, max_tokens=gen, temperature=0, stream=True,
                stream_options={"include_usage": True}, **extra)
    t0 = time.time()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=1800)
    c.request("POST", "/v1/completions", body=json.dumps(body),
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    if r.status != 200:
        raise RuntimeError(f"status {r.status}: {r.read()[:300]!r}")
    ttft, chunks, usage = None, 0, None
    buf = b""
    while True:
        line = r.readline()
        if not line:
            break
        line = line.strip()
        if not line.startswith(b"data: "):
            continue
        data = line[6:]
        if data == b"[DONE]":
            break
        j = json.loads(data)
        if j.get("usage"):
            usage = j["usage"].get("completion_tokens")
        if j.get("timings") and not usage:
            usage = j["timings"].get("predicted_n")
        for ch in j.get("choices", []):
            if ch.get("text"):
                chunks += 1
                if ttft is None:
                    ttft = time.time() - t0
    c.close()
    out.append((ttft if ttft is not None else time.time() - t0, usage or chunks, time.time()))
    del buf


def run_level(port, n, prompts, gen, extra):
    results, errors = [], []

    def worker(i):
        try:
            one_stream(port, prompts[i], gen, extra, results)
        except Exception as e:  # reported
            errors.append(repr(e))

    t0 = time.time()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=3600)
    if errors:
        raise RuntimeError(errors[0])
    wall = max(r[2] for r in results) - t0
    tokens = sum(r[1] for r in results)
    ttfts = sorted(r[0] for r in results)
    p99 = ttfts[min(len(ttfts) - 1, int(round(0.99 * (len(ttfts) - 1))))]
    return {"tps": tokens / wall, "tokens": tokens, "p50": statistics.median(ttfts), "p99": p99,
            "load": loadavg()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--llama-server", required=True)
    ap.add_argument("--phi3c", default="build/phi3c")
    ap.add_argument("--streams", default="1,2,4,8,16")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--gen", type=int, default=128)
    ap.add_argument("--out", default="build/bench/server.md")
    ap.add_argument("--phi3c-port", type=int, default=0,
                    help="use a phi3c serve already running on this port (16 slots, enough -c)")
    a = ap.parse_args()
    levels = [int(x) for x in a.streams.split(",")]
    rng = random.Random(7)
    prompts = [[rng.randrange(300, 31000) for _ in range(a.prompt)] for _ in range(max(levels))]
    ctx = a.prompt + a.gen + 32
    rows = {}
    la0 = loadavg()
    port = a.phi3c_port or free_port()
    phi = None
    if not a.phi3c_port:
        phi = subprocess.Popen([a.phi3c, "serve", "-m", a.gguf, "--quant", "int4-g128",
                                "--parallel", str(max(levels)), "-c", str(ctx), "-t",
                                str(a.threads), "--port", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if phi:
            wait_health(port, phi, 1800)
        for n in levels:
            rows.setdefault(n, {})["phi3c"] = run_level(port, n, prompts, a.gen, {})
            print(f"phi3c serve  N={n}: {rows[n]['phi3c']}", flush=True)
            lport = free_port()
            ll = subprocess.Popen([a.llama_server, "-m", a.gguf, "-np", str(n), "-c", str(ctx * n),
                                   "-t", str(a.threads), "--port", str(lport), "--host",
                                   "127.0.0.1"], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
            try:
                wait_health(lport, ll, 600)
                rows[n]["llama"] = run_level(lport, n, prompts, a.gen, {"ignore_eos": True})
                print(f"llama-server N={n}: {rows[n]['llama']}", flush=True)
            finally:
                stop(ll)
    finally:
        if phi:
            stop(phi)
    one = rows[levels[0]]["phi3c"]["tps"]
    lines = [f"phi3c serve (INT4-g128 w4a8, --parallel {max(levels)}) vs llama-server -np N (Q4_0), "
             f"synthetic Phi-3-mini, {a.prompt}-token prompts, {a.gen} generated, greedy, "
             f"-t {a.threads}; load average {la0} at the start (shared machine).", "",
             "| streams | phi3c tok/s | phi3c TTFT p50 / p99 s | llama-server tok/s | "
             "llama TTFT p50 / p99 s | phi3c / llama | phi3c / its 1-stream | load |",
             "|---|---|---|---|---|---|---|---|"]
    for n in levels:
        p, l = rows[n]["phi3c"], rows[n].get("llama")
        lines.append(f"| {n} | {p['tps']:.2f} | {p['p50']:.2f} / {p['p99']:.2f} | "
                     f"{l['tps']:.2f} | {l['p50']:.2f} / {l['p99']:.2f} | {p['tps'] / l['tps']:.2f}x | "
                     f"{p['tps'] / one:.2f}x | {p['load']} / {l['load']} |")
    text = "\n".join(lines) + "\n"
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    with open(a.out, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
