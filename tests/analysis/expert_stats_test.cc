// SPDX-License-Identifier: Apache-2.0
// Expert statistics on tiny traces with hand-derived answers.
#include "analysis/expert_stats.h"

#include <gtest/gtest.h>

namespace moe {
namespace {

RouteRecord Rec(int64_t pos, int64_t layer, std::vector<int32_t> experts) {
  std::vector<float> w(experts.size(), 0.5f);
  return {pos, layer, std::move(experts), std::move(w)};
}

// One layer, tokens S0={0,1}, S1={1,2}, S2={0,3}, S3={2,0}:
//   t1: 1 reused (gap 1, nothing in between → distance 0); 2 cold.
//   t2: 0 from t0 (gap 2; S1 = {1,2} in between → distance 2); 3 cold.
//   t3: 2 from t1 (gap 2; S2 = {0,3} → distance 2); 0 from t2 (gap 1, distance 0).
//   cold: 0,1 at t0, 2 at t1, 3 at t2 = 4. Overlap: 1/2, 0, 1/2 → mean 1/3.
TEST(ExpertStatsTest, ReuseDistanceAndOverlapOnTinyTrace) {
  LabeledTrace t{"a", {Rec(0, 0, {0, 1}), Rec(1, 0, {1, 2}), Rec(2, 0, {0, 3}), Rec(3, 0, {2, 0})}};
  ExpertStatsOptions o;
  o.max_histogram = 4;
  o.n_shuffles = 0;
  auto s = ComputeExpertStats({t}, o);
  ASSERT_TRUE(s.ok()) << s.status().message();
  const LayerExpertStats& L = s->layers.at(0);
  EXPECT_EQ(L.cold, 4u);
  EXPECT_EQ(L.reuse_gap, (std::vector<uint64_t>{0, 2, 2, 0, 0, 0}));
  EXPECT_EQ(L.reuse_distance, (std::vector<uint64_t>{2, 0, 2, 0, 0, 0}));
  EXPECT_DOUBLE_EQ(L.mean_overlap, 1.0 / 3.0);
  EXPECT_EQ(L.n_overlap_pairs, 3u);
  EXPECT_EQ(L.usage, (std::vector<double>{3, 2, 2, 1}));
  // Co-activation: pairs (0,1), (1,2), (0,3), (0,2) once each.
  EXPECT_EQ(L.coactivation[0 * 4 + 1], 1);
  EXPECT_EQ(L.coactivation[1 * 4 + 0], 1);
  EXPECT_EQ(L.coactivation[0 * 4 + 2], 1);
  EXPECT_EQ(L.coactivation[1 * 4 + 3], 0);
  // Independence baseline Σ (c_e / N)² / k = (9 + 4 + 4 + 1) / 16 / 2.
  EXPECT_DOUBLE_EQ(L.overlap_baseline, 18.0 / 16.0 / 2.0);
}

TEST(ExpertStatsTest, WindowsBreakLocality) {
  // pos goes back to 0: the second window starts cold.
  LabeledTrace t{"a", {Rec(0, 0, {0}), Rec(1, 0, {0}), Rec(0, 0, {0}), Rec(1, 0, {0})}};
  ExpertStatsOptions o;
  o.n_shuffles = 0;
  auto s = ComputeExpertStats({t}, o);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->layers[0].cold, 2u);
  EXPECT_EQ(s->layers[0].reuse_gap[1], 2u);
  EXPECT_EQ(s->layers[0].n_overlap_pairs, 2u);
  EXPECT_DOUBLE_EQ(s->layers[0].mean_overlap, 1.0);
}

TEST(ExpertStatsTest, DisjointDomainsDivergeByOneBitAndBeatTheBaseline) {
  // Domain a always picks expert 0, domain b expert 1, on two layers: JS = 1 bit exactly.
  // Shuffling labels over blocks of 2 tokens mixes them, so the baseline is below 1.
  LabeledTrace a{"a", {}}, b{"b", {}};
  for (int64_t p = 0; p < 16; ++p) {
    for (int64_t l = 0; l < 2; ++l) {
      a.records.push_back(Rec(p, l, {0}));
      b.records.push_back(Rec(p, l, {1}));
    }
  }
  ExpertStatsOptions o;
  o.block_tokens = 2;
  o.n_shuffles = 20;
  auto s = ComputeExpertStats({a, b}, o);
  ASSERT_TRUE(s.ok());
  ASSERT_EQ(s->layers.size(), 2u);
  EXPECT_EQ(s->labels, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(s->tokens_per_label, (std::vector<int64_t>{16, 16}));
  for (const LayerExpertStats& L : s->layers) {
    EXPECT_DOUBLE_EQ(L.mean_js, 1.0);
    EXPECT_DOUBLE_EQ(L.js[0][1], 1.0);
    EXPECT_LT(L.baseline_js.mean, 0.5);
    EXPECT_GT(L.baseline_js.sd, 0.0);
  }
  // Same label on both traces: one pooled domain, no pairs.
  a.label = b.label = "x";
  auto pooled = ComputeExpertStats({a, b}, o);
  ASSERT_TRUE(pooled.ok());
  EXPECT_EQ(pooled->labels.size(), 1u);
  EXPECT_EQ(pooled->layers[0].mean_js, 0.0);
}

TEST(ExpertStatsTest, RejectsInconsistentTraces) {
  LabeledTrace t{"a", {Rec(0, 0, {0}), Rec(0, 1, {0}), Rec(1, 0, {1})}};
  EXPECT_EQ(ComputeExpertStats({t}, {}).status().code(), StatusCode::kInvalidFormat);
  EXPECT_EQ(ComputeExpertStats({}, {}).status().code(), StatusCode::kUsage);
  EXPECT_EQ(ComputeExpertStats({LabeledTrace{"e", {}}}, {}).status().code(),
            StatusCode::kInvalidFormat);
}

}  // namespace
}  // namespace moe
