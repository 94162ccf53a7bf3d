// SPDX-License-Identifier: Apache-2.0
#include "analysis/perplexity.h"

#include <algorithm>
#include <cmath>

namespace moe {

double PerplexityResult::perplexity() const { return std::exp(mean_nll()); }

double TokenNll(std::span<const float> logits, int32_t target) {
  double mx = -INFINITY;
  for (float v : logits) mx = std::max(mx, static_cast<double>(v));
  double sum = 0;
  for (float v : logits) sum += std::exp(static_cast<double>(v) - mx);
  return mx + std::log(sum) - static_cast<double>(logits[static_cast<size_t>(target)]);
}

namespace {

Status CheckWindow(const Session& session, int64_t window) {
  if (window < 1 || window > session.max_context()) {
    return Error(StatusCode::kUsage, "window of {} tokens outside [1, {}] (the context size)",
                 window, session.max_context());
  }
  return Status::Ok();
}

}  // namespace

Result<PerplexityResult> ComputePerplexity(Session& session, std::span<const int32_t> tokens,
                                           const PerplexityOptions& opts) {
  MOE_TRY(CheckWindow(session, opts.window));
  PerplexityResult r;
  r.n_tokens = static_cast<int64_t>(tokens.size());
  const auto V = static_cast<size_t>(session.vocab_size());
  std::vector<float> logits(static_cast<size_t>(opts.window) * V);
  for (size_t start = 0; start < tokens.size(); start += static_cast<size_t>(opts.window)) {
    const size_t n = std::min(tokens.size() - start, static_cast<size_t>(opts.window));
    session.Reset();
    MOE_TRY(session.Forward(tokens.subspan(start, n), LogitsMode::kAll, logits.data()));
    ++r.n_windows;
    for (size_t i = 1; i < n; ++i) {
      const double nll = TokenNll({&logits[(i - 1) * V], V}, tokens[start + i]);
      r.nll.push_back(nll);
      r.sum_nll += nll;
      ++r.n_scored;
    }
  }
  return r;
}

Status ForwardWindows(Session& session, std::span<const int32_t> tokens, int64_t window) {
  MOE_TRY(CheckWindow(session, window));
  for (size_t start = 0; start < tokens.size(); start += static_cast<size_t>(window)) {
    const size_t n = std::min(tokens.size() - start, static_cast<size_t>(window));
    session.Reset();
    MOE_TRY(session.Forward(tokens.subspan(start, n), LogitsMode::kNone, nullptr));
  }
  return Status::Ok();
}

}  // namespace moe
