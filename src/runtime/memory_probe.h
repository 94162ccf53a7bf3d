// SPDX-License-Identifier: Apache-2.0
// Memory read bandwidth as the decode kernels can use it: every thread of a pool reads its own
// contiguous part of one buffer with kernels::XorFold (a vector XOR, nothing else), timed as one
// parallel section, on each SIMD target the CPU supports; the fastest counts.
// `moestream bench --measure-memory` compares each decode with a probe taken right before it;
// bench/decode_stream_bench interleaves it with a decode MatMul.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/kernels.h"
#include "util/huge_buffer.h"
#include "util/thread_pool.h"

namespace moe {

// Seconds for `pool` to read [p, p + bytes) once, the fastest of one pass with each of
// kernels::XorFoldPerTarget(). Folds the bytes into *sink (keep it alive).
double TimeReadPass(ThreadPool& pool, const void* p, size_t bytes, uint64_t* sink);

// One buffer (huge-page backed, prefaulted once at construction: refaulting it before each
// probe would disturb the very decode it is compared with), reused for every probe.
class MemoryProbe {
 public:
  static constexpr size_t kDefaultBytes = size_t{512} << 20;
  explicit MemoryProbe(size_t bytes = kDefaultBytes);
  ~MemoryProbe();
  bool ok() const { return static_cast<bool>(mem_); }
  // Best GB/s of `passes` passes (TimeReadPass) after one warm-up pass; 0 when the buffer was
  // not allocated.
  double GbS(ThreadPool& pool, int passes = 3);
  // GB/s over the first min(bytes, size) bytes, read as two halves (the faster counting) with
  // the fold that was fastest in the last GbS (the first target's before any): a probe short
  // enough (≈ 10 ms for 256 MiB) to take between decode tokens; 0 when the buffer was not
  // allocated.
  double QuickGbS(ThreadPool& pool, size_t bytes);

 private:
  HugeBuffer mem_;
  size_t bytes_;
  uint64_t sink_ = 0;
  // The fold that was fastest in the last GbS (the first target's until then): QuickGbS runs
  // between decode tokens and takes no allocation.
  kernels::XorFoldFn fastest_fold_;
};

}  // namespace moe
