// The body of every test program's main: the reference-data check, then doctest. Tests
// that read the reference data in ../shared are registered with SMALLCODER_TEST_NEEDS_DATA=1:
// when that folder is missing they report SKIP (exit 77) on a developer machine, and FAIL
// in CI (CI set), so a CI run can never pass by silently skipping them.
#pragma once

#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <sys/stat.h>

#include "support/test_data.hpp"

namespace smallcoder::test {

inline int run_test_main(int argc, char** argv) {
  const char* needs = std::getenv("SMALLCODER_TEST_NEEDS_DATA");
  if (needs != nullptr && std::string(needs) == "1") {
    const std::string dir = data_dir();
    struct stat st {};
    if (stat((dir + "/README.md").c_str(), &st) != 0) {
      const char* ci = std::getenv("CI");
      if (ci != nullptr && *ci != '\0' && std::string(ci) != "false") {
        std::fprintf(stderr, "error: reference data not found at '%s' (set SMALLCODER_TEST_DATA); CI requires it\n",
                     dir.c_str());
        return 1;
      }
      std::fprintf(stderr, "skipped: reference data not found at '%s' (set SMALLCODER_TEST_DATA)\n", dir.c_str());
      return 77;
    }
  }
  doctest::Context context(argc, argv);
  return context.run();
}

}  // namespace smallcoder::test
