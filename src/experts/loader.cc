// SPDX-License-Identifier: Apache-2.0
#include "experts/loader.h"

#include <chrono>

namespace moe {

Loader::Loader(const ExpertSource& source, LoadSink& sink, size_t n_threads, size_t max_queued)
    : source_(source), sink_(sink), ring_(std::max<size_t>(1, max_queued)) {
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

bool Loader::Submit(const LoadJob& job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (count_ == ring_.size()) return false;
    ring_[(head_ + count_) % ring_.size()] = job;
    ++count_;
  }
  cv_.notify_one();
  return true;
}

void Loader::Run() {
  for (;;) {
    LoadJob job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stop_ || count_ > 0; });
      if (stop_) return;  // queued jobs are dropped: only the owner's destructor stops us
      job = ring_[head_];
      head_ = (head_ + 1) % ring_.size();
      --count_;
      if (in_flight_++ == 0) busy_since_ = std::chrono::steady_clock::now();
    }
    // No lock held during I/O.
    const auto t0 = std::chrono::steady_clock::now();
    Status st = source_.Read(job.layer, job.expert, job.dst);
    const auto t1 = std::chrono::steady_clock::now();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (--in_flight_ == 0) {
        busy_ns_ += static_cast<uint64_t>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - busy_since_).count());
      }
    }
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count();
    sink_.OnLoaded(job, std::move(st), static_cast<uint64_t>(ns));
  }
}

uint64_t Loader::busy_ns() const {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t ns = busy_ns_;
  if (in_flight_ > 0) {
    ns += static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                    std::chrono::steady_clock::now() - busy_since_)
                                    .count());
  }
  return ns;
}

}  // namespace moe
