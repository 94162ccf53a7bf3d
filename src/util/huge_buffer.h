// SPDX-License-Identifier: Apache-2.0
// Large buffers for weight arenas, the expert cache and benchmarks: 2 MiB-aligned and
// huge-page backed (MADV_HUGEPAGE, best effort) from 4 MiB up, page-aligned below (always fit
// for O_DIRECT reads).
// machine.md: with 4 KiB pages decode's TLB misses cost more than its DRAM reads, O_DIRECT reads
// into huge pages run about twice as fast, and first touch of fresh memory is slow, so a buffer
// that will be timed is prefaulted once, here, and reused.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>

namespace moe {

struct FreeDeleter {
  void operator()(void* p) const noexcept { std::free(p); }
};
using HugeBuffer = std::unique_ptr<char[], FreeDeleter>;

// `bytes` rounded up to the buffer's alignment; nullptr when the allocation fails.
// `prefault`: write every page now (zeros), outside any timing.
HugeBuffer AllocateHugeBuffer(uint64_t bytes, bool prefault);

// The alignment AllocateHugeBuffer uses for `bytes`.
uint64_t HugeBufferAlignment(uint64_t bytes);

}  // namespace moe
