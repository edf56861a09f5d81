// check_error(f, {parts...}): f must throw smallcoder::Error whose message contains every
// part, so tests can assert that a message names the file, the field and the reason.
#pragma once

#include <doctest/doctest.h>

#include <functional>
#include <initializer_list>
#include <string>

#include "smallcoder/error.hpp"

namespace smallcoder::test {

// Returns the message (empty when nothing was thrown, which fails the test).
inline std::string check_error(const std::function<void()>& f, std::initializer_list<std::string> parts) {
  try {
    f();
  } catch (const Error& e) {
    const std::string message = e.what();
    CAPTURE(message);
    for (const std::string& part : parts) CHECK(message.find(part) != std::string::npos);
    return message;
  }
  FAIL("no Error was thrown");
  return "";
}

}  // namespace smallcoder::test
