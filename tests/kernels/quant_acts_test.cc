// SPDX-License-Identifier: Apache-2.0
// Quantized activations × quantized weights (kernels.h QuantizeActs / MatMulQuantizedActs) on
// every compiled target: the activation quantizer is bit-identical to the scalar reference and
// follows the documented rule (ties to even, zero / non-finite / tiny blocks); the product
// matches the scalar reference within the f32 summation bound for tail sizes and row ranges,
// is bit-identical across token counts, row splits and threads, and stays within the
// activation rounding of the exact-dequantization MatMul.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "kernel_test_util.h"
#include "kernels/kernels.h"
#include "kernels/reference.h"

namespace moe::kernels::testing {
namespace {

using Param = std::tuple<std::string, WeightType>;

std::vector<uint8_t> QuantizeRows(const std::vector<float>& src, size_t rows, size_t cols,
                                  WeightType t) {
  std::vector<uint8_t> out(WeightMatrixBytes(t, rows, cols));
  for (size_t r = 0; r < rows; ++r) {
    QuantizeRow(&src[r * cols], cols, t, out.data() + r * QuantRowBytes(t, cols));
  }
  return out;
}

struct Acts {
  Acts(size_t n_tokens, size_t cols)
      : q(n_tokens * ActBlocks(cols) * kQuantBlock, -1), d(n_tokens * ActBlocks(cols), -1.f) {}
  std::vector<int16_t> q;
  std::vector<float> d;
};

Acts Quantized(const std::vector<float>& x, size_t n_tokens, size_t x_stride, size_t cols) {
  Acts a(n_tokens, cols);
  QuantizeActs(x.data(), n_tokens, x_stride, cols, a.q.data(), a.d.data());
  return a;
}

class QuantActsTest : public PerTargetTest {};

TEST_P(QuantActsTest, QuantizerEqualsReferenceAndFollowsTheRule) {
  const float inf = std::numeric_limits<float>::infinity();
  for (size_t cols : {1u, 7u, 31u, 32u, 33u, 100u, 2051u}) {
    const size_t n_tokens = 3, x_stride = cols + 2;
    auto x = RandomFloats(n_tokens * x_stride, static_cast<uint32_t>(cols), -3.f, 3.f);
    if (cols >= 100) {
      for (size_t j = 32; j < 64; ++j) x[j] = 0.f;                 // an all-zero block
      x[x_stride + 5] = std::numeric_limits<float>::quiet_NaN();  // token 1, block 0
      x[2 * x_stride + 70] = -inf;                                 // token 2, block 2
      for (size_t j = 0; j < 32; ++j) x[2 * x_stride + j] = 1e-43f * static_cast<float>(j % 3);
      // Token 0, block 2: max|x| = 32767 (d = 1) and exact ties k + 0.5: nearest even.
      x[64] = 32767.f;
      for (size_t j = 65; j < 96; ++j) x[j] = static_cast<float>(j) - 60.5f;
    }
    const Acts got = Quantized(x, n_tokens, x_stride, cols);
    Acts want(n_tokens, cols);
    reference::QuantizeActs(x.data(), n_tokens, x_stride, cols, want.q.data(), want.d.data());
    ASSERT_EQ(got.q, want.q) << cols;
    ASSERT_EQ(0, std::memcmp(got.d.data(), want.d.data(), got.d.size() * 4)) << cols;
    // The rule, element by element, independent of the reference's code.
    const size_t nb = ActBlocks(cols);
    for (size_t t = 0; t < n_tokens; ++t) {
      for (size_t b = 0; b < nb; ++b) {
        const float d = got.d[t * nb + b];
        for (size_t j = 0; j < kQuantBlock; ++j) {
          const size_t c = b * kQuantBlock + j;
          const int16_t q = got.q[(t * nb + b) * kQuantBlock + j];
          if (c >= cols || !(d > 0)) {
            ASSERT_EQ(q, 0) << "padding / zero / non-finite block: c=" << c;
            continue;
          }
          const float xv = x[t * x_stride + c];
          // Half a step, plus the f32 rounding of x / d (≤ 32767 · 2^-24 steps).
          ASSERT_LE(std::fabs(double(q) * d - xv), (0.5 + 32767.0 / (1 << 24)) * d) << "c=" << c;
        }
      }
    }
    if (cols >= 100) {
      EXPECT_EQ(got.d[1], 0.f);                                // all-zero block
      EXPECT_TRUE(std::isnan(got.d[nb]));                      // NaN
      EXPECT_TRUE(std::isnan(got.d[2 * nb + 2]));              // -Inf
      EXPECT_EQ(got.d[2], 1.f);                                // max|x| = 32767
      for (size_t j = 65; j < 96; ++j) {
        const double v = static_cast<double>(j) - 60.5;
        EXPECT_EQ(got.q[64 + j - 64], static_cast<int16_t>(std::nearbyint(v))) << v;
        EXPECT_EQ(got.q[64 + j - 64] % 2, 0) << "tie " << v << " rounds to even";
      }
    }
  }
}

class QuantActsMatMulTest : public ::testing::TestWithParam<Param> {
 protected:
  void SetUp() override { ASSERT_TRUE(ForceTarget(std::get<0>(GetParam()))); }
  void TearDown() override { ASSERT_TRUE(ForceTarget("")); }
  WeightType type() const { return std::get<1>(GetParam()); }
};

TEST_P(QuantActsMatMulTest, MatchesReferenceForTailSizesAndRowRanges) {
  for (size_t cols : {1u, 5u, 16u, 31u, 32u, 33u, 48u, 64u, 100u, 256u, 770u}) {
    const size_t rows = 13, n_tokens = 6, x_stride = cols + 5, y_stride = rows + 3;
    const auto w = QuantizeRows(RandomFloats(rows * cols, static_cast<uint32_t>(cols)), rows,
                                cols, type());
    const auto x = RandomFloats(n_tokens * x_stride, static_cast<uint32_t>(cols + 1));
    const Acts a = Quantized(x, n_tokens, x_stride, cols);
    const WeightView view{w.data(), type(), rows, cols};
    const size_t nb = ActBlocks(cols);
    for (auto [rb, re] : {std::pair<size_t, size_t>{0, rows}, {3, 10}, {5, 6}}) {
      for (size_t nt : {size_t{1}, n_tokens}) {
        Guarded y(nt * y_stride);
        MatMulQuantizedActs(view, a.q.data(), a.d.data(), nt, y.data(), y_stride, rb, re);
        std::vector<float> want(nt * y_stride);
        reference::MatMulQuantizedActs(view, a.q.data(), a.d.data(), nt, want.data(), y_stride,
                                       rb, re);
        ExpectRowRangeMatchesReference(y, want, w.data(), type(), rows, cols, nt, y_stride, rb,
                                       re, [&](size_t t, size_t c) {
                                         return double(a.q[t * nb * 32 + c]) * a.d[t * nb + c / 32];
                                       });
        if (HasFatalFailure()) return;
      }
    }
  }
}

TEST_P(QuantActsMatMulTest, BitIdenticalAcrossTokenCountsRowRangesAndThreads) {
  for (size_t cols : {67u, 2051u}) {
    const size_t rows = 37, n_tokens = 11;
    const auto w = QuantizeRows(RandomFloats(rows * cols, 5), rows, cols, type());
    const Acts a = Quantized(RandomFloats(n_tokens * cols, 6), n_tokens, cols, cols);
    const size_t nb = ActBlocks(cols);
    const WeightView view{w.data(), type(), rows, cols};
    std::vector<float> all(n_tokens * rows);
    MatMulQuantizedActs(view, a.q.data(), a.d.data(), n_tokens, all.data(), rows, 0, rows);
    std::vector<float> one_by_one(n_tokens * rows);
    for (size_t t = 0; t < n_tokens; ++t) {
      MatMulQuantizedActs(view, a.q.data() + t * nb * 32, a.d.data() + t * nb, 1,
                          one_by_one.data() + t * rows, rows, 0, rows);
    }
    EXPECT_EQ(0, std::memcmp(all.data(), one_by_one.data(), all.size() * 4)) << cols;
    const size_t splits[] = {0, 1, 6, 17, 30, 37};
    std::vector<float> threaded(n_tokens * rows);
    std::vector<std::thread> threads;
    for (size_t s = 0; s + 1 < std::size(splits); ++s) {
      threads.emplace_back([&, s] {
        MatMulQuantizedActs(view, a.q.data(), a.d.data(), n_tokens, threaded.data(), rows,
                            splits[s], splits[s + 1]);
      });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(0, std::memcmp(all.data(), threaded.data(), all.size() * 4)) << cols;
  }
}

// The tiled layout (kernels.h TiledBlockOffset): TileMatrix moves whole blocks, and both
// quantized MatMuls (int16 and f32 activations) over the tiled copy are bit-identical to the
// row-major ones, for decode and prefill token counts and row ranges inside tiles; any cols.
TEST_P(QuantActsMatMulTest, TiledLayoutIsBitIdenticalToRowMajor) {
  // 24 and 104 rows: 3 and 13 tiles, decode passes of several tiles with parts of unequal
  // length (matmul_qacts.cc DecodeStreams), and single tiles.
  for (auto [rows, cols] : {std::pair<size_t, size_t>{24, 32}, {24, 67}, {24, 2048}, {104, 67}}) {
    const size_t max_tokens = 9;
    ASSERT_TRUE(CanTile(type(), rows, cols));
    EXPECT_FALSE(CanTile(type(), rows + 4, cols));
    const auto w = QuantizeRows(RandomFloats(rows * cols, 21), rows, cols, type());
    std::vector<uint8_t> tiled(w.begin(), w.end());
    TileMatrix(tiled.data(), type(), rows, cols);
    const size_t rb = QuantRowBytes(type(), cols), bb = QuantBlockBytes(type());
    for (size_t r = 0; r < rows; ++r) {
      for (size_t b = 0; b < rb / bb; ++b) {
        ASSERT_EQ(0, std::memcmp(&tiled[TiledBlockOffset(r, b, rb, bb)], &w[r * rb + b * bb], bb))
            << "r=" << r << " b=" << b;
      }
    }
    const WeightView rm{w.data(), type(), rows, cols};
    WeightView tv{tiled.data(), type(), rows, cols};
    tv.tiled = true;
    const auto x = RandomFloats(max_tokens * cols, 22);
    const Acts a = Quantized(x, max_tokens, cols, cols);
    for (size_t n : {1u, 2u, 4u, 5u, 9u}) {
      for (auto [b, e] : {std::pair<size_t, size_t>{0, rows}, {3, rows - 3}, {rows - 8, rows},
                          {1, 2}}) {
        std::vector<float> want(n * rows, -1.f), got(n * rows, -1.f);
        MatMulQuantizedActs(rm, a.q.data(), a.d.data(), n, want.data(), rows, b, e);
        MatMulQuantizedActs(tv, a.q.data(), a.d.data(), n, got.data(), rows, b, e);
        ASSERT_EQ(0, std::memcmp(want.data(), got.data(), want.size() * 4))
            << "int16 acts, cols " << cols << " n " << n << " rows [" << b << ", " << e << ")";
        MatMul(rm, x.data(), n, cols, want.data(), rows, b, e);
        MatMul(tv, x.data(), n, cols, got.data(), rows, b, e);
        ASSERT_EQ(0, std::memcmp(want.data(), got.data(), want.size() * 4))
            << "f32 acts, cols " << cols << " n " << n << " rows [" << b << ", " << e << ")";
      }
    }
  }
}

// Against the exact-dequantization MatMul (f32 activations): the only difference is the
// activations' rounding, at most 2^-16 of each block's max|x| per element.
TEST_P(QuantActsMatMulTest, CloseToFloatActivationMatMul) {
  const size_t rows = 64, cols = 2048, n_tokens = 3;
  const auto w = QuantizeRows(RandomFloats(rows * cols, 31), rows, cols, type());
  auto x = RandomFloats(n_tokens * cols, 32, -4.f, 4.f);
  for (size_t c = 0; c < cols; c += 97) x[c] *= 100.f;  // outliers, as real activations have
  const Acts a = Quantized(x, n_tokens, cols, cols);
  const WeightView view{w.data(), type(), rows, cols};
  std::vector<float> y(n_tokens * rows), ref(n_tokens * rows);
  MatMulQuantizedActs(view, a.q.data(), a.d.data(), n_tokens, y.data(), rows, 0, rows);
  MatMul(view, x.data(), n_tokens, cols, ref.data(), rows, 0, rows);
  std::vector<double> got(y.begin(), y.end()), want(ref.begin(), ref.end());
  // q8 weights alone are ~1e-4 from the unquantized product (quant_matmul_test.cc).
  EXPECT_LT(Nmse(got, want), 1e-7);
  EXPECT_GT(Nmse(got, want), 0.0) << "the activations were not quantized at all?";
}

TEST_P(QuantActsMatMulTest, NonFiniteActivationBlockGivesNaN) {
  const size_t rows = 5, cols = 64;
  const auto w = QuantizeRows(RandomFloats(rows * cols, 41), rows, cols, type());
  auto x = RandomFloats(cols, 42);
  x[40] = std::numeric_limits<float>::infinity();
  const Acts a = Quantized(x, 1, cols, cols);
  std::vector<float> y(rows);
  MatMulQuantizedActs({w.data(), type(), rows, cols}, a.q.data(), a.d.data(), 1, y.data(), rows,
                      0, rows);
  for (float v : y) EXPECT_TRUE(std::isnan(v));
}

// The x86 q4 kernels (qacts_x86-inl.h) compute each row the same way at both vector widths: two
// rows per AVX2 vector, four per AVX-512 vector, one row per 128-bit lane; and with vpdpbusd
// (AVX3_VNNI) as with vpmaddubsw. Decode and prefill, row-major and tiled, row ranges inside
// groups and tiles.
TEST(QuantActsCrossTargetTest, Q4IsBitIdenticalOnAvx2Avx512AndVnni) {
  const std::vector<std::string> targets = AvailableTargets();
  const auto has = [&](const char* t) {
    return std::find(targets.begin(), targets.end(), t) != targets.end();
  };
  if (!has("AVX2") || !has("AVX3")) GTEST_SKIP() << "needs a CPU with AVX2 and AVX-512";
  std::vector<std::string> others = {"AVX3"};
  if (has("AVX3_VNNI")) others.push_back("AVX3_VNNI");
  for (auto [rows, cols] : {std::pair<size_t, size_t>{24, 67}, {40, 2048}, {104, 96}}) {
    const auto w = QuantizeRows(RandomFloats(rows * cols, 61), rows, cols, WeightType::kQ4);
    std::vector<uint8_t> tiled(w.begin(), w.end());
    TileMatrix(tiled.data(), WeightType::kQ4, rows, cols);
    const size_t max_tokens = 9;
    const Acts a =
        Quantized(RandomFloats(max_tokens * cols, 62, -3.f, 3.f), max_tokens, cols, cols);
    for (bool is_tiled : {false, true}) {
      WeightView view{is_tiled ? tiled.data() : w.data(), WeightType::kQ4, rows, cols};
      view.tiled = is_tiled;
      for (size_t n : {1u, 2u, 5u, 9u}) {
        for (auto [b, e] : {std::pair<size_t, size_t>{0, rows}, {3, rows - 3}, {5, 6}}) {
          std::vector<float> avx2(n * rows, -1.f);
          ASSERT_TRUE(ForceTarget("AVX2"));
          MatMulQuantizedActs(view, a.q.data(), a.d.data(), n, avx2.data(), rows, b, e);
          for (const std::string& t : others) {
            std::vector<float> y(n * rows, -1.f);
            ASSERT_TRUE(ForceTarget(t));
            ASSERT_EQ(TargetName(), t);
            MatMulQuantizedActs(view, a.q.data(), a.d.data(), n, y.data(), rows, b, e);
            ASSERT_EQ(0, std::memcmp(avx2.data(), y.data(), y.size() * 4))
                << t << " " << rows << "x" << cols << (is_tiled ? " tiled" : " rows") << " n "
                << n << " [" << b << ", " << e << ")";
          }
          ASSERT_TRUE(ForceTarget(""));
        }
      }
    }
  }
}

// The AVX3_VNNI q8 kernel (qacts_x86-inl.h q8) against a scalar model of its documented
// sequence: per block, 4 exact int32 lane sums of 8 products (lane q: elements 4q .. 4q + 3 and
// 16 + 4q .. 16 + 4q + 3), each converted to f32 and accumulated as fma(s, d_w · d_x, acc_q);
// then y = (acc_0 + acc_1) + (acc_2 + acc_3). Bit-identical, including weights and activations
// at full scale, whose lane sums pass 2^24 and round when converted. Decode and prefill,
// row-major and tiled, row ranges inside groups and tiles.
TEST(QuantActsCrossTargetTest, Q8OnVnniEqualsItsScalarModel) {
  const std::vector<std::string> targets = AvailableTargets();
  if (std::find(targets.begin(), targets.end(), "AVX3_VNNI") == targets.end()) {
    GTEST_SKIP() << "needs a CPU with AVX512-VNNI";
  }
  const WeightType t = WeightType::kQ8;
  for (auto [rows, cols] : {std::pair<size_t, size_t>{24, 67}, {40, 2048}, {104, 96}}) {
    auto wf = RandomFloats(rows * cols, 71);
    for (size_t r = 0; r < rows; r += 3) {  // every third row at full scale: ±127 throughout
      for (size_t c = 0; c < cols; ++c) wf[r * cols + c] = (c * 7 + r) % 5 < 2 ? -1.f : 1.f;
    }
    const auto w = QuantizeRows(wf, rows, cols, t);
    std::vector<uint8_t> tiled(w.begin(), w.end());
    TileMatrix(tiled.data(), t, rows, cols);
    const size_t max_tokens = 9, nb = ActBlocks(cols);
    auto xf = RandomFloats(max_tokens * cols, 72, -3.f, 3.f);
    // Token 0 at full scale (±32767) but for one even value per block, so that row 0's lane 0
    // sums (all products of one sign) are odd and above 2^24.
    for (size_t c = 0; c < cols; ++c) {
      xf[c] = ((c * 7) % 5 < 2 ? -1.f : 1.f) * (c % 32 == 3 ? 1.998f : 2.f);
    }
    const Acts a = Quantized(xf, max_tokens, cols, cols);
    std::vector<float> model(max_tokens * rows);
    for (size_t j = 0; j < max_tokens; ++j) {
      for (size_t r = 0; r < rows; ++r) {
        const uint8_t* row = w.data() + r * QuantRowBytes(t, cols);
        float acc[4] = {0.f, 0.f, 0.f, 0.f};
        for (size_t b = 0; b < nb; ++b) {
          const uint8_t* blk = row + b * QuantBlockBytes(t);
          float dw;
          std::memcpy(&dw, blk, 4);
          const auto* q = reinterpret_cast<const int8_t*>(blk + 4);
          const int16_t* x = &a.q[(j * nb + b) * kQuantBlock];
          const float scale = dw * a.d[j * nb + b];
          for (size_t l = 0; l < 4; ++l) {
            int64_t s = 0;
            for (size_t e = 0; e < 4; ++e) {
              s += int64_t{q[4 * l + e]} * x[4 * l + e] + int64_t{q[16 + 4 * l + e]} * x[16 + 4 * l + e];
            }
            acc[l] = std::fma(static_cast<float>(s), scale, acc[l]);
          }
        }
        model[j * rows + r] = (acc[0] + acc[1]) + (acc[2] + acc[3]);
      }
    }
    ASSERT_TRUE(ForceTarget("AVX3_VNNI"));
    for (bool is_tiled : {false, true}) {
      WeightView view{is_tiled ? tiled.data() : w.data(), t, rows, cols};
      view.tiled = is_tiled;
      for (size_t n : {1u, 2u, 5u, 9u}) {
        for (auto [b, e] : {std::pair<size_t, size_t>{0, rows}, {3, rows - 3}, {5, 6}}) {
          std::vector<float> y(n * rows, -1.f);
          MatMulQuantizedActs(view, a.q.data(), a.d.data(), n, y.data(), rows, b, e);
          for (size_t j = 0; j < n; ++j) {
            for (size_t r = b; r < e; ++r) {
              ASSERT_EQ(y[j * rows + r], model[j * rows + r])
                  << rows << "x" << cols << (is_tiled ? " tiled" : " rows") << " n " << n
                  << " [" << b << ", " << e << ") token " << j << " row " << r;
            }
          }
        }
      }
    }
    ASSERT_TRUE(ForceTarget(""));
  }
}

INSTANTIATE_TEST_SUITE_P(AllTargets, QuantActsTest, ::testing::ValuesIn(AvailableTargets()),
                         TargetParamName);
INSTANTIATE_TEST_SUITE_P(
    AllTargets, QuantActsMatMulTest,
    ::testing::Combine(::testing::ValuesIn(AvailableTargets()),
                       ::testing::Values(WeightType::kQ8, WeightType::kQ4)),
    [](const ::testing::TestParamInfo<Param>& info) {
      return std::get<0>(info.param) + "_" + WeightTypeName(std::get<1>(info.param));
    });

}  // namespace
}  // namespace moe::kernels::testing
