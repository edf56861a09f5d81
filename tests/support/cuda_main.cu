// The doctest main of the GPU tests: without a usable CUDA device (no GPU, no driver)
// they report SKIP (exit 77), in CI too, since CI machines have nvcc but no GPU; with
// one, the shared main (support/test_main.hpp).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <string>

#include "smallcoder/cuda/runtime.hpp"
#include "support/test_main.hpp"

int main(int argc, char** argv) {
  const std::string no_device = smallcoder::cuda::why_no_device();
  if (!no_device.empty()) {
    std::fprintf(stderr, "skipped: no CUDA device (%s)\n", no_device.c_str());
    return 77;
  }
  return smallcoder::test::run_test_main(argc, argv);
}
