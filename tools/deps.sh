#!/usr/bin/env bash
# deps.sh build|test|bench: checks the Debian packages phi3c needs and installs the missing ones with
# apt-get when run as root; otherwise prints the exact command and fails.
set -euo pipefail
what=${1:-build}

build_pkgs=(gcc make libc6-dev opencl-headers ocl-icd-opencl-dev libze-dev libxxhash-dev libedit-dev
            pkg-config libmicrohttpd-dev)
# test: clang for libFuzzer, PoCL for the OpenCL backend, Intel's ocloc (intel-opencl-icd) as the
# real-GPU compile gate, clang/llvm-spirv/spirv-tools for SPIR-V, the Level Zero loader, an aarch64
# cross compiler and qemu for the NEON kernels, python3-venv for the test-time Python checks,
# chromium (headless) for the server's chat page check.
test_pkgs=("${build_pkgs[@]}" clang clang-14 llvm-14 libclang-rt-14-dev pocl-opencl-icd clinfo
           intel-opencl-icd llvm-spirv-14 llvm-spirv-15 spirv-tools libze1 gcc-aarch64-linux-gnu
           libc6-dev-arm64-cross qemu-user python3-venv python3-pip clang-format-14
           chromium)
# bench: cmake and a C++ compiler to build llama.cpp's llama-bench/llama-server from the PyPI sdist
# of llama-cpp-python (tools/build_llamacpp.sh), pip to download it.
bench_pkgs=("${build_pkgs[@]}" cmake g++ python3-pip python3-venv)

case "$what" in
  build) pkgs=("${build_pkgs[@]}") ;;
  test) pkgs=("${test_pkgs[@]}") ;;
  bench) pkgs=("${bench_pkgs[@]}") ;;
  *) echo "usage: $0 build|test|bench" >&2; exit 2 ;;
esac

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "phi3c: missing Debian packages: ${missing[*]}" >&2
  echo "install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "phi3c: installing Debian packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -q "${missing[@]}" >/dev/null 2>&1; then
  apt-get update -q >/dev/null
  apt-get install -y -q "${missing[@]}"
fi
