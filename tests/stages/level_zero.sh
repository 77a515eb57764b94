#!/usr/bin/env bash
# level_zero.sh: the Level Zero GPU backend through the stock loader and the test-only driver of
# tests/l0driver/ (which runs the backend's real SPIR-V kernels, the OpenCL backend's .cl files
# compiled offline, on PoCL): builds the driver, points
# the loader at it with ZE_ENABLE_ALT_DRIVERS, turns the loader's validation layer on when it is
# installed, then runs the level_zero tests (release and ASan builds: probe errors, ops, the
# end-to-end fixtures), the conformance suite on this backend, and `phi3c run` against the CPU.
# Ends with "N passed, N failed, N skipped".
set -uo pipefail
: "${BUILD:=build}" "${MAKE:=make}"

pass=0 fail=0 skip=0
. tests/summary.sh

if ! "$MAKE" --no-print-directory "$BUILD/libp3_l0_test_driver.so" "$BUILD/phi3c-tests" \
     "$BUILD/asan/phi3c-tests" "$BUILD/phi3c"; then
  echo "0 passed, 1 failed (could not build the test driver or the test runners)"
  exit 1
fi
ZE_ENABLE_ALT_DRIVERS=$(cd "$(dirname "$BUILD/libp3_l0_test_driver.so")" && pwd)/libp3_l0_test_driver.so
export ZE_ENABLE_ALT_DRIVERS
# The driver runs kernels on PoCL; keeping other OpenCL ICDs out (Intel's needs a GPU, and dlopens
# with RTLD_DEEPBIND, which ASan refuses) makes the run the same on every machine.
[ -e /etc/OpenCL/vendors/pocl.icd ] && export OCL_ICD_VENDORS=/etc/OpenCL/vendors/pocl.icd
if { ldconfig -p 2>/dev/null || /sbin/ldconfig -p 2>/dev/null; } | grep -q libze_validation_layer.so; then
  export ZE_ENABLE_VALIDATION_LAYER=1 ZE_ENABLE_PARAMETER_VALIDATION=1
  echo "loader validation layer: on"
else
  echo "loader validation layer: not installed"
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT

# The backend must really be available here: a silent skip would hide a broken driver.
probe=$(PHI3C_L0_PROBE_ONLY=1 "$BUILD/phi3c-tests" 2>&1)
echo "probe: $probe"
if echo "$probe" | grep -q '^available=1'; then
  echo "ok    level-zero backend available through the loader and the test driver"
  pass=$((pass + 1))
else
  echo "FAIL  level-zero backend unavailable through the test driver"
  fail=$((fail + 1))
fi

for filter in level_zero conformance; do
  echo "--- $BUILD/phi3c-tests $filter"
  PHI3C_CONF_BACKEND=level-zero PHI3C_CONF_REPORT=1 "$BUILD/phi3c-tests" "$filter" 2>&1 | tee "$log"
  add_summary "$log"
done
# The module variant with the integer-dot packing of w4a8 (the built-in written out), which the
# default portable module does not contain; intel-sg needs Intel sub-groups (spirv.sh gates it).
echo "--- $BUILD/phi3c-tests conformance (variant int-dot-emulated)"
PHI3C_CONF_BACKEND=level-zero PHI3C_CONF_VARIANT=int-dot-emulated PHI3C_CONF_REPORT=1 \
  "$BUILD/phi3c-tests" conformance 2>&1 | tee "$log"
add_summary "$log"
# The CLI with the engine's INT4 defaults (w4a8, f16 KV cache): greedy ids equal the CPU backend's.
if [ -x "$BUILD/phi3c" ] && [ -e tests/fixtures/medium/gen.prompt.ids ]; then
  ids=$(cat tests/fixtures/medium/gen.prompt.ids)
  run() { "$BUILD/phi3c" run -m tests/fixtures/medium/hf-bf16 --prompt-ids "$ids" -n 24 --temp 0 \
            --quant int4-g128 --backend "$1" 2>/dev/null; }
  cpu=$(run cpu)
  for variant in auto int-dot-emulated; do
    gpu=$(PHI3C_L0_VARIANT=$variant run level-zero)
    if [ -n "$gpu" ] && [ "$gpu" = "$cpu" ]; then
      echo "ok    phi3c run --backend level-zero ($variant) --quant int4-g128: same greedy ids as cpu"
      pass=$((pass + 1))
    else
      echo "FAIL  phi3c run --backend level-zero ($variant) --quant int4-g128: '$gpu' vs cpu '$cpu'"
      fail=$((fail + 1))
    fi
  done
fi

echo "--- $BUILD/asan/phi3c-tests level_zero"
PHI3C_TEST_FAST=1 ASAN_OPTIONS=detect_leaks=1 "$BUILD/asan/phi3c-tests" level_zero 2>&1 | tee "$log"
add_summary "$log"

echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
