// generate: stream a model's continuation of a prompt (or of each prompt typed in
// interactive mode). Text goes to stdout as it is produced; timings go to stderr.
// --device cuda runs it on the GPU when built with -Dcuda=enabled (examples/cuda/generate.cu).
#include <cstdio>
#include <iostream>
#include <string>
#include <type_traits>
#include <unistd.h>

#include "cli.hpp"
#include "model_source.hpp"

namespace {

struct Flags : tools::ModelFlags {
  std::string prompt, device = "cpu", activations = "f32", kv_cache = "f32";
  std::vector<std::string> stop;
  bool interactive = false, greedy = false, print_ids = false;
  long long max_tokens = 150, top_k = 50, seed = 0, threads = 0, context = 0;
  double temperature = 0.7, top_p = 0.9;
};

const char* const kDefaultPrompt = "def fibonacci(n):";

void print_timing(const smallcoder::GenerationResult& r, std::size_t weight_bytes) {
  const smallcoder::Timings& t = r.timings;
  std::fprintf(stderr,
               "\n[%d prompt tokens, %d generated, stop: %s] first token %.1f ms, prefill %.1f tok/s, "
               "decode %.1f tok/s (%.0f MB of weights read per token), total %.2f s\n",
               t.prompt_tokens, t.generated_tokens, smallcoder::stop_reason_name(r.stop_reason),
               t.time_to_first_token_s * 1e3, t.prefill_tokens_per_s(), t.decode_tokens_per_s(), weight_bytes / 1e6,
               t.total_s);
}

template <class Model>
void run_prompt(Model& model, const std::string& prompt, const smallcoder::GenerateOptions& options, bool print_ids) {
  const smallcoder::GenerationResult r = model.generate(prompt, options, [](std::string_view piece) {
    std::fwrite(piece.data(), 1, piece.size(), stdout);
    std::fflush(stdout);
  });
  if (print_ids) {
    std::string ids = "ids:";
    for (std::int32_t id : r.ids) ids += " " + std::to_string(id);
    std::fprintf(stderr, "\n%s", ids.c_str());
  }
  print_timing(r, model.checkpoint().weights.bytes());
#if defined(SMALLCODER_CUDA)
  if constexpr (std::is_same_v<Model, smallcoder::CudaModel>) {
    const smallcoder::cuda::DeviceMemoryStats m = smallcoder::cuda::device_memory_stats();
    std::fprintf(stderr, "[%s: %.1f MiB allocated (peak %.1f MiB), KV cache %.1f MiB]\n", m.device_name.c_str(),
                 m.allocated / 1048576.0, m.peak_allocated / 1048576.0,
                 model.transformer().backend().kv_cache_bytes() / 1048576.0);
  }
#endif
}

// Interactive prompts: one per line; a line ending in a backslash continues on the next.
bool read_prompt(std::string& prompt) {
  prompt.clear();
  const bool tty = isatty(STDIN_FILENO) != 0;
  std::string line;
  if (tty) std::fputs("> ", stderr);
  while (std::getline(std::cin, line)) {
    if (!line.empty() && line.back() == '\\') {
      prompt += line.substr(0, line.size() - 1) + "\n";
      if (tty) std::fputs(". ", stderr);
      continue;
    }
    prompt += line;
    return true;
  }
  return !prompt.empty();
}

// Runs the prompt, or the interactive loop, on a loaded model.
template <class Model>
int serve(Model& model, const Flags& f, const smallcoder::GenerateOptions& options) {
  if (!f.interactive) {
    run_prompt(model, f.prompt.empty() ? kDefaultPrompt : f.prompt, options, f.print_ids);
    return 0;
  }
  std::string prompt;
  while (read_prompt(prompt)) {
    try {
      run_prompt(model, prompt, options, f.print_ids);
    } catch (const smallcoder::Error& e) {  // a bad prompt ends that prompt, not the session
      std::fprintf(stderr, "generate: error: %s\n", cli::one_line(e.what()).c_str());
    }
  }
  return 0;
}

int run(int argc, char** argv) {
  Flags f;
  cli::Parser p("generate", "Streams a SmallCoder model's continuation of a prompt.\n"
                            "Without --model it runs a random-weight variant (--variant) on a built-in prompt.");
  tools::add_model_flags(p, f);
  p.text("--prompt", &f.prompt, "TEXT", "prompt to continue (default: \"def fibonacci(n):\")");
  p.flag("--interactive", &f.interactive, "read prompts from stdin, one per line (end a line with \\ to continue it)");
  p.integer("--max-tokens", &f.max_tokens, 0, 1 << 20, "tokens to generate at most (default 150)");
  p.number("--temperature", &f.temperature, 0.0, 100.0, "sampling temperature (default 0.7; 0 = greedy)");
  p.integer("--top-k", &f.top_k, 0, 1 << 22, "keep the k most likely tokens (default 50; 0 = off)");
  p.number("--top-p", &f.top_p, 1e-6, 1.0, "nucleus sampling threshold (default 0.9; 1 = off)");
  p.integer("--seed", &f.seed, 0, (1ll << 62), "sampling seed, also the random-weight seed (default 0)");
  tools::add_cpu_flags(p, f.threads, f.kv_cache);
  p.integer("--context", &f.context, 0, 1 << 20, "KV-cache length (default: the model's context)");
  p.flag("--greedy", &f.greedy, "always take the most likely token");
  p.flag("--print-ids", &f.print_ids, "also print the generated token ids (on stderr, as 'ids: ...')");
  p.repeated("--stop", &f.stop, "TEXT", "stop before this text appears (repeatable)");
  p.text("--device", &f.device, "cpu|cuda", "where to run (default cpu; cuda needs a build with -Dcuda=enabled)");
  p.text("--activations", &f.activations, "f32|bf16", "activation type on the GPU (default f32; bf16 rounds like a bf16 model)");
  if (!p.parse(argc, argv)) return 0;
  if (f.interactive && !f.prompt.empty()) throw cli::UsageError("--prompt and --interactive exclude each other");
  if (f.device != "cpu" && f.device != "cuda") throw cli::UsageError("--device must be cpu or cuda, got '" + f.device + "'");
#if !defined(SMALLCODER_CUDA)
  if (f.device == "cuda") {
    throw cli::UsageError("--device cuda: this generate was built without CUDA (configure with -Dcuda=enabled, "
                          "which needs the CUDA Toolkit)");
  }
#endif
  if (f.activations != "f32" && f.activations != "bf16") {
    throw cli::UsageError("--activations must be f32 or bf16, got '" + f.activations + "'");
  }
  if (f.activations == "bf16" && f.device != "cuda") throw cli::UsageError("--activations bf16 needs --device cuda");
  const smallcoder::DType kv_cache = tools::parse_kv_cache_flag(f.kv_cache);
  if (kv_cache != smallcoder::DType::f32 && f.device != "cpu") {
    throw cli::UsageError("--kv-cache " + f.kv_cache + " needs --device cpu");
  }
  f.variant = tools::resolve_variant_flag(f.model, f.variant);
  const std::optional<smallcoder::DType> dtype = tools::parse_dtype_flag(f.dtype);

  smallcoder::GenerateOptions options;
  options.max_tokens = static_cast<int>(f.max_tokens);
  options.sampling.greedy = f.greedy;
  options.sampling.temperature = static_cast<float>(f.temperature);
  options.sampling.top_k = static_cast<int>(f.top_k);
  options.sampling.top_p = static_cast<float>(f.top_p);
  options.seed = static_cast<std::uint64_t>(f.seed);
  options.stop = f.stop;
  smallcoder::BackendOptions backend;
  backend.threads = static_cast<int>(f.threads);
  backend.context = static_cast<int>(f.context);
  backend.activations = f.activations == "bf16" ? smallcoder::Activations::bf16 : smallcoder::Activations::f32;
  backend.kv_cache = kv_cache;

  smallcoder::Checkpoint checkpoint = tools::load_model_choice(
      {f.model, f.variant, dtype, f.tokenizer, static_cast<std::uint64_t>(f.seed), backend.threads});
  if (f.model.empty()) {
    std::fprintf(stderr, "[%s with random weights (seed %llu): its text is noise]\n", f.variant.c_str(), f.seed);
  }
  if (backend.context > checkpoint.config.max_context) {
    throw cli::UsageError("--context " + std::to_string(backend.context) + " exceeds the model's context of " +
                          std::to_string(checkpoint.config.max_context));
  }
#if defined(SMALLCODER_CUDA)
  if (f.device == "cuda") {
    smallcoder::CudaModel model(std::move(checkpoint), backend);
    model.warm_up();
    return serve(model, f, options);
  }
#endif
  smallcoder::Model model(std::move(checkpoint), backend);
  model.warm_up();
  return serve(model, f, options);
}

}  // namespace

int main(int argc, char** argv) { return cli::run_tool("generate", [&] { return run(argc, argv); }); }
