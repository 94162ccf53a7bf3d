// SPDX-License-Identifier: Apache-2.0
#include "runtime/generator.h"

#include <algorithm>
#include <chrono>

#include "runtime/greedy_head.h"

namespace moe {
namespace {

double MsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

Status Generate(Session& session, std::span<const int32_t> prompt, const GenerateOptions& opts,
                const TokenCallback& on_token, std::vector<int32_t>* out, GenerateStats* stats) {
  const int64_t V = session.vocab_size();
  std::vector<float> logits(static_cast<size_t>(V));
  std::vector<int32_t> history(prompt.begin(), prompt.end());
  history.reserve(prompt.size() + static_cast<size_t>(std::max<int64_t>(opts.max_new_tokens, 0)));
  Sampler sampler(V, opts.sampling);
  GenerateStats st;
  st.prompt_tokens = static_cast<int64_t>(prompt.size());
  // Greedy or top-k decoding with an lm_head shadow needs each step's k largest logits and
  // those the repetition penalty changes (Session::ForwardTopK: the same ids, fewer bytes read).
  const int64_t k = sampler.rows_needed();
  const float temp = opts.sampling.temperature;
  const bool top_k_head =
      session.has_greedy_head() && k >= 1 && k <= V / 16 &&
      (temp <= 0.0f || (temp >= GreedyHead::kMinTemperature && temp <= GreedyHead::kMaxTemperature));
  const bool penalty = opts.sampling.repetition_penalty != 1.0f;
  std::span<const int32_t> rows;
  const auto forward = [&](std::span<const int32_t> tokens) -> Status {
    if (!top_k_head) return session.Forward(tokens, LogitsMode::kLast, logits.data());
    return session.ForwardTopK(tokens, static_cast<size_t>(k),
                               penalty ? std::span<const int32_t>(history) : std::span<const int32_t>(),
                               logits.data(), &rows);
  };
  auto t0 = std::chrono::steady_clock::now();
  MOE_TRY(forward(prompt));
  st.prefill_ms = MsSince(t0);
  const PhaseProfile after_prefill = session.profile();
  t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < opts.max_new_tokens; ++i) {
    const int32_t tok = rows.empty() ? sampler.Sample(logits.data(), history)
                                     : sampler.SampleRows(logits.data(), rows, history);
    history.push_back(tok);
    if (out) out->push_back(tok);
    ++st.generated_tokens;
    const bool stop = std::find(opts.stop_ids.begin(), opts.stop_ids.end(), tok) != opts.stop_ids.end();
    if (on_token && !on_token(tok)) break;
    if (stop) {
      st.stopped_on_eos = true;
      break;
    }
    if (i + 1 == opts.max_new_tokens) break;
    if (session.n_past() >= session.max_context()) break;
    MOE_TRY(forward(std::span<const int32_t>(&tok, 1)));
  }
  st.decode_ms = MsSince(t0);
  st.decode_phases = session.profile();
  st.decode_phases -= after_prefill;
  if (stats) *stats = st;
  return Status::Ok();
}

}  // namespace moe
