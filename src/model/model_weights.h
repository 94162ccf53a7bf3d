// SPDX-License-Identifier: Apache-2.0
// Binds a checkpoint to a Qwen3MoeConfig: checks that every tensor the config implies is present
// with the expected shape and a supported dtype (bad-inputs B5, B6, A10), loads the dense weights
// into memory the process owns, and describes where each routed expert's gate/up/down live
// (per-expert, fused [E,2I,H]/[E,H,I], or transposed fused [E,H,2I]/[E,I,H]; spec §1.3).
// Experts are NOT loaded here: an ExpertSource reads them on demand.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "formats/hf_config.h"
#include "formats/safetensors.h"
#include "formats/tensor_slice.h"
#include "kernels/kernels.h"
#include "util/huge_buffer.h"
#include "util/status.h"

namespace moe {

// A dense tensor resident in the process's memory, in its stored type. View into the arena.
struct DenseTensor {
  kernels::WeightView view;  // 1-D tensors have rows = 1
  std::string name;
};

struct AttentionWeights {
  DenseTensor q_proj;  // [Hq*d, H]
  DenseTensor k_proj;  // [Hkv*d, H]
  DenseTensor v_proj;  // [Hkv*d, H]
  DenseTensor o_proj;  // [H, Hq*d]
  DenseTensor q_norm;  // [d]
  DenseTensor k_norm;  // [d]
};

struct LayerWeights {
  DenseTensor input_layernorm;           // [H]
  DenseTensor post_attention_layernorm;  // [H]
  AttentionWeights attn;
  bool is_moe = false;
  DenseTensor router;     // [E, H] (MoE layers)
  DenseTensor mlp_gate;   // [I_dense, H] (dense layers)
  DenseTensor mlp_up;     // [I_dense, H]
  DenseTensor mlp_down;   // [H, I_dense]
};

// Where one routed expert's three matrices are stored (formats/tensor_slice.h).
using ExpertLocation = ExpertSlices;

struct BindOptions {
  bool load_dense = true;  // false: validate and locate only (inspect, convert)
  // false: routed experts are not in this checkpoint (a converted expert store keeps them in
  // experts.bin); expert_table() stays empty.
  bool locate_experts = true;
  // Refuse (kResourceExhausted, before allocating) when the dense weights need more bytes than
  // this; 0 = no limit. Engine passes MemAvailable (bad-inputs.md C4, P1).
  uint64_t max_dense_bytes = 0;
  // Progress of the dense-weight load (bytes, MB/s, ETA) is drawn here when the dense weights
  // are at least progress_min_bytes; nullptr = silent.
  FILE* progress = nullptr;
  uint64_t progress_min_bytes = 256ull << 20;
  // perf: kQ8/kQ4 block-quantize, while loading, the dense matrices that only feed MatMul: the
  // attention projections, dense-layer MLPs and an untied lm_head. The router (expert choice),
  // norms and embedding keep their stored type. nullopt = every tensor as stored.
  std::optional<kernels::WeightType> dense_quant;
  uint64_t dense_quant_chunk_bytes = 4u << 20;  // source bytes read per step (tests shrink it)
  // perf: the same MatMul-only matrices (quantized or not) are rewritten at load into the
  // tiled layout (kernels.h: one sequential stream per decode tile) where kernels::CanTile
  // allows. MatMul results are identical either way; false keeps them row-major.
  bool tile_dense = true;
};

// Owns the dense weights. Immutable after Bind; thread-safe.
class ModelWeights {
 public:
  static Result<std::unique_ptr<ModelWeights>> Bind(const Qwen3MoeConfig& cfg,
                                                    const Checkpoint& ckpt,
                                                    const BindOptions& opts = {});

  const Qwen3MoeConfig& config() const { return cfg_; }
  const DenseTensor& embed() const { return embed_; }      // [V, H]
  const DenseTensor& final_norm() const { return norm_; }  // [H]
  const DenseTensor& lm_head() const { return lm_head_; }  // [V, H] (embed when tied)
  const LayerWeights& layer(int64_t l) const { return layers_[static_cast<size_t>(l)]; }
  // Experts of MoE layer l, indexed by expert id; empty for dense layers.
  const std::vector<ExpertLocation>& experts(int64_t l) const {
    return experts_[static_cast<size_t>(l)];
  }
  const std::vector<std::vector<ExpertLocation>>& expert_table() const { return experts_; }
  // dtype shared by every expert matrix.
  DType expert_dtype() const { return expert_dtype_; }
  uint64_t dense_bytes() const { return arena_bytes_; }

 private:
  ModelWeights() = default;

  Qwen3MoeConfig cfg_;
  HugeBuffer arena_;
  uint64_t arena_bytes_ = 0;
  DenseTensor embed_, norm_, lm_head_;
  std::vector<LayerWeights> layers_;
  std::vector<std::vector<ExpertLocation>> experts_;
  DType expert_dtype_ = DType::kBF16;

  friend class WeightBinder;
};

// Converts a compute dtype (BF16/F16/F32) to the kernels' weight type.
kernels::WeightType ToWeightType(DType t);

// Names of the dense (non-expert) tensors `w` binds: what `convert` copies into the store's
// model.safetensors. The lm_head is left out when tied to the embedding.
std::vector<std::string> DenseTensorNames(const ModelWeights& w);

}  // namespace moe
