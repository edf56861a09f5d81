// The Llama/CodeLlama tokenizer: sentencepiece's BPE model, reimplemented to give the
// same ids and text as sentencepiece 0.1.97 (normalization, user-defined pieces, the
// merge loop, UNUSED resegmentation, byte fallback), plus a streaming decoder.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <fstream>
#include <iterator>
#include <queue>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "smallcoder/error.hpp"
#include "smallcoder/text/protobuf.hpp"
#include "smallcoder/text/utf8.hpp"

namespace smallcoder {

// Same numbers as sentencepiece's SentencePiece.Type and llama.cpp's token_type.
enum class PieceType : std::uint8_t { normal = 1, unknown = 2, control = 3, user_defined = 4, unused = 5, byte = 6 };

inline const char* piece_type_name(PieceType type) {
  switch (type) {
    case PieceType::normal: return "NORMAL";
    case PieceType::unknown: return "UNKNOWN";
    case PieceType::control: return "CONTROL";
    case PieceType::user_defined: return "USER_DEFINED";
    case PieceType::unused: return "UNUSED";
    case PieceType::byte: return "BYTE";
  }
  return "?";
}

// Everything that defines a tokenizer; filled from tokenizer.model or GGUF metadata.
// The defaults are the Llama model's (not the protobuf defaults, which from_proto applies).
struct TokenizerSpec {
  std::vector<std::string> pieces;
  std::vector<float> scores;
  std::vector<PieceType> types;
  int unk_id = 0, bos_id = 1, eos_id = 2, pad_id = -1;  // bos/eos/pad: -1 when the model has none
  bool add_dummy_prefix = true, remove_extra_whitespaces = false, escape_whitespaces = true, byte_fallback = true;
  std::string unk_surface = " \xE2\x81\x87 ";  // what an unknown piece decodes to
};

namespace detail {

// U+2581 LOWER ONE EIGHTH BLOCK: sentencepiece's visible stand-in for a space.
inline constexpr std::string_view space_symbol = "\xE2\x96\x81";

// Hash table from piece text to id. It stores ids only (the text stays in the spec),
// so a copied Tokenizer needs no fix-up, and it looks up a string_view without building
// a std::string for every candidate merge.
class PieceIndex {
 public:
  PieceIndex() = default;

  // Returns the id already holding `pieces[id]`'s text, or -1 after inserting it.
  std::int32_t insert(std::int32_t id, const std::vector<std::string>& pieces) {
    if (slots_.empty() || (count_ + 1) * 2 > slots_.size()) grow(pieces);
    std::size_t slot = hash(pieces[id]) & (slots_.size() - 1);
    for (; slots_[slot] >= 0; slot = (slot + 1) & (slots_.size() - 1)) {
      if (pieces[slots_[slot]] == pieces[id]) return slots_[slot];
    }
    slots_[slot] = id;
    ++count_;
    return -1;
  }

  std::int32_t find(std::string_view text, const std::vector<std::string>& pieces) const {
    if (slots_.empty()) return -1;
    for (std::size_t slot = hash(text) & (slots_.size() - 1); slots_[slot] >= 0;
         slot = (slot + 1) & (slots_.size() - 1)) {
      if (pieces[slots_[slot]] == text) return slots_[slot];
    }
    return -1;
  }

 private:
  static std::size_t hash(std::string_view s) {  // FNV-1a
    std::uint64_t h = 1469598103934665603ull;
    for (const char c : s) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
    return static_cast<std::size_t>(h ^ (h >> 29));
  }

  void grow(const std::vector<std::string>& pieces) {
    std::vector<std::int32_t> old = std::move(slots_);
    slots_.assign(old.empty() ? 64 : old.size() * 2, -1);
    for (const std::int32_t id : old) {
      if (id < 0) continue;
      std::size_t slot = hash(pieces[id]) & (slots_.size() - 1);
      while (slots_[slot] >= 0) slot = (slot + 1) & (slots_.size() - 1);
      slots_[slot] = id;
    }
  }

  std::vector<std::int32_t> slots_;  // power-of-two size, -1 = empty
  std::size_t count_ = 0;
};

// The byte a BYTE piece stands for, or -1 when `text` is not named as sentencepiece
// names them: "<0x" two upper-case hex digits ">".
inline int byte_piece_value(std::string_view text) {
  if (text.size() != 6 || text.substr(0, 3) != "<0x" || text[5] != '>') return -1;
  const auto digit = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  const int high = digit(text[3]);
  const int low = digit(text[4]);
  return high < 0 || low < 0 ? -1 : high * 16 + low;
}

// Longest-prefix matcher over the USER_DEFINED pieces (a byte trie). sentencepiece
// matches these before anything else, both on the raw text in the normalizer and on
// the normalized text when splitting it into symbols.
class PrefixMatcher {
 public:
  void add(std::string_view text) {
    if (nodes_.empty()) nodes_.emplace_back();
    std::size_t node = 0;
    for (const char c : text) {
      const std::size_t child = find_child(node, static_cast<unsigned char>(c));
      if (child != 0) {
        node = child;
        continue;
      }
      nodes_.emplace_back();
      nodes_[node].children.emplace_back(static_cast<unsigned char>(c), nodes_.size() - 1);
      node = nodes_.size() - 1;
    }
    nodes_[node].terminal = true;
  }

  // Length of the longest piece that `s` starts with; 0 when none.
  std::size_t longest_match(std::string_view s) const {
    std::size_t best = 0;
    std::size_t node = 0;
    for (std::size_t i = 0; i < s.size() && !nodes_.empty(); ++i) {
      node = find_child(node, static_cast<unsigned char>(s[i]));
      if (node == 0) break;
      if (nodes_[node].terminal) best = i + 1;
    }
    return best;
  }

 private:
  struct Node {
    std::vector<std::pair<unsigned char, std::size_t>> children;
    bool terminal = false;
  };

  std::size_t find_child(std::size_t node, unsigned char c) const {  // 0 = none (the root is no one's child)
    for (const auto& [byte, child] : nodes_[node].children) {
      if (byte == c) return child;
    }
    return 0;
  }

  std::vector<Node> nodes_;
};

}  // namespace detail

class StreamDecoder;

class Tokenizer {
 public:
  static Tokenizer from_file(const std::string& path);
  static Tokenizer from_proto(std::string_view bytes, const std::string& where);

  // Validates the spec; `where` names its origin in error messages.
  Tokenizer(TokenizerSpec spec, const std::string& where);

  // Ids of `text` without BOS, exactly as sentencepiece's encode. Invalid UTF-8 is an
  // Error naming the byte offset (sentencepiece would silently substitute U+FFFD).
  std::vector<std::int32_t> encode(std::string_view text) const;

  // Text of ids, exactly as sentencepiece's DecodeIds: control pieces vanish, the first
  // piece loses its dummy-prefix space, byte runs become UTF-8 with one U+FFFD per
  // invalid byte. An id outside the vocabulary is an Error.
  std::string decode(const std::int32_t* ids, std::size_t n) const;
  std::string decode(const std::vector<std::int32_t>& ids) const { return decode(ids.data(), ids.size()); }

  // The text BPE runs on: sentencepiece's normalizer (dummy prefix, whitespace rules).
  // Invalid UTF-8 is an Error, as for encode.
  std::string normalize(std::string_view text) const;

  std::string_view piece(std::int32_t id) const { return spec_.pieces[checked(id, "piece")]; }
  PieceType type(std::int32_t id) const { return spec_.types[checked(id, "type")]; }
  float score(std::int32_t id) const { return spec_.scores[checked(id, "score")]; }
  // Id of a piece's exact text, or -1 when it is not in the vocabulary.
  std::int32_t piece_to_id(std::string_view text) const { return index_.find(text, spec_.pieces); }

  int vocab_size() const { return static_cast<int>(spec_.pieces.size()); }
  int bos_id() const { return spec_.bos_id; }
  int eos_id() const { return spec_.eos_id; }
  int unk_id() const { return spec_.unk_id; }
  int pad_id() const { return spec_.pad_id; }
  const TokenizerSpec& spec() const { return spec_; }

 private:
  friend class StreamDecoder;
  using RevMerge = std::unordered_map<std::string, std::pair<std::string, std::string>>;

  std::size_t checked(std::int32_t id, const char* what) const {
    if (id < 0 || id >= vocab_size()) {
      fail(where_, std::string(what) + ": id " + std::to_string(id) + " is out of range [0, " +
                       std::to_string(vocab_size()) + ")");
    }
    return static_cast<std::size_t>(id);
  }

  // The unit the normalizer and the symbol split take next from non-empty valid UTF-8:
  // the longest user-defined piece `s` starts with, else one character.
  struct Unit {
    std::size_t size;
    bool user_defined;
  };
  Unit next_unit(std::string_view s) const {
    const std::size_t user = user_defined_.longest_match(s);
    if (user > 0) return {user, true};
    return {static_cast<std::size_t>(utf8_char_length(static_cast<unsigned char>(s[0]))), false};
  }

  void emit(std::string_view text, const RevMerge& rev_merge, std::vector<std::int32_t>& ids, bool& prev_unknown) const;
  void append_text(std::int32_t id, bool& at_start, Utf8Accumulator& bytes, std::string& out) const;

  TokenizerSpec spec_;
  std::string where_;
  detail::PieceIndex index_;
  detail::PrefixMatcher user_defined_;
  std::array<std::int32_t, 256> byte_to_id_{};
  std::vector<std::int16_t> byte_of_id_;  // the byte a BYTE piece stands for, -1 for others
};

// Streams the text of ids pushed one at a time, never splitting a UTF-8 character.
// With at_sequence_start the pushes plus flush() equal Tokenizer::decode of all the ids
// (the first piece's dummy-prefix space is dropped); without it (continuing after a
// prompt) the first piece keeps its leading space. Holds a reference to the tokenizer.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok, bool at_sequence_start = false)
      : tok_(tok), at_start_(at_sequence_start) {}

  // Text completed by this id (maybe empty: a control piece, or a byte that starts a
  // character still incomplete).
  std::string push(std::int32_t id) {
    std::string out;
    tok_.append_text(id, at_start_, bytes_, out);
    return out;
  }

  // Ends the byte run: bytes of an incomplete character become U+FFFD, as decode does.
  std::string flush() {
    std::string out;
    bytes_.finish(out);
    return out;
  }

 private:
  const Tokenizer& tok_;
  bool at_start_;
  Utf8Accumulator bytes_;
};

// ---- loading ----

namespace detail {

// Values of ModelProto (sentencepiece_model.proto) that the tokenizer needs, with the
// proto's own defaults for absent fields.
struct ModelProtoValues {
  TokenizerSpec spec;
  std::int32_t model_type = 1;  // TrainerSpec.model_type defaults to UNIGRAM
  bool treat_whitespace_as_suffix = false;
};

inline void read_piece(std::string_view bytes, std::size_t offset, const std::string& name, TokenizerSpec& spec) {
  protobuf::Reader reader(bytes, name, offset);
  protobuf::Field f;
  std::string text;
  float score = 0.0f;
  std::int32_t type = static_cast<std::int32_t>(PieceType::normal);
  while (reader.next(f)) {
    switch (f.number) {
      case 1: text = std::string(protobuf::as_bytes(f, name, "piece")); break;
      case 2: score = protobuf::as_float(f, name, "score"); break;
      case 3: type = protobuf::as_int32(f, name, "type"); break;
      default: break;
    }
  }
  if (type < 1 || type > 6) fail(name + ".type", "unknown piece type " + std::to_string(type));
  spec.pieces.push_back(std::move(text));
  spec.scores.push_back(score);
  spec.types.push_back(static_cast<PieceType>(type));
}

inline void read_trainer_spec(std::string_view bytes, std::size_t offset, const std::string& name, ModelProtoValues& v) {
  protobuf::Reader reader(bytes, name, offset);
  protobuf::Field f;
  while (reader.next(f)) {
    switch (f.number) {
      case 3: v.model_type = protobuf::as_int32(f, name, "model_type"); break;
      case 24: v.treat_whitespace_as_suffix = protobuf::as_bool(f, name, "treat_whitespace_as_suffix"); break;
      case 35: v.spec.byte_fallback = protobuf::as_bool(f, name, "byte_fallback"); break;
      case 40: v.spec.unk_id = protobuf::as_int32(f, name, "unk_id"); break;
      case 41: v.spec.bos_id = protobuf::as_int32(f, name, "bos_id"); break;
      case 42: v.spec.eos_id = protobuf::as_int32(f, name, "eos_id"); break;
      case 43: v.spec.pad_id = protobuf::as_int32(f, name, "pad_id"); break;
      case 44: v.spec.unk_surface = std::string(protobuf::as_bytes(f, name, "unk_surface")); break;
      default: break;  // training-only settings
    }
  }
}

// A NormalizerSpec; `apply` is false for the denormalizer, which only has to be a no-op.
inline void read_normalizer_spec(std::string_view bytes, std::size_t offset, const std::string& name, bool apply,
                                 TokenizerSpec& spec) {
  protobuf::Reader reader(bytes, name, offset);
  protobuf::Field f;
  std::string rule_name;
  std::size_t charsmap_size = 0;
  while (reader.next(f)) {
    switch (f.number) {
      case 1: rule_name = std::string(protobuf::as_bytes(f, name, "name")); break;
      case 2: charsmap_size = protobuf::as_bytes(f, name, "precompiled_charsmap").size(); break;
      case 3: if (apply) spec.add_dummy_prefix = protobuf::as_bool(f, name, "add_dummy_prefix"); break;
      case 4: if (apply) spec.remove_extra_whitespaces = protobuf::as_bool(f, name, "remove_extra_whitespaces"); break;
      case 5: if (apply) spec.escape_whitespaces = protobuf::as_bool(f, name, "escape_whitespaces"); break;
      default: break;
    }
  }
  // The character map (NFKC and the like) is a compiled trie this reader does not
  // implement; ignoring it would silently give different ids.
  if (charsmap_size > 0) {
    fail(name + ".precompiled_charsmap",
         "normalization rules '" + rule_name + "' (" + std::to_string(charsmap_size) +
             " bytes) are not supported; only the identity normalizer (empty charsmap) is");
  }
}

}  // namespace detail

inline Tokenizer Tokenizer::from_proto(std::string_view bytes, const std::string& where) {
  if (bytes.empty()) fail(where, "empty file: not a sentencepiece model");
  detail::ModelProtoValues v;
  v.spec.remove_extra_whitespaces = true;  // NormalizerSpec's default when the field is absent
  v.spec.byte_fallback = false;            // TrainerSpec's default
  const std::string name = where + ": ModelProto";
  protobuf::Reader reader(bytes, name);
  protobuf::Field f;
  while (reader.next(f)) {
    switch (f.number) {
      case 1: {
        const std::string field = "pieces[" + std::to_string(v.spec.pieces.size()) + "]";  // fits the small-string buffer
        detail::read_piece(protobuf::as_bytes(f, name, field.c_str()), f.payload_offset,
                           protobuf::field_name(name, field.c_str()), v.spec);
        break;
      }
      case 2:
        detail::read_trainer_spec(protobuf::as_bytes(f, name, "trainer_spec"), f.payload_offset,
                                  name + ".trainer_spec", v);
        break;
      case 3:
        detail::read_normalizer_spec(protobuf::as_bytes(f, name, "normalizer_spec"), f.payload_offset,
                                     name + ".normalizer_spec", true, v.spec);
        break;
      case 5:
        detail::read_normalizer_spec(protobuf::as_bytes(f, name, "denormalizer_spec"), f.payload_offset,
                                     name + ".denormalizer_spec", false, v.spec);
        break;
      default: break;  // self_test_data and fields this reader does not know
    }
  }
  if (v.model_type != 2) {
    const char* names[] = {"?", "UNIGRAM", "BPE", "WORD", "CHAR"};
    const char* type_name = v.model_type >= 1 && v.model_type <= 4 ? names[v.model_type] : "unknown";
    fail(name + ".trainer_spec.model_type", "model type " + std::to_string(v.model_type) + " (" + type_name +
                                                ") is not supported; only BPE (2) is");
  }
  if (v.treat_whitespace_as_suffix) {
    fail(name + ".trainer_spec.treat_whitespace_as_suffix", "whitespace as suffix is not supported");
  }
  return Tokenizer(std::move(v.spec), where);
}

inline Tokenizer Tokenizer::from_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open the tokenizer model");
  std::string bytes;
  try {  // libstdc++ throws from the stream buffer on a read error (a directory, EIO)
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  } catch (const std::exception& e) {
    fail(path, std::string("cannot read the tokenizer model: ") + e.what());
  }
  if (in.bad()) fail(path, "cannot read the tokenizer model");
  return from_proto(bytes, path);
}

inline Tokenizer::Tokenizer(TokenizerSpec spec, const std::string& where) : spec_(std::move(spec)), where_(where) {
  const std::size_t n = spec_.pieces.size();
  if (n == 0) fail(where_, "the vocabulary has no pieces");
  if (n > 0x7FFFFFFF) fail(where_, "the vocabulary has more than 2^31-1 pieces");
  if (spec_.scores.size() != n || spec_.types.size() != n) {
    fail(where_, "vocabulary arrays differ in length: " + std::to_string(n) + " pieces, " +
                     std::to_string(spec_.scores.size()) + " scores, " + std::to_string(spec_.types.size()) + " types");
  }
  byte_to_id_.fill(-1);
  byte_of_id_.assign(n, -1);
  int unknown_count = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const auto id = static_cast<std::int32_t>(i);
    const std::string& text = spec_.pieces[i];
    const std::string what = "piece " + std::to_string(i);
    if (text.empty()) fail(where_, what + ": empty text");
    const std::size_t bad = utf8_find_invalid(text);
    if (bad != std::string_view::npos) fail(where_, what + ": text is not valid UTF-8 at byte " + std::to_string(bad));
    if (std::isnan(spec_.scores[i])) fail(where_, what + " '" + text + "': score is NaN");
    const auto type = static_cast<int>(spec_.types[i]);
    if (type < 1 || type > 6) fail(where_, what + " '" + text + "': unknown piece type " + std::to_string(type));
    const std::int32_t duplicate = index_.insert(id, spec_.pieces);
    if (duplicate >= 0) fail(where_, what + " '" + text + "' duplicates piece " + std::to_string(duplicate));
    switch (spec_.types[i]) {
      case PieceType::unknown: ++unknown_count; break;
      case PieceType::user_defined: user_defined_.add(text); break;
      case PieceType::byte: {
        const int value = detail::byte_piece_value(text);
        if (value < 0) fail(where_, what + " '" + text + "': a BYTE piece must be named <0xHH> (upper-case hex)");
        if (!spec_.byte_fallback) fail(where_, what + " '" + text + "': BYTE piece found but byte_fallback is off");
        // Names are canonical, so two pieces for one byte were caught as duplicates above.
        byte_to_id_[value] = id;
        byte_of_id_[i] = static_cast<std::int16_t>(value);
        break;
      }
      default: break;
    }
  }
  const auto in_range = [&](int id) { return id >= 0 && static_cast<std::size_t>(id) < n; };
  if (!in_range(spec_.unk_id)) fail(where_, "unk_id " + std::to_string(spec_.unk_id) + " is out of range");
  if (spec_.types[spec_.unk_id] != PieceType::unknown || unknown_count != 1) {
    fail(where_, "the vocabulary must have exactly one UNKNOWN piece, unk_id " + std::to_string(spec_.unk_id) +
                     " (found " + std::to_string(unknown_count) + "; piece " + std::to_string(spec_.unk_id) + " is " +
                     piece_type_name(spec_.types[spec_.unk_id]) + ")");
  }
  for (const auto& [field, id] : {std::pair<const char*, int>{"bos_id", spec_.bos_id}, {"eos_id", spec_.eos_id},
                                  {"pad_id", spec_.pad_id}}) {
    if (id != -1 && !in_range(id)) {
      fail(where_, std::string(field) + " " + std::to_string(id) + " is out of range [-1, " + std::to_string(n) + ")");
    }
  }
  if (spec_.byte_fallback) {
    for (int b = 0; b < 256; ++b) {
      if (byte_to_id_[b] < 0) {
        char name[8];
        std::snprintf(name, sizeof name, "<0x%02X>", b);
        fail(where_, std::string("byte_fallback is on but BYTE piece ") + name + " is missing");
      }
    }
  }
  if (utf8_find_invalid(spec_.unk_surface) != std::string_view::npos) fail(where_, "unk_surface is not valid UTF-8");
}

// ---- encoding ----

inline std::string Tokenizer::normalize(std::string_view text) const {
  // sentencepiece 0.1.97's Normalizer::Normalize with an empty character map: the
  // unit is one character or a user-defined piece (passed through whole).
  const std::size_t bad = utf8_find_invalid(text);
  if (bad != std::string_view::npos) {
    char byte[8];
    std::snprintf(byte, sizeof byte, "0x%02X", static_cast<unsigned char>(text[bad]));
    fail(where_, "input text is not valid UTF-8 at byte offset " + std::to_string(bad) + " (byte " + byte + ")");
  }
  std::string out;
  const bool squeeze = spec_.remove_extra_whitespaces;
  if (squeeze) {
    while (!text.empty() && text[0] == ' ' && next_unit(text).size == 1) text.remove_prefix(1);
  }
  if (text.empty()) return out;
  out.reserve(text.size() + text.size() / 2 + 8);
  const auto append_space = [&] {
    if (spec_.escape_whitespaces) {
      out.append(detail::space_symbol);
    } else {
      out.push_back(' ');
    }
  };
  if (spec_.add_dummy_prefix) append_space();
  bool prev_space = squeeze;
  while (!text.empty()) {
    std::string_view unit = text.substr(0, next_unit(text).size);
    text.remove_prefix(unit.size());
    if (prev_space) {
      while (!unit.empty() && unit[0] == ' ') unit.remove_prefix(1);
    }
    if (!unit.empty()) {
      for (const char c : unit) {
        if (c == ' ') {
          append_space();
        } else {
          out.push_back(c);
        }
      }
      prev_space = unit.back() == ' ';
    }
    if (!squeeze) prev_space = false;
  }
  if (squeeze) {
    const std::string_view space = spec_.escape_whitespaces ? detail::space_symbol : std::string_view(" ");
    while (out.size() >= space.size() && std::string_view(out).substr(out.size() - space.size()) == space) {
      out.resize(out.size() - space.size());
    }
  }
  return out;
}

// Appends the ids of one final symbol: UNUSED pieces are split back into the two parts
// they were merged from, unknown text becomes byte pieces (byte fallback) or one <unk>
// per run of unknown symbols, as sentencepiece does.
inline void Tokenizer::emit(std::string_view text, const RevMerge& rev_merge, std::vector<std::int32_t>& ids,
                            bool& prev_unknown) const {
  std::int32_t id = index_.find(text, spec_.pieces);
  if (id < 0) id = spec_.unk_id;
  const PieceType type = spec_.types[id];
  if (type == PieceType::unused) {
    const auto it = rev_merge.find(std::string(text));
    if (it != rev_merge.end()) {
      emit(it->second.first, rev_merge, ids, prev_unknown);
      emit(it->second.second, rev_merge, ids, prev_unknown);
      return;
    }
  }
  if (type == PieceType::unknown) {
    if (spec_.byte_fallback) {
      for (const char c : text) ids.push_back(byte_to_id_[static_cast<unsigned char>(c)]);
    } else if (!prev_unknown) {
      ids.push_back(id);
    }
    prev_unknown = true;
    return;
  }
  ids.push_back(id);
  prev_unknown = false;
}

inline std::vector<std::int32_t> Tokenizer::encode(std::string_view text) const {
  const std::string normalized = normalize(text);
  std::vector<std::int32_t> ids;
  if (normalized.empty()) return ids;

  // Symbols form a linked list over `normalized`; a merge grows the left symbol and
  // empties the right one, so a queued pair is stale when either side changed.
  constexpr std::size_t none = static_cast<std::size_t>(-1);
  struct Symbol {
    std::size_t begin, size, prev, next;
    bool frozen;  // user-defined pieces never merge
  };
  std::vector<Symbol> symbols;
  for (std::size_t pos = 0; pos < normalized.size();) {
    const std::string_view rest = std::string_view(normalized).substr(pos);
    const Unit unit = next_unit(rest);
    symbols.push_back({pos, unit.size, symbols.empty() ? none : symbols.size() - 1, none, unit.user_defined});
    pos += unit.size;
    if (pos < normalized.size()) symbols.back().next = symbols.size();
  }

  struct Candidate {
    float score;
    std::size_t left, right, size;
  };
  // Highest score first; among equal scores the leftmost pair (sentencepiece's order).
  const auto lower = [](const Candidate& a, const Candidate& b) {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  };
  std::priority_queue<Candidate, std::vector<Candidate>, decltype(lower)> agenda(lower);
  RevMerge rev_merge;
  const auto consider = [&](std::size_t left, std::size_t right) {
    if (left == none || right == none || symbols[left].frozen || symbols[right].frozen) return;
    const std::string_view merged(normalized.data() + symbols[left].begin, symbols[left].size + symbols[right].size);
    const std::int32_t id = index_.find(merged, spec_.pieces);
    if (id < 0) return;
    const PieceType type = spec_.types[id];
    if (type != PieceType::normal && type != PieceType::user_defined && type != PieceType::unused) return;
    agenda.push({spec_.scores[id], left, right, merged.size()});
    if (type == PieceType::unused) {
      // Latest pair wins, as in sentencepiece, even if this pair is never merged.
      rev_merge[std::string(merged)] = {
          std::string(normalized, symbols[left].begin, symbols[left].size),
          std::string(normalized, symbols[right].begin, symbols[right].size)};
    }
  };
  for (std::size_t i = 1; i < symbols.size(); ++i) consider(i - 1, i);

  while (!agenda.empty()) {
    const Candidate top = agenda.top();
    agenda.pop();
    Symbol& left = symbols[top.left];
    Symbol& right = symbols[top.right];
    if (left.size == 0 || right.size == 0 || left.size + right.size != top.size) continue;
    left.size += right.size;
    left.next = right.next;
    if (right.next != none) symbols[right.next].prev = top.left;
    right.size = 0;
    consider(left.prev, top.left);
    consider(top.left, left.next);
  }

  bool prev_unknown = false;
  for (std::size_t i = 0; i != none; i = symbols[i].next) {
    emit(std::string_view(normalized).substr(symbols[i].begin, symbols[i].size), rev_merge, ids, prev_unknown);
  }
  return ids;
}

// ---- decoding ----

inline void Tokenizer::append_text(std::int32_t id, bool& at_start, Utf8Accumulator& bytes, std::string& out) const {
  const PieceType type = spec_.types[checked(id, "decode")];
  if (type == PieceType::byte) {
    bytes.push(static_cast<unsigned char>(byte_of_id_[id]), out);
    at_start = false;
    return;
  }
  bytes.finish(out);  // any other piece ends a run of bytes
  if (type == PieceType::control) return;  // invisible, and not the first piece either
  std::string_view text = type == PieceType::unknown ? std::string_view(spec_.unk_surface) : spec_.pieces[id];
  // The normalizer's dummy prefix is dropped again from the first piece. With
  // remove_extra_whitespaces sentencepiece goes on dropping it from following pieces
  // while nothing has been written yet (leading "▁" pieces decode to nothing).
  if (at_start && type != PieceType::unknown && (spec_.add_dummy_prefix || spec_.remove_extra_whitespaces) &&
      text.substr(0, detail::space_symbol.size()) == detail::space_symbol) {
    text.remove_prefix(detail::space_symbol.size());
  }
  at_start = at_start && spec_.remove_extra_whitespaces && text.empty();
  if (type == PieceType::unknown) {
    out.append(text);
    return;
  }
  for (std::size_t pos = 0; pos < text.size();) {
    if (text.compare(pos, detail::space_symbol.size(), detail::space_symbol) == 0) {
      out.push_back(' ');
      pos += detail::space_symbol.size();
    } else {
      out.push_back(text[pos++]);
    }
  }
}

inline std::string Tokenizer::decode(const std::int32_t* ids, std::size_t n) const {
  std::string out;
  bool at_start = true;
  Utf8Accumulator bytes;
  for (std::size_t i = 0; i < n; ++i) append_text(ids[i], at_start, bytes, out);
  bytes.finish(out);
  return out;
}

}  // namespace smallcoder
