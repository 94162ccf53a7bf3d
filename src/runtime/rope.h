// SPDX-License-Identifier: Apache-2.0
// Rotary position embedding, rotate-half (NeoX) pairing i ↔ i + D/2, with optional YaRN
// (spec §2.4, §2.8). cos/sin are computed in f32 as HF does and tabulated per position.
#pragma once

#include <cstdint>
#include <vector>

#include "formats/hf_config.h"

namespace moe {

class RopeTable {
 public:
  // Tabulates positions [0, max_positions). head_dim must be even.
  RopeTable(const Qwen3MoeConfig& cfg, int64_t max_positions);

  // Rotates one head vector x[0..head_dim) in place for absolute position `pos`.
  void Apply(float* x, int64_t pos) const;

  const std::vector<float>& inv_freq() const { return inv_freq_; }
  float attention_factor() const { return attention_factor_; }

 private:
  int64_t half_ = 0;
  std::vector<float> inv_freq_;  // [D/2]
  float attention_factor_ = 1.0f;
  std::vector<float> cos_, sin_;  // [max_positions, D/2]
};

}  // namespace moe
