// Writing a whole file safely: through a temporary beside it ("<path>.partial"), renamed
// into place only when every byte was written and the close succeeded, so a failed write
// never leaves a half-written file under the final name. The model writers share it.
#pragma once

#include <cerrno>
#include <cstdio>
#include <string>
#include <system_error>

#include "smallcoder/error.hpp"

namespace smallcoder {

// Calls write(out) on the open temporary; write returns false as soon as a write fails.
// Throws an Error naming `path` and the system's reason on any failure.
template <class Write>
inline void write_file_atomically(const std::string& path, Write&& write) {
  const std::string temp_path = path + ".partial";
  std::FILE* out = std::fopen(temp_path.c_str(), "wb");
  if (out == nullptr) fail(temp_path, "cannot create: " + std::generic_category().message(errno));
  bool ok = write(out);
  int error = ok ? 0 : errno;
  if (std::fclose(out) != 0 && ok) {
    ok = false;
    error = errno;
  }
  if (ok && std::rename(temp_path.c_str(), path.c_str()) != 0) {
    ok = false;
    error = errno;
  }
  if (!ok) {
    std::remove(temp_path.c_str());
    fail(path, "cannot write: " + std::generic_category().message(error));
  }
}

}  // namespace smallcoder
