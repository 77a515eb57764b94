#!/usr/bin/env bash
# summary.sh: sourced by tests/run_all.sh and the stage scripts; reads the closing line every test
# runner and stage prints, "N passed, N failed[, N skipped]".

# summary_counts FILE: prints "PASSED FAILED SKIPPED" of FILE's last closing line (SKIPPED 0 when
# the line has none); returns 1, printing nothing, when FILE has no closing line.
summary_counts() {
  local line
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$1" | tail -n 1)
  [ -n "$line" ] || return 1
  echo "$line" | sed -E 's/^([0-9]+) passed, ([0-9]+) failed(, ([0-9]+) skipped)?.*/\1 \2 \4/' |
    awk '{ print $1, $2, ($3 == "" ? 0 : $3) }'
}

# add_summary FILE [WHAT]: adds FILE's closing line to the caller's pass, fail and skip counters; a
# FILE without one counts as a failure of WHAT (a stage script's runner).
add_summary() {
  local p f s
  if ! read -r p f s < <(summary_counts "$1"); then
    echo "FAIL  ${2:-runner} ended without a summary line"
    fail=$((fail + 1))
    return
  fi
  pass=$((pass + p)) fail=$((fail + f)) skip=$((skip + s))
}
