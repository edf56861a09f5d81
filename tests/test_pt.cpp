// PyTorch .pt checkpoints as the original project's training scripts save them: the real
// smallcoder-nano and toy best_model files against PyTorch's logits and greedy text, the
// resident memory they cost (the optimizer state never mapped), a Q8_0 GGUF made from one,
// and checkpoints built here: f32/bf16, zip64, bare state_dicts with config.json or a
// variant, and every kind of mismatch (missing tensor, wrong shape, another architecture).
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "bench/memory.hpp"
#include "smallcoder/model/save_gguf.hpp"
#include "smallcoder/smallcoder.hpp"
#include "support/expect_error.hpp"
#include "support/golden.hpp"
#include "support/pt_writer.hpp"
#include "support/resident.hpp"
#include "support/small_model.hpp"
#include "support/test_data.hpp"

using namespace smallcoder;
using smallcoder::test::check_error;
using smallcoder::test::data_path;
using smallcoder::test::mib;
namespace fs = std::filesystem;

namespace {

const std::string kNanoPt = "models/seed-pt/smallcoder-nano_final.pt";
const std::string kToyPt = "models/seed-pt/toy_best_model.pt";

LoadOptions shared_tokenizer() {
  LoadOptions o;
  o.tokenizer_path = data_path("tokenizer/tokenizer.model");
  return o;
}

ModelConfig small_config() { return test::small_config(true, "pt-test"); }

GenerateOptions greedy(int max_tokens) {
  GenerateOptions o;
  o.max_tokens = max_tokens;
  o.sampling.greedy = true;
  return o;
}

// A scratch folder for .pt files built by a test, removed afterwards.
struct ScratchDir {
  std::string dir;
  explicit ScratchDir(const std::string& name) : dir(fs::absolute(test::scratch_path("pt_" + name)).string()) {
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  ~ScratchDir() {
    std::error_code ignored;
    fs::remove_all(dir, ignored);
  }
  std::string write(const std::string& file, const std::string& bytes) const {
    test::write_file(dir + "/" + file, bytes);
    return dir + "/" + file;
  }
};

std::vector<float> last_logits(Model& model, const std::vector<std::int32_t>& ids) {
  model.transformer().reset();
  const float* logits = model.transformer().forward(ids.data(), static_cast<int>(ids.size()));
  return std::vector<float>(logits, logits + model.config().vocab_size);
}

// Relative L2 distance of the model's last-position logits from PyTorch's for a golden case.
double golden_error(Model& model, const test::GoldenCase& g) {
  const std::vector<float> logits = last_logits(model, g.ids);
  return test::relative_l2(logits.data(), g.last_logits.data(), g.last_logits.size());
}

const std::vector<std::int32_t> kPrompt = {1, 822, 18755, 265, 21566, 29898, 29876, 1125};

}  // namespace

// First in the file, so that no other model of this process has paged in anything yet.
// Loading maps the weights (populating the mappings: page cache, not a copy); generating
// reads them from there without a copy (as tests/test_memory.cpp shows for safetensors).
TEST_CASE("nano .pt: resident memory after loading, besides the mapped weights, <= weights + KV cache + 10%; no copy") {
  const std::string path = data_path(kNanoPt);
  const std::size_t before = bench::rss_now_bytes();
  Model model = Model::load(path, shared_tokenizer());
  const std::size_t after_load = bench::rss_now_bytes();
  const std::size_t weights = model.checkpoint().weights.bytes(), kv = model.transformer().backend().kv_cache_bytes();
  // The mappings are populated when made (page cache, not a copy); what loading adds
  // besides their pages is bounded as if the weights had not been touched.
  const std::size_t increase = after_load > before ? after_load - before : 0;
  const std::size_t populated =
      bench::weight_residency(model.config(), model.checkpoint().weights, path).mapped_resident;
  const std::size_t outside = increase > populated ? increase - populated : 0;
  const double bound = 1.1 * static_cast<double>(weights + kv);
  test::check_resident(static_cast<double>(outside) <= bound,
                       "VmRSS increase outside the mappings <= 1.1 x (weights + KV cache)");

  CHECK(model.generate("def add(a, b):", greedy(8)).ids.size() == 8);
  const std::size_t after = bench::rss_now_bytes();
  const bench::WeightResidency r = bench::weight_residency(model.config(), model.checkpoint().weights, path);
  const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  const std::size_t other_growth = after > after_load + r.mapped_resident ? after - after_load - r.mapped_resident : 0;
  MESSAGE("nano .pt (f32): weights " << mib(weights) << " MiB, KV cache " << mib(kv) << " MiB; VmRSS " << mib(before)
                                     << " MiB -> " << mib(after_load) << " MiB after loading (+" << mib(increase)
                                     << ", " << mib(populated) << " MiB of it mapped pages; +" << mib(outside)
                                     << " outside, bound " << mib(static_cast<std::size_t>(bound)) << ") -> "
                                     << mib(after) << " MiB after generating, of which " << mib(r.mapped_resident)
                                     << " MiB are pages of the .pt's mappings; other growth " << mib(other_growth)
                                     << " MiB");
  CHECK(r.anonymous == 0);  // every weight is a view into a mapping of the .pt file
  CHECK(r.mapped_resident <= weights + 2 * page * bench::file_mappings(path).size());
  test::check_resident(other_growth < weights / 4, "growth outside the mappings while generating < weights / 4");
}

TEST_CASE("nano .pt: config from the pickled dict, weights as stored, PyTorch's logits and greedy text") {
  Model model = Model::load(data_path(kNanoPt), shared_tokenizer());
  // The pickled SmallCoderConfig says what smallcoder-nano's config.json says.
  const auto fields = [](const ModelConfig& c) {
    return std::make_tuple(c.hidden_size, c.intermediate_size, c.num_layers, c.num_heads, c.num_kv_heads, c.head_dim,
                           c.vocab_size, c.max_context, c.rms_norm_eps, c.rope_theta, c.tie_word_embeddings, c.bos_id,
                           c.eos_id, c.pad_id);
  };
  CHECK((fields(model.config()) == fields(load_hf_config(data_path("models/smallcoder-nano/config.json")))));
  CHECK(model.config().name == "smallcoder-nano");
  CHECK(model.checkpoint().format == "pt");
  CHECK(model.checkpoint().dtype == DType::f32);

  double worst = 0;
  int greedy_equal = 0;
  const std::vector<test::GoldenCase> golden = test::load_golden("smallcoder-nano");
  for (const test::GoldenCase& g : golden) {
    CAPTURE(g.text);
    const double err = golden_error(model, g);
    worst = std::max(worst, err);
    CHECK(err < 1e-4);
    const GenerationResult r = generate_from_ids(model.transformer(), model.tokenizer(), g.ids, greedy(48));
    CHECK(r.ids == g.greedy_ids);
    CHECK(model.tokenizer().decode(r.ids) == g.greedy_text);
    greedy_equal += r.ids == g.greedy_ids;
  }
  MESSAGE("nano .pt: worst last-position logits rel L2 " << worst << " over " << golden.size()
                                                         << " cases; greedy ids and text equal on " << greedy_equal);
}

TEST_CASE("toy best_model.pt: PyTorch's logits; the optimizer state is never mapped") {
  const std::string path = data_path(kToyPt);
  const std::size_t before = bench::rss_now_bytes();
  Model model = Model::load(path, shared_tokenizer());
  const JsonValue golden = parse_json(test::read_file(data_path("models/seed-pt/toy_golden.json")), "toy_golden.json");
  const std::vector<std::int32_t> ids = test::int_list(golden.at("ids", "toy"), "ids");
  const std::string expected_bytes = test::read_file(data_path("models/seed-pt/toy_last_logits.f32"));
  REQUIRE(expected_bytes.size() == 32000 * sizeof(float));
  std::vector<float> expected(32000);
  std::memcpy(expected.data(), expected_bytes.data(), expected_bytes.size());
  const std::vector<float> logits = last_logits(model, ids);
  const double err = test::relative_l2(logits.data(), expected.data(), expected.size());
  MESSAGE("toy .pt: last-position logits rel L2 " << err);
  CHECK(err < 1e-4);
  const std::size_t after = bench::rss_now_bytes();

  // The file ranges of the optimizer's storages (every storage no state_dict tensor uses)
  // against the file ranges this process has mapped: only page-rounding slivers may meet.
  const TorchCheckpoint pt = TorchCheckpoint::open(path);
  REQUIRE(pt.is_training_checkpoint());
  std::set<std::size_t> model_storages;
  for (const auto& entry : pt.state_dict()) {
    REQUIRE(entry.second->kind == PickleValue::Kind::tensor);
    model_storages.insert(pt.pickle().tensors()[entry.second->index].storage);
  }
  const auto page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  const std::vector<bench::FileMapping> mappings = bench::file_mappings(path);
  std::uint64_t optimizer_bytes = 0, overlap = 0, mapped = 0, resident = 0;
  for (const bench::FileMapping& m : mappings) {
    mapped += m.end - m.begin;
    resident += m.resident;
  }
  for (std::size_t i = 0; i < pt.pickle().storages().size(); ++i) {
    if (model_storages.count(i) != 0) continue;
    const ZipEntry& entry = pt.storage_entry(pt.pickle().storages()[i]);
    const std::uint64_t begin = pt.archive().data_offset(entry), end = begin + entry.size;
    optimizer_bytes += entry.size;
    for (const bench::FileMapping& m : mappings) {
      const std::uint64_t from = std::max(begin, m.offset), to = std::min(end, m.offset + (m.end - m.begin));
      if (from < to) overlap += to - from;
    }
  }
  const std::size_t weights = model.checkpoint().weights.bytes();
  const std::uint64_t slack = 2 * page * model_storages.size();  // a page at each end of each weight's mapping
  MESSAGE("toy .pt: file " << mib(fs::file_size(path)) << " MiB, weights " << mib(weights) << " MiB, optimizer state "
                           << mib(optimizer_bytes) << " MiB in "
                           << pt.pickle().storages().size() - model_storages.size() << " storages; mapped "
                           << mib(mapped) << " MiB in " << mappings.size() << " mappings, " << mib(resident)
                           << " MiB resident; optimizer bytes inside a mapping: " << overlap << "; VmRSS +"
                           << mib(after - std::min(before, after)) << " MiB for loading and one forward pass");
  CHECK(optimizer_bytes > 2 * weights - 1);  // AdamW's two moments (and a step per parameter)
  CHECK(mappings.size() == model_storages.size());
  CHECK(mapped <= weights + slack);
  CHECK(overlap <= slack);
  test::check_resident(after - std::min(before, after) < weights + optimizer_bytes / 2,
                       "VmRSS increase < weights + half the optimizer state");
}

TEST_CASE("quantize: nano .pt to a Q8_0 GGUF that generates what the .pt does at q8_0") {
  LoadOptions q8 = shared_tokenizer();
  q8.dtype = DType::q8_0;
  Model pt = Model::load(data_path(kNanoPt), q8);
  const std::string path = test::scratch_path("nano_pt_q8_0.gguf");
  write_gguf_model(path, pt.config(), pt.checkpoint().weights, pt.tokenizer());
  Model gguf = Model::load(path);
  CHECK(gguf.checkpoint().weights.layers[0].wq.dtype == DType::q8_0);
  int equal = 0;
  double worst = 0;
  const std::vector<test::GoldenCase> golden = test::load_golden("smallcoder-nano");
  for (const test::GoldenCase& g : golden) {
    CAPTURE(g.text);
    worst = std::max(worst, golden_error(gguf, g));
    const GenerationResult a = generate_from_ids(pt.transformer(), pt.tokenizer(), g.ids, greedy(32));
    const GenerationResult b = generate_from_ids(gguf.transformer(), gguf.tokenizer(), g.ids, greedy(32));
    equal += a.ids == b.ids;
  }
  fs::remove(path);
  MESSAGE("nano .pt -> Q8_0 GGUF: greedy 32-token text equal to the .pt at q8_0 on "
          << equal << "/" << golden.size() << ", logits rel L2 against PyTorch " << worst);
  CHECK(worst < 3e-2);  // the Q8_0 bound of the GGUF tests
  CHECK(equal >= 8);
}

TEST_CASE(".pt built here: f32 and bf16, zip64, any folder name: the same logits as the weights themselves") {
  const ScratchDir scratch("built");
  scratch.write("tokenizer.model", test::read_file(data_path("tokenizer/tokenizer.model")));
  // For the bare state_dicts; the training checkpoint's pickled config comes first.
  scratch.write("config.json",
                "{\"hidden_size\": 32, \"intermediate_size\": 72, \"num_hidden_layers\": 2, "
                "\"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"vocab_size\": 32000, "
                "\"max_position_embeddings\": 64, \"tie_word_embeddings\": true}");
  const ModelConfig config = small_config();
  for (DType dtype : {DType::f32, DType::bf16}) {
    CAPTURE(dtype_name(dtype));
    auto tokenizer = std::make_shared<const Tokenizer>(Tokenizer::from_file(scratch.dir + "/tokenizer.model"));
    Model reference(random_checkpoint(config, 5, dtype, tokenizer, 1));
    const std::vector<float> expected = last_logits(reference, kPrompt);
    std::vector<test::PtTensor> tensors = test::pt_tensors(config, random_weights(config, 5, dtype, 1));
    const std::string training =
        scratch.write("best_model.pt", test::training_checkpoint("best_model", config, tensors, true));
    const std::string zip64 = scratch.write("zip64.pth", test::bare_state_dict("archive", tensors, true));
    // torch saves a tied head under both names, one storage behind them.
    tensors.push_back({"lm_head.weight", tensors.front().storage_type, tensors.front().shape, "", "0"});
    const std::string tied = scratch.write("tied.pt", test::bare_state_dict("tied", tensors));
    for (const std::string& file : {training, zip64, tied}) {
      CAPTURE(file);
      Model model = Model::load(file);
      CHECK(model.checkpoint().dtype == dtype);
      CHECK(model.config().name == (file == training ? "pt-test" : file == zip64 ? "zip64" : "tied"));
      const std::vector<float> logits = last_logits(model, kPrompt);
      CHECK(std::memcmp(logits.data(), expected.data(), logits.size() * sizeof(float)) == 0);
    }
  }
}

TEST_CASE(".pt mismatches: missing tensor, wrong shape, another architecture, no config, no tokenizer") {
  const ScratchDir scratch("bad");
  const ModelConfig config = small_config();
  const ModelWeights weights = random_weights(config, 5, DType::f32, 1);
  const std::vector<test::PtTensor> tensors = test::pt_tensors(config, weights);
  const LoadOptions options = shared_tokenizer();

  SUBCASE("a missing tensor") {
    std::vector<test::PtTensor> t = tensors;
    t.erase(t.end() - 1);  // model.norm.weight
    const std::string path = scratch.write("missing.pt", test::training_checkpoint("missing", config, t));
    check_error([&] { load_checkpoint(path, options); }, {path, "missing tensor 'model.norm.weight'"});
  }
  SUBCASE("a tensor of the wrong shape") {
    std::vector<test::PtTensor> t = tensors;
    for (test::PtTensor& x : t) {
      if (x.name == "model.layers.1.mlp.down_proj.weight") x.shape = {72, 32};
    }
    const std::string path = scratch.write("shape.pt", test::training_checkpoint("shape", config, t));
    check_error([&] { load_checkpoint(path, options); },
                {path, "'model.layers.1.mlp.down_proj.weight' has shape [72, 32] but the config needs [32, 72]"});
  }
  SUBCASE("another architecture's state_dict (GPT-2's names)") {
    std::vector<test::PtTensor> t;
    for (const char* name :
         {"transformer.wte.weight", "transformer.wpe.weight", "transformer.h.0.attn.c_attn.weight"}) {
      t.push_back({name, "FloatStorage", {4, 4}, std::string(64, '\0'), ""});
    }
    const std::string path = scratch.write("gpt2.pt", test::training_checkpoint("gpt2", config, t));
    check_error([&] { load_checkpoint(path, options); }, {path, "missing tensor 'model.embed_tokens.weight'",
                                                          "3 entries: 'transformer.wte.weight'", "SmallCoder/Llama"});
  }
  SUBCASE("a state_dict with more layers than its config") {
    ModelConfig deeper = config;
    deeper.num_layers = 3;
    const std::vector<test::PtTensor> t = test::pt_tensors(deeper, random_weights(deeper, 5, DType::f32, 1));
    const std::string path = scratch.write("deeper.pt", test::training_checkpoint("deeper", config, t));
    check_error([&] { load_checkpoint(path, options); },
                {path, "'model.layers.2.input_layernorm.weight'", "a 2-layer model of hidden size 32 does not have"});
  }
  SUBCASE("a bare state_dict without a config, then with a variant of another size") {
    const std::string path = scratch.write("bare.pt", test::bare_state_dict("bare", tensors));
    check_error([&] { load_checkpoint(path, options); }, {path, "holds no config", "--variant"});
    LoadOptions tiny = options;
    tiny.variant = "SmallCoder-Tiny";
    check_error([&] { load_checkpoint(path, tiny); },
                {path, "'model.embed_tokens.weight' has shape [32000, 32] but the config needs [32000, 768]"});
    tiny.variant = "SmallCoder-Huge";
    check_error([&] { load_checkpoint(path, tiny); }, {"unknown variant 'SmallCoder-Huge'"});
  }
  SUBCASE("an untied config needs lm_head.weight; a tied one accepts it only as the embedding itself") {
    ModelConfig untied = config;
    untied.tie_word_embeddings = false;
    const std::string path = scratch.write("untied.pt", test::training_checkpoint("untied", untied, tensors));
    check_error([&] { load_checkpoint(path, options); }, {path, "missing tensor 'lm_head.weight'"});
    std::vector<test::PtTensor> with_head = tensors;
    with_head.push_back({"lm_head.weight", "FloatStorage", {32000, 32}, tensors.front().bytes, ""});
    const std::string separate = scratch.write("head.pt", test::training_checkpoint("head", config, with_head));
    check_error([&] { load_checkpoint(separate, options); }, {separate, "'lm_head.weight'", "does not have"});
  }
  SUBCASE("no tokenizer beside the file and none given") {
    const std::string path = scratch.write("alone.pt", test::training_checkpoint("alone", config, tensors));
    check_error([&] { load_checkpoint(path); }, {path, "no tokenizer", "--tokenizer"});
  }
  SUBCASE("a pickled config the runtime cannot run") {
    std::string bytes = test::training_checkpoint("scaled", config, tensors);
    const std::size_t at = bytes.find("rope_scalingN");
    REQUIRE(at != std::string::npos);
    bytes[at + 12] = '\x88';  // rope_scaling: True instead of None
    const std::string path = scratch.write("scaled.pt", bytes);
    check_error([&] { load_checkpoint(path, options); }, {path + ": config", "rope_scaling", "not supported"});
  }
}
