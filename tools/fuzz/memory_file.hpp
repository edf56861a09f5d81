// Gives a fuzz input a path: smallcoder's readers map files, so each input is written to
// one anonymous in-memory file (memfd), reused across runs and opened by its /proc path.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include <sys/mman.h>
#include <unistd.h>

namespace fuzz {

inline std::string memory_file(const std::uint8_t* data, std::size_t size) {
  static const int fd = memfd_create("smallcoder-fuzz-input", MFD_CLOEXEC);
  if (fd < 0 || ftruncate(fd, 0) != 0) std::abort();
  for (std::size_t done = 0; done < size;) {
    const ssize_t n = pwrite(fd, data + done, size - done, static_cast<off_t>(done));
    if (n <= 0) std::abort();
    done += static_cast<std::size_t>(n);
  }
  return "/proc/self/fd/" + std::to_string(fd);
}

// Reads every byte of a view so AddressSanitizer checks that it lies inside the mapping.
inline std::uint8_t touch(const std::byte* data, std::size_t n) {
  std::uint8_t x = 0;
  for (std::size_t i = 0; i < n; ++i) x ^= static_cast<std::uint8_t>(data[i]);
  return x;
}

}  // namespace fuzz
