#!/usr/bin/env python3
"""The benchmark tool's command line: usage errors exit 2 and bad models exit 1, each with
one line on stderr and nothing on stdout; a tiny real run writes the table, the JSON and
the markdown.

usage: benchmark_cli_test.py BENCHMARK_BINARY DATA_DIR cpu|cuda
(cuda: the binary was built with the CUDA backend, so --device cuda is not a usage error)
"""
import gzip
import json
import os
import subprocess
import sys
import tempfile

binary, data, built_for = os.path.abspath(sys.argv[1]), sys.argv[2], sys.argv[3]
nano = os.path.join(data, "models", "smallcoder-nano")
have_data = os.path.isfile(os.path.join(data, "README.md"))
in_ci = os.environ.get("CI", "") not in ("", "false")
failures = []


def run(args, cwd=None):
    return subprocess.run([binary] + args, capture_output=True, text=True, cwd=cwd, timeout=600)


def expect_error(args, status, needle):
    r = run(args)
    lines = r.stderr.splitlines()
    ok = r.returncode == status and len(lines) == 1 and needle in lines[0] and r.stdout == ""
    if not ok:
        failures.append(f"{args}: expected exit {status} and one line with {needle!r}, got exit {r.returncode}, "
                        f"stderr {r.stderr!r}, stdout {r.stdout[:200]!r}")


# Usage errors: exit 2, one line.
expect_error(["--bogus"], 2, "unknown argument '--bogus'")
expect_error(["--variants", "SmallCoder-Huge"], 2, "unknown variant 'SmallCoder-Huge'")
expect_error(["--variants"], 2, "--variants needs at least one value")
expect_error(["--suite", "seed9"], 2, "unknown suite 'seed9'")
expect_error(["--humaneval", "problems.jsonl"], 2, "--humaneval needs --suite humaneval")
expect_error(["--max-tokens", "abc"], 2, "--max-tokens expects an integer")
expect_error(["--max-tokens", "0"], 2, "--max-tokens must be in")
expect_error(["--num-prompts", "9"], 2, "exceeds the 8 prompts of suite seed8")
expect_error(["--suite", "tasks15", "--num-prompts", "16"], 2, "exceeds the 15 prompts")
expect_error(["--threads", "-1"], 2, "--threads must be in")
expect_error(["--dtype", "q9_9"], 2, "unknown dtype 'q9_9'")
expect_error(["--device", "tpu"], 2, "--device must be cpu or cuda")
expect_error(["--kv-cache", "q8_0"], 2, "--kv-cache must be f32, f16 or bf16")
expect_error(["--model", "SmallCoder-Huge=/nowhere"], 2, "unknown variant 'SmallCoder-Huge'")
expect_error(["--model", "SmallCoder-Tiny="], 2, "no path after '='")
if built_for != "cuda":
    expect_error(["--device", "cuda"], 2, "built without CUDA")

# Bad models: exit 1, one line, before anything runs.
expect_error(["--model", "/nonexistent/model"], 1, "/nonexistent/model")
expect_error(["--suite", "humaneval", "--humaneval", "/nonexistent/HumanEval.jsonl.gz"], 1, "/nonexistent/HumanEval.jsonl.gz")
expect_error(["--model", "SmallCoder-Tiny=/nonexistent/model"], 1, "/nonexistent/model")
with tempfile.TemporaryDirectory() as tmp:
    broken = os.path.join(tmp, "broken")
    os.mkdir(broken)
    with open(os.path.join(broken, "config.json"), "w") as f:
        f.write("{not json")
    expect_error(["--model", broken], 1, "config.json")

r = run(["--list-variants"])
if r.returncode != 0 or sum(line.startswith("SmallCoder-") for line in r.stdout.splitlines()) != 6:
    failures.append(f"--list-variants: exit {r.returncode}, stdout {r.stdout!r}")

if not have_data:
    if in_ci:
        failures.append(f"reference data not found at {data}; CI requires it")
    else:
        print(f"skipped the cases that need {data} (not found)")
else:
    expect_error(["--model", "SmallCoder-Small=" + nano], 1, "hidden_size is 256, the variant has 960")
    expect_error(["--model", "SmallCoder-Tiny-LC=" + nano], 1, "the checkpoint is not SmallCoder-Tiny-LC")
    with tempfile.TemporaryDirectory() as tmp:
        # A tiny real run on the trained nano model: the table on stdout, the reports written.
        r = run(["--model", nano, "--quick", "--num-prompts", "2", "--max-tokens", "4", "--greedy", "--quiet",
                 "--kv-cache", "bf16", "--output", "out.json", "--markdown", "out.md"], cwd=tmp)
        if r.returncode != 0 or r.stderr != "":
            failures.append(f"nano run: exit {r.returncode}, stderr {r.stderr!r}")
        else:
            lines = r.stdout.splitlines()
            if not any(line.startswith("smallcoder-nano ") for line in lines) or "BW limit" not in r.stdout:
                failures.append(f"nano run: no table row on stdout: {r.stdout!r}")
            results = json.load(open(os.path.join(tmp, "out.json")))
            summary = results["smallcoder-nano"]["summary"]
            details = results["smallcoder-nano"]["detailed_results"]
            if (list(results) != ["smallcoder-nano"] or summary["total_prompts"] != 2 or len(details) != 2
                    or summary["format"] != "safetensors" or summary["run"]["greedy"] is not True
                    or summary["kv_cache_type"] != "bf16"
                    or any(d["tokens_generated"] != 4 for d in details)):
                failures.append(f"nano run: unexpected JSON {json.dumps(summary)[:400]}")
            if summary["tests_run"] != 2 or summary["pass_at_1"] is None or "Pass@1" not in r.stdout:
                failures.append(f"nano run: no pass@1: {json.dumps(summary)[:400]}")
            markdown = open(os.path.join(tmp, "out.md")).read()
            if "## Speed vs Quality" not in markdown or "## Memory vs Performance" not in markdown:
                failures.append("nano run: markdown lacks the charts")

        # --suite humaneval on two of its problems (an uncompressed copy): HumanEval's stop
        # sequences end the completions, its own tests score them.
        with gzip.open(os.path.join(data, "eval", "humaneval", "HumanEval.jsonl.gz"), "rt") as f:
            problems = [f.readline() for _ in range(2)]
        with open(os.path.join(tmp, "two.jsonl"), "w") as f:
            f.writelines(problems)
        r = run(["--model", nano, "--suite", "humaneval", "--humaneval", "two.jsonl", "--max-tokens", "24", "--greedy",
                 "--quiet", "--output", "he.json"], cwd=tmp)
        if r.returncode != 0 or r.stderr != "":
            failures.append(f"humaneval run: exit {r.returncode}, stderr {r.stderr!r}")
        else:
            results = json.load(open(os.path.join(tmp, "he.json")))["smallcoder-nano"]
            summary, details = results["summary"], results["detailed_results"]
            names = [d["name"] for d in details]
            if (names != ["HumanEval/0", "HumanEval/1"] or summary["run"]["suite"] != "humaneval"
                    or summary["tests_run"] != 2 or summary["pass_at_1"] is None
                    or any(d["category"] != "humaneval" or d["passed"] is None for d in details)
                    or any(stop in d["completion"] for d in details for stop in ("\ndef", "\nclass", "\nif", "\nprint", "\n#"))):
                failures.append(f"humaneval run: unexpected JSON {json.dumps(results)[:600]}")
            if "HumanEval/1" not in r.stdout or "n/a" not in r.stdout:  # no keywords: Quality n/a
                failures.append(f"humaneval run: unexpected table {r.stdout!r}")

for f in failures:
    print("FAIL:", f)
print(f"{'FAILED' if failures else 'OK'}: benchmark command line")
sys.exit(1 if failures else 0)
