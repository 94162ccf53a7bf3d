// SPDX-License-Identifier: Apache-2.0
// The byte-budget expert cache: one arena of equal slots (block rounded up to 4 KiB, 2 MiB
// aligned, MADV_HUGEPAGE, prefaulted once), a replacement policy (cache_policy.h) and a Loader
// whose I/O threads read misses straight into slots.
//
// Slot life: Empty → Loading → Ready → (evicted) Empty; Loading → Failed → Empty when the read
// fails (the failed bytes are never handed out; the key is forgotten so a later request reads
// again). A pin count keeps a slot from eviction; only Ready slots with no pins are victims.
// A key requested again while Loading joins that load (one read per miss).
//
// Threads and locks: ONE mutex guards the key→slot map, slot states, pins, the policy and the
// stats; `ready_cv_` wakes waiters when a load completes or a pin is released. I/O threads take
// the mutex only to publish a completion; no lock is held during a read.
// Ownership: the cache owns the arena and the Loader; providers (one per Session) borrow the
// cache and must be destroyed before it. Thread-safe.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "experts/cache_policy.h"
#include "experts/expert_provider.h"
#include "experts/expert_source.h"
#include "experts/loader.h"
#include "util/status.h"

namespace moe {

struct ExpertCacheOptions {
  uint64_t budget_bytes = 0;
  PolicyOptions policy;
  size_t io_threads = 4;
  size_t io_depth = 0;          // device reads at once (Loader's device_reads); 0 = io_threads
  int64_t top_k = 1;            // a budget below top_k slots is refused (kUsage)
  int64_t wait_timeout_ms = 120000;  // bound on any wait for a read or a free slot
  // Fill: while slots are free, keep kFillReads background reads of experts not yet cached in
  // flight, expert by expert across the layers ((layer 0, expert 0), (1, 0), …, (0, 1), …), at
  // the lowest priority (Loader: kBackground). It never evicts; unless the cache holds every
  // expert it leaves 2 × top_k slots free; it stops for good at its first failed read.
  bool fill = false;
};

struct LayerCacheStats {
  uint64_t hits = 0;          // found Ready
  uint64_t joins = 0;         // found Loading (another request's read)
  uint64_t misses = 0;        // read issued on demand
  uint64_t evictions = 0;
  uint64_t bytes_read = 0;
  uint64_t read_ns = 0;       // summed over I/O threads
  uint64_t wait_ns = 0;       // time compute blocked in Wait
  uint64_t prefetch_issued = 0;   // reads issued by Hint
  uint64_t prefetch_used = 0;     // prefetched blocks later requested
  uint64_t prefetch_cancelled = 0;  // dropped before their read started (wrong predictions)
  uint64_t prefetch_skipped = 0;  // predicted but not read: the layer's recent precision was low
  uint64_t predicted = 0, actual = 0, predicted_and_actual = 0;  // lookahead precision/recall
  uint64_t fill_issued = 0;  // background reads into free slots (ExpertCacheOptions::fill)
  uint64_t fill_used = 0;    // filled blocks later requested
  void Add(const LayerCacheStats& o);
  void Sub(const LayerCacheStats& o);  // o's counters taken out (o counted before this)
  // Reads a prefetch completed that no request used (yet): the speculative bytes wasted.
  uint64_t prefetch_unused() const {
    const uint64_t done = prefetch_used + prefetch_cancelled;
    return prefetch_issued > done ? prefetch_issued - done : 0;
  }
};

struct CacheStats {
  uint64_t budget_bytes = 0, slot_bytes = 0, n_slots = 0;
  uint64_t read_errors = 0;
  LayerCacheStats total;
  std::vector<LayerCacheStats> layers;  // index = layer
  // One-paragraph human summary and a JSON object.
  std::string Summary() const;
  std::string Json() const;
};

class ExpertCache final : private LoadSink {
 public:
  // Errors: kUsage when the budget holds fewer than top_k blocks ("cache too small: need ≥ …");
  // kResourceExhausted when the arena cannot be allocated. A budget ≥ every expert is clamped
  // to exactly every expert.
  static Result<std::unique_ptr<ExpertCache>> Create(const ExpertSource& source,
                                                     const ExpertCacheOptions& opts);
  ~ExpertCache() override;

  // A provider for one Session. Its router-lookahead hints are read early (Prefetch) unless
  // `prefetch_min_precision` > 0 and the hinted layer's recent lookahead precision (a running
  // mean over its last predictions, judged at the layer's Begin) is below it: then the
  // prediction is only judged, not read (prefetch_skipped), until the layer predicts well again.
  std::unique_ptr<ExpertProvider> NewProvider(double prefetch_min_precision = 0);
  size_t n_slots() const { return slots_.size(); }
  int32_t n_experts() const { return universe_.n_experts; }
  uint64_t slot_bytes() const { return slot_bytes_; }
  const ExpertGeometry& geometry() const { return source_.geometry(); }
  const ExpertSource& source() const { return source_; }
  // The bytes of one slot for `source`: its largest read into a slot, rounded up to 4 KiB.
  static uint64_t SlotBytes(const ExpertSource& source);
  CacheStats Stats() const;
  // Blocks until the background prefault is done (benchmarks time the steady state). Not
  // thread-safe against itself: call from the cache's owner.
  void WaitArenaPrefaulted() const {
    if (prefault_) prefault_->Wait();
  }
  // Loader::busy_ns: time during which at least one read was in flight.
  uint64_t io_busy_ns() const;
  // Loader::in_flight_ns: that time split by the number of reads in flight (1, 2, 3, ≥ 4).
  std::array<uint64_t, Loader::kInFlightBuckets> io_in_flight_ns() const;
  // Router-lookahead bookkeeping: `predicted` experts for `layer` vs the `actual` set used.
  // Returns how many predicted experts were used.
  uint64_t RecordPrediction(int64_t layer, std::span<const int32_t> predicted,
                            std::span<const int32_t> actual);
  // A prediction of `n` experts for `layer` that the provider chose not to read.
  void RecordSkippedPrefetch(int64_t layer, size_t n);
  int32_t n_layers() const { return static_cast<int32_t>(stats_.size()); }

  // --- Used by providers (and tests). ---
  // Pins key's slot, issuing its read when absent. Returns the slot, or kNoSlot when every slot
  // is pinned or loading (the caller releases its own pins and calls AcquireBlocking).
  static constexpr uint32_t kNoSlot = 0xffffffffu;
  uint32_t TryAcquire(ExpertKey key);
  // Like TryAcquire but waits (bounded) for a slot to free up. kResourceExhausted on timeout.
  Result<uint32_t> AcquireBlocking(ExpertKey key);
  // Blocks (bounded) until the pinned slot is Ready; the read's Status when it failed.
  Result<const void*> WaitReady(uint32_t slot, ExpertKey key);
  // Whether a pinned slot's read has completed successfully (WaitReady would not block).
  bool IsReady(uint32_t slot) const;
  void Release(uint32_t slot);
  // Loads key into a free or evictable slot without pinning it, as a speculative read (it
  // starts only while no demand read is queued or in flight; see Loader). Never blocks; never
  // evicts a pinned or loading slot, nor a resident expert of key's own layer (those are what
  // the prediction is about to use).
  void Prefetch(ExpertKey key);
  // The prediction for key was wrong: drops its prefetch if the read has not started and no one
  // waits for it. Otherwise (started, done, requested, or never prefetched) does nothing.
  void CancelPrefetch(ExpertKey key);

 private:
  enum class SlotState : uint8_t { kEmpty, kLoading, kReady, kFailed };
  struct Slot {
    SlotState state = SlotState::kEmpty;
    bool prefetched = false;  // loaded by Prefetch or the fill and not requested since
    bool fill = false;        // ... by the fill (prefetched is set too)
    bool fill_read = false;   // the fill's read has not ended (counted in fill_in_flight_)
    bool started = false;     // the read began (Loader asked ShouldStart, or a demand read)
    bool cancelled = false;   // CancelPrefetch: dropped when the loader reaches it
    int32_t pins = 0;
    ExpertKey key;
    Status error;
  };

  ExpertCache(const ExpertSource& source, const ExpertCacheOptions& opts);
  bool ShouldStart(const LoadJob& job) override;
  void OnLoaded(const LoadJob& job, Status status, uint64_t read_ns) override;
  // With mu_ held: a slot for `key` (free or evicted), or kNoSlot; issues its read (kDemand:
  // a request; kSpeculative: Prefetch; kBackground: the fill, which passes only free slots).
  uint32_t StartLoadLocked(ExpertKey key, LoadPriority priority);
  // With mu_ held: tops the fill up to kFillReads reads (ExpertCacheOptions::fill).
  void FillLocked();
  static constexpr size_t kFillReads = 2;
  void FreeLocked(uint32_t slot);
  LayerCacheStats& LayerStats(int32_t layer) { return stats_[static_cast<size_t>(layer)]; }

  const ExpertSource& source_;
  ExpertCacheOptions opts_;
  PolicyUniverse universe_;
  uint64_t slot_bytes_ = 0;
  HugeBuffer arena_;
  // Faults the arena in behind the scenes (nullptr: done at Create); stopped before the arena
  // goes (declared after it).
  std::unique_ptr<BackgroundPrefault> prefault_;

  mutable std::mutex mu_;
  std::condition_variable ready_cv_;  // a load finished or a pin was released
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_;        // Empty slots
  std::vector<uint32_t> map_;         // universe index → slot, kNoSlot when absent
  std::unique_ptr<CachePolicy> policy_;
  std::vector<LayerCacheStats> stats_;
  uint64_t read_errors_ = 0;
  std::vector<uint32_t> fill_order_;  // universe indices with experts, expert by expert
  size_t fill_next_ = 0;              // fill_order_[0, fill_next_) are cached or were
  size_t fill_reserve_ = 0;           // free slots the fill leaves
  size_t fill_in_flight_ = 0;
  bool fill_stopped_ = false;         // a fill read failed
  std::unique_ptr<Loader> loader_;    // last: its threads stop before the rest is destroyed
};

// "512M", "4G", "65536", "128K" → bytes (K/M/G/T = 2^10…); kUsage naming the flag otherwise.
Result<uint64_t> ParseByteSize(const std::string& s, const char* flag);
// The `auto` budget: 70% of (MemAvailable − dense − kv), rounded down to whole slots by Create.
// kResourceExhausted when /proc/meminfo is unreadable or nothing is left.
Result<uint64_t> AutoCacheBudget(uint64_t dense_bytes, uint64_t kv_bytes);
// The process's peak resident set (VmHWM from /proc/self/status); 0 when unavailable.
uint64_t PeakRssBytes();
// MemAvailable from /proc/meminfo.
Result<uint64_t> MemAvailableBytes();

}  // namespace moe
