// SPDX-License-Identifier: Apache-2.0
#include "runtime/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace moe {
namespace {

// YaRN's magnitude correction g(s, m) = 0.1·m·ln(s) + 1 for s > 1, else 1.
double YarnMscale(double scale, double mscale) {
  return scale <= 1.0 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0;
}

}  // namespace

RopeTable::RopeTable(const Qwen3MoeConfig& cfg, int64_t max_positions) {
  const int64_t dim = cfg.head_dim;
  half_ = dim / 2;
  const float base = static_cast<float>(cfg.rope_theta);
  std::vector<float> pos_freqs(static_cast<size_t>(half_));
  for (int64_t i = 0; i < half_; ++i) {
    pos_freqs[static_cast<size_t>(i)] =
        std::pow(base, static_cast<float>(2 * i) / static_cast<float>(dim));
  }
  inv_freq_.resize(static_cast<size_t>(half_));
  const RopeScaling& rs = cfg.rope_scaling;
  if (rs.type == RopeScaling::Type::kYarn) {
    const double factor = rs.factor;
    const double orig = rs.original_max_position_embeddings > 0
                            ? rs.original_max_position_embeddings
                            : static_cast<double>(cfg.max_position_embeddings);
    if (rs.attention_factor > 0) {
      attention_factor_ = static_cast<float>(rs.attention_factor);
    } else if (rs.mscale > 0 && rs.mscale_all_dim > 0) {
      attention_factor_ =
          static_cast<float>(YarnMscale(factor, rs.mscale) / YarnMscale(factor, rs.mscale_all_dim));
    } else {
      attention_factor_ = static_cast<float>(YarnMscale(factor, 1.0));
    }
    auto corr = [&](double n) {
      return static_cast<double>(dim) * std::log(orig / (n * 2 * std::numbers::pi)) /
             (2 * std::log(cfg.rope_theta));
    };
    double low = corr(rs.beta_fast), high = corr(rs.beta_slow);
    if (rs.truncate) {
      low = std::floor(low);
      high = std::ceil(high);
    }
    low = std::max(low, 0.0);
    high = std::min(high, static_cast<double>(dim - 1));
    if (low == high) high += 0.001;
    for (int64_t j = 0; j < half_; ++j) {
      const float ramp = std::clamp(
          static_cast<float>((static_cast<double>(j) - low) / (high - low)), 0.0f, 1.0f);
      const float extrap_weight = 1.0f - ramp;
      const float pf = pos_freqs[static_cast<size_t>(j)];
      const float interp = 1.0f / (static_cast<float>(factor) * pf);
      const float extrap = 1.0f / pf;
      inv_freq_[static_cast<size_t>(j)] = interp * (1.0f - extrap_weight) + extrap * extrap_weight;
    }
  } else {
    for (int64_t j = 0; j < half_; ++j) {
      inv_freq_[static_cast<size_t>(j)] = 1.0f / pos_freqs[static_cast<size_t>(j)];
    }
  }
  cos_.resize(static_cast<size_t>(max_positions * half_));
  sin_.resize(cos_.size());
  for (int64_t p = 0; p < max_positions; ++p) {
    for (int64_t j = 0; j < half_; ++j) {
      const float f = static_cast<float>(p) * inv_freq_[static_cast<size_t>(j)];
      cos_[static_cast<size_t>(p * half_ + j)] = std::cos(f) * attention_factor_;
      sin_[static_cast<size_t>(p * half_ + j)] = std::sin(f) * attention_factor_;
    }
  }
}

void RopeTable::Apply(float* x, int64_t pos) const {
  const float* c = cos_.data() + pos * half_;
  const float* s = sin_.data() + pos * half_;
  for (int64_t i = 0; i < half_; ++i) {
    const float a = x[i], b = x[i + half_];
    x[i] = a * c[i] - b * s[i];
    x[i + half_] = b * c[i] + a * s[i];
  }
}

}  // namespace moe
