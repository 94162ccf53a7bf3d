// SPDX-License-Identifier: Apache-2.0
// MoE routing (spec §2.5): f32 softmax over all experts' router logits, top-k in descending
// probability (ties → lower expert id, as torch.topk), renormalised when norm_topk_prob.
// An optional mask restricts the choice to a subset (analysis only: output is no longer exact).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace moe {

struct RouterOptions {
  int64_t top_k = 0;
  bool norm_topk_prob = true;
  // Experts allowed to be chosen; empty = all. Masked experts get probability 0 before top-k,
  // and the softmax is taken over the allowed ones only.
  std::vector<uint8_t> allowed;  // [n_experts], 1 = allowed
};

// logits[n_experts] (overwritten with probabilities) → idx[k], weights[k].
void Route(float* logits, int64_t n_experts, const RouterOptions& opts, int32_t* idx,
           float* weights);

}  // namespace moe
