#!/usr/bin/env python3
"""bench_lookup.py: generated tok/s with prompt lookup (`phi3c run --lookup N`) against without,
on the fixed prompts of tools/lookup_prompts.txt (grounded: a passage to repeat; open: none).

Every prompt runs greedily (or, with --temp T, sampled with a fixed seed) with and without
lookup, alternating A/B `--reps` times (the machine may be shared: medians, and the load average
is printed). Checks that both give the same ids.
Prints one row per prompt and a summary per kind: the ratio of total generated tokens per total
median seconds, the median of the per-prompt ratios, the acceptance rate and tokens per forward.

--project "K:RATIO,...": the gain on another model from the acceptance measured here, for each
fixed draft length d with a measured cost: the greedy sequence (the same with and without lookup)
is replayed through the n-gram drafter (same rule as engine/lookup.c: latest earlier occurrence of
the last 4..1 tokens, up to d tokens), and each step costs RATIO(d + 1) decode steps, where the
ratios are `phi3c bench --verify-cost`'s k_ratio for forwards of k = d + 1 tokens on that model.
--serve N: the same prompts through `phi3c serve --parallel N` instead, each kind's prompts sent
at once as concurrent /v1/completions requests with "lookup": 0 and then "lookup": --lookup,
alternating --reps times: aggregate generated tok/s (all tokens / wall time), drafts kept (from
usage.completion_tokens_details) and identical texts.

Standard library only, plus the server helpers of bench_server.py beside it.
"""
import argparse
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time

from bench_server import free_port, stop, wait_health  # tools/, beside this script

STATS = re.compile(r"generated (\d+) tokens in ([0-9.]+) s")
LOOKUP = re.compile(r"lookup: (\d+) drafted, (\d+) accepted \(\d+%\), ([0-9.]+) tokens/forward")


def read_prompts(path):
    prompts = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            kind, text = line.split("\t", 1)
            prompts.append((kind, text.replace("\\n", "\n")))
    return prompts


def run_once(args, prompt, lookup):
    cmd = [args.phi3c, "run", "-m", args.model, "-p", prompt, "-n", str(args.n), *sampling(args),
           "--ids", "-t", str(args.threads), "--lookup", str(lookup), "--verbose-prompt"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    if p.returncode != 0:
        sys.exit(f"bench_lookup: {' '.join(cmd[:4])} failed:\n{p.stderr}")
    m = STATS.search(p.stderr)
    if not m:
        sys.exit(f"bench_lookup: no stats line in:\n{p.stderr}")
    ids = re.search(r"prompt ids:([ 0-9]*)\n", p.stderr)
    out = {"ids": p.stdout.split(), "n": int(m.group(1)), "sec": float(m.group(2)),
           "prompt": [int(x) for x in ids.group(1).split()] if ids else []}
    lk = LOOKUP.search(p.stderr)
    if lk:
        out.update(drafted=int(lk.group(1)), accepted=int(lk.group(2)),
                   per_forward=float(lk.group(3)))
    return out


NGRAM = 4


def sampling(args):
    """run's sampling options: greedy, or --temp T with a fixed seed (the same ids either way)."""
    return ["--greedy"] if args.temp <= 0 else ["--temp", str(args.temp), "--seed", "7"]


def simulate(seq, n_prompt, d):
    """Forwards and draft sizes of greedy decoding of seq[n_prompt:] drafting up to d tokens."""
    steps, pos = [], n_prompt  # seq[pos] is the next token to report; pos - 1 is fed with drafts
    while pos < len(seq):
        ctx = seq[:pos + 1]  # history plus the token about to be fed
        draft = []
        for g in range(min(NGRAM, len(ctx) - 1), 0, -1):
            suffix = ctx[-g:]
            i = next((i for i in range(len(ctx) - g - 1, -1, -1) if ctx[i:i + g] == suffix), -1)
            if i >= 0:
                draft = ctx[i + g:i + g + d]
                break
        draft = draft[:max(0, len(seq) - pos - 1)]
        kept = 0
        while kept < len(draft) and draft[kept] == seq[pos + 1 + kept]:
            kept += 1
        steps.append(len(draft))
        pos += 1 + kept
    return steps


def project(rows, costs):
    """Per draft length: tokens per forward and the projected speed-up (tokens / sum of the
    step costs), over all rows."""
    out = {}
    for k, ratio in sorted(costs.items()):
        d = k - 1
        if d < 1:
            continue
        tokens = cost = forwards = 0.0
        for r in rows:
            steps = simulate(r["seq"], r["n_prompt"], d)
            tokens += len(r["seq"]) - r["n_prompt"]
            forwards += len(steps)
            cost += sum(costs.get(s + 1, 1.0 + (ratio - 1.0) * s / d) for s in steps)
        out[d] = (tokens / forwards, tokens / cost)
    return out


def load_average():
    try:
        with open("/proc/loadavg", encoding="ascii") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "n/a"


def bench_prompt(args, prompt):
    a_sec, b_sec, a, b = [], [], None, None
    for _ in range(args.reps):
        a = run_once(args, prompt, 0)
        b = run_once(args, prompt, args.lookup)
        a_sec.append(a["sec"])
        b_sec.append(b["sec"])
    seq = a["prompt"] + [int(x) for x in a["ids"]]
    return {"same": a["ids"] == b["ids"], "n": a["n"], "a_sec": statistics.median(a_sec),
            "seq": seq, "n_prompt": len(a["prompt"]),
            "b_sec": statistics.median(b_sec), "drafted": b.get("drafted", 0),
            "accepted": b.get("accepted", 0), "per_forward": b.get("per_forward", 0.0)}


def summary(kind, rows):
    n = sum(r["n"] for r in rows)
    a_tps = n / sum(r["a_sec"] for r in rows)
    b_tps = n / sum(r["b_sec"] for r in rows)
    ratios = [r["a_sec"] / r["b_sec"] for r in rows]
    drafted = sum(r["drafted"] for r in rows)
    accepted = sum(r["accepted"] for r in rows)
    same = sum(r["same"] for r in rows)
    print(f"{kind:8s} {len(rows)} prompts, {n} tokens: {a_tps:8.1f} -> {b_tps:8.1f} tok/s "
          f"= {b_tps / a_tps:.2f}x (median per prompt {statistics.median(ratios):.2f}x), "
          f"accepted {accepted}/{drafted} drafts "
          f"({100.0 * accepted / drafted if drafted else 0:.0f}%), identical ids {same}/{len(rows)}")
    return same == len(rows)


def post_completion(port, body, out, i):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        c.request("POST", "/v1/completions", body=json.dumps(body),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        data = json.loads(r.read())
        if r.status != 200:
            raise RuntimeError(f"HTTP {r.status}: {data}")
        out[i] = data
    finally:
        c.close()


def serve_round(port, args, prompts, lookup):
    """All prompts at once; returns (seconds, texts, tokens, accepted, drafted)."""
    out = [None] * len(prompts)
    temp = max(args.temp, 0.0)
    threads = [threading.Thread(target=post_completion, args=(port, {
        "prompt": p, "max_tokens": args.n, "temperature": temp, "seed": 7, "lookup": lookup},
        out, i)) for i, p in enumerate(prompts)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    sec = time.time() - t0
    if any(o is None for o in out):
        sys.exit("bench_lookup: a request failed (see the server's output)")
    details = [o["usage"]["completion_tokens_details"] for o in out]
    accepted = sum(d["accepted_prediction_tokens"] for d in details)
    return (sec, [o["choices"][0]["text"] for o in out],
            sum(o["usage"]["completion_tokens"] for o in out), accepted,
            accepted + sum(d["rejected_prediction_tokens"] for d in details))


def start_server(args):
    port = free_port()
    proc = subprocess.Popen([args.phi3c, "serve", "-m", args.model, "--port", str(port), "-t",
                             str(args.threads), "--parallel", str(args.serve)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_health(port, proc, 60)
    except RuntimeError as e:
        stop(proc)
        sys.exit(f"bench_lookup: phi3c serve: {e}")
    return proc, port


def serve_main(args):
    by_kind = {}
    for kind, prompt in read_prompts(args.prompts):
        by_kind.setdefault(kind, []).append(prompt)
    print(f"phi3c serve -m {args.model} --parallel {args.serve} -t {args.threads}: each kind's "
          f"prompts at once, -n {args.n}, {'greedy' if args.temp <= 0 else f'temp {args.temp}'}, "
          f'"lookup": 0 vs {args.lookup}, {args.reps} alternating rounds, medians; load average '
          f"before: {load_average()}")
    proc, port = start_server(args)
    ok = True
    try:
        serve_round(port, args, list(by_kind.values())[0][:1], 0)  # warm up
        for kind, prompts in by_kind.items():
            a_sec, b_sec = [], []
            for _ in range(args.reps):
                a = serve_round(port, args, prompts, 0)
                b = serve_round(port, args, prompts, args.lookup)
                a_sec.append(a[0])
                b_sec.append(b[0])
            same = a[1] == b[1]
            ok = ok and same
            a_tps, b_tps = a[2] / statistics.median(a_sec), b[2] / statistics.median(b_sec)
            print(f"{kind:8s} {len(prompts)} streams, {a[2]} tokens: {a_tps:8.1f} -> {b_tps:8.1f} "
                  f"tok/s = {b_tps / a_tps:.2f}x, accepted {b[3]}/{b[4]} drafts "
                  f"({100.0 * b[3] / b[4] if b[4] else 0:.0f}%), identical texts "
                  f"{'yes' if same else 'NO'}")
            sys.stdout.flush()
    finally:
        stop(proc)
    print(f"load average after: {load_average()}")
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--phi3c", default=os.path.join(os.environ.get("BUILD", "build"), "phi3c"))
    ap.add_argument("--model", default="tools/demo-model")
    ap.add_argument("--prompts", default="tools/lookup_prompts.txt")
    ap.add_argument("-n", type=int, default=256, help="tokens to generate per prompt")
    ap.add_argument("--lookup", type=int, default=8, help="draft length of the B runs")
    ap.add_argument("-t", "--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=5, help="A/B pairs per prompt (medians)")
    ap.add_argument("--temp", type=float, default=0.0,
                    help="sample at this temperature with seed 7 instead of greedy (drafts fail "
                         "more often: shows lookup backing off)")
    ap.add_argument("--project", default="",
                    help="K:RATIO,... from phi3c bench --verify-cost of another model")
    ap.add_argument("--serve", type=int, default=0,
                    help="N: through phi3c serve --parallel N, each kind's prompts at once")
    args = ap.parse_args()
    if args.serve > 0:
        return serve_main(args)
    costs = {}
    for item in filter(None, args.project.split(",")):
        k, ratio = item.split(":")
        costs[int(k)] = float(ratio)
    print(f"phi3c run -m {args.model} -n {args.n} {' '.join(sampling(args))} -t {args.threads}: "
          f"--lookup 0 vs "
          f"--lookup {args.lookup}, {args.reps} alternating pairs per prompt, medians; "
          f"load average before: {load_average()}")
    print(f"{'kind':8s} {'#':>2s} {'tokens':>6s} {'tok/s':>8s} {'lookup':>8s} {'ratio':>6s} "
          f"{'accepted':>9s} {'tok/fwd':>7s} same")
    by_kind = {}
    for i, (kind, prompt) in enumerate(read_prompts(args.prompts)):
        r = bench_prompt(args, prompt)
        by_kind.setdefault(kind, []).append(r)
        acc = f"{r['accepted']}/{r['drafted']}"
        print(f"{kind:8s} {i:2d} {r['n']:6d} {r['n'] / r['a_sec']:8.1f} {r['n'] / r['b_sec']:8.1f} "
              f"{r['a_sec'] / r['b_sec']:6.2f} {acc:>9s} {r['per_forward']:7.2f} "
              f"{'yes' if r['same'] else 'NO'}")
        sys.stdout.flush()
    print(f"load average after: {load_average()}")
    ok = all([summary(kind, rows) for kind, rows in by_kind.items()])
    if costs and args.temp > 0:
        print("(no projection: it replays greedy decoding)")
    elif costs:
        print(f"projection with verify costs {args.project} (forward of k tokens / one token):")
        for kind, rows in by_kind.items():
            gains = project(rows, costs)
            print(f"{kind:8s} " + ", ".join(f"up to {d} drafts: {tf:.2f} tok/forward, {g:.2f}x"
                                              for d, (tf, g) in gains.items()))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
