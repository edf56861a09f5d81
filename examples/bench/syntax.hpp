// Syntax validity of a completion: does prompt + completion, cut at its last complete
// line, parse as Python? Asked of a real Python (python3 with ast.parse, in a child
// process); without one the answer is "not measured", never a guess.
#pragma once

#include <cerrno>
#include <cstdlib>
#include <string>
#include <string_view>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace smallcoder::bench {

enum class SyntaxVerdict { valid, invalid, not_measured };

inline const char* syntax_verdict_name(SyntaxVerdict v) {
  switch (v) {
    case SyntaxVerdict::valid: return "valid";
    case SyntaxVerdict::invalid: return "invalid";
    case SyntaxVerdict::not_measured: return "not measured";
  }
  return "unknown";
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

namespace detail {

// Runs `python3 -c script path` with its output discarded; its exit status, or -1 when
// it could not be started or did not exit normally.
inline int run_python(const char* script, const std::string& path) {
  posix_spawn_file_actions_t actions;
  if (posix_spawn_file_actions_init(&actions) != 0) return -1;
  const bool quiet = posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0) == 0 &&
                     posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0) == 0 &&
                     posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0) == 0;
  std::string arg0 = "python3", arg1 = "-c", arg2 = script, arg3 = path;
  char* argv[] = {arg0.data(), arg1.data(), arg2.data(), arg3.data(), nullptr};
  pid_t pid = 0;
  const int spawned = quiet ? posix_spawnp(&pid, "python3", &actions, nullptr, argv, environ) : -1;
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) return -1;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace detail

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
  const char* tmpdir = std::getenv("TMPDIR");
  std::string path = std::string(tmpdir != nullptr && *tmpdir != '\0' ? tmpdir : "/tmp") + "/smallcoder-syntax-XXXXXX";
  const int fd = ::mkstemp(path.data());
  if (fd < 0) return SyntaxVerdict::not_measured;
  std::size_t written = 0;
  while (written < source.size()) {
    const ssize_t n = ::write(fd, source.data() + written, source.size() - written);
    if (n <= 0) break;
    written += static_cast<std::size_t>(n);
  }
  ::close(fd);
  const int status = written == source.size() ? detail::run_python(script, path) : -1;
  ::unlink(path.c_str());
  if (status == 0) return SyntaxVerdict::valid;
  if (status == 3) return SyntaxVerdict::invalid;
  return SyntaxVerdict::not_measured;
}

// Whether a python3 that can run ast.parse exists (a valid one-line program parses).
inline bool python_available() { return check_python_syntax("x = 1\n") == SyntaxVerdict::valid; }

}  // namespace smallcoder::bench
