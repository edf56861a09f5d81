// libFuzzer target: the .pt reader. An input that starts like a zip archive ("PK") goes
// through the zip reader, the restricted unpickler and the checks of storages and tensors,
// then every state_dict tensor is mapped and read (ASan checks each view lies in its
// mapping) and, where the pickle holds a config, the model's tensors are bound. Any other
// input is unpickled alone, so mutations reach the unpickler without a zip around them.
// Every input must end in a result or a smallcoder::Error: no crash, no sanitizer report,
// no hang, nothing imported or run.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "memory_file.hpp"
#include "smallcoder/io/pickle.hpp"
#include "smallcoder/io/torch_checkpoint.hpp"
#include "smallcoder/model/checkpoint.hpp"

using namespace smallcoder;

namespace {

std::uint8_t read_checkpoint_archive(const std::uint8_t* data, std::size_t size) {
  std::uint8_t sink = 0;
  const TorchCheckpoint pt = TorchCheckpoint::open(fuzz::memory_file(data, size));
  for (const auto& entry : pt.state_dict()) {
    try {
      const TorchTensorData t = pt.map_tensor(entry.first);
      sink = sink ^ fuzz::touch(t.data, t.bytes);
    } catch (const Error&) {
    }
  }
  if (const std::optional<ModelConfig> config = pt.model_config()) {
    const ModelWeights weights = detail::bind_torch(*config, pt);
    sink = sink ^ static_cast<std::uint8_t>(weights.bytes());
  }
  return sink;
}

std::uint8_t read_pickle(const std::uint8_t* data, std::size_t size) {
  const Pickle pickle = unpickle(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.pkl");
  std::uint8_t sink = static_cast<std::uint8_t>(pickle.root().kind);
  for (const PickleStorage& s : pickle.storages()) sink = sink ^ static_cast<std::uint8_t>(s.numel + s.key.size());
  for (const PickleTensor& t : pickle.tensors()) sink = sink ^ static_cast<std::uint8_t>(t.shape.size() + t.offset);
  return sink;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  volatile std::uint8_t sink = 0;
  try {
    const bool archive = size >= 2 && data[0] == 'P' && data[1] == 'K';
    sink = sink ^ (archive ? read_checkpoint_archive(data, size) : read_pickle(data, size));
  } catch (const Error&) {
  }
  return 0;
}
