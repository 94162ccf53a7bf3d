// SPDX-License-Identifier: Apache-2.0
#include "runtime/phase_profile.h"

#include <fmt/format.h>

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
    a->tail_ns[i] = op(a->tail_ns[i], b.tail_ns[i]);
  }
  a->forward_ns = op(a->forward_ns, b.forward_ns);
  a->forwards = op(a->forwards, b.forwards);
}

}  // namespace

std::string PhaseSummary(const PhaseProfile& p) {
  const double calls = p.forwards ? static_cast<double>(p.forwards) : 1.0;
  std::string s;
  for (size_t i = 0; i < kPhaseCount; ++i) {
    s += fmt::format("{} {:.2f} ms", PhaseName(static_cast<Phase>(i)),
                     static_cast<double>(p.ns[i]) / 1e6 / calls);
    if (p.weight_bytes[i] && p.ns[i]) {
      s += fmt::format(" ({:.1f} GB/s)", static_cast<double>(p.weight_bytes[i]) /
                                             static_cast<double>(p.ns[i]));
    }
    s += ", ";
  }
  s += fmt::format("rest {:.2f} ms", static_cast<double>(p.rest_ns()) / 1e6 / calls);
  return s;
}

uint64_t PhaseProfile::rest_ns() const {
  uint64_t covered = 0;
  for (uint64_t v : ns) covered += v;
  return forward_ns > covered ? forward_ns - covered : 0;
}

PhaseProfile& PhaseProfile::operator+=(const PhaseProfile& o) {
  Combine(this, o, [](uint64_t x, uint64_t y) { return x + y; });
  return *this;
}

PhaseProfile& PhaseProfile::operator-=(const PhaseProfile& o) {
  Combine(this, o, [](uint64_t x, uint64_t y) { return x - y; });
  return *this;
}

}  // namespace moe
