// Zero-copy loading: smallcoder-nano (bf16) loaded and turned into a Model costs at most
// the file, the KV cache and 10% more in resident memory, its weights are views into the
// file's mapping, and computing with them pages in the mapping instead of a copy.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/stat.h>

#include "smallcoder/smallcoder.hpp"
#include "support/resident.hpp"
#include "support/test_data.hpp"

using namespace smallcoder;
using smallcoder::test::check_resident;
using smallcoder::test::mib;

namespace {

// VmRSS of this process in bytes (/proc/self/status reports kB).
std::size_t resident_bytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  }
  FAIL("no VmRSS in /proc/self/status");
  return 0;
}

// The mapping of this process that contains `address`, from /proc/self/smaps: its range,
// the file it maps, and its resident bytes (Rss).
struct Mapping {
  std::uintptr_t begin = 0, end = 0;
  std::string path;
  std::size_t resident = 0;
};

Mapping mapping_of(const void* address) {
  const auto target = reinterpret_cast<std::uintptr_t>(address);
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  Mapping m;
  bool inside = false;
  while (std::getline(smaps, line)) {
    std::uintptr_t begin = 0, end = 0;
    char perms[8] = {};
    int path_at = -1;
    // Range lines: "begin-end perms offset dev inode [path]"; field lines start "Name:".
    if (std::sscanf(line.c_str(), "%lx-%lx %7s %*x %*s %*u %n", &begin, &end, perms, &path_at) == 3 && path_at > 0) {
      if (inside) return m;
      inside = target >= begin && target < end;
      if (inside) m = Mapping{begin, end, line.substr(static_cast<std::size_t>(path_at)), 0};
    } else if (inside && line.rfind("Rss:", 0) == 0) {
      m.resident = std::stoull(line.substr(4)) * 1024;
    }
  }
  if (!inside) FAIL("no mapping contains the address");
  return m;
}

}  // namespace

TEST_CASE("memory: loading nano maps the file (populated, not copied) and adds at most file + KV cache + 10%") {
  const std::string dir = test::data_path("models/smallcoder-nano");
  struct stat st {};
  REQUIRE(::stat((dir + "/model.safetensors").c_str(), &st) == 0);
  const std::size_t file_bytes = static_cast<std::size_t>(st.st_size);

  const std::size_t before = resident_bytes();
  Model model = Model::load(dir);
  const std::size_t after_load = resident_bytes();
  const std::size_t kv_bytes = model.transformer().backend().kv_cache_bytes();
  const ModelConfig& c = model.config();
  // K and V for every layer, kv head, position and head dimension, in fp32.
  CHECK(kv_bytes == 2ull * c.num_layers * c.num_kv_heads * c.max_context * c.head_dim * sizeof(float));

  // The mapping is populated when made (the file's page cache, shared, not a copy): what
  // loading adds besides its pages is bounded as if the weights had not been touched.
  const std::size_t increase = after_load > before ? after_load - before : 0;
  const std::size_t populated = mapping_of(model.checkpoint().weights.embed.data).resident;
  const std::size_t outside = increase > populated ? increase - populated : 0;
  const double bound = 1.1 * static_cast<double>(file_bytes + kv_bytes);
  MESSAGE("model.safetensors " << mib(file_bytes) << " MiB, KV cache " << mib(kv_bytes) << " MiB; VmRSS "
                               << mib(before) << " -> " << mib(after_load) << " MiB: +" << mib(increase) << " MiB, of which "
                               << mib(populated) << " MiB the mapping's pages; outside it +" << mib(outside)
                               << " MiB (bound " << mib(static_cast<std::size_t>(bound)) << " MiB)");
  check_resident(static_cast<double>(outside) <= bound, "VmRSS increase outside the mapping <= 1.1 x (file + KV cache)");

  // Zero copy: every weight view points into one read-only mapping of model.safetensors.
  const Checkpoint& ckpt = model.checkpoint();
  const Mapping map = mapping_of(ckpt.weights.embed.data);
  MESSAGE("embed data " << static_cast<const void*>(ckpt.weights.embed.data) << " lies in mapping "
                        << reinterpret_cast<void*>(map.begin) << "-" << reinterpret_cast<void*>(map.end) << " of "
                        << map.path);
  CHECK(map.path.find("smallcoder-nano/model.safetensors") != std::string::npos);
  CHECK(map.end - map.begin >= file_bytes);
  CHECK(map.end - map.begin < file_bytes + 4096);
  auto inside = [&](const TensorView& v) {
    const auto at = reinterpret_cast<std::uintptr_t>(v.data);
    return at >= map.begin && at + v.bytes() <= map.end;
  };
  CHECK(inside(ckpt.weights.lm_head));
  for (const TensorView* t : ckpt.weights.tensors()) CHECK(inside(*t));

  // Computing reads the weights from the mapping: its pages become resident (up to the
  // whole file), while the rest of the process grows by no more than activations need.
  const std::size_t mapped_before = map.resident;
  const GenerationResult r = model.generate("def add(a, b):", [] {
    GenerateOptions o;
    o.max_tokens = 8;
    o.sampling.greedy = true;
    return o;
  }());
  CHECK(r.ids.size() == 8);
  const std::size_t after_generate = resident_bytes();
  const std::size_t mapped_after = mapping_of(ckpt.weights.embed.data).resident;
  MESSAGE("mapping Rss " << mib(mapped_before) << " -> " << mib(mapped_after) << " MiB after generating; VmRSS "
                         << mib(after_generate) << " MiB: +" << mib(after_generate - before) << " MiB since before loading");
  CHECK(mapped_after <= file_bytes + 4096);
  // The layer matrices (everything but most of the embedding rows) were read from the mapping.
  CHECK(mapped_after >= ckpt.weights.bytes() - ckpt.weights.embed.bytes());
  const std::size_t other_growth = after_generate > after_load + mapped_after - mapped_before
                                       ? after_generate - after_load - (mapped_after - mapped_before)
                                       : 0;
  MESSAGE("growth outside the mapping while generating: " << mib(other_growth) << " MiB");
  // A copy of the weights would be at least the whole file.
  check_resident(other_growth < file_bytes / 4, "growth outside the mapping < a quarter of the file");
}
