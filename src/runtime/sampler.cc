// SPDX-License-Identifier: Apache-2.0
#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace moe {

int32_t ArgMaxFirst(const float* logits, size_t n) {
  size_t best = 0;
  for (size_t i = 1; i < n; ++i) {
    if (logits[i] > logits[best]) best = i;
  }
  return static_cast<int32_t>(best);
}

Sampler::Sampler(int64_t vocab_size, const SamplingParams& params)
    : p_(params),
      rng_(params.seed),
      order_(static_cast<size_t>(vocab_size)),
      seen_(static_cast<size_t>(vocab_size)) {}

void Sampler::ApplyPenalty(float* logits, std::span<const int32_t> history) {
  if (p_.repetition_penalty == 1.0f) return;
  const size_t V = order_.size();
  for (int32_t t : history) {
    if (t < 0 || static_cast<size_t>(t) >= V || seen_[static_cast<size_t>(t)]) continue;
    seen_[static_cast<size_t>(t)] = 1;
    float& l = logits[t];
    l = l < 0 ? l * p_.repetition_penalty : l / p_.repetition_penalty;
  }
  for (int32_t t : history) {
    if (t >= 0 && static_cast<size_t>(t) < V) seen_[static_cast<size_t>(t)] = 0;
  }
}

bool Sampler::Before(const float* logits, int32_t a, int32_t b) {
  return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
}

int32_t Sampler::Sample(float* logits, std::span<const int32_t> history) {
  const size_t V = order_.size();
  ApplyPenalty(logits, history);
  if (p_.temperature <= 0.0f) return ArgMaxFirst(logits, V);
  for (size_t i = 0; i < V; ++i) logits[i] /= p_.temperature;
  // Candidates sorted by logit (descending; ties by id) — only as many as top-k needs.
  std::iota(order_.begin(), order_.end(), 0);
  const auto cmp = [&](int32_t a, int32_t b) { return Before(logits, a, b); };
  size_t n = V;
  if (p_.top_k > 0 && static_cast<size_t>(p_.top_k) < V) {
    n = static_cast<size_t>(p_.top_k);
    std::partial_sort(order_.begin(), order_.begin() + static_cast<ptrdiff_t>(n), order_.end(), cmp);
  } else {
    std::sort(order_.begin(), order_.end(), cmp);
  }
  return Draw(logits, n);
}

int32_t Sampler::SampleRows(float* logits, std::span<const int32_t> rows,
                            std::span<const int32_t> history) {
  ApplyPenalty(logits, history);
  if (p_.temperature <= 0.0f) {  // ArgMaxFirst over the rows: the first largest, lowest id
    int32_t best = rows.front();
    for (const int32_t r : rows) {
      if (Before(logits, r, best)) best = r;
    }
    return best;
  }
  for (const int32_t r : rows) logits[r] /= p_.temperature;
  std::copy(rows.begin(), rows.end(), order_.begin());
  const size_t n = std::min(rows.size(), static_cast<size_t>(std::max<int64_t>(p_.top_k, 1)));
  std::partial_sort(order_.begin(), order_.begin() + static_cast<ptrdiff_t>(n),
                    order_.begin() + static_cast<ptrdiff_t>(rows.size()),
                    [&](int32_t a, int32_t b) { return Before(logits, a, b); });
  return Draw(logits, n);
}

int32_t Sampler::Draw(float* logits, size_t n) {
  // Softmax over the candidates order_[0, n).
  const float mx = logits[order_[0]];
  double sum = 0.0;
  for (size_t i = 0; i < n; ++i) {
    float& l = logits[order_[i]];
    l = std::exp(l - mx);
    sum += l;
  }
  for (size_t i = 0; i < n; ++i) logits[order_[i]] = static_cast<float>(logits[order_[i]] / sum);
  if (p_.top_p < 1.0f) {  // smallest prefix with mass ≥ top_p (at least one token)
    double cum = 0.0;
    size_t keep = 0;
    while (keep < n) {
      cum += logits[order_[keep++]];
      if (cum >= p_.top_p) break;
    }
    n = keep;
  }
  if (p_.min_p > 0.0f) {
    const float floor = p_.min_p * logits[order_[0]];
    size_t keep = 1;
    while (keep < n && logits[order_[keep]] >= floor) ++keep;
    n = keep;
  }
  double total = 0.0;
  for (size_t i = 0; i < n; ++i) total += logits[order_[i]];
  const double r = std::uniform_real_distribution<double>(0.0, total)(rng_);
  double acc = 0.0;
  for (size_t i = 0; i < n; ++i) {
    acc += logits[order_[i]];
    if (r < acc) return order_[i];
  }
  return order_[n - 1];
}

}  // namespace moe
