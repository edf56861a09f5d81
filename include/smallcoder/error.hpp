// The one exception type of smallcoder. Every message names where the problem
// is (a file, a field, a tensor) and why, so a user can act on it without a debugger.
#pragma once

#include <stdexcept>
#include <string>

namespace smallcoder {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Builds "where: what" messages: fail("model.safetensors", "header length 9 exceeds file size 8").
[[noreturn]] inline void fail(const std::string& where, const std::string& what) {
  throw Error(where.empty() ? what : where + ": " + what);
}

}  // namespace smallcoder
