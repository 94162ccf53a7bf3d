// SPDX-License-Identifier: Apache-2.0
// Dispatch of the public kernels. Until the Highway targets land, the portable implementation
// below is a float-accumulating, 8-lane-blocked loop that compilers vectorise; its per-element
// operation order is fixed, so results do not depend on n_tokens, row ranges or threads.
#include "kernels/kernels.h"

#include <cmath>
#include <vector>

#include "kernels/reference.h"

namespace moe::kernels {
namespace {

constexpr size_t kLanes = 8;

// Converts one row of weights to f32 in `buf` (cols floats), then returns a pointer to f32 data.
const float* RowAsFloat(const WeightView& w, size_t r, float* buf) {
  if (w.type == WeightType::kF32) return static_cast<const float*>(w.data) + r * w.cols;
  ToFloat(static_cast<const char*>(w.data) + r * w.cols * WeightTypeBytes(w.type), w.type, w.cols,
          buf);
  return buf;
}

float DotBlocked(const float* a, const float* b, size_t n) {
  float acc[kLanes] = {};
  size_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (size_t l = 0; l < kLanes; ++l) acc[l] += a[i + l] * b[i + l];
  }
  for (size_t l = 0; i < n; ++i, ++l) acc[l] += a[i] * b[i];
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
  // Row-major outer loop so each weight row is converted once and reused for every token.
  thread_local std::vector<float> buf;
  if (buf.size() < w.cols) buf.resize(w.cols);
  for (size_t r = row_begin; r < row_end; ++r) {
    const float* wr = RowAsFloat(w, r, buf.data());
    for (size_t t = 0; t < n_tokens; ++t) {
      y[t * y_stride + r] = DotBlocked(wr, x + t * x_stride, w.cols);
    }
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
