// SPDX-License-Identifier: Apache-2.0
// The bundled trained model (models/qwen3-moe-ref) against transformers: held-out passages'
// float32 logits, router top-k and greedy continuations recorded by scripts/refmodel/train.py.
// Routing decisions whose 4th/5th-choice margin is below 1e-4 (listed by the script as
// router_near_ties) may legitimately flip under a different f32 summation order and are skipped.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <set>
#include <span>
#include <sstream>
#include <vector>

#include "runtime/engine.h"
#include "runtime/generator.h"
#include "runtime/session.h"
#include "util/thread_pool.h"

namespace moe {
namespace {

std::string Slurp(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  EXPECT_TRUE(f.good()) << p;
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TEST(RefModelTest, HeldOutPassagesMatchTransformers) {
  const std::string root = MOE_SOURCE_DIR;
  const auto fx = nlohmann::json::parse(Slurp(root + "/tests/data/refmodel/fixtures.json"));
  EngineOptions o;
  o.model_dir = root + "/models/qwen3-moe-ref";
  auto engine = Engine::Open(o);
  ASSERT_TRUE(engine.ok()) << engine.status().message();
  ThreadPool pool(2);
  const size_t V = static_cast<size_t>((*engine)->config().vocab_size);
  ASSERT_GE(fx["passages"].size(), 3u);
  for (const auto& p : fx["passages"]) {
    SCOPED_TRACE(p["name"].get<std::string>());
    const auto ids = p["token_ids"].get<std::vector<int32_t>>();
    const std::string raw = Slurp(root + "/tests/data/refmodel/" + p["logits_file"].get<std::string>());
    ASSERT_EQ(raw.size(), ids.size() * V * 4);
    std::vector<float> ref(ids.size() * V), got(ids.size() * V);
    std::memcpy(ref.data(), raw.data(), raw.size());
    Session s(**engine, pool, {});
    std::vector<RouteRecord> trace;
    s.set_route_recorder(&trace);
    ASSERT_TRUE(s.Forward(ids, LogitsMode::kAll, got.data()).ok());
    for (size_t t = 0; t < ids.size(); ++t) {
      float mx = 0, diff = 0;
      for (size_t i = 0; i < V; ++i) {
        mx = std::max(mx, std::fabs(ref[t * V + i]));
        diff = std::max(diff, std::fabs(ref[t * V + i] - got[t * V + i]));
      }
      EXPECT_LE(diff, 1e-3f * mx) << "position " << t;
    }
    std::set<std::pair<int64_t, int64_t>> near_ties;
    for (const auto& nt : p["router_near_ties"]) near_ties.insert({nt["pos"].get<int64_t>(), nt["layer"].get<int64_t>()});
    std::istringstream lines(Slurp(root + "/tests/data/refmodel/" + p["trace_file"].get<std::string>()));
    std::string line;
    size_t compared = 0;
    while (std::getline(lines, line)) {
      const auto row = nlohmann::json::parse(line);
      const int64_t pos = row["pos"], layer = row["layer"];
      if (near_ties.count({pos, layer})) continue;
      auto it = std::find_if(trace.begin(), trace.end(),
                             [&](const RouteRecord& r) { return r.pos == pos && r.layer == layer; });
      ASSERT_NE(it, trace.end());
      const auto hf = row["experts"].get<std::vector<int32_t>>();
      EXPECT_EQ(std::set<int32_t>(hf.begin(), hf.end()),
                std::set<int32_t>(it->experts.begin(), it->experts.end()))
          << "pos " << pos << " layer " << layer;
      ++compared;
    }
    EXPECT_GT(compared, ids.size() * 6);
    Session g(**engine, pool, {});
    GenerateOptions go;
    go.max_new_tokens = static_cast<int64_t>(p["greedy_continuation"].size());
    std::vector<int32_t> out;
    ASSERT_TRUE(Generate(g, ids, go, nullptr, &out, nullptr).ok());
    EXPECT_EQ(out, p["greedy_continuation"].get<std::vector<int32_t>>());
  }
}

// A context of 700 positions (the attention kernels' key tiles, chunks and prefetch distances
// many times over), against transformers (scripts/refmodel/long_context_fixture.py): logits at
// positions around tile and chunk boundaries from batched prefill, the last positions again
// one token at a time (the decode path reading a ~700-position KV cache), and the greedy
// continuation. Pools of 1-3 threads cover the split of a KV head's query heads across threads
// (3 threads, one token, 2 KV heads).
TEST(RefModelTest, LongContextMatchesTransformers) {
  const std::string root = MOE_SOURCE_DIR;
  const auto fx = nlohmann::json::parse(Slurp(root + "/tests/data/refmodel/long_context.json"));
  EngineOptions o;
  o.model_dir = root + "/models/qwen3-moe-ref";
  auto engine = Engine::Open(o);
  ASSERT_TRUE(engine.ok()) << engine.status().message();
  const size_t V = static_cast<size_t>((*engine)->config().vocab_size);
  const auto ids = fx["token_ids"].get<std::vector<int32_t>>();
  const auto positions = fx["positions"].get<std::vector<size_t>>();
  ASSERT_GT(ids.size(), 512u);
  const std::string raw = Slurp(root + "/tests/data/refmodel/long_context.logits.f32");
  ASSERT_EQ(raw.size(), positions.size() * V * 4);
  std::vector<float> ref(positions.size() * V);
  std::memcpy(ref.data(), raw.data(), raw.size());
  const auto expect_row = [&](const float* got, size_t row) {
    float mx = 0, diff = 0;
    for (size_t i = 0; i < V; ++i) {
      mx = std::max(mx, std::fabs(ref[row * V + i]));
      diff = std::max(diff, std::fabs(ref[row * V + i] - got[i]));
    }
    EXPECT_LE(diff, 1e-3f * mx) << "position " << positions[row];
  };
  for (size_t threads : {1, 2, 3}) {
    SCOPED_TRACE(threads);
    ThreadPool pool(threads);
    Session s(**engine, pool, {});
    std::vector<float> all(ids.size() * V);
    ASSERT_TRUE(s.Forward(ids, LogitsMode::kAll, all.data()).ok());
    for (size_t r = 0; r < positions.size(); ++r) expect_row(&all[positions[r] * V], r);
    // The positions from first_single on, one token per Forward.
    const size_t first_single = ids.size() - 6;
    Session d(**engine, pool, {});
    ASSERT_TRUE(d.Forward(std::span(ids).first(first_single), LogitsMode::kNone, nullptr).ok());
    std::vector<float> one(V);
    for (size_t p = first_single; p < ids.size(); ++p) {
      ASSERT_TRUE(d.Forward(std::span(ids).subspan(p, 1), LogitsMode::kLast, one.data()).ok());
      const auto it = std::find(positions.begin(), positions.end(), p);
      ASSERT_NE(it, positions.end());
      expect_row(one.data(), static_cast<size_t>(it - positions.begin()));
    }
    Session g(**engine, pool, {});
    GenerateOptions go;
    go.max_new_tokens = static_cast<int64_t>(fx["greedy_continuation"].size());
    std::vector<int32_t> out;
    ASSERT_TRUE(Generate(g, ids, go, nullptr, &out, nullptr).ok());
    EXPECT_EQ(out, fx["greedy_continuation"].get<std::vector<int32_t>>());
  }
}

// --weight-layout: the tiled in-memory layout of the resident weights (kernels.h) changes no
// bit of the logits; the default is tiled, so the HF comparison above runs on it.
TEST(RefModelTest, TiledAndRowMajorWeightsGiveBitIdenticalLogits) {
  const std::string root = MOE_SOURCE_DIR;
  const auto fx = nlohmann::json::parse(Slurp(root + "/tests/data/refmodel/fixtures.json"));
  const auto ids = fx["passages"][0]["token_ids"].get<std::vector<int32_t>>();
  ThreadPool pool(2);
  std::vector<float> logits[2];
  for (const bool tile : {true, false}) {
    EngineOptions o;
    o.model_dir = root + "/models/qwen3-moe-ref";
    o.tile_weights = tile;
    auto engine = Engine::Open(o);
    ASSERT_TRUE(engine.ok()) << engine.status().message();
    const LayerWeights& l0 = (*engine)->weights().layer(0);
    EXPECT_EQ(tile, l0.attn.q_proj.view.tiled);
    EXPECT_EQ(tile, l0.attn.o_proj.view.tiled);
    EXPECT_EQ(tile, (*engine)->weights().lm_head().view.tiled);
    EXPECT_FALSE(l0.router.view.tiled);  // the router keeps its stored layout
    std::vector<float>& got = logits[tile ? 0 : 1];
    got.resize(ids.size() * static_cast<size_t>((*engine)->config().vocab_size));
    Session s(**engine, pool, {});
    ASSERT_TRUE(s.Forward(ids, LogitsMode::kAll, got.data()).ok());
  }
  ASSERT_EQ(logits[0].size(), logits[1].size());
  EXPECT_EQ(0, std::memcmp(logits[0].data(), logits[1].data(), logits[0].size() * sizeof(float)));
}

}  // namespace
}  // namespace moe
