#!/usr/bin/env bash
# npu.sh: proof of the NPU graphs without an NPU. tools/npu_emit writes the OpenVINO IR phi3c
# feeds the NPU for every Phi-3-mini matmul shape at reduced size (weights as graph inputs and as
# constants; f32 and f16 activations; i4 and u4), with inputs and phi3c's scalar w4a32 reference
# output; tools/npu_check.py runs each graph on OpenVINO's CPU runtime (PyPI openvino, in the test
# venv, $VENV) and compares. Ends with "N passed, N failed".
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
"$VENV/bin/python" tools/npu_check.py "$out"
