// SPDX-License-Identifier: Apache-2.0
// The sampler against independently computed expectations: greedy = argmax; a draw's empirical
// distribution matches softmax(logits / T) restricted by top-k / top-p / min-p; HF repetition
// penalty semantics; the same seed gives the same sequence.
#include "runtime/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <vector>

namespace moe {
namespace {

// Empirical frequencies of n draws.
std::vector<double> Frequencies(const std::vector<float>& logits, const SamplingParams& p, int n) {
  Sampler s(static_cast<int64_t>(logits.size()), p);
  std::vector<double> f(logits.size(), 0.0);
  for (int i = 0; i < n; ++i) {
    std::vector<float> l = logits;
    f[static_cast<size_t>(s.Sample(l.data(), {}))] += 1.0 / n;
  }
  return f;
}

std::vector<double> SoftmaxOver(const std::vector<float>& logits, float t,
                                const std::vector<int>& keep) {
  std::vector<double> p(logits.size(), 0.0);
  double z = 0;
  for (int i : keep) z += std::exp(static_cast<double>(logits[static_cast<size_t>(i)]) / t);
  for (int i : keep) p[static_cast<size_t>(i)] = std::exp(static_cast<double>(logits[static_cast<size_t>(i)]) / t) / z;
  return p;
}

const std::vector<float> kLogits = {1.0f, 3.0f, 0.5f, 2.5f, -1.0f, 2.0f};  // order: 1,3,5,0,2,4

TEST(SamplerTest, GreedyIsArgmaxWithLowestIdOnTies) {
  Sampler s(6, {});
  std::vector<float> l = kLogits;
  EXPECT_EQ(s.Sample(l.data(), {}), 1);
  std::vector<float> tie = {0.f, 5.f, 5.f, 1.f};
  Sampler s2(4, {});
  EXPECT_EQ(s2.Sample(tie.data(), {}), 1);
}

TEST(SamplerTest, TemperatureSamplingFollowsSoftmax) {
  SamplingParams p;
  p.temperature = 1.5f;
  p.seed = 11;
  const auto f = Frequencies(kLogits, p, 40000);
  const auto want = SoftmaxOver(kLogits, 1.5f, {0, 1, 2, 3, 4, 5});
  for (size_t i = 0; i < f.size(); ++i) EXPECT_NEAR(f[i], want[i], 0.01) << i;
}

TEST(SamplerTest, TopKTopPAndMinPRestrictTheCandidates) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.seed = 5;
  p.top_k = 3;  // ids 1, 3, 5
  auto f = Frequencies(kLogits, p, 30000);
  auto want = SoftmaxOver(kLogits, 1.0f, {1, 3, 5});
  for (size_t i = 0; i < f.size(); ++i) EXPECT_NEAR(f[i], want[i], 0.012) << i;

  p.top_k = 0;
  const auto full = SoftmaxOver(kLogits, 1.0f, {0, 1, 2, 3, 4, 5});
  p.top_p = static_cast<float>(full[1] + 0.5 * full[3]);  // needs ids 1 and 3 to reach it
  f = Frequencies(kLogits, p, 30000);
  want = SoftmaxOver(kLogits, 1.0f, {1, 3});
  for (size_t i = 0; i < f.size(); ++i) EXPECT_NEAR(f[i], want[i], 0.012) << i;

  p.top_p = 1.0f;
  p.min_p = static_cast<float>(full[5] / full[1]) * 0.99f;  // keeps 1, 3, 5
  f = Frequencies(kLogits, p, 30000);
  want = SoftmaxOver(kLogits, 1.0f, {1, 3, 5});
  for (size_t i = 0; i < f.size(); ++i) EXPECT_NEAR(f[i], want[i], 0.012) << i;
}

TEST(SamplerTest, RepetitionPenaltyDividesPositiveAndMultipliesNegativeLogits) {
  SamplingParams p;
  p.repetition_penalty = 2.0f;
  Sampler s(6, p);
  std::vector<float> l = kLogits;
  const std::vector<int32_t> history = {1, 4, 1};
  // 3.0 / 2 = 1.5 < 2.5: the greedy choice moves from id 1 to id 3; -1 * 2 = -2 for id 4.
  EXPECT_EQ(s.Sample(l.data(), history), 3);
  EXPECT_FLOAT_EQ(l[1], 1.5f);
  EXPECT_FLOAT_EQ(l[4], -2.0f);
  EXPECT_FLOAT_EQ(l[0], 1.0f);
}

TEST(SamplerTest, SameSeedSameSequence) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.seed = 42;
  Sampler a(6, p), b(6, p);
  int differs = 0;
  for (int i = 0; i < 200; ++i) {
    std::vector<float> la = kLogits, lb = kLogits;
    EXPECT_EQ(a.Sample(la.data(), {}), b.Sample(lb.data(), {}));
  }
  p.seed = 43;
  Sampler c(6, p), d(6, {.temperature = 1.0f, .seed = 42});
  for (int i = 0; i < 200; ++i) {
    std::vector<float> lc = kLogits, ld = kLogits;
    differs += c.Sample(lc.data(), {}) != d.Sample(ld.data(), {});
  }
  EXPECT_GT(differs, 0);
}

}  // namespace
}  // namespace moe
