// SPDX-License-Identifier: Apache-2.0
#include "experts/loader.h"

#include <algorithm>
#include <chrono>

#include "util/check.h"

namespace moe {

Loader::Loader(const ExpertSource& source, LoadSink& sink, size_t n_threads, size_t max_queued,
               size_t device_reads)
    : source_(source), sink_(sink),
      device_reads_(std::clamp<size_t>(device_reads ? device_reads : n_threads, 1, 64)),
      device_(static_cast<std::ptrdiff_t>(device_reads_)),
      max_ahead_(std::max<size_t>(1, std::min(n_threads, device_reads_) / 2)) {
  demand_.ring.resize(std::max<size_t>(1, max_queued));
  speculative_.ring.resize(demand_.ring.size());
  background_.ring.resize(demand_.ring.size());
  for (size_t i = 0; i < std::max<size_t>(1, n_threads); ++i) threads_.emplace_back([this] { Run(); });
}

Loader::~Loader() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : threads_) t.join();
}

bool Loader::Queue::Push(const LoadJob& job) {
  if (count == ring.size()) return false;
  at(count++) = job;
  return true;
}

LoadJob Loader::Queue::Pop() {
  const LoadJob job = ring[head];
  head = (head + 1) % ring.size();
  --count;
  return job;
}

bool Loader::Queue::Remove(uint32_t slot, LoadJob* out) {
  for (size_t i = 0; i < count; ++i) {
    if (at(i).slot != slot) continue;
    *out = at(i);
    for (size_t j = i + 1; j < count; ++j) at(j - 1) = at(j);
    --count;
    return true;
  }
  return false;
}

bool Loader::Submit(const LoadJob& job, LoadPriority priority) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    Queue& q = priority == LoadPriority::kDemand        ? demand_
               : priority == LoadPriority::kSpeculative ? speculative_
                                                        : background_;
    if (!q.Push(job)) return false;
  }
  cv_.notify_one();
  return true;
}

bool Loader::Promote(uint32_t slot, LoadPriority to) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    LoadJob job;
    const bool found = (to == LoadPriority::kDemand && speculative_.Remove(slot, &job)) ||
                       (to != LoadPriority::kBackground && background_.Remove(slot, &job));
    if (!found) return false;
    // Capacity: the queues together never hold more than max_queued jobs (one per slot).
    MOE_CHECK((to == LoadPriority::kDemand ? demand_ : speculative_).Push(job),
              "loader queue larger than the slot count");
  }
  cv_.notify_one();
  return true;
}

bool Loader::DropSpeculative(uint32_t slot) {
  std::lock_guard<std::mutex> lock(mu_);
  LoadJob job;
  return speculative_.Remove(slot, &job);
}

void Loader::Run() {
  for (;;) {
    LoadJob job;
    bool ahead = false;  // a speculative or background read: nobody waits for it yet
    {
      std::unique_lock<std::mutex> lock(mu_);
      // A speculative read starts only while no demand read is queued or in flight (it uses
      // the disk's idle time and never shares the device with a read someone waits for), and
      // at most half the threads (and device turns) take one, so a new demand read finds a
      // free thread and a free turn.
      Queue* q = nullptr;
      cv_.wait(lock, [&] { return stop_ || (q = NextQueue()) != nullptr; });
      if (stop_) return;  // queued jobs are dropped: only the owner's destructor stops us
      ahead = q != &demand_;
      job = q->Pop();
      // Counted in flight from here (a read-ahead job the sink drops ends its busy period at
      // once), so busy_ns never has a gap between a pop and its read.
      Account(std::chrono::steady_clock::now());
      ++(ahead ? ahead_in_flight_ : demand_in_flight_);
    }
    if (ahead && !sink_.ShouldStart(job)) {
      EndRead(std::chrono::steady_clock::now(), ahead);
      continue;
    }
    // No lock held during I/O. The device limit covers moving the bytes only: while this
    // thread verifies them, another thread's read keeps the device busy.
    device_.acquire();
    const auto t0 = std::chrono::steady_clock::now();
    Status st = source_.ReadRawForCache(job.layer, job.expert, job.dst);
    device_.release();
    if (st.ok()) st = source_.Verify(job.layer, job.expert, job.dst);
    const auto t1 = std::chrono::steady_clock::now();
    EndRead(t1, ahead);
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count();
    sink_.OnLoaded(job, std::move(st), static_cast<uint64_t>(ns));
  }
}

Loader::Queue* Loader::NextQueue() {
  if (demand_.count > 0) return &demand_;
  if (demand_in_flight_ > 0 || ahead_in_flight_ >= max_ahead_) return nullptr;
  if (speculative_.count > 0) return &speculative_;
  return background_.count > 0 ? &background_ : nullptr;
}

void Loader::EndRead(std::chrono::steady_clock::time_point now, bool ahead) {
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    Account(now);
    --(ahead ? ahead_in_flight_ : demand_in_flight_);
    wake = speculative_.count + background_.count > 0;  // a waiting one may be allowed now
  }
  if (wake) cv_.notify_all();
}

namespace {

// Adds [from, to) to the bucket of k reads in flight (none for k = 0 or an empty interval:
// threads take the lock in any order, so a time read before it may precede the last change).
void AddInFlight(std::array<uint64_t, Loader::kInFlightBuckets>& ns, size_t k,
                 std::chrono::steady_clock::time_point from,
                 std::chrono::steady_clock::time_point to) {
  if (k == 0 || to <= from) return;
  ns[std::min(k, Loader::kInFlightBuckets) - 1] += static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(to - from).count());
}

}  // namespace

void Loader::Account(std::chrono::steady_clock::time_point now) {
  AddInFlight(in_flight_ns_, InFlight(), last_change_, now);
  last_change_ = std::max(last_change_, now);
}

std::array<uint64_t, Loader::kInFlightBuckets> Loader::in_flight_ns() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::array<uint64_t, kInFlightBuckets> ns = in_flight_ns_;
  AddInFlight(ns, InFlight(), last_change_, std::chrono::steady_clock::now());
  return ns;
}

uint64_t Loader::busy_ns() const {
  uint64_t ns = 0;
  for (uint64_t v : in_flight_ns()) ns += v;
  return ns;
}

}  // namespace moe
