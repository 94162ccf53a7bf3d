// SPDX-License-Identifier: Apache-2.0
#include "model_flags.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "util/file.h"
#include "util/thread_pool.h"

namespace moe::app {

void ModelFlags::Register(Flags& f) {
  f.String("model", &engine.model_dir, "Hugging Face model folder or converted store (default: the bundled models/qwen3-moe-ref)");
  f.Int("threads", &threads, "compute threads (default: all CPUs)");
  f.Int("ctx", &session.max_context, "maximum context length in tokens (default 4096)");
  f.Int("batch", &session.max_batch,
        "prefill batch size in tokens (default 512): a streamed expert is read once per batch");
  f.Custom("expert-mask",
           [this](const std::string& v) -> Status {
             MOE_ASSIGN_OR_RETURN(engine.expert_mask, ParseRangeList(v, "expert-mask"));
             return Status::Ok();
           },
           "restrict the router to these experts, e.g. 0-7 (analysis only: not exact)", "LIST");
  f.Int("top-k", &engine.top_k_override, "override experts per token (analysis only: not exact)");
  RegisterExpertFlags(f);
}

// --- Expert streaming flags (experts/ owner). ---
void ModelFlags::RegisterExpertFlags(Flags& f) {
  f.String("expert-cache", &engine.expert_cache,
           "stream experts through a cache of SIZE bytes (K/M/G suffix) or 'auto' (70% of "
           "MemAvailable after dense weights and KV); default: all experts resident");
  f.Custom("cache-policy",
           [this](const std::string& v) -> Status {
             MOE_ASSIGN_OR_RETURN(engine.cache_policy, ParsePolicyKind(v));
             return Status::Ok();
           },
           "expert cache replacement: lru (default), lfu, layer", "POLICY");
  f.Custom("cache-fill",
           [this](const std::string& v) -> Status {
             if (v != "on" && v != "off") {
               return Error(StatusCode::kUsage, "--cache-fill '{}': expected on or off", v);
             }
             engine.cache_fill = v == "on";
             return Status::Ok();
           },
           "while the expert cache has free slots, read experts not yet cached into them in the "
           "background, below every other read: on (default) or off", "MODE");
  f.Custom("dense-quant",
           [this](const std::string& v) -> Status {
             if (v == "q8") {
               engine.dense_quant = kernels::WeightType::kQ8;
             } else if (v == "q4") {
               engine.dense_quant = kernels::WeightType::kQ4;
             } else {
               return Error(StatusCode::kUsage, "--dense-quant '{}': expected q8 or q4", v);
             }
             return Status::Ok();
           },
           "block-quantize the dense MatMul weights at load (attention, dense MLP, lm_head; not "
           "the router, norms or embedding): less memory and bandwidth, lossy", "TYPE");
  f.Custom("lm-head-shadow",
           [this](const std::string& v) -> Status {
             if (v != "q8" && v != "off") {
               return Error(StatusCode::kUsage, "--lm-head-shadow '{}': expected q8 or off", v);
             }
             engine.lm_head_shadow = v == "q8";
             lm_head_shadow_default = false;
             return Status::Ok();
           },
           "greedy and top-k decoding read a q8 copy of lm_head and only the rows that can hold "
           "the k largest logits: the same tokens, fewer bytes per token, 1.125 bytes per "
           "lm_head weight more memory: q8 or off (default: q8 for greedy or top-k generate "
           "and chat, else off)", "MODE");
  f.Custom("weight-layout",
           [this](const std::string& v) -> Status {
             if (v != "tiles" && v != "rows") {
               return Error(StatusCode::kUsage, "--weight-layout '{}': expected tiles or rows", v);
             }
             engine.tile_weights = v == "tiles";
             return Status::Ok();
           },
           "resident MatMul weights in memory: tiles (default: 8-row tiles, one stream per "
           "decode tile) or rows (as stored); results are identical", "LAYOUT");
  f.Custom("io",
           [this](const std::string& v) -> Status {
             MOE_TRY(ParseIoMode(v).status());  // the engine parses it again at open
             engine.io_mode = v;
             return Status::Ok();
           },
           "streamed expert reads (HF shards or a converted store): direct (O_DIRECT), "
           "buffered (through the page cache) or auto (default: O_DIRECT where the file "
           "system allows it)", "MODE");
  f.Custom("verify-reads",
           [this](const std::string& v) -> Status {
             MOE_ASSIGN_OR_RETURN(engine.verify_reads, ParseVerifyReads(v));
             return Status::Ok();
           },
           "expert block checksums of a converted store: first (default: each block is hashed "
           "until it has matched once, re-reads skip the hash) or every (each read)", "WHEN");
  f.Int("io-threads", &engine.io_threads, "expert I/O threads (default 4)");
  f.Int("io-depth", &engine.io_depth,
        "expert reads moving bytes at once (default 0 = --io-threads); a block's checksum "
        "runs outside this limit, so the next read uses the device meanwhile");
  f.Int("io-timeout-ms", &engine.io_timeout_ms,
        "fail a request whose expert read or cache slot waits longer (default 120000)");
  f.Custom("prefetch",
           [this](const std::string& v) -> Status {
             MOE_ASSIGN_OR_RETURN(engine.prefetch, ParsePrefetchMode(v));
             return Status::Ok();
           },
           "when streaming, read the next layer's experts early by router lookahead: auto "
           "(default: a layer's predictions are read while they have been right at least 60% of "
           "the time), on (always), off", "MODE");
  f.String("stats-json", &stats_json, "write expert cache statistics (JSON) to FILE");
}

Status ModelFlags::ReportExpertStats(const Engine& e, bool print) const {
  if (!e.expert_cache()) {
    if (!stats_json.empty()) {
      const std::string none = fmt::format("{{\"mode\":\"resident\",\"vm_hwm_bytes\":{}}}\n",
                                           PeakRssBytes());
      return WriteFileAtomic(stats_json, none.data(), none.size());
    }
    return Status::Ok();
  }
  const CacheStats s = e.expert_cache()->Stats();
  const uint64_t hwm = PeakRssBytes();
  if (print) {
    std::fprintf(stderr, "%s; peak RSS %.1f MiB\n", s.Summary().c_str(), hwm / 1048576.0);
  }
  if (stats_json.empty()) return Status::Ok();
  std::string j = s.Json();
  j.insert(1, fmt::format("\"vm_hwm_bytes\":{},\"dense_bytes\":{},", hwm, e.weights().dense_bytes()));
  return WriteFileAtomic(stats_json, j.data(), j.size());
}

std::string DefaultModelDir() {
  namespace fs = std::filesystem;
  if (const char* env = std::getenv("MOESTREAM_MODEL"); env && *env) return env;
  const char* rel = "models/qwen3-moe-ref";
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    for (const fs::path& base : {exe.parent_path().parent_path(), exe.parent_path()}) {
      if (fs::exists(base / rel / "config.json", ec)) return (base / rel).string();
    }
  }
  return std::string(MOE_SOURCE_DIR) + "/" + rel;
}

Status ModelFlags::ResolveModelDir() {
  if (engine.model_dir.empty()) engine.model_dir = DefaultModelDir();
  return Status::Ok();
}

void ModelFlags::WarnIfLossy() const {
  if (!engine.expert_mask.empty()) {
    std::fprintf(stderr, "warning: --expert-mask restricts routing: output is no longer exact\n");
  }
  if (engine.top_k_override > 0) {
    std::fprintf(stderr, "warning: --top-k overrides the model's top-k: output is no longer exact\n");
  }
}

void ModelFlags::UseLmHeadShadowIfTopK(const SamplingParams& p) {
  if (lm_head_shadow_default && (p.temperature <= 0.0f || p.top_k > 0) && !engine.dense_quant) {
    engine.lm_head_shadow = true;
  }
}

size_t ModelFlags::n_threads() const {
  return threads > 0 ? static_cast<size_t>(threads) : DefaultThreadCount();
}

void SamplingFlags::Register(Flags& f) {
  f.Float("temperature", &params.temperature, "sampling temperature (default 0 = greedy)");
  f.Int("sample-top-k", &params.top_k, "keep the k most likely tokens (0 = off)");
  f.Float("top-p", &params.top_p, "nucleus sampling mass (1 = off)");
  f.Float("min-p", &params.min_p, "drop tokens below min-p × the top probability (0 = off)");
  f.Float("repetition-penalty", &params.repetition_penalty, "HF repetition penalty (1 = off)");
  f.Int("seed", &seed, "random seed (default 0)");
}

}  // namespace moe::app
