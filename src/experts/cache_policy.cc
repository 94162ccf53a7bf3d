// SPDX-License-Identifier: Apache-2.0
#include "experts/cache_policy.h"

#include <limits>

#include "util/check.h"

namespace moe {
namespace {

constexpr uint32_t kNone = std::numeric_limits<uint32_t>::max();

// The resident keys as a dense array with O(1) insert/remove (swap with last).
class ResidentSet {
 public:
  explicit ResidentSet(size_t universe) : where_(universe, kNone) {}
  void Add(size_t i) {
    if (where_[i] != kNone) return;
    where_[i] = static_cast<uint32_t>(items_.size());
    items_.push_back(static_cast<uint32_t>(i));
  }
  void Remove(size_t i) {
    const uint32_t w = where_[i];
    if (w == kNone) return;
    items_[w] = items_.back();
    where_[items_[w]] = w;
    items_.pop_back();
    where_[i] = kNone;
  }
  const std::vector<uint32_t>& items() const { return items_; }

 private:
  std::vector<uint32_t> where_;
  std::vector<uint32_t> items_;
};

// Intrusive doubly linked list over the universe; head = most recent.
class LruPolicy final : public CachePolicy {
 public:
  explicit LruPolicy(const PolicyUniverse& u)
      : u_(u), prev_(u.size(), kNone), next_(u.size(), kNone), in_(u.size(), 0) {}

  void OnInsert(ExpertKey key) override { Touch(u_.Index(key)); }
  void OnHit(ExpertKey key) override { Touch(u_.Index(key)); }
  void OnEvict(ExpertKey key) override { Unlink(u_.Index(key)); }
  std::optional<ExpertKey> ChooseVictim(
      ExpertKey incoming, const std::function<bool(ExpertKey)>& evictable) override {
    (void)incoming;
    for (uint32_t i = tail_; i != kNone; i = prev_[i]) {
      if (evictable(u_.Key(i))) return u_.Key(i);
    }
    return std::nullopt;
  }

 private:
  void Unlink(size_t i) {
    if (!in_[i]) return;
    if (prev_[i] != kNone) next_[prev_[i]] = next_[i]; else head_ = next_[i];
    if (next_[i] != kNone) prev_[next_[i]] = prev_[i]; else tail_ = prev_[i];
    prev_[i] = next_[i] = kNone;
    in_[i] = 0;
  }
  void Touch(size_t i) {
    Unlink(i);
    next_[i] = head_;
    if (head_ != kNone) prev_[head_] = static_cast<uint32_t>(i);
    head_ = static_cast<uint32_t>(i);
    if (tail_ == kNone) tail_ = head_;
    in_[i] = 1;
  }

  PolicyUniverse u_;
  std::vector<uint32_t> prev_, next_;
  std::vector<uint8_t> in_;
  uint32_t head_ = kNone, tail_ = kNone;
};

// Frequency with aging; ties go to the least recently used. Counts survive eviction, so an
// expert that was popular and comes back is protected at once (the "history" of LFU-DA style
// policies); aging halves every count each `period` accesses so old popularity fades.
class LfuPolicy : public CachePolicy {
 public:
  LfuPolicy(const PolicyUniverse& u, uint64_t period)
      : u_(u), resident_(u.size()), count_(u.size(), 0), stamp_(u.size(), 0),
        period_(period ? period : 8 * std::max<uint64_t>(1, u.size())) {}

  void OnInsert(ExpertKey key) override {
    resident_.Add(u_.Index(key));
    Access(u_.Index(key));
  }
  void OnHit(ExpertKey key) override { Access(u_.Index(key)); }
  void OnEvict(ExpertKey key) override { resident_.Remove(u_.Index(key)); }
  std::optional<ExpertKey> ChooseVictim(
      ExpertKey incoming, const std::function<bool(ExpertKey)>& evictable) override {
    Prepare(incoming);
    uint32_t best = kNone;
    for (uint32_t i : resident_.items()) {
      if (!evictable(u_.Key(i))) continue;
      if (best == kNone || Worse(i, best)) best = i;
    }
    if (best == kNone) return std::nullopt;
    return u_.Key(best);
  }

 protected:
  // Called before a victim search for `incoming`.
  virtual void Prepare(ExpertKey incoming) { (void)incoming; }
  // True when i is a better victim than j.
  virtual bool Worse(uint32_t i, uint32_t j) const {
    if (count_[i] != count_[j]) return count_[i] < count_[j];
    return stamp_[i] < stamp_[j];
  }
  void Access(size_t i) {
    ++count_[i];
    stamp_[i] = ++clock_;
    if (clock_ % period_ == 0) {
      for (uint32_t& c : count_) c >>= 1;
    }
  }

  PolicyUniverse u_;
  ResidentSet resident_;
  std::vector<uint32_t> count_;
  std::vector<uint64_t> stamp_;
  uint64_t period_;
  uint64_t clock_ = 0;
};

// Decoding visits the MoE layers in a cycle 0, 1, …, L-1, 0, …; an expert of layer l cannot be
// used again before layer l comes round. Plain LRU evicts the entry of the layer visited longest
// ago, which is exactly the layer about to run next (LRU's cyclic-access pathology). This policy
// evicts the entry whose layer comes back LAST (the layer just run; Belady's choice when every
// layer is revisited once per token), breaking ties by aged frequency then recency (LFU above).
// A hinted (predicted) key counts as due now, so it is evicted last.
class LayerCyclicPolicy final : public LfuPolicy {
 public:
  explicit LayerCyclicPolicy(const PolicyUniverse& u)
      : LfuPolicy(u, 0), hinted_(u.size(), 0) {}

  void OnInsert(ExpertKey key) override {
    current_ = key.layer;
    hinted_[u_.Index(key)] = 0;
    LfuPolicy::OnInsert(key);
  }
  void OnHit(ExpertKey key) override {
    current_ = key.layer;
    hinted_[u_.Index(key)] = 0;
    LfuPolicy::OnHit(key);
  }
  void OnHint(ExpertKey key) override { hinted_[u_.Index(key)] = 1; }

 private:
  void Prepare(ExpertKey incoming) override { current_ = incoming.layer; }
  int64_t Distance(uint32_t i) const {
    if (hinted_[i]) return 0;
    const int64_t l = static_cast<int64_t>(i / static_cast<uint32_t>(u_.n_experts));
    const int64_t d = (l - current_ + u_.n_layers) % u_.n_layers;  // 0 = the layer just used
    return d == 0 ? u_.n_layers : d;
  }
  bool Worse(uint32_t i, uint32_t j) const override {
    const int64_t di = Distance(i), dj = Distance(j);
    if (di != dj) return di > dj;
    return LfuPolicy::Worse(i, j);
  }

  std::vector<uint8_t> hinted_;
  int64_t current_ = 0;
};

class BeladyPolicy final : public CachePolicy {
 public:
  BeladyPolicy(const PolicyUniverse& u, std::vector<ExpertKey> future)
      : u_(u), resident_(u.size()), next_use_(u.size(), kNever), future_(std::move(future)),
        next_(future_.size(), kNever) {
    std::vector<uint64_t> last(u.size(), kNever);
    for (size_t t = future_.size(); t-- > 0;) {
      const size_t i = u_.Index(future_[t]);
      next_[t] = last[i];
      last[i] = t;
    }
  }

  void OnInsert(ExpertKey key) override {
    resident_.Add(u_.Index(key));
    Advance(key);
  }
  void OnHit(ExpertKey key) override { Advance(key); }
  void OnEvict(ExpertKey key) override { resident_.Remove(u_.Index(key)); }
  std::optional<ExpertKey> ChooseVictim(
      ExpertKey incoming, const std::function<bool(ExpertKey)>& evictable) override {
    (void)incoming;
    uint32_t best = kNone;
    for (uint32_t i : resident_.items()) {
      if (!evictable(u_.Key(i))) continue;
      if (best == kNone || next_use_[i] > next_use_[best] ||
          (next_use_[i] == next_use_[best] && i < best)) {
        best = i;
      }
    }
    if (best == kNone) return std::nullopt;
    return u_.Key(best);
  }

 private:
  static constexpr uint64_t kNever = std::numeric_limits<uint64_t>::max();
  void Advance(ExpertKey key) {
    MOE_CHECK(pos_ < future_.size() && future_[pos_] == key,
              "Belady replay diverged from its trace at access {}", pos_);
    next_use_[u_.Index(key)] = next_[pos_++];
  }

  PolicyUniverse u_;
  ResidentSet resident_;
  std::vector<uint64_t> next_use_;
  std::vector<ExpertKey> future_;
  std::vector<uint64_t> next_;
  size_t pos_ = 0;
};

}  // namespace

Result<PolicyKind> ParsePolicyKind(const std::string& name) {
  if (name == "lru") return PolicyKind::kLru;
  if (name == "lfu") return PolicyKind::kLfu;
  if (name == "layer") return PolicyKind::kLayerCyclic;
  return Error(StatusCode::kUsage, "cache policy '{}': expected lru, lfu or layer", name);
}

const char* PolicyKindName(PolicyKind kind) {
  switch (kind) {
    case PolicyKind::kLru: return "lru";
    case PolicyKind::kLfu: return "lfu";
    case PolicyKind::kLayerCyclic: return "layer";
    case PolicyKind::kBelady: return "belady";
  }
  return "?";
}

Result<std::unique_ptr<CachePolicy>> MakeCachePolicy(const PolicyUniverse& u,
                                                     const PolicyOptions& opts) {
  switch (opts.kind) {
    case PolicyKind::kLru: return std::unique_ptr<CachePolicy>(new LruPolicy(u));
    case PolicyKind::kLfu:
      return std::unique_ptr<CachePolicy>(new LfuPolicy(u, opts.lfu_aging_period));
    case PolicyKind::kLayerCyclic: return std::unique_ptr<CachePolicy>(new LayerCyclicPolicy(u));
    case PolicyKind::kBelady: break;
  }
  return Error(StatusCode::kUsage, "cache policy '{}' needs the future trace (offline only)",
               PolicyKindName(opts.kind));
}

std::unique_ptr<CachePolicy> MakeBeladyPolicy(const PolicyUniverse& u,
                                              std::vector<ExpertKey> future) {
  return std::make_unique<BeladyPolicy>(u, std::move(future));
}

ReplayCounts ReplayTrace(CachePolicy& policy, const PolicyUniverse& u, size_t capacity,
                         const std::vector<ExpertKey>& trace) {
  ReplayCounts c;
  std::vector<uint8_t> resident(u.size(), 0);
  size_t n_resident = 0;
  for (ExpertKey k : trace) {
    const size_t i = u.Index(k);
    if (resident[i]) {
      ++c.hits;
      policy.OnHit(k);
      continue;
    }
    ++c.misses;
    if (capacity == 0) continue;
    if (n_resident == capacity) {
      auto victim = policy.ChooseVictim(k, [](ExpertKey) { return true; });
      MOE_CHECK(victim.has_value(), "policy found no victim in a full cache");
      policy.OnEvict(*victim);
      resident[u.Index(*victim)] = 0;
      --n_resident;
      ++c.evictions;
    }
    resident[i] = 1;
    ++n_resident;
    policy.OnInsert(k);
  }
  return c;
}

}  // namespace moe
