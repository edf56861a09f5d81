// libFuzzer target: the GGUF reader, then the LLaMA conventions on what it read (config,
// tokenizer, tensor binding). Any input must end in a parsed model or a smallcoder::Error:
// no crash, no sanitizer report, no hang, no allocation beyond the input's size.
#include <cstddef>
#include <cstdint>

#include "memory_file.hpp"
#include "smallcoder/model/load.hpp"
#include "smallcoder/io/gguf.hpp"
#include "smallcoder/io/gguf_llama.hpp"

using namespace smallcoder;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = fuzz::memory_file(data, size);
  volatile std::uint8_t sink = 0;
  try {
    const Gguf file = Gguf::open(path);
    for (const auto& kv : file.metadata()) sink = sink ^ static_cast<std::uint8_t>(kv.second.describe().size());
    for (const GgufTensorInfo& t : file.tensors()) sink = sink ^ fuzz::touch(t.data, t.nbytes);
    try {
      const Tokenizer tokenizer(tokenizer_spec_from_gguf(file), path);
      const std::string text = tokenizer.decode(tokenizer.encode("def f(x):\n  return x \xF0\x9F\x9A\x80"));
      sink = sink ^ static_cast<std::uint8_t>(text.size());
    } catch (const Error&) {
    }
    const ModelConfig config = config_from_gguf(file);
    const ModelWeights weights = detail::bind_gguf(config, file);
    sink = sink ^ static_cast<std::uint8_t>(weights.bytes());
  } catch (const Error&) {
  }
  return 0;
}
