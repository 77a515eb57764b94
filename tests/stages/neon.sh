#!/usr/bin/env bash
# neon.sh: the CPU backend's NEON (+dotprod) level: cross-compiles the conformance runner for
# aarch64 into $BUILD/aarch64/ and runs it under qemu-aarch64 (scalar and neon levels, 1-3 threads).
# Prints the runner's closing "N passed, N failed, N skipped" line; skips when the cross compiler
# or qemu is missing (tools/deps.sh installs gcc-aarch64-linux-gnu and qemu-user).
set -uo pipefail
: "${BUILD:=build}" "${MAKE:=make}"
CROSS_CC=${CROSS_CC:-aarch64-linux-gnu-gcc}
SYSROOT=${AARCH64_SYSROOT:-/usr/aarch64-linux-gnu}

if ! command -v "$CROSS_CC" >/dev/null || ! command -v qemu-aarch64 >/dev/null; then
  echo "SKIP neon: needs $CROSS_CC and qemu-aarch64 (apt: gcc-aarch64-linux-gnu qemu-user)"
  echo "0 passed, 0 failed, 1 skipped"
  exit 0
fi

out=$BUILD/aarch64
mkdir -p "$out"
if ! "$MAKE" --no-print-directory -j2 CC="$CROSS_CC" ARCH=aarch64 BUILD="$out" \
     "$out/phi3c-conformance" >"$out.build.log" 2>&1; then
  tail -n 30 "$out.build.log"
  echo "0 passed, 1 failed (aarch64 cross build failed, log in $out.build.log)"
  exit 1
fi
# qemu's default CPU model ("max") has the dot-product extension, so the neon level runs.
PHI3C_CONF_REPORT=1 qemu-aarch64 -L "$SYSROOT" "$out/phi3c-conformance" conformance
