// SPDX-License-Identifier: Apache-2.0
// Public, target-agnostic CPU kernels. Activations are f32; weights stay in their stored type.
// Kernels are single-threaded and never allocate; callers parallelise over row ranges
// (util/thread_pool.h). Every result element is computed by the same instruction sequence
// whatever n_tokens, the row range or the thread count: prefill, decode and any threading give
// bit-identical outputs.
#pragma once

#include <cstddef>
#include <cstdint>

namespace moe::kernels {

enum class WeightType : uint8_t { kF32, kBF16, kF16 };

size_t WeightTypeBytes(WeightType t);

// A row-major [rows, cols] weight matrix in its stored type. Non-owning.
struct WeightView {
  const void* data = nullptr;
  WeightType type = WeightType::kF32;
  size_t rows = 0;
  size_t cols = 0;
};

// y[t * y_stride + r] = Σ_c w[r, c] · x[t * x_stride + c]
// for t in [0, n_tokens) and r in [row_begin, row_end).
void MatMul(const WeightView& w, const float* x, size_t n_tokens, size_t x_stride, float* y,
            size_t y_stride, size_t row_begin, size_t row_end);

// out[i] = x[i] / sqrt(mean(x²) + eps) · w[i], i < n (HF Qwen3 RMSNorm, weight applied directly).
// `out` may alias `x`.
void RmsNorm(const float* x, const void* w, WeightType w_type, size_t n, float eps, float* out);

// dst[i] = float(src[i]) for i < n.
void ToFloat(const void* src, WeightType type, size_t n, float* dst);

// gate[i] = silu(gate[i]) · up[i], i < n.
void SiluMul(float* gate, const float* up, size_t n);

// In-place softmax over x[0..n).
void Softmax(float* x, size_t n);

// Name of the SIMD target chosen at run time (e.g. "AVX3_ZEN4", "scalar").
const char* TargetName();

}  // namespace moe::kernels
