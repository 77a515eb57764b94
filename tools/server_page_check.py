"""server_page_check.py PORT SCREENSHOT: the chat page of a running `phi3c serve` in headless
Chromium, driven over the DevTools protocol: types a message, sends it, waits (bounded) until the
streamed answer is complete in the page, checks it grew chunk by chunk, and saves a screenshot.
Exit 0 when an answer was shown; prints what it saw."""

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import websocket


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Page:
    def __init__(self, ws_url):
        self.ws = websocket.create_connection(ws_url, timeout=30)
        self.next_id = 0

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        for _ in range(10000):  # skip events until our answer
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
        raise RuntimeError(f"{method}: no answer")

    def eval(self, expr):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        return r.get("result", {}).get("value")


def main():
    port, shot = int(sys.argv[1]), sys.argv[2]
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        print("FAIL chat_page (no chromium)")
        return 1
    debug_port = free_port()
    profile = tempfile.mkdtemp(prefix="phi3c-chromium-")
    proc = subprocess.Popen([browser, "--headless=new", "--no-sandbox", "--disable-gpu",
                             "--no-first-run", "--disable-extensions", f"--user-data-dir={profile}",
                             f"--remote-debugging-port={debug_port}", "--remote-allow-origins=*",
                             "--window-size=1000,760", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        targets = None
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{debug_port}/json", timeout=2) as r:
                    targets = [t for t in json.load(r) if t.get("type") == "page"]
                if targets:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        if not targets:
            print("FAIL chat_page (chromium did not start its DevTools endpoint)")
            return 1
        page = Page(targets[0]["webSocketDebuggerUrl"])
        page.call("Page.enable")
        page.call("Page.navigate", url=f"http://127.0.0.1:{port}/")
        for _ in range(100):
            if page.eval("document.readyState") == "complete" and page.eval(
                    "document.getElementById('input') !== null"):
                break
            time.sleep(0.1)
        page.eval("document.getElementById('temp').value = '0'")
        page.eval("document.getElementById('max').value = '48'")
        page.eval("document.getElementById('input').focus()")
        page.call("Input.insertText", text="Tell me a short story about the sea.")
        page.call("Input.dispatchKeyEvent", type="keyDown", key="Enter", code="Enter",
                  windowsVirtualKeyCode=13, text="\r")
        page.call("Input.dispatchKeyEvent", type="keyUp", key="Enter", code="Enter",
                  windowsVirtualKeyCode=13)
        lengths = []
        answer, done = "", False
        for _ in range(600):  # 60 s at most
            answer = page.eval("(document.querySelector('.assistant') || {}).textContent || ''")
            done = page.eval("!!document.querySelector('.assistant[data-done]')")
            if answer and (not lengths or lengths[-1] != len(answer)):
                lengths.append(len(answer))
            if done:
                break
            time.sleep(0.1)
        user = page.eval("(document.querySelector('.user') || {}).textContent || ''")
        error = page.eval("(document.querySelector('.error') || {}).textContent || ''")
        png = page.call("Page.captureScreenshot", format="png")
        os.makedirs(os.path.dirname(shot) or ".", exist_ok=True)
        with open(shot, "wb") as f:
            f.write(base64.b64decode(png["data"]))
        print(f"user message: {user!r}")
        print(f"answer ({len(answer)} chars, seen growing through {len(lengths)} lengths): "
              f"{answer[:200]!r}")
        print(f"screenshot: {shot}")
        ok = done and answer and user and not error
        print(("PASS" if ok else "FAIL") + " chat_page" + (f" (error shown: {error})" if error else ""))
        return 0 if ok else 1
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
