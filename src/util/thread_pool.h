// SPDX-License-Identifier: Apache-2.0
// The compute thread pool: ParallelFor(n_tasks, fn(task, worker)) with the caller as worker 0.
// Work is split into tasks by the caller along output rows or experts, never in a way that
// changes the order of a sum, so results are identical for any thread count.
// Thread-compatible: one ParallelFor at a time (a Session owns the pool or borrows it).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <thread>
#include <vector>

namespace moe {

class ThreadPool {
 public:
  // n_threads ≥ 1 includes the calling thread; n_threads - 1 workers are started.
  explicit ThreadPool(size_t n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  size_t n_threads() const { return workers_.size() + 1; }

  // Runs fn(task, worker) for task in [0, n_tasks); worker < n_threads() identifies per-thread
  // scratch. Returns when all tasks are done. Tasks are claimed dynamically. Allocation-free.
  template <typename F>
  void ParallelFor(size_t n_tasks, const F& fn) {
    Run(n_tasks, [](const void* ctx, size_t task, size_t worker) {
      (*static_cast<const F*>(ctx))(task, worker);
    }, &fn);
  }

 private:
  using TaskFn = void (*)(const void* ctx, size_t task, size_t worker);
  void Run(size_t n_tasks, TaskFn fn, const void* ctx);
  void WorkerLoop(size_t worker);
  void RunTasks(size_t worker);

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_start_;
  std::condition_variable cv_done_;
  TaskFn fn_ = nullptr;  // published under mu_
  const void* ctx_ = nullptr;
  size_t n_tasks_ = 0;
  std::atomic<size_t> next_task_{0};
  size_t generation_ = 0;
  size_t n_busy_ = 0;
  bool stop_ = false;
};

// Default thread count: the number of online CPUs (each vCPU here is one physical core's thread).
size_t DefaultThreadCount();

}  // namespace moe
