// A restricted unpickler for the data.pkl of a torch.save archive. Python's pickle format
// is a small stack machine whose GLOBAL/REDUCE opcodes import and call arbitrary
// functions; this reader never calls or imports anything. It understands exactly what a
// checkpoint holds: None, booleans, integers, floats, strings, tuples, lists, dicts,
// collections.OrderedDict, tensors (torch._utils._rebuild_tensor_v2) and their storages
// (persistent ids naming torch's storage types), and refuses every other global and opcode
// by name. The result is a tree of inert values; tensors and storages are descriptions
// (shape, strides, storage key), their bytes stay in the archive.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "smallcoder/error.hpp"
#include "smallcoder/tensor/dtype.hpp"
#include "smallcoder/text/utf8.hpp"

namespace smallcoder {

// One of torch's typed storages, as a persistent id names it:
// ('storage', torch.FloatStorage, key, location, numel). Its bytes are the archive's
// entry data/<key>.
struct PickleStorage {
  std::string key;
  std::string type;  // "FloatStorage", "BFloat16Storage", ...
  std::size_t element_bytes = 0;
  std::optional<DType> dtype;  // for the float types the model computes from
  std::string location;        // "cpu", "cuda:0", ...: where torch would put it; ignored here
  std::int64_t numel = 0;
};

// A tensor as _rebuild_tensor_v2 describes it: a view of a storage.
struct PickleTensor {
  std::size_t storage = 0;  // index into Pickle::storages()
  std::int64_t offset = 0;  // in elements
  std::vector<std::int64_t> shape, stride;
};

struct PickleValue {
  enum class Kind { none, boolean, integer, floating, string, tuple, list, dict, global, storage, tensor };
  Kind kind = Kind::none;
  bool boolean = false;
  std::int64_t integer = 0;
  double floating = 0;
  std::string text;                       // string: UTF-8; global: "module.name"
  std::vector<const PickleValue*> items;  // tuple, list: the elements; dict: the values
  std::vector<const PickleValue*> keys;   // dict: the keys (strings or integers), beside items
  std::size_t index = 0;                  // storage, tensor: into Pickle's lists; global: which one

  // The dict's value under a string key, or nullptr (also when this is no dict).
  const PickleValue* find(std::string_view key) const {
    if (kind != Kind::dict || key_index_ == nullptr) return nullptr;
    const auto it = key_index_->find(dict_key(Kind::string, key));
    return it == key_index_->end() ? nullptr : items[it->second];
  }

  static const char* kind_name(Kind kind) {
    static const char* const names[] = {"None", "bool", "int",    "float",   "str",   "tuple",
                                        "list", "dict", "global", "storage", "tensor"};
    return names[static_cast<int>(kind)];
  }

 private:
  friend class PickleReader;
  static std::string dict_key(Kind kind, std::string_view text) {
    return (kind == Kind::string ? "s" : "i") + std::string(text);
  }
  std::unique_ptr<std::unordered_map<std::string, std::size_t>> key_index_;  // dict: key -> position
};

// The unpickled document: every value lives here; pointers between them stay valid while it does.
class Pickle {
 public:
  const PickleValue& root() const { return *root_; }
  const std::vector<PickleStorage>& storages() const { return storages_; }
  const std::vector<PickleTensor>& tensors() const { return tensors_; }

 private:
  friend class PickleReader;
  std::deque<PickleValue> values_;
  const PickleValue* root_ = nullptr;
  std::vector<PickleStorage> storages_;
  std::vector<PickleTensor> tensors_;
};

namespace detail {

// Every opcode of pickle protocols 0-5 by its byte, for messages.
inline const char* pickle_opcode_name(unsigned char op) {
  // clang-format off
  static const std::pair<unsigned char, const char*> names[] = {
      {'(', "MARK"},           {'.', "STOP"},           {'0', "POP"},            {'1', "POP_MARK"},
      {'2', "DUP"},            {'F', "FLOAT"},          {'I', "INT"},            {'J', "BININT"},
      {'K', "BININT1"},        {'L', "LONG"},           {'M', "BININT2"},        {'N', "NONE"},
      {'P', "PERSID"},         {'Q', "BINPERSID"},      {'R', "REDUCE"},         {'S', "STRING"},
      {'T', "BINSTRING"},      {'U', "SHORT_BINSTRING"}, {'V', "UNICODE"},        {'X', "BINUNICODE"},
      {'a', "APPEND"},         {'b', "BUILD"},          {'c', "GLOBAL"},         {'d', "DICT"},
      {'}', "EMPTY_DICT"},     {'e', "APPENDS"},        {'g', "GET"},            {'h', "BINGET"},
      {'i', "INST"},           {'j', "LONG_BINGET"},    {'l', "LIST"},           {']', "EMPTY_LIST"},
      {'o', "OBJ"},            {'p', "PUT"},            {'q', "BINPUT"},         {'r', "LONG_BINPUT"},
      {'s', "SETITEM"},        {'t', "TUPLE"},          {')', "EMPTY_TUPLE"},    {'u', "SETITEMS"},
      {'G', "BINFLOAT"},       {0x80, "PROTO"},         {0x81, "NEWOBJ"},        {0x82, "EXT1"},
      {0x83, "EXT2"},          {0x84, "EXT4"},          {0x85, "TUPLE1"},        {0x86, "TUPLE2"},
      {0x87, "TUPLE3"},        {0x88, "NEWTRUE"},       {0x89, "NEWFALSE"},      {0x8a, "LONG1"},
      {0x8b, "LONG4"},         {'B', "BINBYTES"},       {'C', "SHORT_BINBYTES"}, {0x8c, "SHORT_BINUNICODE"},
      {0x8d, "BINUNICODE8"},   {0x8e, "BINBYTES8"},     {0x8f, "EMPTY_SET"},     {0x90, "ADDITEMS"},
      {0x91, "FROZENSET"},     {0x92, "NEWOBJ_EX"},     {0x93, "STACK_GLOBAL"},  {0x94, "MEMOIZE"},
      {0x95, "FRAME"},         {0x96, "BYTEARRAY8"},    {0x97, "NEXT_BUFFER"},   {0x98, "READONLY_BUFFER"},
  };
  // clang-format on
  for (const auto& [byte, name] : names) {
    if (byte == op) return name;
  }
  return nullptr;
}

// torch's typed storages, as persistent ids name them ("torch.FloatStorage"). Only the float
// ones can hold model weights; the others may appear elsewhere in a checkpoint.
struct TorchStorageType {
  const char* name;
  std::size_t element_bytes;
  std::optional<DType> dtype;
};

inline const TorchStorageType* torch_storage_type(std::string_view name) {
  static const TorchStorageType types[] = {
      {"FloatStorage", 4, DType::f32}, {"BFloat16Storage", 2, DType::bf16},
      {"HalfStorage", 2, DType::f16},  {"DoubleStorage", 8, {}},
      {"LongStorage", 8, {}},          {"IntStorage", 4, {}},
      {"ShortStorage", 2, {}},         {"CharStorage", 1, {}},
      {"ByteStorage", 1, {}},          {"BoolStorage", 1, {}},
  };
  for (const TorchStorageType& t : types) {
    if (name == t.name) return &t;
  }
  return nullptr;
}

}  // namespace detail

// Reads one pickle; use unpickle() below. Limits keep a hostile pickle's memory bounded:
// a checkpoint's pickle builds a few thousand values.
class PickleReader {
 public:
  static constexpr std::size_t max_values = std::size_t{1} << 20;

  PickleReader(std::string_view bytes, std::string where) : bytes_(bytes), where_(std::move(where)) {}

  Pickle read() {
    while (true) {
      if (pos_ >= bytes_.size()) fail(where_, "ends without a STOP opcode (truncated?)");
      op_at_ = pos_;
      const auto op = static_cast<unsigned char>(bytes_[pos_++]);
      if (op == '.') break;
      step(op);
    }
    if (!marks_.empty() || stack_.size() != 1) fail(where_, "STOP leaves a malformed stack");
    if (pos_ != bytes_.size()) fail(where_, std::to_string(bytes_.size() - pos_) + " bytes follow the STOP opcode");
    out_.root_ = stack_.back();
    return std::move(out_);
  }

 private:
  using Kind = PickleValue::Kind;
  enum Global : std::size_t { ordered_dict, rebuild_tensor_v2, storage_type };

  [[noreturn]] void error(const std::string& what) const {
    fail(where_, "byte " + std::to_string(op_at_) + ": " + what);
  }

  void step(unsigned char op) {
    switch (op) {
      case 0x80: {  // PROTO
        const std::uint64_t version = take_le(1);
        if (version < 2 || version > 5) error("pickle protocol " + std::to_string(version) + " (expected 2 to 5)");
        break;
      }
      case 0x95:
        take_le(8);
        break;  // FRAME: a length hint for buffered readers; nothing to do
      case '(':
        if (marks_.size() >= max_values) error("more than " + std::to_string(max_values) + " open MARKs");
        marks_.push_back(stack_.size());
        break;
      case '0':
        pop();
        break;
      case '1':
        pop_mark();
        break;
      case '2':
        push(top());
        break;
      case 'N':
        push(make(Kind::none));
        break;
      case 0x88:
      case 0x89: {
        PickleValue* v = make(Kind::boolean);
        v->boolean = op == 0x88;
        push(v);
        break;
      }
      case 'J':
        push_int(static_cast<std::int32_t>(take_le(4)));
        break;
      case 'K':
        push_int(static_cast<std::int64_t>(take_le(1)));
        break;
      case 'M':
        push_int(static_cast<std::int64_t>(take_le(2)));
        break;
      case 0x8a:
        push_long(static_cast<std::size_t>(take_le(1)));
        break;
      case 0x8b:
        push_long(static_cast<std::size_t>(take_le(4)));
        break;
      case 'G': {
        std::uint64_t bits = 0;  // big-endian IEEE 754 double
        for (char c : take(8)) bits = bits << 8 | static_cast<std::uint8_t>(c);
        PickleValue* v = make(Kind::floating);
        std::memcpy(&v->floating, &bits, sizeof bits);
        push(v);
        break;
      }
      case 'X':
        push_string(take(static_cast<std::size_t>(take_le(4))));
        break;
      case 0x8c:
        push_string(take(static_cast<std::size_t>(take_le(1))));
        break;
      case 0x8d:
        push_string(take(take_size(8)));
        break;
      case ')':
        push(make(Kind::tuple));
        break;
      case 't':
        push(make_sequence(Kind::tuple, pop_mark()));
        break;
      case 0x85:
      case 0x86:
      case 0x87: {
        const std::size_t n = op - 0x84u;
        std::vector<PickleValue*> items(n);
        for (std::size_t i = n; i-- > 0;) items[i] = pop();
        push(make_sequence(Kind::tuple, items));
        break;
      }
      case ']':
        push(make(Kind::list));
        break;
      case 'l':
        push(make_sequence(Kind::list, pop_mark()));
        break;
      case 'a': {
        PickleValue* item = pop();
        append(top(), {item});
        break;
      }
      case 'e': {
        const std::vector<PickleValue*> items = pop_mark();
        append(top(), items);
        break;
      }
      case '}':
        push(make_dict());
        break;
      case 'd': {
        PickleValue* dict = make_dict();
        set_items(dict, pop_mark());
        push(dict);
        break;
      }
      case 's': {
        PickleValue* value = pop();
        PickleValue* key = pop();
        set_items(top(), {key, value});
        break;
      }
      case 'u': {
        const std::vector<PickleValue*> pairs = pop_mark();
        set_items(top(), pairs);
        break;
      }
      case 'q':
        memo_[take_le(1)] = top();
        break;
      case 'r':
        memo_[take_le(4)] = top();
        break;
      case 0x94:
        memo_[memo_.size()] = top();
        break;  // MEMOIZE: the next free index
      case 'h':
        push(memo_get(take_le(1)));
        break;
      case 'j':
        push(memo_get(take_le(4)));
        break;
      case 'c': {
        const std::string module = take_line(), name = take_line();
        push(global(module, name));
        break;
      }
      case 0x93: {  // STACK_GLOBAL: module and name as strings on the stack
        PickleValue* name = pop();
        PickleValue* module = pop();
        if (module->kind != Kind::string || name->kind != Kind::string) error("STACK_GLOBAL needs two strings");
        push(global(module->text, name->text));
        break;
      }
      case 'Q':
        push(persistent_load(pop()));
        break;
      case 'R': {
        PickleValue* args = pop();
        PickleValue* callable = pop();
        push(reduce(callable, args));
        break;
      }
      case 'b': {
        PickleValue* state = pop();
        build(top(), state);
        break;
      }
      default: {
        const char* name = detail::pickle_opcode_name(op);
        if (name == nullptr) error("unknown opcode " + hex_byte(op));
        error(std::string("opcode ") + name + " (" + hex_byte(op) +
              ") is not allowed: a checkpoint needs only plain data, OrderedDict and tensors");
      }
    }
  }

  static std::string hex_byte(unsigned char op) {
    static const char hex[] = "0123456789abcdef";
    return std::string("0x") + hex[op >> 4] + hex[op & 15];
  }

  // ---- reading the opcode's arguments ----

  std::string_view take(std::size_t n) {
    if (n > bytes_.size() - pos_) error("the opcode's argument runs past the end of the pickle (truncated?)");
    const std::string_view out = bytes_.substr(pos_, n);
    pos_ += n;
    return out;
  }
  std::uint64_t take_le(int width) {
    std::uint64_t v = 0;
    const std::string_view b = take(static_cast<std::size_t>(width));
    for (int i = width - 1; i >= 0; --i) v = v << 8 | static_cast<std::uint8_t>(b[static_cast<std::size_t>(i)]);
    return v;
  }
  std::size_t take_size(int width) {
    const std::uint64_t n = take_le(width);
    if (n > bytes_.size()) error("a length of " + std::to_string(n) + " bytes exceeds the pickle");
    return static_cast<std::size_t>(n);
  }
  std::string take_line() {
    const std::size_t end = bytes_.find('\n', pos_);
    if (end == std::string_view::npos) error("GLOBAL's name has no end of line (truncated?)");
    std::string line(bytes_.substr(pos_, end - pos_));
    pos_ = end + 1;
    return line;
  }

  // ---- the stack and the memo ----

  PickleValue* make(Kind kind) {
    if (out_.values_.size() >= max_values) {
      error("the pickle builds more than " + std::to_string(max_values) + " values (a checkpoint's builds thousands)");
    }
    out_.values_.emplace_back();
    out_.values_.back().kind = kind;
    return &out_.values_.back();
  }
  PickleValue* make_dict() {
    PickleValue* v = make(Kind::dict);
    v->key_index_ = std::make_unique<std::unordered_map<std::string, std::size_t>>();
    return v;
  }
  PickleValue* make_sequence(Kind kind, const std::vector<PickleValue*>& items) {
    PickleValue* v = make(kind);
    v->items.assign(items.begin(), items.end());
    return v;
  }
  void push(PickleValue* v) {
    if (stack_.size() >= max_values) error("the stack holds more than " + std::to_string(max_values) + " values");
    stack_.push_back(v);
  }
  std::size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }  // nothing below a mark is visible
  PickleValue* top() const {
    if (stack_.size() <= floor()) error("the stack is empty");
    return stack_.back();
  }
  PickleValue* pop() {
    PickleValue* v = top();
    stack_.pop_back();
    return v;
  }
  std::vector<PickleValue*> pop_mark() {
    if (marks_.empty()) error("no MARK to pop to");
    const std::size_t mark = marks_.back();
    marks_.pop_back();
    std::vector<PickleValue*> items(stack_.begin() + static_cast<std::ptrdiff_t>(mark), stack_.end());
    stack_.resize(mark);
    return items;
  }
  PickleValue* memo_get(std::uint64_t index) {
    const auto it = memo_.find(index);
    if (it == memo_.end()) error("memo entry " + std::to_string(index) + " was never stored");
    return it->second;
  }

  // ---- values ----

  void push_int(std::int64_t value) {
    PickleValue* v = make(Kind::integer);
    v->integer = value;
    push(v);
  }
  // LONG1/LONG4: a little-endian two's complement integer of n bytes.
  void push_long(std::size_t n) {
    if (n > 8) error("an integer of " + std::to_string(n) + " bytes does not fit in 64 bits");
    const std::string_view b = take(n);
    std::uint64_t bits = 0;
    for (std::size_t i = n; i-- > 0;) bits = bits << 8 | static_cast<std::uint8_t>(b[i]);
    if (n > 0 && n < 8 && (static_cast<std::uint8_t>(b[n - 1]) & 0x80) != 0) bits |= ~std::uint64_t{0} << (8 * n);
    push_int(static_cast<std::int64_t>(bits));
  }
  void push_string(std::string_view text) {
    if (utf8_find_invalid(text) != std::string_view::npos) error("a string is not valid UTF-8");
    PickleValue* v = make(Kind::string);
    v->text = std::string(text);
    push(v);
  }

  void append(PickleValue* list, const std::vector<PickleValue*>& items) {
    if (list->kind != Kind::list) error(std::string("APPEND to a ") + PickleValue::kind_name(list->kind));
    list->items.insert(list->items.end(), items.begin(), items.end());
  }

  // Pairs key, value, key, value...; a key set again replaces its value, as in Python.
  void set_items(PickleValue* dict, const std::vector<PickleValue*>& pairs) {
    if (dict->kind != Kind::dict) error(std::string("SETITEM on a ") + PickleValue::kind_name(dict->kind));
    if (pairs.size() % 2 != 0) error("SETITEMS with an odd number of items");
    for (std::size_t i = 0; i < pairs.size(); i += 2) {
      const PickleValue* key = pairs[i];
      std::string index_key;
      if (key->kind == Kind::string) {
        index_key = PickleValue::dict_key(Kind::string, key->text);
      } else if (key->kind == Kind::integer) {
        index_key = PickleValue::dict_key(Kind::integer, std::to_string(key->integer));
      } else {
        error(std::string("a dict key is a ") + PickleValue::kind_name(key->kind) +
              " (a checkpoint's dict keys are strings or integers)");
      }
      const auto [it, added] = dict->key_index_->emplace(std::move(index_key), dict->items.size());
      if (added) {
        dict->keys.push_back(key);
        dict->items.push_back(pairs[i + 1]);
      } else {
        dict->items[it->second] = pairs[i + 1];
      }
    }
  }

  // ---- the only globals: names, never imports ----

  PickleValue* global(const std::string& module, const std::string& name) {
    PickleValue* v = make(Kind::global);
    v->text = module + "." + name;
    if (module == "collections" && name == "OrderedDict") {
      v->index = ordered_dict;
    } else if (module == "torch._utils" && name == "_rebuild_tensor_v2") {
      v->index = rebuild_tensor_v2;
    } else if (module == "torch" && detail::torch_storage_type(name) != nullptr) {
      v->index = storage_type;
    } else {
      error("global " + quote_untrusted(v->text) +
            " is not allowed (a checkpoint needs only collections.OrderedDict, torch._utils._rebuild_tensor_v2 and "
            "torch's storage types); nothing was imported or run");
    }
    return v;
  }

  PickleValue* reduce(PickleValue* callable, PickleValue* args) {
    if (callable->kind != Kind::global) error(std::string("REDUCE calls a ") + PickleValue::kind_name(callable->kind));
    if (args->kind != Kind::tuple) error("REDUCE's arguments are not a tuple");
    if (callable->index == ordered_dict) {
      if (!args->items.empty()) error("OrderedDict is called with arguments (a checkpoint's start empty)");
      return make_dict();
    }
    if (callable->index == rebuild_tensor_v2) return rebuild_tensor(args->items);
    error("REDUCE calls " + quote_untrusted(callable->text) + ", which is not callable here");
  }

  // BUILD sets an object's attributes: a state_dict's OrderedDict carries '_metadata'
  // (module versions) that way. Nothing here has attributes, so the state is dropped.
  void build(PickleValue* target, PickleValue* state) {
    if (target->kind != Kind::dict || state->kind != Kind::dict) {
      error(std::string("BUILD of a ") + PickleValue::kind_name(target->kind) + " with a " +
            PickleValue::kind_name(state->kind) + " state (only an OrderedDict's attributes are expected)");
    }
  }

  std::int64_t int_arg(const PickleValue* v, const char* what) const {
    if (v->kind != Kind::integer)
      error(std::string(what) + " is a " + PickleValue::kind_name(v->kind) + ", not an int");
    return v->integer;
  }

  std::vector<std::int64_t> int_tuple(const PickleValue* v, const char* what) const {
    if (v->kind != Kind::tuple) error(std::string(what) + " is a " + PickleValue::kind_name(v->kind) + ", not a tuple");
    std::vector<std::int64_t> out;
    for (const PickleValue* item : v->items) {
      const std::int64_t x = int_arg(item, what);
      if (x < 0) error(std::string(what) + " has a negative value");
      out.push_back(x);
    }
    return out;
  }

  // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
  PickleValue* rebuild_tensor(const std::vector<const PickleValue*>& a) {
    if (a.size() != 6 && a.size() != 7)
      error("_rebuild_tensor_v2 takes 6 or 7 arguments, got " + std::to_string(a.size()));
    if (a[0]->kind != Kind::storage) error("_rebuild_tensor_v2's first argument is not a storage");
    PickleTensor t;
    t.storage = a[0]->index;
    t.offset = int_arg(a[1], "the storage offset");
    if (t.offset < 0) error("the storage offset is negative");
    t.shape = int_tuple(a[2], "the tensor's size");
    t.stride = int_tuple(a[3], "the tensor's stride");
    if (t.shape.size() != t.stride.size()) error("the tensor's size and stride have different lengths");
    if (a[4]->kind != Kind::boolean) error("requires_grad is not a bool");
    if (a[5]->kind != Kind::dict) error("backward_hooks is not a dict");
    if (a.size() == 7 && a[6]->kind != Kind::dict && a[6]->kind != Kind::none)
      error("the tensor's metadata is not a dict");
    PickleValue* v = make(Kind::tensor);
    v->index = out_.tensors_.size();
    out_.tensors_.push_back(std::move(t));
    return v;
  }

  // BINPERSID's id: ('storage', torch.<Type>Storage, key, location, numel). One key is one
  // storage wherever it appears, so a second mention must agree with the first.
  PickleValue* persistent_load(const PickleValue* pid) {
    const auto& f = pid->items;
    if (pid->kind != Kind::tuple || f.size() != 5 || f[0]->kind != Kind::string || f[0]->text != "storage") {
      error("a persistent id that is not ('storage', type, key, location, numel)");
    }
    if (f[1]->kind != Kind::global || f[1]->index != storage_type) error("a persistent id without a storage type");
    if (f[2]->kind != Kind::string || f[2]->text.empty()) error("a storage key that is not a string");
    if (f[3]->kind != Kind::string) error("a storage location that is not a string");
    PickleStorage s;
    s.key = f[2]->text;
    s.type = f[1]->text.substr(f[1]->text.find('.') + 1);
    const detail::TorchStorageType* type = detail::torch_storage_type(s.type);
    s.element_bytes = type->element_bytes;
    s.dtype = type->dtype;
    s.location = f[3]->text;
    s.numel = int_arg(f[4], "the storage's element count");
    if (s.numel < 0) error("the storage's element count is negative");
    const auto [it, added] = storage_index_.emplace(s.key, out_.storages_.size());
    if (added) {
      out_.storages_.push_back(std::move(s));
    } else {
      const PickleStorage& first = out_.storages_[it->second];
      if (first.type != s.type || first.numel != s.numel) {
        error("storage " + quote_untrusted(s.key) + " is named twice with different types or sizes");
      }
    }
    PickleValue* v = make(Kind::storage);
    v->index = it->second;
    return v;
  }

  std::string_view bytes_;
  std::string where_;
  std::size_t pos_ = 0, op_at_ = 0;
  std::vector<PickleValue*> stack_;
  std::vector<std::size_t> marks_;  // stack sizes at each open MARK
  std::unordered_map<std::uint64_t, PickleValue*> memo_;
  std::unordered_map<std::string, std::size_t> storage_index_;  // key -> index into storages
  Pickle out_;
};

// Unpickles `bytes` (a torch.save archive's data.pkl); `where` names it in errors.
inline Pickle unpickle(std::string_view bytes, const std::string& where) { return PickleReader(bytes, where).read(); }

}  // namespace smallcoder
