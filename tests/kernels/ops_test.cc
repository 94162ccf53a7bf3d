// SPDX-License-Identifier: Apache-2.0
// Vector kernels on every compiled target against the scalar reference: tails 1..67, guard
// sentinels after every output, special values where they are meaningful.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include "kernel_test_util.h"
#include "kernels/kernels.h"
#include "kernels/reference.h"
#include "kernels/target_select.h"

namespace moe::kernels::testing {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// got ≈ want: NaN ⇔ NaN, equal infinities, else |got − want| ≤ rel·|want| + abs.
::testing::AssertionResult Near(float got, float want, double rel, double abs) {
  if (std::isnan(want) ? std::isnan(got)
      : std::isinf(want) ? got == want
                         : std::fabs(static_cast<double>(got) - want) <= rel * std::fabs(want) + abs) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "got " << got << " want " << want;
}

using OpsTest = PerTargetTest;

TEST_P(OpsTest, ToFloatIsExactForEveryBf16AndF16BitPattern) {
  for (WeightType type : {WeightType::kBF16, WeightType::kF16}) {
    const size_t n = 65536 + 13;  // every pattern, then a tail
    RandomWeights w(type, n, 1);
    for (size_t i = 0; i < n; ++i) w.SetBits16(i, static_cast<uint16_t>(i * 40503u));
    for (size_t i = 0; i < 65536; ++i) w.SetBits16(i, static_cast<uint16_t>(i));
    Guarded got(n);
    ToFloat(w.data(), type, n, got.data());
    std::vector<float> want(n);
    reference::ToFloat(w.data(), type, n, want.data());
    ASSERT_TRUE(got.GuardIntact());
    for (size_t i = 0; i < n; ++i) {
      if (std::isnan(want[i])) {
        ASSERT_TRUE(std::isnan(got.buf[i])) << i;
      } else {
        ASSERT_EQ(0, std::memcmp(&got.buf[i], &want[i], 4)) << "pattern " << i;
      }
    }
  }
}

TEST_P(OpsTest, ToFloatTails) {
  for (WeightType type : {WeightType::kF32, WeightType::kBF16, WeightType::kF16}) {
    for (size_t n = 0; n <= 67; ++n) {
      const RandomWeights w(type, n, static_cast<uint32_t>(n));
      Guarded got(n);
      ToFloat(w.data(), type, n, got.data());
      ASSERT_TRUE(got.GuardIntact()) << n;
      for (size_t i = 0; i < n; ++i) ASSERT_EQ(got.buf[i], reference::LoadWeight(w.data(), type, i));
    }
  }
}

TEST_P(OpsTest, RmsNormMatchesReference) {
  for (WeightType type : {WeightType::kF32, WeightType::kBF16, WeightType::kF16}) {
    for (size_t n : {1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65, 67, 128, 2048, 2053}) {
      const RandomWeights w(type, n, 3);
      const auto x = RandomFloats(n, static_cast<uint32_t>(n), -3.0f, 3.0f);
      Guarded got(n);
      RmsNorm(x.data(), w.data(), type, n, 1e-6f, got.data());
      std::vector<float> want(n);
      reference::RmsNorm(x.data(), w.data(), type, n, 1e-6f, want.data());
      ASSERT_TRUE(got.GuardIntact());
      for (size_t i = 0; i < n; ++i) ASSERT_TRUE(Near(got.buf[i], want[i], 1e-5, 1e-30)) << n;
      // In place (out aliases x) gives the same bits.
      std::vector<float> in_place = x;
      RmsNorm(in_place.data(), w.data(), type, n, 1e-6f, in_place.data());
      ASSERT_EQ(0, std::memcmp(in_place.data(), got.data(), n * 4));
    }
  }
}

TEST_P(OpsTest, SiluMulMatchesReferenceIncludingSpecialValues) {
  for (size_t n = 1; n <= 67; ++n) {
    auto gate = RandomFloats(n, static_cast<uint32_t>(n), -20.0f, 20.0f);
    const auto up = RandomFloats(n, 100 + static_cast<uint32_t>(n), -2.0f, 2.0f);
    const float specials[] = {-kInf, kInf, kNaN, -100.0f, 100.0f, -88.5f, -87.9f, 0.0f, -0.0f,
                              1e-40f, -1e-40f, 3e38f, -3e38f};
    for (size_t i = 0; i < n && i < std::size(specials); ++i) gate[(i * 7) % n] = specials[i];
    Guarded got(n);
    std::copy_n(gate.data(), n, got.data());
    SiluMul(got.data(), up.data(), n);
    std::vector<float> want = gate;
    reference::SiluMul(want.data(), up.data(), n);
    ASSERT_TRUE(got.GuardIntact());
    for (size_t i = 0; i < n; ++i) {
      ASSERT_TRUE(Near(got.buf[i], want[i], 4e-6, 1e-36)) << "gate " << gate[i] << " n=" << n;
    }
  }
}

TEST_P(OpsTest, SoftmaxMatchesReference) {
  for (size_t n = 1; n <= 67; ++n) {
    const auto x = RandomFloats(n, static_cast<uint32_t>(n), -10.0f, 10.0f);
    Guarded got(n);
    std::copy_n(x.data(), n, got.data());
    Softmax(got.data(), n);
    std::vector<float> want = x;
    reference::Softmax(want.data(), n);
    ASSERT_TRUE(got.GuardIntact());
    for (size_t i = 0; i < n; ++i) ASSERT_TRUE(Near(got.buf[i], want[i], 4e-6, 1e-12)) << n;
  }
}

TEST_P(OpsTest, SoftmaxMasksMinusInfAndPropagatesNan) {
  for (size_t n : {3, 17, 67}) {
    auto x = RandomFloats(n, 5);
    x[0] = -kInf;
    x[n - 1] = -kInf;  // in the tail for most widths
    std::vector<float> got = x, want = x;
    Softmax(got.data(), n);
    reference::Softmax(want.data(), n);
    EXPECT_EQ(got[0], 0.0f);
    EXPECT_EQ(got[n - 1], 0.0f);
    for (size_t i = 0; i < n; ++i) ASSERT_TRUE(Near(got[i], want[i], 4e-6, 1e-12));
    for (float special : {kNaN, kInf}) {
      got = x;
      got[n / 2] = special;
      Softmax(got.data(), n);
      for (size_t i = 0; i < n; ++i) EXPECT_TRUE(std::isnan(got[i])) << special << " " << i;
    }
  }
}

TEST_P(OpsTest, DotAxpyScaleMatchReference) {
  for (size_t n = 0; n <= 67; ++n) {
    const auto a = RandomFloats(n, 1 + static_cast<uint32_t>(n));
    const auto b = RandomFloats(n, 2 + static_cast<uint32_t>(n));
    double sum_abs = 0.0;
    for (size_t i = 0; i < n; ++i) sum_abs += std::fabs(static_cast<double>(a[i]) * b[i]);
    ASSERT_TRUE(WithinSumBound(Dot(a.data(), b.data(), n), reference::Dot(a.data(), b.data(), n),
                               n, sum_abs));

    Guarded y(n);
    std::copy_n(b.data(), n, y.data());
    Axpy(-1.75f, a.data(), y.data(), n);
    std::vector<float> want = b;
    reference::Axpy(-1.75f, a.data(), want.data(), n);
    ASSERT_TRUE(y.GuardIntact());
    for (size_t i = 0; i < n; ++i) {
      const double bound = 2 * kUnitRoundoff * (std::fabs(1.75 * a[i]) + std::fabs(b[i]));
      ASSERT_LE(std::fabs(static_cast<double>(y.buf[i]) - want[i]), bound) << n;
    }

    Guarded s(n);
    std::copy_n(a.data(), n, s.data());
    Scale(0.3f, s.data(), n);
    want = a;
    reference::Scale(0.3f, want.data(), n);
    ASSERT_TRUE(s.GuardIntact());
    ASSERT_TRUE(n == 0 || std::memcmp(s.data(), want.data(), n * 4) == 0) << n;  // exact
  }
}

TEST_P(OpsTest, AttentionHelpersMatchReference) {
  // Query heads run 4, 2 and 1 at a time; keys in blocks of 2-8 vectors, then one at a time;
  // the weighted sum's head_dim in blocks of vectors, single vectors and a partial one: counts
  // around every boundary.
  struct Case {
    size_t heads, head_dim, n_keys;
  };
  for (const Case& c : std::vector<Case>{
           {1, 1, 23}, {1, 5, 1}, {2, 16, 23}, {3, 64, 3}, {1, 67, 23}, {8, 128, 4},
           {4, 128, 16}, {5, 128, 17}, {8, 128, 129}, {7, 200, 9}, {1, 256, 7}, {6, 260, 5},
           {16, 64, 256}, {8, 128, 33}}) {
    const size_t H = c.heads, head_dim = c.head_dim, n_keys = c.n_keys;
    SCOPED_TRACE(::testing::Message() << "heads " << H << " head_dim " << head_dim << " n_keys "
                                      << n_keys);
    const size_t tiles = (n_keys + kKeyTile - 1) / kKeyTile;
    const auto q = RandomFloats(H * head_dim, 1);
    auto k = RandomFloats(tiles * kKeyTile * head_dim, 2);
    // Lanes past n_keys in the last tile are read and must not matter.
    for (size_t j = n_keys; j < tiles * kKeyTile; ++j) {
      for (size_t d = 0; d < head_dim; ++d) {
        k[KeyTileIndex(j, d, head_dim)] = std::numeric_limits<float>::quiet_NaN();
      }
    }
    const size_t s_stride = n_keys + 3;  // score rows apart, as the session's [head][ctx]
    AttentionScoresArgs args{q.data(), H, k.data(), n_keys, head_dim, 0.125f, s_stride};
    Guarded scores(H * s_stride);
    std::vector<float> want(H * s_stride, -7.0f);
    std::fill_n(scores.data(), H * s_stride, -7.0f);
    AttentionScores(args, scores.data());
    reference::AttentionScores(args, want.data());
    ASSERT_TRUE(scores.GuardIntact());
    for (size_t h = 0; h < H; ++h) {
      for (size_t j = 0; j < s_stride; ++j) {
        const size_t at = h * s_stride + j;
        if (j >= n_keys) {  // between rows: untouched
          ASSERT_EQ(scores.buf[at], -7.0f) << h << " " << j;
          continue;
        }
        double sum_abs = 0.0;
        for (size_t d = 0; d < head_dim; ++d) {
          sum_abs += std::fabs(q[h * head_dim + d] * k[KeyTileIndex(j, d, head_dim)]);
        }
        ASSERT_TRUE(WithinSumBound(scores.buf[at], want[at], head_dim + 1, 0.125 * sum_abs))
            << h << " " << j;
      }
    }

    const size_t v_stride = head_dim + 9;  // values of one KV head among others
    const size_t o_stride = head_dim + 2;
    const auto v = RandomFloats(n_keys * v_stride, 5);
    const auto p = RandomFloats(H * s_stride, 3, 0.0f, 1.0f);
    const auto init = RandomFloats(H * o_stride, 4);
    Guarded out(H * o_stride);
    std::copy_n(init.data(), H * o_stride, out.data());
    std::vector<float> want_out = init;
    AttentionWeightedSumArgs w{p.data(), s_stride, H, v.data(), v_stride, n_keys, head_dim,
                               out.data(), o_stride};
    AttentionWeightedSum(w);
    w.out = want_out.data();
    reference::AttentionWeightedSum(w);
    ASSERT_TRUE(out.GuardIntact());
    for (size_t h = 0; h < H; ++h) {
      for (size_t d = 0; d < o_stride; ++d) {
        const size_t at = h * o_stride + d;
        if (d >= head_dim) {  // between rows: untouched
          ASSERT_EQ(out.buf[at], init[at]) << h << " " << d;
          continue;
        }
        double sum_abs = std::fabs(init[at]);
        for (size_t j = 0; j < n_keys; ++j) {
          sum_abs += std::fabs(p[h * s_stride + j] * v[j * v_stride + d]);
        }
        ASSERT_TRUE(WithinSumBound(out.buf[at], want_out[at], n_keys + 1, sum_abs))
            << h << " " << d;
      }
    }
  }
}

TEST_P(OpsTest, RopeRotateHalfMatchesReference) {
  for (size_t head_dim = 2; head_dim <= 134; head_dim += 2) {
    const size_t h = head_dim / 2;
    const auto x = RandomFloats(head_dim, static_cast<uint32_t>(head_dim), -4.0f, 4.0f);
    std::vector<float> cos(h), sin(h);
    for (size_t i = 0; i < h; ++i) {
      const double angle = 37.0 * std::pow(1e6, -2.0 * i / head_dim);
      cos[i] = static_cast<float>(std::cos(angle));
      sin[i] = static_cast<float>(std::sin(angle));
    }
    Guarded got(head_dim);
    std::copy_n(x.data(), head_dim, got.data());
    RopeRotateHalf(got.data(), cos.data(), sin.data(), head_dim);
    std::vector<float> want = x;
    reference::RopeRotateHalf(want.data(), cos.data(), sin.data(), head_dim);
    ASSERT_TRUE(got.GuardIntact());
    for (size_t i = 0; i < h; ++i) {
      const double mag = std::fabs(x[i] * cos[i]) + std::fabs(x[i + h] * sin[i]) +
                         std::fabs(x[i + h] * cos[i]) + std::fabs(x[i] * sin[i]);
      ASSERT_NEAR(got.buf[i], want[i], 3 * kUnitRoundoff * mag) << head_dim;
      ASSERT_NEAR(got.buf[i + h], want[i + h], 3 * kUnitRoundoff * mag) << head_dim;
    }
  }
}

TEST_P(OpsTest, XorFoldEqualsScalarFoldForAllLengths) {
  std::vector<uint64_t> w(300);
  uint64_t state = 0x9e3779b97f4a7c15ull;
  for (uint64_t& x : w) x = state = state * 6364136223846793005ull + 1442695040888963407ull;
  for (size_t n = 0; n <= w.size(); n += n < 40 ? 1 : 37) {
    uint64_t expect = 0;
    for (size_t i = 0; i < n; ++i) expect ^= w[i];
    EXPECT_EQ(XorFold(w.data(), n * 8 + 5), expect) << "n=" << n;  // + partial word ignored
  }
}

// The memory probe's per-target folds: one distinct fold per available Highway target (AVX3_VNNI
// is AVX3's), each equal to the scalar fold.
TEST(XorFoldPerTargetTest, OneFoldPerAvailableTargetEachExact) {
  std::vector<uint64_t> w(1000);
  uint64_t state = 0x2545f4914f6cdd1dull, expect = 0;
  for (uint64_t& x : w) expect ^= x = state = state * 6364136223846793005ull + 1;
  const std::vector<XorFoldFn> fns = XorFoldPerTarget();
  ASSERT_EQ(fns.size(), static_cast<size_t>(__builtin_popcountll(AvailableTargetBits())));
  for (size_t i = 0; i < fns.size(); ++i) {
    EXPECT_EQ(fns[i](w.data(), w.size() * 8), expect) << "target " << i;
    for (size_t j = 0; j < i; ++j) EXPECT_NE(fns[i], fns[j]) << "targets " << i << ", " << j;
  }
}

INSTANTIATE_TEST_SUITE_P(AllTargets, OpsTest, ::testing::ValuesIn(AvailableTargets()),
                         TargetParamName);

}  // namespace
}  // namespace moe::kernels::testing
