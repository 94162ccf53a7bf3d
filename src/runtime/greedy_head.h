// SPDX-License-Identifier: Apache-2.0
// An exact greedy and top-k lm_head (`--lm-head-shadow q8`): the id of the largest logit (or
// the k largest logits and their values), as the lm_head MatMul computes them, found while
// reading mostly a q8 copy of lm_head (1.125 bytes per weight against bf16's 2; docs/kernels.md
// "Greedy and top-k lm_head from a q8 shadow").
//
// For each row r, with x the normed hidden state and x̂ its int16 block quantization (what the
// q8 kernel multiplies), the shadow logit q_r and the logit l_r the lm_head MatMul computes differ
// by at most
//   E_r = ‖w_r − ŵ_r‖·‖x‖ + ‖ŵ_r‖·‖x − x̂‖                      (weights and activations rounded)
//       + γ(H + 64)·‖w_r‖·‖x‖ + γ(H/32 + 64)·‖ŵ_r‖·‖x̂‖         (f32 rounding of either kernel)
// (Cauchy–Schwarz on each difference; γ(n) = n·2⁻²⁴ / (1 − n·2⁻²⁴) bounds any f32 summation
// order with or without FMA, with more terms than either kernel rounds). With
// T = max_r (q_r − E_r), every row with q_r + E_r < T has l_r < T ≤ max l, so the rows left —
// the candidates — hold the largest l and all its ties; computing just those exactly (the MatMul
// gives bit-identical rows for any row range) yields the same argmax, lowest id on ties, as
// the full product. For the k largest (top-k sampling), T is the k-th largest q_r − E_r: at
// least k rows have l ≥ T, so the rows with q_r + E_r < T are below all of the k largest.
// The row norms are computed once in double and rounded up.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/kernels.h"
#include "util/huge_buffer.h"
#include "util/status.h"

namespace moe {

class GreedyHead {
 public:
  // The temperatures top-k sampling may divide the candidates' logits by (Candidates keeps
  // them apart from the rows it leaves out after the division too; logits up to 1e30 stay
  // finite). Others need every logit.
  static constexpr float kMinTemperature = 1e-6f, kMaxTemperature = 1e6f;

  // The q8 copy of `lm_head` ([V, H] f32/bf16/f16, row-major or tiled; tiled itself where that
  // pays) and its per-row bounds, computed over `threads` threads. kUnsupported when lm_head is
  // already quantized (--dense-quant), kResourceExhausted when its memory cannot be allocated.
  static Result<std::unique_ptr<GreedyHead>> Build(const kernels::WeightView& lm_head,
                                                   size_t threads = 1);

  const kernels::WeightView& shadow() const { return shadow_; }

  // The candidate rows (ascending) given x (H floats), its QuantizeActs form (xq, xd) and the
  // shadow's logits q = MatMulQuantizedActs(shadow, xq, xd), for a caller that needs the k
  // largest logits: with T the k-th largest q_r − E_r over the rows not marked in `skip` (V
  // bytes, or null for none), the unmarked rows with q_r + E_r ≥ T. At least k rows have l ≥ T,
  // so every unmarked row left out is strictly below the k largest (ties included); a marked
  // row is the caller's to compute (e.g. one whose logit the repetition penalty changes). False
  // when x, q or a bound is not finite, or k is 0 (`out` then holds nothing useful): the caller
  // needs every logit; also when a logit could reach 1e30. The rows left out stay below the k
  // largest after a division by any temperature in [kMinTemperature, kMaxTemperature] too.
  // `heap` (room for k) and `out` (room for V) are scratch: reserve them to keep the call free
  // of allocation.
  bool Candidates(const float* x, const int16_t* xq, const float* xd, const float* q, size_t k,
                  const uint8_t* skip, std::vector<double>* heap, std::vector<int32_t>* out) const;

 private:
  GreedyHead() = default;
  size_t V_ = 0, H_ = 0;
  HugeBuffer q8_;
  kernels::WeightView shadow_;
  // E_r = alpha_[r]·‖x‖ + beta_[r]·(‖x − x̂‖ + γ(H/32 + 64)·‖x̂‖).
  std::vector<double> alpha_;  // ‖w_r − ŵ_r‖ + γ(H + 64)·‖w_r‖
  std::vector<double> beta_;   // ‖ŵ_r‖
};

}  // namespace moe
