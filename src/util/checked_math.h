// SPDX-License-Identifier: Apache-2.0
// Overflow-checked size arithmetic: every size derived from a file goes through these.
#pragma once

#include <cstdint>
#include <optional>

namespace moe {

inline std::optional<uint64_t> CheckedMul(uint64_t a, uint64_t b) {
  uint64_t r;
  if (__builtin_mul_overflow(a, b, &r)) return std::nullopt;
  return r;
}

inline std::optional<uint64_t> CheckedAdd(uint64_t a, uint64_t b) {
  uint64_t r;
  if (__builtin_add_overflow(a, b, &r)) return std::nullopt;
  return r;
}

inline uint64_t RoundUp(uint64_t x, uint64_t align) { return (x + align - 1) / align * align; }

}  // namespace moe
