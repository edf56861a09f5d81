#!/usr/bin/env bash
# Packs what tools/device_check.sh needs on a lent GPU machine into one small folder (the
# binaries of a CUDA build, stripped; smallcoder-nano, the tokenizer and the data README;
# the OpenMP runtime in case the machine lacks it), to carry along with the working tree.
#   tools/stage_device_check.sh BUILD_DIR [KIT_DIR]    (default KIT_DIR: .device/kit, git-ignored)
# Then, on the device machine: bash tools/device_check.sh KIT_DIR/build KIT_DIR/data
# It refuses binaries older than any header or source they are built from: a GPU run is
# too dear to spend on a stale build (run ninja first).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:?usage: tools/stage_device_check.sh BUILD_DIR [KIT_DIR]}
kit=${2:-.device/kit}
data=${SMALLCODER_TEST_DATA:-$(cd .. && pwd)/shared}

binaries=(tests/test_cuda examples/generate examples/cuda_speed examples/benchmark_variants)
for b in "${binaries[@]}"; do
  [ -x "$build/$b" ] || { echo "stage: $build/$b is missing: build with meson setup -Dcuda=enabled, then ninja" >&2; exit 1; }
  newer=$(find include examples tests/support tests/test_cuda.cu -newer "$build/$b" \( -name '*.hpp' -o -name '*.cu' -o \
    -name '*.cpp' \) -print -quit)
  if [ -n "$newer" ]; then
    echo "stage: $build/$b is older than $newer: run ninja -C $build first" >&2
    exit 1
  fi
done
[ -f "$data/models/smallcoder-nano/model.safetensors" ] || { echo "stage: no smallcoder-nano under $data" >&2; exit 1; }

rm -rf "$kit"
mkdir -p "$kit/build/tests" "$kit/build/examples" "$kit/data/models/smallcoder-nano" "$kit/data/tokenizer" "$kit/lib"
for b in "${binaries[@]}"; do strip -o "$kit/build/$b" "$build/$b"; done
for f in config.json model.safetensors tokenizer.model golden.json golden_last_logits.f32; do
  cp "$data/models/smallcoder-nano/$f" "$kit/data/models/smallcoder-nano/"
done
cp "$data/tokenizer/tokenizer.model" "$kit/data/tokenizer/"
cp "$data/README.md" "$kit/data/"  # the tests take its presence as "the reference data is here"
gomp=$(ldd "$build/tests/test_cuda" | awk '/libgomp/ {print $3}')
[ -z "$gomp" ] || cp -L "$gomp" "$kit/lib/"
du -sh "$kit"
