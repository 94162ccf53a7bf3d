// SPDX-License-Identifier: Apache-2.0
// ExpertCache + Loader + CacheProvider against an in-memory source that counts its reads.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <random>
#include <thread>

#include "experts/expert_cache.h"
#include "fake_source.h"

namespace moe {
namespace {

using testing::FakeSource;

std::unique_ptr<ExpertCache> MakeCache(const ExpertSource& src, uint64_t n_blocks, int64_t k,
                                       PolicyKind policy = PolicyKind::kLru,
                                       size_t io_depth = ExpertCacheOptions{}.io_depth) {
  ExpertCacheOptions o;
  o.io_depth = io_depth;
  o.budget_bytes = n_blocks * 4096;  // fake blocks are 3×16×8×4 = 1536 B → one 4 KiB slot
  o.top_k = k;
  o.policy.kind = policy;
  o.wait_timeout_ms = 20000;
  auto c = ExpertCache::Create(src, o);
  EXPECT_TRUE(c.ok()) << c.status().message();
  return c.ok() ? std::move(c).value() : nullptr;
}

// Polls `done` for up to 10 s.
template <typename F>
bool PollUntil(F done) {
  for (int i = 0; i < 10000; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return done();
}

// The view's bytes are exactly the source's block for (layer, expert).
bool BlockMatches(const ExpertView& v, int64_t layer, int64_t expert, uint64_t bytes) {
  const auto* p = static_cast<const uint8_t*>(v.gate.data);
  for (uint64_t i = 0; i < bytes; ++i) {
    if (p[i] != FakeSource::ByteOf(layer, expert, i)) return false;
  }
  return true;
}

// Begin(layer, experts), Wait for each and check its bytes, End.
void UseLayer(ExpertProvider& prov, const FakeSource& src, int64_t layer,
              const std::vector<int32_t>& experts) {
  ASSERT_TRUE(prov.Begin(layer, experts).ok());
  for (size_t i = 0; i < experts.size(); ++i) {
    auto v = prov.Wait(i);
    ASSERT_TRUE(v.ok()) << v.status().message();
    EXPECT_TRUE(BlockMatches(*v, layer, experts[i], src.geometry().block_bytes()))
        << "layer " << layer << " expert " << experts[i];
  }
  prov.End();
}

TEST(ExpertCacheTest, BudgetBelowTopKIsRefusedAndHugeBudgetClamps) {
  FakeSource src(2, 8);
  ExpertCacheOptions o;
  o.top_k = 4;
  o.budget_bytes = 3 * 4096 + 4095;
  auto small = ExpertCache::Create(src, o);
  ASSERT_FALSE(small.ok());
  EXPECT_EQ(small.status().code(), StatusCode::kUsage);
  EXPECT_NE(small.status().message().find("cache too small: need ≥ 4×4096"), std::string::npos)
      << small.status().message();
  o.budget_bytes = 4 * 4096;
  auto exact = ExpertCache::Create(src, o);
  ASSERT_TRUE(exact.ok());
  EXPECT_EQ((*exact)->n_slots(), 4u);
  o.budget_bytes = 1ull << 30;
  auto all = ExpertCache::Create(src, o);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ((*all)->n_slots(), 16u);
}

TEST(ExpertCacheTest, ProviderServesCorrectBytesAndCountsHits) {
  FakeSource src(2, 8);
  auto cache = MakeCache(src, 4, 2);
  auto prov = cache->NewProvider();
  const std::vector<int32_t> a = {1, 5}, b = {5, 6};
  for (int round = 0; round < 2; ++round) UseLayer(*prov, src, 0, a);
  ASSERT_TRUE(prov->Begin(1, b).ok());
  for (size_t i = 0; i < b.size(); ++i) {
    auto v = prov->Wait(i);
    ASSERT_TRUE(v.ok());
    EXPECT_TRUE(BlockMatches(*v, 1, b[i], src.geometry().block_bytes()));
  }
  prov->End();
  const CacheStats s = cache->Stats();
  EXPECT_EQ(s.total.misses, 4u);  // (0,1) (0,5) (1,5) (1,6)
  EXPECT_EQ(s.total.hits, 2u);    // second round of layer 0
  EXPECT_EQ(s.total.evictions, 0u);
  EXPECT_EQ(src.total_reads(), 4);
  EXPECT_EQ(s.total.bytes_read, 4 * src.dst_bytes());
}

// io_busy_ns counts the wall time during which a read is in flight (two reads blocked
// together count once), and stops counting when nothing is in flight.
TEST(ExpertCacheTest, IoBusyTimeCountsOverlappingReadsOnce) {
  FakeSource src(1, 8);
  auto cache = MakeCache(src, 4, 2);
  auto prov = cache->NewProvider();
  EXPECT_EQ(cache->io_busy_ns(), 0u);
  src.Block(true);
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<int32_t> e = {2, 3};
  ASSERT_TRUE(prov->Begin(0, e).ok());  // two misses, both stuck in Read
  // The busy period opens when an I/O thread takes the job, which may be a little after Begin
  // returns on a loaded machine: time the stall from when both reads have started.
  ASSERT_TRUE(PollUntil([&] { return src.total_reads() == 2; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  EXPECT_GE(cache->io_busy_ns(), 100'000'000u) << "the open busy period is counted";
  src.Block(false);
  for (size_t i = 0; i < e.size(); ++i) ASSERT_TRUE(prov->Wait(i).ok());
  prov->End();
  const uint64_t after = cache->io_busy_ns();
  const auto wall = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                              std::chrono::steady_clock::now() - t0)
                                              .count());
  EXPECT_GE(after, 150'000'000u);
  EXPECT_LE(after, wall) << "overlapping reads must not be summed";
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(cache->io_busy_ns(), after) << "idle time is not busy time";
}

TEST(ExpertCacheTest, MoreActiveExpertsThanSlotsStreamsThroughWait) {
  FakeSource src(1, 16);
  auto cache = MakeCache(src, 2, 2);
  auto prov = cache->NewProvider();
  const std::vector<int32_t> all = {0, 2, 3, 7, 9, 11, 15};
  for (int round = 0; round < 3; ++round) {
    ASSERT_TRUE(prov->Begin(0, all).ok());
    for (size_t i = 0; i < all.size(); ++i) {
      auto v = prov->Wait(i);
      ASSERT_TRUE(v.ok()) << v.status().message();
      EXPECT_TRUE(BlockMatches(*v, 0, all[i], src.geometry().block_bytes())) << i;
    }
    prov->End();
  }
}

TEST(ExpertCacheTest, ConcurrentMissOfOneKeyIsReadOnce) {
  FakeSource src(1, 4);
  auto cache = MakeCache(src, 4, 1);
  src.Block(true);
  const uint32_t s1 = cache->TryAcquire({0, 2});
  const uint32_t s2 = cache->TryAcquire({0, 2});
  ASSERT_NE(s1, ExpertCache::kNoSlot);
  EXPECT_EQ(s1, s2);
  std::thread waiter([&] {
    auto r = cache->WaitReady(s2, {0, 2});
    EXPECT_TRUE(r.ok());
  });
  src.Block(false);
  auto r = cache->WaitReady(s1, {0, 2});
  ASSERT_TRUE(r.ok());
  waiter.join();
  cache->Release(s1);
  cache->Release(s2);
  EXPECT_EQ(src.reads(0, 2), 1);
  EXPECT_EQ(cache->Stats().total.joins, 1u);
}

TEST(ExpertCacheTest, FailedReadIsDeliveredAndNeverServed) {
  FakeSource src(1, 4);
  auto cache = MakeCache(src, 2, 2);
  auto prov = cache->NewProvider();
  src.Fail(0, 3, true);
  const std::vector<int32_t> e = {1, 3};
  ASSERT_TRUE(prov->Begin(0, e).ok());
  ASSERT_TRUE(prov->Wait(0).ok());
  auto bad = prov->Wait(1);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kIoError);
  EXPECT_NE(bad.status().message().find("layer 0 expert 3"), std::string::npos);
  prov->End();
  // The failed slot went back to Empty: the next request reads again and gets good bytes.
  src.Fail(0, 3, false);
  ASSERT_TRUE(prov->Begin(0, e).ok());
  auto good = prov->Wait(1);
  ASSERT_TRUE(good.ok());
  EXPECT_TRUE(BlockMatches(*good, 0, 3, src.geometry().block_bytes()));
  prov->End();
  EXPECT_EQ(src.reads(0, 3), 2);
  EXPECT_EQ(cache->Stats().read_errors, 1u);
}

TEST(ExpertCacheTest, ManyThreadsOverlappingExpertsOneReadPerMiss) {
  FakeSource src(3, 12);
  for (PolicyKind pk : {PolicyKind::kLru, PolicyKind::kLfu, PolicyKind::kLayerCyclic}) {
    auto cache = MakeCache(src, 10, 3, pk);
    const int before = src.total_reads();
    std::vector<std::thread> threads;
    std::atomic<int> bad{0};
    for (int t = 0; t < 6; ++t) {
      threads.emplace_back([&, t] {
        auto prov = cache->NewProvider();
        std::mt19937 rng(static_cast<uint32_t>(t + 1));
        for (int step = 0; step < 150; ++step) {
          const int64_t layer = step % 3;
          std::vector<int32_t> e;
          for (int32_t x = 0; x < 12 && e.size() < 3; ++x) {
            if (rng() % 3 == 0) e.push_back(x);
          }
          if (e.empty()) e.push_back(static_cast<int32_t>(rng() % 12));
          if (!prov->Begin(layer, e).ok()) ++bad;
          for (size_t i = 0; i < e.size(); ++i) {
            auto v = prov->Wait(i);
            if (!v.ok() || !BlockMatches(*v, layer, e[i], src.geometry().block_bytes())) ++bad;
          }
          if (step % 7 == 0) prov->Hint((layer + 1) % 3, e);
          prov->End();
        }
      });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(bad.load(), 0) << PolicyKindName(pk);
    // One read per miss and per prefetch not dropped; the last prefetches may still be queued.
    auto reads_match = [&] {
      const CacheStats s = cache->Stats();
      return static_cast<uint64_t>(src.total_reads() - before) ==
             s.total.misses + s.total.prefetch_issued - s.total.prefetch_cancelled;
    };
    EXPECT_TRUE(PollUntil(reads_match)) << PolicyKindName(pk);
  }
}

TEST(ExpertCacheTest, HintPrefetchesAndMeasuresLookahead) {
  FakeSource src(2, 8);
  auto cache = MakeCache(src, 6, 2);
  auto prov = cache->NewProvider();
  const std::vector<int32_t> predicted = {1, 2, 3}, actual = {2, 3};
  // As the session does it: hint layer 1 during layer 0, before layer 0's Begin; the reads are
  // issued after layer 0's experts are pinned.
  prov->Hint(1, predicted);
  const std::vector<int32_t> layer0 = {4};
  ASSERT_TRUE(prov->Begin(0, layer0).ok());
  ASSERT_TRUE(prov->Wait(0).ok());
  prov->End();
  // Speculative reads start once no demand read is in flight; let them start before layer 1
  // (else the wrong prediction, expert 1, would be dropped unread: the next test).
  ASSERT_TRUE(PollUntil([&] { return src.total_reads() == 4; }));
  ASSERT_TRUE(prov->Begin(1, actual).ok());
  for (size_t i = 0; i < actual.size(); ++i) ASSERT_TRUE(prov->Wait(i).ok());
  prov->End();
  const CacheStats s = cache->Stats();
  EXPECT_EQ(s.layers[1].prefetch_issued, 3u);
  EXPECT_EQ(s.layers[1].prefetch_used, 2u);
  EXPECT_EQ(s.layers[1].misses, 0u);
  EXPECT_EQ(s.layers[1].predicted, 3u);
  EXPECT_EQ(s.layers[1].actual, 2u);
  EXPECT_EQ(s.layers[1].predicted_and_actual, 2u);
  EXPECT_EQ(src.total_reads(), 4);
}

TEST(ExpertCacheTest, SpeculativeReadsYieldToDemandAndWrongOnesAreDroppedUnread) {
  FakeSource src(2, 8);
  // 4 I/O threads (the default), all allowed to read at once: two demand reads stay blocked in
  // the source while two promoted ones must still start.
  auto cache = MakeCache(src, 8, 2, PolicyKind::kLru, /*io_depth=*/0);
  auto prov = cache->NewProvider();
  src.Block(true);
  const std::vector<int32_t> predicted = {1, 2, 3}, layer0 = {4, 5}, actual = {2, 3};
  prov->Hint(1, predicted);
  ASSERT_TRUE(prov->Begin(0, layer0).ok());  // 2 demand reads in flight, 3 prefetches queued
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(src.reads(0, 4) + src.reads(0, 5), 2);
  for (int32_t e : predicted) {
    EXPECT_EQ(src.reads(1, e), 0) << "a prefetch started while a demand read was in flight";
  }
  prov->End();
  // Layer 1 wants 2 and 3: their queued prefetches become demand reads and start at once on
  // the two free threads; the wrong prediction (1) is dropped before it is read.
  ASSERT_TRUE(prov->Begin(1, actual).ok());
  EXPECT_TRUE(PollUntil([&] { return src.reads(1, 2) == 1 && src.reads(1, 3) == 1; }))
      << "promoted prefetches did not start while the source was blocked";
  EXPECT_EQ(src.reads(1, 1), 0);
  src.Block(false);
  for (size_t i = 0; i < actual.size(); ++i) {
    auto v = prov->Wait(i);
    ASSERT_TRUE(v.ok()) << v.status().message();
    EXPECT_TRUE(BlockMatches(*v, 1, actual[i], src.geometry().block_bytes()));
  }
  prov->End();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(src.reads(1, 1), 0) << "a cancelled prefetch was read";
  const CacheStats s = cache->Stats();
  EXPECT_EQ(s.layers[1].prefetch_issued, 3u);
  EXPECT_EQ(s.layers[1].prefetch_used, 2u);
  EXPECT_EQ(s.layers[1].prefetch_cancelled, 1u);
  EXPECT_EQ(s.layers[1].misses, 0u);
  // The dropped slot is usable again, and expert 1 is read afresh on demand.
  UseLayer(*prov, src, 1, {1, 2});
  EXPECT_EQ(src.reads(1, 1), 1);
  EXPECT_EQ(cache->Stats().layers[1].misses, 1u);
}

std::unique_ptr<ExpertCache> MakeFillCache(const ExpertSource& src, uint64_t n_blocks, int64_t k,
                                           size_t io_threads) {
  ExpertCacheOptions o;
  o.budget_bytes = n_blocks * 4096;
  o.top_k = k;
  o.io_threads = io_threads;
  o.fill = true;
  o.wait_timeout_ms = 20000;
  auto c = ExpertCache::Create(src, o);
  EXPECT_TRUE(c.ok()) << c.status().message();
  return c.ok() ? std::move(c).value() : nullptr;
}

// The cache-wide counters a fill test checks; evictions and cancelled prefetches must be 0.
struct FillTotals {
  uint64_t hits, misses, fill_issued, fill_used, prefetch_issued, prefetch_used;
};
void ExpectTotals(const ExpertCache& cache, const FillTotals& want) {
  const LayerCacheStats t = cache.Stats().total;
  EXPECT_EQ(t.hits, want.hits);
  EXPECT_EQ(t.misses, want.misses);
  EXPECT_EQ(t.fill_issued, want.fill_issued);
  EXPECT_EQ(t.fill_used, want.fill_used);
  EXPECT_EQ(t.prefetch_issued, want.prefetch_issued);
  EXPECT_EQ(t.prefetch_used, want.prefetch_used);
  EXPECT_EQ(t.evictions, 0u);
  EXPECT_EQ(t.prefetch_cancelled, 0u);
}

// The fill reads experts into free slots in its order, one at a time with two I/O threads,
// leaves 2 × top_k slots free when the cache cannot hold every expert, and evicts nothing; a
// filled block is served as a hit with the source's bytes.
TEST(ExpertCacheTest, FillReadsFreeSlotsExpertByExpertAcrossLayers) {
  FakeSource src(2, 8);
  std::mutex mu;
  std::vector<std::pair<int64_t, int64_t>> order;
  src.SetVerifyHook([&](int64_t l, int64_t e) {
    std::lock_guard<std::mutex> lock(mu);
    order.emplace_back(l, e);
  });
  auto cache = MakeFillCache(src, 10, 2, /*io_threads=*/2);  // 10 slots, 4 left free
  ASSERT_TRUE(PollUntil([&] { return src.total_reads() == 6; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(src.total_reads(), 6) << "the fill took a reserved slot";
  {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_EQ(order, (std::vector<std::pair<int64_t, int64_t>>{
                         {0, 0}, {1, 0}, {0, 1}, {1, 1}, {0, 2}, {1, 2}}));
  }
  auto prov = cache->NewProvider();
  UseLayer(*prov, src, 1, {1, 2});
  EXPECT_EQ(src.total_reads(), 6);
  UseLayer(*prov, src, 0, {7, 2});
  EXPECT_EQ(src.total_reads(), 7);
  ExpectTotals(*cache, {.hits = 3, .misses = 1, .fill_issued = 6, .fill_used = 3,
                        .prefetch_issued = 0, .prefetch_used = 0});
}

// Room for every expert: the fill reads all of them (no slot kept free), at most kFillReads at
// once, and every later request is a hit.
TEST(ExpertCacheTest, FillWarmsACacheThatHoldsEveryExpert) {
  FakeSource src(3, 8);
  src.SetRawDelayMs(2);
  auto cache = MakeFillCache(src, 64, 2, /*io_threads=*/4);
  ASSERT_TRUE(PollUntil([&] { return src.total_reads() == 24; }));
  EXPECT_LE(src.raw_max(), 2);
  auto prov = cache->NewProvider();
  for (int64_t l = 0; l < 3; ++l) UseLayer(*prov, src, l, {0, 1, 2, 3, 4, 5, 6, 7});
  EXPECT_EQ(src.total_reads(), 24);
  ExpectTotals(*cache, {.hits = 24, .misses = 0, .fill_issued = 24, .fill_used = 24,
                        .prefetch_issued = 0, .prefetch_used = 0});
}

// A failed fill read stops the fill (the read queued beside it still runs); the failure is
// forgotten, so a request reads the expert again. The read beside it ends only after the
// failure is recorded: ending first, it would rightly top the fill up.
TEST(ExpertCacheTest, AFailedFillReadStopsTheFill) {
  FakeSource src(1, 8);
  src.Fail(0, 0, true);
  std::atomic<bool> failure_seen{false};
  src.SetVerifyHook([&](int64_t, int64_t e) {
    while (e == 1 && !failure_seen.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  auto cache = MakeFillCache(src, 8, 1, /*io_threads=*/2);
  const bool failed = PollUntil([&] { return cache->Stats().read_errors == 1; });
  failure_seen = true;
  ASSERT_TRUE(failed);
  ASSERT_TRUE(PollUntil([&] { return src.total_reads() == 2; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(src.total_reads(), 2) << "the fill went on after a failed read";
  EXPECT_EQ(src.reads(0, 1), 1);
  EXPECT_EQ(cache->Stats().read_errors, 1u);
  src.Fail(0, 0, false);
  auto prov = cache->NewProvider();
  UseLayer(*prov, src, 0, {0, 1});
  EXPECT_EQ(src.reads(0, 0), 2);
  EXPECT_EQ(src.total_reads(), 3);
}

// A prefetch of an expert whose fill read is queued reads it once (the job moves up, Loader
// test), and cancelling that prediction never drops the fill read.
TEST(ExpertCacheTest, APrefetchJoinsAQueuedFillReadAndCannotCancelIt) {
  FakeSource src(1, 8);
  src.Block(true);
  auto cache = MakeFillCache(src, 8, 1, /*io_threads=*/2);  // one fill read at a time
  ASSERT_TRUE(PollUntil([&] { return src.total_reads() == 1; }));  // (0, 0) held; (0, 1) queued
  cache->Prefetch({0, 5});
  cache->Prefetch({0, 1});
  cache->CancelPrefetch({0, 1});
  src.Block(false);
  ASSERT_TRUE(PollUntil([&] { return src.total_reads() == 8; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(src.total_reads(), 8);
  auto prov = cache->NewProvider();
  UseLayer(*prov, src, 0, {0, 1, 2, 3, 4, 5, 6, 7});
  EXPECT_EQ(src.total_reads(), 8);
  // (0, 5) was prefetched; (0, 1) stayed the fill's.
  ExpectTotals(*cache, {.hits = 8, .misses = 0, .fill_issued = 7, .fill_used = 7,
                        .prefetch_issued = 1, .prefetch_used = 1});
}

// A prediction cancelled while its read is still queued gives its slot back at once (the job
// leaves the loader's queue): a request finds it free while a demand read, in flight, keeps
// every speculative read from starting. It used to hold the slot until a thread reached the
// job, and with all other slots busy a request found nothing to take.
TEST(ExpertCacheTest, ACancelledQueuedPredictionFreesItsSlotAtOnce) {
  FakeSource src(1, 8);
  auto cache = MakeCache(src, 2, 1, PolicyKind::kLru, /*io_depth=*/0);
  src.Block(true);
  const uint32_t a = cache->TryAcquire({0, 0});  // a demand read, held in the source
  ASSERT_NE(a, ExpertCache::kNoSlot);
  ASSERT_TRUE(PollUntil([&] { return src.total_reads() == 1; }));
  cache->Prefetch({0, 1});  // queued behind the demand read, in the other slot
  cache->CancelPrefetch({0, 1});
  const uint32_t b = cache->TryAcquire({0, 2});
  EXPECT_NE(b, ExpertCache::kNoSlot) << "the cancelled prediction still holds its slot";
  src.Block(false);
  for (const auto& [s, e] : {std::pair{a, 0}, std::pair{b, 2}}) {
    if (s == ExpertCache::kNoSlot) continue;
    ASSERT_TRUE(cache->WaitReady(s, {0, e}).ok());
    cache->Release(s);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(src.reads(0, 1), 0) << "a cancelled prediction was read";
  EXPECT_EQ(cache->Stats().layers[0].prefetch_cancelled, 1u);
  EXPECT_EQ(cache->Stats().total.evictions, 0u);
}

TEST(ExpertCacheTest, PrefetchNeverEvictsAResidentExpertOfTheHintedLayer) {
  FakeSource src(3, 8);
  auto cache = MakeCache(src, 4, 1);
  auto prov = cache->NewProvider();
  auto use = [&](int64_t layer, const std::vector<int32_t>& e) { UseLayer(*prov, src, layer, e); };
  // LRU order, oldest first: (1,0) (1,1) (2,0) (0,0): the cache is full.
  use(1, {0, 1});
  use(2, {0});
  use(0, {0});
  prov->Hint(1, std::vector<int32_t>{5});
  use(0, {0});  // a hit; then the prefetch of (1,5) needs a victim
  ASSERT_TRUE(PollUntil([&] { return src.reads(1, 5) == 1; }));
  use(1, {0, 1, 5});  // plain LRU would have evicted (1,0), which layer 1 is about to use
  const CacheStats s = cache->Stats();
  EXPECT_EQ(s.layers[1].hits + s.layers[1].joins, 3u);  // all three: none was evicted
  EXPECT_EQ(s.layers[1].misses, 2u);                    // the first use of (1,0) and (1,1)
  EXPECT_EQ(s.layers[2].evictions, 1u) << "the victim is the oldest of another layer";
}

// The precision gate (NewProvider(min_precision)): a layer whose hints keep missing stops being
// read early, yet is still judged, and is read early again once it predicts well. Each token:
// hint layer 1 during layer 0 (the hint is read or skipped at layer 0's Begin, by the precision
// judged so far), then run layer 1 (which judges it).
TEST(ExpertCacheTest, PrecisionGateSkipsALayerThatPredictsBadlyAndRecovers) {
  FakeSource src(2, 8);
  auto cache = MakeCache(src, 8, 2);
  auto prov = cache->NewProvider(/*prefetch_min_precision=*/0.6);
  const auto token = [&](const std::vector<int32_t>& hint, const std::vector<int32_t>& actual) {
    prov->Hint(1, hint);
    UseLayer(*prov, src, 0, {7});
    UseLayer(*prov, src, 1, actual);
  };
  // Wrong every time (0 of 2). The running precision starts at 1 and moves 1/8 of the way to
  // each judged hint's precision: 1, 0.875, 0.77, 0.67 (tokens 1-4: read), 0.59 (token 5 on:
  // skipped), so tokens 5-10 skip their 2 hints.
  for (int t = 0; t < 10; ++t) token({4, 5}, {2, 3});
  CacheStats s = cache->Stats();
  EXPECT_EQ(s.layers[1].prefetch_skipped, 12u);
  EXPECT_GT(s.layers[1].prefetch_issued, 0u);
  EXPECT_EQ(s.layers[1].predicted, 20u) << "skipped hints are still judged";
  EXPECT_EQ(s.layers[1].predicted_and_actual, 0u);
  // Right every time: from 0.875^10 = 0.26 the precision passes 0.6 after 5 right hints, so
  // tokens 11-15 still skip and tokens 16-20 are read again.
  for (int t = 0; t < 10; ++t) token({2, 3}, {2, 3});
  s = cache->Stats();
  EXPECT_EQ(s.layers[1].prefetch_skipped, 22u);
  EXPECT_EQ(s.layers[1].predicted_and_actual, 20u);
  // A provider without a gate (the default, and --prefetch on) skips nothing.
  prov = cache->NewProvider();
  for (int t = 0; t < 10; ++t) token({4, 5}, {2, 3});
  EXPECT_EQ(cache->Stats().layers[1].prefetch_skipped, 22u);
}

TEST(ExpertCacheTest, ParseByteSize) {
  EXPECT_EQ(ParseByteSize("128K", "x").value(), 128u << 10);
  EXPECT_EQ(ParseByteSize("3G", "x").value(), 3ull << 30);
  EXPECT_EQ(ParseByteSize("512MiB", "x").value(), 512ull << 20);
  EXPECT_EQ(ParseByteSize("4096", "x").value(), 4096u);
  EXPECT_EQ(ParseByteSize("12Q", "x").status().code(), StatusCode::kUsage);
  EXPECT_EQ(ParseByteSize("", "x").status().code(), StatusCode::kUsage);
  EXPECT_EQ(ParseByteSize("99999999999999999999", "x").status().code(), StatusCode::kUsage);
  EXPECT_EQ(ParseByteSize("99999999999G", "x").status().code(), StatusCode::kUsage);
}

}  // namespace
}  // namespace moe
