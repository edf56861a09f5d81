#!/usr/bin/env python3
"""examples/server end to end on smallcoder-nano, with Python's standard library as the
client: greedy /completion equals `generate --greedy` and the golden greedy texts for the
9 golden prompts, streamed pieces add up to the same text, /v1/completions, /v1/models
and /infill answer in their shapes, a prompt extending the previous one reuses the cache
(tokens_cached > 0) and gives a cold server's text; every kind of bad input gets its JSON
error and status; the queue answers 503 when full and drops a waiting request whose
client has gone; a client that disconnects mid-stream cancels its generation; and after
all of it /health is ok and a normal request gives the right text.

usage: server_test.py SERVER_BINARY GENERATE_BINARY DATA_DIR
Without the data folder the test is skipped (exit 77), and fails in CI (CI set).
"""
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time

server_bin, generate_bin, data = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2]), sys.argv[3]
nano = os.path.join(data, "models", "smallcoder-nano")
if not os.path.isfile(os.path.join(nano, "golden.json")):
    in_ci = os.environ.get("CI", "") not in ("", "false")
    print(f"server_test: reference data missing at {nano}", file=sys.stderr)
    sys.exit(1 if in_ci else 77)

failures = []
KEY = "test-key"
ENV = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")


def check(ok, message):
    print(("ok:   " if ok else "FAIL: ") + message)
    if not ok:
        failures.append(message)


class Server:
    """A server process on a free port; its stderr is collected in self.log."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([server_bin, "--model", nano, "--port", "0", "--threads", "2", *args],
                                     stderr=subprocess.PIPE, env=ENV)
        self.log = []
        line = self.proc.stderr.readline().decode()
        self.log.append(line)
        match = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
        if not match:
            raise SystemExit(f"server_test: the server did not start: {line!r} {self.proc.stderr.read()!r}")
        self.port = int(match.group(1))
        threading.Thread(target=self._read_log, daemon=True).start()

    def _read_log(self):
        for line in self.proc.stderr:
            self.log.append(line.decode())

    def request(self, method, path, body=None, key=KEY, raw=None, timeout=60):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = "Bearer " + key
        payload = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        conn.request(method, path, body=payload, headers=headers)
        response = conn.getresponse()
        text = response.read()
        conn.close()
        return response.status, response.getheader("Content-Type", ""), text

    def json(self, path, body, **kw):
        status, _, text = self.request("POST", path, body, **kw)
        return status, json.loads(text)

    def events(self, path, body):
        """The JSON objects of a streamed response's `data:` lines."""
        status, ctype, text = self.request("POST", path, dict(body, stream=True))
        out = []
        for line in text.decode().split("\n"):
            if line.startswith("data: "):
                out.append(line[6:] if line[6:] == "[DONE]" else json.loads(line[6:]))
        return status, ctype, out

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def greedy(prompt, n=48, **extra):
    return dict(prompt=prompt, n_predict=n, temperature=0, **extra)


golden = json.load(open(os.path.join(nano, "golden.json"), encoding="utf-8"))
server = Server("--api-key", KEY, "--queue", "1", "--max-body", "65536")
try:
    # 1. The golden prompts: /completion equals generate --greedy, and the golden text.
    for i, case in enumerate(golden["cases"]):
        cli = subprocess.run([generate_bin, "--model", nano, "--prompt", case["text"], "--greedy", "--max-tokens", "48",
                              "--threads", "2"], capture_output=True, env=ENV, timeout=120)
        expected = cli.stdout.decode("utf-8")
        status, r = server.json("/completion", greedy(case["text"]))
        check(status == 200 and r["content"] == expected and r["content"].removeprefix(" ") == case["greedy_text"],
              f"case {i}: /completion equals generate --greedy and the golden text ({r.get('content', r)!r:.60})")
        check(r["tokens_predicted"] == len(case["greedy_ids"]) and r["stop"] is True and
              r["stop_type"] in ("limit", "eos") and set(r["timings"]) >= {
                  "prompt_n", "prompt_ms", "prompt_per_second", "predicted_n", "predicted_ms", "predicted_per_second"},
              f"case {i}: tokens_predicted, stop_type and timings")
        status, ctype, events = server.events("/completion", greedy(case["text"]))
        pieces = "".join(e["content"] for e in events[:-1])
        check(status == 200 and ctype.startswith("text/event-stream") and pieces == expected and
              events[-1]["stop"] is True and all(e["stop"] is False for e in events[:-1]),
              f"case {i}: streamed pieces ({len(events) - 1}) add up to the same text")

    # Prefix reuse: a prompt extending the previous one, against a cold server.
    base = golden["cases"][0]["text"]
    extended = base + "\n    # the n-th Fibonacci number\n"
    server.json("/completion", greedy(base))
    status, warm = server.json("/completion", greedy(extended))
    cold_server = Server()
    try:
        _, cold = cold_server.json("/completion", greedy(extended))
        _, nothing = cold_server.json("/completion", greedy(base, n=0))  # n_predict 0: only fills the cache
        _, after_fill = cold_server.json("/completion", greedy(extended))
    finally:
        cold_server.stop()
    check(warm["tokens_cached"] > 0 and cold["tokens_cached"] == 0 and warm["content"] == cold["content"] and
          warm["timings"]["prompt_n"] == warm["tokens_evaluated"] - warm["tokens_cached"],
          f"extended prompt: {warm['tokens_cached']} of {warm['tokens_evaluated']} tokens cached, same text as cold")
    check(nothing["content"] == "" and nothing["tokens_predicted"] == 0 and after_fill["tokens_cached"] > 0 and
          after_fill["content"] == cold["content"], "n_predict 0 fills the cache, the next request reuses it")
    status, off = server.json("/completion", greedy(extended, cache_prompt=False))
    check(off["tokens_cached"] == 0 and off["content"] == cold["content"], "cache_prompt false: evaluated afresh")
    status, alias = server.json("/completion", dict(prompt=base, max_tokens=7, temperature=0, samplers=["top_k"],
                                                    id_slot=0, response_fields=["content"]))
    check(status == 200 and alias["tokens_predicted"] == 7, "max_tokens aliases n_predict; samplers etc. accepted")

    # OpenAI shape, plain and streamed.
    status, oa = server.json("/v1/completions", dict(prompt=base, max_tokens=48, temperature=0))
    golden0 = golden["cases"][0]["greedy_text"]
    check(status == 200 and oa["object"] == "text_completion" and oa["choices"][0]["text"].removeprefix(" ") == golden0
          and oa["choices"][0]["finish_reason"] in ("length", "stop") and
          oa["usage"]["completion_tokens"] == 48 and oa["usage"]["total_tokens"] == oa["usage"]["prompt_tokens"] + 48,
          "/v1/completions: choices[0].text, finish_reason, usage")
    status, _, events = server.events("/v1/completions", dict(prompt=base, max_tokens=48, temperature=0))
    text = "".join(e["choices"][0]["text"] for e in events if e != "[DONE]")
    check(events[-1] == "[DONE]" and text.removeprefix(" ") == golden0 and
          events[-2]["choices"][0]["finish_reason"] == "length", "/v1/completions streamed, ending in [DONE]")
    status, _, models = server.request("GET", "/v1/models")
    models = json.loads(models)
    check(status == 200 and models["object"] == "list" and models["data"][0]["id"] == "smallcoder-nano",
          "/v1/models lists the model")

    # /infill: the prompt is extra chunks + prefix + prompt; the suffix's first line stops it.
    infill = dict(input_prefix="def fibonacci(n):\n", prompt="    ", input_suffix="\n\nprint(fibonacci(10))\n",
                  input_extra=[{"filename": "util.py", "text": "import sys\n"}], n_predict=16, temperature=0,
                  t_max_prompt_ms=500, t_max_predict_ms=5000, n_indent=4, stop=["\n\n\n"])
    status, inf = server.json("/infill", infill)
    _, same = server.json("/completion", greedy("import sys\ndef fibonacci(n):\n    ", n=16,
                                                stop=["\n\n\n", "print(fibonacci(10))"]))
    check(status == 200 and inf["content"] == same["content"] and "tokens_cached" in inf and
          "print(fibonacci(10))" not in inf["content"], f"/infill answers like /completion of its prompt "
          f"({inf.get('content')!r:.50})")
    status, toks = server.json("/tokenize", {"content": "def f():"})
    status2, detok = server.json("/detokenize", {"tokens": toks["tokens"]})
    check(status == 200 and status2 == 200 and detok["content"] == "def f():" and len(toks["tokens"]) > 2,
          "/tokenize and /detokenize round-trip")

    # 2. Bad input: a JSON error with the status, the server serving on.
    def expect_error(what, status, needle, *args, **kw):
        got, ctype, text = server.request(*args, **kw)
        try:
            message = json.loads(text)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = None
        check(got == status and ctype.startswith("application/json") and message is not None and needle in message,
              f"{what}: {got} {message!r}")

    expect_error("malformed JSON", 400, "line 1", "POST", "/completion", raw=b'{"prompt": "x",')
    expect_error("not an object", 400, "object", "POST", "/completion", raw=b'[1, 2]')
    expect_error("wrong field type", 400, "field 'n_predict'", "POST", "/completion", {"prompt": "x", "n_predict": "5"})
    expect_error("wrong field type (stop)", 400, "field 'stop'", "POST", "/completion", {"prompt": "x", "stop": 5})
    expect_error("missing prompt", 400, "prompt", "POST", "/completion", {"n_predict": 5})
    expect_error("unknown endpoint", 404, "no such endpoint", "POST", "/nowhere", {"prompt": "x"})
    expect_error("body over the limit", 413, "size limit", "POST", "/completion", {"prompt": "x" * 70000})
    expect_error("n_predict over the context", 400, "context of 2048", "POST", "/completion",
                 {"prompt": "x", "n_predict": 5000})
    n_prompt = len(server.json("/tokenize", {"content": "x " * 2500, "add_special": True})[1]["tokens"])
    expect_error("prompt longer than the context", 400,
                 f"the prompt has {n_prompt} tokens but the context holds 2048", "POST", "/completion",
                 {"prompt": "x " * 2500})
    expect_error("invalid UTF-8", 400, "UTF-8", "POST", "/completion", raw=b'{"prompt": "def f(\xff):"}')
    expect_error("lone surrogate", 400, "surrogate", "POST", "/completion", raw=b'{"prompt": "\\ud800"}')
    expect_error("token id outside the vocabulary", 400, "outside the vocabulary", "POST", "/detokenize",
                 {"tokens": [1, 99999]})
    expect_error("bad temperature", 400, "temperature", "POST", "/completion", {"prompt": "x", "temperature": -1})
    expect_error("no API key", 401, "API key", "POST", "/completion", {"prompt": "x"}, key=None)
    expect_error("wrong API key", 401, "API key", "POST", "/completion", {"prompt": "x"}, key="wrong")

    # The queue (--queue 1): one request runs, one waits, a third gets 503; the waiting one
    # whose client goes away is dropped before it runs.
    long_stream = json.dumps(dict(prompt=base, n_predict=1500, temperature=0, stream=True)).encode()
    first_event = threading.Event()
    running_done = []

    def run_long():
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
        conn.request("POST", "/completion", body=long_stream, headers={"Authorization": "Bearer " + KEY})
        response = conn.getresponse()
        response.read(1)  # the first event has come: the generation runs
        first_event.set()
        running_done.append(len(response.read()))
        conn.close()

    runner = threading.Thread(target=run_long)
    runner.start()
    first_event.wait(60)
    log_before = len(server.log)
    waiting = socket.create_connection(("127.0.0.1", server.port))
    body = json.dumps(greedy(base)).encode()
    waiting.sendall(b"POST /completion HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY.encode() +
                    b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    time.sleep(0.3)
    expect_error("queue full", 503, "busy", "POST", "/completion", greedy(base))
    waiting.close()
    runner.join(120)
    time.sleep(0.2)
    check(any("dropped a queued request" in line for line in server.log[log_before:]),
          "a queued request whose client has gone is dropped before it runs")

    # A client that disconnects mid-stream cancels its generation within a token or two.
    conn = socket.create_connection(("127.0.0.1", server.port))
    conn.sendall(b"POST /completion HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY.encode() +
                 b"\r\nContent-Length: " + str(len(long_stream)).encode() + b"\r\n\r\n" + long_stream)
    received = b""
    while b"data: " not in received:
        received += conn.recv(4096)
    log_before = len(server.log)
    conn.close()
    status, r = server.json("/completion", greedy(base))  # waits for the cancelled one, if at all
    cancelled = [line for line in server.log[log_before:] if "stop cancelled" in line]
    generated = int(re.search(r"(\d+) generated", cancelled[0]).group(1)) if cancelled else None
    check(generated is not None and generated < 100, f"a client gone mid-stream cancels its generation "
          f"(it stopped after {generated} of 1500 tokens)")

    # After all of it.
    status, _, health = server.request("GET", "/health", key=None)
    check(status == 200 and json.loads(health)["status"] == "ok", "/health is ok after the bad input")
    check(r["content"].removeprefix(" ") == golden0, "and a normal request gives the right text")
finally:
    server.stop()

print(f"server_test: {len(failures)} failures")
sys.exit(1 if failures else 0)
