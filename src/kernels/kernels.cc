// SPDX-License-Identifier: Apache-2.0
// Dispatch of the public kernels. Until the Highway targets land, the portable implementation
// below is a float-accumulating, 8-lane-blocked loop that compilers vectorise; its per-element
// operation order is fixed, so results do not depend on n_tokens, row ranges or threads.
#include "kernels/kernels.h"

#include <cmath>
#include <algorithm>

#include "kernels/reference.h"

namespace moe::kernels {
namespace {

constexpr size_t kLanes = 8;

constexpr size_t kChunk = 256;  // weights converted to f32 per step, on the stack

// Σ w[c]·x[c] over one row, in kLanes interleaved partial sums, then a fixed reduction.
float DotRow(const WeightView& w, size_t r, const float* x) {
  float acc[kLanes] = {};
  float buf[kChunk];
  const size_t bytes = WeightTypeBytes(w.type);
  const char* row = static_cast<const char*>(w.data) + r * w.cols * bytes;
  for (size_t c0 = 0; c0 < w.cols; c0 += kChunk) {
    const size_t n = std::min(kChunk, w.cols - c0);
    const float* wr;
    if (w.type == WeightType::kF32) {
      wr = reinterpret_cast<const float*>(row) + c0;
    } else {
      ToFloat(row + c0 * bytes, w.type, n, buf);
      wr = buf;
    }
    const float* xc = x + c0;
    size_t i = 0;
    for (; i + kLanes <= n; i += kLanes) {
      for (size_t l = 0; l < kLanes; ++l) acc[l] += wr[i + l] * xc[i + l];
    }
    for (; i < n; ++i) acc[(c0 + i) % kLanes] += wr[i] * xc[i];
  }
  float s = 0.f;
  for (size_t l = 0; l < kLanes; ++l) s += acc[l];
  return s;
}

}  // namespace

void ToFloat(const void* src, WeightType type, size_t n, float* dst) {
  if (type == WeightType::kBF16) {
    const auto* s = static_cast<const uint16_t*>(src);
    for (size_t i = 0; i < n; ++i) {
      uint32_t bits = static_cast<uint32_t>(s[i]) << 16;
      __builtin_memcpy(&dst[i], &bits, 4);
    }
    return;
  }
  for (size_t i = 0; i < n; ++i) dst[i] = reference::LoadWeight(src, type, i);
}

void MatMul(const WeightView& w, const float* x, size_t n_tokens, size_t x_stride, float* y,
            size_t y_stride, size_t row_begin, size_t row_end) {
  for (size_t r = row_begin; r < row_end; ++r) {
    for (size_t t = 0; t < n_tokens; ++t) y[t * y_stride + r] = DotRow(w, r, x + t * x_stride);
  }
}

void RmsNorm(const float* x, const void* w, WeightType w_type, size_t n, float eps, float* out) {
  float ss = 0.f;
  for (size_t i = 0; i < n; ++i) ss += x[i] * x[i];
  const float inv = 1.0f / std::sqrt(ss / static_cast<float>(n) + eps);
  for (size_t i = 0; i < n; ++i) out[i] = x[i] * inv * reference::LoadWeight(w, w_type, i);
}

void SiluMul(float* gate, const float* up, size_t n) { reference::SiluMul(gate, up, n); }

void Softmax(float* x, size_t n) { reference::Softmax(x, n); }

const char* TargetName() { return "portable"; }

}  // namespace moe::kernels
