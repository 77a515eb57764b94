#!/usr/bin/env bash
# run.sh BINDIR SECONDS [KEEP_DIR]: runs every libFuzzer target for SECONDS on its seed corpus
# (tests/fuzz/corpus/<target>/, copied so the committed corpus is never modified) and reports
# each target as one test; prints the executions each target ran. Inputs may grow to 1 MB. Any
# ASan or UBSan finding stops the target and fails it (the fuzz build does not recover from UBSan
# reports, and halt_on_error is set for both). With KEEP_DIR (`make fuzz-long`), each target's
# corpus lives on in KEEP_DIR/<target>/ between runs and crashing inputs are saved there.
# FUZZ_QUICK="target ..." with FUZZ_QUICK_SECONDS=N runs those targets for at most N seconds
# (`make fuzz-smoke` keeps the targets whose inputs are small, the CLI arguments and the chat
# messages, short there).
set -uo pipefail
bindir=$1 seconds=$2 keep=${3:-}
quick=" ${FUZZ_QUICK:-} " quick_seconds=${FUZZ_QUICK_SECONDS:-$2}
export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
pass=0 fail=0
for bin in "$bindir"/fuzz_*; do
  [ -x "$bin" ] || continue
  name=$(basename "$bin")
  secs=$seconds
  [[ "$quick" == *" $name "* && "$quick_seconds" -lt "$seconds" ]] && secs=$quick_seconds
  if [ -n "$keep" ]; then
    work=$keep/$name
    mkdir -p "$work"
  else
    work=$(mktemp -d)
  fi
  [ -d "tests/fuzz/corpus/$name" ] && cp -r "tests/fuzz/corpus/$name/." "$work/"
  log=$(mktemp)
  artifacts=$(mktemp -d)
  [ -n "$keep" ] && artifacts=$work.crashes && mkdir -p "$artifacts"
  if "$bin" -max_total_time="$secs" -max_len=1048576 -rss_limit_mb=2048 -timeout=10 \
       -print_final_stats=1 -artifact_prefix="$artifacts/" "$work" >"$log" 2>&1; then
    execs=$(grep -E 'stat::number_of_executed_units' "$log" | awk '{print $2}')
    echo "PASS $name ($execs execs in ${secs}s)"
    pass=$((pass + 1))
  else
    echo "FAIL $name"; tail -n 40 "$log"
    fail=$((fail + 1))
  fi
  [ -n "$keep" ] || rm -rf "$work" "$artifacts"
  rm -f "$log"
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
