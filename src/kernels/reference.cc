// SPDX-License-Identifier: Apache-2.0
#include "kernels/reference.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

namespace moe::kernels {

size_t WeightTypeBytes(WeightType t) {
  switch (t) {
    case WeightType::kF32: return 4;
    case WeightType::kBF16: return 2;
    case WeightType::kF16: return 2;
    case WeightType::kQ8:
    case WeightType::kQ4: return 0;
  }
  return 0;
}

uint64_t WeightMatrixBytes(WeightType t, size_t rows, size_t cols) {
  if (IsQuantized(t)) return static_cast<uint64_t>(rows) * QuantRowBytes(t, cols);
  return static_cast<uint64_t>(rows) * cols * WeightTypeBytes(t);
}

const char* WeightTypeName(WeightType t) {
  switch (t) {
    case WeightType::kF32: return "f32";
    case WeightType::kBF16: return "bf16";
    case WeightType::kF16: return "f16";
    case WeightType::kQ8: return "q8";
    case WeightType::kQ4: return "q4";
  }
  return "?";
}

namespace reference {
namespace {

float Bf16ToF32(uint16_t v) {
  uint32_t bits = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

float F16ToF32(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: renormalise
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400) == 0);
      bits = sign | ((127 - 15 - e) << 23) | ((mant & 0x3ff) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

}  // namespace

float LoadWeight(const void* data, WeightType type, size_t index) {
  switch (type) {
    case WeightType::kF32: return static_cast<const float*>(data)[index];
    case WeightType::kBF16: return Bf16ToF32(static_cast<const uint16_t*>(data)[index]);
    case WeightType::kF16: return F16ToF32(static_cast<const uint16_t*>(data)[index]);
    case WeightType::kQ8:
    case WeightType::kQ4: return 0.f;  // quantized: use DequantizeRow (rows are blocked)
  }
  return 0.f;
}

void DequantizeRow(const void* data, WeightType type, size_t cols, size_t row, float* out) {
  const size_t nb = (cols + kQuantBlock - 1) / kQuantBlock;
  const auto* p = static_cast<const uint8_t*>(data) + row * QuantRowBytes(type, cols);
  const size_t bb = QuantBlockBytes(type);
  for (size_t b = 0; b < nb; ++b, p += bb) {
    float d;
    std::memcpy(&d, p, 4);
    for (size_t j = 0; j < kQuantBlock && b * kQuantBlock + j < cols; ++j) {
      int q;
      if (type == WeightType::kQ8) {
        q = static_cast<int8_t>(p[4 + j]);
      } else {
        const uint8_t byte = p[4 + (j % 16)];
        q = (j < 16 ? (byte & 0xF) : (byte >> 4)) - 8;
      }
      out[b * kQuantBlock + j] = d * static_cast<float>(q);
    }
  }
}

void MatMul(const WeightView& w, const float* x, size_t n_tokens, size_t x_stride, float* y,
            size_t y_stride, size_t row_begin, size_t row_end) {
  if (IsQuantized(w.type)) {
    std::vector<float> row(w.cols);
    for (size_t r = row_begin; r < row_end; ++r) {
      DequantizeRow(w.data, w.type, w.cols, r, row.data());
      for (size_t t = 0; t < n_tokens; ++t) {
        double acc = 0.0;
        for (size_t c = 0; c < w.cols; ++c) acc += static_cast<double>(row[c]) * x[t * x_stride + c];
        y[t * y_stride + r] = static_cast<float>(acc);
      }
    }
    return;
  }
  for (size_t t = 0; t < n_tokens; ++t) {
    const float* xt = x + t * x_stride;
    for (size_t r = row_begin; r < row_end; ++r) {
      double acc = 0.0;  // the oracle accumulates in double
      for (size_t c = 0; c < w.cols; ++c) {
        acc += static_cast<double>(LoadWeight(w.data, w.type, r * w.cols + c)) * xt[c];
      }
      y[t * y_stride + r] = static_cast<float>(acc);
    }
  }
}

void QuantizeRow(const float* src, size_t n, WeightType t, void* dst) {
  const long qmax = t == WeightType::kQ8 ? 127 : 7, qmin = t == WeightType::kQ8 ? -127 : -8;
  const size_t nb = (n + kQuantBlock - 1) / kQuantBlock;
  auto* p = static_cast<uint8_t*>(dst);
  const size_t bb = QuantBlockBytes(t);
  for (size_t b = 0; b < nb; ++b, p += bb) {
    const size_t base = b * kQuantBlock;
    const size_t len = std::min(kQuantBlock, n - base);
    float amax = 0.f;
    bool finite = true;
    for (size_t j = 0; j < len; ++j) {
      finite = finite && std::isfinite(src[base + j]);
      amax = std::max(amax, std::fabs(src[base + j]));
    }
    long q[kQuantBlock] = {};
    float d = std::numeric_limits<float>::quiet_NaN();  // a non-finite block: NaN, q = 0
    if (finite) {
      d = amax / static_cast<float>(qmax);
      const float inv = d > 0 ? 1.0f / d : 0.0f;
      for (size_t j = 0; j < len; ++j) {
        // x · (1/d), or x / d where 1/d overflows (tiny subnormal d); std::lround rounds
        // halves away from zero.
        const float s = std::isinf(inv) ? src[base + j] / d : src[base + j] * inv;
        q[j] = std::clamp(std::lround(s), qmin, qmax);
      }
    }
    std::memcpy(p, &d, 4);
    for (size_t j = 0; j < bb - 4; ++j) {
      p[4 + j] = t == WeightType::kQ8
                     ? static_cast<uint8_t>(static_cast<int8_t>(q[j]))
                     : static_cast<uint8_t>((q[j] + 8) | ((q[j + 16] + 8) << 4));
    }
  }
}

void QuantizeActs(const float* x, size_t n_tokens, size_t x_stride, size_t cols, int16_t* q,
                  float* d) {
  const size_t nb = ActBlocks(cols);
  for (size_t t = 0; t < n_tokens; ++t) {
    for (size_t b = 0; b < nb; ++b) {
      const size_t c0 = b * kQuantBlock, len = std::min(kQuantBlock, cols - c0);
      const float* xb = x + t * x_stride + c0;
      int16_t* qb = q + (t * nb + b) * kQuantBlock;
      float m = 0.f;
      bool finite = true;
      for (size_t j = 0; j < len; ++j) {
        if (!std::isfinite(xb[j])) finite = false;
        m = std::max(m, std::fabs(xb[j]));
      }
      float scale = finite ? m / 32767.0f : std::numeric_limits<float>::quiet_NaN();
      if (finite && !(scale > 0.f)) scale = 0.f;
      for (size_t j = 0; j < kQuantBlock; ++j) {
        float v = 0.f;
        if (j < len && scale > 0.f) v = std::nearbyint(xb[j] / scale);
        qb[j] = static_cast<int16_t>(std::min(32767.f, std::max(-32767.f, v)));
      }
      d[t * nb + b] = scale;
    }
  }
}

void MatMulQuantizedActs(const WeightView& w, const int16_t* xq, const float* xd, size_t n_tokens,
                         float* y, size_t y_stride, size_t row_begin, size_t row_end) {
  const size_t nb = ActBlocks(w.cols), bb = QuantBlockBytes(w.type);
  const auto* base = static_cast<const uint8_t*>(w.data);
  for (size_t r = row_begin; r < row_end; ++r) {
    const uint8_t* row = base + r * QuantRowBytes(w.type, w.cols);
    for (size_t t = 0; t < n_tokens; ++t) {
      double acc = 0.0;
      for (size_t b = 0; b < nb; ++b) {
        const uint8_t* blk = row + b * bb;
        float dw;
        std::memcpy(&dw, blk, 4);
        int64_t sum = 0;
        for (size_t j = 0; j < kQuantBlock; ++j) {
          const int qw = w.type == WeightType::kQ8
                             ? static_cast<int8_t>(blk[4 + j])
                             : (j < 16 ? blk[4 + j] & 15 : blk[4 + j - 16] >> 4) - 8;
          sum += static_cast<int64_t>(qw) * xq[(t * nb + b) * kQuantBlock + j];
        }
        acc += static_cast<double>(sum) * static_cast<double>(dw * xd[t * nb + b]);
      }
      y[t * y_stride + r] = static_cast<float>(acc);
    }
  }
}

void RmsNorm(const float* x, const void* w, WeightType w_type, size_t n, float eps, float* out) {
  double ss = 0.0;
  for (size_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float inv = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + eps));
  for (size_t i = 0; i < n; ++i) out[i] = x[i] * inv * LoadWeight(w, w_type, i);
}

void SiluMul(float* gate, const float* up, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const float g = gate[i];
    gate[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void Softmax(float* x, size_t n) {
  if (n == 0) return;
  float mx = x[0];
  for (size_t i = 1; i < n; ++i) mx = std::fmax(mx, x[i]);
  double sum = 0.0;
  for (size_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (size_t i = 0; i < n; ++i) x[i] *= inv;
}

void ToFloat(const void* src, WeightType type, size_t n, float* dst) {
  if (IsQuantized(type)) return DequantizeRow(src, type, n, 0, dst);
  for (size_t i = 0; i < n; ++i) dst[i] = LoadWeight(src, type, i);
}

float Dot(const float* a, const float* b, size_t n) {
  double acc = 0.0;
  for (size_t i = 0; i < n; ++i) acc += static_cast<double>(a[i]) * b[i];
  return static_cast<float>(acc);
}

void Axpy(float a, const float* x, float* y, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i] = static_cast<float>(static_cast<double>(a) * x[i] + y[i]);
}

void Scale(float a, float* x, size_t n) {
  for (size_t i = 0; i < n; ++i) x[i] *= a;
}

void AttentionScores(const AttentionScoresArgs& args, float* scores) {
  for (size_t h = 0; h < args.n_heads; ++h) {
    const float* q = args.q + h * args.head_dim;
    for (size_t j = 0; j < args.n_keys; ++j) {
      double dot = 0.0;
      for (size_t d = 0; d < args.head_dim; ++d) {
        dot += static_cast<double>(q[d]) * args.k[KeyTileIndex(j, d, args.head_dim)];
      }
      scores[h * args.scores_stride + j] = static_cast<float>(dot * args.scale);
    }
  }
}

void AttentionWeightedSum(const AttentionWeightedSumArgs& a) {
  for (size_t h = 0; h < a.n_heads; ++h) {
    for (size_t d = 0; d < a.head_dim; ++d) {
      double acc = a.out[h * a.out_stride + d];
      for (size_t j = 0; j < a.n_keys; ++j) {
        acc += static_cast<double>(a.p[h * a.p_stride + j]) * a.v[j * a.v_stride + d];
      }
      a.out[h * a.out_stride + d] = static_cast<float>(acc);
    }
  }
}

void RopeRotateHalf(float* x, const float* cos, const float* sin, size_t head_dim) {
  const size_t h = head_dim / 2;
  for (size_t i = 0; i < h; ++i) {
    const double a = x[i], b = x[i + h];
    x[i] = static_cast<float>(a * cos[i] - b * sin[i]);
    x[i + h] = static_cast<float>(b * cos[i] + a * sin[i]);
  }
}

}  // namespace reference
}  // namespace moe::kernels
