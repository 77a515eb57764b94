#!/usr/bin/env bash
# bench.sh: `make bench`. The kernel lab with its roofline, phi3c against llama.cpp's own
# llama-bench side by side (T = 1 .. nproc, long context, a loaded line), `phi3c serve` against
# llama-server at 1-16 concurrent streams, the tokenizer's encode throughput against HF
# tokenizers, and the cost of verifying a native file's checksums. Results go to build/bench/;
# docs/BENCHMARKS.md explains
# every number. Not part of `make test` (long, and the machine must be quiet to mean anything).
#   BENCH_THREADS=2        threads of the kernel lab
#   BENCH_SIDE_THREADS=1,2 thread counts of the side-by-side run (default 1 .. nproc)
#   BENCH_REPS=3           repetitions of the kernel lab (medians are reported)
#   BENCH_SIDE_REPS=2      repetitions inside each engine's run of the side by side
#   BENCH_ROUNDS=2         alternating rounds of the side by side
#   BENCH_PYTHON=...       a Python with numpy and gguf, to write the GGUF once (default: a venv
#                          in build/venv-bench made from tools/requirements-bench.txt)
#   BENCH_SERVER_STREAMS=1,2,4,8,16   concurrent streams of the server comparison
#   BENCH_ONLY=kernels,side,server,tokenizer,checksum   a subset
set -uo pipefail
BUILD=${BUILD:-build}
MAKE=${MAKE:-make}
out=$BUILD/bench
mkdir -p "$out"
threads=${BENCH_THREADS:-2}
reps=${BENCH_REPS:-3}
only=${BENCH_ONLY:-kernels,side,server,tokenizer,checksum}
failed=()
wants() { [[ ",$only," == *",$1,"* ]]; }
step() { echo; echo "==== $1 ($(date -u +%H:%M:%S) UTC, load $(cut -d' ' -f1 /proc/loadavg))"; }

if wants kernels; then
  step "kernel lab: $BUILD/phi3c bench --kernels -t $threads --svg $out/roofline.svg"
  "$BUILD/phi3c" bench --kernels -t "$threads" --reps "$reps" --svg "$out/roofline.svg" \
    | tee "$out/kernels.txt" || failed+=(kernels)
fi

if wants side; then
  step "llama.cpp's llama-bench and llama-server (tools/build_llamacpp.sh; cached)"
  py=${BENCH_PYTHON:-}
  if [ -z "$py" ]; then
    tools/make_venv.sh "$BUILD/venv-bench" tools/requirements-bench.txt && py=$BUILD/venv-bench/bin/python
  fi
  # the GGUF first: build_llamacpp.sh's AMX probe runs on it
  gguf=$BUILD/bench/phi3-mini-synthetic-q4_0-v3.gguf
  [ -n "$py" ] && "$py" tools/bench_llamacpp.py --build "$BUILD" --gguf "$gguf" --gguf-only
  llama_bin=$(LLAMACPP_PROBE_MODEL=$gguf tools/build_llamacpp.sh "$BUILD") || llama_bin=
  info=$(sed -n 's/^flags: //p' "$BUILD/llamacpp/build-info.txt" 2>/dev/null)
  amx=$(sed -n 's/^amx: //p' "$BUILD/llamacpp/build-info.txt" 2>/dev/null)
  lb=$llama_bin/llama-bench
  # AMX only where the probe run of the AMX build survived (build_llamacpp.sh)
  if [[ "$amx" == works* ]]; then
    export LD_LIBRARY_PATH="${amx##*LD_LIBRARY_PATH=}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    info="$info; ggml-cpu with AMX (probe passed)"
  else
    info="$info; AMX ${amx:-not probed}"
  fi
  if [ -n "$py" ] && [ -n "$llama_bin" ]; then
    step "side by side with llama.cpp's llama-bench (tools/bench_llamacpp.py)"
    "$py" tools/bench_llamacpp.py --build "$BUILD" --gguf "$gguf" --llama-bench "$lb" --llama-build-info "$info" \
      ${BENCH_SIDE_THREADS:+--threads "$BENCH_SIDE_THREADS"} --reps "${BENCH_SIDE_REPS:-2}" \
      --rounds "${BENCH_ROUNDS:-2}" --out "$out/side_by_side.md" || failed+=(side)
  else
    failed+=(side)
  fi
fi

if wants server; then
  # phi3c serve against llama-server -np N on the same synthetic GGUF (tools/bench_server.py)
  step "phi3c serve vs llama-server, 1..16 concurrent streams (tools/bench_server.py)"
  gguf=$BUILD/bench/phi3-mini-synthetic-q4_0-v3.gguf
  py=${BENCH_PYTHON:-}
  if [ -z "$py" ]; then
    tools/make_venv.sh "$BUILD/venv-bench" tools/requirements-bench.txt && py=$BUILD/venv-bench/bin/python
  fi
  [ -f "$gguf" ] || "$py" tools/bench_llamacpp.py --build "$BUILD" --gguf "$gguf" --gguf-only
  llama_bin=$(LLAMACPP_PROBE_MODEL=$gguf tools/build_llamacpp.sh "$BUILD") || llama_bin=
  if [ -n "$llama_bin" ] && [ -x "$llama_bin/llama-server" ]; then
    python3 tools/bench_server.py --gguf "$gguf" --llama-server "$llama_bin/llama-server" \
      --phi3c "$BUILD/phi3c" ${BENCH_SERVER_STREAMS:+--streams "$BENCH_SERVER_STREAMS"} \
      --out "$out/server.md" || failed+=(server)
  else
    failed+=(server)
  fi
fi

if wants tokenizer; then
  step "tokenizer encode throughput against HF tokenizers (make bench-tokenizer)"
  $MAKE --no-print-directory bench-tokenizer | tee "$out/tokenizer.txt" || failed+=(tokenizer)
fi

if wants checksum; then
  step "native file checksum verification cost (build/tools/synth_native, 8 layers)"
  "$BUILD/tools/synth_native" "$out/synth8.phi3c" --layers 8 --rtn 2>/dev/null | tee "$out/checksum.txt" \
    || failed+=(checksum)
  rm -f "$out/synth8.phi3c"
fi

echo
if [ ${#failed[@]} -gt 0 ]; then
  echo "bench: failed steps: ${failed[*]}" >&2
  exit 1
fi
echo "bench: done; results in $out/"
