// SPDX-License-Identifier: Apache-2.0
// config.json (+ generation_config.json) of a Hugging Face MoE checkpoint → a typed, validated
// Qwen3MoeConfig. Field names are HF's. Accepts:
//  - qwen3_moe, transformers 4.x spelling (num_experts, rope_theta, rope_scaling, torch_dtype)
//    and 5.x spelling (num_local_experts, rope_parameters, dtype);
//  - qwen3_omni_moe: the thinker's text decoder from thinker_config.text_config, whose tensors
//    live under "thinker." (tensor_prefix); M-RoPE keys are identity for text (spec §3.3).
// Rejects (kInvalidFormat, naming the key): missing/mistyped keys, non-positive sizes,
// num_experts_per_tok > num_experts, heads not divisible by kv heads, sizes over the sanity
// limits below (checked before anything is allocated), unknown rope type.
// kUnsupported: unknown model_type (listing the supported ones), attention_bias, sliding window.
// auto_map and other remote-code fields are ignored, never executed.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace moe {

struct RopeScaling {
  enum class Type { kDefault, kYarn };
  Type type = Type::kDefault;
  double factor = 1.0;
  double original_max_position_embeddings = 0;  // 0 when absent
  double attention_factor = 0;                  // 0 = derive per spec §2.8
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  double mscale = 0;          // 0 = absent
  double mscale_all_dim = 0;  // 0 = absent
  bool truncate = true;
};

struct Qwen3MoeConfig {
  std::string model_type;     // "qwen3_moe" or "qwen3_omni_moe"
  std::string tensor_prefix;  // "" or "thinker." (Omni)
  std::string dtype;          // torch_dtype / dtype as written ("bfloat16"), may be empty

  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;  // from config, else hidden_size / num_attention_heads
  int64_t intermediate_size = 0;      // dense MLP layers
  int64_t moe_intermediate_size = 0;  // each routed expert
  int64_t num_experts = 0;
  int64_t num_experts_per_tok = 0;
  bool norm_topk_prob = false;  // class default false; checkpoints set true
  int64_t decoder_sparse_step = 1;
  std::vector<int64_t> mlp_only_layers;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  int64_t max_position_embeddings = 0;
  bool tie_word_embeddings = false;

  int64_t bos_token_id = -1;            // -1 when null/absent
  std::vector<int64_t> eos_token_ids;   // union of generation_config.json and config.json

  // Layer i is MoE iff i ∉ mlp_only_layers, num_experts > 0 and (i+1) % decoder_sparse_step == 0.
  bool IsMoeLayer(int64_t layer) const;
};

// Sanity limits: anything larger is treated as a corrupt file (kInvalidFormat) before allocation.
inline constexpr int64_t kMaxVocab = 1 << 24;
inline constexpr int64_t kMaxHidden = 1 << 16;
inline constexpr int64_t kMaxLayers = 1024;
inline constexpr int64_t kMaxHeads = 1024;
inline constexpr int64_t kMaxHeadDim = 1024;
inline constexpr int64_t kMaxIntermediate = 1 << 20;
inline constexpr int64_t kMaxExperts = 4096;

// Parses config.json text. `path` labels messages.
Result<Qwen3MoeConfig> ParseHfConfig(std::string_view json_text, std::string_view path);
// Adds eos ids from generation_config.json text (int or list) to cfg.eos_token_ids, deduplicated.
Status MergeGenerationConfig(std::string_view json_text, std::string_view path, Qwen3MoeConfig* cfg);
// Reads model_dir/config.json and, when present, model_dir/generation_config.json.
Result<Qwen3MoeConfig> LoadHfConfig(const std::string& model_dir);

}  // namespace moe
