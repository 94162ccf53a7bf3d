// SPDX-License-Identifier: Apache-2.0
// Block quantization of weight rows (kernels.h kQ8/kQ4): scalar and deterministic, used by
// `moestream convert --quant` and by the tests.
#include <cmath>
#include <cstring>

#include "kernels/kernels.h"

namespace moe::kernels {
namespace {

// std::lround for |v| < 2^31 without the libm call (10x faster here): v + ±0.5 is exact in
// double for any float v of that size, and the conversion truncates toward zero, so halves
// round away from zero as lround does. Quantized values stay within ±(qmax + 1).
inline long RoundHalfAwayFromZero(float v) {
  const double d = static_cast<double>(v);
  return static_cast<long>(d + (d < 0 ? -0.5 : 0.5));
}

}  // namespace

void QuantizeRow(const float* src, size_t n, WeightType t, void* dst) {
  const int qmax = t == WeightType::kQ8 ? 127 : 7;
  const size_t nb = (n + kQuantBlock - 1) / kQuantBlock;
  auto* p = static_cast<uint8_t*>(dst);
  const size_t bb = QuantBlockBytes(t);
  for (size_t b = 0; b < nb; ++b, p += bb) {
    const size_t base = b * kQuantBlock;
    const size_t len = n - base < kQuantBlock ? n - base : kQuantBlock;
    float amax = 0.f;
    for (size_t j = 0; j < len; ++j) {
      const float a = std::fabs(src[base + j]);
      amax = a > amax ? a : amax;  // std::fmax without the libm call: a NaN is skipped too
    }
    const float d = amax / static_cast<float>(qmax);
    const float inv = d > 0 ? 1.0f / d : 0.0f;
    std::memcpy(p, &d, 4);
    int q[kQuantBlock] = {};
    for (size_t j = 0; j < len; ++j) {
      long v = RoundHalfAwayFromZero(src[base + j] * inv);
      if (v > qmax) v = qmax;
      if (v < -qmax - (t == WeightType::kQ4 ? 1 : 0)) v = -qmax - (t == WeightType::kQ4 ? 1 : 0);
      q[j] = static_cast<int>(v);
    }
    if (t == WeightType::kQ8) {
      for (size_t j = 0; j < kQuantBlock; ++j) p[4 + j] = static_cast<uint8_t>(static_cast<int8_t>(q[j]));
    } else {
      for (size_t j = 0; j < 16; ++j) {
        p[4 + j] = static_cast<uint8_t>((q[j] + 8) | ((q[j + 16] + 8) << 4));
      }
    }
  }
}

void QuantizeRows(const void* src, WeightType src_type, size_t rows, size_t cols, WeightType t,
                  void* dst, float* scratch) {
  const size_t in_row = WeightMatrixBytes(src_type, 1, cols);
  const size_t out_row = WeightMatrixBytes(t, 1, cols);
  for (size_t r = 0; r < rows; ++r) {
    ToFloat(static_cast<const char*>(src) + r * in_row, src_type, cols, scratch);
    QuantizeRow(scratch, cols, t, static_cast<char*>(dst) + r * out_row);
  }
}

}  // namespace moe::kernels
