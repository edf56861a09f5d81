#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "smallcoder/io/json.hpp"

using namespace smallcoder;

namespace {

JsonValue parse(const std::string& text) { return parse_json(text, "test.json"); }

// The Error message for `text`, or "" when it parses.
std::string parse_error(const std::string& text) {
  try {
    parse_json(text, "test.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("every kind of value parses") {
  const JsonValue v = parse(R"( {"n": null, "t": true, "f": false, "i": -42, "d": 2.5, "s": "hi",
                                   "a": [1, [2, []], {}], "o": {"k": "v"}} )");
  REQUIRE(v.is_object());
  const auto& members = v.as_object("root");
  REQUIRE(members.size() == 8);
  // File order is kept.
  CHECK(members[0].first == "n");
  CHECK(members[7].first == "o");
  CHECK(v.find("n")->is_null());
  CHECK(v.find("n")->kind() == JsonValue::Kind::null);
  CHECK(v.find("t")->as_bool("t") == true);
  CHECK(v.find("f")->as_bool("f") == false);
  CHECK(v.find("i")->as_int("i") == -42);
  CHECK(v.find("i")->as_double("i") == -42.0);
  CHECK(v.find("d")->as_double("d") == 2.5);
  CHECK(v.find("s")->as_string("s") == "hi");
  const auto& a = v.find("a")->as_array("a");
  REQUIRE(a.size() == 3);
  CHECK(a[0].as_int("a[0]") == 1);
  CHECK(a[1].as_array("a[1]")[1].as_array("a[1][1]").empty());
  CHECK(a[2].as_object("a[2]").empty());
  CHECK(v.find("o")->find("k")->as_string("o.k") == "v");
  CHECK(v.find("missing") == nullptr);
  CHECK(a[0].find("k") == nullptr);  // not an object
  CHECK(parse("7").as_int("scalar") == 7);
  CHECK(parse("\"x\"").as_string("scalar") == "x");
  CHECK(parse("null").is_null());
  CHECK(parse(" \t\r\n[ ] \n").as_array("ws").empty());
}

TEST_CASE("typed accessors name the value and both kinds") {
  const JsonValue v = parse(R"({"hidden_size": "256", "eps": 1e-06, "big": 1.5})");
  CHECK_THROWS_WITH_AS(v.find("hidden_size")->as_int("config.json: field 'hidden_size'"),
                       "config.json: field 'hidden_size': expected a number, got string", Error);
  CHECK_THROWS_WITH_AS(v.as_array("config.json"), "config.json: expected an array, got object", Error);
  CHECK_THROWS_WITH_AS(v.find("eps")->as_int("eps"), "eps: expected an integer, got 1e-06", Error);
  CHECK_THROWS_WITH_AS(v.find("big")->as_int("big"), "big: expected an integer, got 1.5", Error);
  CHECK_THROWS_WITH_AS(v.at("vocab_size", "config.json"), "config.json: missing field 'vocab_size'", Error);
  CHECK(v.at("eps", "config.json").as_double("eps") == 1e-06);
}

TEST_CASE("integers are exact over the whole int64 range") {
  CHECK(parse("9223372036854775807").as_int("max") == std::numeric_limits<std::int64_t>::max());
  CHECK(parse("-9223372036854775808").as_int("min") == std::numeric_limits<std::int64_t>::min());
  // 2^53 + 1 is not a double: a parser going through double would give 2^53.
  CHECK(parse("9007199254740993").as_int("odd") == 9007199254740993LL);
  CHECK(parse("0").as_int("zero") == 0);
  CHECK(parse("-0").as_int("minus zero") == 0);
  CHECK_THROWS_WITH_AS(parse("9223372036854775808").as_int("n"), doctest::Contains("does not fit in 64 bits"), Error);
  CHECK_THROWS_WITH_AS(parse("-9223372036854775809").as_int("n"), doctest::Contains("does not fit in 64 bits"), Error);
  // Still a valid number as a double.
  CHECK(parse("9223372036854775808").as_double("n") == 9223372036854775808.0);
  CHECK(parse("123456789012345678901234567890").as_double("n") == doctest::Approx(1.2345678901234568e29));
  // Fractions and exponents are not integers, even when integral in value.
  CHECK_THROWS_AS(parse("1.0").as_int("n"), Error);
  CHECK_THROWS_AS(parse("1e3").as_int("n"), Error);
}

TEST_CASE("numbers with fractions and exponents") {
  CHECK(parse("-12.5").as_double("n") == -12.5);
  CHECK(parse("1e3").as_double("n") == 1000.0);
  CHECK(parse("1E+3").as_double("n") == 1000.0);
  CHECK(parse("2.5e-3").as_double("n") == 0.0025);
  CHECK(parse("0.1").as_double("n") == 0.1);
  CHECK(parse("1.7976931348623157e308").as_double("n") == std::numeric_limits<double>::max());
  CHECK(parse("4.9406564584124654e-324").as_double("n") == std::numeric_limits<double>::denorm_min());
  // Below the smallest subnormal: rounds to a zero of the right sign, not an error.
  CHECK(parse("1e-400").as_double("n") == 0.0);
  CHECK(std::signbit(parse("-1e-400").as_double("n")));
  CHECK(parse("0.0e99999").as_double("n") == 0.0);
  CHECK(parse("0.00001e-99999999999999999999").as_double("n") == 0.0);
  CHECK(parse("[1e-400]").as_array("a")[0].as_double("n") == 0.0);
  CHECK_THROWS_WITH_AS(parse("1e400"), doctest::Contains("number out of the range of a double"), Error);
  CHECK_THROWS_WITH_AS(parse("-0.001e99999999999999999999"), doctest::Contains("out of the range"), Error);
}

TEST_CASE("string escapes, surrogate pairs and UTF-8") {
  CHECK(parse(R"("a\"b\\c\/d\b\f\n\r\t")").as_string("s") == "a\"b\\c/d\b\f\n\r\t");
  CHECK(parse(R"("\u0041\u00e9\u20AC")").as_string("s") == "A\xc3\xa9\xe2\x82\xac");
  CHECK(parse(R"("\ud83d\ude00")").as_string("s") == "\xf0\x9f\x98\x80");  // U+1F600 from a surrogate pair
  CHECK(parse(R"("\uDBFF\uDFFF")").as_string("s") == "\xf4\x8f\xbf\xbf");  // U+10FFFF
  CHECK(parse(R"("\u0000")").as_string("s") == std::string(1, '\0'));
  CHECK(parse("\"caf\xc3\xa9 \xf0\x9f\x98\x80\"").as_string("s") == "caf\xc3\xa9 \xf0\x9f\x98\x80");  // raw UTF-8
  CHECK(parse("\"\x7f\"").as_string("s") == "\x7f");  // DEL needs no escape
}

TEST_CASE("nesting up to the limit parses") {
  const int depth = detail::JsonParser::max_depth;
  const std::string ok = std::string(depth, '[') + std::string(depth, ']');
  const JsonValue v = parse(ok);
  const JsonValue* inner = &v;
  for (int i = 1; i < depth; ++i) inner = &inner->as_array("nested")[0];
  CHECK(inner->as_array("innermost").empty());
  const std::string too_deep = std::string(depth + 1, '[') + std::string(depth + 1, ']');
  CHECK(parse_error(too_deep) == "test.json: line 1 column 513: nesting deeper than 512 levels");
}

TEST_CASE("a bomb of 100000 '[' is an Error, not a stack overflow") {
  CHECK(parse_error(std::string(100000, '[')) == "test.json: line 1 column 513: nesting deeper than 512 levels");
  CHECK_THROWS_WITH_AS(parse(std::string(100000, '{')), doctest::Contains("expected a string key"), Error);
  std::string objects;
  for (int i = 0; i < 100000; ++i) objects += "{\"a\":";
  CHECK_THROWS_WITH_AS(parse(objects), doctest::Contains("nesting deeper than 512 levels"), Error);
}

TEST_CASE("invalid documents give line and column") {
  struct Case {
    const char* text;
    const char* message;
  };
  const Case cases[] = {
      {"", "line 1 column 1: unexpected end of input, expected a value"},
      {"   ", "line 1 column 4: unexpected end of input, expected a value"},
      {"[1, 2", "line 1 column 6: expected ',' or ']' after an array element, got end of input"},
      {"{\"a\": 1", "line 1 column 8: expected ',' or '}' after an object member, got end of input"},
      {"{\"a\"", "line 1 column 5: expected ':' after key 'a', got end of input"},
      {"{\"a\":", "line 1 column 6: unexpected end of input, expected a value"},
      {"\"abc", "line 1 column 1: unterminated string"},
      {"\"abc\\", "line 1 column 5: unterminated string"},
      {"[1,]", "line 1 column 4: trailing comma before ']'"},
      {"{\"a\":1,}", "line 1 column 8: trailing comma before '}'"},
      {"[1 2]", "line 1 column 4: expected ',' or ']' after an array element, got '2'"},
      {"{a:1}", "line 1 column 2: expected a string key, got 'a'"},
      {"{\"a\" 1}", "line 1 column 6: expected ':' after key 'a', got '1'"},
      {"[1]x", "line 1 column 4: unexpected 'x' after the JSON value"},
      {"{} {}", "line 1 column 4: unexpected '{' after the JSON value"},
      {"nul", "line 1 column 1: invalid literal, expected 'null'"},
      {"tru", "line 1 column 1: invalid literal, expected 'true'"},
      {"True", "line 1 column 1: unexpected 'T', expected a value"},
      {"NaN", "line 1 column 1: unexpected 'N', expected a value"},
      {"'a'", "line 1 column 1: unexpected ''', expected a value"},
      {"01", "line 1 column 1: leading zeros are not allowed"},
      {"-012", "line 1 column 2: leading zeros are not allowed"},
      {"+1", "line 1 column 1: unexpected '+', expected a value"},
      {"-", "line 1 column 2: expected a digit after '-'"},
      {"-a", "line 1 column 2: expected a digit after '-'"},
      {".5", "line 1 column 1: unexpected '.', expected a value"},
      {"1.", "line 1 column 3: expected a digit after '.'"},
      {"1.e3", "line 1 column 3: expected a digit after '.'"},
      {"1e", "line 1 column 3: expected a digit in the exponent"},
      {"1e+", "line 1 column 4: expected a digit in the exponent"},
      {"[1,\n  2,\n  x]", "line 3 column 3: unexpected 'x', expected a value"},
      {"[\"\\x\"]", "line 1 column 3: invalid escape: '\\' followed by 'x'"},
      {"\"\\u12\"", "line 1 column 2: invalid \\u escape: expected 4 hex digits"},
      {"\"\\u12g4\"", "line 1 column 2: invalid \\u escape: expected 4 hex digits"},
      {"\"\\ud800\"", "line 1 column 2: lone high surrogate in \\u escape"},
      {"\"\\ud800x\"", "line 1 column 2: lone high surrogate in \\u escape"},
      {"\"\\ud800\\u0041\"", "line 1 column 2: lone high surrogate in \\u escape"},
      {"\"\\ud800\\ud800\"", "line 1 column 2: lone high surrogate in \\u escape"},
      {"\"ab\\udc00\"", "line 1 column 4: lone low surrogate in \\u escape"},
      {"\"a\nb\"", "line 1 column 3: control character byte 0x0a in a string must be escaped"},
      {"\"a\tb\"", "line 1 column 3: control character byte 0x09 in a string must be escaped"},
      {"\x01", "line 1 column 1: unexpected byte 0x01, expected a value"},
      {"{\"a\":1,\n \"b\":2,\n \"a\":3}", "line 3 column 2: duplicate key 'a'"},
      {"{\"\\u0061\":1,\"a\":2}", "line 1 column 13: duplicate key 'a'"},  // equal after unescaping
      {"\xef\xbb\xbf{}", "line 1 column 1: unexpected byte 0xef, expected a value"},  // no BOM
  };
  for (const Case& c : cases) {
    CAPTURE(c.text);
    CHECK(parse_error(c.text) == std::string("test.json: ") + c.message);
  }
}

TEST_CASE("invalid UTF-8 in strings is rejected") {
  const char* cases[] = {
      "\"\x80\"",              // stray continuation byte
      "\"\xc3\"",              // truncated two-byte sequence
      "\"\xc3(\"",             // bad continuation
      "\"\xc0\xaf\"",          // overlong '/'
      "\"\xe0\x80\xaf\"",      // overlong three-byte
      "\"\xf0\x80\x80\xaf\"",  // overlong four-byte
      "\"\xed\xa0\x80\"",      // UTF-8-encoded surrogate U+D800
      "\"\xf4\x90\x80\x80\"",  // U+110000
      "\"\xf5\x80\x80\x80\"",  // invalid lead byte
      "\"\xff\"",
      "\"\xe2\x82\"",  // truncated at the end of the text
  };
  for (const char* text : cases) {
    CAPTURE(text);
    CHECK_THROWS_WITH_AS(parse(text), doctest::Contains("line 1 column 2: invalid UTF-8"), Error);
  }
  // Columns count characters: the error after "é" is in column 3.
  CHECK(parse_error("\"\xc3\xa9\xff\"") == "test.json: line 1 column 3: invalid UTF-8 (byte 0xff) in a string");
}

TEST_CASE("json_quote escapes and round-trips") {
  CHECK(json_quote("plain") == "\"plain\"");
  CHECK(json_quote("a\"b\\c") == "\"a\\\"b\\\\c\"");
  CHECK(json_quote("\b\f\n\r\t") == "\"\\b\\f\\n\\r\\t\"");
  CHECK(json_quote(std::string("\x01\x1f\0", 3)) == "\"\\u0001\\u001f\\u0000\"");
  CHECK(json_quote("caf\xc3\xa9 \xf0\x9f\x98\x80") == "\"caf\xc3\xa9 \xf0\x9f\x98\x80\"");  // valid UTF-8 kept
  CHECK(json_quote("a\xff" "b\xc3") == "\"a\\ufffdb\\ufffd\"");
  CHECK(json_quote("\xed\xa0\x80") == "\"\\ufffd\\ufffd\\ufffd\"");  // encoded surrogate: three bad bytes
  std::string all;
  for (int c = 1; c < 128; ++c) all += static_cast<char>(c);
  all += "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
  CHECK(parse(json_quote(all)).as_string("round trip") == all);
  CHECK(parse(json_quote("x\xffy")).as_string("replaced") == "x\xef\xbf\xbdy");
}
