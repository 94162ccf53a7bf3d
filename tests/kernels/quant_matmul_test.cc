// SPDX-License-Identifier: Apache-2.0
// Block-quantized weights (kQ8, kQ4): quantization against an independent per-element model of
// the format, MatMul on every compiled target against the scalar reference (including column
// counts that are not multiples of the block or the vector width), ToFloat, and the
// bit-identity contract of kernels.h.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <thread>
#include <tuple>
#include <vector>

#include "kernel_test_util.h"
#include "kernels/kernels.h"
#include "kernels/reference.h"

namespace moe::kernels::testing {
namespace {

using Param = std::tuple<std::string, WeightType>;

std::vector<uint8_t> Quantize(const std::vector<float>& src, size_t rows, size_t cols,
                              WeightType t) {
  std::vector<uint8_t> out(WeightMatrixBytes(t, rows, cols), 0xEE);
  for (size_t r = 0; r < rows; ++r) {
    QuantizeRow(&src[r * cols], cols, t, out.data() + r * QuantRowBytes(t, cols));
  }
  return out;
}

TEST(QuantFormatTest, Sizes) {
  EXPECT_EQ(WeightMatrixBytes(WeightType::kQ8, 3, 64), 3u * 2 * 36);
  EXPECT_EQ(WeightMatrixBytes(WeightType::kQ4, 3, 64), 3u * 2 * 20);
  EXPECT_EQ(WeightMatrixBytes(WeightType::kQ8, 1, 33), 2u * 36);  // padded last block
  EXPECT_EQ(WeightMatrixBytes(WeightType::kQ4, 2, 1), 2u * 20);
  EXPECT_EQ(WeightMatrixBytes(WeightType::kBF16, 3, 5), 30u);
}

// Decodes one element straight from the documented byte layout (kernels.h), independent of
// reference::DequantizeRow.
float DecodeElement(const uint8_t* row, WeightType t, size_t c) {
  const size_t b = c / 32, j = c % 32;
  const uint8_t* blk = row + b * (t == WeightType::kQ8 ? 36 : 20);
  float d;
  std::memcpy(&d, blk, 4);
  if (t == WeightType::kQ8) return d * static_cast<float>(static_cast<int8_t>(blk[4 + j]));
  const uint8_t byte = blk[4 + (j < 16 ? j : j - 16)];
  return d * static_cast<float>((j < 16 ? byte & 15 : byte >> 4) - 8);
}

TEST(QuantFormatTest, RoundTripErrorIsAtMostHalfAStep) {
  for (WeightType t : {WeightType::kQ8, WeightType::kQ4}) {
    const size_t cols = 100;  // 3 full blocks and one of 4
    auto x = RandomFloats(cols, 3, -2.0f, 2.0f);
    x[40] = 0;
    for (size_t j = 64; j < 96; ++j) x[j] = 0;  // an all-zero block
    const auto q = Quantize(x, 1, cols, t);
    std::vector<float> deq(cols);
    reference::DequantizeRow(q.data(), t, cols, 0, deq.data());
    const float qmax = t == WeightType::kQ8 ? 127 : 7;
    for (size_t b = 0; b * 32 < cols; ++b) {
      float amax = 0;
      for (size_t j = b * 32; j < std::min(cols, b * 32 + 32); ++j) amax = std::max(amax, std::fabs(x[j]));
      const float step = amax / qmax;
      for (size_t j = b * 32; j < std::min(cols, b * 32 + 32); ++j) {
        EXPECT_EQ(deq[j], DecodeElement(q.data(), t, j)) << j;
        EXPECT_LE(std::fabs(deq[j] - x[j]), 0.5f * step * (1 + 1e-5f) + 1e-30f) << WeightTypeName(t) << j;
      }
    }
    EXPECT_EQ(deq[40], 0.0f);
    for (size_t j = 64; j < 96; ++j) EXPECT_EQ(deq[j], 0.0f);
    // ToFloat of a quantized row is the same dequantization on every target.
    for (const std::string& target : AvailableTargets()) {
      ASSERT_TRUE(ForceTarget(target));
      std::vector<float> tf(cols);
      ToFloat(q.data(), t, cols, tf.data());
      EXPECT_EQ(0, std::memcmp(tf.data(), deq.data(), cols * 4)) << target;
    }
    ASSERT_TRUE(ForceTarget(""));
  }
}

// The integers QuantizeRow stores are std::lround(x / step) clamped to the type's range, halves
// away from zero included (the store format's rule; quantize.cc rounds without libm).
TEST(QuantFormatTest, ValuesAreLroundOfXOverStepIncludingTies) {
  for (WeightType t : {WeightType::kQ8, WeightType::kQ4}) {
    const int qmax = t == WeightType::kQ8 ? 127 : 7;
    const size_t cols = 32 * 64;
    auto x = RandomFloats(cols, 11, -3.0f, 3.0f);
    // Every 4th block: exact ties k + 0.5 steps (step 1: amax = qmax) and near-ties.
    for (size_t b = 0; b < cols / 32; b += 4) {
      x[b * 32] = static_cast<float>(qmax);
      for (size_t j = 1; j < 32; ++j) {
        const float k = static_cast<float>(static_cast<int>(j % (2 * qmax)) - qmax) + 0.5f;
        x[b * 32 + j] = j % 3 == 0 ? std::nextafter(k, 0.f) : (j % 3 == 1 ? k : -k);
      }
    }
    const auto q = Quantize(x, 1, cols, t);
    for (size_t b = 0; b < cols / 32; ++b) {
      float amax = 0;
      for (size_t j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(x[b * 32 + j]));
      const float d = amax / static_cast<float>(qmax), inv = d > 0 ? 1.0f / d : 0.0f;
      for (size_t j = 0; j < 32; ++j) {
        long want = std::lround(x[b * 32 + j] * inv);
        want = std::min<long>(qmax, std::max<long>(-qmax - (t == WeightType::kQ4 ? 1 : 0), want));
        const float got = DecodeElement(q.data(), t, b * 32 + j) / d;
        ASSERT_EQ(static_cast<long>(std::lround(got)), want)
            << WeightTypeName(t) << " block " << b << " j " << j << " x " << x[b * 32 + j];
      }
    }
  }
}

class QuantMatMulTest : public ::testing::TestWithParam<Param> {
 protected:
  void SetUp() override {
    ASSERT_TRUE(ForceTarget(std::get<0>(GetParam())));
    ASSERT_EQ(std::string(TargetName()), std::get<0>(GetParam()));
  }
  void TearDown() override { ASSERT_TRUE(ForceTarget("")); }
  WeightType type() const { return std::get<1>(GetParam()); }
};

TEST_P(QuantMatMulTest, MatchesReferenceForTailSizesAndRowRanges) {
  for (size_t cols : {1u, 5u, 16u, 31u, 32u, 33u, 48u, 64u, 100u, 256u, 770u}) {
    const size_t rows = 13, n_tokens = 6, x_stride = cols + 5, y_stride = rows + 3;
    const auto wf = RandomFloats(rows * cols, static_cast<uint32_t>(cols));
    const auto q = Quantize(wf, rows, cols, type());
    const auto x = RandomFloats(n_tokens * x_stride, static_cast<uint32_t>(cols + 1));
    const WeightView view{q.data(), type(), rows, cols};
    for (auto [rb, re] : {std::pair<size_t, size_t>{0, rows}, {3, 10}, {5, 6}}) {
      for (size_t nt : {size_t{1}, n_tokens}) {
        Guarded y(nt * y_stride);
        MatMul(view, x.data(), nt, x_stride, y.data(), y_stride, rb, re);
        std::vector<float> want(nt * y_stride);
        reference::MatMul(view, x.data(), nt, x_stride, want.data(), y_stride, rb, re);
        ExpectRowRangeMatchesReference(
            y, want, q.data(), type(), rows, cols, nt, y_stride, rb, re,
            [&](size_t t, size_t c) { return double(x[t * x_stride + c]); });
        if (HasFatalFailure()) return;
      }
    }
  }
}

// The quantized product approximates the unquantized one: relative error of the outputs
// bounded by the format's resolution (a sanity check of the whole path, not just the oracle).
// QuantizeRow on every target writes reference::QuantizeRow's bytes: tail sizes, exact ties
// and near-ties, all-zero blocks, subnormal blocks (1/d finite, and 1/d overflowing, where both
// divide), huge values, and blocks holding NaN or ±Inf (d = NaN, every q zero).
TEST_P(QuantMatMulTest, QuantizeRowWritesTheReferenceBytes) {
  const WeightType t = type();
  const float qmax = t == WeightType::kQ8 ? 127.f : 7.f;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<size_t> sizes;
  for (size_t n = 1; n <= 70; ++n) sizes.push_back(n);
  sizes.push_back(32 * 40);
  sizes.push_back(2048 + 5);
  for (size_t cols : sizes) {
    auto x = RandomFloats(cols, static_cast<uint32_t>(cols) + 7, -3.0f, 3.0f);
    const size_t nb = (cols + 31) / 32;
    for (size_t b = 0; b < nb; ++b) {
      float* blk = &x[b * 32];
      const size_t len = std::min<size_t>(32, cols - b * 32);
      switch (b % 8) {
        case 1:  // step 1: exact ties k + 0.5 and their neighbours
          blk[0] = qmax;
          for (size_t j = 1; j < len; ++j) {
            const float k = static_cast<float>(static_cast<int>(j % 14) - 7) + 0.5f;
            blk[j] = j % 3 == 0 ? std::nextafter(k, 0.f) : (j % 3 == 1 ? k : -k);
          }
          break;
        case 2:
          for (size_t j = 0; j < len; ++j) blk[j] = 0.0f;
          break;
        case 3:  // 1/d overflows: divide
          for (size_t j = 0; j < len; ++j) blk[j] *= 1e-38f;
          break;
        case 4:  // subnormal d, 1/d finite
          for (size_t j = 0; j < len; ++j) blk[j] *= 1e-36f;
          break;
        case 5:
          for (size_t j = 0; j < len; ++j) blk[j] *= 1e38f;
          break;
        case 6:
          blk[len - 1] = (b / 8) % 3 == 0 ? nan : ((b / 8) % 3 == 1 ? inf : -inf);
          break;
        default:
          break;
      }
    }
    const size_t bytes = QuantRowBytes(t, cols);
    std::vector<uint8_t> want(bytes), got(bytes + 64, 0xEE);
    reference::QuantizeRow(x.data(), cols, t, want.data());
    QuantizeRow(x.data(), cols, t, got.data());
    ASSERT_EQ(0, std::memcmp(want.data(), got.data(), bytes)) << cols;
    for (size_t i = bytes; i < got.size(); ++i) ASSERT_EQ(got[i], 0xEE) << cols;
    // The non-finite blocks against the documented rule, independently of the reference.
    const size_t bb = QuantBlockBytes(t);
    for (size_t b = 6; b < nb; b += 8) {
      float d;
      std::memcpy(&d, &got[b * bb], 4);
      EXPECT_TRUE(std::isnan(d)) << cols << " block " << b;
      for (size_t j = 4; j < bb; ++j) {
        ASSERT_EQ(got[b * bb + j], t == WeightType::kQ8 ? 0x00 : 0x88) << cols << " block " << b;
      }
    }
    // The dividing blocks decode to lround(x / d) (DecodeElement's own model of the layout).
    for (size_t b = 3; b < nb; b += 8) {
      float d;
      std::memcpy(&d, &got[b * bb], 4);
      for (size_t j = b * 32; j < std::min(cols, b * 32 + 32); ++j) {
        if (d == 0) continue;
        const long q = std::lround(DecodeElement(got.data(), t, j) / d);
        ASSERT_EQ(q, std::clamp(std::lround(x[j] / d), static_cast<long>(-qmax - (t == WeightType::kQ4)),
                                static_cast<long>(qmax)))
            << cols << " j " << j;
      }
    }
  }
}

TEST_P(QuantMatMulTest, CloseToUnquantizedProduct) {
  const size_t rows = 64, cols = 512;
  const auto wf = RandomFloats(rows * cols, 21);
  const auto q = Quantize(wf, rows, cols, type());
  const auto x = RandomFloats(cols, 22);
  std::vector<float> y(rows);
  MatMul({q.data(), type(), rows, cols}, x.data(), 1, cols, y.data(), rows, 0, rows);
  std::vector<double> got(rows), want(rows);
  for (size_t r = 0; r < rows; ++r) {
    double acc = 0;
    for (size_t c = 0; c < cols; ++c) acc += double(wf[r * cols + c]) * x[c];
    want[r] = acc;
    got[r] = y[r];
  }
  // Uniform weights in [-1, 1]: step ≈ 1/qmax, error variance step²/12 per weight.
  EXPECT_LT(Nmse(got, want), type() == WeightType::kQ8 ? 1e-4 : 2e-2);
}

TEST_P(QuantMatMulTest, BitIdenticalAcrossTokenCountsRowRangesAndThreads) {
  for (size_t cols : {67u, 2051u}) {
    const size_t rows = 37, n_tokens = 11;
    const auto q = Quantize(RandomFloats(rows * cols, 5), rows, cols, type());
    const auto x = RandomFloats(n_tokens * cols, 6);
    const WeightView view{q.data(), type(), rows, cols};
    std::vector<float> all(n_tokens * rows);
    MatMul(view, x.data(), n_tokens, cols, all.data(), rows, 0, rows);
    std::vector<float> one_by_one(n_tokens * rows);
    for (size_t t = 0; t < n_tokens; ++t) {
      MatMul(view, x.data() + t * cols, 1, cols, one_by_one.data() + t * rows, rows, 0, rows);
    }
    EXPECT_EQ(0, std::memcmp(all.data(), one_by_one.data(), all.size() * 4)) << cols;
    std::vector<float> split(n_tokens * rows);
    const size_t splits[] = {0, 1, 6, 17, 30, 37};
    for (size_t t0 : {0u, 7u}) {
      const size_t nt = t0 == 0 ? 7 : 4;
      for (size_t s = 0; s + 1 < std::size(splits); ++s) {
        MatMul(view, x.data() + t0 * cols, nt, cols, split.data() + t0 * rows, rows, splits[s],
               splits[s + 1]);
      }
    }
    EXPECT_EQ(0, std::memcmp(all.data(), split.data(), all.size() * 4)) << cols;
    std::vector<float> threaded(n_tokens * rows);
    std::vector<std::thread> threads;
    for (size_t s = 0; s + 1 < std::size(splits); ++s) {
      threads.emplace_back([&, s] {
        MatMul(view, x.data(), n_tokens, cols, threaded.data(), rows, splits[s], splits[s + 1]);
      });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(0, std::memcmp(all.data(), threaded.data(), all.size() * 4)) << cols;
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllTargets, QuantMatMulTest,
    ::testing::Combine(::testing::ValuesIn(AvailableTargets()),
                       ::testing::Values(WeightType::kQ8, WeightType::kQ4)),
    [](const ::testing::TestParamInfo<Param>& info) {
      return std::get<0>(info.param) + "_" + WeightTypeName(std::get<1>(info.param));
    });

}  // namespace
}  // namespace moe::kernels::testing
