// SPDX-License-Identifier: Apache-2.0
// The ExpertProvider a Session uses on top of the shared ExpertCache: Begin pins and issues
// every expert of the layer that fits, Wait blocks on one, End unpins. When the layer's active
// experts outnumber the free slots (a batch on a small cache), Wait(i) first releases the
// experts the caller has finished with (0..i) and then acquires more.
#include <algorithm>

#include "experts/expert_cache.h"

namespace moe {
namespace {

class CacheProvider final : public ExpertProvider {
 public:
  explicit CacheProvider(ExpertCache& cache)
      : cache_(cache), slot_of_(static_cast<size_t>(std::max<int64_t>(1, n_experts()))),
        hint_(slot_of_.size()) {}
  ~CacheProvider() override { End(); }

  Status Begin(int64_t layer, std::span<const int32_t> experts) override {
    End();
    layer_ = static_cast<int32_t>(layer);
    list_ = experts;
    if (hint_layer_ == layer_) {
      cache_.RecordPrediction(layer, {hint_.data(), n_hint_}, experts);
      hint_layer_ = -1;
      hint_pending_ = false;
    }
    IssueFrom(0);
    // Prefetch the hinted next layer only now, after this layer's experts are pinned, so the
    // prefetch can never evict what the current layer is about to use; and only when every
    // expert of this layer got a slot (no stealing from a layer that is short of slots).
    if (hint_pending_ && issued_ == list_.size()) {
      for (size_t i = 0; i < n_hint_; ++i) cache_.Prefetch({hint_layer_, hint_[i]});
    }
    hint_pending_ = false;
    return Status::Ok();
  }

  Result<ExpertView> Wait(size_t i) override {
    if (i >= issued_) {
      // Out of slots: give back what the caller is done with, then wait for a slot.
      for (size_t j = released_; j < issued_; ++j) cache_.Release(slot_of_[j]);
      released_ = issued_ = i;
      MOE_ASSIGN_OR_RETURN(slot_of_[i], cache_.AcquireBlocking(Key(i)));
      issued_ = i + 1;
      IssueFrom(i + 1);
    }
    MOE_ASSIGN_OR_RETURN(const void* block, cache_.WaitReady(slot_of_[i], Key(i)));
    return MakeExpertView(cache_.geometry(), block);
  }

  bool Ready(size_t i) override { return i < issued_ && cache_.IsReady(slot_of_[i]); }

  void End() override {
    for (size_t j = released_; j < issued_; ++j) cache_.Release(slot_of_[j]);
    released_ = issued_ = 0;
    list_ = {};
  }

  void Hint(int64_t layer, std::span<const int32_t> experts) override {
    hint_layer_ = static_cast<int32_t>(layer);
    n_hint_ = std::min(experts.size(), hint_.size());
    std::copy(experts.begin(), experts.begin() + static_cast<ptrdiff_t>(n_hint_), hint_.begin());
    hint_pending_ = true;  // issued by the next Begin, after it pins its own experts
  }

 private:
  int64_t n_experts() const { return cache_.n_experts(); }
  ExpertKey Key(size_t i) const { return {layer_, list_[i]}; }
  void IssueFrom(size_t i) {
    for (; i < list_.size(); ++i) {
      const uint32_t s = cache_.TryAcquire(Key(i));
      if (s == ExpertCache::kNoSlot) break;
      slot_of_[i] = s;
      issued_ = i + 1;
    }
  }

  ExpertCache& cache_;
  int32_t layer_ = 0;
  std::span<const int32_t> list_;
  std::vector<uint32_t> slot_of_;  // [n_experts] slot of list_[i]
  size_t issued_ = 0;              // list_[released_, issued_) are pinned
  size_t released_ = 0;
  std::vector<int32_t> hint_;      // the last Hint, compared with the next Begin of its layer
  size_t n_hint_ = 0;
  int32_t hint_layer_ = -1;
  bool hint_pending_ = false;
};

}  // namespace

std::unique_ptr<ExpertProvider> ExpertCache::NewProvider() {
  return std::make_unique<CacheProvider>(*this);
}

}  // namespace moe
