// The CUDA backend: the same Backend concept as CpuBackend (see model/transformer.hpp), so
// Transformer<CudaBackend> and BasicModel<CudaBackend> run the model on one GPU. Weights
// are uploaded once in their stored type (f32, f16, bf16, Q8_0 and Q4_0 blocks), the KV
// cache and the activations live on the device, and the ops of a step are recorded, then
// planned as a whole: a decode step is five fused kernels per layer (RMSNorm + QKV, RoPE
// + cache append + attention, Wo + residual, RMSNorm + gate/up + SwiGLU, down +
// residual), launched so that each may start (and prefetch its weights) while the one
// before it finishes, captured once as a CUDA graph and replayed; a short prompt runs the
// same fusions over several token rows. Only the logits, or with device sampling
// (generate/generator.hpp) just the 64 largest, come back. cuda/tuning.hpp lists the
// knobs that change speed, never results; cuda/profile.hpp times the launches.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "smallcoder/config.hpp"
#include "smallcoder/cuda/device_info.hpp"
#include "smallcoder/cuda/launch.hpp"
#include "smallcoder/cuda/profile.hpp"
#include "smallcoder/cuda/recorded_op.hpp"
#include "smallcoder/cuda/runtime.hpp"
#include "smallcoder/cuda/tuning.hpp"
#include "smallcoder/error.hpp"
#include "smallcoder/model/backend_options.hpp"
#include "smallcoder/model/rope.hpp"
#include "smallcoder/model/step.hpp"
#include "smallcoder/model/weights.hpp"
#include "smallcoder/tensor/dtype.hpp"

namespace smallcoder {

// The largest logits of the last step, sorted by value (descending) then id; count is
// 0 when the device could not tell them apart exactly (then use host_logits()).
struct DeviceTopLogits {
  const float* values = nullptr;
  const std::int32_t* ids = nullptr;
  int count = 0;
};

class CudaBackend {
 public:
  static constexpr const char* name() { return "cuda"; }

  // A [max_batch x cols] fp32 activation matrix in device memory.
  class Buffer {
   public:
    Buffer() = default;
    Buffer(int rows, int cols)
        : cols_(cols),
          memory_(cuda::device_alloc(sizeof(float) * static_cast<std::size_t>(rows) * cols, "an activation buffer")) {
      cuda::check(cudaMemset(memory_.get(), 0, sizeof(float) * static_cast<std::size_t>(rows) * cols),
                  "clearing an activation buffer");
    }
    int cols() const { return cols_; }
    cuda::Operand operand() const { return {static_cast<float*>(memory_.get()), cols_}; }

   private:
    int cols_ = 0;
    cuda::DeviceMemory memory_;
  };

  CudaBackend(const ModelConfig& config, const BackendOptions& options)
      : config_(config),
        max_batch_(options.max_batch),
        context_(options.context > 0 ? options.context : config.max_context),
        bf16_(options.activations == Activations::bf16),
        tuning_(cuda::tuning_from_environment()) {
    const std::string where = "cuda backend";
    if (options.kv_cache != DType::f32) {
      fail(where, std::string("kv_cache ") + dtype_name(options.kv_cache) +
                      " is CPU-only: the CUDA cache holds f32 (bf16 with bf16 activations)");
    }
    if (max_batch_ < 1) fail(where, "max_batch must be at least 1, got " + std::to_string(max_batch_));
    if (context_ < 1) fail(where, "context must be at least 1, got " + std::to_string(context_));
    const std::string no_device = cuda::why_no_device();
    if (!no_device.empty()) fail(where, "no usable CUDA device (" + no_device + ")");
    cuda::reset_peak_memory();  // a model's peak, as the benchmark reports it per variant
    cudaDeviceProp prop{};
    cuda::check(cudaGetDeviceProperties(&prop, cuda::current_device()), "reading the device properties");
    multiprocessors_ = prop.multiProcessorCount;
    // What a block may add to its static shared memory (a few hundred bytes at most).
    shared_limit_ = prop.sharedMemPerBlockOptin - 1024;
    if (config.head_dim > cuda::kMaxAttentionHeadDim) {
      fail(where, "head_dim " + std::to_string(config.head_dim) + " is above the " +
                      std::to_string(cuda::kMaxAttentionHeadDim) + " the attention kernel handles");
    }
    if (config.kv_group() > cuda::kMaxKvGroup) {
      fail(where, std::to_string(config.kv_group()) + " query heads per kv head is above the " +
                      std::to_string(cuda::kMaxKvGroup) + " the attention kernel handles");
    }
    const int widest = std::max({config.hidden_size, config.q_dim(), config.intermediate_size});
    const std::size_t row_bytes = cuda::product_shared_bytes(widest, 1);
    if (row_bytes > shared_limit_) {
      fail(where, "an input row of " + std::to_string(widest) + " floats needs " + std::to_string(row_bytes) +
                      " bytes of shared memory; this GPU allows " + std::to_string(shared_limit_));
    }
    cuda::allow_products_shared_memory(shared_limit_);
    stream_ = cuda::make_stream();

    // RoPE tables: the CPU backend's own values, so both rotate by the same angles.
    const int half = config.head_dim / 2;
    const RopeTable rope(context_, config.head_dim, config.rope_theta);
    const std::size_t table_bytes = sizeof(float) * static_cast<std::size_t>(context_) * half;
    rope_cos_ = cuda::device_alloc(table_bytes, "the RoPE cos table");
    rope_sin_ = cuda::device_alloc(table_bytes, "the RoPE sin table");
    cuda::check(cudaMemcpy(rope_cos_.get(), rope.cos(0), table_bytes, cudaMemcpyHostToDevice),
                "uploading the RoPE table");
    cuda::check(cudaMemcpy(rope_sin_.get(), rope.sin(0), table_bytes, cudaMemcpyHostToDevice),
                "uploading the RoPE table");

    // KV cache: [layer][kv head][position][head_dim], fp32 (bf16 with bf16 activations).
    layer_cache_elems_ = static_cast<std::size_t>(config.num_kv_heads) * context_ * config.head_dim;
    const std::size_t cache_bytes = (bf16_ ? 2 : 4) * layer_cache_elems_ * config.num_layers;
    k_cache_ = cuda::device_alloc(cache_bytes, "the key cache");
    v_cache_ = cuda::device_alloc(cache_bytes, "the value cache");
    cuda::check(cudaMemset(k_cache_.get(), 0, cache_bytes), "clearing the key cache");
    cuda::check(cudaMemset(v_cache_.get(), 0, cache_bytes), "clearing the value cache");
    kv_cache_bytes_ = 2 * cache_bytes;

    // Attention partials for the most splits any Tuning::split asks for.
    const int most_splits = cuda::attention_splits(context_, 16, config.num_kv_heads, multiprocessors_);
    const std::size_t partial_floats =
        static_cast<std::size_t>(config.num_kv_heads) * most_splits * config.kv_group() * (2 + config.head_dim);
    partials_ = cuda::device_alloc(sizeof(float) * partial_floats, "attention partials");
    counters_ = cuda::device_alloc(sizeof(unsigned) * config.num_kv_heads, "attention counters");
    cuda::check(cudaMemset(counters_.get(), 0, sizeof(unsigned) * config.num_kv_heads), "clearing attention counters");

    const std::size_t step_bytes = sizeof(int) * (cuda::kStepTokens + static_cast<std::size_t>(max_batch_));
    step_device_ = cuda::device_alloc(step_bytes, "the step's tokens");
    step_host_ = cuda::pinned_alloc(step_bytes, "the step's tokens");
    step_mapped_ = cuda::mapped_pointer(step_host_);
    const std::size_t logits_bytes = sizeof(float) * static_cast<std::size_t>(config.vocab_size);
    logits_device_ = cuda::device_alloc(logits_bytes, "the logits");
    logits_host_ = cuda::pinned_alloc(logits_bytes, "the logits");
    std::memset(logits_host_.get(), 0, logits_bytes);
    top_device_ = cuda::device_alloc(sizeof(cuda::TopLogitsResult), "the top logits");
    top_host_ = cuda::pinned_alloc(sizeof(cuda::TopLogitsResult), "the top logits");
    top_mapped_ = cuda::mapped_pointer(top_host_);
    std::memset(top_host_.get(), 0, sizeof(cuda::TopLogitsResult));
    ops_.reserve(static_cast<std::size_t>(16) * config.num_layers + 8);
    set_tuning(tuning_);
  }

  int max_batch() const { return max_batch_; }
  int context() const { return context_; }
  int threads() const { return 1; }  // one host thread drives the GPU
  std::size_t kv_cache_bytes() const { return kv_cache_bytes_; }
  bool bf16_activations() const { return bf16_; }
  DType kv_cache() const { return bf16_ ? DType::bf16 : DType::f32; }  // the cache's element type

  Buffer make_buffer(int cols) const { return Buffer(max_batch_, cols); }

  // Copies every tensor to one device allocation in its stored type (norm vectors widened
  // to fp32, which is exact); the returned views point into it and keep it alive. The
  // allocation ends with slack that the quantized loads may read (device_math.hpp).
  ModelWeights upload(const ModelWeights& host) const {
    ModelWeights device = host;
    device.owners.clear();
    std::size_t total = kUploadSlack;
    for_each_weight(config_, device, [&](const WeightSlot& slot) {
      const TensorView& v = *slot.view;
      if (v.rows != slot.rows || v.cols != slot.cols || v.data == nullptr) {
        fail("cuda upload", "tensor '" + hf_tensor_name(slot) + "' does not have the shape the config needs");
      }
      const bool supported = slot.is_vector() ? is_float_dtype(v.dtype) : cuda::is_supported_weight_type(v.dtype);
      if (!supported) {
        fail("cuda upload", "tensor '" + hf_tensor_name(slot) + "' is stored as " + dtype_name(v.dtype) +
                                ", which the CUDA backend cannot compute with (it takes f32, f16, bf16, q8_0 and q4_0" +
                                (slot.is_vector() ? "; f32, f16 and bf16 for norm weights)" : ")"));
      }
      total += aligned(device_bytes(slot));
    });
    auto arena = std::make_shared<cuda::DeviceMemory>(cuda::device_alloc(total, "the weights"));
    std::byte* base = static_cast<std::byte*>(arena->get());
    cuda::check(cudaMemset(base, 0, total), "clearing the weights");  // the slack, and padding, read as zeros
    std::size_t offset = 0;
    std::vector<float> widened;
    for_each_weight(config_, device, [&](const WeightSlot& slot) {
      TensorView& v = *slot.view;
      std::byte* at = base + offset;
      if (slot.is_vector()) {
        widened.resize(static_cast<std::size_t>(v.cols));
        row_to_f32(v.dtype, v.data, v.cols, widened.data());
        cuda::check(cudaMemcpy(at, widened.data(), sizeof(float) * widened.size(), cudaMemcpyHostToDevice),
                    "uploading tensor '" + hf_tensor_name(slot) + "'");
        v = TensorView{DType::f32, v.rows, v.cols, at};
      } else {
        cuda::check(cudaMemcpy(at, v.data, v.bytes(), cudaMemcpyHostToDevice),
                    "uploading tensor '" + hf_tensor_name(slot) + "'");
        v.data = at;
      }
      offset += aligned(device_bytes(slot));
    });
    tie_output_if_needed(config_, device);
    device.owners.push_back(std::move(arena));
    return device;
  }

  // Records the step's ops (ops() only writes them down), then runs them: a decode step
  // seen twice in a row is captured as a graph, and replayed from then on.
  template <class Ops>
  void run(const Step& s, Ops&& ops) {
    ops_.clear();
    ops();
    wait();  // the previous step may still read the staging buffer
    int* staged = static_cast<int*>(step_host_.get());
    staged[cuda::kStepPosition] = s.pos0;
    for (int r = 0; r < s.end_row(); ++r) staged[cuda::kStepTokens + r] = s.tokens[r];
    if (s.rows == 1 && graphs_enabled_ && !profiling_) {
      Graph& graph = graphs_[logits_on_device_ ? 1 : 0];
      if (graph.exec && matches(graph.signature, s)) {
        cuda::check(cudaGraphLaunch(graph.exec.get(), stream_.get()), "replaying the decode graph");
        ++graph_replays_;
      } else if (matches(last_eager_, s)) {
        capture(s, graph);
      } else {
        enqueue(s);
        last_eager_ = signature(s);
      }
    } else {
      enqueue(s);
    }
    in_flight_ = true;
  }

  void embed(const Step& s, const TensorView& table, Buffer& x) {
    cuda::RecordedOp& op = record(cuda::OpKind::embed, s);
    op.weight = table;
    op.out[0] = x.operand();
  }

  void rmsnorm(const Step& s, const Buffer& x, const TensorView& weight, Buffer& out) {
    cuda::RecordedOp& op = record(cuda::OpKind::rmsnorm, s);
    op.in[0] = x.operand();
    op.weight = weight;
    op.out[0] = out.operand();
  }

  void matmul(const Step& s, const TensorView& w, const Buffer& x, Buffer& y, bool accumulate = false) {
    cuda::RecordedOp& op = record(cuda::OpKind::matmul, s);
    op.weight = w;
    op.in[0] = x.operand();
    op.out[0] = y.operand();
    op.accumulate = accumulate;
  }

  // RoPE on q and k, then attention: two recorded ops.
  void attention(const Step& s, int layer, Buffer& q, Buffer& k, const Buffer& v, RopeLayout layout, Buffer& out) {
    cuda::RecordedOp& rope = record(cuda::OpKind::rope, s);
    rope.out[0] = q.operand();
    rope.out[1] = k.operand();
    rope.layout = layout;
    cuda::RecordedOp& op = record(cuda::OpKind::attention, s);
    op.layer = layer;
    op.in[0] = q.operand();
    op.in[1] = k.operand();
    op.in[2] = v.operand();
    op.out[0] = out.operand();
  }

  void swiglu(const Step& s, const Buffer& gate, const Buffer& up, Buffer& out) {
    cuda::RecordedOp& op = record(cuda::OpKind::swiglu, s);
    op.in[0] = gate.operand();
    op.in[1] = up.operand();
    op.out[0] = out.operand();
  }

  void output(const Step& s, const Buffer& x, const TensorView& head) {
    cuda::RecordedOp& op = record(cuda::OpKind::output, s);
    op.in[0] = x.operand();
    op.weight = head;
  }

  // The logits of the last step on the host (waits for the step). While logits stay on
  // the device (keep_logits_on_device(true)) it returns nullptr: use top_logits().
  const float* logits() {
    wait();
    return logits_on_device_ ? nullptr : static_cast<const float*>(logits_host_.get());
  }

  // Device sampling (see generate/generator.hpp): with this on, a step sends the host
  // only its 64 largest logits; host_logits() copies all of them when those do not decide.
  void keep_logits_on_device(bool on) { logits_on_device_ = on; }

  DeviceTopLogits top_logits() {
    wait();
    const auto* top = static_cast<const cuda::TopLogitsResult*>(top_host_.get());
    return DeviceTopLogits{top->values, top->ids, top->count};
  }

  const float* host_logits() {
    wait();
    cuda::check(cudaMemcpyAsync(logits_host_.get(), logits_device_.get(), sizeof(float) * config_.vocab_size,
                                cudaMemcpyDeviceToHost, stream_.get()),
                "copying the logits to the host");
    in_flight_ = true;
    wait();
    return static_cast<const float*>(logits_host_.get());
  }

  // Graphs on (the default) or off: off, every decode step launches its kernels one by
  // one. The results are the same; tests compare the two.
  void use_graphs(bool on) { graphs_enabled_ = on; }
  long long graph_replays() const { return graph_replays_; }
  // Why graphs were turned off after a capture failed; empty while they work.
  const std::string& graph_error() const { return graph_error_; }

  // The speed knobs (cuda/tuning.hpp; the environment's at construction). Changing them
  // drops the captured graphs: the next decode steps capture new ones.
  const cuda::Tuning& tuning() const { return tuning_; }
  void set_tuning(const cuda::Tuning& t) {
    wait();
    tuning_ = t;
    decode_splits_ = cuda::attention_splits(context_, tuning_.split, config_.num_kv_heads, multiprocessors_);
    for (Graph& g : graphs_) g = Graph{};
    last_eager_ = Signature{};
  }
  // Whether the step's ids and top logits cross through mapped host memory (Tuning::zerocopy
  // asks for it; a system that does not map pinned memory makes the copies instead).
  bool zero_copy_available() const { return step_mapped_ != nullptr && top_mapped_ != nullptr; }

  // Profiling (cuda/profile.hpp): while on, steps run without graphs, every launch timed.
  void profile(bool on) {
    wait();
    profiling_ = on;
  }
  std::vector<cuda::LaunchProfile::Entry> profile_entries() const { return profile_.entries(); }
  void clear_profile() {
    wait();
    profile_.clear();
  }

 private:
  // What a decode step launches: a graph captured for one signature replays only for it.
  struct Signature {
    std::vector<cuda::RecordedOp> ops;
    bool logits_on_device = false;
    int rows = 0;
    int first_row = 0;
  };
  struct Graph {
    cuda::GraphExec exec;
    Signature signature;
  };

  Signature signature(const Step& s) const { return Signature{ops_, logits_on_device_, s.rows, s.first_row}; }

  bool matches(const Signature& sig, const Step& s) const {
    return sig.logits_on_device == logits_on_device_ && sig.rows == s.rows && sig.first_row == s.first_row &&
           sig.ops == ops_;
  }

  // Bytes after the last tensor that kernels may read but never use: the 8-byte loads of
  // Q8_0 / Q4_0 groups reach up to 8 bytes past a row, bulk prefetches up to 15.
  static constexpr std::size_t kUploadSlack = 64;

  static std::size_t aligned(std::size_t bytes) { return (bytes + 255) / 256 * 256; }

  static std::size_t device_bytes(const WeightSlot& slot) {
    return slot.is_vector() ? sizeof(float) * static_cast<std::size_t>(slot.cols) : slot.view->bytes();
  }

  cuda::RecordedOp& record(cuda::OpKind kind, const Step& s) {
    ops_.emplace_back();
    cuda::RecordedOp& op = ops_.back();
    op.kind = kind;
    op.rows = s.rows;
    op.first_row = s.first_row;
    return op;
  }

  // Waits for the step in flight; its faults surface here as errors.
  void wait() {
    if (!in_flight_) return;
    in_flight_ = false;
    cuda::check(cudaStreamSynchronize(stream_.get()), "running a forward step on the GPU");
    if (profiling_) profile_.collect();
  }

  // Captures the step's work as a graph and launches it. Should this CUDA fail to capture
  // it, the step runs directly and the backend stays with direct launches; graph_error()
  // says why (a real fault in the work itself fails the direct run too, and is thrown).
  void capture(const Step& s, Graph& graph) {
    cudaStream_t stream = stream_.get();
    try {
      cuda::check(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal),
                  "starting the decode graph capture");
      cudaGraph_t captured = nullptr;
      try {
        enqueue(s);
      } catch (...) {
        cudaStreamEndCapture(stream, &captured);  // leave the stream usable, then report the first error
        if (captured != nullptr) cudaGraphDestroy(captured);
        throw;
      }
      cuda::check(cudaStreamEndCapture(stream, &captured), "capturing the decode step");
      cudaGraphExec_t exec = nullptr;
      const cudaError_t status = cudaGraphInstantiate(&exec, captured, 0);
      cudaGraphDestroy(captured);
      cuda::check(status, "instantiating the decode graph");
      graph.exec.reset(exec);
      graph.signature = signature(s);
    } catch (const Error& e) {
      graphs_enabled_ = false;
      graph_error_ = e.what();
      cudaGetLastError();  // a failed capture leaves its error behind
      enqueue(s);
      return;
    }
    cuda::check(cudaGraphLaunch(graph.exec.get(), stream), "launching the decode graph");
    ++graph_replays_;
  }

  // Whether this step's ids come in, and its top logits go out, through mapped host
  // memory: its first op must be the embedding of all its rows, which copies the ids on.
  bool zero_copy(const Step& s) const {
    return tuning_.zerocopy != 0 && zero_copy_available() && !ops_.empty() && ops_[0].kind == cuda::OpKind::embed &&
           ops_[0].first_row == 0 && ops_[0].rows == s.end_row();
  }

  // Runs `launch` (one kernel or copy); while profiling, between two events named label().
  template <class Label, class Launch>
  void timed(Label&& label, Launch&& launch) {
    if (!profiling_) {
      launch();
      return;
    }
    profile_.begin(label(), stream_.get());
    launch();
    profile_.end(stream_.get());
  }

  // Whether the kernel about to be launched may overlap the one before it (Tuning::pdl):
  // never the first of a step, whose predecessor is a copy or the previous step, and never
  // while profiling, which times each launch alone.
  bool next_launch_overlaps() { return tuning_.pdl > 0 && !profiling_ && launches_in_step_++ > 0; }
  bool trigger_early() const { return tuning_.pdl == 2; }

  // The whole step in stream order: its ids and position up, the planned ops, the result down.
  void enqueue(const Step& s) {
    cudaStream_t stream = stream_.get();
    zero_copy_step_ = zero_copy(s);
    launches_in_step_ = 0;
    if (!zero_copy_step_) {
      timed([] { return std::string("copy ids in"); },
            [&] {
              cuda::check(
                  cudaMemcpyAsync(step_device_.get(), step_host_.get(), sizeof(int) * (cuda::kStepTokens + s.end_row()),
                                  cudaMemcpyHostToDevice, stream),
                  "copying the step's tokens to the device");
            });
    }
    bool has_logits = false;
    for (const cuda::RecordedOp& op : ops_) has_logits = has_logits || op.kind == cuda::OpKind::output;
    for (std::size_t i = 0; i < ops_.size();) i = enqueue_from(i);
    if (!has_logits) return;
    if (logits_on_device_) {
      auto* top = static_cast<cuda::TopLogitsResult*>(zero_copy_step_ ? top_mapped_ : top_device_.get());
      cuda::TopLogitsArgs a;
      a.logits = logits_device();
      a.n = config_.vocab_size;
      a.result = top;
      a.rank = tuning_.topk == 1;
      a.trigger_early = trigger_early();
      timed([] { return std::string("top_logits"); },
            [&] { cuda::launch_top_logits(a, stream, next_launch_overlaps()); });
      if (!zero_copy_step_) {
        timed([] { return std::string("copy top logits out"); },
              [&] {
                cuda::check(cudaMemcpyAsync(top_host_.get(), top, sizeof(cuda::TopLogitsResult), cudaMemcpyDeviceToHost,
                                            stream),
                            "copying the top logits to the host");
              });
      }
    } else {
      timed([] { return std::string("copy logits out"); },
            [&] {
              cuda::check(cudaMemcpyAsync(logits_host_.get(), logits_device_.get(), sizeof(float) * config_.vocab_size,
                                          cudaMemcpyDeviceToHost, stream),
                          "copying the logits to the host");
            });
    }
  }

  float* logits_device() const { return static_cast<float*>(logits_device_.get()); }

  // Launches the op at i, fused with the ops after it where the plan allows; returns the
  // index of the first op not yet launched.
  std::size_t enqueue_from(std::size_t i) {
    const cuda::RecordedOp& op = ops_[i];
    switch (op.kind) {
      case cuda::OpKind::rmsnorm:
        if (i + 1 < ops_.size() && feeds_products(op, ops_[i + 1]) && products_fit(ops_[i + 1])) {
          return enqueue_products(i + 1, &op);
        }
        break;
      case cuda::OpKind::matmul:
      case cuda::OpKind::output:
        if (products_fit(op)) return enqueue_products(i, nullptr);
        break;
      case cuda::OpKind::rope:
        if (i + 1 < ops_.size() && feeds_attention(op, ops_[i + 1])) {
          if (op.rows == 1) {
            launch_attention(ops_[i + 1], &op);
          } else {
            launch_rope_append(&op, &ops_[i + 1]);
            launch_attention(ops_[i + 1], nullptr);
          }
          return i + 2;
        }
        break;
      default:
        break;
    }
    launch_unfused(op);
    return i + 1;
  }

  // Token rows of the product op (the output head: its one row).
  static int product_rows(const cuda::RecordedOp& op) { return op.kind == cuda::OpKind::output ? 1 : op.rows; }

  // Input rows one block of the products kernel takes for `rows` rows of `cols` inputs:
  // 1 for a decode step, up to Tuning::prefill_rows where shared memory holds them, 0
  // where the tiled GEMM takes the product instead.
  int inputs_per_block(int rows, int cols) const {
    if (rows == 1) return 1;
    if (rows >= tuning_.gemm_from) return 0;
    int n = std::min({rows, tuning_.prefill_rows, cuda::kMaxProductInputs});
    while (n > 1 && cuda::product_shared_bytes(cols, n) > shared_limit_) --n;
    return cuda::product_shared_bytes(cols, n) <= shared_limit_ ? n : 0;
  }

  bool products_fit(const cuda::RecordedOp& op) const {
    return inputs_per_block(product_rows(op), static_cast<int>(op.weight.cols)) > 0;
  }

  // An RMSNorm whose output is the input of the product after it, on the same rows.
  static bool feeds_products(const cuda::RecordedOp& norm, const cuda::RecordedOp& next) {
    const bool product = next.kind == cuda::OpKind::matmul || next.kind == cuda::OpKind::output;
    return product && next.rows == norm.rows && next.first_row == norm.first_row && next.in[0] == norm.out[0];
  }

  // RoPE on the q and k that the attention right after it reads, on the same rows.
  static bool feeds_attention(const cuda::RecordedOp& rope, const cuda::RecordedOp& att) {
    return att.kind == cuda::OpKind::attention && att.rows == rope.rows && att.first_row == rope.first_row &&
           att.in[0] == rope.out[0] && att.in[1] == rope.out[1] && att.out[0].data != att.in[0].data &&
           att.out[0].data != att.in[1].data && att.out[0].data != att.in[2].data;
  }

  // Two matmuls (gate, up) on one input and the SwiGLU of their outputs, on the same rows.
  bool is_swiglu_triple(std::size_t i) const {
    if (i + 2 >= ops_.size()) return false;
    const cuda::RecordedOp &g = ops_[i], &u = ops_[i + 1], &s = ops_[i + 2];
    return g.kind == cuda::OpKind::matmul && u.kind == cuda::OpKind::matmul && s.kind == cuda::OpKind::swiglu &&
           u.rows == g.rows && s.rows == g.rows && u.first_row == g.first_row && s.first_row == g.first_row &&
           !g.accumulate && !u.accumulate && u.in[0] == g.in[0] && u.weight.dtype == g.weight.dtype &&
           u.weight.cols == g.weight.cols && u.weight.rows == g.weight.rows && g.out[0].data != u.out[0].data &&
           s.in[0] == g.out[0] && s.in[1] == u.out[0];
  }

  // Whether `op` can join a product group that starts with `first` (same input rows and weight layout).
  static bool joins(const cuda::RecordedOp& first, const cuda::RecordedOp& op) {
    return op.kind == cuda::OpKind::matmul && op.rows == first.rows && op.first_row == first.first_row &&
           op.in[0] == first.in[0] && op.weight.dtype == first.weight.dtype && op.weight.cols == first.weight.cols;
  }

  // The fields every products launch of `first` (a matmul or the output head) shares.
  cuda::ProductArgs product_args(const cuda::RecordedOp& first) const {
    const int row = first.kind == cuda::OpKind::output ? first.last_row() : first.first_row;
    cuda::ProductArgs a;
    a.cols = static_cast<int>(first.weight.cols);
    a.row_bytes = first.weight.row_bytes();
    a.vectorized = cuda::vectorizable(first.weight);
    a.bf16 = bf16_;
    a.x = first.in[0].row(row);
    a.ldx = first.in[0].ld;
    a.inputs = product_rows(first);
    return a;
  }

  // The target a matmul (or the output head) adds to a products launch.
  cuda::ProductTarget product_target(const cuda::RecordedOp& op) const {
    if (op.kind == cuda::OpKind::output) {
      return cuda::ProductTarget{op.weight.data, logits_device(), config_.vocab_size, static_cast<int>(op.weight.rows),
                                 false};
    }
    return cuda::ProductTarget{op.weight.data, op.out[0].row(op.first_row), op.out[0].ld,
                               static_cast<int>(op.weight.rows), op.accumulate};
  }

  // One products launch for the ops starting at ops_[i] (the output head; a gate/up pair
  // and its SwiGLU; or up to three matmuls on one input), with the RMSNorm before them
  // folded in when `norm` is given. Returns the next op's index.
  std::size_t enqueue_products(std::size_t i, const cuda::RecordedOp* norm) {
    const cuda::RecordedOp& first = ops_[i];
    cuda::ProductArgs a = product_args(first);
    std::size_t covered = 0;
    const float* written[cuda::kMaxProductTargets + 1] = {};  // the buffers the launch writes
    int written_count = 0;
    if (first.kind == cuda::OpKind::output) {
      a.targets[a.target_count++] = product_target(first);
      a.total_rows = a.targets[0].rows;
      covered = 1;
    } else if (is_swiglu_triple(i)) {
      const cuda::RecordedOp &g = ops_[i], &u = ops_[i + 1], &s = ops_[i + 2];
      a.targets[a.target_count++] = product_target(g);
      a.targets[a.target_count++] = product_target(u);
      a.total_rows = a.targets[0].rows;
      a.swiglu_out = s.out[0].row(s.first_row);
      a.lds = s.out[0].ld;
      written[written_count++] = g.out[0].data;
      written[written_count++] = u.out[0].data;
      written[written_count++] = s.out[0].data;
      covered = 3;
    } else {
      while (i + covered < ops_.size() && a.target_count < cuda::kMaxProductTargets &&
             joins(first, ops_[i + covered])) {
        const cuda::RecordedOp& op = ops_[i + covered];
        if (std::find(written, written + written_count, op.out[0].data) != written + written_count) break;
        a.targets[a.target_count++] = product_target(op);
        a.total_rows += static_cast<int>(op.weight.rows);
        written[written_count++] = op.out[0].data;
        ++covered;
      }
    }
    // No output may be a buffer the launch reads (its input rows, the norm's input) or the
    // norm's output: then the ops run one by one, in order.
    for (int w = 0; w < written_count; ++w) {
      if (written[w] == first.in[0].data ||
          (norm != nullptr && (written[w] == norm->in[0].data || written[w] == norm->out[0].data))) {
        if (norm != nullptr) launch_unfused(*norm);
        for (std::size_t j = i; j < i + covered; ++j) launch_unfused(ops_[j]);
        return i + covered;
      }
    }
    if (norm != nullptr) {
      const int row = first.kind == cuda::OpKind::output ? first.last_row() : first.first_row;
      a.x = norm->in[0].row(row);
      a.ldx = norm->in[0].ld;
      a.norm_weight = static_cast<const float*>(static_cast<const void*>(norm->weight.data));
      a.norm_eps = config_.rms_norm_eps;
      a.norm_out = norm->out[0].row(row);
      a.ldn = norm->out[0].ld;
    }
    launch_products(first, a, norm != nullptr);
    return i + covered;
  }

  // Sizes the grid of a products launch (Tuning::rows, blocks_per_sm, prefill_rows) and launches it.
  void launch_products(const cuda::RecordedOp& first, cuda::ProductArgs& a, bool normed) {
    const bool multi = a.inputs > 1;
    const bool pair = a.swiglu_out != nullptr;
    int rows_per_warp = 0, units_per_warp = 0;
    if (multi) {
      rows_per_warp = cuda::kFewInputRows;
      units_per_warp = pair ? cuda::kFewInputRows / 2 : cuda::kFewInputRows;
    } else {
      units_per_warp = tuning_.rows;
      rows_per_warp = pair ? 2 * tuning_.rows : tuning_.rows;
    }
    a.units_per_block = cuda::kProductWarps * units_per_warp;
    a.row_groups = (a.total_rows + a.units_per_block - 1) / a.units_per_block;
    a.inputs_per_block = inputs_per_block(a.inputs, a.cols);
    a.x_vectorized = a.cols % 4 == 0 && a.ldx % 4 == 0 && reinterpret_cast<std::uintptr_t>(a.x) % 16 == 0;
    a.prefetch = tuning_.prefetch;
    a.trigger_early = trigger_early();
    const int grid_y = (a.inputs + a.inputs_per_block - 1) / a.inputs_per_block;
    int grid_x = a.row_groups;
    if (multi) {
      grid_x = std::min(grid_x, std::max(1, 2 * multiprocessors_ / grid_y));  // each block stages its inputs once
    } else if (tuning_.blocks_per_sm > 0) {
      grid_x = std::min(grid_x, multiprocessors_ * tuning_.blocks_per_sm);
    }
    const DType type = first.weight.dtype;
    timed(
        [&] {
          const char* kind = first.kind == cuda::OpKind::output ? "lm_head"
                             : pair                             ? "gate_up_swiglu"
                             : a.target_count == 3              ? "qkv"
                             : a.targets[0].accumulate          ? "matvec+residual"
                                                                : "matvec";
          return std::string(normed ? "norm+" : "") + kind + " " + std::to_string(a.total_rows) + "x" +
                 std::to_string(a.cols) + (multi ? " (prompt)" : "");
        },
        [&] {
          cuda::launch_products(type, a, multi, rows_per_warp, dim3(grid_x, grid_y), stream_.get(),
                                next_launch_overlaps());
        });
  }

  void launch_unfused(const cuda::RecordedOp& op) {
    cudaStream_t stream = stream_.get();
    switch (op.kind) {
      case cuda::OpKind::embed: {
        cuda::EmbedArgs a;
        a.table = op.weight.data;
        a.row_bytes = op.weight.row_bytes();
        a.cols = static_cast<int>(op.weight.cols);
        a.vocab = static_cast<int>(op.weight.rows);
        a.step = zero_copy_step_ ? static_cast<const int*>(step_mapped_) : static_cast<const int*>(step_device_.get());
        a.step_copy = zero_copy_step_ ? static_cast<int*>(step_device_.get()) : nullptr;
        a.first_row = op.first_row;
        a.x = op.out[0].data;
        a.ldx = op.out[0].ld;
        a.bf16 = bf16_;
        a.trigger_early = trigger_early();
        timed([] { return std::string("embed"); },
              [&] { cuda::launch_embed(op.weight.dtype, a, op.rows, stream, next_launch_overlaps()); });
        return;
      }
      case cuda::OpKind::rmsnorm: {
        cuda::RmsNormArgs a;
        a.x = op.in[0].data;
        a.ldx = op.in[0].ld;
        a.weight = static_cast<const float*>(static_cast<const void*>(op.weight.data));
        a.eps = config_.rms_norm_eps;
        a.out = op.out[0].data;
        a.ldo = op.out[0].ld;
        a.cols = op.in[0].ld;
        a.first_row = op.first_row;
        a.bf16 = bf16_;
        a.trigger_early = trigger_early();
        timed([] { return std::string("rmsnorm"); },
              [&] { cuda::launch_rmsnorm(a, op.rows, stream, next_launch_overlaps()); });
        return;
      }
      case cuda::OpKind::matmul:
      case cuda::OpKind::output:
        if (products_fit(op)) {
          cuda::ProductArgs a = product_args(op);
          a.targets[a.target_count++] = product_target(op);
          a.total_rows = a.targets[0].rows;
          launch_products(op, a, false);
        } else {
          launch_gemm(op);
        }
        return;
      case cuda::OpKind::rope:
        launch_rope_append(&op, nullptr);
        return;
      case cuda::OpKind::attention:
        launch_rope_append(nullptr, &op);
        launch_attention(op, nullptr);
        return;
      case cuda::OpKind::swiglu: {
        cuda::SwigluArgs a;
        a.gate = op.in[0].data;
        a.ldg = op.in[0].ld;
        a.up = op.in[1].data;
        a.ldu = op.in[1].ld;
        a.out = op.out[0].data;
        a.ldo = op.out[0].ld;
        a.cols = op.out[0].ld;
        a.first_row = op.first_row;
        a.bf16 = bf16_;
        a.trigger_early = trigger_early();
        timed([] { return std::string("swiglu"); },
              [&] { cuda::launch_swiglu(a, op.rows, stream, next_launch_overlaps()); });
        return;
      }
    }
  }

  // y (+)= x W^T for a long prompt pass (Tuning::gemm_from rows or more) in tiles.
  void launch_gemm(const cuda::RecordedOp& op) {
    cuda::GemmArgs a;
    a.weight = op.weight.data;
    a.n = static_cast<int>(op.weight.rows);
    a.k = static_cast<int>(op.weight.cols);
    a.row_bytes = op.weight.row_bytes();
    a.weight_vectorized = cuda::vectorizable(op.weight);
    a.x = op.in[0].row(op.first_row);
    a.ldx = op.in[0].ld;
    a.x_vectorized = op.in[0].ld % 4 == 0;
    a.m = op.rows;
    a.y = op.out[0].row(op.first_row);
    a.ldy = op.out[0].ld;
    a.accumulate = op.accumulate;
    a.bf16 = bf16_;
    a.trigger_early = trigger_early();
    timed([&] { return "gemm " + std::to_string(a.n) + "x" + std::to_string(a.k); },
          [&] { cuda::launch_gemm(op.weight.dtype, a, stream_.get(), next_launch_overlaps()); });
  }

  // RoPE of a prompt pass's q and k (from `rope`) and/or the append of its k and v to the
  // cache (from `att`): one launch for either or both.
  void launch_rope_append(const cuda::RecordedOp* rope, const cuda::RecordedOp* att) {
    const cuda::RecordedOp& op = rope != nullptr ? *rope : *att;
    cuda::RopeAppendArgs a;
    a.q = rope != nullptr ? rope->out[0].data : nullptr;
    a.ldq = rope != nullptr ? rope->out[0].ld : 0;
    a.k = rope != nullptr ? rope->out[1].data : att->in[1].data;
    a.ldk = rope != nullptr ? rope->out[1].ld : att->in[1].ld;
    a.heads = config_.num_heads;
    a.kv_heads = config_.num_kv_heads;
    a.head_dim = config_.head_dim;
    a.rope = rope != nullptr;
    a.cos = static_cast<const float*>(rope_cos_.get());
    a.sin = static_cast<const float*>(rope_sin_.get());
    a.interleaved = rope != nullptr && rope->layout == RopeLayout::interleaved;
    if (att != nullptr) {
      a.v = att->in[2].data;
      a.ldv = att->in[2].ld;
      a.k_cache = layer_cache(k_cache_, att->layer);
      a.v_cache = layer_cache(v_cache_, att->layer);
    }
    a.context = context_;
    a.step = static_cast<const int*>(step_device_.get());
    a.first_row = op.first_row;
    a.bf16 = bf16_;
    a.trigger_early = trigger_early();
    const char* label = rope == nullptr ? "append" : att == nullptr ? "rope" : "rope+append";
    timed([&] { return std::string(label); },
          [&] { cuda::launch_rope_append(bf16_, a, op.rows, stream_.get(), next_launch_overlaps()); });
  }

  // Attention of `att`'s rows against the cache; with `rope` (a decode step) the kernel
  // also rotates q and k and appends the new key and value itself.
  void launch_attention(const cuda::RecordedOp& att, const cuda::RecordedOp* rope) {
    cuda::AttentionArgs a;
    a.q = att.in[0].data;
    a.ldq = att.in[0].ld;
    a.k = att.in[1].data;
    a.ldk = att.in[1].ld;
    a.v = att.in[2].data;
    a.ldv = att.in[2].ld;
    a.k_cache = layer_cache(k_cache_, att.layer);
    a.v_cache = layer_cache(v_cache_, att.layer);
    a.out = att.out[0].data;
    a.ldo = att.out[0].ld;
    a.step = static_cast<const int*>(step_device_.get());
    a.first_row = att.first_row;
    a.kv_heads = config_.num_kv_heads;
    a.group = config_.kv_group();
    a.head_dim = config_.head_dim;
    a.context = context_;
    a.scale = 1.0f / std::sqrt(static_cast<float>(config_.head_dim));
    a.splits = att.rows == 1 ? decode_splits_ : 1;
    a.split_positions = tuning_.split;
    a.partials = static_cast<float*>(partials_.get());
    a.counters = static_cast<unsigned*>(counters_.get());
    a.fused = rope != nullptr;
    a.rope_cos = static_cast<const float*>(rope_cos_.get());
    a.rope_sin = static_cast<const float*>(rope_sin_.get());
    a.interleaved = rope != nullptr && rope->layout == RopeLayout::interleaved;
    a.bf16 = bf16_;
    a.trigger_early = trigger_early();
    timed(
        [&] {
          return std::string(rope != nullptr ? "rope+attention" : att.rows > 1 ? "attention (prompt)" : "attention");
        },
        [&] { cuda::launch_attention(bf16_, a, att.rows, stream_.get(), next_launch_overlaps()); });
  }

  void* layer_cache(const cuda::DeviceMemory& cache, int layer) const {
    return static_cast<std::byte*>(cache.get()) +
           (bf16_ ? 2 : 4) * layer_cache_elems_ * static_cast<std::size_t>(layer);
  }

  ModelConfig config_;
  int max_batch_;
  int context_;
  bool bf16_;
  cuda::Tuning tuning_;
  int multiprocessors_ = 0;
  std::size_t shared_limit_ = 0;
  cuda::Stream stream_;
  cuda::DeviceMemory rope_cos_, rope_sin_;
  std::size_t layer_cache_elems_ = 0;
  cuda::DeviceMemory k_cache_, v_cache_;
  std::size_t kv_cache_bytes_ = 0;
  int decode_splits_ = 1;
  cuda::DeviceMemory partials_, counters_;
  cuda::DeviceMemory step_device_;
  cuda::PinnedMemory step_host_;
  void* step_mapped_ = nullptr;  // step_host_ as kernels address it; null: not mapped
  cuda::DeviceMemory logits_device_;
  cuda::PinnedMemory logits_host_;
  cuda::DeviceMemory top_device_;
  cuda::PinnedMemory top_host_;
  void* top_mapped_ = nullptr;
  std::vector<cuda::RecordedOp> ops_;
  bool in_flight_ = false;
  bool logits_on_device_ = false;
  bool zero_copy_step_ = false;  // the step being enqueued uses the mapped memory
  int launches_in_step_ = 0;     // kernels of the step being enqueued launched so far
  bool graphs_enabled_ = true;
  Graph graphs_[2];  // by logits_on_device_
  Signature last_eager_;
  long long graph_replays_ = 0;
  std::string graph_error_;
  bool profiling_ = false;
  cuda::LaunchProfile profile_;
};

}  // namespace smallcoder
