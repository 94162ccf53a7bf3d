// SPDX-License-Identifier: Apache-2.0
// Block-quantized weights (kQ8, kQ4) × block-quantized activations (int16): the fast path for
// quantized matrices (kernels.h QuantizeActs / MatMulQuantizedActs). The inner loop is an exact
// integer dot product — widen the weights to int16, multiply-add pairs into int32 (vpmaddwd on
// x86) — with one f32 conversion and FMA per block, instead of converting every weight to f32:
// half the vector instructions per weight of matmul.cc's f32-activation path, which matters
// because quantized decode is close to compute-bound at the memory bandwidth of 2 threads.
//
// Per output element the sequence is fixed whatever n_tokens, the row range or the thread
// split: for each block b, a lane-wise int32 sum of the block's products (exact), converted to
// f32 and accumulated as acc = MulAdd(f32(sum), d_w·d_x, acc); then a fixed lane reduction.
// On x86 AVX2 and AVX-512, q4 takes its own kernel, qacts_x86-inl.h (nibble bytes times the
// activations' high and low bytes), with the same guarantees; so does q8 where the kernels run
// AVX3_VNNI (vpdpbusd on the weights' and activations' bytes, 4 rows per vector).
#include "kernels/targets.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/kernels.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/matmul_qacts.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "kernels/simd-inl.h"
#include "kernels/qacts_x86-inl.h"

HWY_BEFORE_NAMESPACE();
namespace moe::kernels {
namespace HWY_NAMESPACE {
namespace {

#define MOE_UNROLL HWY_UNROLL(16)

// int16 lanes, their pairwise int32 sums, and f32 lanes of the same count. A lane group is half
// a 32-value block (16 lanes), or on AVX-512 the whole block (32 lanes: one widening multiply-add
// and one scale FMA per block instead of two and one; measured in docs/benchmarks.md, session 9).
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
using D16 = hn::CappedTag<int16_t, 32>;
#else
using D16 = hn::CappedTag<int16_t, 16>;
#endif
using D32 = hn::RepartitionToWide<D16>;
using DF = hn::Rebind<float, D32>;
using V16 = hn::Vec<D16>;
using V32 = hn::Vec<D32>;
using VF32 = hn::Vec<DF>;

}  // namespace

// --- QuantizeActs: per block, d = max|x| / 32767, q = nearest-even(x / d) (kernels.h).
using DX = hn::CappedTag<float, 16>;

void QuantizeActsImpl(const float* x, size_t n_tokens, size_t x_stride, size_t cols, int16_t* q,
                      float* d) {
  const DX dx;
  const hn::Rebind<int32_t, DX> di;
  const hn::Rebind<int16_t, DX> dh;
  const size_t N = hn::Lanes(dx);
  const size_t nb = ActBlocks(cols);
  HWY_ALIGN float buf[kQuantBlock];
  for (size_t t = 0; t < n_tokens; ++t) {
    const float* xt = x + t * x_stride;
    int16_t* qt = q + t * nb * kQuantBlock;
    for (size_t b = 0; b < nb; ++b) {
      const size_t c0 = b * kQuantBlock;
      const float* src = xt + c0;
      if (c0 + kQuantBlock > cols) {  // the last, partial block: zero-padded
        std::memset(buf, 0, sizeof(buf));
        std::memcpy(buf, src, (cols - c0) * sizeof(float));
        src = buf;
      }
      // max|x| and a finiteness probe (x · 0 is NaN exactly for NaN and ±Inf).
      auto vmax = hn::Zero(dx), probe = hn::Zero(dx);
      for (size_t k = 0; k < kQuantBlock; k += N) {
        const auto v = hn::LoadU(dx, src + k);
        vmax = hn::Max(vmax, hn::Abs(v));
        probe = hn::Add(probe, hn::Mul(v, hn::Zero(dx)));
      }
      const float m = hn::GetLane(hn::MaxOfLanes(dx, vmax));
      const bool finite = hn::GetLane(hn::SumOfLanes(dx, probe)) == 0.0f;
      float scale = finite ? m / 32767.0f : std::numeric_limits<float>::quiet_NaN();
      int16_t* qb = qt + c0;
      if (!finite || !(scale > 0.0f)) {  // non-finite, all-zero, or d underflowed to 0
        if (finite) scale = 0.0f;
        std::memset(qb, 0, kQuantBlock * sizeof(int16_t));
      } else {
        const auto vs = hn::Set(dx, scale);
        const auto lim = hn::Set(dx, 32767.0f);
        for (size_t k = 0; k < kQuantBlock; k += N) {
          auto v = hn::Round(hn::Div(hn::LoadU(dx, src + k), vs));
          v = hn::Min(hn::Max(v, hn::Neg(lim)), lim);
          hn::StoreU(hn::DemoteTo(dh, hn::ConvertTo(di, v)), dh, qb + k);
        }
      }
      d[t * nb + b] = scale;
    }
  }
}

namespace {

// --- MatMulQuantizedActs.
struct QAArgs {
  const uint8_t* w;
  size_t row_bytes, n_blocks;
  const int16_t* xq;
  const float* xd;
  float* y;
  size_t y_stride;
};

// Weights [k, k + N16) of one block, as int16 (q8: q; q4: nibble − 8).
template <WeightType kW>
HWY_INLINE V16 LoadW16(D16 d16, const uint8_t* HWY_RESTRICT blk, size_t k) {
  if constexpr (kW == WeightType::kQ8) {
    const hn::Rebind<int8_t, D16> d8;
    return hn::PromoteTo(d16, hn::LoadU(d8, reinterpret_cast<const int8_t*>(blk + 4 + k)));
  } else {  // AVX2 and AVX3 run q4 in qacts_x86-inl.h instead
    const hn::Rebind<uint8_t, D16> du8;
    auto v = hn::PromoteTo(d16, hn::LoadU(du8, blk + 4 + (k & 15)));
    v = k < 16 ? hn::And(v, hn::Set(d16, 15)) : hn::ShiftRight<4>(v);
    return hn::Sub(v, hn::Set(d16, 8));
  }
}

// Register budget of Tile: 2·kR·kT accumulators (acc, s0; s1 is unused and removed on x86) +
// kT x vectors + 1 weight vector, within 16 vector registers on AVX2/SSE4, 32 on AVX-512.
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
constexpr size_t kDecodeRows = 8, kPrefillRows = 2;
#else
constexpr size_t kDecodeRows = 6, kPrefillRows = 1;
#endif
constexpr size_t kTokenTile = 4;
// Prefill over a tiled matrix: kTiledPrefillRows × kTiledTokenTile tiles over row blocks of
// kTiledBlockRows, each tile prefetching its block group kTiledPrefetchBlocks ahead (0: none).
// A row's blocks lie kTileRows blocks apart there, which the hardware prefetchers follow poorly;
// on AVX2 (Zen 3, expert shape 768 × 2048, 1 thread; docs/benchmarks.md, session 16) the row
// tiles' 1 × 4 read 1.8 GB/s of weights at 16 tokens and 3.9 at 4 against 2.4 and 8.0 row-major,
// 4 × 2 over single 8-row tiles with the prefetch 2.2 and 7.3 (2 tokens: as fast as row-major).
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
constexpr size_t kTiledPrefillRows = kPrefillRows, kTiledTokenTile = kTokenTile;
constexpr size_t kTiledBlockRows = 16, kTiledPrefetchBlocks = 0;
#else
constexpr size_t kTiledPrefillRows = 4, kTiledTokenTile = 2;
constexpr size_t kTiledBlockRows = kTileRows, kTiledPrefetchBlocks = 4;
#endif

template <size_t kR, size_t kT, WeightType kW, bool kTiled>
HWY_INLINE void Tile(const QAArgs& a, size_t r, size_t t) {
  const D16 d16;
  const D32 d32;
  const DF df;
  const size_t N16 = hn::Lanes(d16);
  constexpr size_t bb = QuantBlockBytes(kW);
  constexpr size_t bs = QuantBlockStride<kTiled>(bb);
  const uint8_t* HWY_RESTRICT w[kR];
  MOE_UNROLL
  for (size_t i = 0; i < kR; ++i) w[i] = a.w + QuantRowBase<kTiled>(r + i, a.row_bytes, bb);
  const int16_t* HWY_RESTRICT xq[kT];
  const float* HWY_RESTRICT xd[kT];
  MOE_UNROLL
  for (size_t j = 0; j < kT; ++j) {
    xq[j] = a.xq + (t + j) * a.n_blocks * kQuantBlock;
    xd[j] = a.xd + (t + j) * a.n_blocks;
  }
  VF32 acc[kR][kT];
  MOE_UNROLL
  for (size_t i = 0; i < kR; ++i) {
    MOE_UNROLL
    for (size_t j = 0; j < kT; ++j) acc[i][j] = hn::Zero(df);
  }
  // Decode, row-major: prefetch the next tile's rows (contiguous after this tile's), kR blocks
  // per block, as matmul.cc does: short rows end before the hardware prefetchers ramp up.
  // Tiled, a tile is one sequential stream.
  const uint8_t* next = a.w + (r + kR) * a.row_bytes;
  // Tiled prefill: the first row of r's tile, whose block groups are prefetched.
  const uint8_t* tile = a.w + QuantRowBase<kTiled>(r - r % kTileRows, a.row_bytes, bb);
  for (size_t b = 0; b < a.n_blocks; ++b) {
    if constexpr (kT == 1 && !kTiled) PrefetchL2(next + b * kR * bb, kR * bb);
    if constexpr (kTiled && kT > 1 && kTiledPrefetchBlocks > 0) {
      // The whole block group (all kTileRows rows of block b + distance) of r's tile.
      if (b + kTiledPrefetchBlocks < a.n_blocks) {
        PrefetchL2(tile + (b + kTiledPrefetchBlocks) * bs, bs);
      }
    }
    V32 s0[kR][kT], s1[kR][kT];
    MOE_UNROLL
    for (size_t i = 0; i < kR; ++i) {
      MOE_UNROLL
      for (size_t j = 0; j < kT; ++j) s0[i][j] = s1[i][j] = hn::Zero(d32);
    }
    MOE_UNROLL
    for (size_t k = 0; k < kQuantBlock; k += N16) {
      V16 xv[kT];
      MOE_UNROLL
      for (size_t j = 0; j < kT; ++j) xv[j] = hn::LoadU(d16, xq[j] + b * kQuantBlock + k);
      MOE_UNROLL
      for (size_t i = 0; i < kR; ++i) {
        const V16 wv = LoadW16<kW>(d16, w[i] + b * bs, k);
        MOE_UNROLL
        for (size_t j = 0; j < kT; ++j) {
          s0[i][j] = hn::ReorderWidenMulAccumulate(d32, wv, xv[j], s0[i][j], s1[i][j]);
        }
      }
    }
    MOE_UNROLL
    for (size_t i = 0; i < kR; ++i) {
      float dw;
      std::memcpy(&dw, w[i] + b * bs, 4);
      MOE_UNROLL
      for (size_t j = 0; j < kT; ++j) {
        const VF32 s = hn::ConvertTo(df, hn::RearrangeToOddPlusEven(s0[i][j], s1[i][j]));
        acc[i][j] = hn::MulAdd(s, hn::Set(df, dw * xd[j][b]), acc[i][j]);
      }
    }
  }
  MOE_UNROLL
  for (size_t j = 0; j < kT; ++j) {
    MOE_UNROLL
    for (size_t i = 0; i < kR; ++i) {
      a.y[(t + j) * a.y_stride + r + i] = hn::GetLane(hn::SumOfLanes(df, acc[i][j]));
    }
  }
}

// Decode of a tiled matrix: DecodeStreams<kW>() tiles from far-apart parts of the row range per
// pass (simd-inl.h ForEachTiledDecodePass), as matmul.cc does. Within each block the streams run
// one after another with the same x; each row's sequence is Tile's, so results are
// bit-identical. 4 streams hold 32 accumulators + one tile's 8 block sums + x + w, more than
// AVX-512's 32 registers, and still stream fastest: q8 lm_head shape (decode_stream_bench --type
// q8 --layout tiles, 2 threads, Zen 5) 1 stream 75-83 % of the memory probe, 2: 83-97 %, 4:
// 84-101 % (docs/benchmarks.md, session 14). On AVX2 (16 registers: the accumulators spill to
// L1, touched once per block) q8 with 3 streams read 91-110 % of the probe against 79-87 % for
// the 6-row row-major tiles, 5 rounds of 5 on Zen 3 (session 16); q4, then bound by its
// unpacking, lost (63-82 % against 71-89 %) and stays row-major there (its x86 kernels,
// qacts_x86-inl.h, follow this: streams on AVX-512 only). 0: no tiled decode kernel (a tiled
// matrix then runs the row tiles, which read its 8-row tiles kDecodeRows rows at a time).
template <WeightType kW>
constexpr size_t DecodeStreams() {
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
  return 4;
#elif HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
  return kW == WeightType::kQ8 ? 3 : 0;
#else
  return 0;
#endif
}

template <size_t kS, WeightType kW>
HWY_INLINE void TiledDecodeStreams(const QAArgs& a, const size_t (&r)[kS]) {
  const D16 d16;
  const D32 d32;
  const DF df;
  const size_t N16 = hn::Lanes(d16);
  constexpr size_t bb = QuantBlockBytes(kW);
  constexpr size_t bs = QuantBlockStride<true>(bb);
  const uint8_t* HWY_RESTRICT w[kS][kTileRows];
  VF32 acc[kS][kTileRows];
  MOE_UNROLL
  for (size_t s = 0; s < kS; ++s) {
    MOE_UNROLL
    for (size_t i = 0; i < kTileRows; ++i) {
      w[s][i] = a.w + QuantRowBase<true>(r[s] + i, a.row_bytes, bb);
      acc[s][i] = hn::Zero(df);
    }
  }
  for (size_t b = 0; b < a.n_blocks; ++b) {
    MOE_UNROLL
    for (size_t s = 0; s < kS; ++s) {
      V32 s0[kTileRows], s1[kTileRows];
      MOE_UNROLL
      for (size_t i = 0; i < kTileRows; ++i) s0[i] = s1[i] = hn::Zero(d32);
      MOE_UNROLL
      for (size_t k = 0; k < kQuantBlock; k += N16) {
        const V16 xv = hn::LoadU(d16, a.xq + b * kQuantBlock + k);
        MOE_UNROLL
        for (size_t i = 0; i < kTileRows; ++i) {
          const V16 wv = LoadW16<kW>(d16, w[s][i] + b * bs, k);
          s0[i] = hn::ReorderWidenMulAccumulate(d32, wv, xv, s0[i], s1[i]);
        }
      }
      MOE_UNROLL
      for (size_t i = 0; i < kTileRows; ++i) {
        float dw;
        std::memcpy(&dw, w[s][i] + b * bs, 4);
        const VF32 sum = hn::ConvertTo(df, hn::RearrangeToOddPlusEven(s0[i], s1[i]));
        acc[s][i] = hn::MulAdd(sum, hn::Set(df, dw * a.xd[b]), acc[s][i]);
      }
    }
  }
  MOE_UNROLL
  for (size_t s = 0; s < kS; ++s) {
    MOE_UNROLL
    for (size_t i = 0; i < kTileRows; ++i) {
      a.y[r[s] + i] = hn::GetLane(hn::SumOfLanes(df, acc[s][i]));
    }
  }
}

template <WeightType kW>
void MatMulQA(const QAArgs& a, bool tiled, size_t n_tokens, size_t row_begin, size_t row_end) {
  const auto tile = [&]<size_t kR, size_t kT, bool kTiled>(size_t r, size_t t) HWY_ATTR {
    Tile<kR, kT, kW, kTiled>(a, r, t);
  };
  constexpr size_t kS = DecodeStreams<kW>();
  if constexpr (kS > 0) {
    if (tiled && n_tokens == 1) {
      ForEachTiledDecodePass<kS>(
          row_begin, row_end,
          [&](const size_t (&r)[kS]) HWY_ATTR { TiledDecodeStreams<kS, kW>(a, r); }, tile);
      return;
    }
  }
  ForEachTileOf<kDecodeRows, kPrefillRows, kTokenTile, kTiledPrefillRows, kTiledTokenTile,
                kTiledBlockRows>(
      tiled, n_tokens, row_begin, row_end, tile);
}

}  // namespace

// Whether decode reads a tiled matrix of type t faster than a row-major one: where a tiled
// decode kernel exists for it.
bool QuantTilingPaysImpl(WeightType t) {
  return t == WeightType::kQ8 ? DecodeStreams<WeightType::kQ8>() > 0
                              : DecodeStreams<WeightType::kQ4>() > 0;
}

void MatMulQuantizedActsImpl(const WeightView& w, const int16_t* xq, const float* xd,
                             size_t n_tokens, float* y, size_t y_stride, size_t row_begin,
                             size_t row_end) {
  const QAArgs a{static_cast<const uint8_t*>(w.data), QuantRowBytes(w.type, w.cols),
                 ActBlocks(w.cols), xq, xd, y, y_stride};
  if (w.type == WeightType::kQ8) {
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
    // vpdpbusd on u8/s8 halves of the weights and activations (qacts_x86-inl.h q8).
    if (UseVnni()) {
      return qx86::q8::MatMul(a.w, w.cols, w.tiled, xq, xd, n_tokens, y, y_stride, row_begin,
                               row_end);
    }
#endif
    return MatMulQA<WeightType::kQ8>(a, w.tiled, n_tokens, row_begin, row_end);
  }
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
  // Nibble bytes × the activations' high and low bytes (qacts_x86-inl.h).
  qx86::MatMul(a.w, w.cols, w.tiled, xq, xd, n_tokens, y, y_stride, row_begin, row_end);
#else
  MatMulQA<WeightType::kQ4>(a, w.tiled, n_tokens, row_begin, row_end);
#endif
}

}  // namespace HWY_NAMESPACE
}  // namespace moe::kernels
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "kernels/target_select.h"

namespace moe::kernels {

HWY_EXPORT(QuantizeActsImpl);
HWY_EXPORT(MatMulQuantizedActsImpl);
HWY_EXPORT(QuantTilingPaysImpl);

[[maybe_unused]] static const bool kTargetFromEnv = ApplyTargetFromEnv();

void QuantizeActs(const float* x, size_t n_tokens, size_t x_stride, size_t cols, int16_t* q,
                  float* d) {
  HWY_DYNAMIC_DISPATCH(QuantizeActsImpl)(x, n_tokens, x_stride, cols, q, d);
}

bool TilingPays(WeightType t, size_t rows, size_t cols) {
  return CanTile(t, rows, cols) &&
         (!IsQuantized(t) || HWY_DYNAMIC_DISPATCH(QuantTilingPaysImpl)(t));
}

void MatMulQuantizedActs(const WeightView& w, const int16_t* xq, const float* xd, size_t n_tokens,
                         float* y, size_t y_stride, size_t row_begin, size_t row_end) {
  HWY_DYNAMIC_DISPATCH(MatMulQuantizedActsImpl)(w, xq, xd, n_tokens, y, y_stride, row_begin,
                                                row_end);
}

}  // namespace moe::kernels
#endif  // HWY_ONCE
