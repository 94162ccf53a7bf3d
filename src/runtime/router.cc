// SPDX-License-Identifier: Apache-2.0
#include "runtime/router.h"

#include <cmath>
#include <limits>

#include "kernels/kernels.h"

namespace moe {

void Route(float* logits, int64_t n_experts, const RouterOptions& opts, int32_t* idx,
           float* weights) {
  const bool masked = !opts.allowed.empty();
  if (masked) {
    for (int64_t e = 0; e < n_experts; ++e) {
      if (!opts.allowed[static_cast<size_t>(e)]) logits[e] = -std::numeric_limits<float>::infinity();
    }
  }
  kernels::Softmax(logits, static_cast<size_t>(n_experts));
  // Selection by repeated max keeps the order stable and costs k·E (E ≤ a few hundred).
  const int64_t k = opts.top_k;
  for (int64_t j = 0; j < k; ++j) {
    int32_t best = -1;
    float best_p = -1.0f;
    for (int64_t e = 0; e < n_experts; ++e) {
      bool taken = false;
      for (int64_t q = 0; q < j; ++q) taken |= idx[q] == e;
      if (taken) continue;
      const float p = std::isnan(logits[e]) ? -1.0f : logits[e];
      if (p > best_p) {
        best_p = p;
        best = static_cast<int32_t>(e);
      }
    }
    if (best < 0) {  // every remaining probability is NaN: take the lowest free id
      for (int64_t e = 0; e < n_experts && best < 0; ++e) {
        bool taken = false;
        for (int64_t q = 0; q < j; ++q) taken |= idx[q] == e;
        if (!taken) best = static_cast<int32_t>(e);
      }
      best_p = 0.0f;
    }
    idx[j] = best;
    weights[j] = best_p;
  }
  if (opts.norm_topk_prob) {
    float sum = 0.0f;
    for (int64_t j = 0; j < k; ++j) sum += weights[j];
    if (sum > 0.0f) {
      for (int64_t j = 0; j < k; ++j) weights[j] /= sum;
    }
  }
}

}  // namespace moe
