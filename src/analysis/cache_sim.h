// SPDX-License-Identifier: Apache-2.0
// Offline expert-cache simulator: replays a routing trace through the SAME policy objects the
// runtime cache uses (experts/cache_policy.h, via ReplayTrace), plus Belady's MIN as the upper
// bound.
//
// Access order: the runtime requests, for each forward batch and each MoE layer, the batch's
// distinct active experts in ascending id order, once per batch (ExpertCache counts one hit or
// miss per (batch, layer, expert), however many tokens of the batch chose it). A trace recorded
// with prefill batches of B tokens (Session max_batch; windows start at pos 0) is replayed by
// grouping consecutive records of one layer whose positions fall in the same chunk
// [B·⌊pos/B⌋, B·⌊pos/B⌋ + B); B = 1 is token-by-token decoding.
// Pins: the runtime never evicts the current layer's experts while it uses them; ReplayTrace has
// no pins. With LRU and LFU-free choices this changes nothing as long as a batch's active experts
// fit in the cache (they are the most recently used entries, never the LRU victim), which the
// report checks by comparing against the runtime's counters.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "experts/cache_policy.h"
#include "runtime/session.h"
#include "util/status.h"

namespace moe {

// The runtime's access sequence for `trace` recorded with prefill batches of `batch` tokens.
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
