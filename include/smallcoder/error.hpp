// The one exception type of smallcoder. Every message names where the problem
// is (a file, a field, a tensor) and why, so a user can act on it without a debugger.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>

namespace smallcoder {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Builds "where: what" messages: fail("model.safetensors", "header length 9 exceeds file size 8").
[[noreturn]] inline void fail(const std::string& where, const std::string& what) {
  throw Error(where.empty() ? what : where + ": " + what);
}

// Text from a file, made safe to put in a message: quoted, printable ASCII kept, other
// bytes as \xNN, cut to `max` bytes, so a hostile name cannot forge or flood a message.
inline std::string quote_untrusted(std::string_view text, std::size_t max = 80) {
  static const char hex[] = "0123456789abcdef";
  std::string out = "'";
  for (std::size_t i = 0; i < text.size() && i < max; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      out += {'\\', 'x', hex[c >> 4], hex[c & 15]};
    }
  }
  return out + (text.size() > max ? "'..." : "'");
}

}  // namespace smallcoder
