// SPDX-License-Identifier: Apache-2.0
// Per-target helpers shared by the kernels TUs: weight loads that widen bf16/f16 to f32 in
// registers, and zero-padded tail loads. Included once per target (foreach_target.h).

// Per-target include guard, the Highway idiom: toggled by foreach_target.h for each target.
#if defined(MOE_KERNELS_SIMD_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef MOE_KERNELS_SIMD_INL_H_
#undef MOE_KERNELS_SIMD_INL_H_
#else
#define MOE_KERNELS_SIMD_INL_H_
#endif

#include <cstring>

#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace moe::kernels {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;
// Upper bound on Lanes(DF()) usable as an array size (Lanes is not constexpr on SVE).
inline constexpr size_t kMaxLanes = HWY_MAX_BYTES / sizeof(float);

// Widens f16 bits to f32 exactly, including subnormals, Inf and NaN (Highway 1.0.3's emulated
// PromoteTo for targets without F16C maps exponent 31 to finite values).
template <class D32, class V16>
HWY_INLINE hn::Vec<D32> F16BitsToF32(D32 df, V16 bits16) {
  const hn::RebindToUnsigned<D32> du;
  const hn::RebindToSigned<D32> di;
  const auto bits = hn::PromoteTo(du, bits16);
  const auto sign = hn::ShiftLeft<31>(hn::ShiftRight<15>(bits));
  const auto exp = hn::And(hn::ShiftRight<10>(bits), hn::Set(du, 0x1F));
  const auto mant = hn::And(bits, hn::Set(du, 0x3FF));
  const auto normal = hn::Or(hn::ShiftLeft<23>(hn::Add(exp, hn::Set(du, 127 - 15))),
                             hn::ShiftLeft<13>(mant));
  const auto inf_nan = hn::Or(hn::Set(du, 0x7F800000u), hn::ShiftLeft<13>(mant));
  // mant · 2^-24 is exact in f32.
  const auto sub = hn::BitCast(
      du, hn::Mul(hn::ConvertTo(df, hn::BitCast(di, mant)), hn::Set(df, 1.0f / 16777216.0f)));
  auto mag = hn::IfThenElse(hn::Eq(exp, hn::Zero(du)), sub, normal);
  mag = hn::IfThenElse(hn::Eq(exp, hn::Set(du, 0x1F)), inf_nan, mag);
  return hn::BitCast(df, hn::Or(sign, mag));
}

// Loads Lanes(df) weights starting at p, widened to f32.
HWY_INLINE VF LoadWeights(DF df, const float* HWY_RESTRICT p) { return hn::LoadU(df, p); }

HWY_INLINE VF LoadWeights(DF df, const hwy::bfloat16_t* HWY_RESTRICT p) {
  const hn::Rebind<hwy::bfloat16_t, DF> dbf;
  return hn::PromoteTo(df, hn::LoadU(dbf, p));
}

HWY_INLINE VF LoadWeights(DF df, const hwy::float16_t* HWY_RESTRICT p) {
#if HWY_ARCH_X86 && (HWY_TARGET <= HWY_AVX2) && !defined(HWY_DISABLE_F16C)
  const hn::Rebind<hwy::float16_t, DF> dh;
  return hn::PromoteTo(df, hn::LoadU(dh, p));  // vcvtph2ps
#else
  const hn::Rebind<uint16_t, DF> du16;
  return F16BitsToF32(df, hn::LoadU(du16, reinterpret_cast<const uint16_t*>(p)));
#endif
}

// Loads the last n < Lanes(df) elements at p, zero-padded to a full vector, widened to f32.
// Goes through the same conversion as full vectors and never reads past p + n.
template <typename T>
HWY_INLINE VF LoadTail(DF df, const T* HWY_RESTRICT p, size_t n) {
  HWY_ALIGN T buf[kMaxLanes] = {};
  std::memcpy(buf, p, n * sizeof(T));
  return LoadWeights(df, buf);
}

// Software prefetch into L2 of [p, p + bytes). Decode streams each weight row once, and rows
// are short (0.4-4 KiB): the hardware prefetchers, which stop at 4 KiB boundaries, barely ramp
// up on a row before it ends. Tiles prefetch the next tile's rows while computing their own.
HWY_INLINE void PrefetchL2(const void* p, size_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (size_t off = 0; off < bytes; off += 64) __builtin_prefetch(c + off, 0, 2);
}

// Sum of lanes in a fixed order (Highway's SumOfLanes is a fixed shuffle tree per target).
HWY_INLINE float ReduceSum(DF df, VF v) { return hn::GetLane(hn::SumOfLanes(df, v)); }

// The tile schedule of every MatMul kernel (float, quantized, quantized-activation). `tile` is
// a generic lambda, called as tile.template operator()<kR, kT>(r, t) for rows [r, r + kR) and
// tokens [t, t + kT). Rows go in tiles of kR and then one at a time. Decode (one token) runs
// kDecodeR-row tiles over the whole range. Prefill keeps row blocks outermost so that a
// block's weights stay in L1/L2 while every token tile (kPrefillR rows × kTokenT tokens)
// reuses them (kBlockRows rows: 16 unless given); the tokens left over run one at a time.
template <size_t kDecodeR, size_t kPrefillR, size_t kTokenT, size_t kBlockRows = 16,
          class TileFn>
HWY_INLINE void ForEachTile(size_t n_tokens, size_t row_begin, size_t row_end,
                            const TileFn& tile) {
  const auto rows = [&]<size_t kR, size_t kT>(size_t rb, size_t re, size_t t) HWY_ATTR {
    size_t r = rb;
    for (; r + kR <= re; r += kR) tile.template operator()<kR, kT>(r, t);
    for (; r < re; ++r) tile.template operator()<1, kT>(r, t);
  };
  if (n_tokens == 1) {
    rows.template operator()<kDecodeR, 1>(row_begin, row_end, 0);
    return;
  }
  for (size_t rb = row_begin; rb < row_end; rb += kBlockRows) {
    const size_t re = HWY_MIN(row_end, rb + kBlockRows);
    size_t t = 0;
    for (; t + kTokenT <= n_tokens; t += kTokenT) {
      rows.template operator()<kPrefillR, kTokenT>(rb, re, t);
    }
    for (; t < n_tokens; ++t) rows.template operator()<kDecodeR, 1>(rb, re, t);
  }
}

// Decode (one token) of a tiled matrix as kS weight streams at once. The whole tiles of rows
// [row_begin, row_end) are split into kS parts, as equal as possible; pass(r) gets kS row
// starts, the k-th tile of each part, for every k the smallest part has; the parts' remaining
// tiles, then the rows after the last whole tile, go one at a time to
// tile.template operator()<kR, 1, true>(r, 0). A core streams from DRAM faster with several
// sequential streams far apart than with one (each brings its own hardware prefetch; measured
// in docs/benchmarks.md, session 14), and which pass computes a row never changes its result.
template <size_t kS, class PassFn, class TileFn>
HWY_INLINE void ForEachTiledDecodePass(size_t row_begin, size_t row_end, const PassFn& pass,
                                       const TileFn& tile) {
  const size_t tiles = (row_end - row_begin) / kTileRows;
  const size_t per = tiles / kS, extra = tiles % kS;
  size_t first[kS];  // part s: tiles [first[s], first[s] + per + (s < extra))
  for (size_t s = 0, k = 0; s < kS; k += per + (s < extra ? 1 : 0), ++s) first[s] = k;
  for (size_t k = 0; k < per; ++k) {
    size_t r[kS];
    for (size_t s = 0; s < kS; ++s) r[s] = row_begin + (first[s] + k) * kTileRows;
    pass(r);
  }
  for (size_t s = 0; s < extra; ++s) {
    tile.template operator()<kTileRows, 1, true>(row_begin + (first[s] + per) * kTileRows, 0);
  }
  for (size_t r = row_begin + tiles * kTileRows; r < row_end; ++r) {
    tile.template operator()<1, 1, true>(r, 0);
  }
}

// Where a quantized (q8/q4) matrix's row r starts, and how far apart its blocks are, row-major
// or tiled (kernels.h TiledBlockOffset).
template <bool kTiled>
HWY_INLINE size_t QuantRowBase(size_t r, size_t row_bytes, size_t block_bytes) {
  return kTiled ? TiledBlockOffset(r, 0, row_bytes, block_bytes) : r * row_bytes;
}
template <bool kTiled>
constexpr size_t QuantBlockStride(size_t block_bytes) {
  return kTiled ? kTileRows * block_bytes : block_bytes;
}

// ForEachTile over a row-major or tiled (kernels.h) matrix: `tile` is called as
// tile.template operator()<kR, kT, kTiled>(r, t), and tiled matrices take kTiledPrefillR ×
// kTiledTokenT prefill tiles over row blocks of kTiledBlockRows (matmul.cc: a whole 8-row tile
// per pass; matmul_qacts.cc on 16-register targets: 4 × 2 over single tiles).
template <size_t kDecodeR, size_t kPrefillR, size_t kTokenT, size_t kTiledPrefillR,
          size_t kTiledTokenT, size_t kTiledBlockRows = 16, class TileFn>
HWY_INLINE void ForEachTileOf(bool tiled, size_t n_tokens, size_t row_begin, size_t row_end,
                              const TileFn& tile) {
  if (tiled) {
    ForEachTile<kDecodeR, kTiledPrefillR, kTiledTokenT, kTiledBlockRows>(
        n_tokens, row_begin, row_end, [&]<size_t kR, size_t kT>(size_t r, size_t t) HWY_ATTR {
          tile.template operator()<kR, kT, true>(r, t);
        });
  } else {
    ForEachTile<kDecodeR, kPrefillR, kTokenT>(
        n_tokens, row_begin, row_end, [&]<size_t kR, size_t kT>(size_t r, size_t t) HWY_ATTR {
          tile.template operator()<kR, kT, false>(r, t);
        });
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace moe::kernels
HWY_AFTER_NAMESPACE();

#endif  // MOE_KERNELS_SIMD_INL_H_
