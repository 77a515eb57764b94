#!/usr/bin/env bash
# build_llamacpp.sh: builds llama.cpp's own `llama-bench` and `llama-server` (the anchors of
# `make bench` and of the server side-by-side) from the llama.cpp tree vendored in the PyPI sdist
# of llama-cpp-python (pinned below), with cmake, shared libraries and the ISA flags this CPU has.
# Cached: a second run with the same version and flags only prints the paths. `make llamacpp`.
#   tools/build_llamacpp.sh [BUILD]        (default build/) -> BUILD/llamacpp/bin/{llama-bench,llama-server}
#   LLAMACPP_JOBS=2                        parallel compile jobs (run under `nice`)
#   LLAMACPP_AMX=auto|off                  auto: also build ggml's CPU library with AMX and keep it
#                                          only if a probe run of llama-bench with it survives (on
#                                          this kind of machine its AMX path died with SIGILL on
#                                          `tilezero`); needs LLAMACPP_PROBE_MODEL (make bench's GGUF)
# Prints `llamacpp: ...` lines; BUILD/llamacpp/build-info.txt records version, flags and the AMX verdict.
set -euo pipefail
VERSION=0.3.36 # llama-cpp-python; its vendored llama.cpp is the commit the docs quote
BUILD=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mkdir -p "$BUILD/llamacpp"
dir=$(cd "$BUILD/llamacpp" && pwd)
jobs=${LLAMACPP_JOBS:-2}
amx=${LLAMACPP_AMX:-auto}
say() { echo "llamacpp: $*" >&2; }

has_flag() { grep -qw "$1" /proc/cpuinfo 2>/dev/null; }

# The ISA flags: explicit (GGML_NATIVE=OFF), so the build says what it uses and -march=native
# cannot switch on AMX behind our back.
isa_flags() {
  local f=(-DGGML_NATIVE=OFF)
  has_flag avx && f+=(-DGGML_AVX=ON)
  has_flag avx2 && f+=(-DGGML_AVX2=ON)
  has_flag fma && f+=(-DGGML_FMA=ON)
  has_flag f16c && f+=(-DGGML_F16C=ON)
  has_flag bmi2 && f+=(-DGGML_BMI2=ON)
  has_flag avx512f && has_flag avx512bw && has_flag avx512vl && has_flag avx512dq \
    && f+=(-DGGML_AVX512=ON)
  has_flag avx512_vnni && f+=(-DGGML_AVX512_VNNI=ON)
  has_flag avx512vbmi && f+=(-DGGML_AVX512_VBMI=ON)
  has_flag avx512_bf16 && f+=(-DGGML_AVX512_BF16=ON)
  has_flag avx_vnni && f+=(-DGGML_AVX_VNNI=ON)
  echo "${f[@]}"
}

fetch_source() {
  local src=$dir/llama_cpp_python-$VERSION/vendor/llama.cpp
  if [ ! -f "$src/CMakeLists.txt" ]; then
    if [ ! -f "$dir/llama_cpp_python-$VERSION.tar.gz" ]; then
      say "pip download llama-cpp-python==$VERSION (sdist)"
      python3 -m pip download --quiet --no-deps --no-binary :all: "llama-cpp-python==$VERSION" \
        -d "$dir" >&2
    fi
    tar -xzf "$dir/llama_cpp_python-$VERSION.tar.gz" -C "$dir"
  fi
  echo "$src"
}

# configure_and_build SRC OUT "FLAGS" TARGETS...
configure_and_build() {
  local src=$1 out=$2 flags=$3
  shift 3
  # shellcheck disable=SC2086 # flags is a word list
  cmake -S "$src" -B "$out" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON \
    -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
    -DLLAMA_BUILD_APP=OFF $flags >"$out.configure.log" 2>&1 \
    || { tail -30 "$out.configure.log" >&2; return 1; }
  nice -n 10 cmake --build "$out" -j "$jobs" --target "$@" >"$out.build.log" 2>&1 \
    || { tail -30 "$out.build.log" >&2; return 1; }
}

# The AMX probe: a short llama-bench run on the benchmark's Q4_0 model (AMX takes Q4_0 there).
probe_amx() {
  local bin=$1 model=$2 rc=0
  timeout 600 "$bin" -m "$model" -p 64 -n 2 -t 1 -r 1 >"$dir/amx-probe.log" 2>&1 || rc=$?
  if [ "$rc" -eq 132 ]; then
    echo "SIGILL (illegal instruction) in a 1-thread llama-bench run" >>"$dir/amx-probe.log"
  elif [ "$rc" -ne 0 ]; then
    echo "exit status $rc" >>"$dir/amx-probe.log"
  fi
  # it counts only if its AMX buffer type was used, not only compiled in
  [ "$rc" -eq 0 ] && grep -q AMX "$dir/amx-probe.log"
}

main() {
  local src flags stamp want
  tools/deps.sh bench
  src=$(fetch_source)
  flags="$(isa_flags) -DGGML_AMX_INT8=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_BF16=OFF"
  stamp="llama-cpp-python $VERSION; cmake $flags"
  want=$dir/bin/llama-bench
  if [ -x "$want" ] && [ -x "$dir/bin/llama-server" ] && grep -qxF "flags: $stamp" \
    "$dir/build-info.txt" 2>/dev/null; then
    say "cached: $dir/bin (llama-bench, llama-server)"
  else
    say "building llama-bench and llama-server ($stamp), logs in $dir/cmake.*.log"
    configure_and_build "$src" "$dir/cmake" "$flags" llama-bench llama-server
    rm -rf "$dir/bin"
    ln -s cmake/bin "$dir/bin"
    {
      echo "flags: $stamp"
      echo "commit: $(sed -n 's/.*ggml commit: *//p' "$dir/cmake.configure.log" | head -1)"
    } >"$dir/build-info.txt"
  fi
  local model=${LLAMACPP_PROBE_MODEL:-$BUILD/bench/phi3-mini-synthetic-q4_0-v3.gguf}
  if [ "$amx" != off ] && has_flag amx_int8 && [ ! -f "$model" ]; then
    say "AMX probe needs a model ($model, written by make bench): not probed this time"
  elif [ "$amx" != off ] && has_flag amx_int8 && ! grep -q '^amx:' "$dir/build-info.txt"; then
    # Only ggml's CPU library differs: built alone with AMX, and loaded by the same llama-bench
    # through LD_LIBRARY_PATH (its RUNPATH gives way to it).
    say "building ggml-cpu with AMX for a probe (logs in $dir/cmake-amx.*.log)"
    if configure_and_build "$src" "$dir/cmake-amx" \
      "$(isa_flags) -DGGML_AMX_TILE=ON -DGGML_AMX_INT8=ON -DGGML_AMX_BF16=ON" ggml-cpu \
      && LD_LIBRARY_PATH=$dir/cmake-amx/bin probe_amx "$dir/bin/llama-bench" "$model"; then
      echo "amx: works (probe passed): LD_LIBRARY_PATH=$dir/cmake-amx/bin" >>"$dir/build-info.txt"
    else
      echo "amx: off (the probe run failed: $(tail -1 "$dir/amx-probe.log" 2>/dev/null || true))" \
        >>"$dir/build-info.txt"
    fi
  fi
  cat "$dir/build-info.txt" >&2
  echo "$dir/bin"
}

main
