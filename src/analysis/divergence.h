// SPDX-License-Identifier: Apache-2.0
// Distribution statistics for routing analysis: normalisation, entropy and Jensen–Shannon
// divergence (base 2, so 0 ≤ JS ≤ 1 bit), plus mean and standard deviation.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace moe {

// counts / sum(counts); all zeros when the sum is 0.
std::vector<double> Normalize(std::span<const double> counts);
// Shannon entropy in bits; 0·log 0 = 0.
double EntropyBits(std::span<const double> p);
// JS(p, q) = H((p+q)/2) − (H(p) + H(q))/2 in bits. p and q must have equal sizes and each sum
// to 1 (or be all zero).
double JensenShannonBits(std::span<const double> p, std::span<const double> q);
// Mean of JS over all unordered pairs of distinct distributions (0 when fewer than 2).
double MeanPairwiseJs(const std::vector<std::vector<double>>& dists);

struct MeanSd {
  double mean = 0;
  double sd = 0;  // sample standard deviation (n − 1); 0 for n < 2
};
MeanSd MeanAndSd(std::span<const double> xs);

}  // namespace moe
