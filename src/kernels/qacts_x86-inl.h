// SPDX-License-Identifier: Apache-2.0
// Quantized weights × int16 activations on x86 by bytes: q4 on AVX2 and AVX-512 (AVX512BW),
// and q8 where AVX512-VNNI is on (the AVX3_VNNI target; namespace q8 below). The q4 kernel takes
// about half the vector instructions per weight block of the generic int16 kernel
// (matmul_qacts.cc), whose nibble unpacking bound q4 decode (AVX-512, Zen 4: 45–74 % of the
// memory probe at 2 threads against q8's 95–97 %; docs/kernels.md, session 20).
//
// The idea: keep the nibbles as bytes and multiply them with bytes of the activations, 32 (AVX2)
// or 64 (AVX-512) products per vpmaddubsw (u8 × s8 → s16 pairs). An int16 activation x is
// 256·xh + xl with xh = x >> 8 (s8) and xl = x & 255 (u8), so for a nibble n (0..15, weight
// n − 8)
//   Σ (n − 8)·x = 256·Σ n·xh + Σ xl·n − 8·Σ x
// where n·xh is u8 × s8 and xl·n is u8 × s8 (n < 128): both fit vpmaddubsw, whose s16 pair
// sums (≤ 3840 and 7650 in magnitude) never saturate, nor do the sums of two (≤ 15300); −8·Σ x
// is computed once per activation block. The block sums are exact int32, as before. On CPUs
// with AVX512-VNNI (the AVX3_VNNI target, kernels.h) vpdpbusd sums each four u8 × s8 products
// straight into an int32 lane, about a third fewer instructions per block (docs/kernels.md);
// the tiles and streams are compiled once per flavour (qacts_x86_tiles-inl.h).
//
// Each row's block takes one 128-bit lane (2 rows per AVX2 vector, 4 per AVX-512 vector): byte
// j holds its block's elements j (low nibble) and 16 + j (high nibble). Each row's block sum is
// kept in 4 int32 lanes, lane q holding elements {4q..4q+3} ∪ {16+4q..16+4q+3}; per block the
// lanes are converted to f32 and accumulated as acc = fma(f32(s), d_w·d_x, acc), and at the end
// y = (acc0 + acc1) + (acc2 + acc3). Every path (tiled decode streams, tiles of any size, any
// layout, duplicated rows in a partial group) and both vector widths compute a row the same
// way: results are bit-identical for any n_tokens, row range, thread split or layout (kernels.h
// contract), and between the AVX2, AVX3 and AVX3_VNNI targets (tests).

// Per-target include guard, the Highway idiom: toggled by foreach_target.h for each target.
#if defined(MOE_KERNELS_QACTS_X86_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef MOE_KERNELS_QACTS_X86_INL_H_
#undef MOE_KERNELS_QACTS_X86_INL_H_
#else
#define MOE_KERNELS_QACTS_X86_INL_H_
#endif

#include <cstdint>
#include <cstring>
#include <vector>

#include "hwy/highway.h"
#include "kernels/kernels.h"
#include "kernels/simd-inl.h"
#include "kernels/target_select.h"

HWY_BEFORE_NAMESPACE();
namespace moe::kernels {
namespace HWY_NAMESPACE {

#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
namespace qx86 {

// One activation block of one token, split for vpmaddubsw (80 bytes).
struct Act {
  int8_t xh[32];    // x >> 8
  uint8_t xl[32];   // x & 255
  int32_t corr[4];  // q4: −8 · Σ x over the elements of int32 lane q (see the top); q8: see q8
};
static_assert(sizeof(Act) == 80);

HWY_INLINE __m128i Load128(const void* p) {
  return _mm_loadu_si128(static_cast<const __m128i*>(p));
}

// Splits n blocks of QuantizeActs' int16 values (32 each, consecutive) into `out` (AVX2
// instructions on both targets). corr: −8 · Σ x per int32 lane for q4 (kQ8 false), for q8
// −32768 · Σ xh (kQ8 true; see q8 below).
template <bool kQ8>
HWY_INLINE void SplitActs(const int16_t* HWY_RESTRICT xq, size_t n, Act* HWY_RESTRICT out) {
  const __m256i ones16 = _mm256_set1_epi16(1);
  for (size_t i = 0; i < n; ++i) {
    const int16_t* q = xq + i * kQuantBlock;
    const __m256i q0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q));
    const __m256i q1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 16));
    // The packs interleave 64-bit quarters as (q0 lo, q1 lo, q0 hi, q1 hi): 0xD8 restores the
    // order. Neither saturates: x >> 8 is in [-128, 127], x & 255 in [0, 255].
    const __m256i h0 = _mm256_srai_epi16(q0, 8), h1 = _mm256_srai_epi16(q1, 8);
    const __m256i xh = _mm256_packs_epi16(h0, h1);
    const __m256i m255 = _mm256_set1_epi16(255);
    const __m256i xl =
        _mm256_packus_epi16(_mm256_and_si256(q0, m255), _mm256_and_si256(q1, m255));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out[i].xh), _mm256_permute4x64_epi64(xh, 0xD8));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out[i].xl), _mm256_permute4x64_epi64(xl, 0xD8));
    // Σ per int32 lane (of x, or of xh for q8): pair k (elements 2k, 2k + 1) is lane k of
    // madd(q0) for k < 8 and lane k − 8 of madd(q1); lane q of a row takes pairs 2q, 2q + 1,
    // 8 + 2q and 9 + 2q.
    const __m256i m = kQ8 ? _mm256_add_epi32(_mm256_madd_epi16(h0, ones16),
                                             _mm256_madd_epi16(h1, ones16))
                          : _mm256_add_epi32(_mm256_madd_epi16(q0, ones16),
                                             _mm256_madd_epi16(q1, ones16));
    const __m256i h = _mm256_hadd_epi32(m, m);  // lanes 0, 1 of each half: m[2q] + m[2q + 1]
    const __m128i sum =
        _mm_unpacklo_epi64(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out[i].corr),
                     _mm_sub_epi32(_mm_setzero_si128(), _mm_slli_epi32(sum, kQ8 ? 15 : 3)));
  }
}

#if HWY_TARGET <= HWY_AVX3
// AVX-512: 4 rows per vector.
struct V {
  using I = __m512i;
  using F = __m512;
  static constexpr size_t kRows = 4;
  static HWY_INLINE I Bcast(const void* p) { return _mm512_broadcast_i32x4(Load128(p)); }
  static HWY_INLINE I Set8(int8_t v) { return _mm512_set1_epi8(v); }
  static HWY_INLINE I Set16(int16_t v) { return _mm512_set1_epi16(v); }
  static HWY_INLINE I And(I a, I b) { return _mm512_and_si512(a, b); }
  static HWY_INLINE I Srl4(I a) { return _mm512_srli_epi16(a, 4); }
  static HWY_INLINE I Maddubs(I u8, I s8) { return _mm512_maddubs_epi16(u8, s8); }
  static HWY_INLINE I Add16(I a, I b) { return _mm512_add_epi16(a, b); }
  static HWY_INLINE I Madd(I a, I b) { return _mm512_madd_epi16(a, b); }
  static HWY_INLINE I Add32(I a, I b) { return _mm512_add_epi32(a, b); }
  static HWY_INLINE I Sub32(I a, I b) { return _mm512_sub_epi32(a, b); }
  static HWY_INLINE F Zero() { return _mm512_setzero_ps(); }
  static HWY_INLINE F Cvt(I a) { return _mm512_cvtepi32_ps(a); }
  static HWY_INLINE F Scale(F dw, float xd) { return _mm512_mul_ps(dw, _mm512_set1_ps(xd)); }
  static HWY_INLINE F Fma(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }

  // Rows whose block lies in 80 contiguous bytes at p (4 rows of a tiled matrix's 8-row tile,
  // starting at row 0 or 4 of the tile): 2 loads, one word permute, one dword permute.
  static HWY_INLINE void LoadContiguous(const uint8_t* HWY_RESTRICT p, I* nib, F* dw) {
    // Word k of lane i: byte 4 + 20·i + 2k of p; lane 3's bytes (64..79) come from b (p + 16).
    alignas(64) static constexpr uint16_t kNib[32] = {
        2,  3,  4,  5,  6,  7,  8,  9,  12, 13, 14, 15, 16, 17, 18, 19,
        22, 23, 24, 25, 26, 27, 28, 29, 56, 57, 58, 59, 60, 61, 62, 63};
    alignas(64) static constexpr int32_t kDw[16] = {0, 0, 0, 0, 5,  5,  5,  5,
                                                    10, 10, 10, 10, 15, 15, 15, 15};
    const I a = _mm512_loadu_si512(p), b = _mm512_loadu_si512(p + 16);
    *nib = _mm512_permutex2var_epi16(a, _mm512_load_si512(kNib), b);
    *dw = _mm512_permutexvar_ps(_mm512_load_si512(kDw), _mm512_castsi512_ps(a));
  }
  // Rows anywhere: p[i] is row i's block (scale, then 16 bytes of nibbles).
  static HWY_INLINE void LoadRows(const uint8_t* const* p, I* nib, F* dw) {
    I v = _mm512_castsi128_si512(Load128(p[0] + 4));
    v = _mm512_inserti32x4(v, Load128(p[1] + 4), 1);
    v = _mm512_inserti32x4(v, Load128(p[2] + 4), 2);
    *nib = _mm512_inserti32x4(v, Load128(p[3] + 4), 3);
    float d[4];
    for (size_t i = 0; i < 4; ++i) std::memcpy(&d[i], p[i], 4);
    alignas(64) static constexpr int32_t kDw[16] = {0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3};
    *dw = _mm512_permutexvar_ps(_mm512_load_si512(kDw), _mm512_castps128_ps512(_mm_loadu_ps(d)));
  }
  // Stores the first n ≤ 4 rows' results to y[0, n): row i's is (a0 + a1) + (a2 + a3).
  static HWY_INLINE void StoreRows(F acc, size_t n, float* HWY_RESTRICT y) {
    const F pairs = _mm512_add_ps(acc, _mm512_permute_ps(acc, 0xB1));  // a0+a1 .. a2+a3
    const F sums = _mm512_add_ps(pairs, _mm512_permute_ps(pairs, 0x4E));
    alignas(64) static constexpr int32_t kFirst[16] = {0, 4, 8, 12};
    const __m128 v = _mm512_castps512_ps128(_mm512_permutexvar_ps(_mm512_load_si512(kFirst), sums));
    _mm_mask_storeu_ps(y, static_cast<__mmask8>((1u << n) - 1), v);
  }
};
// Decode tiles of 8 rows; prefill tiles of 8 rows × 4 tokens; 4 tiled decode streams.
constexpr size_t kDecodeRows = 8, kPrefillRows = 8, kTokens = 4, kStreams = 4;
#else
// AVX2: 2 rows per vector.
struct V {
  using I = __m256i;
  using F = __m256;
  static constexpr size_t kRows = 2;
  static HWY_INLINE I Bcast(const void* p) { return _mm256_broadcastsi128_si256(Load128(p)); }
  static HWY_INLINE I Set8(int8_t v) { return _mm256_set1_epi8(v); }
  static HWY_INLINE I Set16(int16_t v) { return _mm256_set1_epi16(v); }
  static HWY_INLINE I And(I a, I b) { return _mm256_and_si256(a, b); }
  static HWY_INLINE I Srl4(I a) { return _mm256_srli_epi16(a, 4); }
  static HWY_INLINE I Maddubs(I u8, I s8) { return _mm256_maddubs_epi16(u8, s8); }
  static HWY_INLINE I Add16(I a, I b) { return _mm256_add_epi16(a, b); }
  static HWY_INLINE I Madd(I a, I b) { return _mm256_madd_epi16(a, b); }
  static HWY_INLINE I Add32(I a, I b) { return _mm256_add_epi32(a, b); }
  static HWY_INLINE I Sub32(I a, I b) { return _mm256_sub_epi32(a, b); }
  static HWY_INLINE F Zero() { return _mm256_setzero_ps(); }
  static HWY_INLINE F Cvt(I a) { return _mm256_cvtepi32_ps(a); }
  static HWY_INLINE F Scale(F dw, float xd) { return _mm256_mul_ps(dw, _mm256_set1_ps(xd)); }
  static HWY_INLINE F Fma(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }

  // Two rows whose block lies in 40 contiguous bytes at p.
  static HWY_INLINE void LoadContiguous(const uint8_t* HWY_RESTRICT p, I* nib, F* dw) {
    *nib = _mm256_inserti128_si256(_mm256_castsi128_si256(Load128(p + 4)), Load128(p + 24), 1);
    const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    *dw = _mm256_permutevar8x32_ps(_mm256_castsi256_ps(a),
                                   _mm256_setr_epi32(0, 0, 0, 0, 5, 5, 5, 5));
  }
  static HWY_INLINE void LoadRows(const uint8_t* const* p, I* nib, F* dw) {
    *nib = _mm256_inserti128_si256(_mm256_castsi128_si256(Load128(p[0] + 4)), Load128(p[1] + 4), 1);
    float d0, d1;
    std::memcpy(&d0, p[0], 4);
    std::memcpy(&d1, p[1], 4);
    *dw = _mm256_set_m128(_mm_set1_ps(d1), _mm_set1_ps(d0));
  }
  static HWY_INLINE void StoreRows(F acc, size_t n, float* HWY_RESTRICT y) {
    const F pairs = _mm256_add_ps(acc, _mm256_permute_ps(acc, 0xB1));
    const F sums = _mm256_add_ps(pairs, _mm256_permute_ps(pairs, 0x4E));
    y[0] = _mm256_cvtss_f32(sums);
    if (n == 2) y[1] = _mm_cvtss_f32(_mm256_extractf128_ps(sums, 1));
  }
};
// Decode tiles of 6 rows; prefill tiles of 2 rows × 4 tokens (16 vector registers); no tiled
// decode streams (matmul_qacts.cc DecodeStreams: tiled q4 did not pay on AVX2).
constexpr size_t kDecodeRows = 6, kPrefillRows = 2, kTokens = 4;
#endif
constexpr size_t kVecRows = V::kRows;  // rows per vector

// An activation block broadcast to every row's 128-bit lane.
struct ActV {
  V::I xh_lo, xh_hi, xl_lo, xl_hi, corr;
};
HWY_INLINE ActV LoadAct(const Act& a) {
  return {V::Bcast(a.xh), V::Bcast(a.xh + 16), V::Bcast(a.xl), V::Bcast(a.xl + 16),
          V::Bcast(a.corr)};
}

// kVecRows rows' block (a row per 128-bit lane) and each row's scale in its lane. Elements j
// (lo) and 16 + j (hi) of the lane's row: as u8, the operand that multiplies xh (s8), and as
// s8, the one that multiplies xl (u8). For q4 both are the nibble (0..15).
struct W {
  V::I ulo, uhi, slo, shi;
  V::F dw;
};
HWY_INLINE W Unpack(V::I nib, V::F dw) {
  const V::I m = V::Set8(0x0F);
  const V::I lo = V::And(nib, m), hi = V::And(V::Srl4(nib), m);
  return {lo, hi, lo, hi, dw};
}
template <bool kContiguous>
HWY_INLINE W LoadW(const uint8_t* const* p) {
  V::I nib;
  V::F dw;
  if constexpr (kContiguous) {
    V::LoadContiguous(p[0], &nib, &dw);
  } else {
    V::LoadRows(p, &nib, &dw);
  }
  return Unpack(nib, dw);
}

#define MOE_QX86_UNROLL HWY_UNROLL(16)

struct Args {
  const uint8_t* w;
  size_t row_bytes, n_blocks;
  const Act* act;  // n_tokens × n_blocks
  const float* xd;
  float* y;
  size_t y_stride;
};
constexpr size_t kBlockBytes = QuantBlockBytes(WeightType::kQ4);

// A call's arguments over a matrix of type kW: its activations split into this thread's
// reused buffer (SplitActs).
template <WeightType kW>
HWY_INLINE Args SplitArgs(const uint8_t* w, size_t cols, const int16_t* xq, const float* xd,
                          size_t n_tokens, float* y, size_t y_stride) {
  const size_t nb = ActBlocks(cols);
  thread_local std::vector<Act> acts;
  if (acts.size() < n_tokens * nb) acts.resize(n_tokens * nb);
  SplitActs<kW == WeightType::kQ8>(xq, n_tokens * nb, acts.data());
  return {w, QuantRowBytes(kW, cols), nb, acts.data(), xd, y, y_stride};
}

namespace plain {
#define MOE_QX86_VNNI 0
#include "kernels/qacts_x86_tiles-inl.h"
#undef MOE_QX86_VNNI
}  // namespace plain
#if HWY_TARGET <= HWY_AVX3
namespace vnni {
#define MOE_QX86_VNNI 1
#include "kernels/qacts_x86_tiles-inl.h"
#undef MOE_QX86_VNNI
}  // namespace vnni
#endif

// MatMulQuantizedActs for a kQ4 matrix (kernels.h), rows [row_begin, row_end): vpdpbusd where
// the kernels run AVX3_VNNI (kernels.h AvailableTargets), else vpmaddubsw.
inline void MatMul(const uint8_t* w, size_t cols, bool tiled, const int16_t* xq, const float* xd,
                   size_t n_tokens, float* y, size_t y_stride, size_t row_begin, size_t row_end) {
  const Args a = SplitArgs<WeightType::kQ4>(w, cols, xq, xd, n_tokens, y, y_stride);
#if HWY_TARGET <= HWY_AVX3
  if (UseVnni()) return vnni::Run(a, tiled, n_tokens, row_begin, row_end);
#endif
  plain::Run(a, tiled, n_tokens, row_begin, row_end);
}

#if HWY_TARGET <= HWY_AVX3
// q8 weights × int16 activations with AVX512-VNNI (the AVX3_VNNI target), through the same
// tiles and streams. A q8 weight w is s8; vpdpbusd wants one u8 operand, so with
// x = 256·xh + xl as above
//   Σ w·x = 256·Σ (w + 128)·xh + Σ xl·w − 32768·Σ xh
// where w + 128 (w XOR 0x80) is u8, each vpdpbusd term sums four products exactly into int32
// (|256·Σ (w + 128)·xh| ≤ 256·8·255·128 < 2^31), and −32768·Σ xh per lane is the activation
// block's corr (SplitActs<true>). Each row's block sum is kept in 4 int32 lanes of 8 elements,
// converted to f32 per block as q4's are: a lane sum above 2^24 in magnitude (8 products near
// 127 · 32767) rounds there, the same way on every path. On AVX3 without VNNI and on AVX2, q8
// takes the int16 kernel (matmul_qacts.cc): vpmaddubsw cannot hold xl·w pairs (2·255·127 >
// 32767). The block takes a 128-bit lane per row as q4's nibbles do: elements 0..15 (lo) and
// 16..31 (hi).
namespace q8 {
constexpr size_t kBlockBytes = QuantBlockBytes(WeightType::kQ8);

HWY_INLINE W Unpack(__m512i lo, __m512i hi, __m512 dw) {
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  return {_mm512_xor_si512(lo, flip), _mm512_xor_si512(hi, flip), lo, hi, dw};
}
template <bool kContiguous>
HWY_INLINE W LoadW(const uint8_t* const* p) {
  if constexpr (kContiguous) {
    // 4 rows' blocks in 144 contiguous bytes at p[0] (rows 0..3 or 4..7 of a tile): row i's
    // elements 0..15 are bytes 4 + 36·i .. 19 + 36·i, i.e. words 2 + 18·i .. 9 + 18·i of the
    // 128 bytes at p[0]; elements 16..31 are the same words of the 128 bytes at p[0] + 16.
    alignas(64) static constexpr uint16_t kWords[32] = {
        2,  3,  4,  5,  6,  7,  8,  9,  20, 21, 22, 23, 24, 25, 26, 27,
        38, 39, 40, 41, 42, 43, 44, 45, 56, 57, 58, 59, 60, 61, 62, 63};
    // Row i's scale: dword 9·i of the 128 bytes at p[0].
    alignas(64) static constexpr int32_t kDw[16] = {0,  0,  0,  0,  9,  9,  9,  9,
                                                    18, 18, 18, 18, 27, 27, 27, 27};
    const uint8_t* q = p[0];
    const __m512i idx = _mm512_load_si512(kWords);
    const __m512i a = _mm512_loadu_si512(q), b = _mm512_loadu_si512(q + 64);
    const __m512i lo = _mm512_permutex2var_epi16(a, idx, b);
    const __m512i hi = _mm512_permutex2var_epi16(_mm512_loadu_si512(q + 16), idx,
                                                 _mm512_loadu_si512(q + 80));
    const __m512 dw = _mm512_permutex2var_ps(_mm512_castsi512_ps(a), _mm512_load_si512(kDw),
                                             _mm512_castsi512_ps(b));
    return Unpack(lo, hi, dw);
  } else {
    __m512i lo = _mm512_castsi128_si512(Load128(p[0] + 4));
    __m512i hi = _mm512_castsi128_si512(Load128(p[0] + 20));
    lo = _mm512_inserti32x4(lo, Load128(p[1] + 4), 1);
    hi = _mm512_inserti32x4(hi, Load128(p[1] + 20), 1);
    lo = _mm512_inserti32x4(lo, Load128(p[2] + 4), 2);
    hi = _mm512_inserti32x4(hi, Load128(p[2] + 20), 2);
    lo = _mm512_inserti32x4(lo, Load128(p[3] + 4), 3);
    hi = _mm512_inserti32x4(hi, Load128(p[3] + 20), 3);
    float d[4];
    for (size_t i = 0; i < 4; ++i) std::memcpy(&d[i], p[i], 4);
    alignas(64) static constexpr int32_t kDw[16] = {0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3};
    const __m512 dw =
        _mm512_permutexvar_ps(_mm512_load_si512(kDw), _mm512_castps128_ps512(_mm_loadu_ps(d)));
    return Unpack(lo, hi, dw);
  }
}

namespace vnni {
#define MOE_QX86_VNNI 1
#include "kernels/qacts_x86_tiles-inl.h"
#undef MOE_QX86_VNNI
}  // namespace vnni

// MatMulQuantizedActs for a kQ8 matrix where the kernels run AVX3_VNNI (kernels.h).
inline void MatMul(const uint8_t* w, size_t cols, bool tiled, const int16_t* xq, const float* xd,
                   size_t n_tokens, float* y, size_t y_stride, size_t row_begin, size_t row_end) {
  vnni::Run(SplitArgs<WeightType::kQ8>(w, cols, xq, xd, n_tokens, y, y_stride), tiled, n_tokens,
            row_begin, row_end);
}
}  // namespace q8
#endif  // HWY_TARGET <= HWY_AVX3

#undef MOE_QX86_UNROLL
}  // namespace qx86
#endif  // HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2

}  // namespace HWY_NAMESPACE
}  // namespace moe::kernels
HWY_AFTER_NAMESPACE();

#endif  // MOE_KERNELS_QACTS_X86_INL_H_
