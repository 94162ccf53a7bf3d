// SPDX-License-Identifier: Apache-2.0
// Weight-like bytes for the kernel benchmarks, filled outside any timing.
#pragma once

#include <cstddef>
#include <cstdint>

#include "util/huge_buffer.h"

namespace moe::bench {

// Deterministic pseudo-random 16-bit words (an LCG from `seed`) masked with `mask`: with
// 0x33ff or 0xb3ff they are small finite values whether read as bf16, f16 or (pairs) f32.
inline void FillHalfWords(void* p, size_t bytes, uint32_t seed, uint16_t mask) {
  uint32_t state = seed;
  auto* words = static_cast<uint16_t*>(p);
  for (size_t i = 0; i < bytes / 2; ++i) {
    state = state * 1664525u + 1013904223u;
    words[i] = static_cast<uint16_t>((state >> 16) & mask);
  }
}

// A huge-page buffer of `bytes` filled by FillHalfWords (nullptr when allocation fails).
inline HugeBuffer WeightLikeBuffer(size_t bytes, uint32_t seed, uint16_t mask) {
  HugeBuffer p = AllocateHugeBuffer(bytes, /*prefault=*/false);
  if (p) FillHalfWords(p.get(), bytes, seed, mask);
  return p;
}

}  // namespace moe::bench
