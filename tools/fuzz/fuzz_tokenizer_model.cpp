// libFuzzer target: the sentencepiece model reader (protobuf and validation), then encoding
// and decoding with whatever tokenizer it accepted. Any input must end in a working
// tokenizer or a smallcoder::Error.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "smallcoder/text/sentencepiece.hpp"

using namespace smallcoder;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const Tokenizer tokenizer =
        Tokenizer::from_proto(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.model");
    for (const char* text : {"", " ", "def f(x):\n\treturn  x  # caf\xC3\xA9 \xF0\x9F\x9A\x80", "<s>ab</s>"}) {
      const std::vector<std::int32_t> ids = tokenizer.encode(text);
      std::string streamed;
      StreamDecoder decoder(tokenizer, true);
      for (std::int32_t id : ids) streamed += decoder.push(id);
      streamed += decoder.flush();
      if (streamed != tokenizer.decode(ids)) __builtin_trap();
    }
  } catch (const Error&) {
  }
  return 0;
}
