// Command-line handling shared by the example tools: declared flags, strict value
// parsing, and the exit-status contract (2 and one line for usage errors, 1 and one
// line for any other error).
#pragma once

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace cli {

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The integer `text` in [min, max]; a usage error naming the flag otherwise.
inline long long parse_integer(const std::string& name, const std::string& text, long long min, long long max) {
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno == ERANGE) throw UsageError(name + " expects an integer, got '" + text + "'");
  if (v < min || v > max) {
    throw UsageError(name + " must be in " + std::to_string(min) + ".." + std::to_string(max) + ", got " + text);
  }
  return v;
}

class Parser {
 public:
  Parser(std::string tool, std::string summary) : tool_(std::move(tool)), summary_(std::move(summary)) {}

  void flag(const std::string& name, bool* target, const std::string& help) {
    add(name, "", help, 0, [target](const std::vector<std::string>&) { *target = true; });
  }
  void text(const std::string& name, std::string* target, const std::string& metavar, const std::string& help) {
    add(name, metavar, help, 1, [target](const std::vector<std::string>& v) { *target = v[0]; });
  }
  // Repeatable: each use appends one value.
  void repeated(const std::string& name, std::vector<std::string>* target, const std::string& metavar,
                const std::string& help) {
    add(name, metavar, help, 1, [target](const std::vector<std::string>& v) { target->push_back(v[0]); });
  }
  // One or more values up to the next flag (--variants A B C).
  void several(const std::string& name, std::vector<std::string>* target, const std::string& metavar,
               const std::string& help) {
    add(name, metavar + "...", help, -1, [target](const std::vector<std::string>& v) { *target = v; });
  }
  void integer(const std::string& name, long long* target, long long min, long long max, const std::string& help) {
    add(name, "N", help, 1, [=](const std::vector<std::string>& v) { *target = parse_integer(name, v[0], min, max); });
  }
  void number(const std::string& name, double* target, double min, double max, const std::string& help) {
    add(name, "X", help, 1, [=](const std::vector<std::string>& v) { *target = parse_number(name, v[0], min, max); });
  }

  // Applies argv; throws UsageError. --help prints the usage and returns false.
  bool parse(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
      const std::string arg = argv[i];
      if (arg == "--help" || arg == "-h") {
        std::fputs(usage().c_str(), stdout);
        return false;
      }
      std::string name = arg, inline_value;
      const bool has_inline = arg.rfind("--", 0) == 0 && arg.find('=') != std::string::npos;
      if (has_inline) {
        name = arg.substr(0, arg.find('='));
        inline_value = arg.substr(arg.find('=') + 1);
      }
      const Option* option = find(name);
      if (option == nullptr) throw UsageError("unknown argument '" + arg + "' (see --help)");
      std::vector<std::string> values;
      if (has_inline) {
        if (option->arity == 0) throw UsageError(name + " takes no value");
        values.push_back(inline_value);
      } else if (option->arity == 1) {
        if (i + 1 >= argc) throw UsageError(name + " needs a value");
        values.push_back(argv[++i]);
      } else if (option->arity < 0) {
        while (i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0) values.push_back(argv[++i]);
        if (values.empty()) throw UsageError(name + " needs at least one value");
      }
      option->apply(values);
    }
    return true;
  }

  std::string usage() const {
    std::string out = "usage: " + tool_ + " [options]\n" + summary_ + "\n\noptions:\n";
    for (const Option& o : options_) {
      std::string head = "  " + o.name + (o.metavar.empty() ? "" : " " + o.metavar);
      if (head.size() < 28) head.resize(28, ' ');
      out += head + " " + o.help + "\n";
    }
    return out;
  }

 private:
  struct Option {
    std::string name, metavar, help;
    int arity;  // 0 flag, 1 value, -1 one or more
    std::function<void(const std::vector<std::string>&)> apply;
  };

  void add(const std::string& name, const std::string& metavar, const std::string& help, int arity,
           std::function<void(const std::vector<std::string>&)> apply) {
    options_.push_back(Option{name, metavar, help, arity, std::move(apply)});
  }
  const Option* find(const std::string& name) const {
    for (const Option& o : options_) {
      if (o.name == name) return &o;
    }
    return nullptr;
  }
  static double parse_number(const std::string& name, const std::string& text, double min, double max) {
    errno = 0;
    char* end = nullptr;
    const double v = std::strtod(text.c_str(), &end);
    if (text.empty() || *end != '\0' || errno == ERANGE || v != v) {
      throw UsageError(name + " expects a number, got '" + text + "'");
    }
    if (v < min || v > max) {
      throw UsageError(name + " must be in [" + std::to_string(min) + ", " + std::to_string(max) + "], got " + text);
    }
    return v;
  }

  std::string tool_, summary_;
  std::vector<Option> options_;
};

// One line, whatever the message holds.
inline std::string one_line(std::string message) {
  for (char& c : message) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return message;
}

// Runs a tool's body with the exit-status contract: 0 ok, 2 usage error, 1 anything else.
inline int run_tool(const char* tool, const std::function<int()>& body) {
  try {
    return body();
  } catch (const UsageError& e) {
    std::fprintf(stderr, "%s: usage error: %s\n", tool, one_line(e.what()).c_str());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error: %s\n", tool, one_line(e.what()).c_str());
    return 1;
  }
}

}  // namespace cli
