#!/usr/bin/env bash
# chat_pty.sh: `phi3c chat` driven in a pseudo-terminal as a person types (tools/chat_pty_check.py):
# banner, /help, libedit line editing and history, """ multi-line input, /reset, /save, /load, the
# default answer limit, Ctrl-C at the prompt and Ctrl-D. About 10 s with the demo model.
# Ends with "N passed, N failed, N skipped".
set -uo pipefail
: "${BUILD:=build}" "${MAKE:=make}"
if ! "$MAKE" --no-print-directory "$BUILD/phi3c" >/dev/null; then
  echo "0 passed, 1 failed (could not build $BUILD/phi3c)"
  exit 1
fi
python3 tools/chat_pty_check.py --bin "$BUILD/phi3c" --model tools/demo-model \
  --transcript "$BUILD/chat_pty_transcript.txt"
