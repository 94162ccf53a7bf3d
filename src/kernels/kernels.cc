// SPDX-License-Identifier: Apache-2.0
// Target selection: lists the compiled targets the CPU supports and forces one of them (tests,
// MOE_FORCE_TARGET) through Highway's supported-target mask.
#include "kernels/targets.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "hwy/highway.h"
#include "hwy/targets.h"
#include "kernels/kernels.h"
#include "kernels/target_select.h"

namespace moe::kernels {
namespace {

// Targets the CPU supports, ignoring any forcing; cached on first use, before we force anything.
int64_t CpuTargets() {
  static const int64_t targets = hwy::SupportedTargets();
  return targets;
}

// The mask ForceTarget("") returns to: MOE_FORCE_TARGET's target, or 0 (no forcing).
int64_t startup_mask = 0;

void ApplyMask(int64_t mask) {
  hwy::SetSupportedTargetsForTest(mask);
  hwy::GetChosenTarget().Update(hwy::SupportedTargets());
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char ca = a[i], cb = b[i];
    if (ca >= 'A' && ca <= 'Z') ca = static_cast<char>(ca - 'A' + 'a');
    if (cb >= 'A' && cb <= 'Z') cb = static_cast<char>(cb - 'A' + 'a');
    if (ca != cb) return false;
  }
  return true;
}

// The target bit for `name` among the compiled targets, or 0.
int64_t TargetBit(std::string_view name) {
  if (EqualsIgnoreCase(name, "scalar") || EqualsIgnoreCase(name, "baseline")) {
    return HWY_TARGETS & (HWY_EMU128 | HWY_SCALAR);
  }
  if (EqualsIgnoreCase(name, "avx512")) return HWY_TARGETS & HWY_AVX3;
  for (int64_t bits = HWY_TARGETS; bits != 0; bits &= bits - 1) {
    const int64_t bit = bits & -bits;
    if (EqualsIgnoreCase(name, hwy::TargetName(bit))) return bit;
  }
  return 0;
}

}  // namespace

int64_t AvailableTargetBits() { return CpuTargets() & HWY_TARGETS; }

std::vector<std::string> AvailableTargets() {
  std::vector<std::string> names;
  for (int64_t bits = AvailableTargetBits(); bits != 0; bits &= bits - 1) {
    names.emplace_back(hwy::TargetName(bits & -bits));
  }
  return names;
}

bool ForceTarget(std::string_view name) {
  const int64_t cpu = CpuTargets();
  int64_t mask = startup_mask;
  if (!name.empty()) {
    mask = TargetBit(name) & cpu;
    if (mask == 0) return false;
  }
  ApplyMask(mask);
  return true;
}

bool ApplyTargetFromEnv() {
  static const bool applied = [] {
    CpuTargets();
    const char* env = std::getenv("MOE_FORCE_TARGET");
    if (env == nullptr || *env == '\0') return true;
    if (ForceTarget(env)) {
      startup_mask = TargetBit(env) & CpuTargets();
    } else {
      std::string names;
      for (const std::string& n : AvailableTargets()) names += " " + n;
      std::fprintf(stderr, "MOE_FORCE_TARGET=%s: unknown or unsupported target (available:%s, "
                   "scalar); using the best one\n", env, names.c_str());
    }
    return true;
  }();
  return applied;
}

}  // namespace moe::kernels
