// The doctest main shared by every test program (see support/test_main.hpp).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "support/test_main.hpp"

int main(int argc, char** argv) { return smallcoder::test::run_test_main(argc, argv); }
