#!/usr/bin/env python3
"""chat_pty_check.py: drives `phi3c chat` in a pseudo-terminal as a person would (issue 14) and
checks each interactive behaviour: the one-line banner, /help answered by phi3c (not the model),
line editing (left arrow + insert) and history (up arrow) through libedit, a multi-line message
between two \"\"\", /reset, /save and /load, the default answer limit (the context's free space,
at most 1024), Ctrl-C at the prompt, and the newline printed on Ctrl-D. What the model was sent
is read back from /save files, not from phi3c's echo. Standard library only.

usage: chat_pty_check.py --bin build/phi3c --model tools/demo-model [--transcript FILE]
Prints "ok/FAIL <check>" lines and ends with "N passed, N failed, N skipped"."""
import argparse
import json
import os
import pty
import re
import select
import sys
import tempfile
import time

TIMEOUT = 60.0  # seconds for any one expected output (the machine may be shared and slow)


class Chat:
    """One `phi3c chat` process on a pty; everything it wrote is kept in self.log."""

    def __init__(self, argv):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.environ["TERM"] = "xterm"
            os.execv(argv[0], argv)
        self.log = b""

    def send(self, data):
        os.write(self.fd, data)

    def read_until(self, pattern, start):
        """Reads until `pattern` (a regex on bytes) matches the output after offset `start`."""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            m = re.search(pattern, self.log[start:])
            if m:
                return m
            ready, _, _ = select.select([self.fd], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    break
                self.log += chunk
        return re.search(pattern, self.log[start:])

    def drain(self, seconds):
        """Reads what is there (until EOF or `seconds` without output)."""
        while True:
            ready, _, _ = select.select([self.fd], [], [], seconds)
            if not ready:
                return
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.log += chunk

    def wait(self):
        """The exit code, after reading everything the process wrote before it ended."""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            self.drain(0.1)
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.drain(0.5)
                return os.waitstatus_to_exitcode(status)
        os.kill(self.pid, 9)
        return -1


class Checks:
    def __init__(self):
        self.passed = self.failed = 0

    def check(self, ok, name, detail=""):
        if ok:
            self.passed += 1
            print(f"ok    {name}")
        else:
            self.failed += 1
            print(f"FAIL  {name}" + (f": {detail}" if detail else ""))
        return ok


PROMPT = rb">>> $"


def saved(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)["messages"]
    except (OSError, ValueError, KeyError) as e:
        return f"unreadable: {e}"


def turn_stats(text):
    """(prefilled, cache, generated) of every `[turn N: ...]` line."""
    return [
        tuple(int(x) for x in m)
        for m in re.findall(
            rb"\[turn \d+: prefilled (\d+) tokens in [0-9.]+ s, cache (\d+)/\d+ \| generated (\d+)",
            text,
        )
    ]


def main():
    global TIMEOUT
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--transcript")
    ap.add_argument("--timeout", type=float, default=TIMEOUT, help="seconds per expected output")
    args = ap.parse_args()
    TIMEOUT = args.timeout
    tmp = tempfile.mkdtemp(prefix="phi3c-chat-pty-")
    c = Checks()
    # the default answer limit, in a chat of its own: the demo model never stops on its own, so
    # its first answer runs to min(free context after the prompt, 1024) and fills the context
    chat = Chat([args.bin, "chat", "-m", args.model, "--greedy", "-t", "2"])
    chat.read_until(PROMPT, 0)
    at = len(chat.log)
    chat.send(b"In the beginning\r")
    chat.read_until(rb"\[turn 1:[^\]]*\]", at)
    chat.read_until(PROMPT, at)
    first_turn = chat.log[at:]
    stats = turn_stats(first_turn)
    lim = re.search(rb"limit of (\d+) tokens", first_turn)
    n_ctx = re.search(rb"context (\d+) of", chat.log)
    if stats and lim and n_ctx:
        prefilled, cache, generated = stats[0]
        want = min(int(n_ctx.group(1)) - prefilled, 1024)
        c.check(
            generated == want and int(lim.group(1)) == want,
            "default answer limit: the context's free space, at most 1024",
            f"prefilled {prefilled}, generated {generated}, limit {lim.group(1)}, want {want}",
        )
    else:
        c.check(False, "default answer limit", first_turn.decode(errors="replace")[-400:])
    chat.send(b"/exit\r")
    c.check(chat.wait() == 0, "/exit quits with exit 0")
    first_log = chat.log

    chat = Chat([args.bin, "chat", "-m", args.model, "--greedy", "-t", "2", "-n", "8"])

    m = chat.read_until(PROMPT, 0)
    head = chat.log.split(b">>> ")[0].decode(errors="replace")
    # lines as the terminal shows them: the loading bar redraws itself with \r and erases with \x1b[K
    shown = re.split(r"[\r\n]+", head.replace("\x1b[K", ""))
    banner = [l for l in shown if l.startswith("phi3c chat:")]
    c.check(
        m is not None and len(banner) == 1 and "/help" in banner[0] and "/exit" in banner[0]
        and "context" in banner[0] and args.model in banner[0],
        "one-line banner: model, context, /help, how to quit",
        head,
    )

    at = len(chat.log)
    chat.send(b"/help\r")
    chat.read_until(PROMPT, at)
    out = chat.log[at:]
    c.check(
        b"/save FILE" in out and b"/load FILE" in out and b"/reset" in out and b"[turn" not in out,
        "/help lists the commands and is not sent to the model",
        out.decode(errors="replace"),
    )

    # line editing: "In the beginnin", left arrow twice, insert "X": "In the beginnXin"
    at = len(chat.log)
    chat.send(b"In the beginnin\x1b[D\x1b[DX\r")
    chat.read_until(rb"\[turn 1:[^\]]*\]", at)
    chat.read_until(PROMPT, at)

    at = len(chat.log)
    chat.send(b"/reset\r")
    chat.read_until(PROMPT, at)
    c.check(b"[new conversation]" in chat.log[at:], "/reset starts a new conversation")

    # history: up arrow recalls the edited line ("/reset" is the last entry, so up twice)
    at = len(chat.log)
    chat.send(b"\x1b[A\x1b[A\r")
    chat.read_until(rb"\[turn 1:[^\]]*\]", at)
    chat.read_until(PROMPT, at)

    at = len(chat.log)
    chat.send(b'"""\r' + b"And God said\r" + b"let there be light\r" + b'"""\r')
    chat.read_until(rb"\[turn 2:[^\]]*\]", at)
    chat.read_until(PROMPT, at)
    c.check(b"... " in chat.log[at:], "multi-line input shows a continuation prompt")

    save1 = os.path.join(tmp, "chat.json")
    at = len(chat.log)
    chat.send(f"/save {save1}\r".encode())
    chat.read_until(PROMPT, at)
    msgs = saved(save1)
    users = [x["content"] for x in msgs if x["role"] == "user"] if isinstance(msgs, list) else []
    c.check(users[:1] == ["In the beginnXin"], "arrow keys edit the line (libedit)", repr(msgs)[:300])
    c.check(len(users) >= 1 and b"\x1b[" not in json.dumps(users).encode(), "no escape codes reach the model")
    c.check(
        users == ["In the beginnXin", "And God said\nlet there be light"],
        'up arrow recalls history; """ ... """ is one message with its newline; /reset forgot turn 1'
        " (the saved conversation holds the two messages after it)",
        repr(users),
    )

    # Ctrl-C at the prompt: a hint, and the chat goes on
    at = len(chat.log)
    chat.send(b"half a line\x03")
    m = chat.read_until(rb"Ctrl-D or /exit quits\)\r?\n>>> $", at)
    c.check(m is not None, "Ctrl-C at the prompt prints a hint and a new prompt", chat.log[at:].decode(errors="replace"))

    # /load: the conversation comes back (the next /save shows it)
    at = len(chat.log)
    chat.send(b"/reset\r")
    chat.read_until(PROMPT, at)
    at = len(chat.log)
    chat.send(f"/load {save1}\r".encode())
    chat.read_until(PROMPT, at)
    save2 = os.path.join(tmp, "again.json")
    at = len(chat.log)
    chat.send(f"/save {save2}\r".encode())
    chat.read_until(PROMPT, at)
    c.check(saved(save2) == msgs and b"[loaded 4 messages" in chat.log, "/load restores what /save wrote", repr(saved(save2))[:200])

    at = len(chat.log)
    chat.send(b"\x04")
    code = chat.wait()
    tail = chat.log[at:]
    c.check(
        code == 0 and re.fullmatch(rb"(\^D)?\r\n", tail) is not None,
        "Ctrl-D quits with exit 0 and a newline (the shell prompt starts a line of its own)",
        f"exit {code}, {tail!r}",
    )

    if args.transcript:
        with open(args.transcript, "wb") as f:
            f.write(first_log + b"\n" + chat.log)
    print(f"{c.passed} passed, {c.failed} failed, 0 skipped")
    return 0 if c.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
