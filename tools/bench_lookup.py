#!/usr/bin/env python3
"""bench_lookup.py: generated tok/s with prompt lookup (`phi3c run --lookup N`) against without,
on the fixed prompts of tools/lookup_prompts.txt (grounded: a passage to repeat; open: none).

Every prompt runs greedily with and without lookup, alternating A/B `--reps` times (the machine
may be shared: medians, and the load average is printed). Checks that both give the same ids.
Prints one row per prompt and a summary per kind: the ratio of total generated tokens per total
median seconds, the median of the per-prompt ratios, the acceptance rate and tokens per forward.
Standard library only.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys

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
    cmd = [args.phi3c, "run", "-m", args.model, "-p", prompt, "-n", str(args.n), "--greedy",
           "--ids", "-t", str(args.threads), "--lookup", str(lookup)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    if p.returncode != 0:
        sys.exit(f"bench_lookup: {' '.join(cmd[:4])} failed:\n{p.stderr}")
    m = STATS.search(p.stderr)
    if not m:
        sys.exit(f"bench_lookup: no stats line in:\n{p.stderr}")
    out = {"ids": p.stdout.split(), "n": int(m.group(1)), "sec": float(m.group(2))}
    lk = LOOKUP.search(p.stderr)
    if lk:
        out.update(drafted=int(lk.group(1)), accepted=int(lk.group(2)),
                   per_forward=float(lk.group(3)))
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
    return {"same": a["ids"] == b["ids"], "n": a["n"], "a_sec": statistics.median(a_sec),
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--phi3c", default=os.path.join(os.environ.get("BUILD", "build"), "phi3c"))
    ap.add_argument("--model", default="tools/demo-model")
    ap.add_argument("--prompts", default="tools/lookup_prompts.txt")
    ap.add_argument("-n", type=int, default=256, help="tokens to generate per prompt")
    ap.add_argument("--lookup", type=int, default=8, help="draft length of the B runs")
    ap.add_argument("-t", "--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=5, help="A/B pairs per prompt (medians)")
    args = ap.parse_args()
    print(f"phi3c run -m {args.model} -n {args.n} --greedy -t {args.threads}: --lookup 0 vs "
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
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
