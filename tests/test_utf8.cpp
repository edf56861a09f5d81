#include <doctest/doctest.h>

#include <cstdint>
#include <random>
#include <string>

#include "smallcoder/text/utf8.hpp"

using namespace smallcoder;

namespace {

std::string encode_code_point(std::uint32_t cp) {
  std::string s;
  utf8_append(s, cp);
  return s;
}

// An independent statement of "well-formed": decode the bits the lead byte announces,
// then reject overlong forms, surrogates and values past U+10FFFF (how sentencepiece's
// DecodeUTF8 checks, rather than the second-byte ranges utf8.hpp uses).
std::size_t reference_length(const std::string& s) {
  const auto b = [&](std::size_t i) { return static_cast<std::uint32_t>(static_cast<unsigned char>(s[i])); };
  if (s.empty()) return 0;
  std::size_t n;
  std::uint32_t cp, min;
  if (b(0) < 0x80) return 1;
  if ((b(0) & 0xE0) == 0xC0) {
    n = 2, cp = b(0) & 0x1F, min = 0x80;
  } else if ((b(0) & 0xF0) == 0xE0) {
    n = 3, cp = b(0) & 0x0F, min = 0x800;
  } else if ((b(0) & 0xF8) == 0xF0) {
    n = 4, cp = b(0) & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (s.size() < n) return 0;
  for (std::size_t i = 1; i < n; ++i) {
    if ((b(i) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b(i) & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

// sentencepiece's decoding of a run of byte pieces: at each offset take a well-formed
// character, else write U+FFFD and move on by one byte.
std::string reference_decode(const std::string& bytes) {
  std::string out;
  for (std::size_t pos = 0; pos < bytes.size();) {
    const std::size_t n = reference_length(bytes.substr(pos));
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      ++pos;
    } else {
      out += bytes.substr(pos, n);
      pos += n;
    }
  }
  return out;
}

}  // namespace

TEST_CASE("utf8_char_length follows the lead byte") {
  for (int b = 0; b < 256; ++b) {
    int expected = 0;
    if (b < 0x80) expected = 1;
    else if (b >= 0xC2 && b <= 0xDF) expected = 2;
    else if (b >= 0xE0 && b <= 0xEF) expected = 3;
    else if (b >= 0xF0 && b <= 0xF4) expected = 4;
    CHECK(utf8_char_length(static_cast<unsigned char>(b)) == expected);
  }
}

TEST_CASE("every scalar value encodes to a sequence of its own length") {
  for (std::uint32_t cp = 0; cp <= 0x10FFFF; ++cp) {
    if (cp >= 0xD800 && cp <= 0xDFFF) continue;
    const std::string s = encode_code_point(cp);
    REQUIRE(utf8_sequence_length(s) == s.size());
    REQUIRE(utf8_sequence_length(s.substr(0, s.size() - 1)) == 0);  // cut short
  }
}

TEST_CASE("sequence length agrees with a bit-level decoder on all 1-3 byte inputs and random 4-byte ones") {
  std::string s(3, '\0');
  for (std::uint32_t v = 0; v < (1u << 24); ++v) {
    s[0] = static_cast<char>(v >> 16);
    s[1] = static_cast<char>(v >> 8);
    s[2] = static_cast<char>(v);
    if (utf8_sequence_length(s) != reference_length(s)) {
      FAIL("bytes " << (v >> 16) << " " << ((v >> 8) & 255) << " " << (v & 255));
    }
  }
  std::mt19937 rng(5);
  std::string four(4, '\0');
  for (int i = 0; i < 2000000; ++i) {
    const std::uint32_t v = rng();
    four[0] = static_cast<char>(0xF0 | ((v >> 24) & 0x0F));  // the interesting leads F0-FF
    four[1] = static_cast<char>(v >> 16);
    four[2] = static_cast<char>(0x80 | ((v >> 8) & 0x7F));
    four[3] = static_cast<char>(v);
    REQUIRE(utf8_sequence_length(four) == reference_length(four));
  }
}

TEST_CASE("utf8_find_invalid reports the first bad byte") {
  const auto npos = std::string_view::npos;
  CHECK(utf8_find_invalid("") == npos);
  CHECK(utf8_find_invalid("plain ascii \t\n") == npos);
  CHECK(utf8_find_invalid("caf\xC3\xA9 \xE6\xBC\xA2 \xF0\x9F\x98\x80 \xEF\xBF\xBD \xF4\x8F\xBF\xBF") == npos);
  CHECK(utf8_find_invalid(std::string("nul \0 ok", 8)) == npos);
  CHECK(utf8_find_invalid("\xC0\x80") == 0);           // overlong NUL
  CHECK(utf8_find_invalid("ab\xED\xA0\x80") == 2);     // surrogate U+D800
  CHECK(utf8_find_invalid("abc\xE2\x82") == 3);        // cut off at the end
  CHECK(utf8_find_invalid("\xF4\x90\x80\x80") == 0);   // past U+10FFFF
  CHECK(utf8_find_invalid("x\x80") == 1);              // stray continuation
  CHECK(utf8_find_invalid("\xE0\x9F\xBF") == 0);       // overlong 3-byte
  CHECK(utf8_find_invalid("\xF0\x8F\xBF\xBF") == 0);   // overlong 4-byte
  CHECK(utf8_find_invalid("\xC3\xA9\xFF") == 2);
}

TEST_CASE("Utf8Accumulator emits whole characters only and matches decoding the run at once") {
  std::mt19937 rng(11);
  const unsigned char interesting[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2,
                                       0xDF, 0xE0, 0xE1, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF4, 0xF5, 0xFF};
  for (int trial = 0; trial < 100000; ++trial) {
    std::string bytes;
    const int n = 1 + static_cast<int>(rng() % 12);
    for (int i = 0; i < n; ++i) {
      const std::uint32_t r = rng();
      if (r % 4 == 0) {
        bytes += static_cast<char>(r >> 8);
      } else if (r % 4 == 1) {
        bytes += static_cast<char>(0x80 | ((r >> 8) & 0x3F));
      } else if (r % 4 == 2) {
        std::uint32_t cp = (r >> 8) % 0x110000;
        if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0x41;
        bytes += encode_code_point(cp);
      } else {
        bytes += static_cast<char>(interesting[(r >> 8) % sizeof interesting]);
      }
    }
    Utf8Accumulator acc;
    std::string out;
    for (const char c : bytes) {
      const std::size_t before = out.size();
      acc.push(static_cast<unsigned char>(c), out);
      REQUIRE(utf8_find_invalid(std::string_view(out).substr(before)) == std::string_view::npos);
    }
    acc.finish(out);
    REQUIRE(acc.pending() == 0);
    REQUIRE(out == reference_decode(bytes));
  }
}

TEST_CASE("Utf8Accumulator holds back an incomplete character until it completes or fails") {
  Utf8Accumulator acc;
  std::string out;
  acc.push(0xF0, out);
  acc.push(0x9F, out);
  acc.push(0x98, out);
  CHECK(out.empty());
  CHECK(acc.pending() == 3);
  acc.push(0x80, out);
  CHECK(out == "\xF0\x9F\x98\x80");
  out.clear();
  acc.push(0xE2, out);
  acc.push(0x96, out);
  acc.push('A', out);  // E2 96 can no longer complete: two U+FFFD, then 'A'
  CHECK(out == "\xEF\xBF\xBD\xEF\xBF\xBD" "A");
  out.clear();
  acc.push(0xE0, out);
  acc.push(0x80, out);  // E0 80 is overlong whatever follows
  CHECK(out == "\xEF\xBF\xBD\xEF\xBF\xBD");
  out.clear();
  acc.push(0xC3, out);
  acc.finish(out);
  CHECK(out == "\xEF\xBF\xBD");
}
