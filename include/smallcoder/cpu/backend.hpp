// The CPU backend: activation buffers, the KV cache, and the ops the transformer calls,
// each split across the threads of one parallel region per forward step.
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "smallcoder/config.hpp"
#include "smallcoder/cpu/isa.hpp"
#include "smallcoder/cpu/kernels.hpp"
#include "smallcoder/cpu/kv_rows.hpp"
#include "smallcoder/cpu/ops.hpp"
#include "smallcoder/model/backend_options.hpp"
#include "smallcoder/model/rope.hpp"
#include "smallcoder/model/step.hpp"
#include "smallcoder/model/weights.hpp"
#include "smallcoder/tensor/dtype.hpp"
#include "smallcoder/threads.hpp"

namespace smallcoder {

class CpuBackend {
 public:
  static constexpr const char* name() { return "cpu"; }

  // A [max_batch x cols] fp32 activation matrix. Handing out a row for writing marks the
  // buffer changed, which tells the backend its prepared (8-bit or packed) copy is stale.
  class Buffer {
   public:
    Buffer() = default;
    Buffer(int rows, int cols) : cols_(cols), data_(static_cast<std::size_t>(rows) * cols) {}
    Buffer(Buffer&& other) noexcept : cols_(other.cols_), data_(std::move(other.data_)) {}
    Buffer& operator=(Buffer&& other) noexcept {
      cols_ = other.cols_;
      data_ = std::move(other.data_);
      changed_.store(true, std::memory_order_relaxed);
      return *this;
    }
    float* row(int r) {
      changed_.store(true, std::memory_order_relaxed);
      return data_.data() + static_cast<std::size_t>(r) * cols_;
    }
    const float* row(int r) const { return data_.data() + static_cast<std::size_t>(r) * cols_; }
    int cols() const { return cols_; }

   private:
    friend class CpuBackend;
    int cols_ = 0;
    std::vector<float> data_;
    mutable std::atomic<bool> changed_{true};  // written since the backend last prepared it
  };

  CpuBackend(const ModelConfig& config, const BackendOptions& options)
      : config_(config),
        threads_(options.threads > 0 ? options.threads : default_thread_count()),
        max_batch_(options.max_batch),
        context_(options.context > 0 ? options.context : config.max_context),
        kv_type_(options.kv_cache),
        kv_row_bytes_(dtype_bytes(options.kv_cache, config.head_dim)),
        key_area_bytes_(cpu::key_cache_bytes(options.kv_cache, config.head_dim, context_)),
        rope_(context_, config.head_dim, config.rope_theta),
        logits_(static_cast<std::size_t>(config.vocab_size)) {
    cpu::active_isa();  // settles the kernel level now: a bad SMALLCODER_ISA throws here, not mid-step
    cpu::check_kv_cache_type(kv_type_, "cpu backend: kv_cache");
    const std::size_t heads = static_cast<std::size_t>(config.num_layers) * config.num_kv_heads;
    k_cache_.assign(heads * key_area_bytes_, std::byte{0});
    v_cache_.assign(heads * context_ * kv_row_bytes_, std::byte{0});
    const int widest = std::max({config.hidden_size, config.q_dim(), config.intermediate_size});
    scratch_.resize(static_cast<std::size_t>(threads_));
    pending_.resize(static_cast<std::size_t>(threads_));
    one_token_.resize(static_cast<std::size_t>(threads_));
    const std::size_t scores = static_cast<std::size_t>(config.kv_group()) * context_;  // one KV head's query heads
    const std::size_t per_thread = std::max(static_cast<std::size_t>(widest), scores);
    for (auto& s : scratch_) s.resize(per_thread);
    const std::size_t act_row =
        std::max({cpu::act_row_bytes(cpu::ActFormat::q8_0, widest), cpu::act_row_bytes(cpu::ActFormat::q8_k, widest),
                  cpu::act_row_bytes(cpu::ActFormat::bf16_split, widest),
                  cpu::act_row_bytes(cpu::ActFormat::q8_0_tiles, widest)});
    for (OneTokenRow& t : one_token_) {
      t.normed.resize(static_cast<std::size_t>(widest));
      t.act_storage.resize(act_row + 64);
      t.acts = aligned_64(t.act_storage);
    }
    const std::size_t act_rows = (static_cast<std::size_t>(max_batch_) + cpu::kGroupTokens - 1) / cpu::kGroupTokens *
                                 cpu::kGroupTokens;  // whole groups for the grouped formats
    act_storage_.resize(act_rows * act_row + 64);
    acts_ = aligned_64(act_storage_);
  }

  int max_batch() const { return max_batch_; }
  int context() const { return context_; }
  int threads() const { return threads_; }
  std::size_t kv_cache_bytes() const { return k_cache_.size() + v_cache_.size(); }
  DType kv_cache() const { return kv_type_; }  // the cache's element type

  Buffer make_buffer(int cols) const { return Buffer(max_batch_, cols); }

  // The CPU computes straight from the stored (often memory-mapped) weights.
  ModelWeights upload(const ModelWeights& host) const { return host; }

  // Runs one forward step's ops (a callable) inside a single parallel region.
  template <class Ops>
  void run(const Step&, Ops&& ops) {
    parallel_region(threads_, [&] {
      ops();
      run_pending();
    });
  }

  void embed(const Step& s, const TensorView& table, Buffer& x) {
    run_pending();
    parallel_for(s.rows, [&](std::int64_t i) {
      const int r = s.first_row + static_cast<int>(i);
      row_to_f32(table.dtype, table.row(s.tokens[r]), table.cols, x.row(r));
    });
  }

  // One token's norm waits (see Pending) for the products that read it, unless it overwrites
  // its input (the threads would write their column shares while others still read it).
  void rmsnorm(const Step& s, const Buffer& x, const TensorView& weight, Buffer& out) {
    run_pending();
    if (s.rows == 1 && &x != &out) {
      pending_[static_cast<std::size_t>(thread_index())].norm = {&x, weight, &out, s.first_row};
      return;
    }
    parallel_for(s.rows, [&](std::int64_t i) {
      const int r = s.first_row + static_cast<int>(i);
      norm_row(x.row(r), weight, out.row(r));
    });
  }

  // y (+)= x W^T on the step's rows, through the kernel table for W's type and the active
  // SIMD level: a matrix-vector product for one token, register-blocked tiles for a batch.
  // One token's products wait (see Pending) until an op needs their results.
  void matmul(const Step& s, const TensorView& w, const Buffer& x, Buffer& y, bool accumulate = false) {
    float* out = y.row(s.first_row);
    if (s.rows != 1 || &y == &x) {
      run_pending();
      product(w, x, s.first_row, s.rows, out, static_cast<std::size_t>(y.cols()), accumulate);
      return;
    }
    defer_product(s.first_row, w, x, &y, out, accumulate);
  }

  // Rotates the step's query and key heads by their positions (RoPE), appends its keys and
  // values to the cache of `layer`, then lets every query row attend causally to all cached
  // positions up to its own. Work items are (row, KV head): the query heads sharing that
  // KV head (grouped-query attention) rotate, score and mix together, so each cached row
  // is read once per group. One token's item needs no other item's keys: it rotates,
  // stores and attends at once, behind one barrier instead of three.
  void attention(const Step& s, int layer, Buffer& q, Buffer& k, const Buffer& v, RopeLayout layout, Buffer& out) {
    run_pending();
    const int hd = config_.head_dim, kv_heads = config_.num_kv_heads, group = config_.kv_group();
    const bool interleaved = layout == RopeLayout::interleaved;
    const cpu::KvKernels kv = cpu::kv_kernels_for(kv_type_);
    const std::int64_t items = static_cast<std::int64_t>(s.rows) * kv_heads;
    auto row_of = [&](std::int64_t i) { return s.first_row + static_cast<int>(i / kv_heads); };
    auto head_of = [&](std::int64_t i) { return static_cast<int>(i % kv_heads); };
    auto attend = [&](int r, int g) {
      const int len = s.pos0 + r + 1;
      const std::size_t ld = static_cast<std::size_t>(len);
      const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
      float* scores = scratch_[static_cast<std::size_t>(thread_index())].data();
      kv.scores(q.row(r) + g * group * hd, group, key_tiles(layer, g), len, hd, scale, scores, ld);
      kv.softmax(scores, group, len, ld);
      kv.mix(scores, ld, group, value_row(layer, g, 0), kv_row_bytes_, len, hd, out.row(r) + g * group * hd);
    };
    parallel_for(items, [&](std::int64_t i) {
      const int r = row_of(i), g = head_of(i), pos = s.pos0 + r;
      float* key = k.row(r) + g * hd;
      for (int h = g * group; h < (g + 1) * group; ++h)
        cpu::rope_head(q.row(r) + h * hd, hd, rope_.cos(pos), rope_.sin(pos), interleaved);
      cpu::rope_head(key, hd, rope_.cos(pos), rope_.sin(pos), interleaved);
      kv.store_key(key, hd, key_tiles(layer, g), pos);
      kv.store_value(v.row(r) + g * hd, hd, value_row(layer, g, pos));
      if (s.rows == 1) attend(r, g);
    });
    // A batch's rows attend to each other's keys: all of them are stored first.
    if (s.rows > 1) parallel_for(items, [&](std::int64_t i) { attend(row_of(i), head_of(i)); });
  }

  // Split by rows and column spans: one token's row alone would leave the other threads
  // idle for its thousands of e^x.
  void swiglu(const Step& s, const Buffer& gate, const Buffer& up, Buffer& out) {
    run_pending();
    constexpr int kSpan = 512;
    const int cols = gate.cols(), spans = (cols + kSpan - 1) / kSpan;
    parallel_for(static_cast<std::int64_t>(s.rows) * spans, [&](std::int64_t i) {
      const int r = s.first_row + static_cast<int>(i / spans);
      const int c = static_cast<int>(i % spans) * kSpan;
      cpu::swiglu_row(gate.row(r) + c, up.row(r) + c, std::min(kSpan, cols - c), out.row(r) + c);
    });
  }

  // Logits of the step's last row, into the backend's host-visible logits array.
  void output(const Step& s, const Buffer& x, const TensorView& head) {
    defer_product(s.end_row() - 1, head, x, nullptr, logits_.data(), false);
  }

  const float* logits() const { return logits_.data(); }

 private:
  static constexpr std::int64_t kBatchRows = 64;  // for a batch: each tile's weights are reused from cache

  // y[t * ldy + r] (+)= W[r] . x.row(first + t) for t < rows: the activation rows are
  // prepared once (quantized for integer kernels, packed for a level's batch product), then
  // the weight rows are split across the threads, each thread streaming its own contiguous
  // share of W.
  void product(const TensorView& w, const Buffer& x, int first, int rows, float* y, std::size_t ldy, bool accumulate) {
    const cpu::Kernels& k = cpu::kernels_for(w.dtype);
    if (const cpu::BatchKernels* batch = k.batch_for(w.cols, rows)) {
      const std::size_t stride = cpu::act_row_bytes(batch->act, x.cols());
      const std::int64_t groups = (rows + cpu::kGroupTokens - 1) / cpu::kGroupTokens;
      const std::byte* acts = prepared(batch->act, x, first, rows, groups, [&](std::int64_t g) {
        const int t = static_cast<int>(g) * cpu::kGroupTokens;
        batch->pack_acts(x.row(first + t), static_cast<std::size_t>(x.cols()), std::min(cpu::kGroupTokens, rows - t),
                         x.cols(), acts_ + static_cast<std::size_t>(t) * stride);
      });
      split_rows(batch->gemm, w, cpu::batch_item_rows(w.rows, threads_), acts, stride, rows, y, ldy, accumulate);
      return;
    }
    const std::byte* acts = row_acts(k, x, first, rows);
    const std::size_t act_stride = row_acts_stride(k, x);
    // One token (here only a product into its own input; the others wait in Pending): each
    // thread's share of the rows in one piece, which the one-token kernels read as a few
    // long sequential streams (tiling.hpp's gemm_decode_or_tiled).
    split_rows(k.gemm, w, rows == 1 ? one_token_share(w) : kBatchRows, acts, act_stride, rows, y, ldy, accumulate);
  }

  // One token's products that read the same input in the same activation format (q, k and
  // v; gate and up), and the norm that computes that input, recorded by each thread as it
  // runs the step's ops and run together when an op needs their results: every thread
  // computes the norm and quantizes the row itself (a few KB, the time one thread alone
  // took while the others waited), writes its share of the norm's output, streams its
  // share of every matrix in turn, and one barrier ends it all instead of one each for the
  // norm, the quantization and every product (a Tiny token passed about 200 barriers).
  struct Pending {
    static constexpr int kMax = 3;
    struct Norm {
      const Buffer* x = nullptr;  // null: no norm waits
      TensorView weight;
      Buffer* out = nullptr;
      int row = 0;
    };
    struct Product {
      TensorView w;
      float* y;
      bool accumulate;
    };
    Norm norm;
    const Buffer* x = nullptr;
    int row = 0;
    cpu::ActFormat act = cpu::ActFormat::f32;
    int count = 0;
    Product products[kMax];
  };

  // A thread's own copy of one token's input row: normed (fp32) and as its kernels take it.
  struct OneTokenRow {
    std::vector<float> normed;
    std::vector<std::byte> act_storage;
    std::byte* acts = nullptr;  // act_storage aligned to 64 bytes
  };

  // Records y (+)= W x.row(row) for one token (y in buffer `target`, or in no buffer),
  // joining the waiting products if it reads their input in their format, or the waiting
  // norm's output. Never if it writes the waiting norm's input, which the threads read while
  // the first of them may already be writing their products.
  void defer_product(int row, const TensorView& w, const Buffer& x, const Buffer* target, float* y, bool accumulate) {
    Pending& p = pending_[static_cast<std::size_t>(thread_index())];
    const cpu::Kernels& k = cpu::kernels_for(w.dtype);
    const bool clobbers_norm = p.norm.x != nullptr && p.norm.x == target;
    const bool joins =
        !clobbers_norm && (p.count > 0 ? p.count < Pending::kMax && p.x == &x && p.row == row && p.act == k.act
                                       : p.norm.x != nullptr && p.norm.out == &x && p.norm.row == row);
    if (!joins) run_pending();
    p.x = &x;
    p.row = row;
    p.act = k.act;
    p.products[p.count++] = {w, y, accumulate};
  }

  // Runs this thread's waiting norm and products (every thread holds the same record).
  void run_pending() {
    Pending& p = pending_[static_cast<std::size_t>(thread_index())];
    if (p.count == 0 && p.norm.x == nullptr) return;
    OneTokenRow& own = one_token_[static_cast<std::size_t>(thread_index())];
    const Pending::Norm norm = p.norm;
    const float* input = norm.x != nullptr ? own.normed.data() : p.x->row(p.row);
    if (norm.x != nullptr) norm_row(norm.x->row(norm.row), norm.weight, own.normed.data());
    const cpu::Kernels& k = cpu::kernels_for(p.count > 0 ? p.products[0].w.dtype : DType::f32);
    const std::byte* acts = reinterpret_cast<const std::byte*>(input);
    if (p.count > 0 && k.act != cpu::ActFormat::f32) {
      k.quantize_acts(input, p.x->cols(), own.acts);
      acts = own.acts;
    }
    const std::size_t stride = p.count > 0 ? row_acts_stride(k, *p.x) : 0;
    // Share c of the norm's columns and of every matrix's rows (a thread takes more than
    // one share only if the region has fewer threads than asked for).
    parallel_for(threads_, [&](std::int64_t c) {
      if (norm.x != nullptr) {
        const int cols = norm.out->cols();
        const int c0 = static_cast<int>(cols * c / threads_), c1 = static_cast<int>(cols * (c + 1) / threads_);
        std::copy(input + c0, input + c1, norm.out->row(norm.row) + c0);
      }
      for (int i = 0; i < p.count; ++i) {
        const Pending::Product& m = p.products[i];
        const std::int64_t share = one_token_share(m.w);
        const std::int64_t r0 = std::min(m.w.rows, c * share), r1 = std::min(m.w.rows, (c + 1) * share);
        if (r0 < r1) cpu::kernels_for(m.w.dtype).gemm(m.w, r0, r1, acts, stride, 1, m.y, 0, m.accumulate);
      }
    });
    p.norm.x = nullptr;
    p.count = 0;
  }

  // out = RMSNorm(x) with `weight`, which may be stored in 16 bits (widened into this
  // thread's scratch first).
  void norm_row(const float* x, const TensorView& weight, float* out) {
    const float* w = reinterpret_cast<const float*>(weight.data);
    if (weight.dtype != DType::f32) {
      float* wide = scratch_[static_cast<std::size_t>(thread_index())].data();
      row_to_f32(weight.dtype, weight.data, weight.cols, wide);
      w = wide;
    }
    cpu::rmsnorm_row(x, w, config_.rms_norm_eps, weight.cols, out);
  }

  // x's rows [first, first + rows) as k's row-by-row kernels take them: fp32 as they are,
  // or quantized (prepared once), row_acts_stride bytes apart.
  const std::byte* row_acts(const cpu::Kernels& k, const Buffer& x, int first, int rows) {
    if (k.act == cpu::ActFormat::f32) return reinterpret_cast<const std::byte*>(x.row(first));
    const std::size_t stride = row_acts_stride(k, x);
    return prepared(k.act, x, first, rows, rows, [&](std::int64_t i) {
      k.quantize_acts(x.row(first + static_cast<int>(i)), x.cols(), acts_ + static_cast<std::size_t>(i) * stride);
    });
  }
  static std::size_t row_acts_stride(const cpu::Kernels& k, const Buffer& x) {
    return k.act == cpu::ActFormat::f32 ? static_cast<std::size_t>(x.cols()) * sizeof(float)
                                        : cpu::act_row_bytes(k.act, x.cols());
  }

  // The first 64-byte boundary in `storage` (sized 64 bytes over what it must hold).
  static std::byte* aligned_64(std::vector<std::byte>& storage) {
    return storage.data() + (64 - reinterpret_cast<std::uintptr_t>(storage.data()) % 64) % 64;
  }

  // Each thread's rows of W for one token: one piece per thread.
  std::int64_t one_token_share(const TensorView& w) const { return (w.rows + threads_ - 1) / threads_; }

  // Runs gemm on W's rows in chunks of `chunk` rows split statically across the threads.
  void split_rows(cpu::GemmFn gemm, const TensorView& w, std::int64_t chunk, const std::byte* acts,
                  std::size_t act_stride, int rows, float* y, std::size_t ldy, bool accumulate) {
    parallel_for((w.rows + chunk - 1) / chunk, [&](std::int64_t c) {
      gemm(w, c * chunk, std::min(w.rows, (c + 1) * chunk), acts, act_stride, rows, y, ldy, accumulate);
    });
  }

  // x's rows [first, first + rows) in activation format `format`, written into acts_ by
  // prepare(i) for work items i < items, split across the threads. Consecutive batch
  // products on an unchanged buffer (q/k/v on one normed input, gate/up on another)
  // prepare it once.
  template <class Prepare>
  const std::byte* prepared(cpu::ActFormat format, const Buffer& x, int first, int rows, std::int64_t items,
                            Prepare&& prepare) {
    const bool fresh = prepared_.source == &x && prepared_.format == format && prepared_.first == first &&
                       prepared_.rows == rows && !x.changed_.load(std::memory_order_relaxed);
    if (!fresh) {
      parallel_for(items, prepare);
      // After parallel_for's barrier every thread has read the old record; the next read
      // comes after the product's barrier.
      if (thread_index() == 0) {
        prepared_ = {&x, format, first, rows};
        x.changed_.store(false, std::memory_order_relaxed);
      }
    }
    return acts_;
  }

  // The key tiles of one (layer, kv head): key_area_bytes_ each (cpu/kv_rows.hpp's layout).
  std::byte* key_tiles(int layer, int kv_head) {
    const std::size_t head = static_cast<std::size_t>(layer) * config_.num_kv_heads + kv_head;
    return k_cache_.data() + head * key_area_bytes_;
  }

  // Value rows of one (layer, kv head) are consecutive, kv_row_bytes_ apart, position 0 first.
  std::byte* value_row(int layer, int kv_head, int pos) {
    const std::size_t row = (static_cast<std::size_t>(layer) * config_.num_kv_heads + kv_head) * context_ + pos;
    return v_cache_.data() + row * kv_row_bytes_;
  }

  ModelConfig config_;
  int threads_;
  int max_batch_;
  int context_;
  DType kv_type_;               // of the cache's elements
  std::size_t kv_row_bytes_;    // one head's values at one position
  std::size_t key_area_bytes_;  // one head's key tiles for the whole context
  RopeTable rope_;
  std::vector<std::byte> k_cache_, v_cache_;
  std::vector<float> logits_;
  std::vector<std::vector<float>> scratch_;  // per thread: a group's attention scores, widened norms
  std::vector<Pending> pending_;             // per thread: its record of the step's waiting norm and products
  std::vector<OneTokenRow> one_token_;       // per thread: its copy of one token's input row
  std::vector<std::byte> act_storage_;       // prepared activation rows, shared by the threads
  std::byte* acts_ = nullptr;                // act_storage_ aligned to 64 bytes
  struct PreparedRecord {
    const Buffer* source = nullptr;
    cpu::ActFormat format = cpu::ActFormat::f32;
    int first = 0, rows = 0;
  } prepared_;  // what acts_ holds
};

}  // namespace smallcoder
