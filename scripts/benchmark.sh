#!/usr/bin/env bash
# Installs what is missing, builds smallcoder (release) and runs the benchmark on its
# default: all six SmallCoder variants with deterministic random weights (bf16).
# Arguments are passed to the benchmark (try --quick, or --help). Only the benchmark writes
# to stdout; the set-up (apt, meson, ninja) logs to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
build=${SMALLCODER_BUILD_DIR:-build}
# A build folder that a failed or interrupted setup left behind is set up afresh.
if [ ! -f "$build/meson-private/coredata.dat" ]; then
  rm -rf "$build"
  meson setup "$build" -Dbuildtype=release >&2
fi
ninja -C "$build" examples/benchmark_variants >&2
exec "$build/examples/benchmark_variants" "$@"
