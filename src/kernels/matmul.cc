// SPDX-License-Identifier: Apache-2.0
// MatMul: f32 activations × f32/bf16/f16/q8/q4 weight rows, one Highway implementation per target.
//
// Per output element (row r, token t) the instruction sequence is fixed: one f32 vector
// accumulator, acc = MulAdd(w[r, c:c+N], x[t, c:c+N], acc) for c = 0, N, 2N, ... in order, the
// last partial chunk zero-padded, then a fixed lane reduction. Tiling only decides how many such
// independent chains run side by side (rows × tokens per tile); it never changes any chain, so
// results are bit-identical for any n_tokens, row range or thread split.
#include "kernels/targets.h"

#include <cstring>
#include <vector>

#include "kernels/kernels.h"
#include "util/check.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/matmul.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "kernels/simd-inl.h"

HWY_BEFORE_NAMESPACE();
namespace moe::kernels {
namespace HWY_NAMESPACE {
namespace {

// Decode (one token): rows per tile, i.e. independent weight streams and FMA chains. 8 rows
// read bf16 from DRAM ~5-20% faster than 4 on the dev machine (noisy; docs/kernels.md). A bf16
// variant widening even/odd halves of u32 lanes (3 ops per 2N weights, x split with
// ConcatEven/ConcatOdd) measured 15-25% slower on AVX2 and was dropped.
#ifndef MOE_MATMUL_DECODE_ROWS
#define MOE_MATMUL_DECODE_ROWS 8
#endif
constexpr size_t kDecodeRows = MOE_MATMUL_DECODE_ROWS;
// Prefill: rows × tokens per tile; each converted weight vector feeds kTokenTile FMAs. Register
// budget: kPrefillRows·kTokenTile accumulators + kTokenTile x vectors + 1 weight vector, within
// 32 registers on AVX-512 and 16 on AVX2/SSE4. Fewer rows than tokens halves the bf16
// widening work per FMA (measured on AVX2: see docs/kernels.md).
// Tiled matrices (kernels.h) take a whole 8-row tile per prefill tile: with fewer of its rows
// per pass each pass reads part of every chunk, and mid4 prefill ran 11 % (AVX-512, 4 × 4) and
// 44 % (AVX2, 2 × 4) slower than row-major. 8 rows × 3 tokens (24 accumulators) on AVX-512 and
// 8 × 1 on 16-register targets are on par with row-major (docs/benchmarks.md, session 10).
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
constexpr size_t kPrefillRows = 4, kTokenTile = 4;
constexpr size_t kTiledPrefillRows = 8, kTiledTokenTile = 3;
#else
constexpr size_t kPrefillRows = 2, kTokenTile = 4;
constexpr size_t kTiledPrefillRows = 8, kTiledTokenTile = 1;
#endif

// Full unrolling of the kR/kT loops keeps the accumulators in registers; GCC 12 at -O2 otherwise
// keeps them on the stack (load + FMA + store per step: 4x slower, seen in perf annotate).
#define MOE_UNROLL HWY_UNROLL(16)

struct Args {
  const void* w;
  size_t cols;
  const float* x;
  size_t x_stride;
  float* y;
  size_t y_stride;
};

// Where row r and column c of a row-major or tiled (kernels.h TiledIndex) matrix live: the
// row's base plus the column's offset. Tiled, a vector of N | kTileCols columns stays within
// one chunk, so it is contiguous as in a row-major row.
template <bool kTiled>
HWY_INLINE size_t RowBase(size_t r, size_t cols) {
  return kTiled ? TiledIndex(r, 0, cols) : r * cols;
}
template <bool kTiled>
HWY_INLINE size_t ColOffset(size_t c) {
  return kTiled ? TiledIndex(0, c, kTileCols) : c;
}

// Computes y for rows [r, r + kR) and tokens [t, t + kT) of a row-major or tiled matrix.
template <size_t kR, size_t kT, typename TW, bool kTiled>
HWY_INLINE void Tile(const Args& a, size_t r, size_t t) {
  const DF df;
  const size_t N = hn::Lanes(df);
  const size_t cols = a.cols;
  const TW* HWY_RESTRICT w[kR];
  MOE_UNROLL
  for (size_t i = 0; i < kR; ++i) {
    w[i] = static_cast<const TW*>(a.w) + RowBase<kTiled>(r + i, cols);
  }
  const float* HWY_RESTRICT x[kT];
  MOE_UNROLL
  for (size_t j = 0; j < kT; ++j) x[j] = a.x + (t + j) * a.x_stride;

  VF acc[kR][kT];
  MOE_UNROLL
  for (size_t i = 0; i < kR; ++i) {
    MOE_UNROLL
    for (size_t j = 0; j < kT; ++j) acc[i][j] = hn::Zero(df);
  }
  // Decode, row-major: the next tile's rows are contiguous after this tile's; prefetch kR·N
  // weights' bytes of them per step (one tile ahead). Tiled, a tile is one sequential stream
  // that the hardware prefetchers follow (software prefetch measured no faster).
  const char* next = reinterpret_cast<const char*>(static_cast<const TW*>(a.w) + (r + kR) * cols);
  constexpr size_t kStepBytes = kR * sizeof(TW);  // × N per step
  size_t c = 0;
  for (; c + N <= cols; c += N) {
    if constexpr (kT == 1 && !kTiled) PrefetchL2(next + c * kStepBytes, N * kStepBytes);
    const size_t co = ColOffset<kTiled>(c);
    VF xv[kT];
    MOE_UNROLL
    for (size_t j = 0; j < kT; ++j) xv[j] = hn::LoadU(df, x[j] + c);
    MOE_UNROLL
    for (size_t i = 0; i < kR; ++i) {
      const VF wv = LoadWeights(df, w[i] + co);
      MOE_UNROLL
      for (size_t j = 0; j < kT; ++j) acc[i][j] = hn::MulAdd(wv, xv[j], acc[i][j]);
    }
  }
  if (c != cols) {
    VF xv[kT];
    MOE_UNROLL
    for (size_t j = 0; j < kT; ++j) xv[j] = LoadTail(df, x[j] + c, cols - c);
    MOE_UNROLL
    for (size_t i = 0; i < kR; ++i) {
      const VF wv = LoadTail(df, w[i] + ColOffset<kTiled>(c), cols - c);
      MOE_UNROLL
      for (size_t j = 0; j < kT; ++j) acc[i][j] = hn::MulAdd(wv, xv[j], acc[i][j]);
    }
  }
  MOE_UNROLL
  for (size_t j = 0; j < kT; ++j) {
    MOE_UNROLL
    for (size_t i = 0; i < kR; ++i) a.y[(t + j) * a.y_stride + r + i] = ReduceSum(df, acc[i][j]);
  }
}

// Decode of a tiled matrix: kDecodeStreams tiles, from far-apart parts of the row range, per
// pass (simd-inl.h ForEachTiledDecodePass), one x load per step for all of them; each row's
// chain is Tile's, so results are bit-identical. Resident mid4 bf16 decode (2 threads, Zen 5),
// share of the memory roofline: 1 stream 62-76 %, 2: 74-82 %, 3: 77-89 %, 4: 86-97 %, 6 (spilling
// accumulators): 77-83 %; with the AVX2 target forced: 1 stream 67-68 %, 2: 68-69 %, 3: 74 %
// (docs/benchmarks.md, session 14).
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
constexpr size_t kDecodeStreams = 4;  // 32 accumulators: the compiler keeps x in memory
#elif HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
constexpr size_t kDecodeStreams = 3;
#else
constexpr size_t kDecodeStreams = 1;  // not measured on these targets
#endif

template <size_t kS, typename TW>
HWY_INLINE void TiledDecodeStreams(const Args& a, const size_t (&r)[kS]) {
  const DF df;
  const size_t N = hn::Lanes(df);
  const size_t cols = a.cols;
  const TW* HWY_RESTRICT w[kS][kTileRows];
  VF acc[kS][kTileRows];
  MOE_UNROLL
  for (size_t s = 0; s < kS; ++s) {
    MOE_UNROLL
    for (size_t i = 0; i < kTileRows; ++i) {
      w[s][i] = static_cast<const TW*>(a.w) + RowBase<true>(r[s] + i, cols);
      acc[s][i] = hn::Zero(df);
    }
  }
  // Tiled matrices have whole chunks of kTileCols columns (CanTile), a multiple of N.
  for (size_t c = 0; c + N <= cols; c += N) {
    const size_t co = ColOffset<true>(c);
    const VF xv = hn::LoadU(df, a.x + c);
    MOE_UNROLL
    for (size_t s = 0; s < kS; ++s) {
      MOE_UNROLL
      for (size_t i = 0; i < kTileRows; ++i) {
        acc[s][i] = hn::MulAdd(LoadWeights(df, w[s][i] + co), xv, acc[s][i]);
      }
    }
  }
  MOE_UNROLL
  for (size_t s = 0; s < kS; ++s) {
    MOE_UNROLL
    for (size_t i = 0; i < kTileRows; ++i) a.y[r[s] + i] = ReduceSum(df, acc[s][i]);
  }
}

template <typename TW>
void MatMulT(const Args& a, bool tiled, size_t n_tokens, size_t row_begin, size_t row_end) {
  const auto tile = [&]<size_t kR, size_t kT, bool kTiled>(size_t r, size_t t) HWY_ATTR {
    Tile<kR, kT, TW, kTiled>(a, r, t);
  };
  if (kDecodeStreams > 1 && tiled && n_tokens == 1) {
    static_assert(kDecodeRows == kTileRows);
    ForEachTiledDecodePass<kDecodeStreams>(
        row_begin, row_end,
        [&](const size_t (&r)[kDecodeStreams]) HWY_ATTR { TiledDecodeStreams<kDecodeStreams, TW>(a, r); },
        tile);
    return;
  }
  ForEachTileOf<kDecodeRows, kPrefillRows, kTokenTile, kTiledPrefillRows, kTiledTokenTile>(
      tiled, n_tokens, row_begin, row_end, tile);
}

// --- Block-quantized weights (kQ8, kQ4; kernels.h). Per output element the sequence is fixed:
// for each block b, a partial sum p = Σ f32(q[c:c+N]) · x[c:c+N] over the block's chunks in
// order (lane-wise FMA chain starting from zero), then acc = MulAdd(p, d_b, acc); the x chunk
// that crosses `cols` is zero-padded (and padded q are 0). One multiply by the scale per block
// instead of one per weight. N ≤ 16 divides the block (32).
using DQ = hn::CappedTag<float, 16>;
using VQ = hn::Vec<DQ>;

struct QArgs {
  const uint8_t* w;
  size_t cols, row_bytes, n_blocks;
  const float* x;
  size_t x_stride;
  float* y;
  size_t y_stride;
};

// f32(q) of chunk [j, j + N) of one block (no scale).
template <WeightType kW>
HWY_INLINE VQ LoadQ(DQ dq, const uint8_t* HWY_RESTRICT blk, size_t j) {
  const hn::Rebind<int32_t, DQ> di;
  if constexpr (kW == WeightType::kQ8) {
    const hn::Rebind<int8_t, DQ> di8;
    return hn::ConvertTo(dq, hn::PromoteTo(di, hn::LoadU(di8, reinterpret_cast<const int8_t*>(blk + 4 + j))));
  } else {
    const hn::Rebind<uint8_t, DQ> du8;
    auto q = hn::PromoteTo(di, hn::LoadU(du8, blk + 4 + (j & 15)));
    q = j < 16 ? hn::And(q, hn::Set(di, 15)) : hn::ShiftRight<4>(q);
    return hn::ConvertTo(dq, hn::Sub(q, hn::Set(di, 8)));
  }
}

HWY_INLINE VQ LoadX(DQ dq, const float* HWY_RESTRICT p, size_t avail) {
  const size_t N = hn::Lanes(dq);
  if (avail >= N) return hn::LoadU(dq, p);
  HWY_ALIGN float buf[16] = {};
  if (avail > 0) std::memcpy(buf, p, avail * sizeof(float));
  return hn::LoadU(dq, buf);
}

template <size_t kR, size_t kT, WeightType kW, bool kTiled>
HWY_INLINE void QTile(const QArgs& a, size_t r, size_t t) {
  const DQ dq;
  const size_t N = hn::Lanes(dq);
  constexpr size_t bb = QuantBlockBytes(kW);
  constexpr size_t bs = QuantBlockStride<kTiled>(bb);
  const uint8_t* HWY_RESTRICT w[kR];
  MOE_UNROLL
  for (size_t i = 0; i < kR; ++i) w[i] = a.w + QuantRowBase<kTiled>(r + i, a.row_bytes, bb);
  const float* HWY_RESTRICT x[kT];
  MOE_UNROLL
  for (size_t j = 0; j < kT; ++j) x[j] = a.x + (t + j) * a.x_stride;
  VQ acc[kR][kT];
  MOE_UNROLL
  for (size_t i = 0; i < kR; ++i) {
    MOE_UNROLL
    for (size_t j = 0; j < kT; ++j) acc[i][j] = hn::Zero(dq);
  }
  // Partial sums of one block for every (row, token), then one scale FMA each.
  const auto block = [&](size_t b, auto load_x) HWY_ATTR {
    VQ part[kR][kT];
    MOE_UNROLL
    for (size_t i = 0; i < kR; ++i) {
      MOE_UNROLL
      for (size_t j = 0; j < kT; ++j) part[i][j] = hn::Zero(dq);
    }
    const size_t c0 = b * kQuantBlock;
    MOE_UNROLL
    for (size_t k = 0; k < kQuantBlock; k += N) {
      VQ xv[kT];
      MOE_UNROLL
      for (size_t j = 0; j < kT; ++j) xv[j] = load_x(x[j], c0 + k);
      MOE_UNROLL
      for (size_t i = 0; i < kR; ++i) {
        const VQ wv = LoadQ<kW>(dq, w[i] + b * bs, k);
        MOE_UNROLL
        for (size_t j = 0; j < kT; ++j) part[i][j] = hn::MulAdd(wv, xv[j], part[i][j]);
      }
    }
    MOE_UNROLL
    for (size_t i = 0; i < kR; ++i) {
      float d;
      std::memcpy(&d, w[i] + b * bs, 4);
      const VQ dv = hn::Set(dq, d);
      MOE_UNROLL
      for (size_t j = 0; j < kT; ++j) acc[i][j] = hn::MulAdd(part[i][j], dv, acc[i][j]);
    }
  };
  const size_t full = a.cols / kQuantBlock;
  // The next tile's rows (contiguous after this tile's) are prefetched alongside, kR blocks'
  // worth of bytes per block: short quantized rows end before the hardware prefetchers ramp up
  // on them (measured: q8 decode from DRAM 6 -> see docs/kernels.md).
  const uint8_t* next = a.w + (r + kR) * a.row_bytes;
  const size_t next_step = kR * bb;
  for (size_t b = 0; b < full; ++b) {
    if constexpr (kT == 1 && !kTiled) {
      PrefetchL2(next + b * next_step, next_step);
    }
    block(b, [&](const float* HWY_RESTRICT xp, size_t c) HWY_ATTR { return hn::LoadU(dq, xp + c); });
  }
  if (full < a.n_blocks) {  // the last, partial block: x zero-padded past cols
    block(full, [&](const float* HWY_RESTRICT xp, size_t c) HWY_ATTR {
      return LoadX(dq, xp + c, c < a.cols ? a.cols - c : 0);
    });
  }
  MOE_UNROLL
  for (size_t j = 0; j < kT; ++j) {
    MOE_UNROLL
    for (size_t i = 0; i < kR; ++i) {
      a.y[(t + j) * a.y_stride + r + i] = hn::GetLane(hn::SumOfLanes(dq, acc[i][j]));
    }
  }
}

// Register budget of QTile: 2·kR·kT accumulators (acc, part) + kT x vectors + 1 weight vector,
// within 16 vector registers on AVX2/SSE4 and 32 on AVX-512.
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
constexpr size_t kQDecodeRows = 8, kQPrefillRows = 2;
#else
#ifndef MOE_QDECODE_ROWS
#define MOE_QDECODE_ROWS 6
#endif
constexpr size_t kQDecodeRows = MOE_QDECODE_ROWS, kQPrefillRows = 1;
#endif

template <WeightType kW>
void MatMulQ(const QArgs& a, bool tiled, size_t n_tokens, size_t row_begin, size_t row_end) {
  ForEachTileOf<kQDecodeRows, kQPrefillRows, kTokenTile, kQPrefillRows, kTokenTile>(
      tiled, n_tokens, row_begin, row_end,
      [&]<size_t kR, size_t kT, bool kTiled>(size_t r, size_t t) HWY_ATTR {
        QTile<kR, kT, kW, kTiled>(a, r, t);
      });
}

}  // namespace

void MatMulImpl(const WeightView& w, const float* x, size_t n_tokens, size_t x_stride, float* y,
                size_t y_stride, size_t row_begin, size_t row_end) {
  const Args a{w.data, w.cols, x, x_stride, y, y_stride};
  switch (w.type) {
    case WeightType::kF32: return MatMulT<float>(a, w.tiled, n_tokens, row_begin, row_end);
    case WeightType::kBF16:
      return MatMulT<hwy::bfloat16_t>(a, w.tiled, n_tokens, row_begin, row_end);
    case WeightType::kF16:
      return MatMulT<hwy::float16_t>(a, w.tiled, n_tokens, row_begin, row_end);
    case WeightType::kQ8:
    case WeightType::kQ4: {
      const QArgs q{static_cast<const uint8_t*>(w.data), w.cols, QuantRowBytes(w.type, w.cols),
                    (w.cols + kQuantBlock - 1) / kQuantBlock, x, x_stride, y, y_stride};
      if (w.type == WeightType::kQ8) {
        return MatMulQ<WeightType::kQ8>(q, w.tiled, n_tokens, row_begin, row_end);
      }
      return MatMulQ<WeightType::kQ4>(q, w.tiled, n_tokens, row_begin, row_end);
    }
  }
}

size_t F32LanesImpl() { return hn::Lanes(DF()); }

}  // namespace HWY_NAMESPACE
}  // namespace moe::kernels
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "kernels/target_select.h"

namespace moe::kernels {

HWY_EXPORT(MatMulImpl);
HWY_EXPORT(F32LanesImpl);

[[maybe_unused]] static const bool kTargetFromEnv = ApplyTargetFromEnv();

void MatMul(const WeightView& w, const float* x, size_t n_tokens, size_t x_stride, float* y,
            size_t y_stride, size_t row_begin, size_t row_end) {
  HWY_DYNAMIC_DISPATCH(MatMulImpl)(w, x, n_tokens, x_stride, y, y_stride, row_begin, row_end);
}

bool HasTileShape(WeightType t, size_t rows, size_t cols) {
  if (rows % kTileRows != 0 || cols == 0) return false;
  return IsQuantized(t) || cols % kTileCols == 0;  // quantized: whole blocks per chunk, any cols
}

bool CanTile(WeightType t, size_t rows, size_t cols) {
  if (!HasTileShape(t, rows, cols)) return false;
  if (IsQuantized(t)) return true;
  const size_t lanes = HWY_DYNAMIC_DISPATCH(F32LanesImpl)();
  return lanes > 0 && kTileCols % lanes == 0;
}

void TileMatrix(void* data, WeightType t, size_t rows, size_t cols) {
  MOE_CHECK(HasTileShape(t, rows, cols));
  // A chunk is kTileCols elements, or one block of a quantized row; chunk k of tile row i moves
  // from i · row_bytes + k · chunk to k · kTileRows · chunk + i · chunk within its tile.
  const bool q = IsQuantized(t);
  const size_t row_bytes = q ? QuantRowBytes(t, cols) : cols * WeightTypeBytes(t);
  const size_t chunk = q ? QuantBlockBytes(t) : kTileCols * WeightTypeBytes(t);
  const size_t tile_bytes = kTileRows * row_bytes;  // one tile: the same bytes, reordered
  std::vector<char> rows_copy(tile_bytes);
  for (size_t r0 = 0; r0 < rows; r0 += kTileRows) {
    char* tile = static_cast<char*>(data) + r0 * row_bytes;
    std::memcpy(rows_copy.data(), tile, tile_bytes);
    for (size_t i = 0; i < kTileRows; ++i) {
      for (size_t k = 0; k < row_bytes / chunk; ++k) {
        std::memcpy(tile + (k * kTileRows + i) * chunk, &rows_copy[i * row_bytes + k * chunk],
                    chunk);
      }
    }
  }
}

}  // namespace moe::kernels
#endif  // HWY_ONCE
