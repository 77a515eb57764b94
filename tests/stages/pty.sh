#!/usr/bin/env bash
# pty.sh: the interactive side of the CLI driven in a pseudo-terminal as a person sees it:
# `phi3c chat` (tools/chat_pty_check.py: banner, /help, libedit line editing and history, """
# multi-line input, /reset, /save, /load, the default answer limit, Ctrl-C and Ctrl-D) and the
# progress bars of quantize and model loading (tools/progress_pty_check.py: on a terminal only,
# the quantize summary either way). About 10 s with the demo model.
# Ends with "N passed, N failed, N skipped".
set -uo pipefail
: "${BUILD:=build}" "${MAKE:=make}"
if ! "$MAKE" --no-print-directory "$BUILD/phi3c" >/dev/null; then
  echo "0 passed, 1 failed (could not build $BUILD/phi3c)"
  exit 1
fi
pass=0 fail=0 skip=0
. tests/summary.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
python3 tools/chat_pty_check.py --bin "$BUILD/phi3c" --model tools/demo-model \
  --transcript "$BUILD/chat_pty_transcript.txt" | tee "$log"
add_summary "$log"
python3 tools/progress_pty_check.py --bin "$BUILD/phi3c" --model tools/demo-model | tee "$log"
add_summary "$log"
echo "$pass passed, $fail failed, 0 skipped"
[ "$fail" -eq 0 ]
