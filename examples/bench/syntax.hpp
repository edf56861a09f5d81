// Syntax validity of a completion: does prompt + completion, cut at its last complete
// line, parse as Python? Asked of a real Python (python3 with ast.parse, in a child
// process, bench/python.hpp); without one the answer is "not measured", never a guess.
#pragma once

#include <string>
#include <string_view>

#include "bench/python.hpp"

namespace smallcoder::bench {

enum class SyntaxVerdict { valid, invalid, not_measured };

inline const char* syntax_verdict_name(SyntaxVerdict v) {
  static const char* const names[] = {"valid", "invalid", "not measured"};  // in the enum's order
  return names[static_cast<int>(v)];
}

// The source that is checked: prompt + completion up to and including its last newline,
// so that a generation cut off by the token limit is not blamed for its unfinished last
// line. A completion that ended by itself (EOS), or text without any newline, is kept whole.
inline std::string syntax_check_source(std::string_view prompt, std::string_view completion, bool ended_by_itself) {
  std::string source = std::string(prompt) + std::string(completion);
  if (ended_by_itself) return source;
  const std::size_t newline = source.find_last_of('\n');
  if (newline != std::string::npos) source.resize(newline + 1);
  return source;
}

// Parses `source` with python3's ast.parse. The text goes through a private temporary
// file (no pipe, so a missing or failing interpreter can never raise SIGPIPE here).
inline SyntaxVerdict check_python_syntax(std::string_view source) {
  // Exit 0: parses; 3: SyntaxError (or ValueError, e.g. a NUL byte); anything else:
  // Python itself failed, so nothing was measured.
  static const char* const script =
      "import ast, sys\n"
      "try:\n"
      "    ast.parse(open(sys.argv[1], 'rb').read())\n"
      "except (SyntaxError, ValueError):\n"
      "    sys.exit(3)\n";
  const std::optional<PythonInterpreter>& python = python_interpreter();
  TemporaryFolder folder;
  const std::string path = folder.path() + "/source.py";
  if (!python || !folder.ok() || !write_text_file(path, std::string(source))) return SyntaxVerdict::not_measured;
  ChildLimits limits;
  limits.wall_seconds = 30;
  limits.cpu_seconds = 30;
  const ChildOutcome o = run_child({python->executable, "-I", "-c", script, path}, child_environment(folder.path()),
                                   folder.path(), folder.path() + "/out", limits);
  if (o.exit_status == 0) return SyntaxVerdict::valid;
  if (o.exit_status == 3) return SyntaxVerdict::invalid;
  return SyntaxVerdict::not_measured;
}

// Whether a python3 that can run ast.parse exists (a valid one-line program parses).
inline bool python_available() { return check_python_syntax("x = 1\n") == SyntaxVerdict::valid; }

}  // namespace smallcoder::bench
