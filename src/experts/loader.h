// SPDX-License-Identifier: Apache-2.0
// A small pool of I/O threads that read expert blocks from an ExpertSource into caller-owned
// memory (cache slots) and report each completion, success or failure, to a sink.
// Owns its threads (joined in the destructor, after in-flight reads finish). Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "experts/expert_source.h"
#include "util/status.h"

namespace moe {

struct LoadJob {
  int32_t layer = 0;
  int32_t expert = 0;
  uint32_t slot = 0;     // the caller's tag, handed back in OnLoaded
  void* dst = nullptr;   // source.dst_bytes() bytes, stays valid until OnLoaded
};

// Receives completions on an I/O thread. Must not call back into the Loader.
class LoadSink {
 public:
  virtual ~LoadSink() = default;
  virtual void OnLoaded(const LoadJob& job, Status status, uint64_t read_ns) = 0;
};

class Loader {
 public:
  // `max_queued` bounds the jobs waiting (a cache never has more than its slot count loading).
  Loader(const ExpertSource& source, LoadSink& sink, size_t n_threads, size_t max_queued);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // Queues a read; never blocks on I/O. Returns false only when max_queued jobs are waiting
  // (a caller bug: the cache sizes the queue to its slots).
  bool Submit(const LoadJob& job);
  size_t n_threads() const { return threads_.size(); }
  // Wall time, since construction, during which at least one read was in flight (the current
  // busy period included): bytes read over this is the rate the read path delivers while it
  // is reading, comparable with a device probe at the same concurrency.
  uint64_t busy_ns() const;

 private:
  void Run();

  const ExpertSource& source_;
  LoadSink& sink_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<LoadJob> ring_;  // fixed capacity: no allocation per job
  size_t head_ = 0, count_ = 0;
  size_t in_flight_ = 0;                              // guarded by mu_
  std::chrono::steady_clock::time_point busy_since_;  // when in_flight_ went 0 → 1
  uint64_t busy_ns_ = 0;                              // closed busy periods
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace moe
