// SPDX-License-Identifier: Apache-2.0
// A small pool of I/O threads that read expert blocks from an ExpertSource into caller-owned
// memory (cache slots) and report each completion, success or failure, to a sink.
// Owns its threads (joined in the destructor, after in-flight reads finish). Thread-safe.
#pragma once

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <semaphore>
#include <thread>
#include <vector>

#include "experts/expert_source.h"
#include "util/status.h"

namespace moe {

struct LoadJob {
  int32_t layer = 0;
  int32_t expert = 0;
  uint32_t slot = 0;     // the caller's tag, handed back in OnLoaded
  void* dst = nullptr;   // source.cache_dst_bytes() bytes, stays valid until OnLoaded
};

// Receives callbacks on an I/O thread. Must not call back into the Loader.
class LoadSink {
 public:
  virtual ~LoadSink() = default;
  // Asked just before a read-ahead (speculative or background) job's read starts: false drops
  // the job (no read, no OnLoaded; the sink takes its memory back). Demand jobs always start.
  virtual bool ShouldStart(const LoadJob& job) { return (void)job, true; }
  virtual void OnLoaded(const LoadJob& job, Status status, uint64_t read_ns) = 0;
};

// Demand reads are waited on now; speculative ones (prefetch) run only while no demand read is
// queued or in flight, on at most half the threads (and half the device turns), and may be
// dropped before they start (LoadSink::ShouldStart). Background ones (cache fill) run like
// speculative ones, and only while no speculative read is queued either; they share its
// threads and turns.
enum class LoadPriority : uint8_t { kDemand, kSpeculative, kBackground };

class Loader {
 public:
  // `max_queued` bounds the jobs waiting (a cache never has more than its slot count loading).
  // `device_reads`: at most this many threads move bytes (ExpertSource::ReadRaw) at once; a
  // block is verified outside that limit, so while one thread checks the block it read, the
  // next read already has the device. 0 = n_threads (no limit but the threads); a limit above
  // n_threads changes nothing.
  Loader(const ExpertSource& source, LoadSink& sink, size_t n_threads, size_t max_queued,
         size_t device_reads = 0);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // Queues a read; never blocks on I/O. Returns false only when max_queued jobs are waiting
  // (a caller bug: the cache sizes the queue to its slots).
  bool Submit(const LoadJob& job, LoadPriority priority = LoadPriority::kDemand);
  // Moves the queued speculative or background job for `slot` behind the queued jobs of
  // priority `to` (kDemand: someone now waits for it). False when it is not queued at a lower
  // priority (already started, dropped, or queued at `to` or above).
  bool Promote(uint32_t slot, LoadPriority to = LoadPriority::kDemand);
  // Removes the queued speculative job for `slot`: it will not be read. False when it is not
  // queued as speculative (already taken by a thread, or never queued so).
  bool DropSpeculative(uint32_t slot);
  size_t n_threads() const { return threads_.size(); }
  size_t device_reads() const { return device_reads_; }
  // Wall time, since construction, during which at least one read was in flight (the current
  // busy period included): bytes read over this is the rate the read path delivers while it
  // is reading, comparable with a device probe at the same concurrency.
  uint64_t busy_ns() const;
  // The same time split by how many reads were in flight: element i is the wall time with
  // exactly i + 1 reads in flight, the last element with kInFlightBuckets or more. A read counts
  // from its pop to the end of its check (ExpertSource::Verify), as in busy_ns().
  static constexpr size_t kInFlightBuckets = 4;
  std::array<uint64_t, kInFlightBuckets> in_flight_ns() const;

 private:
  void Run();
  // One read (or a dropped read-ahead job) ended: in-flight counts down, busy period closed.
  // `ahead`: it was a speculative or background job.
  void EndRead(std::chrono::steady_clock::time_point now, bool ahead);

  const ExpertSource& source_;
  LoadSink& sink_;
  const size_t device_reads_;
  std::counting_semaphore<64> device_;  // a thread holds one while in ReadRaw
  // Read-ahead (speculative and background) reads in flight at once: half of the threads or
  // device turns, whichever is fewer, so a new demand read always finds both a free thread and
  // a free turn.
  const size_t max_ahead_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  // Fixed-capacity FIFOs (no allocation per job). A slot is in at most one of them.
  struct Queue {
    std::vector<LoadJob> ring;
    size_t head = 0, count = 0;
    LoadJob& at(size_t i) { return ring[(head + i) % ring.size()]; }
    bool Push(const LoadJob& job);
    LoadJob Pop();
    bool Remove(uint32_t slot, LoadJob* out);  // keeps the others' order
  };
  Queue demand_, speculative_, background_;
  // The queue a free thread takes its next job from (mu_ held), or nullptr: demand first;
  // speculative and then background ones only while no demand read is queued or in flight and
  // fewer than max_ahead_ of them are in flight.
  Queue* NextQueue();
  // Guarded by mu_; ahead_in_flight_ counts speculative and background reads.
  size_t demand_in_flight_ = 0, ahead_in_flight_ = 0;
  size_t InFlight() const { return demand_in_flight_ + ahead_in_flight_; }  // mu_ held
  // Adds the time since the last change of InFlight() to its bucket; called (mu_ held) right
  // before each change.
  void Account(std::chrono::steady_clock::time_point now);
  std::chrono::steady_clock::time_point last_change_;  // of InFlight()
  std::array<uint64_t, kInFlightBuckets> in_flight_ns_{};  // closed intervals
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace moe
