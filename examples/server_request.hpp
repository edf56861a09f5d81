// Reading a request body: the JSON document and its fields, with the llama.cpp server's
// names and defaults. Any deviation is an HttpError carrying the status to answer with.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "smallcoder/io/json.hpp"

namespace server {

struct HttpError : std::runtime_error {
  HttpError(int status_, const std::string& message) : std::runtime_error(message), status(status_) {}
  int status;
};

class Fields {
 public:
  // Parses `body` as a JSON object; malformed JSON (invalid UTF-8 included) is a 400.
  explicit Fields(const std::string& body) {
    try {
      doc_ = smallcoder::parse_json(body, "request body");
    } catch (const smallcoder::Error& e) {
      throw HttpError(400, e.what());
    }
    if (!doc_.is_object()) throw HttpError(400, "request body: expected a JSON object");
  }

  bool has(const char* name) const { return get(name) != nullptr; }
  // A member that is absent or null counts as absent (clients send null for "default").
  const smallcoder::JsonValue* get(const char* name) const {
    const smallcoder::JsonValue* v = doc_.find(name);
    return v == nullptr || v->is_null() ? nullptr : v;
  }

  std::int64_t integer(const char* name, std::int64_t fallback, std::int64_t min, std::int64_t max) const {
    const smallcoder::JsonValue* v = get(name);
    if (v == nullptr) return fallback;
    const std::int64_t x = typed([&] { return v->as_int(where(name)); });
    if (x < min || x > max) {
      throw HttpError(400, where(name) + ": must be in " + std::to_string(min) + ".." + std::to_string(max) + ", got " +
                               std::to_string(x));
    }
    return x;
  }
  double number(const char* name, double fallback) const {
    const smallcoder::JsonValue* v = get(name);
    return v == nullptr ? fallback : typed([&] { return v->as_double(where(name)); });
  }
  bool boolean(const char* name, bool fallback) const {
    const smallcoder::JsonValue* v = get(name);
    return v == nullptr ? fallback : typed([&] { return v->as_bool(where(name)); });
  }
  std::string text(const char* name, const std::string& fallback = "") const {
    const smallcoder::JsonValue* v = get(name);
    return v == nullptr ? fallback : typed([&] { return v->as_string(where(name)); });
  }
  // A string or an array of strings (`stop` comes as either).
  std::vector<std::string> texts(const char* name) const {
    const smallcoder::JsonValue* v = get(name);
    if (v == nullptr) return {};
    if (v->is_string()) return {v->as_string(where(name))};
    std::vector<std::string> out;
    typed([&] {
      for (const smallcoder::JsonValue& item : v->as_array(where(name)))
        out.push_back(item.as_string(where(name) + " item"));
      return 0;
    });
    return out;
  }

  // A member of any type (arrays of objects, ids): the caller reads it with typed().
  template <class Read>
  static auto typed(Read read) -> decltype(read()) {
    try {
      return read();
    } catch (const smallcoder::Error& e) {
      throw HttpError(400, e.what());
    }
  }
  static std::string where(const std::string& name) { return "field '" + name + "'"; }

 private:
  smallcoder::JsonValue doc_;
};

}  // namespace server
