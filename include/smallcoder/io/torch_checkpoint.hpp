// A PyTorch checkpoint as torch.save (1.6 and later) writes it: a zip archive whose one
// folder holds data.pkl (the pickled object) and data/<key>, the bytes of each storage.
// Opening reads only the central directory and the pickle, and checks every storage and
// tensor against the archive; a tensor's bytes are mapped when it is asked for, so a
// training checkpoint's optimizer state (twice the weights for AdamW) is never read or
// even mapped.
#pragma once

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "smallcoder/config.hpp"
#include "smallcoder/error.hpp"
#include "smallcoder/io/hf_config.hpp"
#include "smallcoder/io/json.hpp"
#include "smallcoder/io/mapped_file.hpp"
#include "smallcoder/io/pickle.hpp"
#include "smallcoder/io/safetensors.hpp"
#include "smallcoder/io/zip.hpp"
#include "smallcoder/tensor/dtype.hpp"

namespace smallcoder {

// A tensor of the state_dict, mapped from the archive as it is stored.
struct TorchTensorData {
  DType dtype = DType::f32;
  std::vector<std::int64_t> shape;
  const std::byte* data = nullptr;
  std::size_t bytes = 0;
  std::shared_ptr<const MappedFile> mapping;  // keeps `data` valid
};

namespace detail {

// The highest element index a strided view touches, plus one (0 for an empty tensor);
// nullopt when that does not fit in 64 bits.
inline std::optional<std::uint64_t> torch_tensor_extent(const PickleTensor& t) {
  constexpr std::uint64_t max = std::numeric_limits<std::int64_t>::max();
  std::uint64_t last = static_cast<std::uint64_t>(t.offset);
  for (std::size_t i = 0; i < t.shape.size(); ++i) {
    if (t.shape[i] == 0) return 0;
    const auto steps = static_cast<std::uint64_t>(t.shape[i] - 1), stride = static_cast<std::uint64_t>(t.stride[i]);
    if (stride != 0 && steps > (max - last) / stride) return std::nullopt;
    last += steps * stride;
  }
  return last + 1;
}

inline std::string torch_describe(const PickleTensor& t) {
  return "size " + format_shape(t.shape) + ", stride " + format_shape(t.stride) + ", storage offset " +
         std::to_string(t.offset);
}

// Row-major with no gaps (torch's is_contiguous: dimensions of size 1 may have any stride).
inline bool torch_is_contiguous(const PickleTensor& t) {
  std::int64_t expected = 1;
  for (std::size_t i = t.shape.size(); i-- > 0;) {
    if (t.shape[i] != 1 && t.stride[i] != expected) return false;
    expected *= t.shape[i];
  }
  return true;
}

// Plain data of the pickle as JSON text (a config dict), so that the config reader for
// config.json reads it; tensors and globals have no JSON form. The depth limit stops
// self-referencing lists, which a pickle can build.
inline void pickle_to_json(const PickleValue& v, std::string& out, int depth, const std::string& where) {
  using Kind = PickleValue::Kind;
  if (depth > 32) fail(where, "nests deeper than 32 levels (or refers to itself)");
  switch (v.kind) {
    case Kind::none:
      out += "null";
      return;
    case Kind::boolean:
      out += v.boolean ? "true" : "false";
      return;
    case Kind::integer:
      out += std::to_string(v.integer);
      return;
    case Kind::floating: {
      char buffer[32];
      const auto result = std::to_chars(buffer, buffer + sizeof buffer, v.floating);
      const std::string text(buffer, result.ptr);
      // JSON has no inf or nan: as strings they fail where a number is read, and are ignored elsewhere.
      out += v.floating - v.floating == 0 ? text : json_quote(text);
      return;
    }
    case Kind::string:
      out += json_quote(v.text);
      return;
    case Kind::tuple:
    case Kind::list:
      out += '[';
      for (std::size_t i = 0; i < v.items.size(); ++i) {
        if (i > 0) out += ',';
        pickle_to_json(*v.items[i], out, depth + 1, where);
      }
      out += ']';
      return;
    case Kind::dict:
      out += '{';
      for (std::size_t i = 0; i < v.items.size(); ++i) {
        if (i > 0) out += ',';
        const PickleValue& key = *v.keys[i];
        out += json_quote(key.kind == Kind::string ? key.text : std::to_string(key.integer));
        out += ':';
        pickle_to_json(*v.items[i], out, depth + 1, where);
      }
      out += '}';
      return;
    default:
      fail(where, std::string("holds a ") + PickleValue::kind_name(v.kind) + ", which is not plain data");
  }
}

}  // namespace detail

class TorchCheckpoint {
 public:
  // A checkpoint's pickle is kilobytes (a few hundred bytes per tensor); this bounds what a
  // hostile archive can make the reader allocate.
  static constexpr std::uint64_t max_pickle_bytes = std::uint64_t{16} << 20;

  static TorchCheckpoint open(const std::string& path) { return TorchCheckpoint(ReadOnlyFile::open(path)); }

  explicit TorchCheckpoint(const std::shared_ptr<const ReadOnlyFile>& file) : zip_(check_not_legacy(file)) {
    const std::vector<ZipEntry>& entries = zip_.entries();
    if (entries.empty()) fail(path(), "the archive is empty (no data.pkl)");
    // The archive's folder is the saved file's base name ("archive" when saved to a buffer).
    const std::string& first = entries.front().name;
    folder_ = first.substr(0, first.find('/'));
    for (const ZipEntry& e : entries) {
      if (e.name.size() <= folder_.size() || e.name.compare(0, folder_.size() + 1, folder_ + "/") != 0) {
        fail(path(), "entry " + quote_untrusted(e.name) + " lies outside the archive's folder " +
                         quote_untrusted(folder_) + " (not a torch.save archive)");
      }
    }
    if (const ZipEntry* order = zip_.find(folder_ + "/byteorder")) {
      if (order->size > 16 || zip_.read(*order) != "little") {
        fail(path(), "the archive's byteorder is not 'little': big-endian checkpoints are not supported");
      }
    }
    const ZipEntry& data = zip_.get(folder_ + "/data.pkl");
    if (data.size > max_pickle_bytes) {
      fail(path(), "data.pkl is " + std::to_string(data.size) + " bytes; a checkpoint's is kilobytes (limit " +
                       std::to_string(max_pickle_bytes) + ")");
    }
    pickle_ = unpickle(zip_.read(data), path() + ": data.pkl");
    check_storages();
    find_state_dict();
    for (const auto& [name, value] : state_dict_) check_tensor(*value, "tensor " + quote_untrusted(name));
    for (const PickleTensor& t : pickle_.tensors()) check_bounds(t, "a tensor");
  }

  const std::string& path() const { return zip_.path(); }
  const Pickle& pickle() const { return pickle_; }
  const ZipArchive& archive() const { return zip_; }
  // The zip entry holding a storage's bytes.
  const ZipEntry& storage_entry(const PickleStorage& s) const { return zip_.get(folder_ + "/data/" + s.key); }

  // The state_dict's entries in file order: a training checkpoint's 'model_state_dict', or
  // the whole pickle when it is a state_dict itself.
  const std::vector<std::pair<std::string, const PickleValue*>>& state_dict() const { return state_dict_; }
  bool is_training_checkpoint() const { return root_dict_ != nullptr; }

  // The model's config from the training checkpoint's 'config' dict (the original
  // SmallCoderConfig's attributes, Hugging Face's names); nullopt when there is none.
  std::optional<ModelConfig> model_config() const {
    const PickleValue* config = root_dict_ == nullptr ? nullptr : root_dict_->find("config");
    if (config == nullptr) return std::nullopt;
    const std::string where = path() + ": config";
    if (config->kind != PickleValue::Kind::dict) {
      fail(where, std::string("is a ") + PickleValue::kind_name(config->kind) + ", not a dict");
    }
    std::string json;
    detail::pickle_to_json(*config, json, 0, where);
    // SmallCoderConfig ties the embeddings unless told otherwise; Hugging Face's default is the opposite.
    if (config->find("tie_word_embeddings") == nullptr) {
      json.insert(1, config->items.empty() ? "\"tie_word_embeddings\":true" : "\"tie_word_embeddings\":true,");
    }
    ModelConfig c = config_from_hf_json(parse_json(json, where), where);
    const PickleValue* name = root_dict_->find("variant_name");
    if (name != nullptr && name->kind == PickleValue::Kind::string) c.name = name->text;
    return c;
  }

  // Whether the state_dict's tensors `a` and `b` are one tensor (torch saves a tied
  // parameter under each of its names, pointing at the same storage).
  bool same_tensor(std::string_view a, std::string_view b) const {
    const PickleValue *x = find(a), *y = find(b);
    if (x == nullptr || y == nullptr) return false;
    const PickleTensor &s = pickle_.tensors()[x->index], &t = pickle_.tensors()[y->index];
    return s.storage == t.storage && s.offset == t.offset && s.shape == t.shape && s.stride == t.stride;
  }

  // Maps the bytes of the state_dict's tensor `name`; it must be float32, bfloat16 or
  // float16 and contiguous (any storage offset).
  TorchTensorData map_tensor(std::string_view name) const {
    const std::string where = path() + ": tensor " + quote_untrusted(name);
    const PickleValue* value = find(name);
    if (value == nullptr) fail(path(), "missing tensor " + quote_untrusted(name) + describe_keys());
    const PickleTensor& t = pickle_.tensors()[value->index];
    const PickleStorage& s = pickle_.storages()[t.storage];
    if (!s.dtype) {
      fail(where, "is stored as torch." + s.type + "; model weights must be float32, bfloat16 or float16");
    }
    if (!detail::torch_is_contiguous(t)) {
      fail(where, "is not contiguous (" + detail::torch_describe(t) + "): save it after .contiguous()");
    }
    std::uint64_t numel = 1;  // no overflow: the bounds check at open capped the extent of every tensor
    for (std::int64_t d : t.shape) numel *= static_cast<std::uint64_t>(d);
    TorchTensorData out;
    out.dtype = *s.dtype;
    out.shape = t.shape;
    out.bytes = static_cast<std::size_t>(numel * s.element_bytes);
    out.mapping = zip_.map(storage_entry(s), static_cast<std::uint64_t>(t.offset) * s.element_bytes, out.bytes);
    out.data = out.mapping->data();
    // Mappings start on page boundaries, so the address has the file offset's alignment.
    if (reinterpret_cast<std::uintptr_t>(out.data) % s.element_bytes != 0) {
      fail(where, "its data is not aligned to its " + std::to_string(s.element_bytes) + "-byte elements");
    }
    return out;
  }

 private:
  // torch.save before 1.6 (or with _use_new_zipfile_serialization=False) wrote a bare
  // pickle stream, whose first bytes are pickle's PROTO opcode.
  static std::shared_ptr<const ReadOnlyFile> check_not_legacy(const std::shared_ptr<const ReadOnlyFile>& file) {
    if (file->size() >= 2 && file->read(0, 1) == "\x80") {
      fail(file->path(),
           "a torch.save file in the legacy format (torch before 1.6, or "
           "_use_new_zipfile_serialization=False): load it and save it again with a newer torch");
    }
    return file;
  }

  // Every storage the pickle names must be an entry of exactly its size.
  void check_storages() const {
    for (const PickleStorage& s : pickle_.storages()) {
      const ZipEntry* entry = zip_.find(folder_ + "/data/" + s.key);
      const std::string what = "storage " + quote_untrusted(s.key) + " (torch." + s.type + ")";
      if (entry == nullptr)
        fail(path(), what + " has no entry " + quote_untrusted("data/" + s.key) + " in the archive");
      if (entry->size % s.element_bytes != 0 || static_cast<std::uint64_t>(s.numel) != entry->size / s.element_bytes) {
        fail(path(), what + " has " + std::to_string(s.numel) + " elements of " + std::to_string(s.element_bytes) +
                         " bytes, but its entry holds " + std::to_string(entry->size) + " bytes");
      }
    }
  }

  void check_bounds(const PickleTensor& t, const std::string& what) const {
    const PickleStorage& s = pickle_.storages()[t.storage];
    const std::optional<std::uint64_t> extent = detail::torch_tensor_extent(t);
    if (!extent || *extent > static_cast<std::uint64_t>(s.numel)) {
      fail(path(), what + " (" + detail::torch_describe(t) + ") reaches past the end of its storage " +
                       quote_untrusted(s.key) + " of " + std::to_string(s.numel) + " elements");
    }
  }

  void check_tensor(const PickleValue& v, const std::string& what) const {
    if (v.kind == PickleValue::Kind::tensor) check_bounds(pickle_.tensors()[v.index], what);
  }

  // The root is either a dict with 'model_state_dict' (the original training scripts' format)
  // or a state_dict: a dict of tensors.
  void find_state_dict() {
    using Kind = PickleValue::Kind;
    const PickleValue& root = pickle_.root();
    if (root.kind != Kind::dict) {
      fail(path(), std::string("data.pkl holds a ") + PickleValue::kind_name(root.kind) +
                       ", not a state_dict or a checkpoint dict");
    }
    const PickleValue* states = root.find("model_state_dict");
    if (states != nullptr) {
      root_dict_ = &root;
      if (states->kind != Kind::dict) {
        fail(path(), std::string("'model_state_dict' is a ") + PickleValue::kind_name(states->kind) + ", not a dict");
      }
    } else {
      states = &root;
      bool all_tensors = !root.items.empty();
      for (const PickleValue* v : root.items) all_tensors = all_tensors && v->kind == Kind::tensor;
      if (!all_tensors) {
        fail(path(), "holds neither a state_dict (a dict of tensors) nor a dict with 'model_state_dict'" +
                         describe_keys(&root));
      }
    }
    for (std::size_t i = 0; i < states->items.size(); ++i) {
      if (states->keys[i]->kind == Kind::string) state_dict_.emplace_back(states->keys[i]->text, states->items[i]);
    }
  }

  const PickleValue* find(std::string_view name) const {
    const PickleValue* dict = root_dict_ == nullptr ? &pickle_.root() : root_dict_->find("model_state_dict");
    const PickleValue* v = dict->find(name);
    return v != nullptr && v->kind == PickleValue::Kind::tensor ? v : nullptr;
  }

  // " (the state_dict has N tensors: 'a', 'b', ...)": what the file holds instead, for a
  // missing name.
  std::string describe_keys(const PickleValue* dict = nullptr) const {
    std::string out;
    std::size_t n = 0;
    if (dict != nullptr) {
      for (const PickleValue* key : dict->keys) {
        if (key->kind == PickleValue::Kind::string && n++ < 4) out += (n > 1 ? ", " : "") + quote_untrusted(key->text);
      }
      return " (its keys: " + out + (n > 4 ? ", ..." : "") + ")";
    }
    for (const auto& entry : state_dict_) {
      if (n++ < 4) out += (n > 1 ? ", " : "") + quote_untrusted(entry.first);
    }
    return " (the state_dict has " + std::to_string(state_dict_.size()) + " entries" + (n > 0 ? ": " : "") + out +
           (n > 4 ? ", ..." : "") + "; is it a SmallCoder/Llama model?)";
  }

  ZipArchive zip_;
  std::string folder_;
  Pickle pickle_;
  const PickleValue* root_dict_ = nullptr;  // the training checkpoint's dict, when it is one
  std::vector<std::pair<std::string, const PickleValue*>> state_dict_;
};

}  // namespace smallcoder
