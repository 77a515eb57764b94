#!/usr/bin/env bash
# format.sh: `make format-check` as a test stage: every tracked C file is clang-format 14 clean.
set -uo pipefail
if make --no-print-directory format-check >/dev/null 2>&1; then
  echo "PASS format-check"; echo "1 passed, 0 failed"
else
  make --no-print-directory format-check 2>&1 | head -20
  echo "FAIL format-check"; echo "0 passed, 1 failed"; exit 1
fi
