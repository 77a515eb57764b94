#!/usr/bin/env bash
# run.sh BINDIR SECONDS: runs every libFuzzer target for SECONDS on its seed corpus
# (tests/fuzz/corpus/<target>/, copied so the committed corpus is never modified) and reports
# each target as one test; prints the executions each target ran.
set -uo pipefail
bindir=$1 seconds=$2
pass=0 fail=0
for bin in "$bindir"/fuzz_*; do
  [ -x "$bin" ] || continue
  name=$(basename "$bin")
  work=$(mktemp -d)
  [ -d "tests/fuzz/corpus/$name" ] && cp -r "tests/fuzz/corpus/$name/." "$work/"
  log=$(mktemp)
  if "$bin" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
       "$work" >"$log" 2>&1; then
    execs=$(grep -E 'stat::number_of_executed_units' "$log" | awk '{print $2}')
    echo "PASS $name ($execs execs in ${seconds}s)"
    pass=$((pass + 1))
  else
    echo "FAIL $name"; tail -n 40 "$log"
    fail=$((fail + 1))
  fi
  rm -rf "$work" "$log"
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
