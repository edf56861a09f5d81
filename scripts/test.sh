#!/usr/bin/env bash
# Installs what is missing, builds smallcoder (release) and runs its test suite.
# The reference data is expected in ../shared beside the checkout (or SMALLCODER_TEST_DATA).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
build=${SMALLCODER_BUILD_DIR:-build}
data=${SMALLCODER_TEST_DATA:-$(cd .. && pwd)/shared}
# A build folder that a failed or interrupted setup left behind is set up afresh.
if [ -f "$build/meson-private/coredata.dat" ]; then
  meson configure "$build" -Dtests=true -Dtest_data="$data" >/dev/null
else
  rm -rf "$build"
  meson setup "$build" -Dbuildtype=release -Dtest_data="$data"
fi
ninja -C "$build"
meson test -C "$build" --print-errorlogs "$@"
