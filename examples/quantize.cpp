// quantize: write a GGUF file (llama.cpp's format and conventions, the tokenizer embedded)
// from a checkpoint (a model folder, .safetensors, .gguf or PyTorch .pt) or a random-weight
// variant, in f32, f16, bf16, q8_0 or q4_0.
#include <cstdio>
#include <optional>
#include <string>

#include "cli.hpp"
#include "model_source.hpp"
#include "smallcoder/model/save_gguf.hpp"

namespace {

struct Flags {
  std::string model, variant, dtype, output, tokenizer;
  long long seed = 0, threads = 0;
};

int run(int argc, char** argv) {
  Flags f;
  cli::Parser p("quantize",
                "Writes a model as a GGUF file that llama.cpp and smallcoder load: config, tokenizer and weights\n"
                "in one file, matrices in --dtype (rows that are not whole q8_0/q4_0 blocks keep their float type;\n"
                "norms are F32).");
  p.text("--model", &f.model, "PATH",
         "checkpoint to convert: a model folder, a .safetensors, .gguf or PyTorch .pt file");
  p.text("--variant", &f.variant, "NAME",
         "without --model, a SmallCoder variant with deterministic random weights (see --seed); with a .pt "
         "holding a bare state_dict, its architecture");
  p.text("--dtype", &f.dtype, "TYPE", "f32|f16|bf16|q8_0|q4_0 (required)");
  p.text("--output", &f.output, "FILE.gguf", "file to write (required)");
  p.integer("--seed", &f.seed, 0, (1ll << 62), "random-weight seed (default 0)");
  p.text("--tokenizer", &f.tokenizer, "PATH",
         "tokenizer.model to embed (default: the checkpoint's, or the shared one)");
  p.integer("--threads", &f.threads, 0, 1024, "CPU threads for converting (default: physical cores)");
  if (!p.parse(argc, argv)) return 0;
  if (f.model.empty() && f.variant.empty())
    throw cli::UsageError("give --model (a checkpoint) or --variant (random weights)");
  if (!f.variant.empty()) tools::check_variant_flag(f.variant);
  if (f.dtype.empty()) throw cli::UsageError("--dtype is required (f32, f16, bf16, q8_0 or q4_0)");
  if (f.output.size() <= 5 || f.output.compare(f.output.size() - 5, 5, ".gguf") != 0) {
    throw cli::UsageError("--output must name a .gguf file");
  }
  const smallcoder::DType dtype = *tools::parse_dtype_flag(f.dtype);

  const smallcoder::Checkpoint checkpoint = tools::load_model_choice(
      {f.model, f.variant, dtype, f.tokenizer, static_cast<std::uint64_t>(f.seed), static_cast<int>(f.threads)});
  smallcoder::write_gguf_model(f.output, checkpoint.config, checkpoint.weights, *checkpoint.tokenizer);
  std::fprintf(stderr, "quantize: wrote %s (%s, %.1f MB of weights) from %s\n", f.output.c_str(),
               smallcoder::dtype_name(dtype), checkpoint.weights.bytes() / 1e6, checkpoint.source.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return cli::run_tool("quantize", [&] { return run(argc, argv); }); }
