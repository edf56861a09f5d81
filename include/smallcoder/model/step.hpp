// One forward step: which tokens go in and where they sit in the sequence. Buffer row
// r holds the token at position pos0 + r; ops work on rows [first_row, first_row + rows).
#pragma once

#include <cstdint>

namespace smallcoder {

struct Step {
  const std::int32_t* tokens = nullptr;  // host copy of the step's token ids (rows of them)
  int rows = 0;
  int pos0 = 0;       // sequence position of buffer row 0
  int first_row = 0;  // ops touch rows [first_row, first_row + rows)

  int end_row() const { return first_row + rows; }
  // The same step narrowed to its last token: the final norm and the logits need nothing else.
  Step last_row() const {
    Step s = *this;
    s.first_row = end_row() - 1;
    s.rows = 1;
    return s;
  }
};

}  // namespace smallcoder
