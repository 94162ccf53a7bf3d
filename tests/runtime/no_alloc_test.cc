// SPDX-License-Identifier: Apache-2.0
// A decode step performs no heap allocation: every operator new in this test binary is counted
// while a step runs (after one warm-up step, which may create per-thread scratch).
#include <gtest/gtest.h>

// Replacing the global allocator is the point of this test.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

#include <atomic>
#include <cstdlib>
#include <new>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "runtime/engine.h"
#include "runtime/sampler.h"
#include "runtime/session.h"
#include "util/thread_pool.h"

namespace {
std::atomic<bool> g_counting{false};
std::atomic<long> g_allocations{0};
}  // namespace

void* operator new(size_t n) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
// Every other unaligned form too: the sanitizers intercept each form separately, so one left to
// them would pair their allocation with our free (std::stable_sort's nothrow buffer did).
void* operator new(size_t n, const std::nothrow_t&) noexcept {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1);
  return std::malloc(n ? n : 1);
}
void* operator new[](size_t n) { return operator new(n); }
void* operator new[](size_t n, const std::nothrow_t& t) noexcept { return operator new(n, t); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }

namespace moe {
namespace {

// Resident, and streamed with the router lookahead on: through a small cache (reads, hints,
// prefetches and evictions every step) and through one that holds every expert (the fill).
TEST(NoAllocTest, DecodeStepDoesNotAllocate) {
  const std::pair<const char*, const char*> runs[] = {{"base", ""},    {"base", "96K"},
                                                      {"base", "64M"}, {"tied", ""},
                                                      {"tied", "96K"}, {"tied", "64M"}};
  for (const auto& [model, cache] : runs) {
    SCOPED_TRACE(std::string(model) + " cache '" + cache + "'");
    EngineOptions o;
    o.model_dir = std::string(MOE_SOURCE_DIR) + "/tests/data/models/" + model;
    o.expert_cache = cache;
    o.prefetch = PrefetchMode::kOn;
    auto engine = Engine::Open(o);
    ASSERT_TRUE(engine.ok()) << engine.status().message();
    ThreadPool pool(2);
    Session s(**engine, pool, {});
    std::vector<float> logits(static_cast<size_t>((*engine)->config().vocab_size));
    const std::vector<int32_t> prompt = {3, 17, 42, 5};
    ASSERT_TRUE(s.Forward(prompt, LogitsMode::kLast, logits.data()).ok());
    int32_t tok = 7;
    ASSERT_TRUE(s.Forward({&tok, 1}, LogitsMode::kLast, logits.data()).ok());  // warm-up
    g_allocations = 0;
    g_counting = true;
    { std::vector<int> probe(3); }  // the counter itself works
    g_counting = false;
    ASSERT_GT(g_allocations.load(), 0);
    g_allocations = 0;
    g_counting = true;
    for (int i = 0; i < 5; ++i) {
      tok = static_cast<int32_t>(10 + i);
      Status st = s.Forward({&tok, 1}, LogitsMode::kLast, logits.data());
      if (!st.ok()) break;
    }
    g_counting = false;
    EXPECT_EQ(g_allocations.load(), 0) << model;
  }
}

// Greedy decoding from the lm_head shadow (Session::ForwardArgmax) allocates nothing either.
TEST(NoAllocTest, GreedyStepFromTheShadowDoesNotAllocate) {
  for (const char* model : {"base", "tied"}) {
    SCOPED_TRACE(model);
    EngineOptions o;
    o.model_dir = std::string(MOE_SOURCE_DIR) + "/tests/data/models/" + model;
    o.lm_head_shadow = true;
    auto engine = Engine::Open(o);
    ASSERT_TRUE(engine.ok()) << engine.status().message();
    ThreadPool pool(2);
    Session s(**engine, pool, {});
    int32_t tok = 0;
    ASSERT_TRUE(s.ForwardArgmax(std::vector<int32_t>{3, 17, 42, 5}, &tok).ok());
    ASSERT_TRUE(s.ForwardArgmax({&tok, 1}, &tok).ok());  // warm-up
    g_allocations = 0;
    g_counting = true;
    for (int i = 0; i < 5; ++i) {
      Status st = s.ForwardArgmax({&tok, 1}, &tok);
      if (!st.ok()) break;
    }
    g_counting = false;
    EXPECT_EQ(g_allocations.load(), 0);
    EXPECT_EQ(s.greedy_head_stats().tokens, 7);
  }
}

// A top-k sampling step from the shadow, with a repetition penalty's history (Session::
// ForwardTopK, Sampler::SampleRows), allocates nothing either.
TEST(NoAllocTest, TopKSamplingStepFromTheShadowDoesNotAllocate) {
  EngineOptions o;
  o.model_dir = std::string(MOE_SOURCE_DIR) + "/tests/data/models/base";
  o.lm_head_shadow = true;
  auto engine = Engine::Open(o);
  ASSERT_TRUE(engine.ok()) << engine.status().message();
  ThreadPool pool(2);
  Session s(**engine, pool, {});
  SamplingParams p;
  p.temperature = 0.8f;
  p.top_k = 2;
  p.top_p = 0.9f;
  p.repetition_penalty = 1.2f;
  Sampler sampler(s.vocab_size(), p);
  std::vector<float> logits(static_cast<size_t>(s.vocab_size()));
  std::vector<int32_t> history = {3, 17, 42, 5};
  history.reserve(16);
  std::span<const int32_t> rows;
  const auto step = [&](std::span<const int32_t> feed) {
    if (!s.ForwardTopK(feed, 2, history, logits.data(), &rows).ok()) return false;
    history.push_back(rows.empty() ? sampler.Sample(logits.data(), history)
                                   : sampler.SampleRows(logits.data(), rows, history));
    return true;
  };
  ASSERT_TRUE(step(history));
  ASSERT_TRUE(step({&history.back(), 1}));  // warm-up
  g_allocations = 0;
  g_counting = true;
  for (int i = 0; i < 5; ++i) {
    if (!step({&history.back(), 1})) break;
  }
  g_counting = false;
  EXPECT_EQ(g_allocations.load(), 0);
  EXPECT_EQ(s.greedy_head_stats().tokens, 7);
  EXPECT_LT(s.greedy_head_stats().fallbacks, 7);
}

}  // namespace
}  // namespace moe
