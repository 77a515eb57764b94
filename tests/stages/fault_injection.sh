#!/usr/bin/env bash
# fault_injection.sh: allocation failure at every allocation of a small `run`, `quantize` and
# `tokenize` (the ASan+UBSan CLI, built with P3_FAULT_INJECTION: PHI3C_TEST_ALLOC_FAIL=N fails the
# N-th library allocation of the main thread), then `run --backend cpu` under shrinking
# `ulimit -v` (the release CLI: ASan cannot run under an address-space limit). GPU drivers are
# kept out (--backend cpu; no OpenCL ICD or Level Zero driver is visible). Every run must end in
# success or a clean error (exit 1, a "phi3c" message, no sanitizer report), never a signal.
# Sampling: a command with more than MAX_SAMPLES allocations is failed at every k-th index
# (k = ceil(N / MAX_SAMPLES)) plus its first 20 and last 20; below that, at every index.
# Prints the counts and ends with "N passed, N failed, N skipped". About 2-3 minutes.
set -uo pipefail
: "${BUILD:=build}" "${MAX_SAMPLES:=150}"
asan=$BUILD/asan/phi3c rel=$BUILD/phi3c
if [ ! -x "$asan" ] || [ ! -x "$rel" ]; then
  echo "skip: needs $asan and $rel"
  echo "0 passed, 0 failed, 1 skipped"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OCL_ICD_VENDORS=$work/no-icd ZE_ENABLE_LOADER_DEBUG_TRACE=0 ZE_AFFINITY_MASK=none
export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

runs=0 clean=0 ok=0 signals=0 bad=0
# judge NAME RC ERRFILE: success, a clean error, or a failure of the stage (printed).
judge() {
  local name=$1 rc=$2 err=$3
  runs=$((runs + 1))
  if [ "$rc" -gt 128 ]; then
    signals=$((signals + 1))
    echo "FAIL  $name: signal $((rc - 128))"; tail -n 20 "$err"; return
  fi
  if grep -qE 'Sanitizer|runtime error' "$err"; then
    bad=$((bad + 1))
    echo "FAIL  $name: sanitizer report (exit $rc)"; grep -m 20 -E 'ERROR|SUMMARY|runtime error|#[0-9] ' "$err"; return
  fi
  if [ "$rc" -eq 0 ]; then ok=$((ok + 1)); return; fi
  if [ "$rc" -eq 1 ] && grep -q '^phi3c' "$err"; then clean=$((clean + 1)); return; fi
  bad=$((bad + 1))
  echo "FAIL  $name: exit $rc without a clean message"; tail -n 5 "$err"
}

# inject NAME CMD...: counts the command's allocations, then fails each sampled one in turn.
inject() {
  local name=$1; shift
  local total
  total=$(PHI3C_TEST_ALLOC_COUNT=1 "$@" 2>&1 >/dev/null | sed -n 's/^phi3c: \([0-9]*\) allocations$/\1/p')
  if [ -z "$total" ]; then
    bad=$((bad + 1)); echo "FAIL  $name: the run without injected failures failed"; return
  fi
  local step=$(((total + MAX_SAMPLES - 1) / MAX_SAMPLES)) tried=0
  for ((i = 0; i < total; i++)); do
    if [ "$step" -gt 1 ] && [ "$i" -ge 20 ] && [ "$i" -lt $((total - 20)) ] && ((i % step)); then
      continue
    fi
    rm -f "$work/q.phi3c"
    PHI3C_TEST_ALLOC_FAIL=$i "$@" >/dev/null 2>"$work/err"
    judge "$name (allocation $i of $total)" $? "$work/err"
    tried=$((tried + 1))
  done
  echo "      $name: $total allocations, $tried failed in turn"
}

inject "run" "$asan" run -m tools/demo-model --backend cpu -t 1 -p "And God said" -n 2 --seed 1
inject "tokenize" "$asan" tokenize -m tools/demo-model "Hello, world"
inject "quantize" "$asan" quantize -m tests/fixtures/mini4k/hf-bf16 -o "$work/q.phi3c" -t 1 --method rtn

# Address-space limits from too small to load the process up to enough for the demo model.
for kb in 16384 30720 65536 131072 262144 524288 1048576; do
  (ulimit -v "$kb"; exec "$rel" run -m tools/demo-model --backend cpu -t 1 -p "And God said" -n 2 --seed 1) \
    >/dev/null 2>"$work/err"
  rc=$?
  # a process that cannot even start under the limit is refused by the loader (exit 127), fine
  if [ "$rc" -eq 127 ]; then rc=1; echo "phi3c: cannot start" >>"$work/err"; fi
  judge "run under ulimit -v $kb" $rc "$work/err"
  echo "      ulimit -v $kb: exit $rc: $(head -n 1 "$work/err")"
done

echo "fault injection: $runs runs, $ok succeeded, $clean clean errors, $signals signals, $bad bad"
pass=$((runs - signals - bad)) fail=$((signals + bad))
echo "$pass passed, $fail failed, 0 skipped"
[ "$fail" -eq 0 ]
