// SPDX-License-Identifier: Apache-2.0
// Block quantization of weight rows (kernels.h kQ8/kQ4), one Highway implementation per target:
// `moestream convert --quant`, `--dense-quant` at load and the lm_head shadow. Every target
// writes the bytes of reference::QuantizeRow (tests): max|x| is exact in any order, d and 1/d
// are the same scalar f32 operations, x · (1/d) is one f32 multiply per lane, and the rounding
// (half away from zero) is done exactly on the product.
#include "kernels/targets.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "kernels/kernels.h"
#include "kernels/reference.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/quantize.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace moe::kernels {
namespace HWY_NAMESPACE {
namespace {

namespace hn = hwy::HWY_NAMESPACE;
using DQ = hn::CappedTag<float, kQuantBlock>;

// Round half away from zero of finite v, exactly: t = trunc(v) and v − t are exact in f32, so
// |v − t| ≥ 0.5 decides the step away from zero without the double rounding of v ± 0.5.
template <class V>
HWY_INLINE V RoundHalfAway(DQ d, V v) {
  const V t = hn::Trunc(v);
  const auto away = hn::Ge(hn::Abs(hn::Sub(v, t)), hn::Set(d, 0.5f));
  return hn::Add(t, hn::IfThenElseZero(away, hn::CopySign(hn::Set(d, 1.0f), v)));
}

// One block of 32 finite-or-not floats (zero-padded) → d and 32 int32 quants in q.
HWY_INLINE float QuantizeBlock(const float* HWY_RESTRICT x, int qmax, int qmin,
                               int32_t* HWY_RESTRICT q) {
  const DQ d;
  const hn::Rebind<int32_t, DQ> di;
  const size_t N = hn::Lanes(d);
  // max|x| and a finiteness probe (x · 0 is NaN exactly for NaN and ±Inf), as QuantizeActs.
  auto vmax = hn::Zero(d), probe = hn::Zero(d);
  for (size_t k = 0; k < kQuantBlock; k += N) {
    const auto v = hn::LoadU(d, x + k);
    vmax = hn::Max(vmax, hn::Abs(v));
    probe = hn::Add(probe, hn::Mul(v, hn::Zero(d)));
  }
  if (!(hn::GetLane(hn::SumOfLanes(d, probe)) == 0.0f)) {
    std::memset(q, 0, kQuantBlock * sizeof(int32_t));
    return std::numeric_limits<float>::quiet_NaN();
  }
  const float amax = hn::GetLane(hn::MaxOfLanes(d, vmax));
  const float scale = amax / static_cast<float>(qmax);
  const float inv = scale > 0 ? 1.0f / scale : 0.0f;
  // 1/d overflows for tiny subnormal d: divide instead (reference.cc, the same rule).
  const bool divide = std::isinf(inv);
  const auto vinv = hn::Set(d, inv), vd = hn::Set(d, scale);
  const auto hi = hn::Set(d, static_cast<float>(qmax)), lo = hn::Set(d, static_cast<float>(qmin));
  for (size_t k = 0; k < kQuantBlock; k += N) {
    const auto v = hn::LoadU(d, x + k);
    const auto s = divide ? hn::Div(v, vd) : hn::Mul(v, vinv);
    const auto r = hn::Min(hn::Max(RoundHalfAway(d, s), lo), hi);
    hn::StoreU(hn::ConvertTo(di, r), di, q + k);
  }
  return scale;
}

}  // namespace

void QuantizeRowImpl(const float* src, size_t n, WeightType t, void* dst) {
  const int qmax = t == WeightType::kQ8 ? 127 : 7;
  const int qmin = t == WeightType::kQ8 ? -127 : -8;
  const size_t nb = (n + kQuantBlock - 1) / kQuantBlock;
  const size_t bb = QuantBlockBytes(t);
  auto* p = static_cast<uint8_t*>(dst);
  HWY_ALIGN float pad[kQuantBlock];
  HWY_ALIGN int32_t q[kQuantBlock];
  for (size_t b = 0; b < nb; ++b, p += bb) {
    const float* x = src + b * kQuantBlock;
    if ((b + 1) * kQuantBlock > n) {  // the last, partial block: zero-padded
      std::memset(pad, 0, sizeof(pad));
      std::memcpy(pad, x, (n - b * kQuantBlock) * sizeof(float));
      x = pad;
    }
    const float scale = QuantizeBlock(x, qmax, qmin, q);
    std::memcpy(p, &scale, 4);
    const hn::CappedTag<int32_t, kQuantBlock> di;
    const hn::Rebind<int8_t, decltype(di)> d8;
    const hn::Rebind<uint8_t, decltype(di)> du8;
    const size_t N = hn::Lanes(di);
    if (t == WeightType::kQ8) {
      for (size_t k = 0; k < kQuantBlock; k += N) {
        hn::StoreU(hn::DemoteTo(d8, hn::LoadU(di, q + k)), d8,
                   reinterpret_cast<int8_t*>(p + 4 + k));
      }
    } else {
      // Byte j: element j + 8 in the low nibble, element j + 16 + 8 in the high one.
      const auto eight = hn::Set(di, 8);
      for (size_t k = 0; k < kQuantBlock / 2; k += N) {
        const auto lo4 = hn::Add(hn::LoadU(di, q + k), eight);
        const auto hi4 = hn::Add(hn::LoadU(di, q + 16 + k), eight);
        hn::StoreU(hn::DemoteTo(du8, hn::Or(lo4, hn::ShiftLeft<4>(hi4))), du8, p + 4 + k);
      }
    }
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace moe::kernels
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "kernels/target_select.h"

namespace moe::kernels {

HWY_EXPORT(QuantizeRowImpl);

[[maybe_unused]] static const bool kTargetFromEnv = ApplyTargetFromEnv();

void QuantizeRow(const float* src, size_t n, WeightType t, void* dst) {
  HWY_DYNAMIC_DISPATCH(QuantizeRowImpl)(src, n, t, dst);
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
#endif  // HWY_ONCE
