#!/usr/bin/env python3
"""Keystroke replay, the latency an editor feels: types a real Python file character by
character and, at each of 200 consecutive keystrokes, sends /infill as llama.vim does
(input_prefix: up to 256 lines before the cursor's line, prompt: that line up to the
cursor, input_suffix: the rest of the line and up to 64 lines after; n_predict 16,
greedy), once with prefix reuse (cache_prompt true) and once with cache_prompt false.
Prints the median and p95 latency of each, and the machine's load.

usage: scripts/keystroke_replay.py SERVER_BIN [FILE [server args...]]
  FILE default: /usr/lib/python3.11/textwrap.py, typed from its 2000th character
  server args default: --variant SmallCoder-Tiny --dtype q8_0 --threads 2
"""
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server_client import Server, post  # noqa: E402

binary = sys.argv[1]
path = sys.argv[2] if len(sys.argv) > 2 else "/usr/lib/python3.11/textwrap.py"
args = sys.argv[3:] or ["--variant", "SmallCoder-Tiny", "--dtype", "q8_0", "--threads", "2"]
source = open(path, encoding="utf-8").read()
START, KEYSTROKES = 2000, 200


def request(cursor, cache_prompt):
    before, after = source[:cursor], source[cursor:]
    line_start = before.rfind("\n") + 1
    prefix_lines = before[:line_start].splitlines(keepends=True)[-256:]
    suffix_lines = after.splitlines(keepends=True)[:65]
    return {"input_prefix": "".join(prefix_lines), "prompt": before[line_start:], "input_suffix": "".join(suffix_lines),
            "input_extra": [], "n_predict": 16, "temperature": 0, "top_k": 1, "samplers": ["top_k"],
            "cache_prompt": cache_prompt, "t_max_prompt_ms": 500, "t_max_predict_ms": 1000}


def replay(server, cache_prompt):
    conn = server.connect()
    latencies, cached = [], []
    post(conn, "/infill", request(START - 1, cache_prompt))  # the editor opened the file
    for cursor in range(START, START + KEYSTROKES):
        t0 = time.perf_counter()
        status, body = post(conn, "/infill", request(cursor, cache_prompt))
        latencies.append((time.perf_counter() - t0) * 1e3)
        if status != 200:
            raise SystemExit(f"keystroke {cursor}: status {status}: {body[:200]!r}")
        import json
        cached.append(json.loads(body)["tokens_cached"])
    conn.close()
    latencies.sort()
    return statistics.median(latencies), latencies[int(0.95 * len(latencies)) - 1], statistics.mean(cached)


server = Server(binary, args)
try:
    results = {mode: replay(server, mode) for mode in (True, False)}
finally:
    server.stop()
load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
print(f"file {path}, keystrokes {START}..{START + KEYSTROKES - 1}, server {' '.join(args)}")
for mode, (median, p95, cached) in results.items():
    print(f"cache_prompt {'true ' if mode else 'false'}: median {median:.1f} ms, p95 {p95:.1f} ms "
          f"(mean tokens_cached {cached:.0f})")
print(f"uptime: {load}")
