// SPDX-License-Identifier: Apache-2.0
#include "util/huge_buffer.h"

#include <gtest/gtest.h>

#include <sys/mman.h>

#include <cstdint>
#include <thread>
#include <vector>

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

// Pages of [p, p + bytes) the kernel reports resident (mincore).
uint64_t ResidentPages(const char* p, uint64_t bytes) {
  std::vector<unsigned char> vec((bytes + 4095) / 4096);
  if (::mincore(const_cast<char*>(p), bytes, vec.data()) != 0) return 0;
  uint64_t n = 0;
  for (unsigned char v : vec) n += v & 1;
  return n;
}

// More than one 64 MiB chunk, not a multiple of it.
constexpr uint64_t kPrefaultBytes = (uint64_t{70} << 20) + 4096;

TEST(BackgroundPrefaultTest, FaultsInEveryPageAndKeepsWhatWasWritten) {
  HugeBuffer p = AllocateHugeBuffer(kPrefaultBytes, /*prefault=*/false);
  ASSERT_TRUE(p);
  // Written before the prefault starts (a read that got there first), in both chunks.
  const uint64_t marks[] = {0, 12345, (uint64_t{64} << 20) + 77, kPrefaultBytes - 1};
  for (uint64_t m : marks) p[m] = static_cast<char>(0x5a);
  auto pf = BackgroundPrefault::Start(p.get(), kPrefaultBytes);
  if (!pf) GTEST_SKIP() << "kernel without MADV_POPULATE_WRITE";
  pf->Wait();
  EXPECT_EQ(pf->done_bytes(), kPrefaultBytes);
  EXPECT_EQ(ResidentPages(p.get(), kPrefaultBytes), kPrefaultBytes / 4096);
  for (uint64_t m : marks) EXPECT_EQ(p[m], static_cast<char>(0x5a)) << m;
  EXPECT_EQ(p[4096], 0);
  EXPECT_EQ(p[uint64_t{64} << 20], 0);
}

TEST(BackgroundPrefaultTest, WritesDuringThePrefaultSurvive) {
  HugeBuffer p = AllocateHugeBuffer(kPrefaultBytes, /*prefault=*/false);
  ASSERT_TRUE(p);
  auto pf = BackgroundPrefault::Start(p.get(), kPrefaultBytes);
  if (!pf) GTEST_SKIP() << "kernel without MADV_POPULATE_WRITE";
  // Another thread fills every page from the far end while the prefault walks up from the
  // start: the two meet on pages one of them faulted in first.
  const auto mark = [](uint64_t page) { return static_cast<char>(page % 251 + 1); };
  std::thread writer([&] {
    for (uint64_t page = kPrefaultBytes / 4096; page-- > 0;) p[page * 4096 + 7] = mark(page);
  });
  writer.join();
  pf->Wait();
  for (uint64_t page = 0; page < kPrefaultBytes / 4096; ++page) {
    ASSERT_EQ(p[page * 4096 + 7], mark(page)) << page;
  }
}

TEST(BackgroundPrefaultTest, DestroyingItStopsTheThreadBeforeTheMemoryGoes) {
  constexpr uint64_t kBytes = uint64_t{256} << 20;
  HugeBuffer p = AllocateHugeBuffer(kBytes, /*prefault=*/false);
  ASSERT_TRUE(p);
  auto pf = BackgroundPrefault::Start(p.get(), kBytes);
  if (!pf) GTEST_SKIP() << "kernel without MADV_POPULATE_WRITE";
  pf.reset();  // joins after at most one chunk
  p.reset();
}

}  // namespace
}  // namespace moe
