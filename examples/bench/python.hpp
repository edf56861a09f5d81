// Running Python for the benchmark: the interpreter is found once (the first python3 that
// imports pyflakes, else the first that runs), and every run is a child process of its own
// with resource limits, a wall-clock timeout and a process group that is killed whole.
#pragma once

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace smallcoder::bench {

// What a child may use. CPU time past the limit ends it (SIGXCPU, then SIGKILL a second
// later); an allocation past the address-space limit fails (MemoryError in Python); a
// write past the file-size limit ends it (SIGXFSZ); RLIMIT_NPROC 0 stops it starting
// processes or threads (the kernel does not apply it to root: the audit hook must).
struct ChildLimits {
  double wall_seconds = 10;
  int cpu_seconds = 10;
  std::uint64_t address_space_bytes = std::uint64_t{1} << 30;
  std::uint64_t file_size_bytes = std::uint64_t{16} << 20;
  bool forbid_processes = true;
};

struct ChildOutcome {
  bool timed_out = false;  // killed at the wall-clock limit
  int exit_status = -1;    // when it exited by itself
  int signal = 0;          // when a signal ended it
  std::string output;      // its stdout
};

inline std::string describe_child_end(const ChildOutcome& o, const ChildLimits& limits) {
  if (o.timed_out) return "timed out (" + std::to_string(static_cast<int>(limits.wall_seconds)) + " s wall clock)";
  if (o.signal == SIGXCPU || o.signal == SIGKILL)
    return "stopped by the CPU-time limit or killed (signal " + std::to_string(o.signal) + ")";
  if (o.signal == SIGXFSZ) return "stopped by the file-size limit";
  if (o.signal != 0) return "ended by signal " + std::to_string(o.signal);
  return "exited with status " + std::to_string(o.exit_status);
}

namespace detail {

inline void set_limit(int resource, rlim_t soft, rlim_t hard) {
  const rlimit r{soft, hard};
  ::setrlimit(resource, &r);
}

// Closes every descriptor from 3 up, so the child inherits no model file or report.
// Only async-signal-safe calls: it runs between fork and exec.
inline void close_inherited_descriptors() {
#ifdef SYS_close_range
  if (::syscall(SYS_close_range, 3u, ~0u, 0u) == 0) return;
#endif
  const long max = ::sysconf(_SC_OPEN_MAX);
  for (long fd = 3; fd < std::min(max > 0 ? max : 1024L, 65536L); ++fd) ::close(static_cast<int>(fd));
}

inline std::vector<char*> c_strings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (std::string& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

inline std::string read_whole_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace detail

// Runs argv[0] (a path) in `cwd` with only `env`, stdin from /dev/null, stdout into
// `stdout_path`, stderr discarded, in a process group of its own, under `limits`.
inline ChildOutcome run_child(std::vector<std::string> argv, std::vector<std::string> env, const std::string& cwd,
                              const std::string& stdout_path, const ChildLimits& limits) {
  using Clock = std::chrono::steady_clock;
  ChildOutcome o;
  // Everything the child needs is made before fork: after it, only async-signal-safe calls.
  std::vector<char*> args = detail::c_strings(argv), envp = detail::c_strings(env);
  const rlim_t cpu = static_cast<rlim_t>(std::max(1, limits.cpu_seconds));
  const pid_t pid = ::fork();
  if (pid < 0) return o;
  if (pid == 0) {
    ::setpgid(0, 0);
    detail::set_limit(RLIMIT_CPU, cpu, cpu + 1);
    detail::set_limit(RLIMIT_AS, limits.address_space_bytes, limits.address_space_bytes);
    detail::set_limit(RLIMIT_FSIZE, limits.file_size_bytes, limits.file_size_bytes);
    detail::set_limit(RLIMIT_CORE, 0, 0);
    if (limits.forbid_processes) detail::set_limit(RLIMIT_NPROC, 0, 0);
    const int in = ::open("/dev/null", O_RDONLY);
    const int out = ::open(stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const int err = ::open("/dev/null", O_WRONLY);
    if (in < 0 || out < 0 || err < 0 || ::chdir(cwd.c_str()) != 0) ::_exit(127);
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(err, 2);
    detail::close_inherited_descriptors();
    ::execve(args[0], args.data(), envp.data());
    ::_exit(127);
  }
  ::setpgid(pid, pid);  // also here, so the group exists before any kill below
  const Clock::time_point deadline =
      Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(limits.wall_seconds));
  int status = 0;
  auto pause = std::chrono::microseconds(500);
  for (;;) {
    const pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid) break;
    if (done < 0 && errno != EINTR) return o;
    if (Clock::now() >= deadline) {
      ::kill(-pid, SIGKILL);
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      o.timed_out = true;
      break;
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(20000));
  }
  ::kill(-pid, SIGKILL);  // anything it left behind in its group
  if (WIFEXITED(status)) o.exit_status = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) o.signal = WTERMSIG(status);
  o.output = detail::read_whole_file(stdout_path);
  return o;
}

// A private temporary folder, removed with everything in it when this goes.
class TemporaryFolder {
 public:
  TemporaryFolder() {
    const char* tmpdir = std::getenv("TMPDIR");
    std::string pattern = std::string(tmpdir != nullptr && *tmpdir != '\0' ? tmpdir : "/tmp") + "/smallcoder-XXXXXX";
    if (::mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~TemporaryFolder() {
    std::error_code ignored;
    if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
  }
  TemporaryFolder(const TemporaryFolder&) = delete;
  TemporaryFolder& operator=(const TemporaryFolder&) = delete;
  bool ok() const { return !path_.empty(); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline bool write_text_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  return static_cast<bool>(out.flush());
}

// The environment a Python child gets: nothing of ours (-I ignores PYTHON* anyway).
inline std::vector<std::string> child_environment(const std::string& home) {
  return {"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + home, "TMPDIR=" + home, "LC_ALL=C.UTF-8"};
}

struct PythonInterpreter {
  std::string executable;  // absolute path (sys.executable), so no launcher script runs per child
  bool has_pyflakes = false;
};

namespace detail {

// The python3 programs worth asking, in order: $SMALLCODER_PYTHON alone when set, else
// python3 on PATH, then Debian's /usr/bin/python3 (where python3-pyflakes installs, when
// PATH's is another, e.g. pyenv's).
inline std::vector<std::string> python_candidates() {
  if (const char* forced = std::getenv("SMALLCODER_PYTHON"); forced != nullptr && *forced != '\0') return {forced};
  std::vector<std::string> out;
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    const std::string candidate = (dir.empty() ? "." : dir) + "/python3";
    if (::access(candidate.c_str(), X_OK) == 0) {
      out.push_back(candidate);
      break;
    }
  }
  if (std::find(out.begin(), out.end(), "/usr/bin/python3") == out.end()) out.push_back("/usr/bin/python3");
  return out;
}

inline std::optional<PythonInterpreter> probe_python(const std::string& program) {
  TemporaryFolder folder;
  if (!folder.ok() || ::access(program.c_str(), X_OK) != 0) return std::nullopt;
  ChildLimits limits;
  limits.wall_seconds = 30;
  limits.forbid_processes = false;  // a launcher script (pyenv's) starts the real one
  const ChildOutcome o = run_child({program, "-I", "-c",
                                    "import sys\nprint(sys.executable)\ntry:\n    import pyflakes.checker\n    "
                                    "print('pyflakes')\nexcept ImportError:\n"
                                    "    print('-')\n"},
                                   child_environment(folder.path()), folder.path(), folder.path() + "/out", limits);
  const std::size_t newline = o.output.find('\n');
  if (o.exit_status != 0 || newline == std::string::npos || o.output.compare(0, 1, "/") != 0) return std::nullopt;
  return PythonInterpreter{o.output.substr(0, newline), o.output.compare(newline + 1, 8, "pyflakes") == 0};
}

}  // namespace detail

// The interpreter every Python child of this process uses; asked once. Empty without one.
inline const std::optional<PythonInterpreter>& python_interpreter() {
  static const std::optional<PythonInterpreter> found = [] {
    std::optional<PythonInterpreter> first;
    for (const std::string& candidate : detail::python_candidates()) {
      std::optional<PythonInterpreter> p = detail::probe_python(candidate);
      if (p && p->has_pyflakes) return p;
      if (p && !first) first = p;
    }
    return first;
  }();
  return found;
}

}  // namespace smallcoder::bench
