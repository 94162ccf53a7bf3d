// SPDX-License-Identifier: Apache-2.0
#include "experts/expert_cache.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "util/check.h"
#include "util/checked_math.h"

namespace moe {

Result<std::unique_ptr<ExpertCache>> ExpertCache::Create(const ExpertSource& source,
                                                         const ExpertCacheOptions& opts) {
  std::unique_ptr<ExpertCache> c(new ExpertCache(source, opts));
  const uint64_t slot = c->slot_bytes_;
  uint64_t n_total = 0;
  for (int64_t l = 0; l < source.n_layers(); ++l) {
    if (source.has_experts(l)) n_total += static_cast<uint64_t>(source.n_experts());
  }
  const uint64_t need = static_cast<uint64_t>(std::max<int64_t>(1, opts.top_k));
  uint64_t n = slot ? opts.budget_bytes / slot : 0;
  if (n < need) {
    return Error(StatusCode::kUsage,
                 "--expert-cache {}: cache too small: need ≥ {}×{} bytes = {} (top-k × expert "
                 "block of {} bytes rounded to 4 KiB)",
                 opts.budget_bytes, need, slot, need * slot, source.geometry().block_bytes());
  }
  n = std::min(n, std::max<uint64_t>(n_total, need));
  // Huge-page backed (O_DIRECT reads into huge pages run about twice as fast, machine.md) and
  // prefaulted once: first touch of fresh memory is slow here; reads then land in resident
  // pages. The prefault runs in the background (BackgroundPrefault): slots are handed out in
  // ascending order, the order it faults them in, and waiting for all of a large arena at
  // startup cost more than the first token (docs/benchmarks.md, session 13).
  c->arena_ = AllocateHugeBuffer(n * slot, /*prefault=*/false);
  if (!c->arena_) {
    return Error(StatusCode::kResourceExhausted, "cannot allocate {} bytes for the expert cache",
                 n * slot);
  }
  c->prefault_ = BackgroundPrefault::Start(c->arena_.get(), n * slot);
  if (!c->prefault_) std::memset(c->arena_.get(), 0, n * slot);
  c->slots_.resize(n);
  for (uint32_t i = static_cast<uint32_t>(n); i-- > 0;) c->free_.push_back(i);
  MOE_ASSIGN_OR_RETURN(c->policy_, MakeCachePolicy(c->universe_, opts.policy));
  c->loader_ = std::make_unique<Loader>(source, static_cast<LoadSink&>(*c), opts.io_threads, n,
                                        opts.io_depth);
  if (opts.fill) {
    for (int32_t e = 0; e < c->universe_.n_experts; ++e) {
      for (int32_t l = 0; l < c->universe_.n_layers; ++l) {
        if (source.has_experts(l)) {
          c->fill_order_.push_back(static_cast<uint32_t>(c->universe_.Index({l, e})));
        }
      }
    }
    if (n < c->fill_order_.size()) c->fill_reserve_ = 2 * need;  // evictions will come
    std::lock_guard<std::mutex> lock(c->mu_);
    c->FillLocked();
  }
  return c;
}

ExpertCache::ExpertCache(const ExpertSource& source, const ExpertCacheOptions& opts)
    : source_(source), opts_(opts) {
  universe_.n_layers = static_cast<int32_t>(source.n_layers());
  universe_.n_experts = static_cast<int32_t>(source.n_experts());
  slot_bytes_ = SlotBytes(source);
  map_.assign(universe_.size(), kNoSlot);
  stats_.resize(static_cast<size_t>(universe_.n_layers));
}

uint64_t ExpertCache::SlotBytes(const ExpertSource& source) {
  return RoundUp(std::max(source.geometry().block_bytes(), source.cache_dst_bytes()), 4096);
}

ExpertCache::~ExpertCache() {
  {
    // A read ending while the loader goes must not top the fill up (loader_ is null then).
    std::lock_guard<std::mutex> lock(mu_);
    fill_stopped_ = true;
  }
  loader_.reset();  // joins the I/O threads before the arena goes
}

uint32_t ExpertCache::StartLoadLocked(ExpertKey key, LoadPriority priority) {
  const bool prefetch = priority != LoadPriority::kDemand;
  uint32_t s = kNoSlot;
  if (!free_.empty()) {
    s = free_.back();
    free_.pop_back();
  } else {
    // A prefetch never evicts its own layer. Two captures of 8 + 4 bytes fit std::function's
    // small buffer: an eviction allocates nothing (no_alloc_test).
    const int32_t kept_layer = prefetch ? key.layer : -1;
    auto victim = policy_->ChooseVictim(key, [this, kept_layer](ExpertKey k) {
      const uint32_t v = map_[universe_.Index(k)];
      return v != kNoSlot && slots_[v].state == SlotState::kReady && slots_[v].pins == 0 &&
             k.layer != kept_layer;
    });
    if (!victim) return kNoSlot;
    s = map_[universe_.Index(*victim)];
    policy_->OnEvict(*victim);
    map_[universe_.Index(*victim)] = kNoSlot;
    ++LayerStats(victim->layer).evictions;
  }
  Slot& slot = slots_[s];
  slot.state = SlotState::kLoading;
  slot.key = key;
  slot.prefetched = prefetch;
  slot.fill = slot.fill_read = priority == LoadPriority::kBackground;
  slot.started = !prefetch;
  slot.cancelled = false;
  slot.error = Status::Ok();
  map_[universe_.Index(key)] = s;
  policy_->OnInsert(key);
  LoadJob job{key.layer, key.expert, s, arena_.get() + static_cast<uint64_t>(s) * slot_bytes_};
  MOE_CHECK(loader_->Submit(job, priority), "loader queue larger than the slot count");
  return s;
}

void ExpertCache::FillLocked() {
  if (fill_stopped_) return;
  while (fill_in_flight_ < kFillReads && free_.size() > fill_reserve_) {
    // One walk through the order: an expert passed (cached then, or filled) is not revisited
    // when it is evicted or dropped later.
    while (fill_next_ < fill_order_.size() && map_[fill_order_[fill_next_]] != kNoSlot) {
      ++fill_next_;
    }
    if (fill_next_ == fill_order_.size()) return;
    const ExpertKey key = universe_.Key(fill_order_[fill_next_++]);
    StartLoadLocked(key, LoadPriority::kBackground);  // a free slot: cannot fail
    ++fill_in_flight_;
    ++LayerStats(key.layer).fill_issued;
  }
}

uint32_t ExpertCache::TryAcquire(ExpertKey key) {
  std::lock_guard<std::mutex> lock(mu_);
  LayerCacheStats& st = LayerStats(key.layer);
  uint32_t s = map_[universe_.Index(key)];
  if (s != kNoSlot) {
    Slot& slot = slots_[s];
    if (slot.state == SlotState::kReady) {
      ++st.hits;
      policy_->OnHit(key);
    } else {
      ++st.joins;
    }
    if (slot.prefetched) {
      ++(slot.fill ? st.fill_used : st.prefetch_used);
      slot.prefetched = slot.fill = false;
      // Someone waits for it now: a speculative read still queued goes to the demand queue.
      if (!slot.started) loader_->Promote(s);
    }
  } else {
    s = StartLoadLocked(key, LoadPriority::kDemand);
    if (s == kNoSlot) return kNoSlot;
    ++st.misses;
  }
  ++slots_[s].pins;
  return s;
}

Result<uint32_t> ExpertCache::AcquireBlocking(ExpertKey key) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(opts_.wait_timeout_ms);
  for (;;) {
    const uint32_t s = TryAcquire(key);
    if (s != kNoSlot) return s;
    std::unique_lock<std::mutex> lock(mu_);
    // Re-check under the lock that nothing is evictable before sleeping; a Release or a
    // completed load notifies ready_cv_.
    const bool any_free = !free_.empty() || std::any_of(slots_.begin(), slots_.end(),
        [](const Slot& sl) { return sl.state == SlotState::kReady && sl.pins == 0; });
    if (any_free) continue;
    if (ready_cv_.wait_until(lock, deadline) == std::cv_status::timeout) {
      return Error(StatusCode::kResourceExhausted,
                   "expert cache: no free slot for layer {} expert {} within {} ms: all {} "
                   "slots are pinned (budget too small for the sessions sharing it)",
                   key.layer, key.expert, opts_.wait_timeout_ms, slots_.size());
    }
  }
}

Result<const void*> ExpertCache::WaitReady(uint32_t s, ExpertKey key) {
  const auto t0 = std::chrono::steady_clock::now();
  std::unique_lock<std::mutex> lock(mu_);
  Slot& slot = slots_[s];
  const bool ok = ready_cv_.wait_until(
      lock, t0 + std::chrono::milliseconds(opts_.wait_timeout_ms),
      [&] { return slot.state == SlotState::kReady || slot.state == SlotState::kFailed; });
  LayerStats(key.layer).wait_ns += static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0)
          .count());
  if (!ok) {
    return Error(StatusCode::kIoError, "expert cache: read of layer {} expert {} did not "
                 "complete within {} ms", key.layer, key.expert, opts_.wait_timeout_ms);
  }
  if (slot.state == SlotState::kFailed) return slot.error;
  return static_cast<const void*>(arena_.get() + static_cast<uint64_t>(s) * slot_bytes_);
}

bool ExpertCache::IsReady(uint32_t s) const {
  std::lock_guard<std::mutex> lock(mu_);
  return slots_[s].state == SlotState::kReady;
}

void ExpertCache::FreeLocked(uint32_t s) {
  slots_[s] = Slot();
  free_.push_back(s);
}

void ExpertCache::Release(uint32_t s) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    Slot& slot = slots_[s];
    MOE_CHECK(slot.pins > 0, "release of an unpinned slot");
    if (--slot.pins == 0 && slot.state == SlotState::kFailed) FreeLocked(s);
  }
  ready_cv_.notify_all();
}

void ExpertCache::Prefetch(ExpertKey key) {
  std::lock_guard<std::mutex> lock(mu_);
  policy_->OnHint(key);
  const uint32_t s = map_[universe_.Index(key)];
  if (s != kNoSlot) {
    // Queued by the fill: predicted now, so it goes before the other fill reads.
    if (slots_[s].fill && !slots_[s].started) loader_->Promote(s, LoadPriority::kSpeculative);
    return;
  }
  if (StartLoadLocked(key, LoadPriority::kSpeculative) != kNoSlot) {
    ++LayerStats(key.layer).prefetch_issued;
  }
}

void ExpertCache::CancelPrefetch(ExpertKey key) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    const uint32_t s = map_[universe_.Index(key)];
    if (s == kNoSlot) return;
    Slot& slot = slots_[s];
    if (!slot.prefetched || slot.fill || slot.started || slot.pins > 0) return;
    // Forget the key now (a later request reads it afresh). A job still queued leaves the
    // queue and its slot is free at once; one a thread has just taken frees it in ShouldStart.
    policy_->OnEvict(key);
    map_[universe_.Index(key)] = kNoSlot;
    ++LayerStats(key.layer).prefetch_cancelled;
    if (!loader_->DropSpeculative(s)) {
      slot.cancelled = true;
      return;
    }
    FreeLocked(s);
  }
  ready_cv_.notify_all();  // a slot came free (AcquireBlocking)
}

bool ExpertCache::ShouldStart(const LoadJob& job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    Slot& slot = slots_[job.slot];
    if (!slot.cancelled) {
      slot.started = true;
      return true;
    }
    FreeLocked(job.slot);
  }
  ready_cv_.notify_all();  // a slot came free (AcquireBlocking)
  return false;
}

void ExpertCache::OnLoaded(const LoadJob& job, Status status, uint64_t read_ns) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    Slot& slot = slots_[job.slot];
    LayerCacheStats& st = LayerStats(job.layer);
    st.read_ns += read_ns;
    if (slot.fill_read) {
      slot.fill_read = false;
      --fill_in_flight_;
      fill_stopped_ |= !status.ok();  // a failing device gets no more background reads
    }
    if (status.ok()) {
      slot.state = SlotState::kReady;
      st.bytes_read += source_.dst_bytes();
    } else {
      // Forget the key at once (a later request reads again); waiters holding pins see the
      // error; the slot is reused only when the last of them releases it.
      ++read_errors_;
      policy_->OnEvict(slot.key);
      map_[universe_.Index(slot.key)] = kNoSlot;
      slot.state = SlotState::kFailed;
      slot.error = std::move(status);
      if (slot.pins == 0) FreeLocked(job.slot);
    }
    FillLocked();
  }
  ready_cv_.notify_all();
}

uint64_t ExpertCache::RecordPrediction(int64_t layer, std::span<const int32_t> predicted,
                                       std::span<const int32_t> actual) {
  uint64_t both = 0;
  for (int32_t p : predicted) both += std::count(actual.begin(), actual.end(), p) > 0;
  std::lock_guard<std::mutex> lock(mu_);
  LayerCacheStats& st = LayerStats(static_cast<int32_t>(layer));
  st.predicted += predicted.size();
  st.actual += actual.size();
  st.predicted_and_actual += both;
  return both;
}

void ExpertCache::RecordSkippedPrefetch(int64_t layer, size_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  LayerStats(static_cast<int32_t>(layer)).prefetch_skipped += n;
}

uint64_t ExpertCache::io_busy_ns() const { return loader_->busy_ns(); }

std::array<uint64_t, Loader::kInFlightBuckets> ExpertCache::io_in_flight_ns() const {
  return loader_->in_flight_ns();
}

CacheStats ExpertCache::Stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  CacheStats s;
  s.budget_bytes = opts_.budget_bytes;
  s.slot_bytes = slot_bytes_;
  s.n_slots = slots_.size();
  s.read_errors = read_errors_;
  s.layers = stats_;
  for (const LayerCacheStats& l : stats_) s.total.Add(l);
  return s;
}

}  // namespace moe
