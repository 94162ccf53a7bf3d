// SPDX-License-Identifier: Apache-2.0
// Internal: applies MOE_FORCE_TARGET once per process (see kernels.h ForceTarget).
#pragma once

#include <cstdint>

namespace moe::kernels {

// Reads MOE_FORCE_TARGET on the first call and forces that target; prints one line to stderr and
// keeps the best target if the name is unknown or the CPU lacks it. Returns true. Called from
// static initialisers of the kernels TUs.
bool ApplyTargetFromEnv();

// Highway target bits compiled into moe_kernels that this CPU supports (not narrowed by
// ForceTarget or MOE_FORCE_TARGET).
int64_t AvailableTargetBits();

// Whether the AVX3 kernels use AVX512-VNNI instructions: the AVX3_VNNI target (kernels.h
// AvailableTargets) is chosen, by default where the CPU has them, or forced.
bool UseVnni();

}  // namespace moe::kernels
