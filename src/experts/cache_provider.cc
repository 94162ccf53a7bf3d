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
  CacheProvider(ExpertCache& cache, double prefetch_min_precision)
      : cache_(cache), slot_of_(static_cast<size_t>(std::max<int64_t>(1, n_experts()))),
        pending_{-1, std::vector<int32_t>(slot_of_.size())},
        outstanding_{-1, std::vector<int32_t>(slot_of_.size())},
        min_precision_(prefetch_min_precision),
        precision_(static_cast<size_t>(cache.n_layers()), 1.0) {}
  ~CacheProvider() override { End(); }

  Status Begin(int64_t layer, std::span<const int32_t> experts) override {
    End();
    layer_ = static_cast<int32_t>(layer);
    list_ = experts;
    IssueFrom(0);
    if (outstanding_.layer == layer_) {
      // The prediction for this layer meets the truth: the right prefetches were joined above
      // (and moved to the demand queue if not started); the wrong ones not started are dropped.
      const std::span<const int32_t> predicted = outstanding_.experts();
      const uint64_t used = cache_.RecordPrediction(layer, predicted, experts);
      if (!predicted.empty()) {  // running mean over about the last kPrecisionWindow predictions
        double& p = precision_[static_cast<size_t>(layer)];
        p += (static_cast<double>(used) / static_cast<double>(predicted.size()) - p) /
             kPrecisionWindow;
      }
      for (int32_t e : predicted) {
        if (std::find(experts.begin(), experts.end(), e) == experts.end()) {
          cache_.CancelPrefetch({layer_, e});
        }
      }
      outstanding_.layer = -1;
    }
    // Prefetch the hinted next layer only now, after this layer's experts are pinned, so the
    // prefetch can never evict what the current layer is about to use; and only when every
    // expert of this layer got a slot (no stealing from a layer that is short of slots).
    if (pending_.layer >= 0 && issued_ == list_.size()) {
      if (precision_[static_cast<size_t>(pending_.layer)] >= min_precision_) {
        for (int32_t e : pending_.experts()) cache_.Prefetch({pending_.layer, e});
      } else {
        cache_.RecordSkippedPrefetch(pending_.layer, pending_.n);  // still judged at its Begin
      }
      std::swap(outstanding_, pending_);
    }
    pending_.layer = -1;
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
    return cache_.source().CacheView(layer_, list_[i], block);
  }

  bool Ready(size_t i) override { return i < issued_ && cache_.IsReady(slot_of_[i]); }

  void End() override {
    for (size_t j = released_; j < issued_; ++j) cache_.Release(slot_of_[j]);
    released_ = issued_ = 0;
    list_ = {};
  }

  void Hint(int64_t layer, std::span<const int32_t> experts) override {
    pending_.layer = static_cast<int32_t>(layer);  // issued by the next Begin
    pending_.n = std::min(experts.size(), pending_.ids.size());
    std::copy_n(experts.begin(), pending_.n, pending_.ids.begin());
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
  struct HintSet {
    int32_t layer = -1;  // -1: none
    std::vector<int32_t> ids;
    size_t n = 0;
    std::span<const int32_t> experts() const { return {ids.data(), n}; }
  };
  HintSet pending_;      // the last Hint, prefetched by the next Begin
  HintSet outstanding_;  // prefetched (or skipped), judged by the Begin of its layer
  // The gate: a layer's hints are read only while its running precision ≥ min_precision_.
  static constexpr double kPrecisionWindow = 8;
  double min_precision_;
  std::vector<double> precision_;  // [layer], starts at 1: every layer is tried first
};

}  // namespace

std::unique_ptr<ExpertProvider> ExpertCache::NewProvider(double prefetch_min_precision) {
  return std::make_unique<CacheProvider>(*this, prefetch_min_precision);
}

}  // namespace moe
