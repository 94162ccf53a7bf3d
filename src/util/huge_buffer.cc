// SPDX-License-Identifier: Apache-2.0
#include "util/huge_buffer.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstring>

#include "util/checked_math.h"

namespace moe {

uint64_t HugeBufferAlignment(uint64_t bytes) {
  return bytes >= (uint64_t{4} << 20) ? (uint64_t{2} << 20) : 4096;
}

HugeBuffer AllocateHugeBuffer(uint64_t bytes, bool prefault) {
  const uint64_t align = HugeBufferAlignment(bytes);
  const uint64_t rounded = RoundUp(bytes == 0 ? 1 : bytes, align);
  HugeBuffer p(static_cast<char*>(std::aligned_alloc(align, rounded)));
  if (!p) return p;
  if (align > 4096) ::madvise(p.get(), rounded, MADV_HUGEPAGE);
  if (prefault) std::memset(p.get(), 0, rounded);
  return p;
}

std::unique_ptr<BackgroundPrefault> BackgroundPrefault::Start(char* p, uint64_t bytes) {
#ifdef MADV_POPULATE_WRITE
  // One page now tells whether the kernel knows the advice (EINVAL before 5.14).
  if (bytes == 0 || ::madvise(p, 4096, MADV_POPULATE_WRITE) != 0) return nullptr;
  std::unique_ptr<BackgroundPrefault> b(new BackgroundPrefault(p, bytes));
  b->thread_ = std::thread([pf = b.get()] {
    // 64 MiB per call (~0.1 s at the slow rate): the destructor never waits long.
    constexpr uint64_t kChunk = uint64_t{64} << 20;
    for (uint64_t off = 0; off < pf->bytes_ && !pf->stop_.load(std::memory_order_relaxed);) {
      const uint64_t n = std::min(kChunk, pf->bytes_ - off);
      if (::madvise(pf->p_ + off, n, MADV_POPULATE_WRITE) != 0) return;  // best effort
      off += n;
      pf->done_.store(off, std::memory_order_release);
    }
  });
  return b;
#else
  (void)p, (void)bytes;
  return nullptr;
#endif
}

void BackgroundPrefault::Wait() {
  if (thread_.joinable()) thread_.join();
}

BackgroundPrefault::~BackgroundPrefault() {
  stop_.store(true, std::memory_order_relaxed);
  if (thread_.joinable()) thread_.join();
}

}  // namespace moe
