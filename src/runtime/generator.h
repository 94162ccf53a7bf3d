// SPDX-License-Identifier: Apache-2.0
// Generation loop: prefill the prompt, then decode one token at a time through the KV cache,
// stopping on an EOS id, max_new_tokens, or when the callback returns false.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "runtime/sampler.h"
#include "runtime/session.h"
#include "util/status.h"

namespace moe {

struct GenerateOptions {
  int64_t max_new_tokens = 32;
  SamplingParams sampling;
  std::vector<int32_t> stop_ids;  // usually the config's eos ids
};

// Called with each new token; return false to stop.
using TokenCallback = std::function<bool(int32_t token)>;

struct GenerateStats {
  int64_t prompt_tokens = 0;
  int64_t generated_tokens = 0;
  double prefill_ms = 0;
  double decode_ms = 0;
  bool stopped_on_eos = false;
  PhaseProfile decode_phases;  // the decode steps' Forward calls (runtime/phase_profile.h)
};

// Appends the prompt to `session` and generates. `out` receives the new tokens (including a
// final stop id when one was produced).
Status Generate(Session& session, std::span<const int32_t> prompt, const GenerateOptions& opts,
                const TokenCallback& on_token, std::vector<int32_t>* out, GenerateStats* stats);

}  // namespace moe
