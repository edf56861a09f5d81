#!/usr/bin/env bash
# The 4 GiB RAM check: runs the (release) benchmark in --quick mode on all six variants,
# Medium-LC with its 8192-token cache included, under a 4 GiB address-space limit, fails if
# anything fails, and prints the peak resident set of every variant.
#   usage: scripts/check_4gib.sh BENCHMARK_BINARY [more benchmark flags, e.g. --dtype q8_0]
# Threads default to at most 4 (what a 4 GB machine has): every thread that allocates gets
# a malloc arena whose 64 MiB reservation counts against the limit, so a 64-core CI runner
# would otherwise measure its own core count rather than the model.
set -euo pipefail

if [ $# -lt 1 ] || [ ! -x "$1" ]; then
  echo "usage: $0 BENCHMARK_BINARY [benchmark flags...]" >&2
  exit 2
fi
binary=$1
shift
limit_kib=4194304

threads=()
case " $* " in
  *" --threads"*) ;;
  *) threads=(--threads "$(( $(nproc) < 4 ? $(nproc) : 4 ))") ;;
esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
json=$work/results.json

echo "check_4gib: $binary --quick ${threads[*]} $* under ulimit -v $limit_kib (4 GiB)" >&2
status=0
(
  ulimit -v "$limit_kib"
  exec "$binary" --quick --output "$json" "${threads[@]}" "$@"
) >"$work/table.txt" || status=$?
cat "$work/table.txt"
if [ "$status" -ne 0 ]; then
  echo "check_4gib: FAILED: the benchmark exited with status $status under a 4 GiB address-space limit" >&2
  exit 1
fi

python3 - "$json" <<'EOF'
import json, sys
results = json.load(open(sys.argv[1]))
expected = ["SmallCoder-Tiny", "SmallCoder-Small", "SmallCoder-Medium",
            "SmallCoder-Tiny-LC", "SmallCoder-Small-LC", "SmallCoder-Medium-LC"]
missing = [v for v in expected if v not in results]
if missing:
    sys.exit("check_4gib: FAILED: no results for " + ", ".join(missing))
print("\npeak resident set per variant (4 GiB address-space limit):")
print(f"{'variant':22} {'peak RSS':>10} {'weights':>9} {'KV cache':>9} {'context':>8}")
for name, data in results.items():
    s = data["summary"]
    m = s["memory_stats"]
    if not data["detailed_results"] or any(d["tokens_generated"] < 1 for d in data["detailed_results"]):
        sys.exit(f"check_4gib: FAILED: {name} generated nothing")
    note = "" if m["peak_is_per_variant"] else "  (process peak: the OS could not reset it)"
    print(f"{name:22} {m['peak_rss_mb']:7.1f} MB {m['weights_mb']:6.1f} MB {m['kv_cache_mb']:6.1f} MB "
          f"{s['kv_cache_positions']:8d}{note}")
print("check_4gib: OK: every variant ran within 4 GiB")
EOF
