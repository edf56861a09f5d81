// The CPU kernel table at every SIMD level of the build that the CPU has (scalar, then avx2,
// avx512, amx on x86 or neon, dotprod on aarch64, each forced in turn; levels the CPU lacks
// are skipped with a message): quantized activations and integer
// block sums bit-equal to the scalar level, products within 1e-6 of it on awkward shapes,
// float products within 1e-6 of a double-precision reference, the batch products (amx's bf16
// tiles) likewise on every remainder of rows, tokens and columns, and the backend's reuse of
// prepared activations.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "smallcoder/cpu/backend.hpp"
#include "smallcoder/cpu/isa.hpp"
#include "smallcoder/cpu/kernels.hpp"
#include "support/block_sums.hpp"
#include "support/model_shape.hpp"

using namespace smallcoder;
using cpu::Isa;

namespace {

const DType kQuantTypes[] = {DType::q8_0, DType::q4_0, DType::q4_k, DType::q6_k};
const DType kFloatTypes[] = {DType::f32, DType::bf16, DType::f16};
const int kTokenCounts[] = {1, 2, 3, 5, 17};

// The SIMD levels of this build that this CPU can run; a MESSAGE names the ones it cannot.
std::vector<Isa> simd_levels() {
  std::vector<Isa> levels;
  for (Isa isa : cpu::kAllIsas) {
    if (isa == Isa::scalar || !cpu::isa_built(isa)) continue;
    if (cpu::cpu_supports(isa)) {
      levels.push_back(isa);
    } else {
      MESSAGE("skipping kernel level " << std::string(cpu::isa_name(isa)) << ": this CPU lacks it");
    }
  }
  return levels;
}

std::vector<float> random_floats(std::mt19937& rng, std::size_t n, float scale) {
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> x(n);
  for (float& v : x) v = normal(rng);
  return x;
}

// A weight matrix of `rows` x `cols` in type t. Q8_0/Q4_0 come from the quantizers; the
// k-quants are random bytes (every bit pattern is a valid block) with moderate f16 scales.
struct Matrix {
  std::vector<std::byte> bytes;
  TensorView view;
};

Matrix random_matrix(std::mt19937& rng, DType t, std::int64_t rows, std::int64_t cols) {
  Matrix m;
  const std::size_t row_bytes = dtype_bytes(t, cols);
  m.bytes.resize(row_bytes * static_cast<std::size_t>(rows));
  if (t == DType::q4_k || t == DType::q6_k) {
    std::uniform_int_distribution<int> byte(0, 255);
    for (std::byte& b : m.bytes) b = static_cast<std::byte>(byte(rng));
    std::uniform_real_distribution<float> scale(-0.02f, 0.02f);
    const std::size_t block = static_cast<std::size_t>(dtype_info(t).block_bytes);
    for (std::size_t off = 0; off < m.bytes.size(); off += block) {
      const std::uint16_t d = f32_to_f16(scale(rng)), dmin = f32_to_f16(std::fabs(scale(rng)));
      if (t == DType::q4_k) {
        std::memcpy(m.bytes.data() + off, &d, 2);
        std::memcpy(m.bytes.data() + off + 2, &dmin, 2);
      } else {
        std::memcpy(m.bytes.data() + off + block - 2, &d, 2);
      }
    }
  } else {
    for (std::int64_t r = 0; r < rows; ++r) {
      const std::vector<float> x = random_floats(rng, static_cast<std::size_t>(cols), 0.05f);
      quantize_row(t, x.data(), cols, m.bytes.data() + row_bytes * static_cast<std::size_t>(r), "test");
    }
  }
  m.view = TensorView{t, rows, cols, m.bytes.data()};
  return m;
}

// n activation rows prepared for kernels k: quantized, or the fp32 rows themselves.
struct Acts {
  std::vector<std::byte> bytes;
  std::size_t stride = 0;
};

Acts prepare(const cpu::Kernels& k, const std::vector<float>& x, int n, std::int64_t cols) {
  Acts a;
  a.stride =
      k.act == cpu::ActFormat::f32 ? static_cast<std::size_t>(cols) * sizeof(float) : cpu::act_row_bytes(k.act, cols);
  a.bytes.resize(a.stride * static_cast<std::size_t>(n));
  for (int t = 0; t < n; ++t) {
    const float* row = x.data() + static_cast<std::size_t>(t) * static_cast<std::size_t>(cols);
    std::byte* out = a.bytes.data() + static_cast<std::size_t>(t) * a.stride;
    if (k.quantize_acts != nullptr) {
      k.quantize_acts(row, cols, out);
    } else {
      std::memcpy(out, row, static_cast<std::size_t>(cols) * sizeof(float));
    }
  }
  return a;
}

std::vector<float> run_gemm(const cpu::Kernels& k, const TensorView& w, const Acts& a, int n) {
  std::vector<float> y(static_cast<std::size_t>(n) * static_cast<std::size_t>(w.rows));
  k.gemm(w, 0, w.rows, a.bytes.data(), a.stride, n, y.data(), static_cast<std::size_t>(w.rows), false);
  return y;
}

// The values prepared activation row `act` stands for.
std::vector<float> act_values(cpu::ActFormat format, const std::byte* act, std::int64_t cols) {
  std::vector<float> v(static_cast<std::size_t>(cols));
  for (std::int64_t i = 0; i < cols; ++i) {
    if (format == cpu::ActFormat::f32) {
      v[static_cast<std::size_t>(i)] = reinterpret_cast<const float*>(act)[i];
    } else if (format == cpu::ActFormat::q8_0) {
      const cpu::Q8Acts a = cpu::q8_acts(act, cols);
      v[static_cast<std::size_t>(i)] = a.qs[i] * a.d[i / kQ0Block];
    } else {
      const BlockQ8K& a = reinterpret_cast<const BlockQ8K*>(act)[i / kQKBlock];
      v[static_cast<std::size_t>(i)] = a.qs[i % kQKBlock] * a.d;
    }
  }
  return v;
}

// Exact (double) products of the stored weights with the prepared activations, and the
// sum of the terms' magnitudes: a product is "within e" when |got - exact| <= e * magnitude,
// the bound fp32 summation in any order meets whatever the cancellation.
struct Reference {
  std::vector<double> exact, magnitude;
};

Reference reference(const cpu::Kernels& k, const TensorView& w, const Acts& acts, int n) {
  Reference ref;
  std::vector<float> row(static_cast<std::size_t>(w.cols));
  for (int t = 0; t < n; ++t) {
    const std::vector<float> a =
        act_values(k.act, acts.bytes.data() + static_cast<std::size_t>(t) * acts.stride, w.cols);
    for (std::int64_t r = 0; r < w.rows; ++r) {
      row_to_f32(w.dtype, w.row(r), w.cols, row.data());
      double sum = 0.0, magnitude = 0.0;
      for (std::size_t i = 0; i < row.size(); ++i) {
        sum += static_cast<double>(row[i]) * a[i];
        magnitude += std::fabs(static_cast<double>(row[i]) * a[i]);
      }
      ref.exact.push_back(sum);
      ref.magnitude.push_back(magnitude);
    }
  }
  return ref;
}

// Checks every output of y (token-major, w.rows apart) against ref within `tolerance`.
void check_within(const std::vector<float>& y, const std::vector<float>& other, const Reference& ref,
                  double tolerance) {
  for (std::size_t i = 0; i < y.size(); ++i) {
    CAPTURE(i);
    CHECK(std::fabs(y[i] - other[i]) <= tolerance * ref.magnitude[i]);
  }
}

// Columns of 1, 2, 3, 4 and 7 blocks of t (whole and partial groups of the 4-block SIMD steps).
std::vector<std::int64_t> awkward_cols(DType t) {
  const std::int64_t block = dtype_info(t).block_elems;
  return {block, 2 * block, 3 * block, 4 * block, 7 * block};
}

}  // namespace

TEST_CASE("kernel levels: names, detection and forcing") {
  for (Isa isa : cpu::kAllIsas) CHECK(cpu::parse_isa(cpu::isa_name(isa), "x") == isa);
  CHECK_THROWS_WITH_AS(
      cpu::parse_isa("sse9", "SMALLCODER_ISA"),
      doctest::Contains(
          "SMALLCODER_ISA: unknown kernel level 'sse9' (known: scalar, avx2, avx512, amx, neon, dotprod)"),
      Error);
  CHECK(cpu::cpu_supports(Isa::scalar));
  CHECK(cpu::cpu_supports(cpu::best_isa()));
  CHECK(cpu::choose_isa(nullptr) == cpu::best_isa());
  CHECK(cpu::choose_isa("") == cpu::best_isa());
  CHECK(cpu::choose_isa("scalar") == Isa::scalar);
  MESSAGE("best kernel level on this CPU: " << std::string(cpu::isa_name(cpu::best_isa())));
  // scripts/test-aarch64.sh names the level its emulated CPU must be detected at.
  if (const char* want = std::getenv("SMALLCODER_TEST_BEST_ISA")) {
    CHECK(cpu::best_isa() == cpu::parse_isa(want, "SMALLCODER_TEST_BEST_ISA"));
  }
  for (Isa isa : cpu::kAllIsas) {
    if (cpu::cpu_supports(isa)) {
      cpu::force_isa(isa);
      CHECK(cpu::active_isa() == isa);
      CHECK(cpu::kernels_for(DType::q8_0).isa == isa);
    } else {
      // "... needs AVX2, FMA and F16C, which this CPU lacks", "... exists only in x86 builds; ..."
      const std::string level = std::string("kernel level ") + cpu::isa_name(isa);
      CHECK_THROWS_WITH_AS(cpu::force_isa(isa), doctest::Contains(("force_isa: " + level).c_str()), Error);
      CHECK_THROWS_WITH_AS(cpu::choose_isa(cpu::isa_name(isa)), doctest::Contains(("SMALLCODER_ISA: " + level).c_str()),
                           Error);
    }
  }
  cpu::force_isa(cpu::best_isa());
#if defined(__x86_64__)
  // This project's reference machines have AVX-512 with VNNI, some AMX too: a generic build must use them.
  if (cpu::cpu_supports(Isa::amx)) CHECK(cpu::best_isa() == Isa::amx);
  if (cpu::cpu_supports(Isa::avx512) && !cpu::cpu_supports(Isa::amx)) CHECK(cpu::best_isa() == Isa::avx512);
  // amx is the avx512 level with more: a CPU with AMX but without the rest runs avx512 or lower.
  if (cpu::cpu_supports(Isa::amx)) CHECK(cpu::cpu_supports(Isa::avx512));
#endif
#if defined(__aarch64__)
  // Every aarch64 CPU has NEON; the dot products, where the CPU reports them, come on top.
  CHECK(cpu::cpu_supports(Isa::neon));
  CHECK(cpu::best_isa() == (cpu::cpu_supports(Isa::dotprod) ? Isa::dotprod : Isa::neon));
#endif
  // Only the amx level has a batch product, and only for bf16, Q8_0 and Q4_0 weights.
  for (Isa isa : cpu::kAllIsas) {
    if (!cpu::isa_built(isa)) continue;
    for (DType t : {DType::f32, DType::bf16, DType::f16, DType::q8_0, DType::q4_0, DType::q4_k, DType::q6_k}) {
      CAPTURE(std::string(cpu::isa_name(isa)));
      CAPTURE(std::string(dtype_name(t)));
      const bool has_batch = cpu::kernels_for(t, isa).batch.gemm != nullptr;
#ifdef SMALLCODER_X86
      CHECK(has_batch == (isa == Isa::amx && (t == DType::bf16 || t == DType::q8_0 || t == DType::q4_0)));
#else
      CHECK(!has_batch);
#endif
    }
  }
}

TEST_CASE("activation quantizers: every level writes the scalar level's bytes") {
  std::mt19937 rng(11);
  for (cpu::ActFormat format : {cpu::ActFormat::q8_0, cpu::ActFormat::q8_k}) {
    const DType weight = format == cpu::ActFormat::q8_0 ? DType::q8_0 : DType::q6_k;
    for (std::int64_t cols : awkward_cols(weight)) {
      std::vector<float> x = random_floats(rng, static_cast<std::size_t>(cols), 3.0f);
      x[0] = std::nanf("");  // ignored by the block maximum, quantized to -127 everywhere
      x[1] = 1e-30f;
      if (cols > 64) std::fill(x.begin() + 32, x.begin() + 64, 0.0f);  // an all-zero block
      const std::size_t bytes = cpu::act_row_bytes(format, cols);
      std::vector<std::byte> want(bytes), got(bytes);
      cpu::kernels_for(weight, Isa::scalar).quantize_acts(x.data(), cols, want.data());
      for (Isa isa : simd_levels()) {
        CAPTURE(std::string(cpu::isa_name(isa)));
        CAPTURE(cols);
        std::fill(got.begin(), got.end(), std::byte{0});
        cpu::kernels_for(weight, isa).quantize_acts(x.data(), cols, got.data());
        CHECK(std::memcmp(got.data(), want.data(), bytes) == 0);
      }
    }
  }
}

// The values are rounded with the exact step max|x| / 127 but the stored scale d is that step
// rounded to f16 (as llama.cpp stores it): |x - q d| <= d / 2 + 127 |step - d| <= 0.57 d.
TEST_CASE("q8_0 activations: values within half a step, exact block sums") {
  std::mt19937 rng(5);
  const std::int64_t cols = 96;
  const std::vector<float> x = random_floats(rng, cols, 1.0f);
  std::vector<std::byte> row(cpu::act_row_bytes(cpu::ActFormat::q8_0, cols));
  cpu::kernels_for(DType::q4_0, Isa::scalar).quantize_acts(x.data(), cols, row.data());
  const cpu::Q8Acts a = cpu::q8_acts(row.data(), cols);
  for (int b = 0; b < 3; ++b) {
    int sum = 0;
    for (int j = 32 * b; j < 32 * b + 32; ++j) {
      CHECK(std::fabs(x[static_cast<std::size_t>(j)] - a.qs[j] * a.d[b]) <= a.d[b] * 0.57f);
      sum += a.qs[j];
    }
    CHECK(a.sums[b] == sum);
  }
}

TEST_CASE("quantized weights: every level gives the scalar level's integer block sums and products") {
  std::mt19937 rng(3);
  const std::vector<Isa> levels = simd_levels();
  for (DType t : kQuantTypes) {
    for (std::int64_t cols : awkward_cols(t)) {
      for (std::int64_t rows : {1, 7, 13}) {
        const Matrix w = random_matrix(rng, t, rows, cols);
        const std::vector<float> x = random_floats(rng, static_cast<std::size_t>(17 * cols), 1.0f);
        const cpu::Kernels& ref = cpu::kernels_for(t, Isa::scalar);
        const Acts ref_acts = prepare(ref, x, 17, cols);
        const std::size_t sums_per_row =
            static_cast<std::size_t>(cols / dtype_info(t).block_elems * cpu::sums_per_block(t));
        for (Isa isa : levels) {
          CAPTURE(std::string(dtype_name(t)));
          CAPTURE(std::string(cpu::isa_name(isa)));
          CAPTURE(cols);
          CAPTURE(rows);
          const cpu::Kernels& k = cpu::kernels_for(t, isa);
          REQUIRE(k.act == ref.act);
          const Acts acts = prepare(k, x, 17, cols);
          REQUIRE(acts.bytes == ref_acts.bytes);
          std::vector<std::int32_t> want(sums_per_row), got(sums_per_row);
          for (std::int64_t r = 0; r < rows; ++r) {
            for (int t2 : {0, 16}) {
              cpu::block_sums_for(t, Isa::scalar)(
                  w.view.row(r), ref_acts.bytes.data() + static_cast<std::size_t>(t2) * ref_acts.stride, cols,
                  want.data());
              cpu::block_sums_for(t, isa)(w.view.row(r), acts.bytes.data() + static_cast<std::size_t>(t2) * acts.stride,
                                          cols, got.data());
              CHECK(got == want);
            }
          }
          for (int n : kTokenCounts) {
            CAPTURE(n);
            check_within(run_gemm(k, w.view, acts, n), run_gemm(ref, w.view, ref_acts, n),
                         reference(ref, w.view, ref_acts, n), 1e-6);
          }
        }
      }
    }
  }
}

// Levels whose products must be identical. The AVX-512 level computes Q8_0 with the AVX2
// level's (and llama.cpp's) arithmetic, so that greedy text on a near tie resolves as
// llama.cpp resolves it. The dotprod level runs the neon level's kernels with sdot for the
// same int32 lanes, so a model's output does not depend on whether the CPU has it.
TEST_CASE("level pairs that compute the same bits: avx512 and avx2 on Q8_0, dotprod and neon on every quantized type") {
  struct SameBits {
    DType type;
    Isa level, like;
  };
  const SameBits pairs[] = {{DType::q8_0, Isa::avx512, Isa::avx2},
                            {DType::q8_0, Isa::dotprod, Isa::neon},
                            {DType::q4_0, Isa::dotprod, Isa::neon},
                            {DType::q4_k, Isa::dotprod, Isa::neon},
                            {DType::q6_k, Isa::dotprod, Isa::neon}};
  std::mt19937 rng(29);
  for (const SameBits& pair : pairs) {
    if (!cpu::isa_built(pair.level)) continue;
    if (!cpu::cpu_supports(pair.level)) {
      MESSAGE("skipping " << std::string(cpu::isa_name(pair.level)) << ": this CPU lacks it");
      continue;
    }
    for (std::int64_t cols : awkward_cols(pair.type)) {
      const Matrix w = random_matrix(rng, pair.type, 11, cols);
      const std::vector<float> x = random_floats(rng, static_cast<std::size_t>(17 * cols), 1.0f);
      const cpu::Kernels& k = cpu::kernels_for(pair.type, pair.level);
      const cpu::Kernels& like = cpu::kernels_for(pair.type, pair.like);
      const Acts acts = prepare(like, x, 17, cols);
      for (int n : kTokenCounts) {
        CAPTURE(std::string(dtype_name(pair.type)));
        CAPTURE(std::string(cpu::isa_name(pair.level)));
        CAPTURE(cols);
        CAPTURE(n);
        CHECK(run_gemm(k, w.view, acts, n) == run_gemm(like, w.view, acts, n));
      }
    }
  }
}

TEST_CASE("quantized weights: the scalar level equals dequantized weights times dequantized activations") {
  std::mt19937 rng(9);
  for (DType t : kQuantTypes) {
    const std::int64_t cols = 2 * dtype_info(t).block_elems, rows = 5;
    const Matrix w = random_matrix(rng, t, rows, cols);
    const std::vector<float> x = random_floats(rng, static_cast<std::size_t>(3 * cols), 1.0f);
    const cpu::Kernels& k = cpu::kernels_for(t, Isa::scalar);
    const Acts acts = prepare(k, x, 3, cols);
    const std::vector<float> y = run_gemm(k, w.view, acts, 3);
    const Reference ref = reference(k, w.view, acts, 3);
    CAPTURE(std::string(dtype_name(t)));
    for (std::size_t i = 0; i < y.size(); ++i) CHECK(std::fabs(y[i] - ref.exact[i]) <= 1e-6 * ref.magnitude[i]);
  }
}

TEST_CASE("float weights: every level within 1e-6 of a double-precision product of the stored values") {
  std::mt19937 rng(21);
  std::vector<Isa> levels = simd_levels();
  levels.insert(levels.begin(), Isa::scalar);
  for (DType t : kFloatTypes) {
    for (std::int64_t cols : {1, 7, 16, 33, 100, 688}) {
      const std::int64_t rows = 9;
      std::vector<float> wf = random_floats(rng, static_cast<std::size_t>(rows * cols), 0.1f);
      std::vector<std::byte> bytes(dtype_bytes(t, rows * cols));
      quantize_row(t, wf.data(), rows * cols, bytes.data(), "test");
      const TensorView w{t, rows, cols, bytes.data()};
      const std::vector<float> x = random_floats(rng, static_cast<std::size_t>(17 * cols), 1.0f);
      for (Isa isa : levels) {
        const cpu::Kernels& k = cpu::kernels_for(t, isa);
        const Acts acts = prepare(k, x, 17, cols);
        for (int n : kTokenCounts) {
          CAPTURE(std::string(dtype_name(t)));
          CAPTURE(std::string(cpu::isa_name(isa)));
          CAPTURE(cols);
          CAPTURE(n);
          const std::vector<float> y = run_gemm(k, w, acts, n);
          const Reference ref = reference(k, w, acts, n);
          for (std::size_t i = 0; i < y.size(); ++i) CHECK(std::fabs(y[i] - ref.exact[i]) <= 1e-6 * ref.magnitude[i]);
        }
      }
    }
  }
}

namespace {

// n fp32 activation rows (cols apart) packed for a batch product, group by group, into a
// 64-byte aligned buffer (the vector's own buffer: moving the struct keeps it).
struct PackedActs {
  std::vector<std::byte> storage;
  std::byte* data = nullptr;
  std::size_t stride = 0;
};

PackedActs pack_batch(const cpu::BatchKernels& b, const std::vector<float>& x, int n, std::int64_t cols) {
  PackedActs a;
  a.stride = cpu::act_row_bytes(b.act, cols);
  const int groups = (n + cpu::kGroupTokens - 1) / cpu::kGroupTokens;
  a.storage.assign(a.stride * static_cast<std::size_t>(groups * cpu::kGroupTokens) + 64, std::byte{0xAB});
  a.data = a.storage.data() + (64 - reinterpret_cast<std::uintptr_t>(a.storage.data()) % 64) % 64;
  for (int t = 0; t < n; t += cpu::kGroupTokens) {
    b.pack_acts(x.data() + static_cast<std::size_t>(t) * static_cast<std::size_t>(cols), static_cast<std::size_t>(cols),
                std::min(cpu::kGroupTokens, n - t), cols, a.data + static_cast<std::size_t>(t) * a.stride);
  }
  return a;
}

// Levels with a batch product for weights of type t.
std::vector<Isa> batch_levels(DType t) {
  std::vector<Isa> levels;
  for (Isa isa : simd_levels()) {
    if (cpu::kernels_for(t, isa).batch.gemm != nullptr) levels.push_back(isa);
  }
  if (levels.empty()) MESSAGE("no kernel level of this CPU has a batch product for " << std::string(dtype_name(t)));
  return levels;
}

}  // namespace

// The AMX tiles hold 16 weight rows x 16 tokens x 32 columns: every remainder of rows (mod
// 16 and 32), tokens (mod 16 and 32, 1 to 40), row ranges starting mid-matrix, and 4096
// columns, where a bf16 product takes several passes over the rows (32 tokens each), with
// accumulation on and off. bf16: the activations are split into bf16 parts, not rounded, so
// the products must stay as close to the double-precision product of the fp32 activations
// as the avx512 level's fp32 products (1e-6 of the terms' magnitude). Q8_0 and Q4_0: the
// groups hold the q8_0 rows every level quantizes to (the bytes the block sums take), and
// the products are those of the scalar level's activations, within 1e-6 as every level's.
TEST_CASE("batch products: within 1e-6 of a double-precision product on every remainder") {
  std::mt19937 rng(31);
  for (DType type : {DType::bf16, DType::q8_0, DType::q4_0}) {
    for (Isa isa : batch_levels(type)) {
      const cpu::Kernels& k = cpu::kernels_for(type, isa);
      const cpu::Kernels& ref_kernels = cpu::kernels_for(type, Isa::scalar);
      double worst = 0.0;
      for (std::int64_t cols : {32, 96, 768, 4096}) {
        for (std::int64_t rows : {5, 16, 33, 35, 47, 64, 70}) {
          const Matrix w = random_matrix(rng, type, rows, cols);
          const int max_tokens = cols == 96 ? 35 : 40;
          std::vector<float> x = random_floats(rng, static_cast<std::size_t>(max_tokens * cols), 1.0f);
          x[3] = 3.0e-39f;  // a denormal, x[4] a value whose bf16 parts run into the denormals
          x[4] = 1.0e-36f;
          // A large value: its term is a good part of its products (fp32 sums over 4096 terms of
          // which one is most of the magnitude lose more than 1e-6 of it at every level).
          x[5] = 1.0e3f;
          const Acts ref_acts = prepare(ref_kernels, x, max_tokens, cols);
          const Reference ref = reference(ref_kernels, w.view, ref_acts, max_tokens);
          for (int n = 1; n <= max_tokens; n += (cols == 768 ? 1 : cols == 4096 ? 3 : 2)) {
            CAPTURE(std::string(dtype_name(type)));
            CAPTURE(std::string(cpu::isa_name(isa)));
            CAPTURE(cols);
            CAPTURE(rows);
            CAPTURE(n);
            const cpu::BatchKernels* b = k.batch_for(cols, n);
            REQUIRE((b != nullptr) == (n >= k.batch.min_tokens));
            const PackedActs acts = pack_batch(k.batch, x, n, cols);
            if (k.batch.act == cpu::ActFormat::q8_0_tiles) {
              const std::size_t row = cpu::act_row_bytes(cpu::ActFormat::q8_0, cols);
              const std::size_t used = static_cast<std::size_t>(cols + 8 * (cols / kQ0Block));  // not the padding
              for (int t = 0; t < n; ++t) {
                const std::byte* group =
                    acts.data + static_cast<std::size_t>(t / cpu::kGroupTokens) * cpu::kGroupTokens * acts.stride;
                CHECK(std::memcmp(group + static_cast<std::size_t>(t % cpu::kGroupTokens) * row,
                                  ref_acts.bytes.data() + static_cast<std::size_t>(t) * ref_acts.stride, used) == 0);
              }
            }
            // Rows [r0, r1) into y with gaps (ldy > rows), over a background of 0.5.
            const std::int64_t r0 = rows > 20 ? 3 : 0, r1 = rows;
            const std::size_t ldy = static_cast<std::size_t>(rows) + 5;
            for (bool accumulate : {false, true}) {
              std::vector<float> y(static_cast<std::size_t>(n) * ldy, 0.5f);
              k.batch.gemm(w.view, r0, r1, acts.data, acts.stride, n, y.data(), ldy, accumulate);
              for (int t = 0; t < n; ++t) {
                for (std::size_t r = 0; r < ldy; ++r) {
                  const float got = y[static_cast<std::size_t>(t) * ldy + r];
                  if (r < static_cast<std::size_t>(r0) || r >= static_cast<std::size_t>(r1)) {
                    CHECK(got == 0.5f);
                    continue;
                  }
                  const std::size_t i = static_cast<std::size_t>(t * rows) + r;
                  const double error = std::fabs(got - (accumulate ? 0.5 : 0.0) - ref.exact[i]);
                  if (ref.magnitude[i] > 0) worst = std::max(worst, error / ref.magnitude[i]);
                  CHECK(error <= 1e-6 * ref.magnitude[i]);
                }
              }
            }
          }
        }
      }
      MESSAGE(std::string(cpu::isa_name(isa)) << " batch product of " << std::string(dtype_name(type))
                                              << " weights: worst error " << worst << " of the terms' magnitude");
    }
  }
  // bf16 columns that are not whole 32-column chunks go through the level's gemm.
  for (Isa isa : batch_levels(DType::bf16)) {
    CHECK(cpu::kernels_for(DType::bf16, isa).batch_for(40, 64) == nullptr);
    CHECK(cpu::kernels_for(DType::bf16, isa).batch_for(688, 64) == nullptr);
  }
}

// One token goes through the levels' one-token kernels, which take 4 rows at a time (the
// rest 1 to 3 at once) and 1 or 2 blocks per step (Q4_0 at avx2), and their tile products
// otherwise: every row count from 1 to 9, ranges that start mid-matrix, odd block counts,
// accumulation on and off, within 1e-6 of the double-precision product; nothing outside the
// range written.
TEST_CASE("one-token products: every row remainder, ranges from mid-matrix, accumulation") {
  std::mt19937 rng(37);
  std::vector<Isa> levels = simd_levels();
  levels.insert(levels.begin(), Isa::scalar);
  for (DType t : {DType::f32, DType::bf16, DType::f16, DType::q8_0, DType::q4_0, DType::q4_k, DType::q6_k}) {
    const std::int64_t block = dtype_info(t).block_elems;
    for (std::int64_t cols : {block == 1 ? std::int64_t{47} : 3 * block, block == 1 ? std::int64_t{96} : 4 * block}) {
      const std::int64_t rows = 12;
      const Matrix w = random_matrix(rng, t, rows, cols);
      const std::vector<float> x = random_floats(rng, static_cast<std::size_t>(cols), 1.0f);
      for (Isa isa : levels) {
        const cpu::Kernels& k = cpu::kernels_for(t, isa);
        const Acts acts = prepare(k, x, 1, cols);
        const Reference ref = reference(k, w.view, acts, 1);
        for (std::int64_t r0 : {0, 3}) {
          for (std::int64_t count = 1; r0 + count <= rows && count <= 9; ++count) {
            for (bool accumulate : {false, true}) {
              CAPTURE(std::string(dtype_name(t)));
              CAPTURE(std::string(cpu::isa_name(isa)));
              CAPTURE(cols);
              CAPTURE(r0);
              CAPTURE(count);
              std::vector<float> y(static_cast<std::size_t>(rows), 0.5f);
              k.gemm(w.view, r0, r0 + count, acts.bytes.data(), acts.stride, 1, y.data(), 0, accumulate);
              for (std::int64_t r = 0; r < rows; ++r) {
                const float got = y[static_cast<std::size_t>(r)];
                if (r < r0 || r >= r0 + count) {
                  CHECK(got == 0.5f);
                  continue;
                }
                const double want = ref.exact[static_cast<std::size_t>(r)] + (accumulate ? 0.5 : 0.0);
                CHECK(std::fabs(got - want) <=
                      1e-6 * ref.magnitude[static_cast<std::size_t>(r)] + (accumulate ? 6e-8 : 0.0));
              }
            }
          }
        }
      }
    }
  }
}

TEST_CASE("gemm writes only its row range and accumulates when asked") {
  std::mt19937 rng(17);
  std::vector<Isa> levels = simd_levels();
  levels.insert(levels.begin(), Isa::scalar);
  for (DType t : {DType::bf16, DType::q8_0, DType::q4_0, DType::q4_k}) {
    const std::int64_t cols = dtype_info(t).block_elems == 1 ? 40 : 2 * dtype_info(t).block_elems, rows = 11;
    const Matrix w = random_matrix(rng, t, rows, cols);
    const std::vector<float> x = random_floats(rng, static_cast<std::size_t>(3 * cols), 1.0f);
    for (Isa isa : levels) {
      CAPTURE(std::string(dtype_name(t)));
      CAPTURE(std::string(cpu::isa_name(isa)));
      const cpu::Kernels& k = cpu::kernels_for(t, isa);
      const Acts acts = prepare(k, x, 3, cols);
      const std::vector<float> full = run_gemm(k, w.view, acts, 3);
      const std::size_t ldy = 16;  // wider than the rows: the gaps must stay untouched
      std::vector<float> y(3 * ldy, 0.5f);
      k.gemm(w.view, 2, 9, acts.bytes.data(), acts.stride, 3, y.data(), ldy, true);
      for (int tok = 0; tok < 3; ++tok) {
        for (std::size_t r = 0; r < ldy; ++r) {
          const float v = y[static_cast<std::size_t>(tok) * ldy + r];
          if (r >= 2 && r < 9) {
            CHECK(v == doctest::Approx(0.5f + full[static_cast<std::size_t>(tok * rows) + r]).epsilon(1e-6));
          } else {
            CHECK(v == 0.5f);
          }
        }
      }
    }
  }
}

TEST_CASE("row_to_f32 widens every type as dequantization does") {
  std::mt19937 rng(2);
  for (DType t : {DType::f32, DType::bf16, DType::f16, DType::q8_0, DType::q4_0}) {
    const std::vector<float> x = random_floats(rng, 64, 1.0f);
    std::vector<std::byte> bytes(dtype_bytes(t, 64));
    quantize_row(t, x.data(), 64, bytes.data(), "test");
    std::vector<float> out(64);
    row_to_f32(t, bytes.data(), 64, out.data());
    for (std::size_t i = 0; i < 64; ++i) {
      if (t == DType::f32) CHECK(out[i] == x[i]);
      if (t == DType::bf16) CHECK(out[i] == bf16_to_f32(f32_to_bf16(x[i])));
      if (t == DType::f16) CHECK(out[i] == f16_to_f32(f32_to_f16(x[i])));
      if (t == DType::q8_0 || t == DType::q4_0) CHECK(std::fabs(out[i] - x[i]) < 0.3f);
    }
  }
}

namespace {

ModelConfig tiny_config(int hidden) { return test::shaped_config("kernel-test", {hidden, 96, 1, 2, 1, 32, 40, 16}); }

}  // namespace

// 3 tokens take each level's gemm, 17 its batch product where it has one (amx: bf16, Q8_0,
// Q4_0).
TEST_CASE("backend: prepared activations are reused only while the input buffer and their format are unchanged") {
  std::mt19937 rng(23);
  BackendOptions options;
  options.threads = 2;
  options.max_batch = 20;
  for (int n : {1, 3, 17}) {  // one token: w1 and w2 run together, w3 alone, then w1 (CpuBackend::Pending)
    for (DType t : {DType::q8_0, DType::q4_0, DType::q4_k, DType::bf16}) {
      CAPTURE(n);
      CAPTURE(std::string(dtype_name(t)));
      const std::int64_t cols = t == DType::q4_k ? 256 : 64;
      CpuBackend b(tiny_config(static_cast<int>(cols)), options);
      // w3 has another type than w1 and w2, so x is prepared in another format in between.
      const DType other = t == DType::q8_0 ? DType::bf16 : DType::q8_0;
      const Matrix w1 = random_matrix(rng, t, 24, cols), w2 = random_matrix(rng, t, 40, cols),
                   w3 = random_matrix(rng, other, 24, cols);
      auto x = b.make_buffer(static_cast<int>(cols));
      auto y1 = b.make_buffer(24), y2 = b.make_buffer(40), y3 = b.make_buffer(24), y4 = b.make_buffer(24),
           y5 = b.make_buffer(24);
      std::vector<float> first = random_floats(rng, static_cast<std::size_t>(n * cols), 1.0f);
      std::vector<float> second = random_floats(rng, static_cast<std::size_t>(n * cols), 1.0f);
      std::vector<std::int32_t> tokens(static_cast<std::size_t>(n), 0);
      const Step step{tokens.data(), n, 0, 0};
      for (int r = 0; r < n; ++r) std::copy_n(first.data() + r * cols, cols, x.row(r));
      b.run(step, [&] {
        b.matmul(step, w1.view, x, y1);
        b.matmul(step, w2.view, x, y2);  // reuses the prepared x
        b.matmul(step, w3.view, x, y4);  // prepares x in its own format
        b.matmul(step, w1.view, x, y5);  // and back
      });
      for (int r = 0; r < n; ++r) std::copy_n(second.data() + r * cols, cols, x.row(r));  // x changes
      b.run(step, [&] { b.matmul(step, w1.view, x, y3); });                               // must see the new x
      // Within 1e-6 of the double-precision product with the scalar level's activations
      // (every level's, for the quantized formats), as the kernel tests hold every path.
      auto expect = [&](const Matrix& w, const std::vector<float>& in, auto& y) {
        const cpu::Kernels& ref = cpu::kernels_for(w.view.dtype, Isa::scalar);
        const Reference want = reference(ref, w.view, prepare(ref, in, n, cols), n);
        for (int r = 0; r < n; ++r) {
          for (std::int64_t i = 0; i < w.view.rows; ++i) {
            const std::size_t at = static_cast<std::size_t>(r * w.view.rows + i);
            CHECK(std::fabs(y.row(r)[i] - want.exact[at]) <= 1e-6 * want.magnitude[at]);
          }
        }
      };
      expect(w1, first, y1);
      expect(w2, first, y2);
      expect(w3, first, y4);
      expect(w1, first, y5);
      expect(w1, second, y3);
    }
  }
}

// A token's norm waits for the products that read it (CpuBackend::Pending): every thread
// normalizes the row itself and writes its share of the norm's output. Row 2 of a batch
// buffer, as a prompt's final norm and logits take its last row.
TEST_CASE("backend: one token's norm runs with the products that read it and leaves its output in the buffer") {
  std::mt19937 rng(29);
  BackendOptions options;
  options.threads = 2;
  options.max_batch = 4;
  const int cols = 64, row = 2;
  for (DType t : {DType::q8_0, DType::bf16}) {
    CAPTURE(std::string(dtype_name(t)));
    const ModelConfig config = tiny_config(cols);
    CpuBackend b(config, options);
    const Matrix w1 = random_matrix(rng, t, 24, cols), w2 = random_matrix(rng, t, cols, cols);
    const std::vector<float> gamma = random_floats(rng, cols, 1.0f), input = random_floats(rng, cols, 3.0f);
    const TensorView norm_weight{DType::f32, 1, cols, reinterpret_cast<const std::byte*>(gamma.data())};
    auto x = b.make_buffer(cols), xn = b.make_buffer(cols), y1 = b.make_buffer(24), in_place = b.make_buffer(cols);
    std::copy(input.begin(), input.end(), x.row(row));
    std::copy(input.begin(), input.end(), in_place.row(row));
    std::vector<std::int32_t> tokens(static_cast<std::size_t>(options.max_batch), 0);
    const Step step{tokens.data(), 1, 0, row};
    b.run(step, [&] {
      b.rmsnorm(step, x, norm_weight, xn);
      b.matmul(step, w1.view, xn, y1);
      b.matmul(step, w2.view, xn, x, /*accumulate=*/true);  // writes the norm's input: runs after it
      b.rmsnorm(step, in_place, norm_weight, in_place);     // overwrites its input: not deferred
    });
    double sum_sq = 0;
    for (float v : input) sum_sq += static_cast<double>(v) * v;
    const double inv_rms = 1.0 / std::sqrt(sum_sq / cols + static_cast<double>(config.rms_norm_eps));
    std::vector<float> normed(static_cast<std::size_t>(cols));
    for (int i = 0; i < cols; ++i) {
      const double want = gamma[static_cast<std::size_t>(i)] * input[static_cast<std::size_t>(i)] * inv_rms;
      CHECK(std::fabs(xn.row(row)[i] - want) <= 1e-5 * (std::fabs(want) + 1e-3));
      CHECK(in_place.row(row)[i] == xn.row(row)[i]);
      normed[static_cast<std::size_t>(i)] = xn.row(row)[i];
    }
    // The products are those of the normed row the buffer holds (each within 1e-6 of the
    // double-precision product with the scalar level's activations).
    auto expect = [&](const Matrix& w, const float* got, const float* base) {
      const cpu::Kernels& ref = cpu::kernels_for(w.view.dtype, Isa::scalar);
      const Reference want = reference(ref, w.view, prepare(ref, normed, 1, cols), 1);
      for (std::int64_t i = 0; i < w.view.rows; ++i) {
        const double sum = want.exact[static_cast<std::size_t>(i)] + (base != nullptr ? base[i] : 0.0);
        CHECK(std::fabs(got[i] - sum) <= 1e-6 * want.magnitude[static_cast<std::size_t>(i)] + 1e-6 * std::fabs(sum));
      }
    };
    expect(w1, y1.row(row), nullptr);
    expect(w2, x.row(row), input.data());
  }
}

TEST_CASE("exp_approx: within 4 ulp of e^x over the floats softmax meets, saturating beyond") {
  double worst = 0;
  for (float x = -87.0f; x <= 88.0f; x += 0.0137f) {
    const double want = std::exp(static_cast<double>(x));
    worst = std::max(worst, std::abs(cpu::exp_approx(x) - want) / want);
  }
  MESSAGE("exp_approx: worst relative error " << worst);
  CHECK(worst < 4 * 5.96e-8);  // 4 ulp of a float near 1
  CHECK(cpu::exp_approx(0.0f) == 1.0f);
  CHECK(cpu::exp_approx(-1000.0f) == cpu::exp_approx(-87.0f));
  CHECK(cpu::exp_approx(-87.0f) < 2e-38f);
  CHECK(cpu::exp_approx(1000.0f) == cpu::exp_approx(88.0f));
  std::vector<float> s = {3.0f, -1.0f, 0.5f, 3.0f, -200.0f};
  cpu::kv_kernels_for(DType::f32, cpu::Isa::scalar).softmax(s.data(), 1, static_cast<int>(s.size()), s.size());
  const double z = 2 * std::exp(3.0) + std::exp(-1.0) + std::exp(0.5);
  CHECK(std::abs(s[0] - std::exp(3.0) / z) < 1e-7);
  CHECK(std::abs(s[1] - std::exp(-1.0) / z) < 1e-7);
  CHECK(s[0] == s[3]);
  CHECK(s[4] < 1e-37f);
}
