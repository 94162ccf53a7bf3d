// SPDX-License-Identifier: Apache-2.0
// Streaming experts through the byte-budget cache gives the SAME BITS as the all-resident
// reference: every fixture, every budget from exactly top-k blocks up to everything, prefill in
// odd chunks and token-by-token decode, every policy; plus HF's own logits within tolerance.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "runtime/engine.h"
#include "runtime/session.h"
#include "util/checked_math.h"
#include "util/thread_pool.h"
#include "streaming_fixture.h"

namespace moe {
namespace {

using streaming::ModelDir;
using streaming::Prompt;
using streaming::RunLogits;

class StreamingFixtureTest : public ::testing::TestWithParam<std::string> {};

TEST_P(StreamingFixtureTest, EveryBudgetIsBitIdenticalToResident) {
  const std::string dir = ModelDir(GetParam());
  const std::vector<int32_t> prompt = Prompt(dir);
  EngineOptions ro;
  ro.model_dir = dir;
  auto resident = Engine::Open(ro);
  ASSERT_TRUE(resident.ok()) << resident.status().message();
  const std::vector<float> want = RunLogits(**resident, prompt, 32, false);
  const ExpertSource& src = (*resident)->expert_source();
  const uint64_t slot = ExpertCache::SlotBytes(src);
  int64_t n_total = 0;
  for (int64_t l = 0; l < src.n_layers(); ++l) n_total += src.has_experts(l) ? src.n_experts() : 0;
  const int64_t k = (*resident)->top_k();
  ASSERT_GT(n_total, k);
  for (int64_t n = k; n <= n_total + 1; ++n) {
    EngineOptions o = ro;
    o.expert_cache = std::to_string(n * static_cast<int64_t>(slot));
    o.cache_policy = static_cast<PolicyKind>(n % 3);  // lru, lfu, layer in turn
    auto e = Engine::Open(o);
    ASSERT_TRUE(e.ok()) << e.status().message();
    ASSERT_NE((*e)->expert_cache(), nullptr);
    EXPECT_EQ((*e)->expert_cache()->n_slots(), static_cast<size_t>(std::min(n, n_total)));
    const std::vector<float> got = RunLogits(**e, prompt, 3, false);
    ASSERT_EQ(got.size(), want.size());
    EXPECT_EQ(0, std::memcmp(got.data(), want.data(), want.size() * 4)) << "budget " << n;
    if (n == k || n == n_total) {
      const std::vector<float> step = RunLogits(**e, prompt, 1, true);
      EXPECT_EQ(0, std::memcmp(step.data(), want.data(), want.size() * 4)) << "decode " << n;
    }
    const CacheStats st = (*e)->expert_cache()->Stats();
    EXPECT_EQ(st.read_errors, 0u);
    if (n >= n_total) {
      // Room for every expert: only a cancelled prediction whose read is still queued holds a
      // slot a request may then need (ExpertCache::CancelPrefetch frees it when the loader
      // reaches the job), so each eviction needs one; under load CI saw 1.
      EXPECT_LE(st.total.evictions, st.total.prefetch_cancelled);
    }
    if (n == k) {
      EXPECT_GT(st.total.evictions, 0u);
    }
  }
  // One below top-k blocks is refused with the documented message.
  EngineOptions o = ro;
  o.expert_cache = std::to_string((k - 1) * static_cast<int64_t>(slot) + 4095);
  auto tiny = Engine::Open(o);
  ASSERT_FALSE(tiny.ok());
  EXPECT_EQ(tiny.status().code(), StatusCode::kUsage);
  EXPECT_NE(tiny.status().message().find("cache too small"), std::string::npos);
}

TEST_P(StreamingFixtureTest, TinyCacheStillMatchesTransformers) {
  const std::string dir = ModelDir(GetParam());
  const std::vector<int32_t> prompt = Prompt(dir);
  EngineOptions o;
  o.model_dir = dir;
  o.expert_cache = "128K";
  auto e = Engine::Open(o);
  if (!e.ok()) {
    // 128K may be below top-k blocks on a fixture; then the refusal must say so.
    ASSERT_EQ(e.status().code(), StatusCode::kUsage) << e.status().message();
    GTEST_SKIP() << e.status().message();
  }
  const std::vector<float> got = RunLogits(**e, prompt, 32, false);
  const std::vector<float> ref = streaming::ReadF32(dir + "/reference/logits.f32");
  ASSERT_EQ(ref.size(), got.size());
  const size_t V = static_cast<size_t>((*e)->config().vocab_size);
  for (size_t p = 0; p < prompt.size(); ++p) {
    float max_ref = 0, max_diff = 0;
    for (size_t i = 0; i < V; ++i) {
      max_ref = std::max(max_ref, std::fabs(ref[p * V + i]));
      max_diff = std::max(max_diff, std::fabs(ref[p * V + i] - got[p * V + i]));
    }
    EXPECT_LE(max_diff, 1e-3f * max_ref) << "position " << p;
  }
}

TEST_P(StreamingFixtureTest, RouterLookaheadPrefetchKeepsBitsAndMeasuresPrediction) {
  const std::string dir = ModelDir(GetParam());
  const std::vector<int32_t> prompt = Prompt(dir);
  EngineOptions o;
  o.model_dir = dir;
  auto resident = Engine::Open(o);
  ASSERT_TRUE(resident.ok());
  const std::vector<float> want = RunLogits(**resident, prompt, 32, false);
  const ExpertSource& src = (*resident)->expert_source();
  const uint64_t slot = ExpertCache::SlotBytes(src);
  for (int64_t n : {(*resident)->top_k() + 1, int64_t{1000}}) {
    o.expert_cache = std::to_string(n * static_cast<int64_t>(slot));
    o.prefetch = PrefetchMode::kOn;
    o.cache_policy = PolicyKind::kLayerCyclic;
    auto e = Engine::Open(o);
    ASSERT_TRUE(e.ok()) << e.status().message();
    const std::vector<float> got = RunLogits(**e, prompt, 1, true);
    EXPECT_EQ(0, std::memcmp(got.data(), want.data(), want.size() * 4)) << n;
    const CacheStats s = (*e)->expert_cache()->Stats();
    // Every MoE layer after the first is predicted once per token.
    int64_t n_moe = 0;
    for (int64_t l = 0; l < src.n_layers(); ++l) n_moe += src.has_experts(l);
    EXPECT_EQ(s.total.actual > 0, n_moe > 1);
    EXPECT_LE(s.total.predicted_and_actual, std::min(s.total.predicted, s.total.actual));
    EXPECT_GE(s.total.predicted, static_cast<uint64_t>(prompt.size()) * (n_moe - 1));
  }
}

// Shards read with O_DIRECT (each matrix's 4 KiB-aligned cover into a per-thread buffer, the
// bytes copied out; a shard's last tensor's cover runs past its end) give the same bits as
// through the page cache, streamed and resident.
TEST_P(StreamingFixtureTest, DirectShardReadsAreBitIdenticalToBuffered) {
  const std::string dir = ModelDir(GetParam());
  const std::vector<int32_t> prompt = Prompt(dir);
  EngineOptions ro;
  ro.model_dir = dir;
  ro.io_mode = "buffered";
  auto buffered = Engine::Open(ro);
  ASSERT_TRUE(buffered.ok()) << buffered.status().message();
  EXPECT_EQ((*buffered)->expert_source().format().find("O_DIRECT"), std::string::npos);
  const std::vector<float> want = RunLogits(**buffered, prompt, 32, false);
  const uint64_t slot = ExpertCache::SlotBytes((*buffered)->expert_source());
  for (const char* cache : {"", "small"}) {
    EngineOptions o = ro;
    o.io_mode = "auto";
    if (*cache) o.expert_cache = std::to_string(((*buffered)->top_k() + 1) * (slot + 8192));
    auto e = Engine::Open(o);
    ASSERT_TRUE(e.ok()) << e.status().message();
    if ((*e)->expert_source().format().find("O_DIRECT") == std::string::npos) {
      GTEST_SKIP() << "this file system refuses O_DIRECT";
    }
    const std::vector<float> got = RunLogits(**e, prompt, 3, false);
    ASSERT_EQ(got.size(), want.size());
    EXPECT_EQ(0, std::memcmp(got.data(), want.data(), want.size() * 4)) << cache;
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, StreamingFixtureTest,
                         ::testing::Values("base", "tied", "mha_yarn", "omni", "fused", "fused_t"));

}  // namespace
}  // namespace moe
