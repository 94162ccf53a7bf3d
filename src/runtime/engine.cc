// SPDX-License-Identifier: Apache-2.0
#include "runtime/engine.h"

#include <cstdio>

#include "util/thread_pool.h"

namespace moe {

Result<PrefetchMode> ParsePrefetchMode(const std::string& s) {
  for (PrefetchMode m : {PrefetchMode::kAuto, PrefetchMode::kOn, PrefetchMode::kOff}) {
    if (s == PrefetchModeName(m)) return m;
  }
  return Error(StatusCode::kUsage, "--prefetch '{}': expected auto, on or off", s);
}

Result<std::unique_ptr<Engine>> Engine::Open(const EngineOptions& opts) {
  std::unique_ptr<Engine> e(new Engine());
  e->opts_ = opts;
  MOE_ASSIGN_OR_RETURN(Qwen3MoeConfig cfg, LoadHfConfig(opts.model_dir));
  MOE_ASSIGN_OR_RETURN(Checkpoint ckpt, Checkpoint::Open(opts.model_dir));
  e->checkpoint_ = std::make_unique<Checkpoint>(std::move(ckpt));
  BindOptions bind;
  bind.locate_experts = !IsExpertStore(opts.model_dir);  // a store keeps experts in experts.bin
  // Dense weights larger than MemAvailable are refused before allocating (bad-inputs.md C4/P1).
  if (auto avail = MemAvailableBytes(); avail.ok()) bind.max_dense_bytes = *avail;
  bind.progress = stderr;  // drawn only for dense weights ≥ 256 MiB
  bind.dense_quant = opts.dense_quant;
  bind.tile_dense = opts.tile_weights;
  MOE_ASSIGN_OR_RETURN(e->weights_, ModelWeights::Bind(cfg, *e->checkpoint_, bind));
  const Qwen3MoeConfig& c = e->weights_->config();
  for (int32_t x : opts.expert_mask) {
    if (x < 0 || x >= c.num_experts) {
      return Error(StatusCode::kUsage, "--expert-mask: expert {} out of range [0, {})", x,
                   c.num_experts);
    }
  }
  if (opts.top_k_override < 0 || opts.top_k_override > c.num_experts) {
    return Error(StatusCode::kUsage, "--top-k: {} out of range [1, {}]", opts.top_k_override,
                 c.num_experts);
  }
  if (e->top_k() > c.num_experts ||
      (!opts.expert_mask.empty() && e->top_k() > static_cast<int64_t>(opts.expert_mask.size()))) {
    return Error(StatusCode::kUsage, "top-k {} exceeds the {} experts allowed by --expert-mask",
                 e->top_k(), opts.expert_mask.size());
  }
  if (e->top_k() > kMaxTopK) {
    return Error(StatusCode::kUnsupported, "top-k {} exceeds the supported maximum {}", e->top_k(),
                 kMaxTopK);
  }
  ExpertGeometry g;
  g.hidden = static_cast<uint64_t>(c.hidden_size);
  g.intermediate = static_cast<uint64_t>(c.moe_intermediate_size);
  g.type = ToWeightType(e->weights_->expert_dtype());
  if (bind.locate_experts) {
    MOE_ASSIGN_OR_RETURN(const IoMode io, ParseIoMode(opts.io_mode));
    MOE_ASSIGN_OR_RETURN(e->expert_source_,
                         MakeHfExpertSource(e->weights_->expert_table(), g, io));
  } else {
    MOE_TRY(e->OpenStoreSource(g));  // engine_experts.cc
  }
  // Before the experts: --expert-cache auto then sizes the cache around the shadow.
  if (opts.lm_head_shadow) {
    MOE_ASSIGN_OR_RETURN(e->greedy_head_,
                         GreedyHead::Build(e->weights_->lm_head().view, DefaultThreadCount()));
  }
  MOE_TRY(e->OpenExperts());  // resident or cached (engine_experts.cc)
  return e;
}

std::unique_ptr<ExpertProvider> Engine::NewExpertProvider() const {
  if (cache_) {
    return cache_->NewProvider(opts_.prefetch == PrefetchMode::kAuto ? kAutoPrefetchMinPrecision
                                                                     : 0.0);
  }
  return MakeResidentProvider(*resident_);
}

int64_t Engine::top_k() const {
  return opts_.top_k_override > 0 ? opts_.top_k_override : config().num_experts_per_tok;
}

}  // namespace moe
