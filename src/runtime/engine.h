// SPDX-License-Identifier: Apache-2.0
// Engine: the immutable model (config, dense weights, expert storage). After Open it is const
// and may be shared by several Sessions. Session (session.h) owns the per-conversation state.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "experts/cache_policy.h"
#include "experts/expert_cache.h"
#include "experts/expert_provider.h"
#include "experts/expert_store.h"
#include "experts/expert_source.h"
#include "formats/hf_config.h"
#include "formats/safetensors.h"
#include "model/model_weights.h"
#include "runtime/greedy_head.h"
#include "util/status.h"

namespace moe {

inline constexpr int64_t kMaxTopK = 64;

enum class PrefetchMode { kOff, kOn, kAuto };
// Below this precision a layer's prefetch costs more than it saves (docs/benchmarks.md,
// sessions 5 and 11: 45 % lost 7–13 % of decode, 70–80 % gained 16–36 % in disk-bound cells).
inline constexpr double kAutoPrefetchMinPrecision = 0.6;
inline const char* PrefetchModeName(PrefetchMode m) {
  return m == PrefetchMode::kOff ? "off" : m == PrefetchMode::kOn ? "on" : "auto";
}
// "auto" | "on" | "off"; anything else is kUsage naming --prefetch.
Result<PrefetchMode> ParsePrefetchMode(const std::string& s);

struct EngineOptions {
  std::string model_dir;
  // Lossy analysis knobs (both make the output differ from the model's): restrict the router to
  // these experts (empty = all) and override top-k (0 = the config's).
  std::vector<int32_t> expert_mask;
  int64_t top_k_override = 0;

  // --- Expert storage (experts/; docs/expert_cache.md). ---
  // "" = every expert resident (the reference mode); "auto" or a size ("512M", "4G"): stream
  // experts through a cache of that many bytes.
  std::string expert_cache;
  PolicyKind cache_policy = PolicyKind::kLru;
  int64_t io_threads = 4;
  // Expert reads moving bytes at once; each block's checksum runs outside this limit (Loader).
  // 0 = io_threads. Which is faster depends on the misses per layer (docs/benchmarks.md,
  // session 6: 2 wins at high hit rates, loses where many reads queue), so 0 is the default.
  int64_t io_depth = 0;
  // Expert reads (HF shards or a converted store): direct | buffered | auto (O_DIRECT where
  // the file system allows it).
  std::string io_mode = "auto";
  // Converted store reads: hash each block on its first read only (default) or on every read.
  VerifyReads verify_reads = VerifyReads::kFirst;
  // Router-lookahead prefetch (runtime/prefetch.h) when streaming: kOn reads every hint early;
  // kAuto (default) reads a layer's hints while its recent lookahead precision is at least
  // kAutoPrefetchMinPrecision (ExpertCache::NewProvider), and only judges them otherwise.
  PrefetchMode prefetch = PrefetchMode::kAuto;
  // --cache-fill: ExpertCacheOptions::fill (free slots filled in the background). Decides only
  // what is read when, never what is computed.
  bool cache_fill = true;
  // Bound on any wait for an expert read or a free cache slot; a stalled disk then fails the
  // request with an error naming the layer and expert instead of hanging it (F12).
  int64_t io_timeout_ms = 120000;
  // --dense-quant q8|q4: dense MatMul weights block-quantized at load (BindOptions::dense_quant).
  std::optional<kernels::WeightType> dense_quant;
  // --weight-layout rows|tiles: resident MatMul weights (dense: BindOptions::tile_dense; all
  // experts when resident: ResidentExperts::Load) tiled at load. Streamed experts stay as read.
  bool tile_weights = true;
  int64_t max_context_for_budget = 4096;  // KV size assumed by --expert-cache auto
  // --lm-head-shadow q8: a q8 copy of lm_head from which greedy decoding finds the exact argmax
  // (runtime/greedy_head.h); costs 1.125 bytes per lm_head weight of memory.
  bool lm_head_shadow = false;
};

class Engine {
 public:
  static Result<std::unique_ptr<Engine>> Open(const EngineOptions& opts);

  const Qwen3MoeConfig& config() const { return weights_->config(); }
  const ModelWeights& weights() const { return *weights_; }
  const EngineOptions& options() const { return opts_; }
  const ExpertSource& expert_source() const { return *expert_source_; }
  // A provider for one Session.
  std::unique_ptr<ExpertProvider> NewExpertProvider() const;
  // The streaming cache, or null in all-resident mode.
  ExpertCache* expert_cache() const { return cache_.get(); }
  // Every expert in memory, or null in streaming mode.
  const ResidentExperts* resident_experts() const { return resident_.get(); }
  // Effective top-k after overrides.
  int64_t top_k() const;
  // The q8 lm_head copy for exact greedy decoding, or null without --lm-head-shadow.
  const GreedyHead* greedy_head() const { return greedy_head_.get(); }

 private:
  Engine() = default;
  EngineOptions opts_;
  std::unique_ptr<Checkpoint> checkpoint_;
  std::unique_ptr<ModelWeights> weights_;
  std::unique_ptr<ExpertSource> expert_source_;
  std::unique_ptr<ResidentExperts> resident_;
  std::unique_ptr<ExpertCache> cache_;
  std::unique_ptr<GreedyHead> greedy_head_;
  Status OpenExperts();  // engine_experts.cc
  Status OpenStoreSource(const ExpertGeometry& g);
};

}  // namespace moe
