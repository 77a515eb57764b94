#!/usr/bin/env python3
"""progress_pty_check.py: the progress bars of `phi3c quantize` and of model loading (issue 14):
drawn on stderr when it is a terminal (run here in a pseudo-terminal), absent when stderr is a
pipe; `quantize` ends with its summary line either way. Standard library only.

usage: progress_pty_check.py --bin build/phi3c --model tools/demo-model
Prints "ok/FAIL <check>" lines and ends with "N passed, N failed, N skipped"."""
import argparse
import os
import pty
import subprocess
import sys
import tempfile

passed = failed = 0


def check(ok, name, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok    {name}")
    else:
        failed += 1
        print(f"FAIL  {name}" + (f": {detail[-600:]!r}" if detail else ""))


def in_pty(argv):
    """Output (stdout and stderr, both the terminal) and exit code of argv run in a pty."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(argv[0], argv)
    out = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    _, status = os.waitpid(pid, 0)
    return out, os.waitstatus_to_exitcode(status)


def piped(argv):
    p = subprocess.run(argv, capture_output=True, timeout=600)
    return p.stderr, p.returncode


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--model", required=True)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="phi3c-progress-")
    out = os.path.join(tmp, "m.phi3c")
    q = [args.bin, "quantize", "-m", args.model, "-o", out, "--force", "--method", "rtn"]

    text, code = in_pty(q)
    check(code == 0 and b"quantize [" in text and b"] 100%" in text and b"\r" in text,
          "quantize draws a bar on a terminal, ending at 100%", text.decode(errors="replace"))
    check(b"quantize: wrote " in text and b"bits per INT4 weight" in text and b"NMSE" in text,
          "quantize ends with its summary", text.decode(errors="replace"))
    err, code = piped(q)
    check(code == 0 and b"[#" not in err and b"[." not in err and b"\r" not in err,
          "no bar when stderr is a pipe", err.decode(errors="replace"))
    check(b"quantize: wrote " in err, "the summary also when piped", err.decode(errors="replace"))

    r = [args.bin, "run", "-m", out, "-p", "And God said", "-n", "1", "--greedy"]
    text, code = in_pty(r)
    check(code == 0 and b"loading [" in text and b"weight tensors" in text,
          "loading draws a bar on a terminal", text.decode(errors="replace"))
    check(b"\x1b[K" in text.split(b"loading [")[-1], "the loading bar is erased when done",
          text.decode(errors="replace"))
    err, code = piped(r)
    check(code == 0 and b"loading [" not in err, "no loading bar when stderr is a pipe",
          err.decode(errors="replace"))
    print(f"{passed} passed, {failed} failed, 0 skipped")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
