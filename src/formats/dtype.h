// SPDX-License-Identifier: Apache-2.0
// Tensor element types of the safetensors format (spec §5.2) and their sizes.
#pragma once

#include <cstdint>
#include <string_view>

#include "util/status.h"

namespace moe {

enum class DType : uint8_t {
  kBool, kF4, kF6_E2M3, kF6_E3M2, kU8, kI8, kF8_E5M2, kF8_E4M3, kF8_E8M0, kF8_E4M3FNUZ,
  kF8_E5M2FNUZ, kI16, kU16, kF16, kBF16, kI32, kU32, kF32, kC64, kF64, kI64, kU64,
};

// Exact, case-sensitive safetensors spelling ("BF16"); kInvalidFormat "unknown dtype '<s>'".
Result<DType> ParseDType(std::string_view s);
std::string_view DTypeName(DType t);
uint32_t DTypeBits(DType t);
// The dtypes the engine computes with (weights stay in these; activations are f32).
inline bool IsComputeDType(DType t) {
  return t == DType::kBF16 || t == DType::kF16 || t == DType::kF32;
}

}  // namespace moe
