// SPDX-License-Identifier: Apache-2.0
// The compute thread pool: ParallelFor(n_tasks, fn(task, worker)) with the caller as worker 0.
// Work is split into tasks by the caller along output rows or experts, never in a way that
// changes the order of a sum, so results are identical for any thread count.
// Thread-compatible: one ParallelFor at a time (a Session owns the pool or borrows it).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
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

  // Wall time callers of ParallelFor spent waiting after they found no task left to claim,
  // until the last task of their generation was done: the tail of each ParallelFor, where
  // fewer than n_threads() threads work (uneven tasks, or a worker scheduled late). Counted
  // only when the caller had to wait (one clock read pair then).
  uint64_t tail_wait_ns() const { return tail_wait_ns_.load(std::memory_order_relaxed); }

  // Runs fn(task, worker) for task in [0, n_tasks) (n_tasks < 2^32); worker < n_threads()
  // identifies per-thread scratch. Returns when all tasks are done. Tasks are claimed
  // dynamically, in no particular order. Allocation-free.
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
  // Claims and runs tasks of generation `gen` until none is left or the generation is over.
  void RunTasks(uint32_t gen, size_t worker);
  // Spins, then sleeps, until done_ == n_tasks.
  void WaitDone(size_t n_tasks);

  // Hand-off without a lock. One 64-bit word, claim_ = generation << 32 | tasks left, carries
  // all a worker needs to claim a task: Run publishes fn_/ctx_, then stores (g << 32 | n) and
  // bumps generation_; a worker claims task `left - 1` by a CAS from (g, left) to (g, left - 1),
  // so a claim can only succeed while its generation is current and a task is left, whatever
  // the worker read earlier (a stale word fails the CAS). Exactly n claims succeed per
  // generation, each counted in done_ after its task ran; Run returns when done_ == n. It never
  // waits for a worker that was not scheduled in time (the caller then runs the tasks itself:
  // on a loaded machine a pool thread may sit in a run queue for a whole time slice). Both sides
  // spin briefly (a decode step issues ~100 short ParallelFors; a wake-up through the kernel
  // costs tens of µs on a VM), yielding now and then, then sleep on a condition variable;
  // notifies are skipped when nobody sleeps (Dekker-style, seq_cst on both sides).
  std::vector<std::thread> workers_;
  TaskFn fn_ = nullptr;           // written by Run only while no claim can succeed
  const void* ctx_ = nullptr;
  std::atomic<uint64_t> claim_{0};       // generation << 32 | tasks not yet claimed
  std::atomic<size_t> done_{0};          // tasks of the current generation finished
  std::atomic<uint32_t> generation_{0};  // the latest generation; bumped at shutdown too
  std::atomic<uint32_t> sleepers_{0};    // workers waiting on cv_start_
  std::atomic<bool> caller_sleeps_{false};
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> tail_wait_ns_{0};  // written by the caller only; atomic for readers
  std::mutex mu_;                     // only for the sleeping paths
  std::condition_variable cv_start_;  // workers wait for a new generation
  std::condition_variable cv_done_;   // the caller waits for done_ == n
};

// Default thread count: the number of online CPUs (each vCPU here is one physical core's thread).
size_t DefaultThreadCount();

}  // namespace moe
