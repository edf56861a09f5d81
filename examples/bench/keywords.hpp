// The benchmark's quality score, exactly the original rule: the share of expected
// keywords that occur, case-insensitively, as substrings of the generated text (the
// prompt excluded). Python's str.lower() is reproduced for every input that can matter.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace smallcoder::bench {

struct KeywordScore {
  std::vector<std::string> found;  // the expected keywords that occur, in the list's order
  int total = 0;                   // how many were expected

  double score() const { return total > 0 ? static_cast<double>(found.size()) / total : 0.0; }
};

// Lower-cases text as Python's str.lower() does as far as ASCII substrings can tell:
// A-Z become a-z, and the only two other characters whose lower case contains ASCII
// letters are mapped as Python maps them (U+212A KELVIN SIGN -> "k", U+0130 LATIN
// CAPITAL LETTER I WITH DOT ABOVE -> "i" + U+0307). Every other byte is kept, which
// cannot create or break a match of an ASCII keyword.
inline std::string lower_for_matching(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c >= 'A' && c <= 'Z') {
      out += static_cast<char>(c - 'A' + 'a');
    } else if (text.compare(i, 3, "\xE2\x84\xAA") == 0) {  // U+212A
      out += 'k';
      i += 2;
    } else if (text.compare(i, 2, "\xC4\xB0") == 0) {  // U+0130
      out += "i\xCC\x87";
      i += 1;
    } else {
      out += c;
    }
  }
  return out;
}

inline KeywordScore score_keywords(std::string_view generated, const std::vector<std::string>& keywords) {
  KeywordScore result;
  result.total = static_cast<int>(keywords.size());
  const std::string text = lower_for_matching(generated);
  for (const std::string& keyword : keywords) {
    if (text.find(lower_for_matching(keyword)) != std::string::npos) result.found.push_back(keyword);
  }
  return result;
}

}  // namespace smallcoder::bench
