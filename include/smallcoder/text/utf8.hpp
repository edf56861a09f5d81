// UTF-8 helpers for the tokenizer: strict validation (the encoder rejects bad input
// by byte offset) and an incremental byte accumulator that turns byte-fallback tokens
// into text one byte at a time, emitting U+FFFD exactly where sentencepiece does.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace smallcoder {

// U+FFFD REPLACEMENT CHARACTER, what decoding writes for each byte that cannot be
// part of a well-formed character.
inline constexpr std::string_view utf8_replacement = "\xEF\xBF\xBD";

// Appends the UTF-8 encoding of a scalar value (at most U+10FFFF, not a surrogate: the
// caller has checked).
inline void utf8_append(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
}

// Length of the character a lead byte starts: 1-4, or 0 for a byte that never starts
// a well-formed character (continuation bytes 80-BF, overlong leads C0/C1, F5-FF).
inline int utf8_char_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead < 0xC2) return 0;
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  if (lead < 0xF5) return 4;
  return 0;
}

// Whether `byte` may follow at position `index` (1-3) of a character that starts with
// `lead`. The second byte's narrower ranges rule out overlong forms (E0, F0), UTF-16
// surrogates (ED) and code points above U+10FFFF (F4), so a sequence that passes is a
// well-formed scalar value (Unicode table 3-7).
inline bool utf8_continues(unsigned char lead, std::size_t index, unsigned char byte) {
  unsigned char lo = 0x80;
  unsigned char hi = 0xBF;
  if (index == 1) {
    if (lead == 0xE0) lo = 0xA0;
    if (lead == 0xED) hi = 0x9F;
    if (lead == 0xF0) lo = 0x90;
    if (lead == 0xF4) hi = 0x8F;
  }
  return byte >= lo && byte <= hi;
}

// Length of the well-formed character at the start of `s`, or 0 when the bytes there
// are not one (bad lead, bad continuation, or cut off by the end of `s`).
inline std::size_t utf8_sequence_length(std::string_view s) {
  if (s.empty()) return 0;
  const auto lead = static_cast<unsigned char>(s[0]);
  const auto length = static_cast<std::size_t>(utf8_char_length(lead));
  if (length == 0 || length > s.size()) return 0;
  for (std::size_t i = 1; i < length; ++i) {
    if (!utf8_continues(lead, i, static_cast<unsigned char>(s[i]))) return 0;
  }
  return length;
}

// Offset of the first byte that does not start a well-formed character, or npos when
// all of `s` is valid UTF-8.
inline std::size_t utf8_find_invalid(std::string_view s) {
  std::size_t pos = 0;
  while (pos < s.size()) {
    const std::size_t length = utf8_sequence_length(s.substr(pos));
    if (length == 0) return pos;
    pos += length;
  }
  return std::string_view::npos;
}

// Collects bytes that arrive one at a time and appends text as soon as it is final:
// each completed character, or one U+FFFD per byte once it is certain that the pending
// bytes cannot become a character. That per-byte replacement is how sentencepiece
// decodes a run of byte tokens (it consumes one byte per invalid position), so feeding
// a run here and calling finish() gives the same text as decoding it whole.
class Utf8Accumulator {
 public:
  void push(unsigned char byte, std::string& out) {
    if (count_ > 0) {
      if (utf8_continues(pending_[0], count_, byte)) {
        pending_[count_++] = byte;
        if (count_ == needed_) {
          out.append(reinterpret_cast<const char*>(pending_), count_);
          count_ = 0;
        }
        return;
      }
      // The pending lead can no longer complete. The bytes after it are continuation
      // bytes, invalid on their own, so each pending byte becomes one U+FFFD and
      // `byte` is looked at afresh as a lead.
      finish(out);
    }
    const int length = utf8_char_length(byte);
    if (length == 1) {
      out.push_back(static_cast<char>(byte));
    } else if (length == 0) {
      out.append(utf8_replacement);
    } else {
      pending_[0] = byte;
      count_ = 1;
      needed_ = static_cast<std::size_t>(length);
    }
  }

  // Ends the run: a character still incomplete is invalid, one U+FFFD per byte.
  void finish(std::string& out) {
    for (std::size_t i = 0; i < count_; ++i) out.append(utf8_replacement);
    count_ = 0;
  }

  // Number of bytes held back because they may still become a character.
  std::size_t pending() const { return count_; }

 private:
  unsigned char pending_[4] = {};
  std::size_t count_ = 0;
  std::size_t needed_ = 0;
};

}  // namespace smallcoder
