// SPDX-License-Identifier: Apache-2.0
// RouterLookahead hints the next MoE layer's predicted experts most likely
// first (the provider reads them in that order, so a wrong guess is more often
// still queued, and dropped, when the layer's true experts are known). Checked
// against an independent reference: the scalar router product, a double
// softmax, top-k by probability, and the chosen experts' probabilities
// (renormalised as the model does) summed over the rows.
#include "runtime/prefetch.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <vector>

#include "kernels/reference.h"
#include "runtime/engine.h"
#include "streaming_fixture.h"

namespace moe {
namespace {

class RecordingProvider final : public ExpertProvider {
 public:
  Status Begin(int64_t, std::span<const int32_t>) override { return Status::Ok(); }
  Result<ExpertView> Wait(size_t) override { return Error(StatusCode::kInternal, "unused"); }
  bool Ready(size_t) override { return false; }
  void End() override {}
  void Hint(int64_t l, std::span<const int32_t> e) override {
    layer = l;
    experts.assign(e.begin(), e.end());
  }
  int64_t layer = -1;
  std::vector<int32_t> experts;
};

// Reference score of every expert chosen by at least one row.
std::map<int32_t, double> ReferenceScores(const kernels::WeightView& router, const float* xn,
                                          int64_t n, int64_t k, bool norm) {
  const size_t E = router.rows, H = router.cols;
  std::map<int32_t, double> score;
  std::vector<float> logits(E);
  for (int64_t t = 0; t < n; ++t) {
    kernels::reference::MatMul(router, xn + static_cast<size_t>(t) * H, 1, H, logits.data(), E, 0,
                               E);
    const double mx = *std::max_element(logits.begin(), logits.end());
    std::vector<std::pair<double, int32_t>> p(E);
    double sum = 0;
    for (size_t e = 0; e < E; ++e) sum += std::exp(logits[e] - mx);
    for (size_t e = 0; e < E; ++e)
      p[e] = {-std::exp(logits[e] - mx) / sum, static_cast<int32_t>(e)};
    std::sort(p.begin(),
              p.end());  // descending probability, ties to the lower id
    double top = 0;
    for (int64_t j = 0; j < k; ++j) top -= p[static_cast<size_t>(j)].first;
    for (int64_t j = 0; j < k; ++j) {
      const auto& [neg, e] = p[static_cast<size_t>(j)];
      score[e] += -neg / (norm ? top : 1.0);
    }
  }
  return score;
}

TEST(RouterLookaheadTest, HintsTheNextLayersExpertsMostLikelyFirst) {
  EngineOptions o;
  o.model_dir = streaming::ModelDir("base");
  auto engine = Engine::Open(o);
  ASSERT_TRUE(engine.ok()) << engine.status().message();
  const ModelWeights& w = (*engine)->weights();
  const Qwen3MoeConfig& c = w.config();
  int64_t first = -1, next = -1;
  for (int64_t l = 0; l < c.num_hidden_layers && next < 0; ++l) {
    if (!w.layer(l).is_moe) continue;
    (first < 0 ? first : next) = l;
  }
  ASSERT_GE(next, 0) << "fixture needs two MoE layers";
  RouterOptions ro;
  ro.top_k = (*engine)->top_k();
  ro.norm_topk_prob = c.norm_topk_prob;
  RouterLookahead lookahead(w, ro, 8);
  const size_t H = static_cast<size_t>(c.hidden_size);
  std::mt19937 rng(7);
  std::normal_distribution<float> dist(0.f, 1.f);
  for (int64_t n : {1, 3, 8}) {
    std::vector<float> xn(static_cast<size_t>(n) * H);
    for (float& v : xn) v = dist(rng);
    RecordingProvider p;
    lookahead.Hint(first, xn.data(), n, p);
    EXPECT_EQ(p.layer, next);
    const std::map<int32_t, double> want =
        ReferenceScores(w.layer(next).router.view, xn.data(), n, ro.top_k, ro.norm_topk_prob);
    std::vector<int32_t> got_set = p.experts, want_set;
    for (const auto& [e, s] : want) want_set.push_back(e);
    std::sort(got_set.begin(), got_set.end());
    ASSERT_EQ(got_set, want_set) << "rows " << n;
    for (size_t i = 1; i < p.experts.size(); ++i) {
      EXPECT_GE(want.at(p.experts[i - 1]) + 1e-6, want.at(p.experts[i]))
          << "rows " << n << ": hint " << i << " is likelier than the one before it";
    }
  }
}

}  // namespace
}  // namespace moe
