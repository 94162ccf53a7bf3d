// SPDX-License-Identifier: Apache-2.0
// HF checkpoint key templates for Qwen3-MoE (spec §1.2), in one place. Omni checkpoints use the
// same names under the "thinker." prefix (Qwen3MoeConfig::tensor_prefix).
#pragma once

#include <fmt/format.h>

#include <string>

namespace moe::names {

inline std::string Embed(const std::string& p) { return p + "model.embed_tokens.weight"; }
inline std::string FinalNorm(const std::string& p) { return p + "model.norm.weight"; }
inline std::string LmHead(const std::string& p) { return p + "lm_head.weight"; }

inline std::string Layer(const std::string& p, int64_t l, const char* rest) {
  return fmt::format("{}model.layers.{}.{}", p, l, rest);
}
// rest examples: "input_layernorm.weight", "self_attn.q_proj.weight", "mlp.gate.weight".

inline std::string Expert(const std::string& p, int64_t l, int64_t e, const char* proj) {
  return fmt::format("{}model.layers.{}.mlp.experts.{}.{}.weight", p, l, e, proj);
}
inline std::string FusedGateUp(const std::string& p, int64_t l) {
  return fmt::format("{}model.layers.{}.mlp.experts.gate_up_proj", p, l);
}
inline std::string FusedDown(const std::string& p, int64_t l) {
  return fmt::format("{}model.layers.{}.mlp.experts.down_proj", p, l);
}

}  // namespace moe::names
