// SPDX-License-Identifier: Apache-2.0
// The exact greedy lm_head (runtime/greedy_head.h, Session::ForwardArgmax). GreedyHead's
// candidates are checked against the full lm_head product computed by the kernels (the
// reference): on every SIMD target, for random and adversarial (tied and nearly tied) rows, every
// row left out has a logit below the largest, and the first largest is a candidate. A Session
// with the shadow decodes the same ids as one without it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
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

// Candidates for x against the full product on the current target; checks the guarantee.
Checked CheckCandidates(const Head& h, bool tiled, const std::vector<float>& x) {
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
  Checked c;
  c.ok = (*g)->Candidates(x.data(), xq.data(), xd.data(), q.data(), &cand);
  if (!c.ok) return c;
  c.candidates = cand.size();
  EXPECT_TRUE(std::is_sorted(cand.begin(), cand.end()));
  const size_t best = static_cast<size_t>(ArgMaxFirst(exact.data(), h.V));
  EXPECT_TRUE(std::binary_search(cand.begin(), cand.end(), static_cast<int32_t>(best)))
      << "the first largest logit, row " << best << ", is not a candidate";
  for (size_t r = 0, i = 0; r < h.V; ++r) {
    while (i < cand.size() && static_cast<size_t>(cand[i]) < r) ++i;
    const bool is_cand = i < cand.size() && static_cast<size_t>(cand[i]) == r;
    if (!is_cand) {
      EXPECT_LT(exact[r], exact[best]) << "row " << r << " left out";
    }
  }
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
