// SPDX-License-Identifier: Apache-2.0
// Replacement policies for the expert cache, pure (no I/O, no locks, no clocks): the runtime
// cache (expert_cache.h) and the offline cache simulator drive the same objects, so a simulated
// hit rate is the hit rate the engine gets with the same access order.
//
// Goals: O(1) bookkeeping per access, allocation-free after construction (keys live in a dense
// universe of n_layers × n_experts ids), a victim query that skips entries the caller cannot
// evict (pinned or loading slots).
// Non-goals: thread safety (the caller serialises: the cache holds its mutex), sizing policy.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "util/status.h"

namespace moe {

// One routed expert of one layer.
struct ExpertKey {
  int32_t layer = 0;
  int32_t expert = 0;
  friend bool operator==(ExpertKey a, ExpertKey b) {
    return a.layer == b.layer && a.expert == b.expert;
  }
};

// The key space a policy tracks: layers [0, n_layers) × experts [0, n_experts).
struct PolicyUniverse {
  int32_t n_layers = 0;
  int32_t n_experts = 0;
  size_t size() const { return static_cast<size_t>(n_layers) * static_cast<size_t>(n_experts); }
  size_t Index(ExpertKey k) const {
    return static_cast<size_t>(k.layer) * static_cast<size_t>(n_experts) +
           static_cast<size_t>(k.expert);
  }
  ExpertKey Key(size_t i) const {
    return {static_cast<int32_t>(i / static_cast<size_t>(n_experts)),
            static_cast<int32_t>(i % static_cast<size_t>(n_experts))};
  }
};

enum class PolicyKind {
  kLru,          // least recently used (default)
  kLfu,          // least frequently used, counts halved every `aging_period` accesses
  kLayerCyclic,  // evicts the entries whose layer comes back last (see LayerCyclicPolicy)
  kBelady,       // offline optimum: needs the future trace (MakeBeladyPolicy)
};

// Parses "lru" | "lfu" | "layer" (kUsage naming the value otherwise). Belady is simulator-only.
Result<PolicyKind> ParsePolicyKind(const std::string& name);
const char* PolicyKindName(PolicyKind kind);

// Not thread-safe. Every key passed in must lie in the universe given at construction.
// Protocol: OnInsert when a key becomes resident, OnHit when a resident key is used again,
// OnEvict when it leaves. ChooseVictim(incoming, …) is asked before `incoming` is inserted into
// a full cache; it never returns a key that is not resident or for which
// `evictable` is false; nullopt when there is none.
class CachePolicy {
 public:
  virtual ~CachePolicy() = default;
  virtual void OnInsert(ExpertKey key) = 0;
  virtual void OnHit(ExpertKey key) = 0;
  virtual void OnEvict(ExpertKey key) = 0;
  // A prediction that `key` will be used soon (router lookahead). Default: ignored.
  virtual void OnHint(ExpertKey key) { (void)key; }
  virtual std::optional<ExpertKey> ChooseVictim(
      ExpertKey incoming, const std::function<bool(ExpertKey)>& evictable) = 0;
};

struct PolicyOptions {
  PolicyKind kind = PolicyKind::kLru;
  uint64_t lfu_aging_period = 0;  // kLfu: halve all counts every N accesses (0 = 8 × universe)
};

// Online policies (kLru, kLfu, kLayerCyclic). kBelady is refused with kUsage: use MakeBelady.
Result<std::unique_ptr<CachePolicy>> MakeCachePolicy(const PolicyUniverse& u,
                                                     const PolicyOptions& opts);

// Belady's MIN for offline replay: `future` is the whole access sequence the policy will see
// (each OnInsert/OnHit consumes the next element, which must equal the key passed).
std::unique_ptr<CachePolicy> MakeBeladyPolicy(const PolicyUniverse& u,
                                              std::vector<ExpertKey> future);

struct ReplayCounts {
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t evictions = 0;
};

// Replays `trace` through a cache of `capacity` entries managed by `policy` (no pins): the
// reference the offline simulator and the tests use.
ReplayCounts ReplayTrace(CachePolicy& policy, const PolicyUniverse& u, size_t capacity,
                         const std::vector<ExpertKey>& trace);

}  // namespace moe
