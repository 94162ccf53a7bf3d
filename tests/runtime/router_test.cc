// SPDX-License-Identifier: Apache-2.0
// bad-inputs G4: router logits with ties, NaN or ±Inf. Route must stay deterministic and always
// return k distinct expert ids in [0, n_experts); with finite logits its choice equals an
// independent reference: experts by descending softmax probability, ties to the lower id.
#include "runtime/router.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <vector>

namespace moe {
namespace {

struct Routed {
  std::vector<int32_t> idx;
  std::vector<float> w;
};

Routed RouteCopy(std::vector<float> logits, int64_t k, bool norm) {
  RouterOptions o;
  o.top_k = k;
  o.norm_topk_prob = norm;
  Routed r{std::vector<int32_t>(static_cast<size_t>(k)), std::vector<float>(static_cast<size_t>(k))};
  Route(logits.data(), static_cast<int64_t>(logits.size()), o, r.idx.data(), r.w.data());
  return r;
}

void ExpectValid(const Routed& r, size_t n_experts) {
  std::vector<int32_t> sorted = r.idx;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_TRUE(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end()) << "duplicate id";
  for (int32_t e : r.idx) {
    EXPECT_GE(e, 0);
    EXPECT_LT(e, static_cast<int32_t>(n_experts));
  }
}

// Reference selection for finite logits: stable sort by descending logit (softmax is monotone).
std::vector<int32_t> ReferenceTopK(const std::vector<float>& logits, size_t k) {
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return logits[static_cast<size_t>(a)] > logits[static_cast<size_t>(b)];
  });
  order.resize(k);
  return order;
}

TEST(RouterTest, G4TiesAreBrokenByTheLowerIdDeterministically) {
  const size_t E = 128, k = 8;
  // All equal; blocks of equal values; equal values around the k-th place.
  std::vector<std::vector<float>> cases;
  cases.push_back(std::vector<float>(E, 0.5f));
  std::vector<float> blocks(E);
  for (size_t e = 0; e < E; ++e) blocks[e] = static_cast<float>(e % 4);
  cases.push_back(blocks);
  std::vector<float> boundary(E, -1.f);
  for (size_t e : {3u, 9u, 17u, 40u, 41u, 42u, 90u, 100u, 101u, 127u}) boundary[e] = 2.f;
  boundary[5] = 3.f;
  cases.push_back(boundary);
  for (const auto& logits : cases) {
    for (bool norm : {true, false}) {
      const Routed a = RouteCopy(logits, k, norm), b = RouteCopy(logits, k, norm);
      ExpectValid(a, E);
      EXPECT_EQ(a.idx, b.idx);
      EXPECT_EQ(a.w, b.w);
      EXPECT_EQ(a.idx, ReferenceTopK(logits, k));
      if (norm) {
        const float sum = std::accumulate(a.w.begin(), a.w.end(), 0.f);
        EXPECT_NEAR(sum, 1.f, 1e-6f);
      }
    }
  }
}

TEST(RouterTest, G4NanAndInfLogitsStillGiveKDistinctIdsInRange) {
  const size_t E = 64, k = 8;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<std::vector<float>> cases;
  std::vector<float> one_nan(E, 0.1f);
  one_nan[7] = nan;
  cases.push_back(one_nan);
  cases.push_back(std::vector<float>(E, nan));
  std::vector<float> some_nan(E);
  for (size_t e = 0; e < E; ++e) some_nan[e] = e % 3 == 0 ? nan : static_cast<float>(e);
  cases.push_back(some_nan);
  std::vector<float> pos_inf(E, 0.f);
  pos_inf[11] = inf;
  pos_inf[12] = inf;
  cases.push_back(pos_inf);
  std::vector<float> neg_inf(E, -inf);
  neg_inf[30] = 1.f;
  cases.push_back(neg_inf);
  cases.push_back(std::vector<float>(E, -inf));
  for (const auto& logits : cases) {
    for (bool norm : {true, false}) {
      const Routed a = RouteCopy(logits, k, norm), b = RouteCopy(logits, k, norm);
      ExpectValid(a, E);
      EXPECT_EQ(a.idx, b.idx);
      for (size_t j = 0; j < k; ++j) {
        // Same bits (NaN included) on a second call: deterministic.
        EXPECT_EQ(std::memcmp(&a.w[j], &b.w[j], sizeof(float)), 0) << j;
      }
    }
  }
  // One finite winner among -inf: it is chosen first with all the weight.
  const Routed r = RouteCopy(cases[4], k, true);
  EXPECT_EQ(r.idx[0], 30);
  EXPECT_FLOAT_EQ(r.w[0], 1.f);
}

}  // namespace
}  // namespace moe
