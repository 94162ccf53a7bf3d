// SPDX-License-Identifier: Apache-2.0
// Perplexity of a token sequence under the engine, and the windowed forward pass the trace tool
// shares with it.
//
// Windows: the tokens are cut into consecutive NON-overlapping windows of `window` tokens (the
// last one may be shorter); each window starts from an empty context (Session::Reset). Inside a
// window every token but the first is scored: NLL = −log softmax(logits[i−1])[token i], computed
// in double from the f32 logits. A window of one token scores nothing. perplexity =
// exp(Σ NLL / n_scored). Non-overlapping windows make each token's context at most `window − 1`
// tokens (lower context at the start of each window), which is the cheap, standard choice; a
// sliding window would score each token with a full context at `window`× the cost.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "runtime/session.h"
#include "util/status.h"

namespace moe {

struct PerplexityOptions {
  int64_t window = 512;
};

struct PerplexityResult {
  int64_t n_tokens = 0;   // input tokens
  int64_t n_windows = 0;
  int64_t n_scored = 0;
  double sum_nll = 0;     // nats
  std::vector<double> nll;  // per scored token, in order
  double mean_nll() const { return n_scored ? sum_nll / static_cast<double>(n_scored) : 0.0; }
  double perplexity() const;
};

// −log softmax(logits)[target] in double (max-subtracted log-sum-exp).
double TokenNll(std::span<const float> logits, int32_t target);

// Runs every window through `session` (whose max_context must be ≥ window: kUsage otherwise).
// Errors of Session::Forward are returned unchanged. The session's route recorder, if set,
// receives the routing of every window (pos restarts at 0 in each window).
Result<PerplexityResult> ComputePerplexity(Session& session, std::span<const int32_t> tokens,
                                           const PerplexityOptions& opts);

// The same windows without logits (for routing traces).
Status ForwardWindows(Session& session, std::span<const int32_t> tokens, int64_t window);

}  // namespace moe
