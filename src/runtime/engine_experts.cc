// SPDX-License-Identifier: Apache-2.0
// Engine: choosing where experts live (all resident, or streamed through the byte-budget cache).
#include <cstdio>

#include "runtime/engine.h"

namespace moe {

Status Engine::OpenStoreSource(const ExpertGeometry& g) {
  StoreOpenOptions so;
  MOE_ASSIGN_OR_RETURN(so.io, ParseIoMode(opts_.io_mode));
  so.verify = opts_.verify_reads;
  MOE_ASSIGN_OR_RETURN(expert_source_,
                       OpenExpertStore(opts_.model_dir, g, config().num_hidden_layers,
                                       config().num_experts, so));
  return Status::Ok();
}

Status Engine::OpenExperts() {
  const ExpertSource& src = *expert_source_;
  if (opts_.io_timeout_ms < 1 || opts_.io_timeout_ms > 86'400'000) {
    return Error(StatusCode::kUsage, "--io-timeout-ms {}: expected 1..86400000 (1 day)",
                 opts_.io_timeout_ms);
  }
  if (opts_.expert_cache.empty()) {
    MOE_ASSIGN_OR_RETURN(resident_, ResidentExperts::Load(src, opts_.tile_weights));
    return Status::Ok();
  }
  const Qwen3MoeConfig& c = config();
  if (opts_.io_threads < 1 || opts_.io_threads > 16) {
    return Error(StatusCode::kUsage, "--io-threads {}: expected 1..16", opts_.io_threads);
  }
  ExpertCacheOptions co;
  co.wait_timeout_ms = opts_.io_timeout_ms;
  co.top_k = top_k();
  co.policy.kind = opts_.cache_policy;
  co.io_threads = static_cast<size_t>(opts_.io_threads);
  co.fill = opts_.cache_fill;
  if (opts_.io_depth < 0 || opts_.io_depth > 16) {
    return Error(StatusCode::kUsage, "--io-depth {}: expected 0..16", opts_.io_depth);
  }
  co.io_depth = static_cast<size_t>(opts_.io_depth);
  MOE_ASSIGN_OR_RETURN(const uint64_t avail, MemAvailableBytes());
  if (opts_.expert_cache == "auto") {
    const uint64_t kv = static_cast<uint64_t>(c.num_hidden_layers) *
                        static_cast<uint64_t>(opts_.max_context_for_budget) *
                        static_cast<uint64_t>(c.num_key_value_heads * c.head_dim) * 2 * 4;
    // MemAvailable is read after the dense weights are loaded, so they are already excluded.
    MOE_ASSIGN_OR_RETURN(co.budget_bytes, AutoCacheBudget(0, kv));
  } else {
    MOE_ASSIGN_OR_RETURN(co.budget_bytes, ParseByteSize(opts_.expert_cache, "expert-cache"));
    if (co.budget_bytes > avail) {
      return Error(StatusCode::kResourceExhausted,
                   "--expert-cache {}: {} bytes exceed the {} bytes of MemAvailable; use a "
                   "smaller size or auto", opts_.expert_cache, co.budget_bytes, avail);
    }
  }
  MOE_ASSIGN_OR_RETURN(cache_, ExpertCache::Create(src, co));
  return Status::Ok();
}

}  // namespace moe
