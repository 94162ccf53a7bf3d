// SPDX-License-Identifier: Apache-2.0
#include "analysis/divergence.h"

#include <cmath>

#include "util/check.h"

namespace moe {

std::vector<double> Normalize(std::span<const double> counts) {
  double sum = 0;
  for (double c : counts) sum += c;
  std::vector<double> p(counts.size(), 0.0);
  if (sum <= 0) return p;
  for (size_t i = 0; i < counts.size(); ++i) p[i] = counts[i] / sum;
  return p;
}

double EntropyBits(std::span<const double> p) {
  double h = 0;
  for (double x : p) {
    if (x > 0) h -= x * std::log2(x);
  }
  return h;
}

double JensenShannonBits(std::span<const double> p, std::span<const double> q) {
  MOE_CHECK(p.size() == q.size(), "JS of distributions of sizes {} and {}", p.size(), q.size());
  // Sum of per-element terms (exact zero for p == q, no cancellation of large entropies).
  double js = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    const double m = 0.5 * (p[i] + q[i]);
    if (p[i] > 0) js += 0.5 * p[i] * std::log2(p[i] / m);
    if (q[i] > 0) js += 0.5 * q[i] * std::log2(q[i] / m);
  }
  return js;
}

double MeanPairwiseJs(const std::vector<std::vector<double>>& dists) {
  double sum = 0;
  int64_t n = 0;
  for (size_t a = 0; a < dists.size(); ++a) {
    for (size_t b = a + 1; b < dists.size(); ++b) {
      sum += JensenShannonBits(dists[a], dists[b]);
      ++n;
    }
  }
  return n ? sum / static_cast<double>(n) : 0.0;
}

MeanSd MeanAndSd(std::span<const double> xs) {
  MeanSd r;
  if (xs.empty()) return r;
  for (double x : xs) r.mean += x;
  r.mean /= static_cast<double>(xs.size());
  if (xs.size() < 2) return r;
  double ss = 0;
  for (double x : xs) ss += (x - r.mean) * (x - r.mean);
  r.sd = std::sqrt(ss / static_cast<double>(xs.size() - 1));
  return r;
}

}  // namespace moe
