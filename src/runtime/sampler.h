// SPDX-License-Identifier: Apache-2.0
// Next-token choice from f32 logits, in HF generate's processor order: repetition penalty,
// then temperature, top-k, top-p, min-p, then a draw from the seeded RNG. temperature 0 = greedy
// (argmax, lowest id on ties). Buffers are allocated once (vocab-sized).
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace moe {

// The index of the first largest of n logits (NaNs never win over a number after index 0):
// greedy decoding's choice.
int32_t ArgMaxFirst(const float* logits, size_t n);

struct SamplingParams {
  float temperature = 0.0f;  // 0 = greedy
  int64_t top_k = 0;         // 0 = off
  float top_p = 1.0f;        // 1 = off
  float min_p = 0.0f;        // 0 = off
  float repetition_penalty = 1.0f;  // 1 = off; HF semantics (divide positive, multiply negative)
  uint64_t seed = 0;
};

class Sampler {
 public:
  Sampler(int64_t vocab_size, const SamplingParams& params);
  // `logits` is modified in place. `history`: tokens the repetition penalty applies to.
  int32_t Sample(float* logits, std::span<const int32_t> history);
  // Sample's choice, the same draw included, when `logits` holds the right values only at
  // `rows` (distinct ids), which hold every token of `history` and the top_k largest logits
  // after the penalty (ties included; greedy: the largest and its ties), as
  // Session::ForwardTopK returns them. Needs top_k > 0 unless greedy.
  int32_t SampleRows(float* logits, std::span<const int32_t> rows,
                     std::span<const int32_t> history);
  // The k for Session::ForwardTopK: 1 when greedy, else top_k (0 = off: every logit counts).
  int64_t rows_needed() const { return p_.temperature <= 0.0f ? 1 : p_.top_k; }

 private:
  void ApplyPenalty(float* logits, std::span<const int32_t> history);
  // Higher logit first, then lower id: the candidates' order.
  static bool Before(const float* logits, int32_t a, int32_t b);
  // Softmax over order_[0, n), then top-p, min-p and the draw.
  int32_t Draw(float* logits, size_t n);

  SamplingParams p_;
  std::mt19937_64 rng_;
  std::vector<int32_t> order_;
  std::vector<uint8_t> seen_;
};

}  // namespace moe
