// SPDX-License-Identifier: Apache-2.0
// The engine against transformers itself: tests/data/models/* were written by
// scripts/make_fixtures.py with HF transformers, which also recorded float32 logits, router
// top-k and a greedy continuation for each. Checks: logits within 1e-3 × max|HF logit| at every
// position, identical top-k expert sets at every (position, MoE layer), identical greedy tokens,
// and decode through the KV cache bit-identical to recomputing the prefix.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "runtime/engine.h"
#include "runtime/generator.h"
#include "runtime/session.h"
#include "util/thread_pool.h"

namespace moe {
namespace {

std::string ModelDir(const std::string& name) {
  return std::string(MOE_SOURCE_DIR) + "/tests/data/models/" + name;
}

nlohmann::json ReadJson(const std::string& path) {
  std::ifstream f(path);
  EXPECT_TRUE(f.good()) << path;
  return nlohmann::json::parse(f);
}

std::vector<float> ReadF32(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f.good()) << path;
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string s = ss.str();
  std::vector<float> v(s.size() / 4);
  std::memcpy(v.data(), s.data(), v.size() * 4);
  return v;
}

std::unique_ptr<Engine> OpenOrDie(const std::string& dir) {
  EngineOptions o;
  o.model_dir = dir;
  auto e = Engine::Open(o);
  EXPECT_TRUE(e.ok()) << e.status().message();
  return e.ok() ? std::move(e).value() : nullptr;
}

class HfFixtureTest : public ::testing::TestWithParam<std::string> {};

TEST_P(HfFixtureTest, LogitsRoutingAndGreedyMatchTransformers) {
  const std::string dir = ModelDir(GetParam());
  auto engine = OpenOrDie(dir);
  ASSERT_TRUE(engine);
  const nlohmann::json meta = ReadJson(dir + "/reference/meta.json");
  const std::vector<int32_t> prompt = meta["prompt"].get<std::vector<int32_t>>();
  const std::vector<float> ref = ReadF32(dir + "/reference/logits.f32");
  const size_t V = static_cast<size_t>(engine->config().vocab_size);
  ASSERT_EQ(ref.size(), prompt.size() * V);

  ThreadPool pool(2);
  Session session(*engine, pool, {});
  std::vector<RouteRecord> trace;
  session.set_route_recorder(&trace);
  std::vector<float> logits(prompt.size() * V);
  ASSERT_TRUE(session.Forward(prompt, LogitsMode::kAll, logits.data()).ok());

  for (size_t p = 0; p < prompt.size(); ++p) {
    float max_ref = 0, max_diff = 0;
    for (size_t i = 0; i < V; ++i) {
      max_ref = std::max(max_ref, std::fabs(ref[p * V + i]));
      max_diff = std::max(max_diff, std::fabs(ref[p * V + i] - logits[p * V + i]));
    }
    EXPECT_LE(max_diff, 1e-3f * max_ref) << "position " << p;
  }

  std::ifstream tf(dir + "/reference/trace.jsonl");
  std::string line;
  size_t n_rows = 0;
  while (std::getline(tf, line)) {
    const auto row = nlohmann::json::parse(line);
    const int64_t pos = row["pos"], layer = row["layer"];
    auto it = std::find_if(trace.begin(), trace.end(), [&](const RouteRecord& r) {
      return r.pos == pos && r.layer == layer;
    });
    ASSERT_NE(it, trace.end()) << "no routing for pos " << pos << " layer " << layer;
    const auto hf = row["experts"].get<std::vector<int32_t>>();
    EXPECT_EQ(std::set<int32_t>(hf.begin(), hf.end()),
              std::set<int32_t>(it->experts.begin(), it->experts.end()))
        << "pos " << pos << " layer " << layer;
    ++n_rows;
  }
  EXPECT_EQ(n_rows, trace.size());
  EXPECT_GT(n_rows, 0u);

  Session gen_session(*engine, pool, {});
  GenerateOptions go;
  go.max_new_tokens = static_cast<int64_t>(meta["greedy"].size());
  std::vector<int32_t> out;
  ASSERT_TRUE(Generate(gen_session, prompt, go, nullptr, &out, nullptr).ok());
  EXPECT_EQ(out, meta["greedy"].get<std::vector<int32_t>>());
}

TEST_P(HfFixtureTest, DecodeThroughKvCacheIsBitIdenticalToPrefill) {
  auto engine = OpenOrDie(ModelDir(GetParam()));
  ASSERT_TRUE(engine);
  const nlohmann::json meta = ReadJson(ModelDir(GetParam()) + "/reference/meta.json");
  const std::vector<int32_t> prompt = meta["prompt"].get<std::vector<int32_t>>();
  const size_t V = static_cast<size_t>(engine->config().vocab_size), n = prompt.size();

  ThreadPool pool1(1), pool2(2);
  Session whole(*engine, pool2, {});
  std::vector<float> all(n * V);
  ASSERT_TRUE(whole.Forward(prompt, LogitsMode::kAll, all.data()).ok());

  // One token at a time through the KV cache, single-threaded.
  Session step(*engine, pool1, {});
  std::vector<float> row(V);
  for (size_t p = 0; p < n; ++p) {
    ASSERT_TRUE(step.Forward({&prompt[p], 1}, LogitsMode::kLast, row.data()).ok());
    EXPECT_EQ(0, std::memcmp(row.data(), &all[p * V], V * 4)) << "position " << p;
  }
  // Odd prefill chunks (batch 3) give the same bits too.
  SessionOptions so;
  so.max_batch = 3;
  Session chunked(*engine, pool2, so);
  std::vector<float> all3(n * V);
  ASSERT_TRUE(chunked.Forward(prompt, LogitsMode::kAll, all3.data()).ok());
  EXPECT_EQ(0, std::memcmp(all3.data(), all.data(), all.size() * 4));
}

INSTANTIATE_TEST_SUITE_P(Fixtures, HfFixtureTest,
                         ::testing::Values("base", "tied", "mha_yarn", "omni", "fused", "fused_t"));

TEST(HfConfigSpellingTest, Transformers4And5SpellingsGiveTheSameConfig) {
  const std::string dir = ModelDir("tied");
  std::ifstream f4(dir + "/config.json"), f5(dir + "/reference/config.v5.json");
  std::stringstream s4, s5;
  s4 << f4.rdbuf();
  s5 << f5.rdbuf();
  auto c4 = ParseHfConfig(s4.str(), "config.json");
  auto c5 = ParseHfConfig(s5.str(), "config.v5.json");
  ASSERT_TRUE(c4.ok()) << c4.status().message();
  ASSERT_TRUE(c5.ok()) << c5.status().message();
  EXPECT_EQ(c4->num_experts, c5->num_experts);
  EXPECT_EQ(c4->num_experts, 6);
  EXPECT_EQ(c4->rope_theta, c5->rope_theta);
  EXPECT_EQ(c4->dtype, c5->dtype);
  EXPECT_EQ(c4->decoder_sparse_step, 2);
  EXPECT_EQ(c4->tie_word_embeddings, true);
}

TEST(RestrictedRoutingTest, ExpertMaskOnlyUsesAllowedExperts) {
  EngineOptions o;
  o.model_dir = ModelDir("mha_yarn");
  o.expert_mask = {0, 1, 2, 3, 4, 5};
  auto engine = Engine::Open(o);
  ASSERT_TRUE(engine.ok()) << engine.status().message();
  ThreadPool pool(1);
  Session s(**engine, pool, {});
  std::vector<RouteRecord> trace;
  s.set_route_recorder(&trace);
  const std::vector<int32_t> prompt = {5, 9, 200, 31};
  std::vector<float> logits(prompt.size() * static_cast<size_t>((*engine)->config().vocab_size));
  ASSERT_TRUE(s.Forward(prompt, LogitsMode::kAll, logits.data()).ok());
  ASSERT_FALSE(trace.empty());
  for (const RouteRecord& r : trace) {
    for (int32_t e : r.experts) EXPECT_LE(e, 5);
  }
}

}  // namespace
}  // namespace moe
