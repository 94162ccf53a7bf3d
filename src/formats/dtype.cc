// SPDX-License-Identifier: Apache-2.0
#include "formats/dtype.h"

#include <array>

namespace moe {
namespace {

struct DTypeEntry {
  std::string_view name;
  DType type;
  uint32_t bits;
};

constexpr std::array<DTypeEntry, 22> kDTypes = {{
    {"BOOL", DType::kBool, 8},       {"F4", DType::kF4, 4},
    {"F6_E2M3", DType::kF6_E2M3, 6}, {"F6_E3M2", DType::kF6_E3M2, 6},
    {"U8", DType::kU8, 8},           {"I8", DType::kI8, 8},
    {"F8_E5M2", DType::kF8_E5M2, 8}, {"F8_E4M3", DType::kF8_E4M3, 8},
    {"F8_E8M0", DType::kF8_E8M0, 8}, {"F8_E4M3FNUZ", DType::kF8_E4M3FNUZ, 8},
    {"F8_E5M2FNUZ", DType::kF8_E5M2FNUZ, 8}, {"I16", DType::kI16, 16},
    {"U16", DType::kU16, 16},        {"F16", DType::kF16, 16},
    {"BF16", DType::kBF16, 16},      {"I32", DType::kI32, 32},
    {"U32", DType::kU32, 32},        {"F32", DType::kF32, 32},
    {"C64", DType::kC64, 64},        {"F64", DType::kF64, 64},
    {"I64", DType::kI64, 64},        {"U64", DType::kU64, 64},
}};

}  // namespace

Result<DType> ParseDType(std::string_view s) {
  for (const DTypeEntry& e : kDTypes) {
    if (e.name == s) return e.type;
  }
  return Error(StatusCode::kInvalidFormat, "unknown dtype '{}'", s);
}

std::string_view DTypeName(DType t) {
  for (const DTypeEntry& e : kDTypes) {
    if (e.type == t) return e.name;
  }
  return "?";
}

uint32_t DTypeBits(DType t) {
  for (const DTypeEntry& e : kDTypes) {
    if (e.type == t) return e.bits;
  }
  return 0;
}

}  // namespace moe
