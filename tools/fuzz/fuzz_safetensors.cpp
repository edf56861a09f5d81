// libFuzzer target: the safetensors reader (its JSON header included). Any input must end
// in a parsed file whose tensor views lie inside the mapping, or in a smallcoder::Error.
#include <cstddef>
#include <cstdint>

#include "memory_file.hpp"
#include "smallcoder/io/safetensors.hpp"

using namespace smallcoder;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = fuzz::memory_file(data, size);
  volatile std::uint8_t sink = 0;
  try {
    const SafeTensors file = SafeTensors::open(path);
    for (const SafeTensorInfo& t : file.tensors()) {
      sink = sink ^ fuzz::touch(t.data, t.nbytes);
      if (file.find(t.name) == nullptr) __builtin_trap();  // every tensor can be found by its name
    }
    for (const auto& kv : file.metadata()) sink = sink ^ static_cast<std::uint8_t>(kv.first.size() + kv.second.size());
  } catch (const Error&) {
  }
  return 0;
}
