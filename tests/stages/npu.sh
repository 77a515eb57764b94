#!/usr/bin/env bash
# npu.sh: proof of the NPU graphs without an NPU. tools/npu_emit writes the OpenVINO IR phi3c
# feeds the NPU for every Phi-3-mini matmul shape at reduced size (weights as graph inputs and as
# constants; f32 and f16 activations; i4 and u4), with inputs and phi3c's scalar w4a32 reference
# output; tools/npu_check.py runs each graph on OpenVINO's CPU runtime (PyPI openvino, in the test
# venv, $VENV) and compares. Then the NPU unit tests (IR bytes, NGRAPH_LITE, the probe's clear
# errors) run with the test-only Level Zero driver of tests/l0driver/ named in
# ZE_ENABLE_ALT_DRIVERS, release and ASan builds, and the npu_mock tests run the backend's host
# code against that driver's mock graph extension (tests/l0driver/l0graph.c). Ends with "N passed, N failed[, N skipped]".
set -uo pipefail
: "${BUILD:=build}" "${MAKE:=make}" "${VENV:=$BUILD/venv}"

if ! "$MAKE" --no-print-directory "$BUILD/tools/npu_emit" >/dev/null; then
  echo "0 passed, 1 failed (could not build tools/npu_emit)"
  exit 1
fi
if ! "$MAKE" --no-print-directory venv VENV="$VENV"; then
  echo "0 passed, 1 failed (could not create the test venv with openvino in $VENV)"
  exit 1
fi
out=$BUILD/npu-graphs
rm -rf "$out"
if ! "$BUILD/tools/npu_emit" "$out"; then
  echo "0 passed, 1 failed (npu_emit could not write the graphs)"
  exit 1
fi
pass=0 fail=0 skip=0
. tests/summary.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT

echo "--- tools/npu_check.py (OpenVINO CPU runtime)"
"$VENV/bin/python" tools/npu_check.py "$out" 2>&1 | tee "$log"
add_summary "$log" npu_check.py

if "$MAKE" --no-print-directory "$BUILD/libp3_l0_test_driver.so" "$BUILD/phi3c-tests" \
     "$BUILD/phi3c" "$BUILD/asan/phi3c-tests" "$BUILD/asan/phi3c" >/dev/null; then
  ZE_ENABLE_ALT_DRIVERS=$(cd "$BUILD" && pwd)/libp3_l0_test_driver.so
  export ZE_ENABLE_ALT_DRIVERS
  [ -e /etc/OpenCL/vendors/pocl.icd ] && export OCL_ICD_VENDORS=/etc/OpenCL/vendors/pocl.icd
  echo "--- $BUILD/phi3c-tests npu (ZE_ENABLE_ALT_DRIVERS=test driver)"
  PHI3C_BIN=$BUILD/phi3c "$BUILD/phi3c-tests" npu 2>&1 | tee "$log"
  add_summary "$log" "phi3c-tests npu"
  echo "--- $BUILD/phi3c-tests npu_mock (P3_L0DRV_GRAPH_EXT=1: the test driver's mock graph extension)"
  P3_L0DRV_GRAPH_EXT=1 PHI3C_BIN=$BUILD/phi3c "$BUILD/phi3c-tests" npu_mock 2>&1 | tee "$log"
  add_summary "$log" "phi3c-tests npu_mock"
  echo "--- $BUILD/asan/phi3c-tests npu_mock"
  P3_L0DRV_GRAPH_EXT=1 PHI3C_BIN=$BUILD/asan/phi3c PHI3C_TEST_FAST=1 ASAN_OPTIONS=detect_leaks=1 \
    "$BUILD/asan/phi3c-tests" npu_mock 2>&1 | tee "$log"
  add_summary "$log" "asan phi3c-tests npu_mock"
  echo "--- $BUILD/asan/phi3c-tests npu"
  PHI3C_BIN=$BUILD/asan/phi3c PHI3C_TEST_FAST=1 ASAN_OPTIONS=detect_leaks=1 \
    "$BUILD/asan/phi3c-tests" npu 2>&1 | tee "$log"
  add_summary "$log" "asan phi3c-tests npu"
else
  echo "FAIL  could not build the test driver or the test runners"
  fail=$((fail + 1))
fi
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
