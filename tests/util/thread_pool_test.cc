// SPDX-License-Identifier: Apache-2.0
#include "util/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <vector>

namespace moe {
namespace {

TEST(ThreadPoolTest, RunsEveryTaskOnceWithValidWorkerIds) {
  for (size_t n_threads : {1, 2, 4}) {
    ThreadPool pool(n_threads);
    for (int round = 0; round < 50; ++round) {
      std::vector<std::atomic<int>> hits(97);
      std::atomic<bool> bad_worker{false};
      pool.ParallelFor(hits.size(), [&](size_t task, size_t worker) {
        if (worker >= pool.n_threads()) bad_worker = true;
        hits[task].fetch_add(1);
      });
      for (auto& h : hits) EXPECT_EQ(h.load(), 1);
      EXPECT_FALSE(bad_worker.load());
    }
  }
}

}  // namespace
}  // namespace moe
