// Writers of PyTorch checkpoints for tests and fuzz seeds: pickle opcodes (protocol 2, as
// torch.save emits them), stored zip archives laid out as torch's writer lays them out
// (each entry's data aligned to 64 bytes by a padding extra field; zip64 on request), and
// training checkpoints of a model's weights. Tests build good and broken files from these
// instead of committing binaries.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "smallcoder/config.hpp"
#include "smallcoder/model/weights.hpp"

namespace smallcoder::test {

class PickleWriter {
 public:
  PickleWriter() { bytes_ += "\x80\x02"; }  // PROTO 2

  PickleWriter& op(char opcode) {
    bytes_ += opcode;
    return *this;
  }
  PickleWriter& mark() { return op('('); }
  PickleWriter& none() { return op('N'); }
  PickleWriter& boolean(bool b) { return op(b ? '\x88' : '\x89'); }
  PickleWriter& integer(std::int64_t v) {
    if (v >= INT32_MIN && v <= INT32_MAX) return op('J').le(static_cast<std::uint64_t>(v), 4);
    return op('\x8a').op('\x08').le(static_cast<std::uint64_t>(v), 8);  // LONG1 of 8 bytes
  }
  PickleWriter& number(double v) {
    std::uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof bits);
    op('G');
    for (int i = 7; i >= 0; --i) bytes_ += static_cast<char>(bits >> (8 * i));
    return *this;
  }
  PickleWriter& str(const std::string& s) {
    op('X').le(s.size(), 4);
    bytes_ += s;
    return *this;
  }
  PickleWriter& global(const std::string& module, const std::string& name) {
    bytes_ += "c" + module + "\n" + name + "\n";
    return *this;
  }
  PickleWriter& int_tuple(const std::vector<std::int64_t>& values) {
    mark();
    for (std::int64_t v : values) integer(v);
    return op('t');
  }
  PickleWriter& ordered_dict() { return global("collections", "OrderedDict").op(')').op('R'); }

  // _rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict()) with the storage
  // as torch's persistent id ('storage', torch.<type>, key, 'cpu', numel).
  PickleWriter& tensor(const std::string& storage_type, const std::string& key, std::int64_t numel, std::int64_t offset,
                       const std::vector<std::int64_t>& shape, const std::vector<std::int64_t>& stride) {
    global("torch._utils", "_rebuild_tensor_v2").mark();
    mark().str("storage").global("torch", storage_type).str(key).str("cpu").integer(numel).op('t').op('Q');
    integer(offset).int_tuple(shape).int_tuple(stride).boolean(false).ordered_dict();
    return op('t').op('R');
  }

  std::string finish() { return bytes_ + "."; }  // STOP
  const std::string& bytes() const { return bytes_; }

 private:
  PickleWriter& le(std::uint64_t v, int width) {
    for (int i = 0; i < width; ++i) bytes_ += static_cast<char>(v >> (8 * i));
    return *this;
  }

  std::string bytes_;
};

struct ZipFileEntry {
  std::string name;
  std::string data;
  std::uint16_t method = 0;  // 0 stored; anything else only claims compression
};

// A zip archive of `entries`, each entry's data aligned to 64 bytes as torch writes them;
// with zip64, the sizes and offsets go to zip64 extra fields and end records.
inline std::string zip_bytes(const std::vector<ZipFileEntry>& entries, bool zip64 = false) {
  auto le = [](std::string& out, std::uint64_t v, int width) {
    for (int i = 0; i < width; ++i) out += static_cast<char>(v >> (8 * i));
  };
  std::string out, directory;
  for (const ZipFileEntry& e : entries) {
    const std::uint64_t offset = out.size();
    const std::size_t unpadded = out.size() + 30 + e.name.size() + 4;
    const std::size_t pad = (64 - unpadded % 64) % 64;
    le(out, 0x04034b50, 4);
    le(out, zip64 ? 45 : 20, 2);
    le(out, 0, 2);
    le(out, e.method, 2);
    le(out, 0, 8);  // time, date, crc (the reader does not check it)
    le(out, e.data.size(), 4);
    le(out, e.data.size(), 4);
    le(out, e.name.size(), 2);
    le(out, 4 + pad, 2);
    out += e.name;
    le(out, 0x4246, 2);  // torch's padding field "FB"
    le(out, pad, 2);
    out += std::string(pad, 'Z');
    out += e.data;

    std::string extra;
    if (zip64) {
      le(extra, 1, 2);
      le(extra, 24, 2);
      le(extra, e.data.size(), 8);
      le(extra, e.data.size(), 8);
      le(extra, offset, 8);
    }
    le(directory, 0x02014b50, 4);
    le(directory, zip64 ? 45 : 20, 2);
    le(directory, zip64 ? 45 : 20, 2);
    le(directory, 0, 2);
    le(directory, e.method, 2);
    le(directory, 0, 8);
    le(directory, zip64 ? 0xffffffff : e.data.size(), 4);
    le(directory, zip64 ? 0xffffffff : e.data.size(), 4);
    le(directory, e.name.size(), 2);
    le(directory, extra.size(), 2);
    le(directory, 0, 8);  // comment length, disk, internal and external attributes
    le(directory, 0, 2);
    le(directory, zip64 ? 0xffffffff : offset, 4);
    directory += e.name + extra;
  }
  const std::uint64_t directory_offset = out.size();
  out += directory;
  if (zip64) {
    const std::uint64_t record_offset = out.size();
    le(out, 0x06064b50, 4);
    le(out, 44, 8);
    le(out, 45, 2);
    le(out, 45, 2);
    le(out, 0, 8);  // disk numbers
    le(out, entries.size(), 8);
    le(out, entries.size(), 8);
    le(out, directory.size(), 8);
    le(out, directory_offset, 8);
    le(out, 0x07064b50, 4);
    le(out, 0, 4);
    le(out, record_offset, 8);
    le(out, 1, 4);
  }
  le(out, 0x06054b50, 4);
  le(out, 0, 4);
  le(out, zip64 ? 0xffff : entries.size(), 2);
  le(out, zip64 ? 0xffff : entries.size(), 2);
  le(out, zip64 ? 0xffffffff : directory.size(), 4);
  le(out, zip64 ? 0xffffffff : directory_offset, 4);
  le(out, 0, 2);
  return out;
}

// A torch.save archive: <folder>/data.pkl, <folder>/data/<key> for each storage, <folder>/version.
inline std::string pt_archive(const std::string& folder, const std::string& pickle,
                              const std::vector<std::pair<std::string, std::string>>& storages, bool zip64 = false) {
  std::vector<ZipFileEntry> entries{{folder + "/data.pkl", pickle}};
  for (const auto& [key, bytes] : storages) entries.push_back({folder + "/data/" + key, bytes});
  entries.push_back({folder + "/version", "3\n"});
  return zip_bytes(entries, zip64);
}

// The pieces of a training checkpoint in the original project's layout.
struct PtTensor {
  std::string name;
  std::string storage_type;  // "FloatStorage", "BFloat16Storage", "HalfStorage"
  std::vector<std::int64_t> shape;
  std::string bytes;
  std::string shared_key;  // non-empty: a view of that earlier storage (a tied parameter), no bytes of its own
};

inline std::vector<std::int64_t> contiguous_strides(const std::vector<std::int64_t>& shape) {
  std::vector<std::int64_t> stride(shape.size(), 1);
  for (std::size_t d = shape.size(); d-- > 1;) stride[d - 1] = stride[d] * shape[d];
  return stride;
}

inline std::int64_t element_count(const std::vector<std::int64_t>& shape) {
  std::int64_t n = 1;
  for (std::int64_t d : shape) n *= d;
  return n;
}

inline std::string storage_type_of(DType dtype) {
  return dtype == DType::bf16 ? "BFloat16Storage" : dtype == DType::f16 ? "HalfStorage" : "FloatStorage";
}

// Every tensor of the weights under its Hugging Face name (the original model's names).
inline std::vector<PtTensor> pt_tensors(const ModelConfig& config, ModelWeights weights) {
  std::vector<PtTensor> out;
  for_each_weight(config, weights, [&](const WeightSlot& slot) {
    const TensorView& v = *slot.view;
    const auto shape =
        slot.is_vector() ? std::vector<std::int64_t>{slot.cols} : std::vector<std::int64_t>{slot.rows, slot.cols};
    out.push_back({hf_tensor_name(slot), storage_type_of(v.dtype), shape,
                   std::string(reinterpret_cast<const char*>(v.data), v.bytes()), ""});
  });
  return out;
}

// SmallCoderConfig's attributes as the training scripts pickle them.
inline void write_config_dict(PickleWriter& p, const ModelConfig& c) {
  p.op('}').mark();
  p.str("vocab_size").integer(c.vocab_size).str("hidden_size").integer(c.hidden_size);
  p.str("intermediate_size").integer(c.intermediate_size).str("num_hidden_layers").integer(c.num_layers);
  p.str("num_attention_heads").integer(c.num_heads).str("num_key_value_heads").integer(c.num_kv_heads);
  p.str("max_position_embeddings").integer(c.max_context).str("rms_norm_eps").number(c.rms_norm_eps);
  p.str("rope_theta").number(c.rope_theta).str("attention_dropout").number(0.0).str("use_cache").boolean(true);
  p.str("pad_token_id").integer(c.pad_id).str("bos_token_id").integer(c.bos_id).str("eos_token_id").integer(c.eos_id);
  p.str("tie_word_embeddings").boolean(c.tie_word_embeddings).str("rope_scaling").none();
  p.op('u');
}

// The state_dict as an OrderedDict of tensors, storage keys numbered from `first_key`,
// with the '_metadata' attribute torch sets by BUILD. Appends the storages' bytes.
inline void write_state_dict(PickleWriter& p, const std::vector<PtTensor>& tensors, int first_key,
                             std::vector<std::pair<std::string, std::string>>& storages) {
  p.ordered_dict().mark();
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const PtTensor& t = tensors[i];
    const std::string key = t.shared_key.empty() ? std::to_string(first_key + static_cast<int>(i)) : t.shared_key;
    p.str(t.name).tensor(t.storage_type, key, element_count(t.shape), 0, t.shape, contiguous_strides(t.shape));
    if (t.shared_key.empty()) storages.emplace_back(key, t.bytes);
  }
  p.op('u').op('}').mark().str("_metadata").ordered_dict().op('u').op('b');
}

// train_all_variants.py's checkpoint dict: model_state_dict, config, variant_name; with
// `optimizer`, AdamW's state (step, exp_avg, exp_avg_sq per parameter) as best_model.pt has.
inline std::string training_checkpoint(const std::string& folder, const ModelConfig& config,
                                       const std::vector<PtTensor>& tensors, bool optimizer = false) {
  std::vector<std::pair<std::string, std::string>> storages;
  PickleWriter p;
  p.op('}').mark().str("epoch").integer(3).str("model_state_dict");
  write_state_dict(p, tensors, 0, storages);
  if (optimizer) {
    p.str("optimizer_state_dict").op('}').mark().str("state").op('}').mark();
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      const PtTensor& t = tensors[i];
      const int key = static_cast<int>(storages.size());
      p.integer(static_cast<std::int64_t>(i)).op('}').mark();
      p.str("step").tensor("FloatStorage", std::to_string(key), 1, 0, {}, {});
      storages.emplace_back(std::to_string(key), std::string(4, '\0'));
      for (const char* moment : {"exp_avg", "exp_avg_sq"}) {
        const std::string k = std::to_string(storages.size());
        p.str(moment).tensor(t.storage_type, k, element_count(t.shape), 0, t.shape, contiguous_strides(t.shape));
        storages.emplace_back(k, std::string(t.bytes.size(), '\x7f'));
      }
      p.op('u');
    }
    p.op('u').str("param_groups").op(']').mark().op('}').mark().str("lr").number(3e-4).str("betas");
    p.mark().number(0.9).number(0.999).op('t').str("params").op(']').mark();
    for (std::size_t i = 0; i < tensors.size(); ++i) p.integer(static_cast<std::int64_t>(i));
    p.op('e').op('u').op('e').op('u');
  }
  p.str("train_loss").number(2.5).str("config");
  write_config_dict(p, config);
  p.str("variant_name").str(config.name).str("trained_on").str("python source").op('u');
  return pt_archive(folder, p.finish(), storages);
}

// torch.save(model.state_dict()): the OrderedDict of tensors alone.
inline std::string bare_state_dict(const std::string& folder, const std::vector<PtTensor>& tensors,
                                   bool zip64 = false) {
  std::vector<std::pair<std::string, std::string>> storages;
  PickleWriter p;
  write_state_dict(p, tensors, 0, storages);
  return pt_archive(folder, p.finish(), storages, zip64);
}

}  // namespace smallcoder::test
