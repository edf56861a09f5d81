// A small streaming JSON writer for the benchmark's report (pretty-printed) and the
// server's responses (compact: one line, as a server-sent event needs): strings
// escaped by json_quote, non-finite numbers written as null (JSON has no NaN).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "smallcoder/io/json.hpp"

namespace smallcoder::bench {

class JsonWriter {
 public:
  explicit JsonWriter(bool pretty = true) : pretty_(pretty) {}

  JsonWriter& begin_object() { return open('{'); }
  JsonWriter& end_object() { return close('}'); }
  JsonWriter& begin_array() { return open('['); }
  JsonWriter& end_array() { return close(']'); }

  // The next value is this object member's.
  JsonWriter& key(std::string_view name) {
    separate();
    out_ += json_quote(name) + (pretty_ ? ": " : ":");
    after_key_ = true;
    return *this;
  }

  JsonWriter& text(std::string_view s) { return raw(json_quote(s)); }
  JsonWriter& boolean(bool b) { return raw(b ? "true" : "false"); }
  JsonWriter& null() { return raw("null"); }
  JsonWriter& integer(std::int64_t v) { return raw(std::to_string(v)); }
  JsonWriter& unsigned_integer(std::uint64_t v) { return raw(std::to_string(v)); }
  // Six significant digits: measurements are not more precise than that.
  JsonWriter& number(double v) {
    if (!std::isfinite(v)) return null();
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%.6g", v);
    return raw(buffer);
  }
  JsonWriter& text_array(const std::vector<std::string>& items) {
    begin_array();
    for (const std::string& s : items) text(s);
    return end_array();
  }

  const std::string& str() const { return out_; }

 private:
  JsonWriter& open(char bracket) {
    separate();
    out_ += bracket;
    first_.push_back(true);
    return *this;
  }
  JsonWriter& close(char bracket) {
    const bool empty = first_.back();
    first_.pop_back();
    if (!empty) newline();
    out_ += bracket;
    return *this;
  }
  JsonWriter& raw(std::string_view token) {
    separate();
    out_ += token;
    return *this;
  }
  // Comma and newline before an element, except right after its key.
  void separate() {
    if (after_key_) {
      after_key_ = false;
      return;
    }
    if (first_.empty()) return;  // the top-level value
    if (!first_.back()) out_ += ',';
    first_.back() = false;
    newline();
  }
  void newline() {
    if (!pretty_) return;
    out_ += '\n';
    out_.append(2 * first_.size(), ' ');
  }

  bool pretty_;
  std::string out_;
  std::vector<bool> first_;  // per open container: nothing written in it yet
  bool after_key_ = false;
};

}  // namespace smallcoder::bench
