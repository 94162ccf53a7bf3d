// SPDX-License-Identifier: Apache-2.0
// Input: config.json text.
#include <string_view>

#include "formats/hf_config.h"
#include "fuzz_targets.h"

namespace moe::fuzz {

int HfConfig(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto c = ParseHfConfig(text, "config.json");
  if (!c.ok()) {
    FUZZ_CHECK(c.status().message().find('\n') == std::string::npos);
    return 0;
  }
  // Accepted configs satisfy the documented bounds (C2-C4), so later size arithmetic is safe.
  FUZZ_CHECK(c->vocab_size > 0 && c->vocab_size <= kMaxVocab);
  FUZZ_CHECK(c->hidden_size > 0 && c->hidden_size <= kMaxHidden);
  FUZZ_CHECK(c->num_hidden_layers > 0 && c->num_hidden_layers <= kMaxLayers);
  FUZZ_CHECK(c->num_attention_heads > 0 && c->num_attention_heads <= kMaxHeads);
  FUZZ_CHECK(c->num_key_value_heads > 0 && c->num_attention_heads % c->num_key_value_heads == 0);
  FUZZ_CHECK(c->head_dim > 0 && c->head_dim <= kMaxHeadDim);
  FUZZ_CHECK(c->num_experts >= 0 && c->num_experts <= kMaxExperts);
  FUZZ_CHECK(c->num_experts == 0 || (c->num_experts_per_tok > 0 &&
                                     c->num_experts_per_tok <= c->num_experts));
  FUZZ_CHECK(c->moe_intermediate_size >= 0 && c->moe_intermediate_size <= kMaxIntermediate);
  FUZZ_CHECK(c->intermediate_size >= 0 && c->intermediate_size <= kMaxIntermediate);
  for (int64_t l = 0; l < c->num_hidden_layers; ++l) (void)c->IsMoeLayer(l);
  return 0;
}

}  // namespace moe::fuzz
