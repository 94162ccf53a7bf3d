// SPDX-License-Identifier: Apache-2.0
#include "util/thread_pool.h"

#include <unistd.h>

namespace moe {

ThreadPool::ThreadPool(size_t n_threads) {
  if (n_threads < 1) n_threads = 1;
  for (size_t w = 1; w < n_threads; ++w) workers_.emplace_back([this, w] { WorkerLoop(w); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_start_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::RunTasks(size_t worker) {
  for (;;) {
    size_t task = next_task_.fetch_add(1, std::memory_order_relaxed);
    if (task >= n_tasks_) break;
    fn_(ctx_, task, worker);
  }
}

void ThreadPool::Run(size_t n_tasks, TaskFn fn, const void* ctx) {
  if (n_tasks == 0) return;
  if (workers_.empty() || n_tasks == 1) {
    for (size_t t = 0; t < n_tasks; ++t) fn(ctx, t, 0);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    fn_ = fn;
    ctx_ = ctx;
    n_tasks_ = n_tasks;
    next_task_.store(0, std::memory_order_relaxed);
    n_busy_ = workers_.size();
    ++generation_;
  }
  cv_start_.notify_all();
  RunTasks(0);
  std::unique_lock<std::mutex> lock(mu_);
  cv_done_.wait(lock, [this] { return n_busy_ == 0; });
  fn_ = nullptr;
  ctx_ = nullptr;
}

void ThreadPool::WorkerLoop(size_t worker) {
  size_t seen = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_start_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
    }
    RunTasks(worker);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (--n_busy_ == 0) cv_done_.notify_one();
    }
  }
}

size_t DefaultThreadCount() {
  long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<size_t>(n) : 1;
}

}  // namespace moe
