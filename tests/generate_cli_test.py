#!/usr/bin/env python3
"""examples/generate end to end: on smallcoder-nano, `--greedy --max-tokens 48 --print-ids`
reproduces all 9 golden greedy continuations of the PyTorch reference (the ids printed on
stderr equal `greedy_ids`, the streamed stdout equals `greedy_text`), from the Hugging Face
folder and from the original project's .pt checkpoint, and bad input exits with one
readable line: 2 for usage errors, 1 for everything else (a .pt whose pickle calls
os.system among them: refused, nothing run).

usage: generate_cli_test.py GENERATE_BINARY DATA_DIR
Without the data folder the test is skipped (exit 77), and fails in CI (CI set).
"""
import json
import os
import pickle
import subprocess
import sys
import tempfile
import zipfile

binary, data = os.path.abspath(sys.argv[1]), sys.argv[2]
nano = os.path.join(data, "models", "smallcoder-nano")
if not os.path.isfile(os.path.join(nano, "golden.json")):
    in_ci = os.environ.get("CI", "") not in ("", "false")
    print(f"generate_cli_test: reference data missing at {nano}", file=sys.stderr)
    sys.exit(1 if in_ci else 77)

failures = []


def run(args, stdin=None):
    return subprocess.run([binary] + args, input=stdin, capture_output=True, timeout=600,
                          env=dict(os.environ, OMP_WAIT_POLICY="PASSIVE"))


# The golden greedy continuations, from the folder and from the .pt (no tokenizer inside).
golden = json.load(open(os.path.join(nano, "golden.json"), encoding="utf-8"))
nano_pt = os.path.join(data, "models", "seed-pt", "smallcoder-nano_final.pt")
tokenizer = os.path.join(data, "tokenizer", "tokenizer.model")
for label, model_args in (("folder", ["--model", nano]), (".pt", ["--model", nano_pt, "--tokenizer", tokenizer])):
    for i, case in enumerate(golden["cases"]):
        r = run(model_args + ["--prompt", case["text"], "--greedy", "--max-tokens", "48", "--print-ids"])
        text = r.stdout.decode("utf-8")
        id_lines = [line for line in r.stderr.decode("utf-8").splitlines() if line.startswith("ids:")]
        ids = [int(t) for t in id_lines[0].split()[1:]] if len(id_lines) == 1 else None
        # sentencepiece's decode of the continuation alone drops its first leading space; the
        # streamed text after the prompt keeps it (the golden file's note).
        expected_text = case["greedy_text"]
        ok = r.returncode == 0 and ids == case["greedy_ids"] and text.removeprefix(" ") == expected_text
        print(f"{label} case {i}: {case['text'][:40]!r}: ids {'equal' if ids == case['greedy_ids'] else 'DIFFER'}, "
              f"text {'equal' if text.removeprefix(' ') == expected_text else 'DIFFERS'}")
        if not ok:
            failures.append(f"{label} case {i}: exit {r.returncode}, ids {ids}, text {text!r}, expected "
                            f"{case['greedy_ids']} {expected_text!r}")


def expect_error(args, status, needle, stdin=None):
    r = run(args, stdin)
    lines = r.stderr.decode("utf-8", "replace").splitlines()
    if not (r.returncode == status and len(lines) == 1 and needle in lines[0] and r.stdout == b""):
        failures.append(f"{args}: expected exit {status} and one line with {needle!r}, got exit "
                        f"{r.returncode}, stderr {r.stderr!r}, stdout {r.stdout[:200]!r}")


# Usage errors: exit 2, one line.
expect_error(["--bogus"], 2, "unknown argument '--bogus'")
expect_error(["--max-tokens", "many"], 2, "--max-tokens")
expect_error(["--top-p", "1.5"], 2, "--top-p")
expect_error(["--model"], 2, "--model")
expect_error(["--kv-cache", "f8"], 2, "--kv-cache must be f32, f16 or bf16")
# Everything else: exit 1, one line.
expect_error(["--model", os.path.join(data, "no-such-model"), "--prompt", "x"], 1, "no-such-model")
expect_error(["--model", nano, "--prompt", b"def f(\xff):"], 1, "UTF-8")
expect_error(["--model", nano, "--prompt", "x " * 5000], 1, "context")
with tempfile.TemporaryDirectory() as tmp:
    broken = os.path.join(tmp, "broken")
    os.mkdir(broken)
    for name in ("config.json", "tokenizer.model"):
        with open(os.path.join(nano, name), "rb") as src, open(os.path.join(broken, name), "wb") as dst:
            dst.write(src.read())
    with open(os.path.join(nano, "model.safetensors"), "rb") as src, \
         open(os.path.join(broken, "model.safetensors"), "wb") as dst:
        dst.write(src.read(4096))  # truncated
    expect_error(["--model", broken, "--prompt", "x"], 1, "model.safetensors")

    # .pt files: a pickle that would run a shell command, and a compressed archive.
    marker = os.path.join(tmp, "ran")

    class Shell:
        def __reduce__(self):
            return (os.system, ("touch " + marker,))

    evil = os.path.join(tmp, "evil.pt")
    with zipfile.ZipFile(evil, "w", zipfile.ZIP_STORED) as z:
        z.writestr("evil/data.pkl", pickle.dumps({"model_state_dict": Shell()}, protocol=2))
    expect_error(["--model", evil, "--tokenizer", tokenizer, "--prompt", "x"], 1,
                 f"global '{os.system.__module__}.system' is not allowed")  # posix.system on Linux
    if os.path.exists(marker):
        failures.append("the pickle's os.system ran")
    deflated = os.path.join(tmp, "deflated.pt")
    with zipfile.ZipFile(deflated, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("deflated/data.pkl", pickle.dumps({}, protocol=2))
    expect_error(["--model", deflated, "--tokenizer", tokenizer, "--prompt", "x"], 1, "compressed (method 8, deflate)")

for f in failures:
    print("FAILED:", f, file=sys.stderr)
print(f"generate_cli_test: {len(failures)} failures")
sys.exit(1 if failures else 0)
