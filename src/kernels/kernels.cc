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

// AVX3_VNNI: the AVX3 target plus AVX512-VNNI instructions in the kernels that have a use for
// them (qacts_x86-inl.h). Highway 1.0.3 has no such target (its AVX3_DL asks for the VEX-encoded
// avxvnni, which Zen 4 lacks, and is not compiled, targets.h), so it is a flag over AVX3.
constexpr std::string_view kVnniName = "AVX3_VNNI";

bool CpuHasVnni() {
#if HWY_ARCH_X86 && (HWY_TARGETS & HWY_AVX3) && (defined(__GNUC__) || defined(__clang__))
  static const bool has = [] {
    __builtin_cpu_init();  // may run from a static initialiser, before libgcc's
    return (CpuTargets() & HWY_AVX3) != 0 && __builtin_cpu_supports("avx512vnni");
  }();
  return has;
#else
  return false;
#endif
}

// Whether the AVX3 kernels use VNNI now, and after ForceTarget("").
struct VnniChoice {
  bool on, startup;
};
VnniChoice& Vnni() {
  static VnniChoice v{CpuHasVnni(), CpuHasVnni()};
  return v;
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

bool UseVnni() { return Vnni().on; }

std::vector<std::string> AvailableTargets() {
  std::vector<std::string> names;
  for (int64_t bits = AvailableTargetBits(); bits != 0; bits &= bits - 1) {
    const int64_t bit = bits & -bits;
    if (bit == HWY_AVX3 && CpuHasVnni()) names.emplace_back(kVnniName);
    names.emplace_back(hwy::TargetName(bit));
  }
  return names;
}

// The Highway target mask for a target name (AvailableTargets, ForceTarget), or 0 where it is
// not compiled or the CPU lacks it.
int64_t MaskFor(std::string_view name) {
  if (EqualsIgnoreCase(name, kVnniName)) return CpuHasVnni() ? HWY_AVX3 : 0;
  return TargetBit(name) & CpuTargets();
}

bool ForceTarget(std::string_view name) {
  int64_t mask = startup_mask;
  bool vnni = Vnni().startup;
  if (!name.empty()) {
    mask = MaskFor(name);
    if (mask == 0) return false;
    vnni = EqualsIgnoreCase(name, kVnniName);
  }
  ApplyMask(mask);
  Vnni().on = vnni;
  return true;
}

bool ApplyTargetFromEnv() {
  static const bool applied = [] {
    CpuTargets();
    const char* env = std::getenv("MOE_FORCE_TARGET");
    if (env == nullptr || *env == '\0') return true;
    if (ForceTarget(env)) {
      startup_mask = MaskFor(env);
      Vnni().startup = Vnni().on;
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
