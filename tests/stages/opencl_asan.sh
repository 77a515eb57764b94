#!/usr/bin/env bash
# opencl_asan.sh: the OpenCL backend's host code under ASan+UBSan (tests/test_opencl*.c: every op,
# the error paths, end to end; the conformance suite would take minutes here). The sanitizer pass
# of the unit tests leaves OpenCL alone (Intel's ICD dlopens with RTLD_DEEPBIND, which ASan
# refuses, and PoCL leaks by design), so this stage opts in with PoCL's ICD only and leak checking
# off. Ends with "N passed, N failed, N skipped".
set -uo pipefail
: "${BUILD:=build}"
icd=/etc/OpenCL/vendors/pocl.icd
if [ ! -e "$icd" ] || [ ! -x "$BUILD/asan/phi3c-tests" ]; then
  echo "skip: needs $icd (pocl-opencl-icd) and $BUILD/asan/phi3c-tests"
  echo "0 passed, 0 failed, 1 skipped"
  exit 0
fi
. tests/summary.sh
pass=0 fail=0 skip=0
for filter in opencl; do
  out=$(PHI3C_OPENCL_SANITIZE=1 OCL_ICD_VENDORS=$icd ASAN_OPTIONS=detect_leaks=0 \
    UBSAN_OPTIONS=print_stacktrace=1 PHI3C_BIN="$BUILD/asan/phi3c" \
    "$BUILD/asan/phi3c-tests" "$filter" 2>&1)
  rc=$?
  echo "$out"
  if ! read -r p f s < <(summary_counts <(echo "$out")); then
    echo "FAIL  $filter tests under ASan ended without a summary (exit $rc)"
    fail=$((fail + 1))
    continue
  fi
  pass=$((pass + p)) fail=$((fail + f)) skip=$((skip + s))
  [ "$rc" -eq 0 ] || [ "$f" -gt 0 ] || fail=$((fail + 1))
done
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
