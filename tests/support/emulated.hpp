// How the tests run under emulation: the aarch64 cross build runs them under qemu-user at
// each kernel level (tests/meson.build), where every program takes 10 to 30 times longer
// than natively, float arithmetic most of all.
#pragma once

#include <doctest/doctest.h>

#include <cstdlib>
#include <string>

namespace smallcoder::test {

// The doctest suite of test cases that run none of the CPU kernels yet take seconds
// emulated, in programs whose other cases run them. The cross build runs them at the scalar
// level only, as it runs the programs without kernels, and leaves them out of its runs at
// the SIMD levels, where they would compute the same again. Native builds run every case.
inline const doctest::test_suite kNoKernels("no_kernels");

// Whether this run is emulated (SMALLCODER_TEST_EMULATED=1, which the cross build sets): a
// test may then take a smaller case of what it checks in full natively.
inline bool emulated() {
  const char* env = std::getenv("SMALLCODER_TEST_EMULATED");
  return env != nullptr && std::string(env) == "1";
}

}  // namespace smallcoder::test
