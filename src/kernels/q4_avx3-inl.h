// SPDX-License-Identifier: Apache-2.0
// q4 weights × int16 activations on AVX-512 (AVX512BW): the kQ4 half of MatMulQuantizedActs on
// the AVX3 targets (matmul_qacts.cc), about half the vector instructions per weight block of
// the generic int16 kernel, whose nibble unpacking bound q4 decode (73.9 % of the memory probe
// at 2 threads against q8's 96.7 %, Zen 4; docs/benchmarks.md, session 20).
//
// The idea: keep the nibbles as bytes and multiply them with bytes of the activations, 64
// products per vpmaddubsw (u8 × s8 → s16 pairs). An int16 activation x is 256·xh + xl with
// xh = x >> 8 (s8) and xl = x & 255 (u8), so for a nibble n (0..15, weight n − 8)
//   Σ (n − 8)·x = 256·Σ n·xh + Σ xl·n − 8·Σ x
// where n·xh is u8 × s8 and xl·n is u8 × s8 (n < 128): both fit vpmaddubsw, whose s16 pair
// sums (≤ 3840 and 7650 in magnitude) never saturate, nor do the sums of two (≤ 15300); 8·Σ x
// is computed once per activation block. The block sums are exact int32, as before.
//
// Four rows' blocks share one 512-bit vector, one row per 128-bit lane: byte j of row i's lane
// holds its block's elements j (low nibble) and 16 + j (high nibble). Each row's block sum is
// kept in 4 int32 lanes, lane q holding elements {4q..4q+3} ∪ {16+4q..16+4q+3}; per block the
// lanes are converted to f32 and accumulated as acc = fma(f32(s), d_w·d_x, acc), and at the end
// y = (acc0 + acc1) + (acc2 + acc3). Every path (tiled decode streams, tiles of any size, any
// layout, duplicated rows in a partial group) computes a row's lanes the same way: results are
// bit-identical for any n_tokens, row range, thread split or layout (kernels.h contract).

// Per-target include guard, the Highway idiom: toggled by foreach_target.h for each target.
#if defined(MOE_KERNELS_Q4_AVX3_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef MOE_KERNELS_Q4_AVX3_INL_H_
#undef MOE_KERNELS_Q4_AVX3_INL_H_
#else
#define MOE_KERNELS_Q4_AVX3_INL_H_
#endif

#include <cstdint>
#include <cstring>
#include <vector>

#include "hwy/highway.h"
#include "kernels/kernels.h"
#include "kernels/simd-inl.h"

HWY_BEFORE_NAMESPACE();
namespace moe::kernels {
namespace HWY_NAMESPACE {

#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
namespace q4avx3 {

// One activation block of one token, split for vpmaddubsw (80 bytes).
struct Act {
  int8_t xh[32];    // x >> 8
  uint8_t xl[32];   // x & 255
  int32_t corr[4];  // 8 · Σ x over the elements of int32 lane q (see the top)
};
static_assert(sizeof(Act) == 80);

// Splits n blocks of QuantizeActs' int16 values (32 each, consecutive) into `out`.
HWY_INLINE void SplitActs(const int16_t* HWY_RESTRICT xq, size_t n, Act* HWY_RESTRICT out) {
  const __m512i ones16 = _mm512_set1_epi16(1);
  for (size_t i = 0; i < n; ++i) {
    const __m512i q = _mm512_loadu_si512(xq + i * kQuantBlock);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out[i].xh),
                        _mm512_cvtepi16_epi8(_mm512_srai_epi16(q, 8)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out[i].xl), _mm512_cvtepi16_epi8(q));
    // 8 · Σ x per int32 lane: lane k of the pair sums holds elements 2k and 2k + 1, and lane q
    // of a row takes pairs 2q, 2q + 1, 8 + 2q and 9 + 2q.
    const __m512i pairs = _mm512_madd_epi16(q, ones16);
    const __m256i m = _mm256_add_epi32(_mm512_castsi512_si256(pairs),
                                       _mm512_extracti64x4_epi64(pairs, 1));
    const __m256i h = _mm256_hadd_epi32(m, m);  // lane q of each half: m[2q] + m[2q + 1]
    const __m128i corr =
        _mm_unpacklo_epi64(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out[i].corr), _mm_slli_epi32(corr, 3));
  }
}

// An activation block broadcast to every row's 128-bit lane.
struct ActV {
  __m512i xh_lo, xh_hi, xl_lo, xl_hi, corr;
};
HWY_INLINE ActV LoadAct(const Act& a) {
  const auto b = [](const void* p) HWY_ATTR {
    return _mm512_broadcast_i32x4(_mm_loadu_si128(static_cast<const __m128i*>(p)));
  };
  return {b(a.xh), b(a.xh + 16), b(a.xl), b(a.xl + 16), b(a.corr)};
}

// Four rows' block: nibbles (one row per 128-bit lane) and each row's scale in its lane.
struct W4 {
  __m512i lo, hi;  // elements j and 16 + j of the lane's row, 0..15
  __m512 dw;
};
HWY_INLINE W4 Unpack(__m512i nib, __m512 dw) {
  const __m512i m = _mm512_set1_epi8(0x0F);
  return {_mm512_and_si512(nib, m), _mm512_and_si512(_mm512_srli_epi16(nib, 4), m), dw};
}

// Four rows whose block b lies in 80 contiguous bytes at p (4 rows of a tiled matrix's 8-row
// tile, starting at row 0 or 4 of the tile): 2 loads, one word permute, one dword permute.
HWY_INLINE W4 LoadTiled4(const uint8_t* HWY_RESTRICT p) {
  // Word k of lane i: byte 4 + 20·i + 2k of p; lane 3's bytes (64..79) come from b (p + 16).
  alignas(64) static constexpr uint16_t kNib[32] = {
      2,  3,  4,  5,  6,  7,  8,  9,  12, 13, 14, 15, 16, 17, 18, 19,
      22, 23, 24, 25, 26, 27, 28, 29, 56, 57, 58, 59, 60, 61, 62, 63};
  alignas(64) static constexpr int32_t kDw[16] = {0, 0, 0, 0, 5, 5, 5, 5, 10, 10, 10, 10, 15, 15, 15, 15};
  const __m512i a = _mm512_loadu_si512(p), b = _mm512_loadu_si512(p + 16);
  const __m512i nib = _mm512_permutex2var_epi16(a, _mm512_load_si512(kNib), b);
  return Unpack(nib, _mm512_permutexvar_ps(_mm512_load_si512(kDw), _mm512_castsi512_ps(a)));
}

// Four rows anywhere: p[i] is row i's block (scale, then 16 bytes of nibbles).
HWY_INLINE W4 LoadRows4(const uint8_t* const (&p)[4]) {
  __m512i nib = _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p[0] + 4)));
  nib = _mm512_inserti32x4(nib, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p[1] + 4)), 1);
  nib = _mm512_inserti32x4(nib, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p[2] + 4)), 2);
  nib = _mm512_inserti32x4(nib, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p[3] + 4)), 3);
  float d[4];
  for (size_t i = 0; i < 4; ++i) std::memcpy(&d[i], p[i], 4);
  alignas(64) static constexpr int32_t kDw[16] = {0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3};
  return Unpack(nib, _mm512_permutexvar_ps(_mm512_load_si512(kDw),
                                           _mm512_castps128_ps512(_mm_loadu_ps(d))));
}

// acc += f32(exact block sums, 4 lanes per row) · (d_w · d_x).
HWY_INLINE __m512 Accumulate(const W4& w, const ActV& x, float xd, __m512 acc) {
  const __m512i t1 = _mm512_add_epi16(_mm512_maddubs_epi16(w.lo, x.xh_lo),
                                      _mm512_maddubs_epi16(w.hi, x.xh_hi));
  const __m512i t2 = _mm512_add_epi16(_mm512_maddubs_epi16(x.xl_lo, w.lo),
                                      _mm512_maddubs_epi16(x.xl_hi, w.hi));
  const __m512i s = _mm512_add_epi32(_mm512_madd_epi16(t1, _mm512_set1_epi16(256)),
                                     _mm512_madd_epi16(t2, _mm512_set1_epi16(1)));
  const __m512 sf = _mm512_cvtepi32_ps(_mm512_sub_epi32(s, x.corr));
  return _mm512_fmadd_ps(sf, _mm512_mul_ps(w.dw, _mm512_set1_ps(xd)), acc);
}

// Stores the results of the group's first n rows (n ≤ 4) to y[0, n): row i's is
// (a0 + a1) + (a2 + a3) of its 4 lanes.
HWY_INLINE void StoreRows(__m512 acc, size_t n, float* HWY_RESTRICT y) {
  const __m512 pairs = _mm512_add_ps(acc, _mm512_permute_ps(acc, 0xB1));  // a0+a1 .. a2+a3
  const __m512 sums = _mm512_add_ps(pairs, _mm512_permute_ps(pairs, 0x4E));
  alignas(64) static constexpr int32_t kFirst[16] = {0, 4, 8, 12};
  const __m128 v = _mm512_castps512_ps128(_mm512_permutexvar_ps(_mm512_load_si512(kFirst), sums));
  if (n == 4) {
    _mm_storeu_ps(y, v);
  } else {
    _mm_mask_storeu_ps(y, static_cast<__mmask8>((1u << n) - 1), v);
  }
}

#define MOE_Q4_UNROLL HWY_UNROLL(16)

struct Args {
  const uint8_t* w;
  size_t row_bytes, n_blocks;
  const Act* act;  // n_tokens × n_blocks
  const float* xd;
  float* y;
  size_t y_stride;
};
constexpr size_t kBlockBytes = QuantBlockBytes(WeightType::kQ4);

// Rows [r, r + kR) × tokens [t, t + kT); kR a multiple of 4, or 1 (its row in all 4 lanes).
template <size_t kR, size_t kT, bool kTiled>
HWY_INLINE void Tile(const Args& a, size_t r, size_t t) {
  static_assert(kR == 1 || kR % 4 == 0);
  constexpr size_t kG = (kR + 3) / 4;
  constexpr size_t bs = QuantBlockStride<kTiled>(kBlockBytes);
  const uint8_t* row[kG][4];
  MOE_Q4_UNROLL
  for (size_t i = 0; i < 4 * kG; ++i) {
    row[i / 4][i % 4] = a.w + QuantRowBase<kTiled>(r + HWY_MIN(i, kR - 1), a.row_bytes, kBlockBytes);
  }
  __m512 acc[kG][kT];
  MOE_Q4_UNROLL
  for (size_t g = 0; g < kG; ++g) {
    MOE_Q4_UNROLL
    for (size_t j = 0; j < kT; ++j) acc[g][j] = _mm512_setzero_ps();
  }
  // Row-major decode prefetches the next tile's rows (matmul_qacts.cc Tile).
  const uint8_t* next = a.w + (r + kR) * a.row_bytes;
  const auto run = [&]<bool kContiguous>() HWY_ATTR {
    for (size_t b = 0; b < a.n_blocks; ++b) {
      if constexpr (kT == 1 && !kTiled) PrefetchL2(next + b * kR * kBlockBytes, kR * kBlockBytes);
      W4 w[kG];
      MOE_Q4_UNROLL
      for (size_t g = 0; g < kG; ++g) {
        if constexpr (kContiguous) {
          w[g] = LoadTiled4(row[g][0] + b * bs);
        } else {
          const uint8_t* const p[4] = {row[g][0] + b * bs, row[g][1] + b * bs,
                                       row[g][2] + b * bs, row[g][3] + b * bs};
          w[g] = LoadRows4(p);
        }
      }
      MOE_Q4_UNROLL
      for (size_t j = 0; j < kT; ++j) {
        const size_t ab = (t + j) * a.n_blocks + b;
        const ActV x = LoadAct(a.act[ab]);
        MOE_Q4_UNROLL
        for (size_t g = 0; g < kG; ++g) acc[g][j] = Accumulate(w[g], x, a.xd[ab], acc[g][j]);
      }
    }
  };
  // A tiled matrix's rows r..r+3 with r % 4 == 0 are one contiguous run per block.
  if (kTiled && kR % 4 == 0 && r % 4 == 0) {
    run.template operator()<true>();
  } else {
    run.template operator()<false>();
  }
  MOE_Q4_UNROLL
  for (size_t j = 0; j < kT; ++j) {
    MOE_Q4_UNROLL
    for (size_t g = 0; g < kG; ++g) {
      StoreRows(acc[g][j], HWY_MIN(kR - 4 * g, size_t{4}), a.y + (t + j) * a.y_stride + r + 4 * g);
    }
  }
}

// Decode of kS tiles' worth of rows of a tiled matrix, 8 rows per stream (simd-inl.h
// ForEachTiledDecodePass): the activation block is loaded once for all kS · 8 rows. Streams
// start on a tile unless the row range does not.
template <size_t kS>
HWY_INLINE void DecodeStreams(const Args& a, const size_t (&r)[kS]) {
  constexpr size_t bs = QuantBlockStride<true>(kBlockBytes);
  const uint8_t* row[kS][kTileRows];
  __m512 acc[kS][2];
  bool contiguous = true;  // every 4-row group one run of 80 bytes per block
  MOE_Q4_UNROLL
  for (size_t s = 0; s < kS; ++s) {
    MOE_Q4_UNROLL
    for (size_t i = 0; i < kTileRows; ++i) {
      row[s][i] = a.w + QuantRowBase<true>(r[s] + i, a.row_bytes, kBlockBytes);
    }
    acc[s][0] = acc[s][1] = _mm512_setzero_ps();
    contiguous = contiguous && r[s] % 4 == 0;
  }
  const auto run = [&]<bool kContiguous>() HWY_ATTR {
    for (size_t b = 0; b < a.n_blocks; ++b) {
      const ActV x = LoadAct(a.act[b]);
      const float xd = a.xd[b];
      MOE_Q4_UNROLL
      for (size_t s = 0; s < kS; ++s) {
        MOE_Q4_UNROLL
        for (size_t g = 0; g < 2; ++g) {
          const uint8_t* const* p4 = &row[s][4 * g];
          W4 w;
          if constexpr (kContiguous) {
            w = LoadTiled4(p4[0] + b * bs);
          } else {
            const uint8_t* const p[4] = {p4[0] + b * bs, p4[1] + b * bs, p4[2] + b * bs,
                                         p4[3] + b * bs};
            w = LoadRows4(p);
          }
          acc[s][g] = Accumulate(w, x, xd, acc[s][g]);
        }
      }
    }
  };
  if (contiguous) {
    run.template operator()<true>();
  } else {
    run.template operator()<false>();
  }
  MOE_Q4_UNROLL
  for (size_t s = 0; s < kS; ++s) {
    StoreRows(acc[s][0], 4, a.y + r[s]);
    StoreRows(acc[s][1], 4, a.y + r[s] + 4);
  }
}

// MatMulQuantizedActs for a kQ4 matrix (kernels.h), rows [row_begin, row_end).
inline void MatMul(const uint8_t* w, size_t cols, bool tiled, const int16_t* xq, const float* xd,
                   size_t n_tokens, float* y, size_t y_stride, size_t row_begin, size_t row_end) {
  const size_t nb = ActBlocks(cols);
  thread_local std::vector<Act> acts;
  if (acts.size() < n_tokens * nb) acts.resize(n_tokens * nb);
  SplitActs(xq, n_tokens * nb, acts.data());
  const Args a{w, QuantRowBytes(WeightType::kQ4, cols), nb, acts.data(), xd, y, y_stride};
  const auto tile = [&]<size_t kR, size_t kT, bool kTiled>(size_t r, size_t t) HWY_ATTR {
    Tile<kR, kT, kTiled>(a, r, t);
  };
  if (tiled && n_tokens == 1) {
    ForEachTiledDecodePass<4>(
        row_begin, row_end, [&](const size_t (&r)[4]) HWY_ATTR { DecodeStreams<4>(a, r); }, tile);
    return;
  }
  // Decode tiles of 8 rows; prefill tiles of 8 rows × 4 tokens over 16-row blocks.
  ForEachTileOf<8, 8, 4, 8, 4, 16>(tiled, n_tokens, row_begin, row_end, tile);
}

#undef MOE_Q4_UNROLL
}  // namespace q4avx3
#endif  // HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3

}  // namespace HWY_NAMESPACE
}  // namespace moe::kernels
HWY_AFTER_NAMESPACE();

#endif  // MOE_KERNELS_Q4_AVX3_INL_H_
