// Resident-size bounds in tests. AddressSanitizer adds shadow memory and keeps freed blocks
// in quarantine, so resident sizes there say nothing about the runtime's own footprint:
// only the normal build asserts the bounds (checks on addresses and mappings run everywhere).
#pragma once

#include <doctest/doctest.h>

#include <cstddef>
#include <string>

namespace smallcoder::test {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kResidentSizeIsMeaningful = false;
#else
constexpr bool kResidentSizeIsMeaningful = true;
#endif

// Checks a resident-size bound where it means something; otherwise only reports it.
inline void check_resident(bool ok, const std::string& what) {
  if (kResidentSizeIsMeaningful) {
    CHECK_MESSAGE(ok, what);
  } else if (!ok) {
    MESSAGE("not asserted under AddressSanitizer (shadow memory and quarantine): " << what);
  }
}

inline double mib(std::size_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0); }

}  // namespace smallcoder::test
