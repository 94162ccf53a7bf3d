// SPDX-License-Identifier: Apache-2.0
#include "util/thread_pool.h"

#include <unistd.h>

#include <chrono>

#include "util/check.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace moe {
namespace {

// Spin iterations before sleeping: ~50 µs with a pause of ~100 cycles (Zen 4 / recent Intel;
// shorter on older cores). Long enough to bridge the gap between two ParallelFors of one
// decode step, short enough that an idle pool goes to sleep at once on a human timescale.
constexpr int kSpinIters = 2000;

// After this many pause iterations a spinner also yields the CPU every 32nd iteration: when
// other processes keep the cores busy, the thread we wait for may be queued behind us on our own
// core, and pure spinning burns its time slice; yielding on every iteration instead hands the
// core to niced background work for a whole tick. Ref model decode, 2 threads, medians of 3
// interleaved runs with two nice-19 fuzzers running: yield every iteration 477 tok/s, never
// 681, every 32nd 689; with a nice-0 CPU hog added: 593 / 369 / 655.
constexpr int kPauseOnlyIters = 100;

inline void CpuRelax(int iter) {
  if (iter >= kPauseOnlyIters && iter % 32 == 0) {
    std::this_thread::yield();
    return;
  }
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

constexpr uint64_t kLeftMask = 0xffffffffu;

}  // namespace

ThreadPool::ThreadPool(size_t n_threads) {
  if (n_threads < 1) n_threads = 1;
  for (size_t w = 1; w < n_threads; ++w) workers_.emplace_back([this, w] { WorkerLoop(w); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lock(mu_);
    generation_.fetch_add(1, std::memory_order_seq_cst);  // claim_ keeps the old generation
  }
  cv_start_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::RunTasks(uint32_t gen, size_t worker) {
  uint64_t c = claim_.load(std::memory_order_acquire);
  for (;;) {
    if (static_cast<uint32_t>(c >> 32) != gen) return;  // generation over (or not yet begun)
    const uint64_t left = c & kLeftMask;
    if (left == 0) return;
    if (!claim_.compare_exchange_weak(c, c - 1, std::memory_order_acq_rel,
                                      std::memory_order_acquire)) {
      continue;
    }
    // The claim succeeded while `gen` was current with a task left, so fn_/ctx_ are this
    // generation's and stay so until done_ counts this task.
    fn_(ctx_, static_cast<size_t>(left - 1), worker);
    // Seq_cst pairs with Run's store of caller_sleeps_ before its last check of done_: either
    // Run sees this count or we see it asleep and wake it (a spurious wake-up is harmless).
    done_.fetch_add(1, std::memory_order_seq_cst);
    if (caller_sleeps_.load(std::memory_order_seq_cst)) {
      std::lock_guard<std::mutex> lock(mu_);
      cv_done_.notify_one();
    }
    c = claim_.load(std::memory_order_acquire);
  }
}

void ThreadPool::Run(size_t n_tasks, TaskFn fn, const void* ctx) {
  if (n_tasks == 0) return;
  if (workers_.empty() || n_tasks == 1) {
    for (size_t t = 0; t < n_tasks; ++t) fn(ctx, t, 0);
    return;
  }
  MOE_CHECK(n_tasks <= kLeftMask);
  // No claim can succeed here: the last generation's tasks are all claimed and done.
  const uint32_t gen = generation_.load(std::memory_order_relaxed) + 1;
  fn_ = fn;
  ctx_ = ctx;
  done_.store(0, std::memory_order_relaxed);
  claim_.store(static_cast<uint64_t>(gen) << 32 | n_tasks, std::memory_order_release);
  generation_.store(gen, std::memory_order_seq_cst);
  if (sleepers_.load(std::memory_order_seq_cst) > 0) {
    std::lock_guard<std::mutex> lock(mu_);  // a sleeper is either before its check or waiting
    cv_start_.notify_all();
  }
  RunTasks(gen, 0);
  if (done_.load(std::memory_order_acquire) == n_tasks) return;
  const auto t0 = std::chrono::steady_clock::now();
  WaitDone(n_tasks);
  const auto waited = std::chrono::duration_cast<std::chrono::nanoseconds>(
      std::chrono::steady_clock::now() - t0);
  tail_wait_ns_.store(tail_wait_ns_.load(std::memory_order_relaxed) +
                          static_cast<uint64_t>(waited.count()),
                      std::memory_order_relaxed);
}

void ThreadPool::WaitDone(size_t n_tasks) {
  for (int i = 0; i < kSpinIters; ++i) {
    if (done_.load(std::memory_order_acquire) == n_tasks) return;
    CpuRelax(i);
  }
  std::unique_lock<std::mutex> lock(mu_);
  caller_sleeps_.store(true, std::memory_order_seq_cst);
  cv_done_.wait(lock, [&] { return done_.load(std::memory_order_seq_cst) == n_tasks; });
  caller_sleeps_.store(false, std::memory_order_relaxed);
}

void ThreadPool::WorkerLoop(size_t worker) {
  uint32_t seen = 0;  // the generation at construction: a Run may start before this thread
  for (;;) {
    uint32_t g = generation_.load(std::memory_order_acquire);
    for (int i = 0; g == seen && i < kSpinIters; ++i) {
      CpuRelax(i);
      g = generation_.load(std::memory_order_acquire);
    }
    if (g == seen) {
      std::unique_lock<std::mutex> lock(mu_);
      sleepers_.fetch_add(1, std::memory_order_seq_cst);
      // Checked after announcing: Run bumps generation_ before reading sleepers_ (both
      // seq_cst), so either it sees us sleeping and notifies under mu_, or we see the new
      // generation here.
      cv_start_.wait(lock, [&] { return (g = generation_.load(std::memory_order_seq_cst)) != seen; });
      sleepers_.fetch_sub(1, std::memory_order_relaxed);
    }
    seen = g;
    if (stop_.load(std::memory_order_relaxed)) return;
    RunTasks(g, worker);
  }
}

size_t DefaultThreadCount() {
  long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<size_t>(n) : 1;
}

}  // namespace moe
