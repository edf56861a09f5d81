// cuda_speed: decode speed on the GPU, split into what the device step costs and what the
// whole generation loop costs. For each variant (random weights): the seed8 prompts, 150
// sampled tokens each (T 0.7, top-k 50, top-p 0.9, seed = prompt index) through generate(),
// then a run of bare decode steps (the captured graph, with the top logits to the host)
// without sampling or text; one line per variant on stdout, beside the bandwidth limit.
// --profile adds where one decode step and the longest seed8 prompt spend their device
// time, launch by launch (cuda/profile.hpp); --sweep times the bare step and the first
// tokens under other settings of the backend's speed knobs (cuda/tuning.hpp), one line
// each, and names the fastest (--best-out writes it where a script can read it).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "../cli.hpp"
#include "../model_source.hpp"
#include "bench/memory.hpp"
#include "bench/suites.hpp"
#include "smallcoder/smallcoder.hpp"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct Flags {
  std::vector<std::string> variants{"SmallCoder-Tiny", "SmallCoder-Medium-LC"};
  std::string tokenizer, activations = "f32", dtype = "bf16", best_out;
  std::vector<std::string> sweep;
  bool profile = false, no_generate = false;
  long long max_tokens = 150, steps = 300;
};

// Microseconds per bare decode step: `steps` graph replays from the BOS token, each
// waiting for its 64 top logits (after three untimed steps that capture the graph).
double bare_step_us(smallcoder::CudaModel& model, int steps) {
  auto& transformer = model.transformer();
  auto& device = transformer.backend();
  device.keep_logits_on_device(true);
  transformer.reset();
  const std::int32_t bos = model.config().bos_id;
  steps = std::min(steps, transformer.context() - 8);
  std::int32_t id = bos;
  for (int s = 0; s < 3; ++s) transformer.forward(&id, 1);
  const Clock::time_point start = Clock::now();
  for (int s = 0; s < steps; ++s) {
    transformer.forward(&id, 1);
    id = device.top_logits().count > 0 ? device.top_logits().ids[0] : bos;
  }
  const double us = seconds_since(start) / steps * 1e6;
  device.keep_logits_on_device(false);
  return us;
}

// First-token latency of each seed8 prompt (prompt in, one sampled token out), sorted.
std::vector<double> first_token_ms(smallcoder::CudaModel& model) {
  smallcoder::GenerateOptions options;
  options.max_tokens = 1;
  std::vector<double> ms;
  for (const smallcoder::bench::BenchPrompt& p : smallcoder::bench::suite_prompts(smallcoder::bench::Suite::seed8)) {
    ms.push_back(model.generate(p.prompt, options).timings.time_to_first_token_s * 1e3);
  }
  std::sort(ms.begin(), ms.end());
  return ms;
}

// The launches of `run` (steps of the model), timed one by one, as a table.
template <class Run>
void print_profile(smallcoder::CudaModel& model, const char* what, int steps, Run&& run) {
  auto& device = model.transformer().backend();
  device.clear_profile();
  device.profile(true);
  run();
  device.profile(false);
  double total = 0;
  for (const auto& e : device.profile_entries()) total += e.total_ms;
  std::printf("  %s: launches one by one (events between them, no overlap), per step:\n", what);
  std::printf("    %-44s %8s %9s %9s %6s\n", "launch", "count", "us each", "us", "share");
  for (const auto& e : device.profile_entries()) {
    std::printf("    %-44s %8.1f %9.2f %9.1f %5.1f%%\n", e.label.c_str(), static_cast<double>(e.launches) / steps,
                e.total_ms * 1e3 / e.launches, e.total_ms * 1e3 / steps, 100.0 * e.total_ms / total);
  }
  std::printf("    %-44s %8s %9s %9.1f\n", "total", "", "", total * 1e3 / steps);
}

void run_variant(const std::string& variant, const Flags& f, double bandwidth_gb_per_s, std::ofstream* best_out) {
  tools::RandomModelSpec spec;
  spec.variant = variant;
  spec.dtype = smallcoder::parse_dtype(f.dtype, "--dtype");
  spec.tokenizer_flag = f.tokenizer;
  smallcoder::BackendOptions backend;
  backend.activations = f.activations == "bf16" ? smallcoder::Activations::bf16 : smallcoder::Activations::f32;
  const Clock::time_point load_start = Clock::now();
  smallcoder::CudaModel model(tools::random_model(spec), backend);
  const double load_s = seconds_since(load_start);
  const double weight_mb =
      static_cast<double>(smallcoder::bench::decode_weight_bytes(model.checkpoint().weights)) / 1e6;
  const double limit = bandwidth_gb_per_s * 1e3 / weight_mb;  // tokens per second if weights were all that moved
  auto& device = model.transformer().backend();
  const smallcoder::cuda::Tuning defaults = device.tuning();
  const std::string label = variant + " " + f.dtype;

  smallcoder::GenerateOptions options;
  options.max_tokens = static_cast<int>(f.max_tokens);
  {
    smallcoder::GenerateOptions warm = options;
    warm.max_tokens = 4;  // captures the decode graph; not timed
    model.generate("def warm_up():", warm);
  }
  char generate_text[256] = "";
  if (!f.no_generate) {
    int generated = 0;
    double decode_s = 0, prefill_s = 0;
    int prompt_tokens = 0;
    std::vector<double> first_ms;
    const std::vector<smallcoder::bench::BenchPrompt> prompts =
        smallcoder::bench::suite_prompts(smallcoder::bench::Suite::seed8);
    for (std::size_t i = 0; i < prompts.size(); ++i) {
      options.seed = i;
      const smallcoder::GenerationResult r = model.generate(prompts[i].prompt, options);
      generated += r.timings.generated_tokens - 1;  // decode steps: the first token comes from the prefill
      decode_s += r.timings.decode_s;
      prefill_s += r.timings.prefill_s;
      prompt_tokens += r.timings.prompt_tokens;
      first_ms.push_back(r.timings.time_to_first_token_s * 1e3);
    }
    std::sort(first_ms.begin(), first_ms.end());
    std::snprintf(generate_text, sizeof generate_text,
                  "generate: decode %7.1f tok/s, prompt %8.1f tok/s, first token median %.2f ms max %.2f ms | ",
                  generated / decode_s, prompt_tokens / prefill_s, first_ms[first_ms.size() / 2], first_ms.back());
  }
  const double step_us = bare_step_us(model, static_cast<int>(f.steps));
  if (!device.graph_error().empty())
    std::printf("%s: no CUDA graphs: %s\n", label.c_str(), device.graph_error().c_str());
  const smallcoder::cuda::DeviceMemoryStats m = smallcoder::cuda::device_memory_stats();
  std::printf(
      "%-27s weights %7.1f MB | %sbare step %6.1f us = %7.1f tok/s | bandwidth limit %7.1f tok/s (%.0f GB/s) | "
      "peak %.1f MiB, load %.1f s\n",
      label.c_str(), weight_mb, generate_text, step_us, 1e6 / step_us, limit, bandwidth_gb_per_s,
      m.peak_allocated / 1048576.0, load_s);
  std::fflush(stdout);

  if (f.profile) {
    const int steps = 100;
    print_profile(model, "decode step (positions 9..108)", steps, [&] {
      auto& transformer = model.transformer();
      transformer.reset();
      device.keep_logits_on_device(true);
      std::vector<std::int32_t> ids(9, model.config().bos_id);
      transformer.forward(ids.data(), static_cast<int>(ids.size()));
      device.clear_profile();  // the prompt pass is not a decode step
      for (int s = 0; s < steps; ++s) transformer.forward(&ids[0], 1);
      device.keep_logits_on_device(false);
    });
    std::string longest;
    for (const auto& p : smallcoder::bench::suite_prompts(smallcoder::bench::Suite::seed8)) {
      if (model.tokenizer().encode(p.prompt).size() > model.tokenizer().encode(longest).size()) longest = p.prompt;
    }
    const int prompt_tokens = static_cast<int>(model.tokenizer().encode(longest).size()) + 1;
    const std::string what = "prompt pass of the longest seed8 prompt (" + std::to_string(prompt_tokens) + " tokens)";
    print_profile(model, what.c_str(), 1, [&] {
      smallcoder::GenerateOptions one;
      one.max_tokens = 1;
      model.generate(longest, one);
    });
    std::fflush(stdout);
  }

  if (!f.sweep.empty()) {
    std::printf("  knob sweep (each on top of the defaults: %s):\n", defaults.describe().c_str());
    std::string best;
    double best_us = 0;
    for (const std::string& knobs : f.sweep) {
      const smallcoder::cuda::Tuning t = smallcoder::cuda::parse_tuning(knobs, defaults);
      device.set_tuning(t);
      const double us = bare_step_us(model, 200);
      const std::vector<double> first = first_token_ms(model);
      std::printf("    %-34s bare step %6.1f us = %7.1f tok/s | first token median %.2f ms max %.2f ms%s\n",
                  knobs.empty() ? "(defaults)" : knobs.c_str(), us, 1e6 / us, first[first.size() / 2], first.back(),
                  device.graph_error().empty() ? "" : " | NO GRAPHS");
      if (best.empty() || us < best_us) {
        best = knobs;
        best_us = us;
      }
      std::fflush(stdout);
    }
    device.set_tuning(defaults);
    std::printf("  fastest bare step for %s: %s (%.1f us)\n", label.c_str(), best.empty() ? "(defaults)" : best.c_str(),
                best_us);
    if (best_out != nullptr) *best_out << best << "\n";
  }
}

int run(int argc, char** argv) {
  Flags f;
  cli::Parser p("cuda_speed", "Decode speed on the GPU: generate() over the seed8 prompts, and bare decode steps.");
  p.several("--variants", &f.variants, "NAME", "variants to run (default SmallCoder-Tiny SmallCoder-Medium-LC)");
  p.integer("--max-tokens", &f.max_tokens, 2, 1 << 16, "tokens per prompt (default 150)");
  p.integer("--steps", &f.steps, 1, 1 << 20, "bare decode steps to time (default 300)");
  p.text("--dtype", &f.dtype, "TYPE", "weight type: f32|f16|bf16|q8_0|q4_0 (default bf16)");
  p.text("--activations", &f.activations, "f32|bf16", "activation type (default f32)");
  p.text("--tokenizer", &f.tokenizer, "PATH", "tokenizer.model (default: the shared data's)");
  p.flag("--profile", &f.profile, "time one decode step and the longest seed8 prompt launch by launch");
  p.several("--sweep", &f.sweep, "KNOBS",
            "time the bare step and first tokens with each 'key=value,...' (cuda/tuning.hpp; '' = the defaults)");
  p.text("--best-out", &f.best_out, "FILE", "append each variant's fastest --sweep entry to FILE, one line each");
  p.flag("--no-generate", &f.no_generate, "skip the generate() pass (bare steps, profile and sweep only)");
  if (!p.parse(argc, argv)) return 0;
  if (f.activations != "f32" && f.activations != "bf16") throw cli::UsageError("--activations must be f32 or bf16");
  for (const std::string& v : f.variants) {
    if (smallcoder::find_variant(v) == nullptr) throw cli::UsageError("unknown variant '" + v + "'");
  }
  for (const std::string& knobs : f.sweep)
    smallcoder::cuda::parse_tuning(knobs);  // bad knobs fail before any model loads
  std::ofstream best_out;
  if (!f.best_out.empty()) {
    best_out.open(f.best_out, std::ios::app);
    if (!best_out) throw cli::UsageError("cannot write --best-out file '" + f.best_out + "'");
  }
  const smallcoder::cuda::ReadBandwidth bandwidth = smallcoder::cuda::measure_read_bandwidth();
  std::printf("%s: read bandwidth %.0f GB/s (best of %zu passes over %.0f MiB); tuning %s\n",
              smallcoder::cuda::device_memory_stats().device_name.c_str(), bandwidth.best_gb_per_s,
              bandwidth.pass_gb_per_s.size(), bandwidth.buffer_bytes / 1048576.0,
              smallcoder::cuda::tuning_from_environment().describe().c_str());
  for (const std::string& v : f.variants)
    run_variant(v, f, bandwidth.best_gb_per_s, f.best_out.empty() ? nullptr : &best_out);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return cli::run_tool("cuda_speed", [&] { return run(argc, argv); });
}
