// SPDX-License-Identifier: Apache-2.0
// Resource bounds (bad-inputs.md C4, P1; issue 6 item 7): sizes declared by a model that would
// need more memory than the machine has are refused with exit 5 before anything is allocated
// (the child's peak RSS is checked), and an expert cache budget above MemAvailable is refused
// with a message naming both numbers.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "cli_runner.h"
#include "formats/json.h"
#include "formats/test_files.h"

namespace moe {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

const fs::path kTied = fs::path(MOE_SOURCE_DIR) / "tests/data/models/tied";

uint64_t MeminfoBytes(const char* key) {
  std::ifstream f("/proc/meminfo");
  std::string k;
  uint64_t kb = 0;
  std::string unit;
  while (f >> k >> kb >> unit) {
    if (k == std::string(key) + ":") return kb * 1024;
  }
  return 0;
}

std::string Le64(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return s;
}

// Rewrites the tied fixture into `out`: `shape_fn(name, shape)` returns the new shape, or an
// empty optional to drop the tensor; `cfg_fn` edits config.json. Offsets are recomputed and the
// data is left as a hole of a sparse file (nothing is written; the file system reports zeros).
using ShapeFn = std::function<std::optional<Json>(const std::string&, const Json&)>;
void WriteModel(const fs::path& out, const ShapeFn& shape_fn,
                const std::function<void(Json&)>& cfg_fn) {
  fs::create_directories(out);
  std::ifstream in(kTied / "model.safetensors", std::ios::binary);
  char len8[8];
  in.read(len8, 8);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = n << 8 | static_cast<uint8_t>(len8[i]);
  std::string header(n, '\0');
  in.read(header.data(), static_cast<std::streamsize>(n));
  Json h = Json::parse(header);
  Json out_h = Json::object();
  uint64_t at = 0;
  for (auto& [name, t] : h.items()) {
    if (name == "__metadata__") continue;
    ASSERT_EQ(t["dtype"], "BF16") << name;
    std::optional<Json> shape = shape_fn(name, t["shape"]);
    if (!shape) continue;
    uint64_t elems = 1;
    for (int64_t d : *shape) elems *= static_cast<uint64_t>(d);
    out_h[name] = {{"dtype", "BF16"}, {"shape", *shape}, {"data_offsets", {at, at + 2 * elems}}};
    at += 2 * elems;
  }
  const std::string hs = out_h.dump();
  {
    std::ofstream f(out / "model.safetensors", std::ios::binary);
    const std::string prefix = Le64(hs.size()) + hs;
    f.write(prefix.data(), static_cast<std::streamsize>(prefix.size()));
  }
  fs::resize_file(out / "model.safetensors", 8 + hs.size() + at);  // sparse data
  std::ifstream cin(kTied / "config.json");
  Json cfg = Json::parse(cin);
  cfg_fn(cfg);
  std::ofstream(out / "config.json") << cfg.dump(1);
}

// The tied fixture scaled to hidden H and vocab V: every dim 48 (hidden, unique in that model)
// → H and 320 (vocab) → V.
void WriteScaledModel(const fs::path& out, int64_t H, int64_t V) {
  WriteModel(
      out,
      [&](const std::string&, const Json& shape) -> std::optional<Json> {
        Json s = Json::array();
        for (int64_t d : shape) s.push_back(d == 48 ? H : d == 320 ? V : d);
        return s;
      },
      [&](Json& cfg) {
        cfg["hidden_size"] = H;
        cfg["vocab_size"] = V;
      });
}

testing::CliResult Generate(const fs::path& model, const TempDir& dir,
                            std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {"generate", "--model", model.string(), "--tokens", "1",
                                   "-n", "1"};
  args.insert(args.end(), extra.begin(), extra.end());
  return testing::RunCli(args, dir.path().string());
}

void ExpectOneLine(const testing::CliResult& r, int code, const std::vector<std::string>& parts) {
  EXPECT_EQ(r.exit_code, code) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  for (const std::string& p : parts) {
    EXPECT_NE(r.err.find(p), std::string::npos) << "'" << p << "' not in: " << r.err;
  }
}

TEST(BindErrors, B5MissingRequiredTensorIsNamed) {
  TempDir dir;
  const fs::path model = dir.path() / "m";
  const std::string gone = "model.layers.3.mlp.experts.5.down_proj.weight";
  WriteModel(
      model,
      [&](const std::string& name, const Json& shape) -> std::optional<Json> {
        if (name == gone) return std::nullopt;
        return shape;
      },
      [](Json&) {});
  ExpectOneLine(Generate(model, dir), 3, {model.string(), "required tensor(s) missing", gone});
}

TEST(BindErrors, B6ShapeDisagreeingWithConfigNamesBoth) {
  TempDir dir;
  const fs::path model = dir.path() / "m";
  const std::string bad = "model.layers.1.mlp.experts.2.gate_proj.weight";  // [24, 48]
  WriteModel(
      model,
      [&](const std::string& name, const Json& shape) -> std::optional<Json> {
        if (name == bad) return Json::array({23, 48});
        return shape;
      },
      [](Json&) {});
  ExpectOneLine(Generate(model, dir), 3, {bad, "[23, 48]", "[24, 48]", "expected from config"});
}

TEST(ResourceBounds, DenseWeightsLargerThanRamRefusedBeforeAllocation) {
  const uint64_t total = MeminfoBytes("MemTotal");
  ASSERT_GT(total, 0u) << "/proc/meminfo has no MemTotal";
  // Embedding [V, H] BF16 = 2 × RAM, with H at the config limit (2^16); V stays ≤ 2^24.
  const int64_t H = 65536;
  const int64_t V = static_cast<int64_t>(std::min<uint64_t>(2 * total / (2 * H) + 1, 1 << 24));
  ASSERT_GT(static_cast<uint64_t>(V) * H * 2, total) << "machine too large for this test's cap";
  TempDir dir;
  const fs::path model = dir.path() / "huge";
  WriteScaledModel(model, H, V);
  testing::CliResult r = Generate(model, dir);
  struct rusage ru {};
  getrusage(RUSAGE_CHILDREN, &ru);
  ExpectOneLine(r, 5, {model.string(), "dense weights need", "MemAvailable"});
  // Nothing near the declared size was touched (sanitizer builds start near 30-60 MB).
  EXPECT_LT(static_cast<uint64_t>(ru.ru_maxrss), 256u * 1024) << "peak RSS KiB of the child";
}

TEST(ResourceBounds, ExpertBudgetAboveMemAvailableIsRefused) {
  TempDir dir;
  ExpectOneLine(Generate(kTied, dir, {"--expert-cache", "1048576G"}), 5,
                {"--expert-cache 1048576G", "MemAvailable"});
}

// F12's bound is a flag; out of range → usage error (exit 2, the message and a pointer to
// --help), also in all-resident mode.
TEST(ResourceBounds, IoTimeoutOutOfRangeIsAUsageError) {
  TempDir dir;
  for (const char* v : {"0", "-5", "86400001"}) {
    for (bool streaming : {false, true}) {
      std::vector<std::string> extra = {"--io-timeout-ms", v};
      if (streaming) extra.insert(extra.end(), {"--expert-cache", "auto"});
      const testing::CliResult r = Generate(kTied, dir, extra);
      EXPECT_EQ(r.exit_code, 2) << r.err;
      const std::string want = std::string("--io-timeout-ms ") + v + ": expected 1..86400000";
      EXPECT_EQ(r.err.substr(0, r.err.find('\n')).find(want) != std::string::npos, true)
          << r.err;
    }
  }
}

// The expert I/O flags: thread count and device reads at once, out of range → usage error.
TEST(ResourceBounds, IoThreadsAndDepthOutOfRangeAreUsageErrors) {
  TempDir dir;
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--io-threads", "0"}, "--io-threads 0: expected 1..16"},
      {{"--io-threads", "17"}, "--io-threads 17: expected 1..16"},
      {{"--io-depth", "-1"}, "--io-depth -1: expected 0..16"},
      {{"--io-depth", "17"}, "--io-depth 17: expected 0..16"},
  };
  for (const auto& [flags, want] : cases) {
    std::vector<std::string> extra = flags;
    extra.insert(extra.end(), {"--expert-cache", "auto"});
    const testing::CliResult r = Generate(kTied, dir, extra);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.substr(0, r.err.find('\n')).find(want), std::string::npos) << r.err;
  }
}

}  // namespace
}  // namespace moe
