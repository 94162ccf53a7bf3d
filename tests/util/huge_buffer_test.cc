// SPDX-License-Identifier: Apache-2.0
#include "util/huge_buffer.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace moe {
namespace {

TEST(HugeBufferTest, AlignedForODirectAndHugePagesAndPrefaulted) {
  for (uint64_t bytes : {uint64_t{0}, uint64_t{1}, uint64_t{4095}, uint64_t{3} << 20,
                         uint64_t{4} << 20, (uint64_t{9} << 20) + 7}) {
    const uint64_t align = HugeBufferAlignment(bytes);
    EXPECT_EQ(align, bytes >= (uint64_t{4} << 20) ? uint64_t{2} << 20 : 4096) << bytes;
    HugeBuffer p = AllocateHugeBuffer(bytes, /*prefault=*/true);
    ASSERT_TRUE(p) << bytes;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p.get()) % align, 0u) << bytes;
    // Prefaulted means zeroed and writable to the end of the requested bytes.
    for (uint64_t i = 0; i < bytes; i += 4096) ASSERT_EQ(p[i], 0) << bytes << " @" << i;
    if (bytes > 0) {
      EXPECT_EQ(p[bytes - 1], 0);
      p[bytes - 1] = 1;
    }
  }
}

}  // namespace
}  // namespace moe
