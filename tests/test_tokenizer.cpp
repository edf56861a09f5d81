#include <doctest/doctest.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "smallcoder/io/json.hpp"
#include "smallcoder/text/sentencepiece.hpp"
#include "support/test_data.hpp"

using namespace smallcoder;

namespace {

const Tokenizer& llama() {
  static const Tokenizer tok = Tokenizer::from_file(test::data_path("tokenizer/tokenizer.model"));
  return tok;
}

const std::string& model_bytes() {
  static const std::string bytes = test::read_file(test::data_path("tokenizer/tokenizer.model"));
  return bytes;
}

std::string unhex(const std::string& hex) {
  if (hex == "-") return "";
  REQUIRE(hex.size() % 2 == 0);
  std::string out;
  for (std::size_t i = 0; i < hex.size(); i += 2) out += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  return out;
}

std::vector<std::int32_t> parse_ids(const std::string& list) {
  std::vector<std::int32_t> ids;
  if (list == "-") return ids;
  std::stringstream in(list);
  std::string item;
  while (std::getline(in, item, ',')) ids.push_back(std::stoi(item));
  return ids;
}

std::string show(const std::vector<std::int32_t>& ids) {
  std::string s;
  for (const std::int32_t id : ids) s += (s.empty() ? "" : ",") + std::to_string(id);
  return "[" + s + "]";
}

// Streams `ids` one at a time; checks that no push splits a character and returns
// the concatenation.
std::string stream_decode(const Tokenizer& tok, const std::vector<std::int32_t>& ids, bool at_start = true) {
  StreamDecoder stream(tok, at_start);
  std::string out;
  for (const std::int32_t id : ids) {
    const std::string piece = stream.push(id);
    REQUIRE(utf8_find_invalid(piece) == std::string_view::npos);
    out += piece;
  }
  const std::string rest = stream.flush();
  REQUIRE(utf8_find_invalid(rest) == std::string_view::npos);
  return out + rest;
}

// The base model with one vectors-file "variant" line's changes applied.
Tokenizer make_variant(const std::vector<std::string>& words) {
  TokenizerSpec spec = llama().spec();
  for (std::size_t i = 2; i < words.size(); ++i) {
    const std::string& w = words[i];
    const std::size_t eq = w.find('=');
    REQUIRE(eq != std::string::npos);
    const std::string key = w.substr(0, eq);
    const std::string value = w.substr(eq + 1);
    if (key == "add_dummy_prefix") {
      spec.add_dummy_prefix = value == "1";
    } else if (key == "remove_extra_whitespaces") {
      spec.remove_extra_whitespaces = value == "1";
    } else if (key == "escape_whitespaces") {
      spec.escape_whitespaces = value == "1";
    } else if (key == "byte_fallback") {
      spec.byte_fallback = value == "1";
    } else if (key == "type") {  // FIRST-LAST:TYPE
      const std::size_t dash = value.find('-');
      const std::size_t colon = value.find(':');
      const int first = std::stoi(value.substr(0, dash));
      const int last = std::stoi(value.substr(dash + 1, colon - dash - 1));
      for (int id = first; id <= last; ++id) spec.types[id] = static_cast<PieceType>(std::stoi(value.substr(colon + 1)));
    } else if (key == "piece") {  // ID:HEX
      const std::size_t colon = value.find(':');
      spec.pieces[std::stoi(value.substr(0, colon))] = unhex(value.substr(colon + 1));
    } else {
      FAIL("unknown variant key " << key);
    }
  }
  return Tokenizer(spec, "variant " + words[1]);
}

std::vector<std::string> split_words(const std::string& line) {
  std::vector<std::string> words;
  std::stringstream in(line);
  std::string w;
  while (in >> w) words.push_back(w);
  return words;
}

// Random valid UTF-8 drawn from ASCII, whitespace, Latin, CJK, emoji and the other
// planes. U+2581 is left out: it decodes to a space, so it cannot round-trip.
std::string random_text(std::mt19937& rng) {
  static const std::uint32_t ranges[][2] = {{0x20, 0x7E},      {0x00, 0x1F},     {0x80, 0x24F},   {0x300, 0x36F},
                                            {0x370, 0x6FF},    {0x3040, 0x30FF}, {0x4E00, 0x9FFF}, {0xAC00, 0xD7A3},
                                            {0xE000, 0xFFFF},  {0x1F300, 0x1FAFF}, {0x10000, 0x10FFFF}};
  static const char* const words[] = {" ", "  ", "\t", "\n", "\r\n", "def ", "return", " x", "<s>", "</s>", "<0x41>"};
  std::string s;
  const int n = static_cast<int>(rng() % 40);
  for (int i = 0; i < n; ++i) {
    if (rng() % 3 == 0) {
      s += words[rng() % (sizeof words / sizeof words[0])];
      continue;
    }
    const auto& r = ranges[rng() % (sizeof ranges / sizeof ranges[0])];
    std::uint32_t cp = r[0] + rng() % (r[1] - r[0] + 1);
    if ((cp >= 0xD800 && cp <= 0xDFFF) || cp == 0x2581) cp = 'z';
    utf8_append(s, cp);
  }
  return s;
}

void check_contains(const std::string& text, const std::string& part) {
  CHECK_MESSAGE(text.find(part) != std::string::npos, "'" << text << "' does not contain '" << part << "'");
}

std::string error_of(std::string_view model, const std::string& where = "bad.model") {
  try {
    Tokenizer::from_proto(model, where);
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST_CASE("the Llama tokenizer.model loads with its ids and piece types") {
  const Tokenizer& tok = llama();
  CHECK(tok.vocab_size() == 32000);
  CHECK(tok.unk_id() == 0);
  CHECK(tok.bos_id() == 1);
  CHECK(tok.eos_id() == 2);
  CHECK(tok.pad_id() == -1);
  CHECK(tok.piece(0) == "<unk>");
  CHECK(tok.piece(1) == "<s>");
  CHECK(tok.piece(2) == "</s>");
  CHECK(tok.type(0) == PieceType::unknown);
  CHECK(tok.type(1) == PieceType::control);
  CHECK(tok.type(2) == PieceType::control);
  CHECK(tok.piece(3) == "<0x00>");
  CHECK(tok.type(3) == PieceType::byte);
  CHECK(tok.piece(258) == "<0xFF>");
  CHECK(tok.piece(29871) == "\xE2\x96\x81");
  CHECK(tok.type(29871) == PieceType::normal);
  CHECK(tok.piece_to_id("\xE2\x96\x81" "def") == 822);
  CHECK(tok.piece_to_id("no such piece") == -1);
  CHECK(tok.score(822) < 0.0f);
  const TokenizerSpec& spec = tok.spec();
  CHECK(spec.add_dummy_prefix);
  CHECK_FALSE(spec.remove_extra_whitespaces);
  CHECK(spec.escape_whitespaces);
  CHECK(spec.byte_fallback);
  CHECK(spec.unk_surface == " \xE2\x81\x87 ");
  CHECK_THROWS_WITH_AS(tok.piece(32000), doctest::Contains("piece: id 32000 is out of range [0, 32000)"), Error);
  CHECK_THROWS_AS(tok.type(-1), Error);
}

TEST_CASE("all golden cases from sentencepiece encode and decode exactly") {
  const std::string path = test::data_path("tokenizer/golden_tokenization.json");
  const JsonValue doc = parse_json(test::read_file(path), path);
  const auto& cases = doc.at("cases", path).as_array("cases");
  REQUIRE(cases.size() == 26);
  for (const JsonValue& c : cases) {
    const std::string text = c.at("text", "case").as_string("text");
    std::vector<std::int32_t> ids;
    for (const JsonValue& id : c.at("ids", "case").as_array("ids")) ids.push_back(static_cast<std::int32_t>(id.as_int("id")));
    const auto& pieces = c.at("pieces", "case").as_array("pieces");
    const std::string decoded = c.at("decoded", "case").as_string("decoded");
    CAPTURE(text);
    CHECK(show(llama().encode(text)) == show(ids));
    CHECK(llama().decode(ids) == decoded);
    CHECK(stream_decode(llama(), ids) == decoded);
    REQUIRE(pieces.size() == ids.size());
    for (std::size_t i = 0; i < ids.size(); ++i) CHECK(llama().piece(ids[i]) == pieces[i].as_string("piece"));
  }
}

TEST_CASE("generated sentencepiece vectors (model and variants) encode, decode and stream exactly") {
  // Next to this source file; __FILE__ is relative to the build folder the test runs in.
  const std::string source = __FILE__;
  std::stringstream file(test::read_file(source.substr(0, source.find_last_of('/') + 1) + "data/tokenizer_vectors.txt"));
  std::string line;
  std::unique_ptr<Tokenizer> variant;
  std::string variant_name;
  int encodes = 0, decodes = 0, variants = 0;
  while (std::getline(file, line)) {
    if (line.empty() || line[0] == '#') continue;
    const std::vector<std::string> w = split_words(line);
    if (w[0] == "variant") {
      variant = std::make_unique<Tokenizer>(make_variant(w));
      variant_name = w[1];
      ++variants;
      continue;
    }
    REQUIRE(variant != nullptr);
    CAPTURE(variant_name);
    CAPTURE(line);
    if (w[0] == "encode") {
      REQUIRE(w.size() == 4);
      const std::vector<std::int32_t> ids = parse_ids(w[2]);
      CHECK(show(variant->encode(unhex(w[1]))) == show(ids));
      CHECK(variant->decode(ids) == unhex(w[3]));
      CHECK(stream_decode(*variant, ids) == unhex(w[3]));
      ++encodes;
    } else {
      REQUIRE(w[0] == "decode");
      REQUIRE(w.size() == 3);
      const std::vector<std::int32_t> ids = parse_ids(w[1]);
      CHECK(variant->decode(ids) == unhex(w[2]));
      CHECK(stream_decode(*variant, ids) == unhex(w[2]));
      ++decodes;
    }
  }
  CHECK(variants == 9);
  CHECK(encodes > 600);
  CHECK(decodes > 200);
}

TEST_CASE("decode(encode(text)) gives the text back for random valid UTF-8") {
  std::mt19937 rng(2024);
  for (int i = 0; i < 3000; ++i) {
    const std::string text = random_text(rng);
    CAPTURE(text);
    const std::vector<std::int32_t> ids = llama().encode(text);
    REQUIRE(llama().decode(ids) == text);
    REQUIRE(stream_decode(llama(), ids) == text);
  }
}

TEST_CASE("streaming never emits part of a character split over byte pieces") {
  const Tokenizer& tok = llama();
  // Emoji and rare CJK have no piece of their own: they encode as 3-4 byte pieces.
  const std::string text = "x \xF0\x9F\x98\x80\xF0\x9F\x9A\x80 \xF0\xA0\x80\x8B y \xE3\x8B\xBF!";
  const std::vector<std::int32_t> ids = tok.encode(text);
  StreamDecoder stream(tok, true);
  std::vector<std::string> pushed;
  for (const std::int32_t id : ids) pushed.push_back(stream.push(id));
  CHECK(stream.flush().empty());
  std::string joined;
  int empty_pushes = 0;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    CHECK(utf8_find_invalid(pushed[i]) == std::string_view::npos);
    if (tok.type(ids[i]) == PieceType::byte && pushed[i].empty()) ++empty_pushes;
    joined += pushed[i];
  }
  CHECK(joined == text);
  CHECK(empty_pushes >= 8);  // bytes held back until their character completed

  // A character cut off by the end, or by a control piece, becomes U+FFFD per byte.
  const std::int32_t e2 = tok.piece_to_id("<0xE2>"), x96 = tok.piece_to_id("<0x96>");
  StreamDecoder cut(tok, true);
  CHECK(cut.push(e2).empty());
  CHECK(cut.push(x96).empty());
  CHECK(cut.flush() == "\xEF\xBF\xBD\xEF\xBF\xBD");
  StreamDecoder interrupted(tok, true);
  CHECK(interrupted.push(e2).empty());
  CHECK(interrupted.push(tok.bos_id()) == "\xEF\xBF\xBD");
  CHECK(tok.decode({e2, 1, x96}) == "\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST_CASE("stream decoding equals decode for random id sequences, and keeps the space after a prompt") {
  const Tokenizer& tok = llama();
  std::mt19937 rng(99);
  for (int trial = 0; trial < 3000; ++trial) {
    std::vector<std::int32_t> ids;
    const int n = static_cast<int>(rng() % 20);
    for (int i = 0; i < n; ++i) {
      const std::uint32_t r = rng() % 4;
      // byte pieces (3..258) half the time, so runs of bytes form and break
      ids.push_back(r < 2 ? static_cast<std::int32_t>(3 + rng() % 256)
                          : r == 2 ? static_cast<std::int32_t>(rng() % 3) : static_cast<std::int32_t>(rng() % 32000));
    }
    REQUIRE(stream_decode(tok, ids) == tok.decode(ids));
  }
  const std::int32_t hello = tok.piece_to_id("\xE2\x96\x81Hello");
  CHECK(tok.decode({hello}) == "Hello");
  CHECK(stream_decode(tok, {hello}, true) == "Hello");
  CHECK(stream_decode(tok, {hello}, false) == " Hello");
  CHECK(stream_decode(tok, {1, hello}, true) == "Hello");
  StreamDecoder stream(tok);
  CHECK_THROWS_WITH_AS(stream.push(32000), doctest::Contains("decode: id 32000 is out of range"), Error);
  CHECK_THROWS_WITH_AS(tok.decode({5, -3}), doctest::Contains("decode: id -3 is out of range"), Error);
}

TEST_CASE("a continuation streamed after a prompt joins the prompt's text exactly") {
  // How generation uses it: decode the prompt, then stream the new ids with
  // at_sequence_start = false; together they must equal decoding everything at once.
  const Tokenizer& tok = llama();
  std::mt19937 rng(41);
  for (int trial = 0; trial < 2000; ++trial) {
    std::string prompt_text;
    while (prompt_text.empty()) prompt_text = random_text(rng);
    std::vector<std::int32_t> prompt = tok.encode(prompt_text);
    prompt.insert(prompt.begin(), tok.bos_id());
    std::vector<std::int32_t> continuation = tok.encode(random_text(rng));
    if (rng() % 2) continuation.push_back(tok.eos_id());
    std::vector<std::int32_t> all = prompt;
    all.insert(all.end(), continuation.begin(), continuation.end());
    REQUIRE(tok.decode(prompt) + stream_decode(tok, continuation, false) == tok.decode(all));
  }
}

TEST_CASE("encoding invalid UTF-8 is an Error naming the byte offset") {
  CHECK_THROWS_WITH_AS(llama().encode("abc\xFF" "def"),
                       doctest::Contains("tokenizer.model: input text is not valid UTF-8 at byte offset 3 (byte 0xFF)"), Error);
  CHECK_THROWS_WITH_AS(llama().encode("ok \xE2\x82"), doctest::Contains("at byte offset 3 (byte 0xE2)"), Error);
  CHECK_THROWS_WITH_AS(llama().encode("\xED\xA0\x80"), doctest::Contains("at byte offset 0"), Error);
  CHECK_THROWS_WITH_AS(llama().encode("\xC0\xAF"), doctest::Contains("at byte offset 0"), Error);
  CHECK_THROWS_WITH_AS(llama().normalize("a\x80"), doctest::Contains("at byte offset 1 (byte 0x80)"), Error);
  CHECK(llama().normalize(" a  b") == "\xE2\x96\x81\xE2\x96\x81" "a" "\xE2\x96\x81\xE2\x96\x81" "b");
}

TEST_CASE("encoding an 8000-token prompt takes well under a second") {
  std::mt19937 rng(3);
  std::string text;
  while (text.size() < 40000) text += random_text(rng) + "\n    def f(x):\n        return x * 2  # note\n";
  const auto start = std::chrono::steady_clock::now();
  const std::vector<std::int32_t> ids = llama().encode(text);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  MESSAGE("encoded " << text.size() << " bytes into " << ids.size() << " tokens in " << seconds * 1000 << " ms");
  CHECK(ids.size() > 8000);
  CHECK(seconds < 0.5);
  CHECK(llama().decode(ids) == text);
  // A pathological run with no merges beyond pairs ("aaaa...") stays fast too.
  const std::string run(60000, 'a');
  const auto start2 = std::chrono::steady_clock::now();
  CHECK(llama().decode(llama().encode(run)) == run);
  CHECK(std::chrono::duration<double>(std::chrono::steady_clock::now() - start2).count() < 0.5);
}

TEST_CASE("a corrupt or unsupported tokenizer.model is an Error that names the problem") {
  const std::string& good = model_bytes();
  CHECK(error_of("") == "bad.model: empty file: not a sentencepiece model");
  CHECK(error_of("\x0b") == "bad.model: ModelProto: field 1: wire type 3 (group) is not supported (at byte 0)");
  CHECK(error_of(std::string("\x0e") + good.substr(1)) ==
        "bad.model: ModelProto: field 1: invalid wire type 6 (at byte 0)");
  CHECK(error_of(std::string("\x08") + good.substr(1)) ==
        "bad.model: ModelProto.pieces[0]: expected wire type length-delimited (2), found varint (0) (at byte 0)");
  // The first piece's length raised past the end of the file.
  CHECK(error_of(std::string("\x0a\xff\xff\xff\x7f") + good.substr(2)) ==
        "bad.model: ModelProto: field 1: length 268435455 runs past the end of the message (" +
            std::to_string(good.size() - 2) + " bytes left) (at byte 0)");
  // Later fields override earlier ones (protobuf merge), so appending edits the model.
  CHECK(error_of(good + std::string("\x12\x02\x18\x01", 4)) ==
        "bad.model: ModelProto.trainer_spec.model_type: model type 1 (UNIGRAM) is not supported; only BPE (2) is");
  CHECK(error_of(good + std::string("\x12\x02\x18\x07", 4)) ==
        "bad.model: ModelProto.trainer_spec.model_type: model type 7 (unknown) is not supported; only BPE (2) is");
  CHECK(error_of(good + std::string("\x1a\x0d\x0a\x08nmt_nfkc\x12\x01\x00", 15)) ==
        "bad.model: ModelProto.normalizer_spec.precompiled_charsmap: normalization rules 'nmt_nfkc' (1 bytes) are "
        "not supported; only the identity normalizer (empty charsmap) is");
  check_contains(error_of(good + std::string("\x2a\x03\x12\x01\x00", 5)), "ModelProto.denormalizer_spec.precompiled_charsmap");
  CHECK(error_of(good + std::string("\x12\x03\xc0\x01\x01", 5)) ==
        "bad.model: ModelProto.trainer_spec.treat_whitespace_as_suffix: whitespace as suffix is not supported");
  check_contains(error_of(good + std::string("\x12\x03\xc0\x01\x05", 5)), "ModelProto.trainer_spec.treat_whitespace_as_suffix: bool value 5 is not 0 or 1");
  CHECK(error_of(good + std::string("\x0a\x05\x0a\x01z\x18\x09", 7)) ==
        "bad.model: ModelProto.pieces[32000].type: unknown piece type 9");
  check_contains(error_of(good + std::string("\x0a\x07\x0a\x01z\x15\x00\x00", 9)), "ModelProto.pieces[32000]: field 2: 32-bit value cut off by the end of the message");
  CHECK(error_of(good + std::string("\x0a\x05\x0a\x03<s>", 7)) == "bad.model: piece 32000 '<s>' duplicates piece 1");
  CHECK(error_of(good + std::string("\x0a\x02\x18\x01", 4)) == "bad.model: piece 32000: empty text");
  CHECK(error_of(good + std::string("\x0a\x03\x0a\x01\xff", 5)) ==
        "bad.model: piece 32000: text is not valid UTF-8 at byte 0");
  check_contains(error_of(good + std::string("\x0a\x08\x0a\x04zqzq\x18\x02", 10)), "exactly one UNKNOWN piece, unk_id 0 (found 2");
  check_contains(error_of(good + std::string("\x12\x03\xc0\x02\x05", 5)),
                 "exactly one UNKNOWN piece, unk_id 5 (found 1; piece 5 is BYTE)");
  CHECK(error_of(good + std::string("\x12\x05\xc8\x02\x80\xfa\x01", 7)) ==
        "bad.model: bos_id 32000 is out of range [-1, 32000)");
  CHECK(error_of(good + std::string("\x12\x03\x98\x02\x00", 5)) ==
        "bad.model: piece 3 '<0x00>': BYTE piece found but byte_fallback is off");
  CHECK(error_of(good + std::string("\x0a\x0a\x0a\x06<0x4g>\x18\x06", 12)) ==
        "bad.model: piece 32000 '<0x4g>': a BYTE piece must be named <0xHH> (upper-case hex)");
  check_contains(error_of(good + std::string("\x0a\x0a\x0a\x06<0x41>\x18\x06", 12)), "duplicates piece 68");
}

TEST_CASE("a tokenizer.model truncated anywhere is an Error, never a crash") {
  const std::string& good = model_bytes();
  // The only cut that leaves a loadable model is right before normalizer_spec (all its
  // fields then take their defaults); find it, and trainer_spec, with the wire reader.
  std::size_t trainer_offset = 0, normalizer_offset = 0;
  {
    protobuf::Reader reader(good, "model");
    protobuf::Field f;
    while (reader.next(f)) {
      if (f.number == 2) trainer_offset = f.offset;
      if (f.number == 3) normalizer_offset = f.offset;
    }
  }
  REQUIRE(trainer_offset > 0);
  REQUIRE(normalizer_offset > trainer_offset);
  // Every cut through the first pieces and through the trainer and normalizer specs,
  // and a sample of cuts through the rest of the pieces (each one parses up to the cut).
  std::vector<std::size_t> cuts;
  for (std::size_t n = 1; n < 3000; ++n) cuts.push_back(n);
  for (std::size_t n = 3000; n + 64 < trainer_offset; n += 9973) cuts.push_back(n);
  for (std::size_t n = trainer_offset - 64; n < good.size(); ++n) cuts.push_back(n);
  int errors = 0;
  for (const std::size_t n : cuts) {
    CAPTURE(n);
    if (n == normalizer_offset) {
      CHECK_NOTHROW(Tokenizer::from_proto(std::string_view(good).substr(0, n), "cut.model"));
      continue;
    }
    CHECK_THROWS_AS(Tokenizer::from_proto(std::string_view(good).substr(0, n), "cut.model"), Error);
    ++errors;
  }
  CHECK(errors > 3300);
}

TEST_CASE("random corruption of tokenizer.model gives an Error or a valid model, nothing else") {
  const std::string& good = model_bytes();
  std::mt19937 rng(17);
  int loaded = 0, rejected = 0;
  for (int trial = 0; trial < 300; ++trial) {
    std::string bad = good;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int i = 0; i < flips; ++i) {
      // Half the flips hit the start (pieces), half the end (trainer and normalizer specs).
      const std::size_t pos = rng() % 2 ? rng() % 2000 : bad.size() - 1 - rng() % 700;
      bad[pos] = static_cast<char>(rng());
    }
    try {
      const Tokenizer tok = Tokenizer::from_proto(bad, "fuzz.model");
      (void)tok.encode("def f(x):\n\treturn x + 1  # \xF0\x9F\x98\x80");
      ++loaded;
    } catch (const Error&) {
      ++rejected;
    }
  }
  MESSAGE(rejected << " corrupted models rejected, " << loaded << " still valid");
  CHECK(rejected > 0);
  for (int trial = 0; trial < 2000; ++trial) {
    std::string garbage(rng() % 64, '\0');
    for (char& c : garbage) c = static_cast<char>(rng());
    CHECK_THROWS_AS(Tokenizer::from_proto(garbage, "garbage.model"), Error);
  }
}

TEST_CASE("from_file names the path when it cannot read a model") {
  CHECK_THROWS_WITH_AS(Tokenizer::from_file("/nonexistent/tokenizer.model"),
                       "/nonexistent/tokenizer.model: cannot open the tokenizer model", Error);
  CHECK_THROWS_WITH_AS(Tokenizer::from_file("."), doctest::Contains(".: cannot read the tokenizer model"), Error);
  const std::string empty = test::scratch_path("empty_tokenizer.model");
  test::write_file(empty, "");
  CHECK_THROWS_WITH_AS(Tokenizer::from_file(empty), (empty + ": empty file: not a sentencepiece model").c_str(), Error);
}

TEST_CASE("a TokenizerSpec is validated") {
  const TokenizerSpec good = llama().spec();
  const auto error_of_spec = [](const TokenizerSpec& spec) {
    try {
      Tokenizer(spec, "spec");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK(error_of_spec(good) == "no error");
  CHECK(error_of_spec(TokenizerSpec{}) == "spec: the vocabulary has no pieces");
  TokenizerSpec s = good;
  s.scores.pop_back();
  CHECK(error_of_spec(s) == "spec: vocabulary arrays differ in length: 32000 pieces, 31999 scores, 32000 types");
  s = good;
  s.types[100] = PieceType::normal;  // <0x61> no longer a byte piece
  CHECK(error_of_spec(s) == "spec: byte_fallback is on but BYTE piece <0x61> is missing");
  s = good;
  s.scores[5] = std::nanf("");
  CHECK(error_of_spec(s) == "spec: piece 5 '<0x02>': score is NaN");
  s = good;
  s.types[7] = static_cast<PieceType>(9);
  CHECK(error_of_spec(s) == "spec: piece 7 '<0x04>': unknown piece type 9");
  s = good;
  s.unk_id = 1;
  check_contains(error_of_spec(s), "exactly one UNKNOWN piece, unk_id 1 (found 1; piece 1 is CONTROL)");
  s = good;
  s.unk_id = 32000;
  CHECK(error_of_spec(s) == "spec: unk_id 32000 is out of range");
  s = good;
  s.eos_id = -2;
  CHECK(error_of_spec(s) == "spec: eos_id -2 is out of range [-1, 32000)");
  s = good;
  s.pad_id = 0;
  CHECK(error_of_spec(s) == "no error");
  s = good;
  s.unk_surface = "\xFF";
  CHECK(error_of_spec(s) == "spec: unk_surface is not valid UTF-8");
}

TEST_CASE("a copied tokenizer works on its own") {
  Tokenizer copy = llama();
  {
    const Tokenizer temp = Tokenizer::from_file(test::data_path("tokenizer/tokenizer.model"));
    copy = temp;
  }
  CHECK(show(copy.encode("def fibonacci(n):")) == "[822,18755,265,21566,29898,29876,1125]");
}
