"""test_server.py: `phi3c serve` against the official OpenAI client on the demo model (run by
tests/stages/server.sh with pytest; PHI3C_BIN is the binary under test, the ASan build in
`make test`). Every server runs on a free loopback port and is stopped with SIGINT/SIGTERM, which
must give exit 0 and no sanitizer report. Every wait is bounded."""

import http.client
import json
import os
import signal
import socket
import subprocess
import threading
import time

import openai
import pytest

BIN = os.environ.get("PHI3C_BIN", "build/phi3c")
MODEL = os.environ.get("PHI3C_DEMO_MODEL", "tools/demo-model")
LOG_DIR = os.environ.get("PHI3C_SERVER_LOGS", "build/test-logs")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A `phi3c serve` process on a free port; stop() checks its exit and its stderr."""

    def __init__(self, name, *args):
        self.port = free_port()
        os.makedirs(LOG_DIR, exist_ok=True)
        self.log_path = os.path.join(LOG_DIR, f"server-{name}.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [BIN, "serve", "-m", MODEL, "--port", str(self.port), "-t", "2", *args],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while time.time() < deadline:
            assert self.proc.poll() is None, self.read_log()
            try:
                status, _ = self.get("/health")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError("the server did not become ready: " + self.read_log())

    def read_log(self):
        self.log.flush()
        with open(self.log_path) as f:
            return f.read()

    def request(self, method, path, body=None, headers=None, timeout=60):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
            c.request(method, path, body=data, headers=headers or {})
            r = c.getresponse()
            return r.status, r.read(), dict(r.getheaders())
        finally:
            c.close()

    def get(self, path):
        status, body, _ = self.request("GET", path, timeout=5)
        return status, body

    def client(self, key="none"):
        return openai.OpenAI(base_url=f"http://127.0.0.1:{self.port}/v1", api_key=key,
                             max_retries=0, timeout=120)

    def stop(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise AssertionError("the server did not stop within 30 s of the signal")
        log = self.read_log()
        self.log.close()
        assert rc == 0, f"exit {rc}: {log[-3000:]}"
        assert "AddressSanitizer" not in log and "runtime error" not in log, log[-5000:]
        assert "LeakSanitizer" not in log, log[-5000:]


@pytest.fixture(scope="module")
def srv():
    s = Server("main", "--parallel", "4", "-c", "512", "--timeout", "3")
    yield s
    s.stop(signal.SIGINT)


def run_cli(*args):
    r = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def count_tokens(text):
    return len(run_cli("tokenize", "-m", MODEL, text).split())


CHAT_PROMPT = "Tell me about the sea."


def test_health_models_metrics(srv):
    assert srv.get("/health") == (200, b'{"status":"ok"}')
    models = srv.client().models.list()
    assert [m.id for m in models.data] == ["demo-model"]
    status, body = srv.get("/metrics")
    assert status == 200 and b"phi3c_requests_total" in body and b"phi3c_slots_active" in body


def test_chat_greedy_equals_phi3c_run_and_usage_equals_tokenize(srv):
    r = srv.client().chat.completions.create(
        model="demo-model", messages=[{"role": "user", "content": CHAT_PROMPT}],
        temperature=0, max_tokens=24)
    want = run_cli("run", "-m", MODEL, "--chat", "-p", CHAT_PROMPT, "-n", "24", "--greedy", "-t", "2")
    assert r.choices[0].message.content + "\n" == want
    assert r.choices[0].message.role == "assistant"
    rendered = f"<|user|>\n{CHAT_PROMPT}<|end|>\n<|assistant|>\n"
    assert r.usage.prompt_tokens == count_tokens(rendered)
    if r.choices[0].finish_reason == "length":
        assert r.usage.completion_tokens == 24
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_completion_greedy_equals_phi3c_run_and_usage_equals_tokenize(srv):
    prompt = "And God said"
    r = srv.client().completions.create(model="demo-model", prompt=prompt, temperature=0,
                                        max_tokens=20)
    want = run_cli("run", "-m", MODEL, "-p", prompt, "-n", "20", "--greedy", "-t", "2")
    assert prompt + r.choices[0].text + "\n" == want
    assert r.usage.prompt_tokens == count_tokens(prompt)
    assert r.usage.completion_tokens == 20 and r.choices[0].finish_reason == "length"


def test_completion_prompt_as_token_ids_equals_the_text_prompt(srv):
    ids = [int(x) for x in run_cli("tokenize", "-m", MODEL, "And God said").split()]
    c = srv.client()
    by_ids = c.completions.create(model="m", prompt=ids, temperature=0, max_tokens=12)
    by_text = c.completions.create(model="m", prompt="And God said", temperature=0, max_tokens=12)
    assert by_ids.choices[0].text == by_text.choices[0].text
    assert by_ids.usage.prompt_tokens == len(ids)


def test_streaming_chat_matches_the_plain_answer(srv):
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello!"}]
    plain = srv.client().chat.completions.create(model="m", messages=msgs, temperature=0,
                                                 max_tokens=16)
    chunks = list(srv.client().chat.completions.create(
        model="m", messages=msgs, temperature=0, max_tokens=16, stream=True,
        stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == [plain.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == plain.usage.total_tokens


def test_streaming_completion(srv):
    plain = srv.client().completions.create(model="m", prompt="In the beginning", temperature=0,
                                            max_tokens=12)
    chunks = list(srv.client().completions.create(model="m", prompt="In the beginning",
                                                  temperature=0, max_tokens=12, stream=True))
    assert "".join(c.choices[0].text for c in chunks) == plain.choices[0].text
    assert chunks[-1].choices[0].finish_reason == "length"


def test_stop_sequences_cut_the_output(srv):
    c = srv.client()
    full = c.completions.create(model="m", prompt="And God said", temperature=0,
                                max_tokens=40).choices[0].text
    stop = full[12:16]
    assert len(stop) == 4 and stop in full
    want = full[:full.index(stop)]
    r = c.completions.create(model="m", prompt="And God said", temperature=0, max_tokens=40,
                             stop=[stop, "never appears"])
    assert r.choices[0].text == want and r.choices[0].finish_reason == "stop"
    streamed = list(c.completions.create(model="m", prompt="And God said", temperature=0,
                                         max_tokens=40, stop=stop, stream=True))
    assert "".join(x.choices[0].text for x in streamed) == want
    assert streamed[-1].choices[0].finish_reason == "stop"


def test_max_tokens_and_max_completion_tokens(srv):
    c = srv.client()
    r = c.chat.completions.create(model="m", messages=[{"role": "user", "content": "Count"}],
                                  max_tokens=5, temperature=0.5, seed=1)
    r2 = c.chat.completions.create(model="m", messages=[{"role": "user", "content": "Count"}],
                                   max_completion_tokens=5, temperature=0.5, seed=1)
    for x in (r, r2):
        assert x.usage.completion_tokens <= 5
        assert x.choices[0].finish_reason == ("length" if x.usage.completion_tokens == 5 else "stop")
    assert r.choices[0].message.content == r2.choices[0].message.content


def test_seeds_reproducible(srv):
    c = srv.client()
    args = dict(model="m", prompt="The LORD", temperature=1.0, top_p=0.95, max_tokens=24)
    a = c.completions.create(seed=42, **args).choices[0].text
    b = c.completions.create(seed=42, **args).choices[0].text
    others = {c.completions.create(seed=s, **args).choices[0].text for s in (43, 44, 45)}
    assert a == b
    assert others != {a}


def stream_text(client, i):
    chunks = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": f"Story number {i} about the {i % 7} kings"}],
        temperature=0.9, seed=1000 + i, max_tokens=24, stream=True)
    parts, reasons = [], []
    for c in chunks:
        if c.choices:
            parts.append(c.choices[0].delta.content or "")
            if c.choices[0].finish_reason:
                reasons.append(c.choices[0].finish_reason)
    return "".join(parts), reasons


def run_concurrently(n, fn):
    """fn(i) for i in 0..n-1, all at once; their results (each thread joined within 300 s)."""
    results, errors = [None] * n, []

    def worker(i):
        try:
            results[i] = fn(i)
        except Exception as e:  # reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    return results


def test_32_concurrent_streams_each_equal_to_the_request_alone(srv):
    results = run_concurrently(32, lambda i: stream_text(srv.client(), i))
    assert all(r is not None and len(r[1]) == 1 for r in results)
    for i in range(32):
        alone = stream_text(srv.client(), i)
        assert results[i] == alone, f"stream {i} differs from the same request alone"
    assert len({r[0] for r in results}) > 16  # different prompts and seeds: different answers


BAD = [
    ("POST", "/v1/chat/completions", b"{not json", 400),
    ("POST", "/v1/chat/completions", {"messages": "hello"}, 400),
    ("POST", "/v1/chat/completions", {"messages": []}, 400),
    ("POST", "/v1/chat/completions", {"messages": [{"role": "robot", "content": "x"}]}, 400),
    ("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": 5}]}, 400),
    ("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "n": 2}, 400),
    ("POST", "/v1/chat/completions",
     {"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}, 400),
    ("POST", "/v1/chat/completions",
     {"messages": [{"role": "user", "content": "x"}], "frequency_penalty": 0.5}, 400),
    ("POST", "/v1/chat/completions",
     {"messages": [{"role": "user", "content": "x"}], "max_tokens": -1}, 400),
    ("POST", "/v1/chat/completions", [1, 2], 400),
    ("POST", "/v1/completions", {"prompt": ""}, 400),
    ("POST", "/v1/completions", {"prompt": ["a", "b"]}, 400),
    ("POST", "/v1/completions", {"prompt": [1, 99999999]}, 400),
    ("POST", "/v1/completions", {"prompt": "x", "stop": 7}, 400),
    ("POST", "/v1/completions", {"prompt": "x", "lookup": 65}, 400),
    ("POST", "/v1/completions", {"prompt": "x", "lookup": -1}, 400),
    ("POST", "/v1/completions", {"prompt": "x", "lookup": 2.5}, 400),
    ("POST", "/v1/chat/completions",
     {"messages": [{"role": "user", "content": "x"}], "lookup": "on"}, 400),
    ("POST", "/detokenize", {"tokens": [-1]}, 400),
    ("POST", "/tokenize", {"content": 3}, 400),
    ("GET", "/v1/nothing", None, 404),
    ("GET", "/v1/chat/completions", None, 405),
    ("POST", "/health", b"{}", 405),
]


@pytest.mark.parametrize("method,path,body,status", BAD)
def test_bad_input_gets_an_openai_error(srv, method, path, body, status):
    got, data, headers = srv.request(method, path, body)
    assert got == status, data
    err = json.loads(data)["error"]
    assert err["message"] and err["type"]
    if status == 405:
        assert "Allow" in headers


def test_prompt_longer_than_the_context_is_400_with_the_numbers(srv):
    with pytest.raises(openai.BadRequestError) as e:
        srv.client().completions.create(model="m", prompt="and the " * 400, max_tokens=4)
    assert "maximum context length is 512 tokens" in str(e.value)
    assert "801 tokens" in str(e.value)


def test_body_over_the_limit_is_413(srv):
    # The server answers from the Content-Length header alone and closes: a client still writing
    # the 2 MiB body could see a broken pipe or a reset before reading the answer, so this one
    # sends the headers and reads.
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=15)
    head = b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    s.sendall(head + b"Content-Length: %d\r\n\r\n" % (2 << 20))
    reply = b""
    try:
        for _ in range(50):  # bounded: the reply is small
            chunk = s.recv(65536)
            if not chunk:
                break
            reply += chunk
            if b"exceeds" in reply:
                break
    except OSError:
        pass
    s.close()
    assert reply.split(b"\r\n")[0].split(b" ")[1:2] == [b"413"], reply[:200]
    assert b"exceeds" in reply


def test_a_body_that_trickles_in_is_cut(srv):
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=15)
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\n{")
    t0 = time.time()
    reply = b""
    try:
        for _ in range(12):  # a byte a second, slower than --timeout 3 allows for the body
            time.sleep(1)
            s.sendall(b" ")
    except OSError:
        pass
    try:
        reply = s.recv(4096)
    except OSError:
        pass
    s.close()
    assert time.time() - t0 < 14
    assert reply == b"" or b" 408 " in reply.split(b"\r\n")[0], reply[:200]


def test_idle_connection_is_closed(srv):
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=15)
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n")  # headers never finished
    t0 = time.time()
    data = s.recv(4096)
    s.close()
    assert data == b"" and time.time() - t0 < 10


def test_headers_that_trickle_in_are_cut(srv):
    # A byte a second keeps MHD's idle timeout (--timeout 3) from firing; the headers' total
    # deadline (--timeout too) must cut the socket anyway.
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=15)
    head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 40
    t0 = time.time()
    cut_at = None
    for byte in head:  # bounded: 60 bytes, one a second at most
        try:
            s.sendall(bytes([byte]))
        except OSError:
            cut_at = time.time() - t0
            break
        s.settimeout(1.0)
        try:
            if s.recv(4096) == b"":
                cut_at = time.time() - t0
                break
        except socket.timeout:
            pass
        except OSError:
            cut_at = time.time() - t0
            break
        if time.time() - t0 > 12:
            break
    s.close()
    assert cut_at is not None and cut_at < 8, f"still open after {time.time() - t0:.1f} s"
    assert srv.get("/health") == (200, b'{"status":"ok"}')


def slots_active(srv):
    _, body = srv.get("/metrics")
    for line in body.decode().splitlines():
        if line.startswith("phi3c_slots_active "):
            return int(line.split()[1])
    raise AssertionError(body)


def test_client_disconnecting_mid_stream_frees_its_slot(srv):
    body = json.dumps({"prompt": "And God said", "max_tokens": 400, "stream": True,
                       "temperature": 1.0, "seed": 3}).encode()
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=15)
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    got = b""
    while got.count(b"data: ") < 3:
        chunk = s.recv(4096)
        assert chunk, got
        got += chunk
    assert slots_active(srv) == 1
    s.close()
    deadline = time.time() + 10
    while slots_active(srv) != 0 and time.time() < deadline:
        time.sleep(0.05)
    assert slots_active(srv) == 0
    assert srv.get("/health") == (200, b'{"status":"ok"}')


def test_non_streaming_client_that_leaves_frees_its_slot(srv):
    # 500 tokens (the 512-token context) take the ASan build several seconds; the slot must be free
    # within a second or two of the close, long before the answer would be done.
    body = json.dumps({"prompt": "And God said", "max_tokens": 500, "temperature": 1.0,
                       "seed": 3}).encode()
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=15)
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    deadline = time.time() + 10
    while slots_active(srv) != 1 and time.time() < deadline:
        time.sleep(0.02)
    assert slots_active(srv) == 1
    time.sleep(0.3)  # generating
    s.close()
    t0 = time.time()
    while slots_active(srv) != 0 and time.time() - t0 < 2:
        time.sleep(0.02)
    assert slots_active(srv) == 0, f"slot still busy {time.time() - t0:.1f} s after the close"
    got = srv.client().completions.create(model="m", prompt="In the beginning", max_tokens=4)
    assert got.usage.completion_tokens >= 1 and srv.get("/health")[0] == 200


def test_chat_page_is_served(srv):
    status, body = srv.get("/")
    assert status == 200 and b"<title>phi3c chat</title>" in body
    assert b"://" not in body  # nothing fetched from elsewhere (no CDN)


def test_api_key_is_required_when_set():
    s = Server("key", "--api-key", "sekret", "--parallel", "1")
    try:
        with pytest.raises(openai.AuthenticationError):
            s.client("wrong").models.list()
        status, data, _ = s.request("POST", "/v1/completions", {"prompt": "x", "max_tokens": 1})
        assert status == 401 and json.loads(data)["error"]["code"] == 401
        assert s.client("sekret").completions.create(model="m", prompt="x", max_tokens=2).usage
        assert s.get("/health")[0] == 200
    finally:
        s.stop()


def test_full_queue_answers_503_with_retry_after():
    s = Server("queue", "--parallel", "1", "--queue", "1")
    statuses = []

    def one():
        st, _, h = s.request("POST", "/v1/completions",
                             {"prompt": "And God said", "max_tokens": 120, "temperature": 1})
        statuses.append((st, h.get("Retry-After")))

    try:
        threads = [threading.Thread(target=one) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert (503, "1") in statuses, statuses
        assert any(st == 200 for st, _ in statuses), statuses
        assert s.get("/health")[0] == 200
    finally:
        s.stop()


# ---- prompt lookup (`serve --lookup N`, a request's "lookup"): the same text, drafts reported

def lookup_prompts(kind, n):
    with open("tools/lookup_prompts.txt") as f:
        rows = [line.rstrip("\n").split("\t", 1) for line in f if not line.startswith("#")]
    return [text.replace("\\n", "\n") for k, text in rows if k == kind][:n]


@pytest.fixture(scope="module")
def lookup_srv():
    s = Server("lookup", "--lookup", "8", "--parallel", "4", "-c", "512")
    yield s
    s.stop(signal.SIGINT)


def metric(srv, name):
    _, body = srv.get("/metrics")
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def completion(srv, prompt, **kw):
    args = dict(model="m", prompt=prompt, max_tokens=61, temperature=0)
    args.update(kw)
    return srv.client().completions.create(**args)


def test_lookup_greedy_and_seeded_text_equal_without_lookup_and_drafts_are_kept(srv, lookup_srv):
    accepted = drafted = 0
    for prompt in lookup_prompts("grounded", 3) + lookup_prompts("open", 1):
        for kw in (dict(), dict(temperature=1.0, top_p=0.95, seed=11)):
            plain = completion(srv, prompt, **kw)
            fast = completion(lookup_srv, prompt, **kw)
            assert fast.choices[0].text == plain.choices[0].text, (prompt[:40], kw)
            assert fast.choices[0].finish_reason == plain.choices[0].finish_reason
            assert fast.usage.completion_tokens == plain.usage.completion_tokens
            d = fast.usage.completion_tokens_details
            assert plain.usage.completion_tokens_details.accepted_prediction_tokens == 0
            accepted += d.accepted_prediction_tokens
            drafted += d.accepted_prediction_tokens + d.rejected_prediction_tokens
    assert accepted > 0 and drafted >= accepted, (accepted, drafted)
    assert metric(lookup_srv, "phi3c_lookup_accepted_tokens_total") >= accepted
    assert metric(lookup_srv, "phi3c_lookup_drafted_tokens_total") >= drafted
    # grounded text is copied: fewer forward passes than generated tokens
    assert metric(lookup_srv, "phi3c_decode_feeds_total") < metric(
        lookup_srv, "phi3c_generated_tokens_total")


def test_lookup_runs_to_the_end_of_the_context_like_without(srv, lookup_srv):
    # no max_tokens: the answer ends where the 512-position context is full, drafts or not
    prompt = lookup_prompts("grounded", 2)[1]
    plain = srv.client().completions.create(model="m", prompt=prompt, temperature=0)
    fast = lookup_srv.client().completions.create(model="m", prompt=prompt, temperature=0)
    assert plain.choices[0].finish_reason == fast.choices[0].finish_reason == "length"
    assert plain.usage.total_tokens == fast.usage.total_tokens == 513  # the last one is not fed
    assert fast.choices[0].text == plain.choices[0].text
    assert fast.usage.completion_tokens_details.accepted_prediction_tokens > 0


def test_a_requests_lookup_field_overrides_the_servers(srv, lookup_srv):
    prompt = lookup_prompts("grounded", 1)[0]
    plain = completion(srv, prompt)
    on = completion(srv, prompt, extra_body={"lookup": 8})
    off = completion(lookup_srv, prompt, extra_body={"lookup": 0})
    assert on.choices[0].text == plain.choices[0].text == off.choices[0].text
    assert on.usage.completion_tokens_details.accepted_prediction_tokens > 0
    details = off.usage.completion_tokens_details
    assert details.accepted_prediction_tokens == details.rejected_prediction_tokens == 0


def lookup_stream(srv, i, prompt):
    kw = dict(temperature=0) if i % 2 == 0 else dict(temperature=0.9, seed=500 + i)
    chunks = srv.client().chat.completions.create(
        model="m", messages=[{"role": "user", "content": prompt}], max_tokens=40, stream=True,
        stream_options={"include_usage": True}, **kw)
    parts, usage = [], None
    for c in chunks:
        if c.choices:
            parts.append(c.choices[0].delta.content or "")
        if c.usage:
            usage = c.usage
    return "".join(parts), usage


def test_concurrent_lookup_streams_each_equal_the_request_without_lookup(srv, lookup_srv):
    prompts = lookup_prompts("grounded", 4) + lookup_prompts("open", 2)
    results = run_concurrently(8, lambda i: lookup_stream(lookup_srv, i, prompts[i % len(prompts)]))
    for i in range(8):
        text, usage = lookup_stream(srv, i, prompts[i % len(prompts)])
        assert results[i][0] == text, f"lookup stream {i} differs from the request without lookup"
        assert results[i][1].completion_tokens == usage.completion_tokens
    assert sum(r[1].completion_tokens_details.accepted_prediction_tokens for r in results) > 0


def test_serve_refuses_a_lookup_out_of_range():
    r = subprocess.run([BIN, "serve", "-m", MODEL, "--lookup", "65"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2 and "--lookup wants an integer in 0..64" in r.stderr, r.stderr
