// Timing harness for the CPU kernel table (not a test): achieved weight bandwidth of the
// decode matrix-vector product and GFLOP/s of the batched product, per weight type and
// kernel level, beside the streaming-read bandwidth (the benchmark's probe) of the same run,
// with each cold figure's share of it. Built with the examples (-Dexamples=true), run by hand:
//   build/tools/kernel_bench [threads=2] [tiny|medium] [tokens=1] [types=bf16,q8_0,q4_0] [levels=all]
// (levels: a comma list of kernel levels, e.g. avx2,avx512; the CPU's others are skipped).
// "hot" repeats one matrix (it stays in cache); "cold" flushes the matrix from the caches
// (bench/cache_eviction.hpp) before each product and times the product alone, so every weight
// byte comes from DRAM as in a decode step of a model larger than the cache. (Rotating through
// copies totalling 1 GiB, as this did before, left the last-written copies in a 260 MiB L3:
// "cold" figures of 130% of the DRAM probe.) Each timing opens one parallel region for all its
// products, as the model opens one per forward step.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "bench/bandwidth.hpp"
#include "bench/cache_eviction.hpp"
#include "smallcoder/cpu/kernels.hpp"
#include "smallcoder/tensor/dtype.hpp"
#include "smallcoder/threads.hpp"

using namespace smallcoder;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 2;
  const std::string size = argc > 2 ? argv[2] : "tiny";
  const int tokens = argc > 3 ? std::atoi(argv[3]) : 1;
  const std::string types = argc > 4 ? argv[4] : "bf16,q8_0,q4_0";
  const std::string levels = argc > 5 ? "," + std::string(argv[5]) + "," : "all";
  const std::vector<std::pair<int, int>> shapes =
      size == "medium" ? std::vector<std::pair<int, int>>{{1152, 1152}, {3328, 1152}, {1152, 3328}, {32000, 1152}}
                       : std::vector<std::pair<int, int>>{{768, 768}, {2048, 768}, {768, 2048}, {32000, 768}};
  // The benchmark's own probe, so the shares here and there compare with the same bandwidth.
  const bench::BandwidthMeasurement stream = bench::measure_read_bandwidth(std::uint64_t{1} << 30, threads);
  std::printf("stream read, %d threads: %.1f GB/s\n", threads, stream.gb_per_s);
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  for (std::size_t pos = 0; pos < types.size();) {
    const std::size_t comma = std::min(types.find(',', pos), types.size());
    const DType t = parse_dtype(types.substr(pos, comma - pos), "types");
    pos = comma + 1;
    for (const auto& [rows, cols] : shapes) {
      if (cols % dtype_info(t).block_elems != 0) continue;
      const std::size_t row_bytes = dtype_bytes(t, cols), matrix = row_bytes * static_cast<std::size_t>(rows);
      std::vector<std::byte> weights(matrix);
      std::vector<float> row(static_cast<std::size_t>(cols));
      if (can_quantize_to(t)) {
        for (int r = 0; r < rows; ++r) {
          for (float& v : row) v = normal(rng);
          quantize_row(t, row.data(), cols, weights.data() + row_bytes * static_cast<std::size_t>(r), "weights");
        }
      } else {  // k-quants: random blocks
        std::uniform_int_distribution<int> byte(0, 255);
        for (std::size_t i = 0; i < matrix; ++i) weights[i] = static_cast<std::byte>(byte(rng));
      }
      std::vector<bench::CachePiece> pieces;
      bench::add_cache_pieces(weights.data(), matrix, pieces);
      std::vector<float> x(static_cast<std::size_t>(cols) * tokens), y(static_cast<std::size_t>(rows) * tokens);
      for (float& v : x) v = normal(rng) * 20.0f;
      std::printf("%-5s %5dx%-5d n=%d:", dtype_name(t), rows, cols, tokens);
      for (cpu::Isa isa : cpu::kAllIsas) {
        if (!cpu::cpu_supports(isa)) continue;
        if (levels != "all" && levels.find("," + std::string(cpu::isa_name(isa)) + ",") == std::string::npos) continue;
        const cpu::Kernels& k = cpu::kernels_for(t, isa);
        // The backend's choice: the level's batch product where it applies, else its gemm.
        const cpu::BatchKernels* batch = k.batch_for(cols, tokens);
        const cpu::ActFormat format = batch != nullptr ? batch->act : k.act;
        const std::size_t stride =
            format == cpu::ActFormat::f32 ? sizeof(float) * cols : cpu::act_row_bytes(format, cols);
        const int groups = (tokens + cpu::kGroupTokens - 1) / cpu::kGroupTokens;
        std::vector<std::byte> act_storage(stride * static_cast<std::size_t>(groups * cpu::kGroupTokens) + 64);
        std::byte* acts = act_storage.data() + (64 - reinterpret_cast<std::uintptr_t>(act_storage.data()) % 64) % 64;
        // The backend's work items.
        const std::int64_t chunk = tokens == 1        ? (rows + threads - 1) / threads
                                   : batch != nullptr ? cpu::batch_item_rows(rows, threads)
                                                      : 64;
        // One product, called by every thread of the enclosing region as the backend does: the
        // activations prepared once, then the rows split across threads.
        const TensorView w{t, rows, cols, weights.data()};
        auto product = [&] {
          if (batch != nullptr) {
            smallcoder::parallel_for(groups, [&](std::int64_t g) {
              const int first = static_cast<int>(g) * cpu::kGroupTokens;
              batch->pack_acts(x.data() + static_cast<std::size_t>(first) * cols, static_cast<std::size_t>(cols),
                               std::min(cpu::kGroupTokens, tokens - first), cols,
                               acts + static_cast<std::size_t>(first) * stride);
            });
          } else if (k.quantize_acts != nullptr) {
            smallcoder::parallel_for(tokens, [&](std::int64_t i) {
              k.quantize_acts(x.data() + i * cols, cols, acts + static_cast<std::size_t>(i) * stride);
            });
          }
          const std::byte* a = format != cpu::ActFormat::f32 ? acts : reinterpret_cast<const std::byte*>(x.data());
          const cpu::GemmFn gemm = batch != nullptr ? batch->gemm : k.gemm;
          smallcoder::parallel_for((rows + chunk - 1) / chunk, [&](std::int64_t c) {
            gemm(w, c * chunk, std::min<std::int64_t>(rows, (c + 1) * chunk), a, stride, tokens, y.data(),
                 static_cast<std::size_t>(rows), false);
          });
        };
        const int iterations = std::max(3, static_cast<int>(2e8 / static_cast<double>(matrix)));
        for (bool cold : {false, true}) {
          double best = 1e30;
          for (int rep = 0; rep < 5; ++rep) {
            // One parallel region for all iterations, as the model opens one per step; thread 0
            // times the products (each ends in a barrier), not the flushes.
            double seconds = 0;
            smallcoder::parallel_region(threads, [&] {
              for (int i = 0; i < iterations; ++i) {
                if (cold) bench::evict_pieces(pieces);
                const auto t0 = std::chrono::steady_clock::now();
                product();
                if (smallcoder::thread_index() == 0) seconds += seconds_since(t0);
              }
            });
            best = std::min(best, seconds / iterations);
          }
          if (tokens == 1) {
            const double gb_per_s = static_cast<double>(matrix) / best / 1e9;
            std::printf("  %s %s %6.1f GB/s", cpu::isa_name(isa), cold ? "cold" : "hot", gb_per_s);
            if (cold) std::printf(" (%3.0f%%)", 100.0 * gb_per_s / stream.gb_per_s);
          } else {
            std::printf("  %s %s %6.1f GFLOP/s", cpu::isa_name(isa), cold ? "cold" : "hot",
                        2.0 * rows * cols * tokens / best / 1e9);
          }
        }
      }
      std::printf("\n");
      std::fflush(stdout);
    }
  }
}
