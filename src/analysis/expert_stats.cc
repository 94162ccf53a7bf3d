// SPDX-License-Identifier: Apache-2.0
#include "analysis/expert_stats.h"

#include <algorithm>
#include <random>

namespace moe {
namespace {

size_t Sz(int64_t v) { return static_cast<size_t>(v); }

// The records of one layer of one trace, in trace order.
std::vector<const RouteRecord*> LayerRecords(const std::vector<RouteRecord>& recs, int64_t l) {
  std::vector<const RouteRecord*> out;
  for (const RouteRecord& r : recs) {
    if (r.layer == l) out.push_back(&r);
  }
  return out;
}

std::vector<int32_t> SortedSet(const RouteRecord& r) {
  std::vector<int32_t> s = r.experts;
  std::sort(s.begin(), s.end());
  s.erase(std::unique(s.begin(), s.end()), s.end());
  return s;
}

void Bump(std::vector<uint64_t>& hist, int64_t v, int64_t max) {
  ++hist[Sz(std::min(v, max + 1))];
}

// Temporal locality of one layer's token sequence (one trace).
void AddLocality(const std::vector<const RouteRecord*>& seq, int64_t n_experts, int64_t max_hist,
                 LayerExpertStats& out, double& overlap_sum) {
  std::vector<int64_t> last(Sz(n_experts), -1);
  std::vector<int32_t> prev;
  for (size_t t = 0; t < seq.size(); ++t) {
    if (t > 0 && seq[t]->pos <= seq[t - 1]->pos) {  // new window
      std::fill(last.begin(), last.end(), -1);
      prev.clear();
    }
    const std::vector<int32_t> cur = SortedSet(*seq[t]);
    const auto now = static_cast<int64_t>(t);
    for (int32_t e : cur) {
      const int64_t tp = last[Sz(e)];
      if (tp < 0) {
        ++out.cold;
        continue;
      }
      int64_t distinct = 0;
      for (int64_t f : last) distinct += f > tp ? 1 : 0;
      Bump(out.reuse_gap, now - tp, max_hist);
      Bump(out.reuse_distance, distinct, max_hist);
    }
    if (!prev.empty()) {
      std::vector<int32_t> both;
      std::set_intersection(cur.begin(), cur.end(), prev.begin(), prev.end(),
                            std::back_inserter(both));
      overlap_sum += static_cast<double>(both.size()) / static_cast<double>(cur.size());
      ++out.n_overlap_pairs;
    }
    for (int32_t e : cur) last[Sz(e)] = now;
    prev = cur;
  }
}

std::vector<std::vector<double>> JsMatrix(const std::vector<std::vector<double>>& dists) {
  std::vector<std::vector<double>> m(dists.size(), std::vector<double>(dists.size(), 0.0));
  for (size_t a = 0; a < dists.size(); ++a) {
    for (size_t b = 0; b < dists.size(); ++b) m[a][b] = JensenShannonBits(dists[a], dists[b]);
  }
  return m;
}

}  // namespace

Result<ExpertStats> ComputeExpertStats(const std::vector<LabeledTrace>& traces,
                                       const ExpertStatsOptions& opts) {
  if (traces.empty()) return Error(StatusCode::kUsage, "no traces given");
  if (opts.block_tokens < 1 || opts.n_shuffles < 0 || opts.max_histogram < 1) {
    return Error(StatusCode::kUsage, "block size, shuffles and histogram size must be positive");
  }
  ExpertStats s;
  std::vector<size_t> label_of(traces.size());
  for (size_t i = 0; i < traces.size(); ++i) {
    if (traces[i].records.empty()) {
      return Error(StatusCode::kInvalidFormat, "trace '{}' is empty", traces[i].label);
    }
    const TraceShape sh = ShapeOf(traces[i].records);
    s.n_layers = std::max(s.n_layers, sh.n_layers);
    s.n_experts = std::max(s.n_experts, sh.n_experts);
    s.top_k = std::max(s.top_k, sh.top_k);
    auto it = std::find(s.labels.begin(), s.labels.end(), traces[i].label);
    label_of[i] = static_cast<size_t>(it - s.labels.begin());
    if (it == s.labels.end()) s.labels.push_back(traces[i].label);
  }
  const size_t D = s.labels.size(), E = Sz(s.n_experts);
  s.tokens_per_label.assign(D, 0);
  // Per-trace, per-layer sequences; every layer must see the same tokens.
  std::vector<std::vector<std::vector<const RouteRecord*>>> seqs(traces.size());
  std::vector<size_t> block_base(traces.size() + 1, 0);
  for (size_t i = 0; i < traces.size(); ++i) {
    for (int64_t l = 0; l < s.n_layers; ++l) {
      seqs[i].push_back(LayerRecords(traces[i].records, l));
      if (seqs[i][Sz(l)].size() != seqs[i][0].size()) {
        return Error(StatusCode::kInvalidFormat,
                     "trace '{}': layer {} has {} records, layer 0 has {}", traces[i].label, l,
                     seqs[i][Sz(l)].size(), seqs[i][0].size());
      }
    }
    s.tokens_per_label[label_of[i]] += static_cast<int64_t>(seqs[i][0].size());
    const size_t n_blocks = (seqs[i][0].size() + Sz(opts.block_tokens) - 1) / Sz(opts.block_tokens);
    block_base[i + 1] = block_base[i] + n_blocks;
  }
  const size_t n_blocks = block_base.back();
  std::vector<size_t> block_label(n_blocks);
  for (size_t i = 0; i < traces.size(); ++i) {
    for (size_t b = block_base[i]; b < block_base[i + 1]; ++b) block_label[b] = label_of[i];
  }

  for (int64_t l = 0; l < s.n_layers; ++l) {
    LayerExpertStats L;
    L.usage.assign(E, 0);
    L.domain_usage.assign(D, std::vector<double>(E, 0));
    L.coactivation.assign(E * E, 0);
    L.reuse_gap.assign(Sz(opts.max_histogram) + 2, 0);
    L.reuse_distance.assign(Sz(opts.max_histogram) + 2, 0);
    std::vector<std::vector<double>> block_usage(n_blocks, std::vector<double>(E, 0));
    double overlap_sum = 0;
    for (size_t i = 0; i < traces.size(); ++i) {
      const auto& seq = seqs[i][Sz(l)];
      for (size_t t = 0; t < seq.size(); ++t) {
        const std::vector<int32_t> set = SortedSet(*seq[t]);
        for (int32_t e : set) {
          L.usage[Sz(e)] += 1;
          L.domain_usage[label_of[i]][Sz(e)] += 1;
          block_usage[block_base[i] + t / Sz(opts.block_tokens)][Sz(e)] += 1;
        }
        for (size_t a = 0; a < set.size(); ++a) {
          for (size_t b = a + 1; b < set.size(); ++b) {
            L.coactivation[Sz(set[a]) * E + Sz(set[b])] += 1;
            L.coactivation[Sz(set[b]) * E + Sz(set[a])] += 1;
          }
        }
      }
      L.n_tokens += static_cast<int64_t>(seq.size());
      AddLocality(seq, s.n_experts, opts.max_histogram, L, overlap_sum);
    }
    if (L.n_overlap_pairs) L.mean_overlap = overlap_sum / static_cast<double>(L.n_overlap_pairs);
    for (size_t e = 0; e < E; ++e) {
      const double p = L.usage[e] / static_cast<double>(L.n_tokens);
      L.overlap_baseline += p * p;
    }
    L.overlap_baseline /= s.top_k;

    std::vector<std::vector<double>> dists;
    for (const auto& u : L.domain_usage) dists.push_back(Normalize(u));
    L.js = JsMatrix(dists);
    L.mean_js = MeanPairwiseJs(dists);
    std::vector<double> shuffled_js;
    for (int k = 0; k < opts.n_shuffles; ++k) {
      std::mt19937_64 rng(opts.seed + static_cast<uint64_t>(k));
      std::vector<size_t> perm = block_label;
      for (size_t j = perm.size(); j > 1; --j) {  // Fisher–Yates, portable across libraries
        std::swap(perm[j - 1], perm[static_cast<size_t>(rng() % j)]);
      }
      std::vector<std::vector<double>> u(D, std::vector<double>(E, 0));
      for (size_t b = 0; b < n_blocks; ++b) {
        for (size_t e = 0; e < E; ++e) u[perm[b]][e] += block_usage[b][e];
      }
      for (auto& x : u) x = Normalize(x);
      shuffled_js.push_back(MeanPairwiseJs(u));
    }
    L.baseline_js = MeanAndSd(shuffled_js);
    s.layers.push_back(std::move(L));
  }
  return s;
}

}  // namespace moe
