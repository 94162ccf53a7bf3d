// SPDX-License-Identifier: Apache-2.0
#include "util/huge_buffer.h"

#include <sys/mman.h>

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

}  // namespace moe
