// SPDX-License-Identifier: Apache-2.0
// Router lookahead: after layer L's attention, apply the NEXT MoE layer's router to the current
// normalised hidden rows, take the union of the per-token top-k, most likely first (routing
// weight summed over the rows), and Hint() it to the expert provider so the cache starts those
// reads while layer L's experts compute. The prediction only decides what is loaded early, never
// what is computed, so logits stay bit-identical.
// Precision/recall of the predicted sets are counted by the cache (CacheStats).
// Owns its scratch (allocated at construction; Hint allocates nothing). Not thread-safe: one per
// Session.
#pragma once

#include <cstdint>
#include <vector>

#include "experts/expert_provider.h"
#include "model/model_weights.h"
#include "runtime/router.h"

namespace moe {

class RouterLookahead {
 public:
  RouterLookahead(const ModelWeights& w, const RouterOptions& router, int64_t max_batch);
  // xn: [n, hidden] f32 rows (post-attention-norm of `layer`). No-op when no MoE layer follows.
  void Hint(int64_t layer, const float* xn, int64_t n, ExpertProvider& provider);

 private:
  const ModelWeights& w_;
  RouterOptions router_;
  std::vector<int64_t> next_moe_;  // [layer] → next MoE layer after it, or -1
  std::vector<float> logits_;      // [E]
  std::vector<int32_t> idx_;       // [k]
  std::vector<float> wts_;         // [k]
  std::vector<float> score_;       // [E] routing weight summed over the rows
  std::vector<int32_t> set_;       // [E] predicted experts, most likely first
};

}  // namespace moe
