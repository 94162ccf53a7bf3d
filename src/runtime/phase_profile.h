// SPDX-License-Identifier: Apache-2.0
// Where a forward pass spends its time: wall time and weight bytes per phase of a layer, and
// the time the compute thread pool's caller waited for the last tasks of a ParallelFor. Always
// on (two clock reads per phase, ~6 phases per layer); `moestream bench` reports it per decode
// token (docs/benchmarks.md, `decode_phases`), which says which part of a token falls short of
// the memory roofline.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <string>

namespace moe {

enum class Phase : uint8_t {
  kAttnProj,   // q/k/v and o projections (MatMuls)
  kAttention,  // q/k norms, RoPE, KV append, scores, softmax, weighted sum
  kRouter,     // router MatMul, top-k, grouping by expert
  kExperts,    // expert FFNs (incl. waits for streamed blocks); non-MoE layers' dense MLP
  kLmHead,     // final norm and lm_head
  kCount,
};
inline constexpr size_t kPhaseCount = static_cast<size_t>(Phase::kCount);

// "attn_proj", "attention", "router", "experts", "lm_head".
const char* PhaseName(Phase p);

struct PhaseProfile {
  std::array<uint64_t, kPhaseCount> ns{};
  std::array<uint64_t, kPhaseCount> weight_bytes{};  // bytes of the matrices multiplied
  // Of ns: the caller's waits for the last tasks of the phase's ParallelFors (load imbalance).
  std::array<uint64_t, kPhaseCount> tail_ns{};
  uint64_t forward_ns = 0;  // whole Forward calls: what the phases do not cover is the rest
  uint64_t forwards = 0;

  // Forward time no phase covers (embedding row, norms, residual adds).
  uint64_t rest_ns() const;
  PhaseProfile& operator+=(const PhaseProfile& o);
  PhaseProfile& operator-=(const PhaseProfile& o);
};

// "attn_proj 24.50 ms (37.0 GB/s), attention 1.40 ms, …, rest 0.20 ms": each phase's time per
// Forward call of `p` (and the rate at which it moved its weights), for --stats lines.
std::string PhaseSummary(const PhaseProfile& p);

// Adds the wall time from construction to destruction to profile->ns[phase].
class PhaseTimer {
 public:
  PhaseTimer(PhaseProfile* profile, Phase phase)
      : slot_(&profile->ns[static_cast<size_t>(phase)]), t0_(std::chrono::steady_clock::now()) {}
  ~PhaseTimer() {
    *slot_ += static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now() - t0_)
                                        .count());
  }
  PhaseTimer(const PhaseTimer&) = delete;
  PhaseTimer& operator=(const PhaseTimer&) = delete;

 private:
  uint64_t* slot_;
  std::chrono::steady_clock::time_point t0_;
};

}  // namespace moe
