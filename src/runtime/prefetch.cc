// SPDX-License-Identifier: Apache-2.0
#include "runtime/prefetch.h"

#include <algorithm>

#include "kernels/kernels.h"

namespace moe {

RouterLookahead::RouterLookahead(const ModelWeights& w, const RouterOptions& router,
                                 int64_t max_batch)
    : w_(w), router_(router) {
  (void)max_batch;
  const Qwen3MoeConfig& c = w.config();
  const size_t E = static_cast<size_t>(c.num_experts);
  next_moe_.assign(static_cast<size_t>(c.num_hidden_layers), -1);
  int64_t next = -1;
  for (int64_t l = c.num_hidden_layers - 1; l >= 0; --l) {
    next_moe_[static_cast<size_t>(l)] = next;
    if (w.layer(l).is_moe) next = l;
  }
  logits_.assign(E, 0.f);
  idx_.assign(static_cast<size_t>(router.top_k), 0);
  wts_.assign(idx_.size(), 0.f);
  score_.assign(E, 0.f);
  set_.assign(E, 0);
}

void RouterLookahead::Hint(int64_t layer, const float* xn, int64_t n, ExpertProvider& provider) {
  const int64_t next = next_moe_[static_cast<size_t>(layer)];
  if (next < 0) return;
  const kernels::WeightView& router = w_.layer(next).router.view;
  const size_t E = logits_.size(), H = static_cast<size_t>(w_.config().hidden_size);
  std::fill(score_.begin(), score_.end(), 0.f);
  for (int64_t t = 0; t < n; ++t) {
    kernels::MatMul(router, xn + static_cast<size_t>(t) * H, 1, H, logits_.data(), E, 0, E);
    Route(logits_.data(), static_cast<int64_t>(E), router_, idx_.data(), wts_.data());
    // An expert's score: its routing weights summed over the rows (> 0 once chosen).
    for (size_t j = 0; j < idx_.size(); ++j) {
      score_[static_cast<size_t>(idx_[j])] += std::max(wts_[j], 1e-30f);
    }
  }
  size_t m = 0;
  for (size_t e = 0; e < E; ++e) {
    if (score_[e] > 0.f) set_[m++] = static_cast<int32_t>(e);
  }
  // Most likely first: the provider reads hints in this order, so a wrong guess is more often
  // still queued (and dropped) when the layer's true experts are known. Ties by expert id;
  // std::sort, unlike std::stable_sort, allocates nothing on the decode path.
  std::sort(set_.begin(), set_.begin() + static_cast<std::ptrdiff_t>(m), [&](int32_t a, int32_t b) {
    const float sa = score_[static_cast<size_t>(a)], sb = score_[static_cast<size_t>(b)];
    return sa != sb ? sa > sb : a < b;
  });
  provider.Hint(next, {set_.data(), m});
}

}  // namespace moe
