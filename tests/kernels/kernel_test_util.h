// SPDX-License-Identifier: Apache-2.0
// Helpers for the kernel tests: deterministic random data in each weight type, sentinel guard
// regions, error bounds against the scalar reference, and the list of targets to test.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "kernels/reference.h"

namespace moe::kernels::testing {

inline constexpr float kUnitRoundoff = 5.9604645e-8f;  // 2^-24
inline constexpr size_t kGuard = 19;                     // sentinel floats after each output

// A float bit pattern no kernel produces from our inputs (a NaN with a payload).
inline float Sentinel() {
  const uint32_t bits = 0x7fa5dead;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
inline bool IsSentinel(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  return bits == 0x7fa5dead;
}

// Output buffer of n floats followed by kGuard sentinels; every element starts as a sentinel.
struct Guarded {
  explicit Guarded(size_t n) : n(n), buf(n + kGuard, Sentinel()) {}
  float* data() { return buf.data(); }
  bool GuardIntact() const {
    for (size_t i = n; i < buf.size(); ++i) {
      if (!IsSentinel(buf[i])) return false;
    }
    return true;
  }
  size_t n;
  std::vector<float> buf;
};

inline uint16_t Bf16FromF32(float f) {  // round to nearest even; inputs are finite
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  bits += 0x7fff + ((bits >> 16) & 1);
  return static_cast<uint16_t>(bits >> 16);
}

inline uint16_t F16FromF32(float f) {  // for |f| in [2^-14, 65504], truncating the mantissa
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  const uint32_t sign = (bits >> 16) & 0x8000;
  const int exp = static_cast<int>((bits >> 23) & 0xff) - 127 + 15;
  if (exp <= 0) return static_cast<uint16_t>(sign);  // flush tiny values to ±0
  return static_cast<uint16_t>(sign | (exp << 10) | ((bits >> 13) & 0x3ff));
}

// Weights in `type` as raw bytes; values uniform in [-1, 1].
struct RandomWeights {
  RandomWeights(WeightType type, size_t n, uint32_t seed) : type(type), n(n) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    bytes.resize(n * WeightTypeBytes(type));
    for (size_t i = 0; i < n; ++i) Set(i, dist(rng));
  }
  void Set(size_t i, float v) {
    if (type == WeightType::kF32) {
      std::memcpy(&bytes[i * 4], &v, 4);
    } else {
      const uint16_t h = type == WeightType::kBF16 ? Bf16FromF32(v) : F16FromF32(v);
      std::memcpy(&bytes[i * 2], &h, 2);
    }
  }
  void SetBits16(size_t i, uint16_t h) { std::memcpy(&bytes[i * 2], &h, 2); }
  const void* data() const { return bytes.data(); }
  WeightType type;
  size_t n;
  std::vector<uint8_t> bytes;
};

inline std::vector<float> RandomFloats(size_t n, uint32_t seed, float lo = -1.0f,
                                       float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& f : v) f = dist(rng);
  return v;
}

// Normalised mean squared error Σ(got − want)² / Σ want², over finite `want` entries.
inline double Nmse(const std::vector<double>& got, const std::vector<double>& want) {
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(want[i])) continue;
    num += (got[i] - want[i]) * (got[i] - want[i]);
    den += want[i] * want[i];
  }
  return den == 0.0 ? num : num / den;
}

// Whether `got` matches the oracle `want` of a sum of n products whose magnitudes add up to
// `sum_abs`: NaN ⇔ NaN, equal infinities, else within the f32 summation bound
// (n + 2)·u·sum_abs plus room for subnormal results.
inline bool WithinSumBound(float got, float want, size_t n, double sum_abs) {
  if (std::isnan(want)) return std::isnan(got);
  if (std::isinf(want)) return got == want;
  const double bound = (static_cast<double>(n) + 2) * kUnitRoundoff * sum_abs + 1e-37;
  return std::fabs(static_cast<double>(got) - want) <= bound;
}

// Checks the output `y` of a quantized-weight kernel run over rows [rb, re) of the rows × cols
// matrix `w` (`type`) for nt tokens (row stride y_stride) against the scalar reference's `want`:
// rows outside the range are untouched, rows inside are within the summation bound of
// Σ_c |w[r][c] · x_at(t, c)|, x_at giving the activation the kernel multiplied column c of
// token t by. Fatal failures (ASSERT) stop at the first mismatch.
template <class XAt>
void ExpectRowRangeMatchesReference(const Guarded& y, const std::vector<float>& want,
                                    const void* w, WeightType type, size_t rows, size_t cols,
                                    size_t nt, size_t y_stride, size_t rb, size_t re, XAt x_at) {
  ASSERT_TRUE(y.GuardIntact());
  std::vector<float> row(cols);
  for (size_t r = 0; r < rows; ++r) {
    reference::DequantizeRow(w, type, cols, r, row.data());
    for (size_t t = 0; t < nt; ++t) {
      const float got = y.buf[t * y_stride + r];
      if (r < rb || r >= re) {
        ASSERT_TRUE(IsSentinel(got)) << "wrote outside rows: r=" << r;
        continue;
      }
      double sum_abs = 0;
      for (size_t c = 0; c < cols; ++c) sum_abs += std::fabs(double(row[c]) * x_at(t, c));
      ASSERT_TRUE(WithinSumBound(got, want[t * y_stride + r], cols, sum_abs))
          << "cols=" << cols << " r=" << r << " t=" << t << " got " << got << " want "
          << want[t * y_stride + r];
    }
  }
}

// Parameter name for gtest: the target name.
inline std::string TargetParamName(const ::testing::TestParamInfo<std::string>& info) {
  return info.param;
}

// Forces GetParam()'s target for the duration of each test.
class PerTargetTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    ASSERT_TRUE(ForceTarget(GetParam())) << GetParam();
    ASSERT_EQ(std::string(TargetName()), GetParam());
  }
  void TearDown() override { ASSERT_TRUE(ForceTarget("")); }
};

}  // namespace moe::kernels::testing
