// SPDX-License-Identifier: Apache-2.0
// MatMul on every compiled target against the double-accumulating scalar reference, and the
// bit-identity contract (n_tokens, row ranges, threads).
#include <gtest/gtest.h>

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

const char* TypeName(WeightType t) {
  switch (t) {
    case WeightType::kF32: return "f32";
    case WeightType::kBF16: return "bf16";
    case WeightType::kF16: return "f16";
    case WeightType::kQ8:
    case WeightType::kQ4: return WeightTypeName(t);  // quant_matmul_test.cc
  }
  return "?";
}

class MatMulTest : public ::testing::TestWithParam<Param> {
 protected:
  void SetUp() override {
    ASSERT_TRUE(ForceTarget(std::get<0>(GetParam())));
    ASSERT_EQ(std::string(TargetName()), std::get<0>(GetParam()));
  }
  void TearDown() override { ASSERT_TRUE(ForceTarget("")); }
  WeightType type() const { return std::get<1>(GetParam()); }
};

struct Case {
  size_t rows, cols, n_tokens, row_begin, row_end;
};

// Runs MatMul and the reference on random data, with x/y strides wider than needed and
// sentinels around every element MatMul must not write; checks each element against the
// summation bound and the whole output against an NMSE threshold.
void CheckAgainstReference(const RandomWeights& w, const Case& c, const std::vector<float>& x,
                           size_t x_stride, double* nmse_num, double* nmse_den) {
  const WeightView view{w.data(), w.type, c.rows, c.cols};
  const size_t y_stride = c.rows + 3;
  Guarded y(c.n_tokens * y_stride);
  MatMul(view, x.data(), c.n_tokens, x_stride, y.data(), y_stride, c.row_begin, c.row_end);
  std::vector<float> want(c.n_tokens * y_stride);
  reference::MatMul(view, x.data(), c.n_tokens, x_stride, want.data(), y_stride, c.row_begin,
                    c.row_end);
  ASSERT_TRUE(y.GuardIntact());
  for (size_t t = 0; t < c.n_tokens; ++t) {
    for (size_t r = 0; r < y_stride; ++r) {
      const float got = y.buf[t * y_stride + r];
      if (r < c.row_begin || r >= c.row_end) {
        ASSERT_TRUE(IsSentinel(got)) << "wrote outside rows: t=" << t << " r=" << r;
        continue;
      }
      double sum_abs = 0.0;
      for (size_t k = 0; k < c.cols; ++k) {
        sum_abs += std::fabs(reference::LoadWeight(w.data(), w.type, r * c.cols + k) *
                             static_cast<double>(x[t * x_stride + k]));
      }
      const float ref = want[t * y_stride + r];
      ASSERT_TRUE(WithinSumBound(got, ref, c.cols, sum_abs))
          << "t=" << t << " r=" << r << " cols=" << c.cols << " got " << got << " want " << ref;
      if (std::isfinite(ref)) {
        *nmse_num += (static_cast<double>(got) - ref) * (static_cast<double>(got) - ref);
        *nmse_den += static_cast<double>(ref) * ref;
      }
    }
  }
}

TEST_P(MatMulTest, MatchesReferenceForAllTailSizes) {
  double num = 0.0, den = 0.0;
  for (size_t cols = 1; cols <= 67; ++cols) {
    const Case c{13, cols, 3, 0, 13};
    const RandomWeights w(type(), c.rows * c.cols, 1000 + static_cast<uint32_t>(cols));
    const size_t x_stride = cols + 5;
    const auto x = RandomFloats(c.n_tokens * x_stride, 7 + static_cast<uint32_t>(cols));
    CheckAgainstReference(w, c, x, x_stride, &num, &den);
    if (HasFatalFailure()) return;
  }
  EXPECT_LT(num / den, 1e-10);
}

TEST_P(MatMulTest, MatchesReferenceForModelShapesAndRowRanges) {
  const Case cases[] = {
      {37, 2048, 1, 0, 37},   {37, 2051, 9, 3, 34}, {64, 768, 16, 0, 64},
      {21, 129, 5, 7, 20},    {5, 1000, 1, 2, 3},   {40, 130, 11, 0, 40},
  };
  for (const Case& c : cases) {
    double num = 0.0, den = 0.0;
    const RandomWeights w(type(), c.rows * c.cols, static_cast<uint32_t>(c.rows * c.cols));
    const auto x = RandomFloats(c.n_tokens * c.cols, static_cast<uint32_t>(c.cols));
    CheckAgainstReference(w, c, x, c.cols, &num, &den);
    if (HasFatalFailure()) return;
    EXPECT_LT(num / den, 1e-10) << c.rows << "x" << c.cols << " n_tokens=" << c.n_tokens;
  }
}

TEST_P(MatMulTest, PropagatesInfNanAndHandlesSubnormals) {
  const size_t rows = 12, cols = 45;
  RandomWeights w(type(), rows * cols, 99);
  auto x = RandomFloats(2 * cols, 98);
  const float inf = std::numeric_limits<float>::infinity();
  // Row 1: a NaN weight; row 2: +Inf weight; row 3: -Inf and +Inf (→ NaN); rows 4-5: subnormal
  // weights; row 6: all-zero weights. Token 1 has an Inf activation at column 40 (the tail).
  const uint16_t nan16 = type() == WeightType::kBF16 ? 0x7fc1 : 0x7e01;
  const uint16_t inf16 = type() == WeightType::kBF16 ? 0x7f80 : 0x7c00;
  const uint16_t ninf16 = inf16 | 0x8000;
  if (type() == WeightType::kF32) {
    w.Set(1 * cols + 5, std::numeric_limits<float>::quiet_NaN());
    w.Set(2 * cols + 17, inf);
    w.Set(3 * cols + 2, -inf);
    w.Set(3 * cols + 44, inf);
    for (size_t k = 0; k < cols; ++k) w.Set(4 * cols + k, 1e-40f * static_cast<float>(k));
    for (size_t k = 0; k < cols; ++k) w.Set(5 * cols + k, -3e-39f);
  } else {
    w.SetBits16(1 * cols + 5, nan16);
    w.SetBits16(2 * cols + 17, inf16);
    w.SetBits16(3 * cols + 2, ninf16);
    w.SetBits16(3 * cols + 44, inf16);
    for (size_t k = 0; k < cols; ++k) w.SetBits16(4 * cols + k, static_cast<uint16_t>(k + 1));
    for (size_t k = 0; k < cols; ++k) w.SetBits16(5 * cols + k, 0x8003);
  }
  for (size_t k = 0; k < cols; ++k) w.Set(6 * cols + k, 0.0f);
  x[cols + 40] = inf;
  // Subnormal activations in token 0.
  for (size_t k = 20; k < 30; ++k) x[k] = 1e-42f * static_cast<float>(k);
  double num = 0.0, den = 0.0;
  CheckAgainstReference(w, Case{rows, cols, 2, 0, rows}, x, cols, &num, &den);
}

// Contract: an element's bits depend only on (weight row, token row).
TEST_P(MatMulTest, BitIdenticalAcrossTokenCountsRowRangesAndThreads) {
  for (size_t cols : {67u, 2051u}) {
    const size_t rows = 37, n_tokens = 11;
    const RandomWeights w(type(), rows * cols, 5);
    const auto x = RandomFloats(n_tokens * cols, 6);
    const WeightView view{w.data(), w.type, rows, cols};

    std::vector<float> all(n_tokens * rows);
    MatMul(view, x.data(), n_tokens, cols, all.data(), rows, 0, rows);

    std::vector<float> one_by_one(n_tokens * rows);
    for (size_t t = 0; t < n_tokens; ++t) {
      MatMul(view, x.data() + t * cols, 1, cols, one_by_one.data() + t * rows, rows, 0, rows);
    }
    EXPECT_EQ(0, std::memcmp(all.data(), one_by_one.data(), all.size() * 4)) << cols;

    std::vector<float> seven(n_tokens * rows);  // tokens in groups of 7 and 4, odd row splits
    const size_t splits[] = {0, 1, 6, 17, 30, 37};
    for (size_t t0 : {0u, 7u}) {
      const size_t nt = t0 == 0 ? 7 : 4;
      for (size_t s = 0; s + 1 < std::size(splits); ++s) {
        MatMul(view, x.data() + t0 * cols, nt, cols, seven.data() + t0 * rows, rows, splits[s],
               splits[s + 1]);
      }
    }
    EXPECT_EQ(0, std::memcmp(all.data(), seven.data(), all.size() * 4)) << cols;

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

// The tiled layout (kernels.h): TileMatrix puts element (r, c) at TiledIndex(r, c, cols), and
// MatMul over the tiled copy is bit-identical to MatMul over the row-major matrix, for decode
// and prefill token counts and for row ranges that start and end inside tiles. Decode runs
// several tiles per pass (matmul.cc kDecodeStreams); 13 and 27 tiles leave parts of unequal
// length for any stream count up to 4, and 1-tile ranges run without passes.
TEST_P(MatMulTest, TiledLayoutIsBitIdenticalToRowMajor) {
  struct Shape {
    size_t rows, cols;
  };
  for (const Shape sh : {Shape{8, 16}, Shape{24, 48}, Shape{40, 2048}, Shape{64, 160},
                         Shape{104, 32}, Shape{216, 64}}) {
    ASSERT_TRUE(CanTile(type(), sh.rows, sh.cols));
    const RandomWeights w(type(), sh.rows * sh.cols, 11);
    std::vector<uint8_t> tiled = w.bytes;
    TileMatrix(tiled.data(), type(), sh.rows, sh.cols);
    const size_t eb = WeightTypeBytes(type());
    for (size_t r = 0; r < sh.rows; ++r) {
      for (size_t c = 0; c < sh.cols; ++c) {
        ASSERT_EQ(0, std::memcmp(&tiled[TiledIndex(r, c, sh.cols) * eb],
                                 &w.bytes[(r * sh.cols + c) * eb], eb))
            << "r=" << r << " c=" << c;
      }
    }
    const WeightView rm{w.data(), type(), sh.rows, sh.cols};
    WeightView tv{tiled.data(), type(), sh.rows, sh.cols};
    tv.tiled = true;
    const size_t max_tokens = 9;
    const auto x = RandomFloats(max_tokens * sh.cols, 12);
    struct Range {
      size_t begin, end;
    };
    const Range ranges[] = {{0, sh.rows}, {3, sh.rows - 2}, {sh.rows - 8, sh.rows}, {1, 2}};
    for (size_t n : {1u, 2u, 3u, 4u, 5u, 7u, 9u}) {
      for (const Range rg : ranges) {
        std::vector<float> want(n * sh.rows, -1.0f), got(n * sh.rows, -1.0f);
        MatMul(rm, x.data(), n, sh.cols, want.data(), sh.rows, rg.begin, rg.end);
        MatMul(tv, x.data(), n, sh.cols, got.data(), sh.rows, rg.begin, rg.end);
        ASSERT_EQ(0, std::memcmp(want.data(), got.data(), want.size() * sizeof(float)))
            << sh.rows << "x" << sh.cols << " n=" << n << " rows [" << rg.begin << ", "
            << rg.end << ")";
      }
    }
  }
}

TEST_P(MatMulTest, CanTileNeedsWholeTilesAndWholeChunks) {
  EXPECT_TRUE(CanTile(type(), 16, 32));
  EXPECT_FALSE(CanTile(type(), 12, 32));  // rows not a multiple of kTileRows
  EXPECT_FALSE(CanTile(type(), 16, 40));  // cols not a multiple of kTileCols
  EXPECT_TRUE(CanTile(WeightType::kQ8, 16, 40));  // whole blocks per chunk: any cols
  EXPECT_FALSE(CanTile(WeightType::kQ4, 12, 32));
}

INSTANTIATE_TEST_SUITE_P(
    AllTargets, MatMulTest,
    ::testing::Combine(::testing::ValuesIn(AvailableTargets()),
                       ::testing::Values(WeightType::kF32, WeightType::kBF16, WeightType::kF16)),
    [](const ::testing::TestParamInfo<Param>& info) {
      return std::get<0>(info.param) + "_" + TypeName(std::get<1>(info.param));
    });

}  // namespace
}  // namespace moe::kernels::testing
