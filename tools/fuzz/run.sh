#!/usr/bin/env bash
# Builds smallcoder's libFuzzer targets (clang++ -fsanitize=fuzzer,address,undefined) and runs
# each for N seconds (default 60) from its committed seed corpus (tools/fuzz/corpus/<target>).
# Exits non-zero on any finding: a crash, a sanitizer report, a leak, a slow input (>10 s) or
# one using more than 2 GB; the input that caused it is kept under $FUZZ_OUT/artifacts/<target>/.
#   tools/fuzz/run.sh [SECONDS] [TARGET...]     (targets: gguf safetensors tokenizer_model pt)
#   tools/fuzz/run.sh --seeds                   (regenerates the seed corpora with make_seeds.cpp)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${FUZZ_OUT:-$root/build-fuzz}
cxx=${CXX_FUZZ:-$(command -v clang++ || command -v clang++-14)}
common=(-std=c++17 -g -I"$root/include")
mkdir -p "$out"

if [ "${1:-}" = "--seeds" ]; then
  "$cxx" "${common[@]}" -O1 "$root/tools/fuzz/make_seeds.cpp" -o "$out/make_seeds"
  "$out/make_seeds" "$root/tools/fuzz/corpus"
  exit 0
fi

seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(gguf safetensors tokenizer_model pt)

for t in "${targets[@]}"; do
  echo "fuzz: building fuzz_$t"
  "$cxx" "${common[@]}" -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    "$root/tools/fuzz/fuzz_$t.cpp" -o "$out/fuzz_$t"
done

status=0
for t in "${targets[@]}"; do
  work="$out/corpus/$t"
  artifacts="$out/artifacts/$t"
  mkdir -p "$work" "$artifacts"
  echo "fuzz: running fuzz_$t for ${seconds}s"
  if "$out/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
      -artifact_prefix="$artifacts/" -print_final_stats=1 "$work" "$root/tools/fuzz/corpus/$t" \
      >"$out/fuzz_$t.log" 2>&1; then
    echo "fuzz: fuzz_$t: no finding ($(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$out/fuzz_$t.log" | grep -o '[0-9]*$') runs)"
  else
    status=1
    echo "fuzz: fuzz_$t: FINDING (log: $out/fuzz_$t.log, inputs: $artifacts)"
    grep -m5 -E 'ERROR|SUMMARY|runtime error' "$out/fuzz_$t.log" || true
  fi
done
exit $status
