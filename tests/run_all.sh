#!/usr/bin/env bash
# run_all.sh: the whole suite behind `make test`: unit tests (release build), the same tests under
# ASan+UBSan, each extra stage a folder adds (tests/stages/*.sh), and bounded fuzz runs. Prints
# every stage's summary and ends with the total line "N passed, N failed, N skipped".
set -uo pipefail
: "${SHARED:=../shared}" "${BUILD:=build}" "${FUZZ_SECONDS:=60}" "${MAKE:=make}"
export PHI3C_SHARED=$SHARED
export PHI3C_PHI4_TOKENIZER=${PHI3C_PHI4_TOKENIZER:-$BUILD/phi4-tokenizer}  # make phi4-tokenizer
. tests/summary.sh

total_pass=0 total_fail=0 total_skip=0
log_dir=$BUILD/test-logs
mkdir -p "$log_dir"

# Runs one stage command, shows its output, and adds its closing line to the totals; a stage that
# exits non-zero without a closing line counts as one failure.
stage() {
  local name=$1; shift
  echo "=== $name"
  "$@" 2>&1 | tee "$log_dir/$name.log"
  local rc=${PIPESTATUS[0]}
  local p f s
  if read -r p f s < <(summary_counts "$log_dir/$name.log"); then
    total_pass=$((total_pass + p)); total_fail=$((total_fail + f)); total_skip=$((total_skip + s))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then total_fail=$((total_fail + 1)); fi
  elif [ "$rc" -ne 0 ]; then
    echo "stage $name failed (exit $rc) without a summary line"
    total_fail=$((total_fail + 1))
  fi
}

stage unit env PHI3C_BIN="$BUILD/phi3c" "$BUILD/phi3c-tests"
stage asan env PHI3C_BIN="$BUILD/asan/phi3c" PHI3C_TEST_FAST=1 \
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 "$BUILD/asan/phi3c-tests"
for s in tests/stages/*.sh; do
  [ -e "$s" ] || continue
  stage "$(basename "$s" .sh)" bash "$s"
done
if ls tests/fuzz/fuzz_*.c >/dev/null 2>&1; then
  stage fuzz "$MAKE" --no-print-directory fuzz-smoke FUZZ_SECONDS="$FUZZ_SECONDS"
fi

echo "=== total"
echo "total: $total_pass passed, $total_fail failed, $total_skip skipped"
[ "$total_fail" -eq 0 ]
