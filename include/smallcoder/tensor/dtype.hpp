// The element types weights can be stored in, one record each (DTypeInfo, in
// kDTypes): names, block layout, GGUF numbers and the row conversions to and
// from fp32. Everything that depends on the type reads it from here; the CPU
// kernels of each type have their own record, indexed the same way
// (cpu/kernels.hpp), as ggml keeps type_traits and type_traits_cpu apart. A new
// type is its enum value, its record below, its row functions and its kernels.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "smallcoder/error.hpp"
#include "smallcoder/tensor/half.hpp"
#include "smallcoder/tensor/quant_blocks.hpp"
#include "smallcoder/tensor/quant_encode.hpp"

namespace smallcoder {

enum class DType : std::uint8_t { f32, f16, bf16, q8_0, q4_0, q4_k, q6_k };
constexpr int kDTypeCount = static_cast<int>(DType::q6_k) + 1;

// n stored elements to fp32, and n fp32 values stored (n a whole number of
// blocks).
using RowToF32Fn = void (*)(const std::byte* src, std::int64_t n, float* dst);
using RowFromF32Fn = void (*)(const float* x, std::int64_t n, std::byte* dst);

struct DTypeInfo {
  DType type;
  const char* name;               // lower-case, as flags and messages spell it ("bf16", "q8_0")
  const char* file_name;          // as GGUF and safetensors files spell it ("BF16", "Q8_0")
  int block_elems;                // elements per block (1 for the float types)
  int block_bytes;                // bytes per block
  bool is_float;                  // f32/f16/bf16: what norms, KV caches and safetensors files
                                  // hold
  std::uint32_t ggml_type;        // the GGUF tensor type number (ggml.h's ggml_type)
  std::uint32_t llama_file_type;  // general.file_type of a file mostly of this
                                  // type (LLAMA_FTYPE_*)
  RowToF32Fn to_f32;
  RowFromF32Fn from_f32;  // null where this project has no quantizer (the k-quants)
};

// Block layouts are llama.cpp's (ggml-common.h); the 4-bit k-quant file type is
// its Q4_K_M mix.
constexpr DTypeInfo kDTypes[] = {
    {DType::f32, "f32", "F32", 1, 4, true, 0, 0, widen_f32_row, store_f32_row},
    {DType::f16, "f16", "F16", 1, 2, true, 1, 1, widen_f16_row, store_f16_row},
    {DType::bf16, "bf16", "BF16", 1, 2, true, 30, 32, widen_bf16_row, store_bf16_row},
    {DType::q8_0, "q8_0", "Q8_0", kQ0Block, sizeof(BlockQ8_0), false, 8, 7, dequantize_row_q8_0, quantize_row_q8_0},
    {DType::q4_0, "q4_0", "Q4_0", kQ0Block, sizeof(BlockQ4_0), false, 2, 2, dequantize_row_q4_0, quantize_row_q4_0},
    {DType::q4_k, "q4_k", "Q4_K", kQKBlock, sizeof(BlockQ4K), false, 12, 15, dequantize_row_q4_k, nullptr},
    {DType::q6_k, "q6_k", "Q6_K", kQKBlock, sizeof(BlockQ6K), false, 14, 18, dequantize_row_q6_k, nullptr},
};

// Whether a table of per-type records (this file's, cpu/kernels.hpp's) has one record per
// DType, listed in enum order, so that indexing it by the enum finds the type's record.
template <class Record, std::size_t N>
constexpr bool one_record_per_dtype(const Record (&records)[N]) {
  for (std::size_t i = 0; i < N; ++i) {
    if (static_cast<std::size_t>(records[i].type) != i) return false;
  }
  return N == kDTypeCount;
}
static_assert(one_record_per_dtype(kDTypes), "kDTypes: one DTypeInfo per DType, in enum order");

constexpr const DTypeInfo& dtype_info(DType t) { return kDTypes[static_cast<int>(t)]; }
constexpr const char* dtype_name(DType t) { return dtype_info(t).name; }
constexpr bool is_float_dtype(DType t) { return dtype_info(t).is_float; }
constexpr bool can_quantize_to(DType t) { return dtype_info(t).from_f32 != nullptr; }

// "f32, f16, ..." (file names with `file_names`) of the types keep(record)
// accepts: the lists of supported types in messages.
template <class Keep>
std::string dtype_names(Keep keep, bool file_names = false) {
  std::string list;
  for (const DTypeInfo& r : kDTypes) {
    if (!keep(r)) continue;
    if (!list.empty()) list += ", ";
    list += file_names ? r.file_name : r.name;
  }
  return list;
}

inline std::string all_dtype_names(bool file_names = false) {
  return dtype_names([](const DTypeInfo&) { return true; }, file_names);
}

// The types quantize_row can produce (those with a quantizer), for messages.
inline std::string quantizable_dtype_names() {
  return dtype_names([](const DTypeInfo& r) { return r.from_f32 != nullptr; });
}

// Parses a user-facing name ("bf16", "F16", "q8_0"); throws naming `where`
// otherwise.
inline DType parse_dtype(std::string_view name, const std::string& where) {
  std::string lower(name);
  for (char& c : lower) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  for (const DTypeInfo& r : kDTypes) {
    if (lower == r.name) return r.type;
  }
  fail(where, "unknown dtype '" + std::string(name) + "' (known: " + all_dtype_names() + ")");
}

// The type GGUF numbers `id`, if it is one of ours.
inline bool dtype_from_ggml_type(std::uint32_t id, DType& out) {
  for (const DTypeInfo& r : kDTypes) {
    if (r.ggml_type == id) {
      out = r.type;
      return true;
    }
  }
  return false;
}

// Bytes taken by `elems` consecutive elements; elems must be a whole number of
// blocks.
inline std::size_t dtype_bytes(DType t, std::int64_t elems) {
  const DTypeInfo& r = dtype_info(t);
  return static_cast<std::size_t>(elems / r.block_elems) * static_cast<std::size_t>(r.block_bytes);
}

// Widens n stored elements of any type (one embedding row, say) to fp32.
inline void row_to_f32(DType t, const std::byte* src, std::int64_t n, float* dst) { dtype_info(t).to_f32(src, n, dst); }

// Stores n fp32 values as `t` (dtype_bytes(t, n) bytes at dst). Throws naming
// `where` for a type without a quantizer (the k-quants, whose search-based
// quantizers this project does not implement) or a length that is not a whole
// number of blocks.
inline void quantize_row(DType t, const float* x, std::int64_t n, std::byte* dst, const std::string& where) {
  const DTypeInfo& r = dtype_info(t);
  if (r.from_f32 == nullptr) {
    fail(where, std::string("cannot quantize to ") + r.name + " (supported: " + quantizable_dtype_names() + ")");
  }
  if (n % r.block_elems != 0) {
    fail(where, "row of " + std::to_string(n) + " elements is not a whole number of " + r.name + " blocks of " +
                    std::to_string(r.block_elems));
  }
  r.from_f32(x, n, dst);
}

}  // namespace smallcoder
