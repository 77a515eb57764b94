#!/usr/bin/env bash
# bench.sh: `make bench`. The kernel lab with its roofline, phi3c against llama.cpp side by side
# (1 and 2 threads), the tokenizer's encode throughput against HF tokenizers, and the cost of
# verifying a native file's checksums. Results go to build/bench/; docs/BENCHMARKS.md explains
# every number. Not part of `make test` (long, and the machine must be quiet to mean anything).
#   BENCH_THREADS=2        threads of the kernel lab
#   BENCH_SIDE_THREADS=1,2 thread counts of the side-by-side run
#   BENCH_REPS=3           repetitions (medians are reported)
#   BENCH_PYTHON=...       a Python with numpy, gguf and llama-cpp-python (default: a venv in
#                          build/venv-bench made from tools/requirements-bench.txt)
#   BENCH_LLAMA_LIB=DIR    llama.cpp shared libraries to load instead of the package's own
#   BENCH_ONLY=kernels,side,tokenizer,checksum   a subset
set -uo pipefail
BUILD=${BUILD:-build}
MAKE=${MAKE:-make}
out=$BUILD/bench
mkdir -p "$out"
threads=${BENCH_THREADS:-2}
reps=${BENCH_REPS:-3}
only=${BENCH_ONLY:-kernels,side,tokenizer,checksum}
failed=()
wants() { [[ ",$only," == *",$1,"* ]]; }
step() { echo; echo "==== $1 ($(date -u +%H:%M:%S) UTC, load $(cut -d' ' -f1 /proc/loadavg))"; }

if wants kernels; then
  step "kernel lab: $BUILD/phi3c bench --kernels -t $threads --svg $out/roofline.svg"
  "$BUILD/phi3c" bench --kernels -t "$threads" --reps "$reps" --svg "$out/roofline.svg" \
    | tee "$out/kernels.txt" || failed+=(kernels)
fi

if wants side; then
  step "side by side with llama.cpp (tools/bench_llamacpp.py)"
  py=${BENCH_PYTHON:-}
  if [ -z "$py" ]; then
    # llama.cpp compiled for this CPU: pip's default build leaves out AVX-512, and -march=native
    # would enable ggml's AMX path, which crashes in ggml_backend_amx_mul_mat on this machine
    # (llama-cpp-python 0.3.36); so AVX-512 + VNNI explicitly when the CPU has them, AMX off.
    llama_args=-DGGML_NATIVE=OFF
    if grep -q avx512_vnni /proc/cpuinfo 2>/dev/null; then
      llama_args="$llama_args -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
      llama_args="$llama_args -DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON -DGGML_AMX_INT8=OFF"
      grep -q avx512_vbmi /proc/cpuinfo && llama_args="$llama_args -DGGML_AVX512_VBMI=ON"
      grep -q avx512_bf16 /proc/cpuinfo && llama_args="$llama_args -DGGML_AVX512_BF16=ON"
      grep -q avx_vnni /proc/cpuinfo && llama_args="$llama_args -DGGML_AVX_VNNI=ON"
    fi
    CMAKE_ARGS="${CMAKE_ARGS:-$llama_args}" tools/make_venv.sh "$BUILD/venv-bench" \
      tools/requirements-bench.txt && py=$BUILD/venv-bench/bin/python
  fi
  if [ -n "$py" ]; then
    "$py" tools/bench_llamacpp.py --build "$BUILD" --threads "${BENCH_SIDE_THREADS:-1,2}" \
      --reps "$reps" --out "$out/side_by_side.md" ${BENCH_LLAMA_LIB:+--llama-lib "$BENCH_LLAMA_LIB"} \
      || failed+=(side)
  else
    failed+=(side)
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
