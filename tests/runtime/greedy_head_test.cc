// SPDX-License-Identifier: Apache-2.0
// The exact greedy and top-k lm_head (runtime/greedy_head.h, Session::ForwardArgmax and
// ForwardTopK). GreedyHead's
// candidates are checked against the full lm_head product computed by the kernels (the
// reference): on every SIMD target, for random and adversarial (tied and nearly tied) rows, every
// row left out has a logit below the largest, and the first largest is a candidate. A Session
// with the shadow decodes the same ids as one without it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <span>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "runtime/engine.h"
#include "runtime/greedy_head.h"
#include "runtime/sampler.h"
#include "runtime/session.h"
#include "util/thread_pool.h"

namespace moe {
namespace {

using kernels::WeightType;
using kernels::WeightView;

uint16_t Bf16(float f) {  // round to nearest even (finite inputs)
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u += 0x7FFFu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

struct Head {
  size_t V, H;
  std::vector<uint16_t> w;  // bf16, row-major
};

// Rows with weights of varied scale per row, as trained lm_heads have.
Head RandomHead(size_t V, size_t H, uint32_t seed) {
  Head h{V, H, std::vector<uint16_t>(V * H)};
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.f, 1.f);
  std::uniform_real_distribution<float> scale(0.02f, 0.2f);
  for (size_t r = 0; r < V; ++r) {
    const float s = scale(rng);
    for (size_t c = 0; c < H; ++c) h.w[r * H + c] = Bf16(s * n(rng));
  }
  return h;
}

struct Checked {
  size_t candidates = 0;
  bool ok = false;
};

// Candidates for x, the k largest, rows marked in `skip` (V bytes, or empty) left to the caller,
// against the full product on the current target; checks the guarantee: every unmarked row left
// out is below the k-th largest logit of the unmarked rows, and no marked row is a candidate.
Checked CheckCandidates(const Head& h, bool tiled, const std::vector<float>& x, size_t k = 1,
                        const std::vector<uint8_t>& skip = {}) {
  std::vector<uint16_t> w = h.w;
  WeightView lm{w.data(), WeightType::kBF16, h.V, h.H};
  if (tiled) {
    kernels::TileMatrix(w.data(), WeightType::kBF16, h.V, h.H);
    lm.tiled = true;
  }
  auto g = GreedyHead::Build(lm);
  EXPECT_TRUE(g.ok()) << g.status().message();
  if (!g.ok()) return {};
  std::vector<float> exact(h.V), q(h.V);
  kernels::MatMul(lm, x.data(), 1, h.H, exact.data(), h.V, 0, h.V);
  std::vector<int16_t> xq(kernels::ActBlocks(h.H) * kernels::kQuantBlock);
  std::vector<float> xd(kernels::ActBlocks(h.H));
  kernels::QuantizeActs(x.data(), 1, h.H, h.H, xq.data(), xd.data());
  kernels::MatMulQuantizedActs((*g)->shadow(), xq.data(), xd.data(), 1, q.data(), h.V, 0, h.V);
  std::vector<int32_t> cand;
  std::vector<double> heap;
  Checked c;
  c.ok = (*g)->Candidates(x.data(), xq.data(), xd.data(), q.data(), k,
                          skip.empty() ? nullptr : skip.data(), &heap, &cand);
  if (!c.ok) return c;
  c.candidates = cand.size();
  EXPECT_TRUE(std::is_sorted(cand.begin(), cand.end()));
  std::vector<float> open;  // the unmarked rows' logits, largest first
  for (size_t r = 0; r < h.V; ++r) {
    if (skip.empty() || !skip[r]) open.push_back(exact[r]);
  }
  std::sort(open.begin(), open.end(), std::greater<float>());
  const float kth = open[std::min(k, open.size()) - 1];
  if (k == 1 && skip.empty()) {
    const size_t best = static_cast<size_t>(ArgMaxFirst(exact.data(), h.V));
    EXPECT_TRUE(std::binary_search(cand.begin(), cand.end(), static_cast<int32_t>(best)))
        << "the first largest logit, row " << best << ", is not a candidate";
  }
  size_t at_least_kth = 0;
  for (size_t r = 0, i = 0; r < h.V; ++r) {
    while (i < cand.size() && static_cast<size_t>(cand[i]) < r) ++i;
    const bool is_cand = i < cand.size() && static_cast<size_t>(cand[i]) == r;
    const bool marked = !skip.empty() && skip[r];
    if (marked) {
      EXPECT_FALSE(is_cand) << "marked row " << r << " returned";
    } else if (!is_cand) {
      EXPECT_LT(exact[r], kth) << "row " << r << " left out, k " << k;
    } else if (exact[r] >= kth) {
      ++at_least_kth;
    }
  }
  EXPECT_GE(at_least_kth, std::min(k, open.size())) << "the k largest are candidates";
  return c;
}

class GreedyHeadTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { ASSERT_TRUE(kernels::ForceTarget(GetParam())); }
  void TearDown() override { ASSERT_TRUE(kernels::ForceTarget("")); }
};

TEST_P(GreedyHeadTest, CandidatesHoldTheLargestLogitForRandomRows) {
  for (auto [V, H] : {std::pair<size_t, size_t>{2000, 256}, {1003, 200}, {64, 33}}) {
    const Head h = RandomHead(V, H, static_cast<uint32_t>(V + H));
    const bool can_tile = kernels::HasTileShape(WeightType::kBF16, V, H);
    std::mt19937 rng(7);
    std::normal_distribution<float> n(0.f, 1.f);
    size_t total = 0, tokens = 0;
    for (int t = 0; t < 20; ++t) {
      std::vector<float> x(H);
      for (float& v : x) v = n(rng);
      x[static_cast<size_t>(t) % H] *= 30.f;  // an outlier, as normed hidden states have
      for (bool tiled : {false, true}) {
        if (tiled && !can_tile) continue;
        const Checked c = CheckCandidates(h, tiled, x);
        ASSERT_TRUE(c.ok);
        total += c.candidates;
        ++tokens;
      }
      if (HasFatalFailure() || HasFailure()) return;
    }
    // The point of the shadow: few rows left to compute exactly.
    EXPECT_LT(total, tokens * V / 16) << V << "x" << H;
  }
}

// Ties and near-ties at the top: copies of one row, and copies differing by one bf16 step in
// one weight, with x along that row.
TEST_P(GreedyHeadTest, TiedAndNearlyTiedRowsStayCandidates) {
  const size_t V = 512, H = 128;
  Head h = RandomHead(V, H, 3);
  const size_t top = 100;
  for (size_t r = 200; r < 230; ++r) {
    std::copy_n(&h.w[top * H], H, &h.w[r * H]);
    if (r % 3 == 1) h.w[r * H + r % H] += 1;  // one bf16 step, either way
    if (r % 3 == 2) h.w[r * H + r % H] -= 1;
  }
  std::vector<float> x(H);
  for (size_t c = 0; c < H; ++c) {
    uint32_t u = static_cast<uint32_t>(h.w[top * H + c]) << 16;
    std::memcpy(&x[c], &u, 4);
    x[c] *= 4.f;
  }
  for (bool tiled : {false, true}) {
    const Checked c = CheckCandidates(h, tiled, x);
    ASSERT_TRUE(c.ok);
    EXPECT_GE(c.candidates, 11u) << "row 100 and its 10 exact copies";
  }
}

TEST_P(GreedyHeadTest, NonFiniteInputsAskForTheFullProduct) {
  const size_t V = 64, H = 64;
  Head h = RandomHead(V, H, 5);
  std::vector<float> x(H, 0.5f);
  x[3] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_FALSE(CheckCandidates(h, false, x).ok);
  x[3] = std::numeric_limits<float>::infinity();
  EXPECT_FALSE(CheckCandidates(h, false, x).ok);
  x[3] = 0.5f;
  h.w[7 * H + 9] = 0x7F80;  // +inf weight
  EXPECT_FALSE(CheckCandidates(h, false, x).ok);
}

// The k largest for top-k sampling, with rows marked as the caller's (a repetition penalty's
// history): random rows, and the tied rows of the test above with k around the tie's size.
TEST_P(GreedyHeadTest, TopKCandidatesHoldTheKLargest) {
  const size_t V = 2000, H = 256;
  const Head h = RandomHead(V, H, 11);
  std::mt19937 rng(13);
  std::normal_distribution<float> n(0.f, 1.f);
  for (size_t k : {2u, 5u, 20u, 60u}) {
    for (int t = 0; t < 4; ++t) {
      std::vector<float> x(H);
      for (float& v : x) v = n(rng);
      std::vector<uint8_t> skip;
      if (t % 2 == 1) {
        skip.assign(V, 0);
        for (size_t r = static_cast<size_t>(t); r < V; r += 37) skip[r] = 1;
      }
      const Checked c = CheckCandidates(h, t >= 2, x, k, skip);
      ASSERT_TRUE(c.ok);
      EXPECT_LT(c.candidates, V / 4) << "k " << k;
      if (HasFailure()) return;
    }
  }
  Head tied = RandomHead(512, 128, 3);
  for (size_t r = 200; r < 230; ++r) std::copy_n(&tied.w[100 * 128], 128, &tied.w[r * 128]);
  std::vector<float> x(128);
  for (size_t c = 0; c < 128; ++c) {
    uint32_t u = static_cast<uint32_t>(tied.w[100 * 128 + c]) << 16;
    std::memcpy(&x[c], &u, 4);
  }
  for (size_t k : {1u, 30u, 31u, 32u}) {
    const Checked c = CheckCandidates(tied, false, x, k);
    ASSERT_TRUE(c.ok);
    EXPECT_GE(c.candidates, 31u) << "row 100 and its 30 copies, k " << k;
  }
}

std::vector<std::string> Targets() { return kernels::AvailableTargets(); }
INSTANTIATE_TEST_SUITE_P(AllTargets, GreedyHeadTest, ::testing::ValuesIn(Targets()),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

TEST(GreedyHeadBuildTest, AQuantizedLmHeadIsUnsupported) {
  std::vector<uint8_t> q8(kernels::WeightMatrixBytes(WeightType::kQ8, 8, 64));
  auto g = GreedyHead::Build({q8.data(), WeightType::kQ8, 8, 64});
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(g.status().message().find("--lm-head-shadow"), std::string::npos);
}

// Session::ForwardArgmax with the shadow against Forward's logits without it: the same greedy
// ids, step by step, untied (tiled lm_head) and tied (the embedding) models.
TEST(GreedyHeadSessionTest, ForwardArgmaxDecodesTheSameIds) {
  for (const char* model : {"base", "tied"}) {
    SCOPED_TRACE(model);
    EngineOptions plain;
    plain.model_dir = std::string(MOE_SOURCE_DIR) + "/tests/data/models/" + model;
    EngineOptions shadowed = plain;
    shadowed.lm_head_shadow = true;
    auto e0 = Engine::Open(plain);
    auto e1 = Engine::Open(shadowed);
    ASSERT_TRUE(e0.ok() && e1.ok());
    ASSERT_EQ((*e0)->greedy_head(), nullptr);
    ASSERT_NE((*e1)->greedy_head(), nullptr);
    ThreadPool pool(2);
    Session s0(**e0, pool, {}), s1(**e1, pool, {});
    EXPECT_FALSE(s0.has_greedy_head());
    EXPECT_TRUE(s1.has_greedy_head());
    std::vector<float> logits(static_cast<size_t>(s0.vocab_size()));
    std::vector<int32_t> tokens = {3, 17, 42, 5, 9};
    int32_t want = 0, got = -1;
    const int kSteps = 40;
    for (int i = 0; i <= kSteps; ++i) {
      ASSERT_TRUE(s0.Forward(tokens, LogitsMode::kLast, logits.data()).ok());
      want = ArgMaxFirst(logits.data(), logits.size());
      ASSERT_TRUE(s1.ForwardArgmax(tokens, &got).ok());
      ASSERT_EQ(got, want) << "step " << i;
      tokens = {want};
    }
    // Without a shadow ForwardArgmax takes every logit: the same ids again.
    s0.Reset();
    ASSERT_TRUE(s0.ForwardArgmax(std::vector<int32_t>{3, 17, 42, 5, 9}, &got).ok());
    const Session::GreedyHeadStats& st = s1.greedy_head_stats();
    EXPECT_EQ(st.tokens, kSteps + 1);
    EXPECT_EQ(st.fallbacks, 0);
    EXPECT_GE(st.candidate_rows, st.tokens);
    EXPECT_EQ(s0.greedy_head_stats().tokens, 0);
  }
}

// Sampling from ForwardTopK's rows (Sampler::SampleRows) against sampling from every logit of
// a session without the shadow (Sampler::Sample), the same seed: the same ids, for top-k with
// top-p and min-p, with a repetition penalty (its history's rows always computed), and greedy
// with a penalty.
TEST(GreedyHeadSessionTest, TopKSamplingFromTheShadowDrawsTheSameIds) {
  EngineOptions plain;
  plain.model_dir = std::string(MOE_SOURCE_DIR) + "/tests/data/models/base";
  EngineOptions shadowed = plain;
  shadowed.lm_head_shadow = true;
  auto e0 = Engine::Open(plain);
  auto e1 = Engine::Open(shadowed);
  ASSERT_TRUE(e0.ok() && e1.ok());
  ThreadPool pool(2);
  SamplingParams topk;
  topk.temperature = 0.8f;
  topk.top_k = 3;
  topk.top_p = 0.9f;
  topk.seed = 5;
  SamplingParams minp = topk;
  minp.temperature = 1.5f;
  minp.top_k = 6;
  minp.top_p = 1.0f;
  minp.min_p = 0.05f;
  minp.repetition_penalty = 1.3f;
  SamplingParams greedy;
  greedy.repetition_penalty = 0.7f;  // < 1 raises the history's logits
  for (const SamplingParams& p : {topk, minp, greedy}) {
    Session s0(**e0, pool, {}), s1(**e1, pool, {});
    Sampler a(s0.vocab_size(), p), b(s1.vocab_size(), p);
    std::vector<float> l0(static_cast<size_t>(s0.vocab_size())), l1(l0.size());
    std::vector<int32_t> history = {3, 17, 42, 5, 9};
    history.reserve(64);
    std::span<const int32_t> feed(history);
    const bool penalty = p.repetition_penalty != 1.0f;
    for (int i = 0; i < 16; ++i) {
      ASSERT_TRUE(s0.Forward(feed, LogitsMode::kLast, l0.data()).ok());
      std::span<const int32_t> rows;
      ASSERT_TRUE(s1.ForwardTopK(feed, static_cast<size_t>(b.rows_needed()),
                                 penalty ? std::span<const int32_t>(history)
                                         : std::span<const int32_t>(),
                                 l1.data(), &rows)
                      .ok());
      for (const int32_t r : rows) {
        ASSERT_EQ(l1[static_cast<size_t>(r)], l0[static_cast<size_t>(r)]) << "row " << r;
      }
      const int32_t want = a.Sample(l0.data(), history);
      const int32_t got = rows.empty() ? b.Sample(l1.data(), history)
                                       : b.SampleRows(l1.data(), rows, history);
      ASSERT_EQ(got, want) << "step " << i << " temperature " << p.temperature;
      history.push_back(want);
      feed = std::span<const int32_t>(&history.back(), 1);
    }
    const Session::GreedyHeadStats& st = s1.greedy_head_stats();
    EXPECT_EQ(st.tokens, 16);
    EXPECT_LT(st.fallbacks, st.tokens) << "some steps served from the shadow";
  }
}

TEST(GreedyHeadSessionTest, DenseQuantizedLmHeadRefusesTheShadow) {
  EngineOptions o;
  o.model_dir = std::string(MOE_SOURCE_DIR) + "/tests/data/models/base";
  o.lm_head_shadow = true;
  o.dense_quant = WeightType::kQ8;
  auto e = Engine::Open(o);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), StatusCode::kUnsupported);
}

}  // namespace
}  // namespace moe
