#!/usr/bin/env python3
"""Load test of examples/server: 4 concurrent clients x 50 mixed requests (completion plain
and streamed, infill, OpenAI completions, tokenize, health) against SmallCoder-Tiny Q8_0
with random weights. Every request must be answered (200) or refused (503), each answer
whole and well-formed, greedy answers to the same request identical across clients; the
server's resident memory is sampled before and after.

usage: scripts/server_load_test.py SERVER_BIN [server args...]
  default server args: --variant SmallCoder-Tiny --dtype q8_0 --queue 2 --threads 2
"""
import json
import os
import random
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server_client import Server, post  # noqa: E402

binary = sys.argv[1]
args = sys.argv[2:] or ["--variant", "SmallCoder-Tiny", "--dtype", "q8_0", "--queue", "2", "--threads", "2"]
server = Server(binary, args)
PROMPTS = ["def fibonacci(n):", "import os\n\ndef main():\n    ", "class Stack:\n    def push(self, x):",
           "# read a file\nwith open(path) as f:\n"]
CLIENTS, REQUESTS = 4, 50
lock = threading.Lock()
counts = {"200": 0, "503": 0, "bad": 0}
problems = []
greedy_answers = {}


def record(kind, status, ok, key=None, text=None):
    with lock:
        if status == 503:
            counts["503"] += 1
        elif status == 200 and ok:
            counts["200"] += 1
            if key is not None:
                if greedy_answers.setdefault(key, text) != text:
                    problems.append(f"{kind}: greedy answer differs between requests: {key}")
        else:
            counts["bad"] += 1
            problems.append(f"{kind}: status {status}")


def one_request(conn, rng):
    prompt = rng.choice(PROMPTS)
    n = rng.choice([4, 8, 16, 32])
    # Greedy answers must agree across clients: compared among the cold ones (cache_prompt
    # false), as with quantized weights a reused prefix rounds differently (README).
    cold = rng.random() < 0.5
    kind = rng.choice(["completion", "stream", "infill", "openai", "tokenize", "health"])
    if kind == "health":
        conn.request("GET", "/health")
        r = conn.getresponse()
        body = r.read()
        record(kind, r.status, r.status != 200 or json.loads(body)["status"] == "ok")
    elif kind == "tokenize":
        status, body = post(conn, "/tokenize", {"content": prompt})
        record(kind, status, status != 200 or len(json.loads(body)["tokens"]) > 0)
    elif kind == "completion":
        status, body = post(conn, "/completion", {"prompt": prompt, "n_predict": n, "temperature": 0,
                                                  "cache_prompt": not cold})
        if status == 200:
            r = json.loads(body)
            record(kind, status, r["stop"] and r["tokens_predicted"] <= n, ("completion", prompt, n) if cold else None,
                   r["content"])
        else:
            record(kind, status, False)
    elif kind == "stream":
        status, body = post(conn, "/completion", {"prompt": prompt, "n_predict": n, "temperature": 0, "stream": True,
                                                  "cache_prompt": not cold})
        if status == 200:
            events = [json.loads(line[6:]) for line in body.decode().split("\n") if line.startswith("data: ")]
            text = "".join(e["content"] for e in events[:-1])
            record(kind, status, events[-1]["stop"] and len(events) - 1 <= n, ("completion", prompt, n) if cold else None,
                   text)
        else:
            record(kind, status, False)
    elif kind == "infill":
        status, body = post(conn, "/infill", {"input_prefix": prompt, "input_suffix": "\n", "n_predict": n,
                                              "temperature": 0.8, "seed": rng.randrange(1000)})
        record(kind, status, status != 200 or "content" in json.loads(body))
    else:
        status, body = post(conn, "/v1/completions", {"prompt": prompt, "max_tokens": n, "temperature": 0,
                                                      "cache_prompt": not cold})
        if status == 200:
            r = json.loads(body)
            record(kind, status, r["usage"]["completion_tokens"] <= n, ("completion", prompt, n) if cold else None,
                   r["choices"][0]["text"])
        else:
            record(kind, status, False)


def client(index):
    rng = random.Random(index)
    conn = server.connect()
    for _ in range(REQUESTS):
        try:
            one_request(conn, rng)
        except Exception as e:  # a lost or garbled answer
            with lock:
                counts["bad"] += 1
                problems.append(f"client {index}: {type(e).__name__}: {e}")
            conn.close()
            conn = server.connect()
    conn.close()


try:
    warm = server.connect()
    post(warm, "/completion", {"prompt": PROMPTS[0], "n_predict": 8})
    warm.close()
    rss_before = server.rss_kib()
    for rounds in range(2):  # two rounds: memory must not grow between them either
        threads = [threading.Thread(target=client, args=(i + 10 * rounds,)) for i in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if rounds == 0:
            rss_middle = server.rss_kib()
    rss_after = server.rss_kib()
finally:
    server.stop()
total = sum(counts.values())
load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
print(f"requests: {total} ({2 * CLIENTS} clients in 2 rounds of {CLIENTS} x {REQUESTS}): {counts['200']} answered, "
      f"{counts['503']} refused with 503, {counts['bad']} lost or garbled")
print(f"distinct greedy requests compared across clients: {len(greedy_answers)}")
print(f"VmRSS: {rss_before} KiB before, {rss_middle} KiB after round 1, {rss_after} KiB after round 2")
print(f"uptime: {load}")
for p in problems[:20]:
    print("problem:", p)
ok = not problems and counts["bad"] == 0 and total == 2 * CLIENTS * REQUESTS and rss_after - rss_middle < 8192
print("load test:", "PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)
