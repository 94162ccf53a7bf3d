// SPDX-License-Identifier: Apache-2.0
// The external CLI contract of `moestream eval` and `moestream generate`, checked against the
// transformers-made fixtures: the logits file is raw little-endian f32 [tokens, vocab], the trace
// is JSON lines {"pos","layer","experts","weights"} per (position, MoE layer) in top-k order.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "cli_runner.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "formats/test_files.h"

namespace moe {
namespace {

namespace fs = std::filesystem;

using testing::Slurp;

struct Scratch {
  Scratch() {
    char tmpl[] = "/tmp/moe_eval_XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~Scratch() { fs::remove_all(path); }
  std::string path;
};

std::string Join(const std::vector<int32_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s;
}

TEST(EvalCliTest, LogitsAndTraceFilesMatchTransformers) {
  const std::string dir = std::string(MOE_SOURCE_DIR) + "/tests/data/models/base";
  const auto meta = nlohmann::json::parse(Slurp(dir + "/reference/meta.json"));
  const auto prompt = meta["prompt"].get<std::vector<int32_t>>();
  Scratch s;
  const auto r = testing::RunCli({"eval", "--model", dir, "--tokens", Join(prompt), "--logits-out",
                                  s.path + "/logits.f32", "--trace-out", s.path + "/trace.jsonl"},
                                 s.path);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string got = Slurp(s.path + "/logits.f32"), ref = Slurp(dir + "/reference/logits.f32");
  ASSERT_EQ(got.size(), ref.size());
  const size_t V = meta["vocab_size"], n = prompt.size();
  std::vector<float> g(n * V), h(n * V);
  std::memcpy(g.data(), got.data(), got.size());
  std::memcpy(h.data(), ref.data(), ref.size());
  for (size_t p = 0; p < n; ++p) {
    float mx = 0, diff = 0;
    for (size_t i = 0; i < V; ++i) {
      mx = std::max(mx, std::fabs(h[p * V + i]));
      diff = std::max(diff, std::fabs(h[p * V + i] - g[p * V + i]));
    }
    EXPECT_LE(diff, 1e-3f * mx) << "position " << p;
  }
  // Trace: same (pos, layer) rows as HF's, no line for the dense layer 1, experts as sets.
  std::istringstream ours(Slurp(s.path + "/trace.jsonl")), theirs(Slurp(dir + "/reference/trace.jsonl"));
  std::string a, b;
  size_t rows = 0;
  while (std::getline(theirs, b)) {
    ASSERT_TRUE(std::getline(ours, a));
    const auto ja = nlohmann::json::parse(a), jb = nlohmann::json::parse(b);
    EXPECT_EQ(ja["pos"], jb["pos"]);
    EXPECT_EQ(ja["layer"], jb["layer"]);
    EXPECT_NE(ja["layer"], 1);
    const auto ea = ja["experts"].get<std::vector<int>>(), eb = jb["experts"].get<std::vector<int>>();
    EXPECT_EQ(std::set<int>(ea.begin(), ea.end()), std::set<int>(eb.begin(), eb.end()));
    const auto wa = ja["weights"].get<std::vector<double>>();
    ASSERT_EQ(wa.size(), ea.size());
    for (size_t i = 1; i < wa.size(); ++i) EXPECT_GE(wa[i - 1], wa[i]);  // top-k order
    ++rows;
  }
  EXPECT_FALSE(std::getline(ours, a));
  EXPECT_GT(rows, 0u);
}

TEST(EvalCliTest, GenerateGreedyMatchesTransformers) {
  const std::string dir = std::string(MOE_SOURCE_DIR) + "/tests/data/models/tied";
  const auto meta = nlohmann::json::parse(Slurp(dir + "/reference/meta.json"));
  Scratch s;
  const auto r = testing::RunCli({"generate", "--model", dir, "--tokens",
                                  Join(meta["prompt"].get<std::vector<int32_t>>()), "-n",
                                  std::to_string(meta["greedy"].size()), "--ignore-eos"},
                                 s.path);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, Join(meta["greedy"].get<std::vector<int32_t>>()) + "\n");
}

// --weight-layout rows|tiles: the same logits file, byte for byte; anything else is a usage
// error naming the flag.
TEST(EvalCliTest, WeightLayoutsWriteTheSameLogits) {
  const std::string dir = std::string(MOE_SOURCE_DIR) + "/tests/data/models/base";
  const auto meta = nlohmann::json::parse(Slurp(dir + "/reference/meta.json"));
  const std::string prompt = Join(meta["prompt"].get<std::vector<int32_t>>());
  Scratch s;
  for (const char* layout : {"rows", "tiles"}) {
    const auto r = testing::RunCli({"eval", "--model", dir, "--tokens", prompt, "--logits-out",
                                    s.path + "/" + layout + ".f32", "--weight-layout", layout},
                                   s.path);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  const std::string rows = Slurp(s.path + "/rows.f32");
  EXPECT_FALSE(rows.empty());
  EXPECT_TRUE(rows == Slurp(s.path + "/tiles.f32"));
  const auto r = testing::RunCli({"eval", "--model", dir, "--tokens", "1", "--weight-layout",
                                  "cols"}, s.path);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--weight-layout 'cols': expected tiles or rows"), std::string::npos)
      << r.err;
}

TEST(EvalCliTest, BadRequestsGetUsageErrors) {
  const std::string dir = std::string(MOE_SOURCE_DIR) + "/tests/data/models/base";
  Scratch s;
  auto r = testing::RunCli({"eval", "--model", dir, "--tokens", "1,99999", "--logits-out",
                            s.path + "/x"}, s.path);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("token id 99999"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(s.path + "/x"));  // no half-written output
  r = testing::RunCli({"eval", "--model", dir, "--tokens", "1,x"}, s.path);
  EXPECT_EQ(r.exit_code, 2);
  r = testing::RunCli({"generate", "--model", dir, "--tokens", "1", "--top-p", "2"}, s.path);
  EXPECT_EQ(r.exit_code, 2);
  r = testing::RunCli({"eval", "--model", dir, "--tokens", "1", "--logits-out", s.path + "/y",
                       "--expert-mask", "0-99"}, s.path);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  r = testing::RunCli({"frobnicate"}, s.path);
  EXPECT_EQ(r.exit_code, 2);
}

}  // namespace
}  // namespace moe

namespace moe {
namespace {

// generate --prompt on the bundled model: the prompt text encodes to the ids HF's tokenizer gave
// (recorded with the fixtures) and the greedy continuation decodes to HF's greedy tokens.
TEST(GenerateCliTest, PromptTextOnBundledModelMatchesTransformers) {
  const std::string root = MOE_SOURCE_DIR;
  const auto fx = nlohmann::json::parse(Slurp(root + "/tests/data/refmodel/fixtures.json"));
  auto tok = Tokenizer::Load(root + "/models/qwen3-moe-ref");
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  Scratch s;
  for (const auto& p : fx["passages"]) {
    const std::string text = p["text"];
    auto ids = tok->Encode(text);
    ASSERT_TRUE(ids.ok());
    EXPECT_EQ(*ids, p["token_ids"].get<std::vector<int32_t>>()) << p["name"];
    const auto greedy = p["greedy_continuation"].get<std::vector<int32_t>>();
    auto expected = tok->Decode(greedy, /*skip_special_tokens=*/true);
    ASSERT_TRUE(expected.ok());
    // No --model: the bundled model is the default.
    const auto r = testing::RunCli({"generate", "--prompt", text, "-n",
                                    std::to_string(greedy.size()), "--ignore-eos"},
                                   s.path);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, *expected + "\n") << p["name"];
  }
}

}  // namespace
}  // namespace moe

namespace moe {
namespace {

// chat reuses the KV cache across turns: its greedy second reply equals a fresh greedy
// generation from the whole rendered conversation.
TEST(ChatCliTest, SecondTurnWithReusedCacheEqualsFreshGeneration) {
  const std::string root = MOE_SOURCE_DIR;
  Scratch s;
  const std::string q1 = "What does \"lantern\" mean?", q2 = "And \"candle\"?";
  {
    std::ofstream in(s.path + "/in.txt");
    in << q1 << "\n" << q2 << "\n";
  }
  const auto r = testing::RunCli({"chat", "--no-think", "--temperature", "0", "-n", "24"}, s.path,
                                 s.path + "/in.txt");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::istringstream lines(r.out);
  std::string a1, a2;
  ASSERT_TRUE(std::getline(lines, a1));
  ASSERT_TRUE(std::getline(lines, a2));
  ASSERT_FALSE(a1.empty());
  std::vector<ChatMessage> conv = {{"user", q1, std::nullopt}, {"assistant", a1, std::nullopt},
                                   {"user", q2, std::nullopt}};
  const std::string rendered = RenderQwen3Chat(conv, {true, false});
  const auto g = testing::RunCli({"generate", "--prompt", rendered, "-n", "24"}, s.path);
  ASSERT_EQ(g.exit_code, 0) << g.err;
  EXPECT_EQ(g.out, a2 + "\n");
}

}  // namespace
}  // namespace moe
