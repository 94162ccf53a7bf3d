// SPDX-License-Identifier: Apache-2.0
// Cache policies on hand-made traces whose hits/misses/evictions were worked out by hand (the
// derivations are in the comments), plus Belady as an optimality bound on random traces.
#include <gtest/gtest.h>

#include <random>

#include "experts/cache_policy.h"

namespace moe {
namespace {

std::unique_ptr<CachePolicy> Make(const PolicyUniverse& u, PolicyKind kind, uint64_t aging = 0) {
  PolicyOptions o;
  o.kind = kind;
  o.lfu_aging_period = aging;
  auto p = MakeCachePolicy(u, o);
  EXPECT_TRUE(p.ok()) << p.status().message();
  return std::move(p).value();
}

// One layer, experts A=0 B=1 C=2; trace A B A C B A with 2 entries.
const PolicyUniverse kOneLayer{1, 4};
const std::vector<ExpertKey> kAbacba = {{0, 0}, {0, 1}, {0, 0}, {0, 2}, {0, 1}, {0, 0}};

TEST(CachePolicyTest, LruOnHandTrace) {
  // A m [A]; B m [A B]; A h; C m evicts B (LRU) [A C]; B m evicts A [C B]; A m evicts C.
  auto p = Make(kOneLayer, PolicyKind::kLru);
  ReplayCounts c = ReplayTrace(*p, kOneLayer, 2, kAbacba);
  EXPECT_EQ(c.hits, 1u);
  EXPECT_EQ(c.misses, 5u);
  EXPECT_EQ(c.evictions, 3u);
}

TEST(CachePolicyTest, LfuOnHandTrace) {
  // A m (A:1); B m (B:1); A h (A:2); C m evicts B (1 < 2); B m: A:2, C:1 → evicts C, B:2;
  // A h. Counts survive eviction.
  auto p = Make(kOneLayer, PolicyKind::kLfu);
  ReplayCounts c = ReplayTrace(*p, kOneLayer, 2, kAbacba);
  EXPECT_EQ(c.hits, 2u);
  EXPECT_EQ(c.misses, 4u);
  EXPECT_EQ(c.evictions, 2u);
}

TEST(CachePolicyTest, LfuAgingForgetsOldPopularity) {
  // Trace A A A B C B A, 2 entries.
  // No aging: A m h h (A:3); B m (B:1); C m evicts B; B m: A:3 C:1 → evicts C; A h.
  //   → 3 hits, 4 misses, 2 evictions.
  // Aging every 4 accesses: after access 4 (B) counts halve: A:1, B:0. C m evicts B (C:1, t5);
  //   B m: A:1 (t3) C:1 (t5) tie → older A evicted (B:1, t6); A m: C:1 (t5) B:1 (t6) → evicts C.
  //   → 2 hits, 5 misses, 3 evictions.
  const std::vector<ExpertKey> t = {{0, 0}, {0, 0}, {0, 0}, {0, 1}, {0, 2}, {0, 1}, {0, 0}};
  auto plain = Make(kOneLayer, PolicyKind::kLfu, 1000);
  ReplayCounts a = ReplayTrace(*plain, kOneLayer, 2, t);
  EXPECT_EQ(a.hits, 3u);
  EXPECT_EQ(a.misses, 4u);
  EXPECT_EQ(a.evictions, 2u);
  auto aged = Make(kOneLayer, PolicyKind::kLfu, 4);
  ReplayCounts b = ReplayTrace(*aged, kOneLayer, 2, t);
  EXPECT_EQ(b.hits, 2u);
  EXPECT_EQ(b.misses, 5u);
  EXPECT_EQ(b.evictions, 3u);
}

TEST(CachePolicyTest, BeladyOnHandTrace) {
  // A m; B m; A h; C m: A next at 5, B at 4 → evicts A; B h; A m: B, C never used again →
  // tie, lower id (B) evicted. 2 hits, 4 misses, 2 evictions.
  auto p = MakeBeladyPolicy(kOneLayer, kAbacba);
  ReplayCounts c = ReplayTrace(*p, kOneLayer, 2, kAbacba);
  EXPECT_EQ(c.hits, 2u);
  EXPECT_EQ(c.misses, 4u);
  EXPECT_EQ(c.evictions, 2u);
}

// Three layers, one expert each, visited cyclically 3 times with 2 entries: LRU always evicts
// the layer that comes next (9 misses); the layer-cyclic policy evicts the one that comes back
// last: m m m, then h m alternate → 3 hits, 6 misses, 4 evictions, same as Belady.
TEST(CachePolicyTest, LayerCyclicBeatsLruOnLayerCycle) {
  const PolicyUniverse u{3, 1};
  std::vector<ExpertKey> t;
  for (int tok = 0; tok < 3; ++tok) {
    for (int32_t l = 0; l < 3; ++l) t.push_back({l, 0});
  }
  auto lru = Make(u, PolicyKind::kLru);
  ReplayCounts a = ReplayTrace(*lru, u, 2, t);
  EXPECT_EQ(a.hits, 0u);
  EXPECT_EQ(a.misses, 9u);
  EXPECT_EQ(a.evictions, 7u);
  auto cyc = Make(u, PolicyKind::kLayerCyclic);
  ReplayCounts b = ReplayTrace(*cyc, u, 2, t);
  EXPECT_EQ(b.hits, 3u);
  EXPECT_EQ(b.misses, 6u);
  EXPECT_EQ(b.evictions, 4u);
  auto opt = MakeBeladyPolicy(u, t);
  ReplayCounts c = ReplayTrace(*opt, u, 2, t);
  EXPECT_EQ(c.misses, 6u);
}

TEST(CachePolicyTest, VictimSkipsUnevictableAndReportsNone) {
  for (PolicyKind kind : {PolicyKind::kLru, PolicyKind::kLfu, PolicyKind::kLayerCyclic}) {
    auto p = Make(kOneLayer, kind);
    p->OnInsert({0, 0});
    p->OnInsert({0, 1});
    auto v = p->ChooseVictim({0, 2}, [](ExpertKey k) { return k.expert != 0; });
    ASSERT_TRUE(v.has_value()) << PolicyKindName(kind);
    EXPECT_EQ(v->expert, 1) << PolicyKindName(kind);
    EXPECT_FALSE(p->ChooseVictim({0, 2}, [](ExpertKey) { return false; }).has_value());
    p->OnEvict({0, 0});
    p->OnEvict({0, 1});
    EXPECT_FALSE(p->ChooseVictim({0, 2}, [](ExpertKey) { return true; }).has_value());
  }
}

TEST(CachePolicyTest, HintProtectsFromLayerCyclicEviction) {
  // Layer 1 just ran, so its entries come back last and would be evicted first — unless hinted.
  const PolicyUniverse u{3, 2};
  auto p = Make(u, PolicyKind::kLayerCyclic);
  p->OnInsert({1, 0});
  p->OnInsert({2, 0});
  p->OnHint({1, 0});
  auto v = p->ChooseVictim({1, 1}, [](ExpertKey) { return true; });
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->layer, 2);
}

TEST(CachePolicyTest, BeladyIsALowerBoundOnRandomTraces) {
  const PolicyUniverse u{4, 8};
  std::mt19937 rng(7);
  for (int round = 0; round < 20; ++round) {
    std::vector<ExpertKey> t;
    for (int tok = 0; tok < 40; ++tok) {
      for (int32_t l = 0; l < u.n_layers; ++l) {
        t.push_back({l, static_cast<int32_t>(rng() % 8 < 5 ? rng() % 3 : rng() % 8)});
      }
    }
    const size_t cap = 2 + static_cast<size_t>(round % 10);
    auto opt = MakeBeladyPolicy(u, t);
    const uint64_t best = ReplayTrace(*opt, u, cap, t).misses;
    for (PolicyKind kind : {PolicyKind::kLru, PolicyKind::kLfu, PolicyKind::kLayerCyclic}) {
      auto p = Make(u, kind);
      ReplayCounts c = ReplayTrace(*p, u, cap, t);
      EXPECT_GE(c.misses, best) << PolicyKindName(kind) << " capacity " << cap;
      EXPECT_EQ(c.hits + c.misses, t.size());
    }
  }
}

TEST(CachePolicyTest, ParseNames) {
  EXPECT_EQ(ParsePolicyKind("lru").value(), PolicyKind::kLru);
  EXPECT_EQ(ParsePolicyKind("layer").value(), PolicyKind::kLayerCyclic);
  EXPECT_EQ(ParsePolicyKind("fifo").status().code(), StatusCode::kUsage);
  PolicyOptions o;
  o.kind = PolicyKind::kBelady;
  EXPECT_EQ(MakeCachePolicy(kOneLayer, o).status().code(), StatusCode::kUsage);
}

}  // namespace
}  // namespace moe
