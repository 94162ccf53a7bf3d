// SPDX-License-Identifier: Apache-2.0
#include "runtime/phase_profile.h"

namespace moe {

const char* PhaseName(Phase p) {
  switch (p) {
    case Phase::kAttnProj: return "attn_proj";
    case Phase::kAttention: return "attention";
    case Phase::kRouter: return "router";
    case Phase::kExperts: return "experts";
    case Phase::kLmHead: return "lm_head";
    case Phase::kCount: break;
  }
  return "?";
}

namespace {

template <typename Op>
void Combine(PhaseProfile* a, const PhaseProfile& b, Op op) {
  for (size_t i = 0; i < kPhaseCount; ++i) {
    a->ns[i] = op(a->ns[i], b.ns[i]);
    a->weight_bytes[i] = op(a->weight_bytes[i], b.weight_bytes[i]);
  }
  a->forward_ns = op(a->forward_ns, b.forward_ns);
  a->forwards = op(a->forwards, b.forwards);
}

}  // namespace

PhaseProfile& PhaseProfile::operator+=(const PhaseProfile& o) {
  Combine(this, o, [](uint64_t x, uint64_t y) { return x + y; });
  return *this;
}

PhaseProfile& PhaseProfile::operator-=(const PhaseProfile& o) {
  Combine(this, o, [](uint64_t x, uint64_t y) { return x - y; });
  return *this;
}

}  // namespace moe
