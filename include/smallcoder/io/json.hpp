// A strict RFC 8259 JSON reader (config.json, safetensors headers, test data) and
// json_quote for writers. Corrupt or hostile text gives an Error naming the line and
// column, never a crash: nesting is capped, integers are read exactly, UTF-8 is checked.
#pragma once

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

#include "smallcoder/error.hpp"
#include "smallcoder/text/utf8.hpp"

namespace smallcoder {

namespace detail {
class JsonParser;
}

class JsonValue {
 public:
  enum class Kind { null, boolean, number, string, array, object };
  using Array = std::vector<JsonValue>;
  using Object = std::vector<std::pair<std::string, JsonValue>>;  // file order

  JsonValue() = default;  // null

  Kind kind() const { return static_cast<Kind>(value_.index()); }
  bool is_null() const { return kind() == Kind::null; }
  bool is_bool() const { return kind() == Kind::boolean; }
  bool is_number() const { return kind() == Kind::number; }
  bool is_string() const { return kind() == Kind::string; }
  bool is_array() const { return kind() == Kind::array; }
  bool is_object() const { return kind() == Kind::object; }

  // Typed accessors: `where` names the value for the error, e.g.
  // "config.json: field 'hidden_size'" -> "config.json: field 'hidden_size': expected a number, got string".
  bool as_bool(const std::string& where) const { return expect<bool>(Kind::boolean, where); }
  double as_double(const std::string& where) const { return expect<Number>(Kind::number, where).value; }
  // Only numbers written as integers (no fraction, no exponent) that fit in int64; they
  // are parsed exactly from the text, so 9007199254740993 stays 9007199254740993.
  std::int64_t as_int(const std::string& where) const {
    const Number& n = expect<Number>(Kind::number, where);
    if (n.form == IntForm::too_large) fail(where, "integer " + format_double(n.value) + " does not fit in 64 bits");
    if (n.form == IntForm::not_integer) fail(where, "expected an integer, got " + format_double(n.value));
    return n.integer;
  }
  const std::string& as_string(const std::string& where) const { return expect<std::string>(Kind::string, where); }
  const Array& as_array(const std::string& where) const { return expect<Array>(Kind::array, where); }
  const Object& as_object(const std::string& where) const { return expect<Object>(Kind::object, where); }

  // The member named `key`, or nullptr (also when this is not an object).
  const JsonValue* find(std::string_view key) const {
    const Object* object = std::get_if<Object>(&value_);
    if (object == nullptr) return nullptr;
    for (const auto& member : *object) {
      if (member.first == key) return &member.second;
    }
    return nullptr;
  }
  // A required member: Error "where: missing field 'key'" when absent.
  const JsonValue& at(std::string_view key, const std::string& where) const {
    as_object(where);
    const JsonValue* member = find(key);
    if (member == nullptr) fail(where, "missing field '" + std::string(key) + "'");
    return *member;
  }

  static const char* kind_name(Kind kind) {
    static const char* const names[] = {"null", "boolean", "number", "string", "array", "object"};
    return names[static_cast<int>(kind)];
  }

 private:
  friend class detail::JsonParser;

  // How a number was written, so that as_int never goes through a double.
  enum class IntForm : std::uint8_t { exact, too_large, not_integer };
  struct Number {
    double value = 0;
    std::int64_t integer = 0;  // valid when form == exact
    IntForm form = IntForm::not_integer;
  };

  template <typename T>
  const T& expect(Kind kind, const std::string& where) const {
    if (this->kind() != kind) {
      const char* article = kind == Kind::array || kind == Kind::object ? "an " : "a ";
      fail(where, std::string("expected ") + article + kind_name(kind) + ", got " + kind_name(this->kind()));
    }
    return std::get<T>(value_);
  }

  // Shortest text that reads back as the same double (for messages).
  static std::string format_double(double value) {
    char buffer[32];
    const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
    return std::string(buffer, result.ptr);
  }

  // The alternatives are in Kind's order: kind() is the variant's index.
  std::variant<std::monostate, bool, Number, std::string, Array, Object> value_;
};

// Growing arrays then move their elements instead of copying whole subtrees.
static_assert(std::is_nothrow_move_constructible<JsonValue>::value, "JsonValue must move without throwing");

namespace detail {

// Recursive descent over the text; recursion depth is bounded by max_depth, so a
// "[[[[..." bomb is an Error, not a stack overflow.
class JsonParser {
 public:
  static constexpr int max_depth = 512;

  JsonParser(std::string_view text, const std::string& where) : text_(text), where_(where) {}

  JsonValue parse_document() {
    skip_whitespace();
    JsonValue value = parse_value(0);
    skip_whitespace();
    if (pos_ < text_.size()) error("unexpected " + describe(pos_) + " after the JSON value");
    return value;
  }

 private:
  using Number = JsonValue::Number;
  using IntForm = JsonValue::IntForm;

  [[noreturn]] void error_at(std::size_t offset, const std::string& reason) const {
    // Lines count '\n'; columns count code points (not continuation bytes), from 1.
    std::size_t line = 1, column = 1;
    for (std::size_t i = 0; i < offset && i < text_.size(); ++i) {
      const auto byte = static_cast<unsigned char>(text_[i]);
      if (byte == '\n') {
        ++line;
        column = 1;
      } else if ((byte & 0xc0) != 0x80) {
        ++column;
      }
    }
    fail(where_, "line " + std::to_string(line) + " column " + std::to_string(column) + ": " + reason);
  }
  [[noreturn]] void error(const std::string& reason) const { error_at(pos_, reason); }

  // "'x'" for printable ASCII, "byte 0xNN" otherwise, "end of input" past the end.
  std::string describe(std::size_t offset) const {
    if (offset >= text_.size()) return "end of input";
    const auto byte = static_cast<unsigned char>(text_[offset]);
    if (byte > 0x20 && byte < 0x7f) return std::string("'") + static_cast<char>(byte) + "'";
    static const char hex[] = "0123456789abcdef";
    return std::string("byte 0x") + hex[byte >> 4] + hex[byte & 15];
  }

  bool at_end() const { return pos_ >= text_.size(); }
  char peek() const { return at_end() ? '\0' : text_[pos_]; }

  void skip_whitespace() {
    while (!at_end() && (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n' || text_[pos_] == '\r')) {
      ++pos_;
    }
  }

  JsonValue parse_value(int depth) {
    if (at_end()) error("unexpected end of input, expected a value");
    JsonValue out;
    const char c = text_[pos_];
    if (c == '{' || c == '[') {
      if (depth >= max_depth) error("nesting deeper than " + std::to_string(max_depth) + " levels");
      if (c == '{') {
        out.value_ = parse_object(depth + 1);
      } else {
        out.value_ = parse_array(depth + 1);
      }
    } else if (c == '"') {
      out.value_ = parse_string();
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      out.value_ = parse_number();
    } else if (c == 't') {
      expect_literal("true");
      out.value_ = true;
    } else if (c == 'f') {
      expect_literal("false");
      out.value_ = false;
    } else if (c == 'n') {
      expect_literal("null");
    } else {
      error("unexpected " + describe(pos_) + ", expected a value");
    }
    return out;
  }

  void expect_literal(std::string_view literal) {
    if (text_.substr(pos_, literal.size()) != literal) error("invalid literal, expected '" + std::string(literal) + "'");
    pos_ += literal.size();
  }

  JsonValue::Array parse_array(int depth) {
    JsonValue::Array array;
    ++pos_;  // '['
    skip_whitespace();
    if (peek() == ']') {
      ++pos_;
      return array;
    }
    for (;;) {
      array.push_back(parse_value(depth));
      skip_whitespace();
      if (peek() == ']') {
        ++pos_;
        return array;
      }
      if (peek() != ',') error("expected ',' or ']' after an array element, got " + describe(pos_));
      ++pos_;
      skip_whitespace();
      if (peek() == ']') error("trailing comma before ']'");
    }
  }

  JsonValue::Object parse_object(int depth) {
    JsonValue::Object object;
    std::vector<std::size_t> key_offsets;  // where each key starts, for the duplicate error
    ++pos_;  // '{'
    skip_whitespace();
    if (peek() == '}') {
      ++pos_;
      return object;
    }
    for (;;) {
      if (peek() != '"') error("expected a string key, got " + describe(pos_));
      key_offsets.push_back(pos_);
      std::string key = parse_string();
      skip_whitespace();
      if (peek() != ':') error("expected ':' after key '" + key + "', got " + describe(pos_));
      ++pos_;
      skip_whitespace();
      JsonValue value = parse_value(depth);
      object.emplace_back(std::move(key), std::move(value));
      skip_whitespace();
      if (peek() == '}') {
        ++pos_;
        break;
      }
      if (peek() != ',') error("expected ',' or '}' after an object member, got " + describe(pos_));
      ++pos_;
      skip_whitespace();
      if (peek() == '}') error("trailing comma before '}'");
    }
    // Views into the finished vector stay valid: it no longer changes. Hashing keeps
    // this linear, so a header with a million keys cannot make it quadratic.
    std::unordered_set<std::string_view> seen;
    seen.reserve(object.size());
    for (std::size_t i = 0; i < object.size(); ++i) {
      if (!seen.insert(object[i].first).second) error_at(key_offsets[i], "duplicate key '" + object[i].first + "'");
    }
    return object;
  }

  // Four hex digits after "\u" at pos_ (pos_ is on the 'u'); advances past them.
  std::uint32_t parse_hex4() {
    const std::size_t escape_start = pos_ - 1;
    if (text_.size() - pos_ < 5) error_at(escape_start, "invalid \\u escape: expected 4 hex digits");
    std::uint32_t value = 0;
    for (std::size_t i = 1; i <= 4; ++i) {
      const char c = text_[pos_ + i];
      std::uint32_t digit = 0;
      if (c >= '0' && c <= '9') {
        digit = static_cast<std::uint32_t>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        digit = static_cast<std::uint32_t>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        digit = static_cast<std::uint32_t>(c - 'A' + 10);
      } else {
        error_at(escape_start, "invalid \\u escape: expected 4 hex digits");
      }
      value = value * 16 + digit;
    }
    pos_ += 5;
    return value;
  }

  std::string parse_string() {
    const std::size_t start = pos_;
    ++pos_;  // opening quote
    std::string out;
    for (;;) {
      // Copy the run of bytes that need no decoding in one go.
      const std::size_t run_start = pos_;
      while (!at_end()) {
        const auto byte = static_cast<unsigned char>(text_[pos_]);
        if (byte == '"' || byte == '\\' || byte < 0x20 || byte >= 0x80) break;
        ++pos_;
      }
      out.append(text_.data() + run_start, pos_ - run_start);
      if (at_end()) error_at(start, "unterminated string");
      const auto byte = static_cast<unsigned char>(text_[pos_]);
      if (byte == '"') {
        ++pos_;
        return out;
      }
      if (byte < 0x20) error("control character " + describe(pos_) + " in a string must be escaped");
      if (byte >= 0x80) {
        const std::size_t length = utf8_sequence_length(text_.substr(pos_));
        if (length == 0) error("invalid UTF-8 (" + describe(pos_) + ") in a string");
        out.append(text_.data() + pos_, length);
        pos_ += length;
        continue;
      }
      parse_escape(out);
    }
  }

  void parse_escape(std::string& out) {
    const std::size_t escape_start = pos_;
    ++pos_;  // backslash
    if (at_end()) error_at(escape_start, "unterminated string");
    const char c = text_[pos_];
    switch (c) {
      case '"': out += '"'; break;
      case '\\': out += '\\'; break;
      case '/': out += '/'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'u': {
        std::uint32_t cp = parse_hex4();
        if (cp >= 0xdc00 && cp <= 0xdfff) error_at(escape_start, "lone low surrogate in \\u escape");
        if (cp >= 0xd800 && cp <= 0xdbff) {
          // A high surrogate must be followed at once by an escaped low surrogate.
          if (text_.substr(pos_, 2) != "\\u") error_at(escape_start, "lone high surrogate in \\u escape");
          pos_ += 1;
          const std::uint32_t low = parse_hex4();
          if (low < 0xdc00 || low > 0xdfff) error_at(escape_start, "lone high surrogate in \\u escape");
          cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
        }
        utf8_append(out, cp);
        return;
      }
      default:
        error_at(escape_start, "invalid escape: '\\' followed by " + describe(pos_));
    }
    ++pos_;
  }

  std::size_t skip_digits() {
    const std::size_t start = pos_;
    while (!at_end() && text_[pos_] >= '0' && text_[pos_] <= '9') ++pos_;
    return pos_ - start;
  }

  // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
  Number parse_number() {
    const std::size_t start = pos_;
    const bool negative = peek() == '-';
    if (negative) ++pos_;
    const std::size_t int_start = pos_;
    const std::size_t int_digits = skip_digits();
    if (int_digits == 0) error("expected a digit after '-'");
    if (text_[int_start] == '0' && int_digits > 1) error_at(int_start, "leading zeros are not allowed");
    std::size_t frac_start = pos_, frac_digits = 0;
    if (peek() == '.') {
      ++pos_;
      frac_start = pos_;
      frac_digits = skip_digits();
      if (frac_digits == 0) error("expected a digit after '.'");
    }
    std::int64_t exponent = 0;  // saturated: only its sign and rough size matter below
    const bool has_exponent = peek() == 'e' || peek() == 'E';
    if (has_exponent) {
      ++pos_;
      const bool negative_exponent = peek() == '-';
      if (peek() == '+' || peek() == '-') ++pos_;
      const std::size_t exp_start = pos_;
      if (skip_digits() == 0) error("expected a digit in the exponent");
      for (std::size_t i = exp_start; i < pos_ && exponent < 1000000000; ++i) exponent = exponent * 10 + (text_[i] - '0');
      if (negative_exponent) exponent = -exponent;
    }

    Number number;
    if (frac_digits == 0 && !has_exponent) number.form = parse_integer(int_start, int_digits, negative, number.integer);
    const auto result = std::from_chars(text_.data() + start, text_.data() + pos_, number.value);
    if (result.ec == std::errc::result_out_of_range) {
      // from_chars reports underflow and overflow alike; only overflow is an error,
      // tiny values become (signed) zero. Decimal exponent of the first significant digit:
      std::int64_t magnitude = exponent + static_cast<std::int64_t>(int_digits) - 1;
      if (text_[int_start] == '0') {
        std::size_t first = frac_start;
        while (first < frac_start + frac_digits && text_[first] == '0') ++first;
        magnitude = exponent - static_cast<std::int64_t>(first - frac_start) - 1;
      }
      if (magnitude >= 0) error_at(start, "number out of the range of a double");
      number.value = negative ? -0.0 : 0.0;
    } else if (result.ec != std::errc() || result.ptr != text_.data() + pos_) {
      error_at(start, "invalid number");
    }
    return number;
  }

  // Exact int64 from the digits (the sign is applied without overflowing at -2^63).
  IntForm parse_integer(std::size_t digits_start, std::size_t digits, bool negative, std::int64_t& out) const {
    const std::uint64_t limit =
        negative ? std::uint64_t{1} << 63 : static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
    std::uint64_t value = 0;
    for (std::size_t i = digits_start; i < digits_start + digits; ++i) {
      const auto digit = static_cast<std::uint64_t>(text_[i] - '0');
      if (value > (limit - digit) / 10) return IntForm::too_large;
      value = value * 10 + digit;
    }
    out = negative ? static_cast<std::int64_t>(0 - value) : static_cast<std::int64_t>(value);
    return IntForm::exact;
  }

  std::string_view text_;
  const std::string& where_;
  std::size_t pos_ = 0;
};

}  // namespace detail

// Parses one JSON document; Error "where: line L column C: reason" on any deviation
// from RFC 8259 (trailing garbage, trailing commas, leading zeros, bad escapes, lone
// surrogates, raw control characters, invalid UTF-8), on duplicate keys, and on
// nesting deeper than 512 levels.
inline JsonValue parse_json(std::string_view text, const std::string& where) {
  return detail::JsonParser(text, where).parse_document();
}

// `s` as a JSON string literal with quotes, escaping '"', '\\' and control characters
// (the short forms where JSON has them, else \u00XX in lower case, as serde_json and
// Python's json write them). Invalid UTF-8 bytes become \ufffd, so the result is
// always valid JSON.
inline std::string json_quote(std::string_view s) {
  static const char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(s.size() + 2);
  out += '"';
  for (std::size_t i = 0; i < s.size();) {
    const auto byte = static_cast<unsigned char>(s[i]);
    if (byte >= 0x80) {
      const std::size_t length = utf8_sequence_length(s.substr(i));
      if (length == 0) {
        out += "\\ufffd";
        ++i;
      } else {
        out.append(s.data() + i, length);
        i += length;
      }
      continue;
    }
    switch (byte) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (byte < 0x20) {
          out += "\\u00";
          out += hex[byte >> 4];
          out += hex[byte & 15];
        } else {
          out += static_cast<char>(byte);
        }
    }
    ++i;
  }
  out += '"';
  return out;
}

}  // namespace smallcoder
