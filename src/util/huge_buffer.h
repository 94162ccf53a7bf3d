// SPDX-License-Identifier: Apache-2.0
// Large buffers for weight arenas, the expert cache and benchmarks: 2 MiB-aligned and
// huge-page backed (MADV_HUGEPAGE, best effort) from 4 MiB up, page-aligned below (always fit
// for O_DIRECT reads).
// machine.md: with 4 KiB pages decode's TLB misses cost more than its DRAM reads, O_DIRECT reads
// into huge pages run about twice as fast, and first touch of fresh memory is slow, so a buffer
// that will be timed is prefaulted once, here, and reused.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <thread>

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

// Faults in [p, p + bytes) on a background thread, in ascending chunks, without writing to it
// (MADV_POPULATE_WRITE, Linux ≥ 5.14): the owner may read into the memory meanwhile, and a
// page the owner touched first is left as it is. For arenas whose first touch is too slow to
// wait for at startup (a VM whose host takes back free guest pages supplies them again at
// 0.5-0.8 GB/s: a 16 GiB expert cache took 39-56 s to prefault, docs/benchmarks.md session 13):
// work starts at once, and the pages it reaches before the thread does fault on first use.
class BackgroundPrefault {
 public:
  // nullptr when the kernel lacks MADV_POPULATE_WRITE (the caller then prefaults itself).
  static std::unique_ptr<BackgroundPrefault> Start(char* p, uint64_t bytes);
  ~BackgroundPrefault();  // stops after the current chunk and joins: the memory may go next
  BackgroundPrefault(const BackgroundPrefault&) = delete;
  BackgroundPrefault& operator=(const BackgroundPrefault&) = delete;

  // Blocks until every chunk is faulted in (or the kernel refused one); owner thread only.
  void Wait();
  uint64_t done_bytes() const { return done_.load(std::memory_order_acquire); }

 private:
  BackgroundPrefault(char* p, uint64_t bytes) : p_(p), bytes_(bytes) {}
  char* const p_;
  const uint64_t bytes_;
  std::atomic<uint64_t> done_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace moe
