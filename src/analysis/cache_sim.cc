// SPDX-License-Identifier: Apache-2.0
#include "analysis/cache_sim.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>

#include "analysis/svg.h"

namespace moe {

std::vector<ExpertKey> RuntimeAccessOrder(const std::vector<RouteRecord>& trace, int64_t batch) {
  const int64_t b = std::max<int64_t>(1, batch);
  int64_t first_layer = INT64_MAX, n_layers = 0;
  for (const RouteRecord& r : trace) {
    first_layer = std::min(first_layer, r.layer);
    n_layers = std::max(n_layers, r.layer + 1);
  }
  std::vector<ExpertKey> out;
  // One window: experts[pos][layer] (union over duplicate records), replayed chunk by chunk.
  std::vector<std::vector<std::vector<int32_t>>> window;
  auto flush = [&] {
    const auto n_pos = static_cast<int64_t>(window.size());
    for (int64_t c = 0; c < n_pos; c += b) {
      for (int64_t l = 0; l < n_layers; ++l) {
        std::vector<int32_t> group;
        for (int64_t p = c; p < std::min(n_pos, c + b); ++p) {
          const auto& e = window[static_cast<size_t>(p)][static_cast<size_t>(l)];
          group.insert(group.end(), e.begin(), e.end());
        }
        std::sort(group.begin(), group.end());
        group.erase(std::unique(group.begin(), group.end()), group.end());
        for (int32_t e : group) out.push_back({static_cast<int32_t>(l), e});
      }
    }
    window.clear();
  };
  for (const RouteRecord& r : trace) {
    if (r.pos == 0 && r.layer == first_layer) flush();  // a new window starts at pos 0
    const auto pos = static_cast<size_t>(r.pos);
    if (window.size() <= pos) {
      window.resize(pos + 1, std::vector<std::vector<int32_t>>(static_cast<size_t>(n_layers)));
    }
    auto& slot = window[pos][static_cast<size_t>(r.layer)];
    slot.insert(slot.end(), r.experts.begin(), r.experts.end());
  }
  flush();
  return out;
}

double CacheSimPoint::hit_rate() const {
  const uint64_t n = counts.hits + counts.misses;
  return n ? static_cast<double>(counts.hits) / static_cast<double>(n) : 0.0;
}

Result<PolicyKind> ParseSimPolicy(const std::string& name) {
  if (name == "belady") return PolicyKind::kBelady;
  return ParsePolicyKind(name);
}

Result<CacheSimResult> SimulateCache(const std::vector<ExpertKey>& accesses,
                                     const PolicyUniverse& u,
                                     const std::vector<PolicyKind>& policies,
                                     const std::vector<uint64_t>& capacities,
                                     const PolicyOptions& base) {
  if (policies.empty() || capacities.empty()) {
    return Error(StatusCode::kUsage, "cache-sim needs at least one policy and one budget");
  }
  CacheSimResult r;
  r.universe = u;
  r.n_accesses = accesses.size();
  std::vector<uint8_t> seen(u.size(), 0);
  for (size_t i = 0; i < accesses.size(); ++i) {
    const ExpertKey k = accesses[i];
    if (k.layer < 0 || k.layer >= u.n_layers || k.expert < 0 || k.expert >= u.n_experts) {
      return Error(StatusCode::kInvalidFormat,
                   "access {}: layer {} expert {} outside {} layers × {} experts", i, k.layer,
                   k.expert, u.n_layers, u.n_experts);
    }
    if (!seen[u.Index(k)]) {
      seen[u.Index(k)] = 1;
      ++r.n_distinct;
    }
  }
  for (PolicyKind kind : policies) {
    for (uint64_t cap : capacities) {
      if (cap == 0) return Error(StatusCode::kUsage, "budget of 0 experts");
      std::unique_ptr<CachePolicy> policy;
      if (kind == PolicyKind::kBelady) {
        policy = MakeBeladyPolicy(u, accesses);
      } else {
        PolicyOptions po = base;
        po.kind = kind;
        MOE_ASSIGN_OR_RETURN(policy, MakeCachePolicy(u, po));
      }
      CacheSimPoint p;
      p.policy = kind;
      p.capacity = cap;
      p.counts = ReplayTrace(*policy, u, static_cast<size_t>(cap), accesses);
      r.points.push_back(p);
    }
  }
  return r;
}

namespace {

std::vector<uint64_t> Capacities(const CacheSimResult& r) {
  std::vector<uint64_t> caps;
  for (const CacheSimPoint& p : r.points) {
    if (p.policy != r.points.front().policy) break;
    caps.push_back(p.capacity);
  }
  return caps;
}

}  // namespace

std::string CacheSimMarkdown(const CacheSimResult& r, uint64_t slot_bytes) {
  const std::vector<uint64_t> caps = Capacities(r);
  std::string md = fmt::format(
      "{} accesses over {} layers × {} experts; {} distinct experts (compulsory misses).\n\n"
      "Hit rate by policy (rows) and budget in experts (columns){}:\n\n| policy |",
      r.n_accesses, r.universe.n_layers, r.universe.n_experts, r.n_distinct,
      slot_bytes ? fmt::format("; one expert slot = {} bytes", slot_bytes) : "");
  for (uint64_t c : caps) {
    md += slot_bytes ? fmt::format(" {} ({:.1f} MiB) |", c, c * slot_bytes / 1048576.0)
                     : fmt::format(" {} |", c);
  }
  md += "\n|---|";
  for (size_t i = 0; i < caps.size(); ++i) md += "---|";
  for (size_t i = 0; i < r.points.size(); ++i) {
    if (i % caps.size() == 0) md += fmt::format("\n| {} |", PolicyKindName(r.points[i].policy));
    md += fmt::format(" {:.4f} |", r.points[i].hit_rate());
  }
  md += "\n\nHits / misses:\n\n| policy | budget | hits | misses | evictions |\n|---|---|---|---|---|\n";
  for (const CacheSimPoint& p : r.points) {
    md += fmt::format("| {} | {} | {} | {} | {} |\n", PolicyKindName(p.policy), p.capacity,
                      p.counts.hits, p.counts.misses, p.counts.evictions);
  }
  return md;
}

std::string CacheSimJson(const CacheSimResult& r, uint64_t slot_bytes) {
  std::string j = fmt::format(
      "{{\"n_layers\":{},\"n_experts\":{},\"n_accesses\":{},\"n_distinct\":{},\"slot_bytes\":{},"
      "\"points\":[",
      r.universe.n_layers, r.universe.n_experts, r.n_accesses, r.n_distinct, slot_bytes);
  for (size_t i = 0; i < r.points.size(); ++i) {
    const CacheSimPoint& p = r.points[i];
    j += fmt::format("{}{{\"policy\":\"{}\",\"budget_experts\":{},\"hits\":{},\"misses\":{},"
                     "\"evictions\":{},\"hit_rate\":{:.9g}}}",
                     i ? "," : "", PolicyKindName(p.policy), p.capacity, p.counts.hits,
                     p.counts.misses, p.counts.evictions, p.hit_rate());
  }
  return j + "]}\n";
}

std::string CacheSimSvg(const CacheSimResult& r) {
  const std::vector<uint64_t> caps = Capacities(r);
  std::vector<double> x(caps.begin(), caps.end());
  std::vector<SvgSeries> series;
  for (size_t i = 0; i < r.points.size(); ++i) {
    if (i % caps.size() == 0) series.push_back({PolicyKindName(r.points[i].policy), {}});
    series.back().values.push_back(r.points[i].hit_rate());
  }
  return SvgLineChart({"Expert cache hit rate vs budget", "budget (experts, log scale)",
                       "hit rate"},
                      x, series, /*log_x=*/true);
}

}  // namespace moe
