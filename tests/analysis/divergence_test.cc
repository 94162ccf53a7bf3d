// SPDX-License-Identifier: Apache-2.0
// JS divergence against closed forms: disjoint supports (1 bit), identical (0), and
// H(M) − (H(p)+H(q))/2 written out term by term in the test.
#include "analysis/divergence.h"

#include <gtest/gtest.h>

#include <cmath>

namespace moe {
namespace {

TEST(DivergenceTest, ClosedForms) {
  const std::vector<double> a = {1, 0}, b = {0, 1}, h = {0.5, 0.5};
  EXPECT_DOUBLE_EQ(JensenShannonBits(a, b), 1.0);
  EXPECT_DOUBLE_EQ(JensenShannonBits(a, a), 0.0);
  // JS((1/2,1/2),(1,0)): M = (3/4,1/4); H(M) = −(3/4 log2 3/4 + 1/4 log2 1/4); H(p)=1, H(q)=0.
  const double hm = -(0.75 * std::log2(0.75) + 0.25 * std::log2(0.25));
  EXPECT_NEAR(JensenShannonBits(h, a), hm - 0.5, 1e-15);
  EXPECT_NEAR(JensenShannonBits(a, h), hm - 0.5, 1e-15);
}

TEST(DivergenceTest, MatchesEntropyFormula) {
  const std::vector<double> p = Normalize(std::vector<double>{3, 1, 0, 4, 2});
  const std::vector<double> q = Normalize(std::vector<double>{1, 1, 5, 0, 3});
  auto H = [](const std::vector<double>& x) {
    double s = 0;
    for (double v : x) s += v > 0 ? -v * std::log(v) / std::log(2.0) : 0.0;
    return s;
  };
  std::vector<double> m(p.size());
  for (size_t i = 0; i < p.size(); ++i) m[i] = (p[i] + q[i]) / 2;
  EXPECT_NEAR(JensenShannonBits(p, q), H(m) - (H(p) + H(q)) / 2, 1e-14);
  EXPECT_NEAR(EntropyBits(p), H(p), 1e-14);
  // Mean over the 3 pairs of {p, q, p}: (JS(p,q) + JS(p,p) + JS(q,p)) / 3.
  EXPECT_NEAR(MeanPairwiseJs({p, q, p}), 2 * JensenShannonBits(p, q) / 3, 1e-15);
}

TEST(DivergenceTest, NormalizeAndMoments) {
  EXPECT_EQ(Normalize(std::vector<double>{0, 0}), (std::vector<double>{0, 0}));
  EXPECT_EQ(Normalize(std::vector<double>{1, 3}), (std::vector<double>{0.25, 0.75}));
  const MeanSd m = MeanAndSd(std::vector<double>{2, 4, 4, 4, 5, 5, 7, 9});
  EXPECT_DOUBLE_EQ(m.mean, 5.0);
  EXPECT_NEAR(m.sd, std::sqrt(32.0 / 7.0), 1e-15);
}

}  // namespace
}  // namespace moe
