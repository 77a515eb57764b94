#!/usr/bin/env bash
# server.sh: `phi3c serve` end to end, on the ASan+UBSan build: tools/test_server.py (pytest, the
# official openai client, every server on a free loopback port, stopped by a signal with exit 0
# and a clean sanitizer log), then the chat page in headless Chromium over the DevTools protocol
# (a typed message, a streamed answer; screenshot in build/server-chat.png). About 2-3 minutes.
set -uo pipefail
: "${BUILD:=build}" "${MAKE:=make}" "${VENV:=$BUILD/venv}"
. tests/summary.sh
pass=0 fail=0 skip=0
log_dir=$BUILD/test-logs
mkdir -p "$log_dir"

if ! "$MAKE" --no-print-directory venv VENV="$VENV" >/dev/null; then
  echo "0 passed, 1 failed (could not create the test venv in $VENV)"
  exit 1
fi
bin=$BUILD/asan/phi3c
"$MAKE" --no-print-directory "$bin" >/dev/null || { echo "0 passed, 1 failed (build $bin)"; exit 1; }
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1

# pytest's closing line ("N passed, M failed in Xs") is added into this stage's
PHI3C_BIN=$bin PHI3C_SERVER_LOGS=$log_dir timeout 900 "$VENV/bin/python" -m pytest -q -p no:cacheprovider \
  tools/test_server.py 2>&1 | tee "$log_dir/server-pytest.log"
line=$(grep -E '[0-9]+ (passed|failed)' "$log_dir/server-pytest.log" | tail -n 1)
p=0 f=0
for n in $(echo "$line" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+'); do p=$((p + n)); done
for n in $(echo "$line" | grep -oE '[0-9]+ (failed|errors?)' | grep -oE '[0-9]+'); do f=$((f + n)); done
[ -n "$line" ] || f=1
pass=$((pass + p)) fail=$((fail + f))

# the chat page in headless Chromium against a server of its own
port=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" serve -m tools/demo-model --port "$port" -t 2 >"$log_dir/server-page.log" 2>&1 &
pid=$!
"$VENV/bin/python" - "$port" <<'PY'
import sys, time, urllib.request
for _ in range(600):  # 60 s at most
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/health", timeout=2)
        break
    except OSError:
        time.sleep(0.1)
PY
if timeout 120 "$VENV/bin/python" tools/server_page_check.py "$port" "$BUILD/server-chat.png"; then
  pass=$((pass + 1))
else
  fail=$((fail + 1))
fi
kill -TERM "$pid"
rc=0
for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
wait "$pid" || rc=$?
if [ "$rc" -eq 0 ] && ! grep -qE 'AddressSanitizer|LeakSanitizer|runtime error' "$log_dir/server-page.log"; then
  echo "PASS chat page server stopped by SIGTERM with exit 0, sanitizers quiet"
  pass=$((pass + 1))
else
  echo "FAIL chat page server: exit $rc"; tail -30 "$log_dir/server-page.log"
  fail=$((fail + 1))
fi
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
