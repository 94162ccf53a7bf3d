// SPDX-License-Identifier: Apache-2.0
// Expert-usage statistics over routing traces (the `moestream experts` subcommand): usage per
// layer and per domain, Jensen–Shannon divergence between domains against a shuffled-label
// baseline, co-activation within a token, and temporal locality (reuse gap / reuse distance,
// overlap of consecutive tokens' expert sets).
//
// Definitions (per layer; a "token" is one trace record of that layer):
// - A trace splits into windows where pos does not increase; locality never crosses a window.
// - Reuse gap of expert e at token t: t − t' for the last token t' < t of the same window that
//   used e ("cold" when none). Reuse distance: the number of distinct experts used by tokens
//   strictly between t' and t (0 when e is reused by the next token).
// - Overlap: |S_t ∩ S_{t−1}| / k for consecutive tokens of a window. Its independence baseline is
//   Σ_e P(e ∈ S)² / k (two tokens drawn independently from the layer's usage).
// - Shuffled-label baseline: each trace is cut into blocks of `block_tokens` consecutive tokens;
//   the domain labels are permuted over blocks (Fisher–Yates, mt19937_64, seeds seed..seed+n-1)
//   and the mean pairwise JS recomputed. Blocks keep local correlation, so the baseline measures
//   what sampling noise alone produces at this amount of text.
// Not thread-safe (plain functions over values).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "analysis/divergence.h"
#include "analysis/router_trace.h"
#include "util/status.h"

namespace moe {

struct LabeledTrace {
  std::string label;
  std::vector<RouteRecord> records;
};

struct ExpertStatsOptions {
  int64_t block_tokens = 128;
  int n_shuffles = 10;
  uint64_t seed = 1;
  int64_t max_histogram = 64;  // reuse gap/distance histograms: exact up to this, then overflow
};

struct LayerExpertStats {
  int64_t n_tokens = 0;
  std::vector<double> usage;                      // [E] selections over all domains
  std::vector<std::vector<double>> domain_usage;  // [D][E] selections per domain
  std::vector<std::vector<double>> js;            // [D][D] bits
  double mean_js = 0;                             // over domain pairs
  MeanSd baseline_js;                             // mean pairwise JS with shuffled labels
  std::vector<double> coactivation;               // [E*E] symmetric, tokens using both i and j
  // [max_histogram + 2]: index g ≤ max = that value, max+1 = larger; cold counted separately.
  std::vector<uint64_t> reuse_gap, reuse_distance;
  uint64_t cold = 0;
  double mean_overlap = 0;          // over consecutive pairs
  uint64_t n_overlap_pairs = 0;
  double overlap_baseline = 0;
};

struct ExpertStats {
  int32_t n_layers = 0, n_experts = 0, top_k = 0;
  std::vector<std::string> labels;       // distinct, in first-seen order
  std::vector<int64_t> tokens_per_label; // tokens of layer 0 per label
  std::vector<LayerExpertStats> layers;
};

// kInvalidFormat when a trace is empty or layers see different numbers of tokens; kUsage when
// fewer than one trace is given or options are out of range.
Result<ExpertStats> ComputeExpertStats(const std::vector<LabeledTrace>& traces,
                                       const ExpertStatsOptions& opts);

// Outputs (expert_report.cc): Markdown summary, JSON with every number, and SVG plots written
// into `out_dir` (usage_layer<L>.svg, js_by_layer.svg, coactivation_layer<L>.svg,
// reuse_gap.svg); the Markdown links the SVGs by file name.
std::string ExpertStatsMarkdown(const ExpertStats& s, const ExpertStatsOptions& opts);
std::string ExpertStatsJson(const ExpertStats& s, const ExpertStatsOptions& opts);
Status WriteExpertStatsPlots(const ExpertStats& s, const std::string& out_dir);

}  // namespace moe
