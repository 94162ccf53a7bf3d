// SPDX-License-Identifier: Apache-2.0
// Offline expert-cache simulator: replays a routing trace through the SAME policy objects the
// runtime cache uses (experts/cache_policy.h, via ReplayTrace), plus Belady's MIN as the upper
// bound.
//
// Access order: the runtime requests, for each forward batch and each MoE layer, the batch's
// distinct active experts in ascending id order, once per batch (ExpertCache counts one hit or
// miss per (batch, layer, expert), however many tokens of the batch chose it). A trace is cut
// into windows (a window starts at a record with pos 0 of the lowest layer: trace, perplexity
// and eval run each window as one Session::Forward from an empty context); each window is
// replayed as the runtime would run it with prefill batches of B tokens: chunks of positions
// [0, B), [B, 2B), …, and within a chunk layer by layer. The order is rebuilt from (pos, layer),
// so it does not depend on the batch size the trace was recorded with; B = 1 is token-by-token
// decoding.
// Pins: the runtime never evicts the current layer's experts while it uses them; ReplayTrace has
// no pins. For LRU this changes nothing as long as a batch's active experts fit in the cache
// (they are the most recently used entries, never the LRU victim); the report and the tests
// compare the runtime's counters with the simulator's.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "experts/cache_policy.h"
#include "runtime/session.h"
#include "util/status.h"

namespace moe {

// The runtime's access sequence for the windows of `trace` run with prefill batches of `batch`.
// Positions a window lacks are skipped.
std::vector<ExpertKey> RuntimeAccessOrder(const std::vector<RouteRecord>& trace, int64_t batch);

struct CacheSimPoint {
  PolicyKind policy = PolicyKind::kLru;
  uint64_t capacity = 0;  // experts
  ReplayCounts counts;
  double hit_rate() const;
};

struct CacheSimResult {
  PolicyUniverse universe;
  uint64_t n_accesses = 0;
  uint64_t n_distinct = 0;  // compulsory misses
  std::vector<CacheSimPoint> points;  // policy-major, capacities in the given order
};

// Replays `accesses` for every policy × capacity. kUsage for an empty policy or capacity list or
// a capacity of 0; kInvalidFormat for a key outside `u`.
Result<CacheSimResult> SimulateCache(const std::vector<ExpertKey>& accesses,
                                     const PolicyUniverse& u,
                                     const std::vector<PolicyKind>& policies,
                                     const std::vector<uint64_t>& capacities,
                                     const PolicyOptions& base = {});

// "lru" | "lfu" | "layer" | "belady".
Result<PolicyKind> ParseSimPolicy(const std::string& name);

std::string CacheSimMarkdown(const CacheSimResult& r, uint64_t slot_bytes);
std::string CacheSimJson(const CacheSimResult& r, uint64_t slot_bytes);
std::string CacheSimSvg(const CacheSimResult& r);

}  // namespace moe
