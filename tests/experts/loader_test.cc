// SPDX-License-Identifier: Apache-2.0
// Loader's device limit: at most device_reads threads move bytes (ReadRaw) at once, and a block
// is verified outside the limit, so the next read has the device while it is checked.
#include "experts/loader.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "fake_source.h"

namespace moe {
namespace {

using testing::FakeSource;

class CountingSink final : public LoadSink {
 public:
  void OnLoaded(const LoadJob&, Status status, uint64_t) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++done_;
      ok_ += status.ok();
    }
    cv_.notify_all();
  }
  // Waits (bounded) for n completions; returns how many came back ok.
  int WaitFor(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(30), [&] { return done_ >= n; });
    return ok_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int done_ = 0, ok_ = 0;
};

// Runs n reads of layer 0 through a Loader; returns the number that succeeded.
int LoadAll(FakeSource& src, size_t threads, size_t device_reads, int n) {
  CountingSink sink;
  std::vector<std::vector<char>> bufs(static_cast<size_t>(n),
                                      std::vector<char>(src.geometry().block_bytes()));
  Loader loader(src, sink, threads, static_cast<size_t>(n), device_reads);
  EXPECT_EQ(loader.device_reads(), device_reads ? device_reads : threads);
  for (int e = 0; e < n; ++e) {
    EXPECT_TRUE(loader.Submit({0, e, static_cast<uint32_t>(e), bufs[static_cast<size_t>(e)].data()}));
  }
  return sink.WaitFor(n);
}

TEST(LoaderTest, TheNextReadStartsWhileABlockIsVerified) {
  FakeSource src(1, 6);
  std::atomic<bool> overlapped{false};
  src.SetVerifyHook([&](int64_t, int64_t expert) {
    if (expert != 0) return;
    // Block 0 is being verified: another thread's read must get the device meanwhile. If the
    // limit also covered Verify, no other read could start and this would time out.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (src.raw_started() < 2 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    overlapped = src.raw_started() >= 2;
  });
  EXPECT_EQ(LoadAll(src, /*threads=*/3, /*device_reads=*/1, 6), 6);
  EXPECT_TRUE(overlapped);
}

TEST(LoaderTest, AtMostDeviceReadsMoveBytesAtOnce) {
  for (size_t limit : {size_t{1}, size_t{2}}) {
    FakeSource src(1, 12);
    src.SetRawDelayMs(3);  // long enough that four threads without a limit would overlap
    EXPECT_EQ(LoadAll(src, /*threads=*/4, limit, 12), 12);
    EXPECT_LE(src.raw_max(), static_cast<int>(limit));
    EXPECT_GE(src.raw_max(), 1);
  }
}

// Polls `done` for up to 10 s.
template <typename F>
bool PollUntil(F done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return done();
}

TEST(LoaderTest, ADemandReadFindsADeviceTurnWhileSpeculativeReadsHoldTheirs) {
  FakeSource src(1, 8);
  src.Block(true);  // every read that starts stays in ReadRaw, holding its device turn
  CountingSink sink;
  std::vector<std::vector<char>> bufs(8, std::vector<char>(src.geometry().block_bytes()));
  {
    Loader loader(src, sink, /*threads=*/4, /*max_queued=*/8, /*device_reads=*/2);
    for (int e = 0; e < 3; ++e) {
      ASSERT_TRUE(loader.Submit({0, e, static_cast<uint32_t>(e), bufs[e].data()},
                                LoadPriority::kSpeculative));
    }
    ASSERT_TRUE(PollUntil([&] { return src.raw_started() >= 1; }));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_EQ(src.raw_started(), 1) << "two device turns allow one speculative read at a time";
    ASSERT_TRUE(loader.Submit({0, 5, 5u, bufs[5].data()}, LoadPriority::kDemand));
    EXPECT_TRUE(PollUntil([&] { return src.raw_started() >= 2; }))
        << "the demand read waited behind a speculative one";
    src.Block(false);
    EXPECT_EQ(sink.WaitFor(4), 4);
  }
}

// Demand reads first, then speculative ones, then background ones; a queued job moves up by
// Promote. Two threads: one speculative or background read at a time, so the order in which
// blocks are verified is the order their reads started.
TEST(LoaderTest, BackgroundReadsGoLastAndPromoteMovesAJobUp) {
  FakeSource src(1, 8);
  std::mutex mu;
  std::vector<int64_t> order;
  src.SetVerifyHook([&](int64_t, int64_t expert) {
    std::lock_guard<std::mutex> lock(mu);
    order.push_back(expert);
  });
  src.Block(true);
  CountingSink sink;
  std::vector<std::vector<char>> bufs(8, std::vector<char>(src.geometry().block_bytes()));
  {
    Loader loader(src, sink, /*threads=*/2, /*max_queued=*/8);
    const auto submit = [&](int e, LoadPriority p) {
      return loader.Submit({0, e, static_cast<uint32_t>(e), bufs[static_cast<size_t>(e)].data()},
                           p);
    };
    ASSERT_TRUE(submit(0, LoadPriority::kDemand));
    ASSERT_TRUE(PollUntil([&] { return src.raw_started() == 1; }));
    for (int e : {1, 3, 4}) ASSERT_TRUE(submit(e, LoadPriority::kBackground));
    ASSERT_TRUE(submit(2, LoadPriority::kSpeculative));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_EQ(src.raw_started(), 1) << "a read started beside a demand read in flight";
    EXPECT_TRUE(loader.Promote(3, LoadPriority::kSpeculative));  // behind 2
    EXPECT_TRUE(loader.Promote(4));                               // demand: starts now
    EXPECT_TRUE(PollUntil([&] { return src.raw_started() == 2; }));
    EXPECT_FALSE(loader.Promote(4)) << "already started";
    EXPECT_FALSE(loader.Promote(1, LoadPriority::kBackground)) << "not a move up";
    src.Block(false);
    ASSERT_EQ(sink.WaitFor(5), 5);
  }
  ASSERT_EQ(order.size(), 5u);
  EXPECT_EQ(std::vector<int64_t>(order.begin() + 2, order.end()), (std::vector<int64_t>{2, 3, 1}));
}

TEST(LoaderTest, InFlightTimeIsSplitByTheNumberOfReadsInFlight) {
  FakeSource src(1, 4);
  src.Block(true);
  CountingSink sink;
  std::vector<std::vector<char>> bufs(4, std::vector<char>(src.geometry().block_bytes()));
  Loader loader(src, sink, /*threads=*/4, /*max_queued=*/4);
  for (int e = 0; e < 3; ++e) {
    ASSERT_TRUE(loader.Submit({0, e, static_cast<uint32_t>(e), bufs[e].data()}));
  }
  ASSERT_TRUE(PollUntil([&] { return src.raw_started() >= 3; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // three reads held in ReadRaw
  const auto held = loader.in_flight_ns();
  EXPECT_GE(held[2], 20'000'000u) << "exactly three reads were in flight for the 20 ms";
  EXPECT_EQ(held[3], 0u) << "never four";
  src.Block(false);
  ASSERT_EQ(sink.WaitFor(3), 3);  // each read ends before its OnLoaded
  const auto done = loader.in_flight_ns();
  uint64_t sum = 0;
  for (uint64_t ns : done) sum += ns;
  EXPECT_EQ(loader.busy_ns(), sum);
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(loader.in_flight_ns(), done) << "no time counts while nothing is in flight";
}

TEST(LoaderTest, AFailedReadIsNotVerifiedAndIsReported) {
  FakeSource src(1, 4);
  std::atomic<int> verified{0};
  src.SetVerifyHook([&](int64_t, int64_t) { ++verified; });
  src.Fail(0, 2, true);
  EXPECT_EQ(LoadAll(src, 2, 1, 4), 3);
  EXPECT_EQ(verified.load(), 3);
}

}  // namespace
}  // namespace moe
