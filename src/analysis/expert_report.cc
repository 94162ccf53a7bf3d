// SPDX-License-Identifier: Apache-2.0
// Markdown / JSON / SVG rendering of ExpertStats (expert_stats.h).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "analysis/expert_stats.h"
#include "analysis/svg.h"
#include "util/file.h"

namespace moe {
namespace {

size_t Sz(int64_t v) { return static_cast<size_t>(v); }

std::string JsonArray(const std::vector<double>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += fmt::format("{}{:.9g}", i ? "," : "", v[i]);
  return s + "]";
}
std::string JsonArray(const std::vector<uint64_t>& v) { return fmt::format("[{}]", fmt::join(v, ",")); }
std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      out += fmt::format("\\u{:04x}", static_cast<int>(c));
      continue;
    }
    out += c;
  }
  return out + "\"";
}

// Experts of `dist` sorted by share, descending (ties: lower id).
std::vector<size_t> ByShare(const std::vector<double>& dist) {
  std::vector<size_t> idx(dist.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return dist[a] > dist[b]; });
  return idx;
}

// Median of a histogram whose last two buckets are "overflow" (reported as ">max").
std::string HistMedian(const std::vector<uint64_t>& h) {
  const uint64_t n = std::accumulate(h.begin(), h.end(), uint64_t{0});
  if (!n) return "-";
  uint64_t acc = 0;
  for (size_t i = 0; i < h.size(); ++i) {
    acc += h[i];
    if (2 * acc >= n) return i + 1 == h.size() ? fmt::format(">{}", i - 1) : fmt::format("{}", i);
  }
  return "-";
}

double Frac(const std::vector<uint64_t>& h, size_t i) {
  const uint64_t n = std::accumulate(h.begin(), h.end(), uint64_t{0});
  return n ? static_cast<double>(h[i]) / static_cast<double>(n) : 0.0;
}

}  // namespace

std::string ExpertStatsMarkdown(const ExpertStats& s, const ExpertStatsOptions& opts) {
  const size_t E = Sz(s.n_experts), D = s.labels.size();
  std::string md = "# Expert usage\n\n";
  md += fmt::format("{} layers × {} experts, top-{}. Tokens per domain: ", s.n_layers, s.n_experts,
                    s.top_k);
  for (size_t d = 0; d < D; ++d) {
    md += fmt::format("{}{} {}", d ? ", " : "", s.labels[d], s.tokens_per_label[d]);
  }
  md += ".\n\n## Domain specialization: Jensen–Shannon divergence (bits)\n\n";
  md += fmt::format(
      "Mean over the {} domain pairs of JS(usage of domain a, usage of domain b). Baseline: the "
      "same with domain labels permuted over blocks of {} consecutive tokens ({} seeds, mean ± "
      "sd). ![JS by layer](js_by_layer.svg)\n\n",
      D * (D - 1) / 2, opts.block_tokens, opts.n_shuffles);
  md += "| layer | mean JS | shuffled baseline | ratio | z | usage entropy (bits, max " +
        fmt::format("{:.2f}", std::log2(static_cast<double>(E))) + ") |\n|---|---|---|---|---|---|\n";
  for (size_t l = 0; l < s.layers.size(); ++l) {
    const LayerExpertStats& L = s.layers[l];
    const double z = L.baseline_js.sd > 0 ? (L.mean_js - L.baseline_js.mean) / L.baseline_js.sd : 0;
    md += fmt::format("| {} | {:.4f} | {:.4f} ± {:.4f} | {:.1f}× | {:.0f} | {:.2f} |\n", l,
                      L.mean_js, L.baseline_js.mean, L.baseline_js.sd,
                      L.baseline_js.mean > 0 ? L.mean_js / L.baseline_js.mean : 0, z,
                      EntropyBits(Normalize(L.usage)));
  }
  md += "\n## Dominant experts per domain\n\nPer layer, the domain's most used expert: share of "
        "the domain's selections, and lift = share / share over all domains. Heatmaps: "
        "usage_layer<L>.svg.\n\n| domain |";
  for (size_t l = 0; l < s.layers.size(); ++l) md += fmt::format(" L{} |", l);
  md += "\n|---|";
  for (size_t l = 0; l < s.layers.size(); ++l) md += "---|";
  md += "\n";
  for (size_t d = 0; d < D; ++d) {
    md += "| " + s.labels[d] + " |";
    for (const LayerExpertStats& L : s.layers) {
      const std::vector<double> p = Normalize(L.domain_usage[d]), all = Normalize(L.usage);
      const size_t e = ByShare(p)[0];
      md += fmt::format(" e{} {:.0f}% ×{:.1f} |", e, 100 * p[e], all[e] > 0 ? p[e] / all[e] : 0);
    }
    md += "\n";
  }
  md += "\n## Co-activation\n\nThe pairs of experts chosen together for a token most often "
        "relative to independence (observed / (N·P(i)·P(j))), per layer. Heatmaps: "
        "coactivation_layer<L>.svg.\n\n| layer | top pairs (observed, ratio) |\n|---|---|\n";
  for (size_t l = 0; l < s.layers.size(); ++l) {
    const LayerExpertStats& L = s.layers[l];
    std::vector<std::pair<double, size_t>> ratio;
    const double n = static_cast<double>(L.n_tokens);
    for (size_t i = 0; i < E; ++i) {
      for (size_t j = i + 1; j < E; ++j) {
        const double expect = L.usage[i] * L.usage[j] / n;
        if (expect > 0 && L.coactivation[i * E + j] >= 10) {
          ratio.push_back({L.coactivation[i * E + j] / expect, i * E + j});
        }
      }
    }
    std::sort(ratio.rbegin(), ratio.rend());
    md += fmt::format("| {} |", l);
    for (size_t r = 0; r < std::min<size_t>(4, ratio.size()); ++r) {
      const size_t i = ratio[r].second / E, j = ratio[r].second % E;
      md += fmt::format(" ({},{}) {:.0f} ×{:.1f}", i, j, L.coactivation[i * E + j], ratio[r].first);
    }
    md += " |\n";
  }
  md += "\n## Temporal locality\n\nOverlap = |S_t ∩ S_t−1| / k for consecutive tokens, vs the "
        "independence baseline Σ P(e)²/k. Reuse gap = tokens since the expert was last used in "
        "this layer; reuse distance = distinct experts used in between. ![reuse gap]"
        "(reuse_gap.svg)\n\n| layer | overlap | independent | P(gap = 1) | P(gap ≤ 4) | median "
        "reuse distance | cold |\n|---|---|---|---|---|---|---|\n";
  for (size_t l = 0; l < s.layers.size(); ++l) {
    const LayerExpertStats& L = s.layers[l];
    double le4 = 0;
    for (size_t g = 1; g <= 4 && g < L.reuse_gap.size(); ++g) le4 += Frac(L.reuse_gap, g);
    md += fmt::format("| {} | {:.3f} | {:.3f} | {:.3f} | {:.3f} | {} | {} |\n", l, L.mean_overlap,
                      L.overlap_baseline, Frac(L.reuse_gap, 1), le4, HistMedian(L.reuse_distance),
                      L.cold);
  }
  return md;
}

std::string ExpertStatsJson(const ExpertStats& s, const ExpertStatsOptions& opts) {
  std::string j = fmt::format(
      "{{\"n_layers\":{},\"n_experts\":{},\"top_k\":{},\"block_tokens\":{},\"n_shuffles\":{},"
      "\"seed\":{},\"labels\":[",
      s.n_layers, s.n_experts, s.top_k, opts.block_tokens, opts.n_shuffles, opts.seed);
  for (size_t d = 0; d < s.labels.size(); ++d) j += (d ? "," : "") + JsonString(s.labels[d]);
  j += fmt::format("],\"tokens_per_label\":[{}],\"layers\":[", fmt::join(s.tokens_per_label, ","));
  for (size_t l = 0; l < s.layers.size(); ++l) {
    const LayerExpertStats& L = s.layers[l];
    j += fmt::format("{}{{\"layer\":{},\"n_tokens\":{},\"usage\":{},\"domain_usage\":[", l ? "," : "",
                     l, L.n_tokens, JsonArray(L.usage));
    for (size_t d = 0; d < L.domain_usage.size(); ++d) j += (d ? "," : "") + JsonArray(L.domain_usage[d]);
    j += "],\"js\":[";
    for (size_t d = 0; d < L.js.size(); ++d) j += (d ? "," : "") + JsonArray(L.js[d]);
    j += fmt::format("],\"mean_js\":{:.9g},\"baseline_js_mean\":{:.9g},\"baseline_js_sd\":{:.9g},"
                     "\"coactivation\":{},\"reuse_gap\":{},\"reuse_distance\":{},\"cold\":{},"
                     "\"mean_overlap\":{:.9g},\"overlap_pairs\":{},\"overlap_baseline\":{:.9g}}}",
                     L.mean_js, L.baseline_js.mean, L.baseline_js.sd, JsonArray(L.coactivation),
                     JsonArray(L.reuse_gap), JsonArray(L.reuse_distance), L.cold, L.mean_overlap,
                     L.n_overlap_pairs, L.overlap_baseline);
  }
  return j + "]}\n";
}

Status WriteExpertStatsPlots(const ExpertStats& s, const std::string& out_dir) {
  auto write = [&](const std::string& name, const std::string& svg) {
    return WriteFileAtomic(out_dir + "/" + name, svg.data(), svg.size());
  };
  const size_t E = Sz(s.n_experts);
  std::vector<std::string> experts, layers;
  for (size_t e = 0; e < E; ++e) experts.push_back(fmt::format("{}", e));
  for (size_t l = 0; l < s.layers.size(); ++l) layers.push_back(fmt::format("L{}", l));
  SvgSeries obs{"between domains", {}}, base{"shuffled labels", {}};
  for (const LayerExpertStats& L : s.layers) {
    obs.values.push_back(L.mean_js);
    base.values.push_back(L.baseline_js.mean);
  }
  MOE_TRY(write("js_by_layer.svg",
                SvgBarChart({"Mean pairwise Jensen-Shannon divergence of expert usage", "layer",
                             "bits"},
                            layers, {obs, base})));
  std::vector<SvgSeries> gaps;
  std::vector<std::string> gap_cats;
  for (size_t g = 1; g <= 8; ++g) gap_cats.push_back(fmt::format("{}", g));
  gap_cats.push_back(">8");
  for (size_t l = 0; l < s.layers.size(); ++l) {
    const auto& h = s.layers[l].reuse_gap;
    SvgSeries ser{layers[l], {}};
    double rest = 1;
    for (size_t g = 1; g <= 8 && g < h.size(); ++g) {
      ser.values.push_back(Frac(h, g));
      rest -= Frac(h, g);
    }
    ser.values.push_back(std::max(0.0, rest));
    gaps.push_back(std::move(ser));
  }
  MOE_TRY(write("reuse_gap.svg", SvgBarChart({"Reuse gap of an expert (tokens since last use)",
                                              "gap (tokens)", "fraction of reuses"},
                                             gap_cats, gaps)));
  for (size_t l = 0; l < s.layers.size(); ++l) {
    const LayerExpertStats& L = s.layers[l];
    std::vector<double> share;
    for (const auto& u : L.domain_usage) {
      const std::vector<double> p = Normalize(u);
      share.insert(share.end(), p.begin(), p.end());
    }
    MOE_TRY(write(fmt::format("usage_layer{}.svg", l),
                  SvgHeatmap({fmt::format("Layer {}: share of each domain's selections", l),
                              "expert", "share"},
                             s.labels, experts, share)));
    MOE_TRY(write(fmt::format("coactivation_layer{}.svg", l),
                  SvgHeatmap({fmt::format("Layer {}: tokens choosing both experts", l), "expert",
                              "tokens"},
                             experts, experts, L.coactivation)));
  }
  return Status::Ok();
}

}  // namespace moe
