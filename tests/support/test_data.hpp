// Where the tests find ../shared (the reference data), and small file helpers.
#pragma once

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace smallcoder::test {

inline std::string data_dir() {
  const char* env = std::getenv("SMALLCODER_TEST_DATA");
  return env != nullptr && *env != '\0' ? std::string(env) : std::string("../shared");
}

// Path of a file under the reference data folder, e.g. data_path("tokenizer/tokenizer.model").
inline std::string data_path(const std::string& relative) { return data_dir() + "/" + relative; }

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("test: cannot open " + path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

inline void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("test: cannot write " + path);
}

// A fresh scratch path in the build folder for a test's own files.
inline std::string scratch_path(const std::string& name) { return "test_scratch_" + name; }

}  // namespace smallcoder::test
