#!/usr/bin/env python3
"""examples/bench_speed: bad flags exit 2 with one line, other errors exit 1 with one line,
and a tiny real run on smallcoder-nano prints the llama-bench style table (the numbers
themselves are not checked: no timing in tests).

usage: bench_speed_cli_test.py BENCH_SPEED_BINARY DATA_DIR
Without the data folder the test is skipped (exit 77), and fails in CI (CI set).
"""
import os
import subprocess
import sys

binary, data = os.path.abspath(sys.argv[1]), sys.argv[2]
nano = os.path.join(data, "models", "smallcoder-nano")
if not os.path.isfile(os.path.join(nano, "model.safetensors")):
    in_ci = os.environ.get("CI", "") not in ("", "false")
    print(f"bench_speed_cli_test: reference data missing at {nano}", file=sys.stderr)
    sys.exit(1 if in_ci else 77)

failures = []


def run(args):
    return subprocess.run([binary] + args, capture_output=True, timeout=600,
                          env=dict(os.environ, OMP_WAIT_POLICY="PASSIVE"))


def expect_error(args, status, needle):
    r = run(args)
    lines = r.stderr.decode("utf-8", "replace").splitlines()
    if not (r.returncode == status and len(lines) == 1 and needle in lines[0] and r.stdout == b""):
        failures.append(f"{args}: expected exit {status} and one line with {needle!r}, got exit "
                        f"{r.returncode}, stderr {r.stderr!r}, stdout {r.stdout[:200]!r}")


# Usage errors: exit 2, one line.
expect_error(["--bogus"], 2, "unknown argument '--bogus'")
expect_error(["-p", "0"], 2, "-p must be in")
expect_error(["-p", "16,"], 2, "-p expects an integer")
expect_error(["-r", "0"], 2, "-r must be in")
expect_error(["--kv-cache", "q8_0"], 2, "--kv-cache must be f32, f16 or bf16")
expect_error(["--variant", "SmallCoder-Huge"], 2, "unknown variant")
expect_error(["--dtype", "f8"], 2, "--dtype")
expect_error(["--model", nano, "-p", "4096"], 2, "exceeds the context of 2048")
expect_error(["--model", nano, "-n", "4096"], 2, "the context has 2048")
# Everything else: exit 1, one line.
expect_error(["--model", os.path.join(data, "no-such-model")], 1, "no-such-model")

# A tiny real run: two prompt tests and a decode test after the default prompt (BOS and the
# 7 tokens of "def fibonacci(n):"), 16-bit cache.
r = run(["--model", nano, "-p", "16,32", "-n", "8", "-r", "2", "--kv-cache", "f16", "--threads", "1"])
table = r.stdout.decode("utf-8").splitlines()
rows = [line.split("|")[1:-1] for line in table[2:]]
tests = [cells[4].strip() for cells in rows if len(cells) == 11]
if r.returncode != 0 or not table or "share of" not in table[0] or tests != ["pp16", "pp32", "tg8 @ d8"]:
    failures.append(f"real run: exit {r.returncode}, tests {tests}, stdout {r.stdout!r}, stderr {r.stderr[-500:]!r}")
elif any(cells[2].strip() != "f16" for cells in rows) or rows[2][7].strip() == "-":
    failures.append(f"real run: expected the f16 cache and decode GB/s in every row: {table}")
elif "peak (FMA" not in table[0] or any(not cells[10].strip().endswith("%") for cells in rows[:2]):
    failures.append(f"real run: expected each prompt row's share of the compute peak: {table}")

# --cold: the same tests, each timed step after the weights are flushed from the caches; the
# rows say so.
r = run(["--model", nano, "-p", "16", "-n", "4", "-r", "1", "--cold", "--threads", "2"])
table = r.stdout.decode("utf-8").splitlines()
tests = [line.split("|")[5].strip() for line in table[2:] if line.count("|") == 12]
if r.returncode != 0 or tests != ["pp16 (cold)", "tg4 @ d8 (cold)"]:
    failures.append(f"cold run: exit {r.returncode}, tests {tests}, stdout {r.stdout!r}, stderr {r.stderr[-500:]!r}")

for f in failures:
    print("FAILED:", f, file=sys.stderr)
print(f"bench_speed_cli_test: {len(failures)} failures")
sys.exit(1 if failures else 0)
