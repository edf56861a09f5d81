#!/usr/bin/env bash
# The aarch64 check: installs what is missing, cross-builds smallcoder's tests with Debian's
# g++-aarch64-linux-gnu (scripts/aarch64-linux-gnu.ini) and runs them under qemu-user at each
# aarch64 kernel level: scalar, neon (on an emulated Cortex-A72, which lacks the dot products)
# and dotprod (on qemu's 'max' CPU), one build, the level and CPU chosen per test by its
# environment. It runs the Meson suite 'cross': every unit test but those too slow emulated,
# and the README example; the programs that run no kernels once (tests/meson.build says which).
# The reference data is expected in ../shared beside the checkout (or SMALLCODER_TEST_DATA).
# Arguments go to meson test.
set -euo pipefail
cd "$(dirname "$0")/.."
# qemu-user, not qemu-user-static: the cross file names its qemu-aarch64; no binfmt needed.
scripts/install-deps.sh g++-aarch64-linux-gnu qemu-user
build=${SMALLCODER_BUILD_DIR:-build-aarch64}
data=${SMALLCODER_TEST_DATA:-$(cd .. && pwd)/shared}
# A build folder that a failed or interrupted setup left behind is set up afresh.
if [ -f "$build/meson-private/coredata.dat" ]; then
  meson configure "$build" -Dtest_data="$data" >/dev/null
else
  rm -rf "$build"
  # No examples: their command-line tests start the tools directly, where qemu cannot come in.
  meson setup "$build" --cross-file scripts/aarch64-linux-gnu.ini -Dbuildtype=release -Dexamples=false \
    -Dtest_data="$data"
fi
ninja -C "$build" -j "$(nproc)"
meson test -C "$build" --print-errorlogs --suite cross "$@"
