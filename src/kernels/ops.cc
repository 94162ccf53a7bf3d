// SPDX-License-Identifier: Apache-2.0
// Vector kernels (conversion, RMSNorm, SiLU·up, softmax, dot/axpy/scale, attention helpers,
// RoPE), one Highway implementation per target. Each keeps a fixed per-element operation order
// for a given n, so repeated calls on the same data give the same bits.
#include "kernels/targets.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/kernels.h"
#include "kernels/reference.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/ops.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "hwy/contrib/math/math-inl.h"
#include "kernels/simd-inl.h"

HWY_BEFORE_NAMESPACE();
namespace moe::kernels {
namespace HWY_NAMESPACE {
namespace {

// Software prefetch into L2 of the line holding p[ahead]: an address computed as an integer,
// since it may lie past the end of the array (a prefetch never faults).
HWY_INLINE void PrefetchAhead(const float* p, size_t ahead) {
  __builtin_prefetch(reinterpret_cast<const void*>(reinterpret_cast<uintptr_t>(p) +
                                                   ahead * sizeof(float)),
                     0, 2);
}

// Stores the first n < Lanes(df) lanes of v to p without touching p[n..].
HWY_INLINE void StoreTail(DF df, VF v, float* HWY_RESTRICT p, size_t n) {
  HWY_ALIGN float buf[kMaxLanes];
  hn::StoreU(v, df, buf);
  std::memcpy(p, buf, n * sizeof(float));
}

// Applies f(v, i) -> VF to x[0..n) in vector chunks, storing to out (may alias inputs).
template <class Fn>
HWY_INLINE void ForEachChunk(size_t n, float* HWY_RESTRICT out, const Fn& fn) {
  const DF df;
  const size_t N = hn::Lanes(df);
  size_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(fn(i, N), df, out + i);
  if (i != n) StoreTail(df, fn(i, n - i), out + i, n - i);
}

// Loads x[i..i+len) (len ≤ N; len < N zero-pads).
template <typename T>
HWY_INLINE VF LoadChunk(DF df, const T* HWY_RESTRICT p, size_t i, size_t len) {
  return len == hn::Lanes(df) ? LoadWeights(df, p + i) : LoadTail(df, p + i, len);
}

// Σ a[i]·b[i]: two accumulators over alternating chunks, zero-padded tail into the first.
HWY_INLINE float DotF32(const float* HWY_RESTRICT a, const float* HWY_RESTRICT b, size_t n) {
  const DF df;
  const size_t N = hn::Lanes(df);
  VF acc0 = hn::Zero(df), acc1 = hn::Zero(df);
  size_t i = 0;
  for (; i + 2 * N <= n; i += 2 * N) {
    acc0 = hn::MulAdd(hn::LoadU(df, a + i), hn::LoadU(df, b + i), acc0);
    acc1 = hn::MulAdd(hn::LoadU(df, a + i + N), hn::LoadU(df, b + i + N), acc1);
  }
  if (i + N <= n) {
    acc0 = hn::MulAdd(hn::LoadU(df, a + i), hn::LoadU(df, b + i), acc0);
    i += N;
  }
  if (i != n) acc1 = hn::MulAdd(LoadTail(df, a + i, n - i), LoadTail(df, b + i, n - i), acc1);
  return ReduceSum(df, hn::Add(acc0, acc1));
}

template <typename TW>
void ToFloatT(const TW* HWY_RESTRICT src, size_t n, float* HWY_RESTRICT dst) {
  const DF df;
  ForEachChunk(n, dst, [&](size_t i, size_t len) { return LoadChunk(df, src, i, len); });
}

template <typename TW>
void RmsNormT(const float* x, const TW* HWY_RESTRICT w, size_t n, float eps, float* out) {
  const DF df;
  const float ss = DotF32(x, x, n);
  const VF inv = hn::Set(df, 1.0f / std::sqrt(ss / static_cast<float>(n) + eps));
  ForEachChunk(n, out, [&](size_t i, size_t len) {
    return hn::Mul(hn::Mul(LoadChunk(df, x, i, len), inv), LoadChunk(df, w, i, len));
  });
}

}  // namespace

void ToFloatImpl(const void* src, WeightType type, size_t n, float* dst) {
  switch (type) {
    case WeightType::kF32: return ToFloatT(static_cast<const float*>(src), n, dst);
    case WeightType::kBF16: return ToFloatT(static_cast<const hwy::bfloat16_t*>(src), n, dst);
    case WeightType::kF16: return ToFloatT(static_cast<const hwy::float16_t*>(src), n, dst);
    case WeightType::kQ8:
    case WeightType::kQ4: return reference::DequantizeRow(src, type, n, 0, dst);
  }
}

void RmsNormImpl(const float* x, const void* w, WeightType w_type, size_t n, float eps,
                 float* out) {
  if (n == 0) return;
  switch (w_type) {
    case WeightType::kF32: return RmsNormT(x, static_cast<const float*>(w), n, eps, out);
    case WeightType::kBF16:
      return RmsNormT(x, static_cast<const hwy::bfloat16_t*>(w), n, eps, out);
    case WeightType::kF16: return RmsNormT(x, static_cast<const hwy::float16_t*>(w), n, eps, out);
    case WeightType::kQ8:
    case WeightType::kQ4: {  // never produced by convert; supported for completeness
      const float inv = 1.0f / std::sqrt(DotF32(x, x, n) / static_cast<float>(n) + eps);
      float buf[kQuantBlock];
      const auto* wb = static_cast<const uint8_t*>(w);
      for (size_t b = 0; b * kQuantBlock < n; ++b) {
        const size_t len = HWY_MIN(kQuantBlock, n - b * kQuantBlock);
        reference::DequantizeRow(wb + b * QuantBlockBytes(w_type), w_type, len, 0, buf);
        for (size_t j = 0; j < len; ++j) {
          out[b * kQuantBlock + j] = x[b * kQuantBlock + j] * inv * buf[j];
        }
      }
      return;
    }
  }
}

void SiluMulImpl(float* gate, const float* up, size_t n) {
  const DF df;
  const VF one = hn::Set(df, 1.0f);
  const VF limit = hn::Set(df, 88.0f);  // exp(88) < FLT_MAX; hn::Exp is defined up to 104
  ForEachChunk(n, gate, [&](size_t i, size_t len) {
    const VF g = LoadChunk(df, gate, i, len);
    const VF neg = hn::Neg(g);
    const VF e = hn::Exp(df, hn::Min(neg, limit));
    VF s = hn::Div(g, hn::Add(one, e));
    // Where exp(-g) overflows, g / (1 + inf) is g · 0 (−0, or NaN for g = −inf).
    s = hn::IfThenElse(hn::Gt(neg, limit), hn::Mul(g, hn::Zero(df)), s);
    return hn::Mul(s, LoadChunk(df, up, i, len));
  });
}

void SoftmaxImpl(float* x, size_t n) {
  if (n == 0) return;
  const DF df;
  const size_t N = hn::Lanes(df);
  VF vmax = hn::Set(df, -std::numeric_limits<float>::infinity());
  size_t i = 0;
  for (; i + N <= n; i += N) vmax = hn::Max(vmax, hn::LoadU(df, x + i));
  if (i != n) {
    const VF t = hn::IfThenElse(hn::FirstN(df, n - i), LoadTail(df, x + i, n - i), vmax);
    vmax = hn::Max(vmax, t);
  }
  const VF mx = hn::MaxOfLanes(df, vmax);
  VF sum = hn::Zero(df);
  ForEachChunk(n, x, [&](size_t j, size_t len) {
    const VF d = hn::Sub(LoadChunk(df, x, j, len), mx);
    // NaN (from NaN inputs or ±inf − ±inf) propagates into the sum, making every output NaN.
    VF e = hn::IfThenElse(hn::IsNaN(d), d, hn::Exp(df, d));
    e = hn::IfThenElseZero(hn::FirstN(df, len), e);
    sum = hn::Add(sum, e);
    return e;
  });
  const VF inv = hn::Set(df, 1.0f / ReduceSum(df, sum));
  ForEachChunk(n, x, [&](size_t j, size_t len) { return hn::Mul(LoadChunk(df, x, j, len), inv); });
}

float DotImpl(const float* a, const float* b, size_t n) { return DotF32(a, b, n); }

uint64_t XorFoldImpl(const void* p, size_t bytes) {
  const hn::ScalableTag<uint64_t> du;
  const size_t N = hn::Lanes(du);
  const auto* w = static_cast<const uint64_t*>(p);
  const size_t n = bytes / 8;
  auto a0 = hn::Zero(du), a1 = a0, a2 = a0, a3 = a0;  // 4 independent chains: pure load rate
  size_t i = 0;
  for (; i + 4 * N <= n; i += 4 * N) {
    a0 = hn::Xor(a0, hn::LoadU(du, w + i));
    a1 = hn::Xor(a1, hn::LoadU(du, w + i + N));
    a2 = hn::Xor(a2, hn::LoadU(du, w + i + 2 * N));
    a3 = hn::Xor(a3, hn::LoadU(du, w + i + 3 * N));
  }
  const auto v = hn::Xor(hn::Xor(a0, a1), hn::Xor(a2, a3));
  HWY_ALIGN uint64_t lanes[HWY_MAX_BYTES / 8];
  hn::Store(v, du, lanes);
  uint64_t r = 0;
  for (size_t j = 0; j < N; ++j) r ^= lanes[j];
  for (; i < n; ++i) r ^= w[i];
  return r;
}

void AxpyImpl(float a, const float* x, float* y, size_t n) {
  const DF df;
  const VF va = hn::Set(df, a);
  ForEachChunk(n, y, [&](size_t i, size_t len) {
    return hn::MulAdd(va, LoadChunk(df, x, i, len), LoadChunk(df, y, i, len));
  });
}

void ScaleImpl(float a, float* x, size_t n) {
  const DF df;
  const VF va = hn::Set(df, a);
  ForEachChunk(n, x, [&](size_t i, size_t len) { return hn::Mul(va, LoadChunk(df, x, i, len)); });
}

// Scores of kH query heads against kV vectors of keys (vector v: keys [s0 + v·N, s0 + v·N + N)
// of the tiled layout): kH·kV independent FMA chains, each lane one (head, key) summing over
// the head dimension in order. A key vector is loaded once for the kH heads.
template <size_t kH, size_t kV, class D>
HWY_INLINE void ScoreBlock(D d, const AttentionScoresArgs& a, size_t h0, size_t s0,
                           float* scores) {
  using V = hn::Vec<D>;
  const size_t N = hn::Lanes(d);
  const float* kp[kV];
  const float* qp[kH];
  V acc[kH][kV];
  HWY_UNROLL(8) for (size_t v = 0; v < kV; ++v) {
    kp[v] = a.k + KeyTileIndex(s0 + v * N, 0, a.head_dim);
  }
  HWY_UNROLL(8) for (size_t h = 0; h < kH; ++h) {
    qp[h] = a.q + (h0 + h) * a.head_dim;
    HWY_UNROLL(8) for (size_t v = 0; v < kV; ++v) acc[h][v] = hn::Zero(d);
  }
  // The keys kV vectors on, row for row: the next pass's tiles are in L2 when it starts.
  const size_t ahead = kV * N * a.head_dim;
  for (size_t i = 0; i < a.head_dim; ++i) {
    V kv[kV];
    HWY_UNROLL(8) for (size_t v = 0; v < kV; ++v) {
      PrefetchAhead(kp[v] + i * kKeyTile, ahead);
      kv[v] = hn::LoadU(d, kp[v] + i * kKeyTile);
    }
    HWY_UNROLL(8) for (size_t h = 0; h < kH; ++h) {
      const V qi = hn::Set(d, qp[h][i]);
      HWY_UNROLL(8) for (size_t v = 0; v < kV; ++v) acc[h][v] = hn::MulAdd(qi, kv[v], acc[h][v]);
    }
  }
  const V scale = hn::Set(d, a.scale);
  HWY_UNROLL(8) for (size_t h = 0; h < kH; ++h) {
    float* row = scores + (h0 + h) * a.scores_stride;
    HWY_UNROLL(8) for (size_t v = 0; v < kV; ++v) {
      const size_t s = s0 + v * N;
      if (s + N <= a.n_keys) {
        hn::StoreU(hn::Mul(acc[h][v], scale), d, row + s);
      } else if (s < a.n_keys) {
        HWY_ALIGN float buf[kKeyTile];
        hn::StoreU(hn::Mul(acc[h][v], scale), d, buf);
        std::memcpy(row + s, buf, (a.n_keys - s) * sizeof(float));
      }
    }
  }
}

// Keys [s, e) for heads h0..h0+kH: kV vectors per pass, then one at a time.
template <size_t kH, size_t kV, class D>
HWY_INLINE void ScoreHeads(D d, const AttentionScoresArgs& a, size_t h0, size_t s, size_t e,
                           float* scores) {
  const size_t N = hn::Lanes(d);
  for (; s + kV * N <= e; s += kV * N) ScoreBlock<kH, kV>(d, a, h0, s, scores);
  for (; s < e; s += N) ScoreBlock<kH, 1>(d, a, h0, s, scores);
}

void AttentionScoresImpl(const AttentionScoresArgs& args, float* scores) {
  // At most kKeyTile lanes, so that a vector never spans two tiles. 8 chains hide the FMA
  // latency; 4 heads × 2 key vectors (2 loads and 4 broadcasts per 8 FMAs) where the group
  // allows, reading each key once per 4 heads. Keys in chunks of 8 vectors, every head over a
  // chunk before the next: a chunk comes from memory once and from L1/L2 for the other heads.
  // Without native FMA (SSE2/SSE4) a broadcast and a multiply-add cost more than the reloads
  // they save: one head at a time there (kernels_bench BM_AttentionDecode, SSE4 forced).
  const hn::CappedTag<float, kKeyTile> d;
  const size_t chunk = 8 * hn::Lanes(d);
  for (size_t s = 0; s < args.n_keys; s += chunk) {
    const size_t e = HWY_MIN(args.n_keys, s + chunk);
    size_t h = 0;
#if HWY_NATIVE_FMA
    for (; h + 4 <= args.n_heads; h += 4) ScoreHeads<4, 2>(d, args, h, s, e, scores);
    for (; h + 2 <= args.n_heads; h += 2) ScoreHeads<2, 4>(d, args, h, s, e, scores);
#endif
    for (; h < args.n_heads; ++h) ScoreHeads<1, 8>(d, args, h, s, e, scores);
  }
}

constexpr size_t kWeightedSumChunk = 32;  // keys per chunk, below

// out rows h0..h0+kH, vectors [dd, dd + kC·N) += Σ_{j0 ≤ j < j1} p[h][j]·value j: keys outer,
// kH·kC accumulator chains, a value vector loaded once for the kH heads.
template <size_t kH, size_t kC>
HWY_INLINE void WeightedSumBlock(const AttentionWeightedSumArgs& a, size_t h0, size_t dd,
                                 size_t j0, size_t j1) {
  const DF df;
  const size_t N = hn::Lanes(df);
  VF acc[kH][kC];
  HWY_UNROLL(8) for (size_t h = 0; h < kH; ++h) {
    HWY_UNROLL(8) for (size_t c = 0; c < kC; ++c) {
      acc[h][c] = hn::LoadU(df, a.out + (h0 + h) * a.out_stride + dd + c * N);
    }
  }
  for (size_t j = j0; j < j1; ++j) {
    const float* vj = a.v + j * a.v_stride + dd;
    // The same part of the value kWeightedSumChunk keys on: the next chunk is in L2 when it
    // starts (a value row's parts are read by successive blocks of output vectors).
    for (size_t off = 0; off < kC * N; off += 64 / sizeof(float)) {
      PrefetchAhead(vj + off, kWeightedSumChunk * a.v_stride);
    }
    VF vv[kC];
    HWY_UNROLL(8) for (size_t c = 0; c < kC; ++c) vv[c] = hn::LoadU(df, vj + c * N);
    HWY_UNROLL(8) for (size_t h = 0; h < kH; ++h) {
      const VF ph = hn::Set(df, a.p[(h0 + h) * a.p_stride + j]);
      HWY_UNROLL(8) for (size_t c = 0; c < kC; ++c) acc[h][c] = hn::MulAdd(ph, vv[c], acc[h][c]);
    }
  }
  HWY_UNROLL(8) for (size_t h = 0; h < kH; ++h) {
    HWY_UNROLL(8) for (size_t c = 0; c < kC; ++c) {
      hn::StoreU(acc[h][c], df, a.out + (h0 + h) * a.out_stride + dd + c * N);
    }
  }
}

template <size_t kH, size_t kC>
HWY_INLINE void WeightedSumHeads(const AttentionWeightedSumArgs& a, size_t h0, size_t j0,
                                 size_t j1) {
  const DF df;
  const size_t N = hn::Lanes(df);
  size_t dd = 0;
  for (; dd + kC * N <= a.head_dim; dd += kC * N) WeightedSumBlock<kH, kC>(a, h0, dd, j0, j1);
  for (; dd + N <= a.head_dim; dd += N) WeightedSumBlock<kH, 1>(a, h0, dd, j0, j1);
  if (dd == a.head_dim) return;
  const size_t len = a.head_dim - dd;  // tail: zero-padded lanes, the first len stored
  for (size_t h = h0; h < h0 + kH; ++h) {
    float* out = a.out + h * a.out_stride + dd;
    VF acc = LoadTail(df, out, len);
    for (size_t j = j0; j < j1; ++j) {
      acc = hn::MulAdd(hn::Set(df, a.p[h * a.p_stride + j]),
                       LoadTail(df, a.v + j * a.v_stride + dd, len), acc);
    }
    StoreTail(df, acc, out, len);
  }
}

void AttentionWeightedSumImpl(const AttentionWeightedSumArgs& args) {
  // Keys in chunks of 32 (16 KiB of values at head_dim 128), every head and output vector
  // over a chunk before the next: a chunk's values come from memory once and from L1 for the
  // rest. Each output's sum still runs over the keys in order (through out between chunks).
  for (size_t j0 = 0; j0 < args.n_keys; j0 += kWeightedSumChunk) {
    const size_t j1 = HWY_MIN(args.n_keys, j0 + kWeightedSumChunk);
    size_t h = 0;
#if HWY_NATIVE_FMA  // as in AttentionScoresImpl
    for (; h + 4 <= args.n_heads; h += 4) WeightedSumHeads<4, 2>(args, h, j0, j1);
    for (; h + 2 <= args.n_heads; h += 2) WeightedSumHeads<2, 4>(args, h, j0, j1);
#endif
    for (; h < args.n_heads; ++h) WeightedSumHeads<1, 8>(args, h, j0, j1);
  }
}

void RopeRotateHalfImpl(float* x, const float* cos, const float* sin, size_t head_dim) {
  const DF df;
  const size_t half = head_dim / 2;
  float* x2 = x + half;
  // Both halves are read before either is written: chunks of x and x2 are disjoint.
  ForEachChunk(half, x, [&](size_t i, size_t len) {
    const VF a = LoadChunk(df, x, i, len), b = LoadChunk(df, x2, i, len);
    const VF c = LoadChunk(df, cos, i, len), s = LoadChunk(df, sin, i, len);
    const VF new_b = hn::Add(hn::Mul(b, c), hn::Mul(a, s));
    if (len == hn::Lanes(df)) {
      hn::StoreU(new_b, df, x2 + i);
    } else {
      StoreTail(df, new_b, x2 + i, len);
    }
    return hn::Sub(hn::Mul(a, c), hn::Mul(b, s));
  });
}

const char* TargetNameImpl() { return hwy::TargetName(HWY_TARGET); }

}  // namespace HWY_NAMESPACE
}  // namespace moe::kernels
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "kernels/target_select.h"

namespace moe::kernels {

HWY_EXPORT(ToFloatImpl);
HWY_EXPORT(RmsNormImpl);
HWY_EXPORT(SiluMulImpl);
HWY_EXPORT(SoftmaxImpl);
HWY_EXPORT(DotImpl);
HWY_EXPORT(XorFoldImpl);
HWY_EXPORT(AxpyImpl);
HWY_EXPORT(ScaleImpl);
HWY_EXPORT(AttentionScoresImpl);
HWY_EXPORT(AttentionWeightedSumImpl);
HWY_EXPORT(RopeRotateHalfImpl);
HWY_EXPORT(TargetNameImpl);

[[maybe_unused]] static const bool kTargetFromEnv = ApplyTargetFromEnv();

void ToFloat(const void* src, WeightType type, size_t n, float* dst) {
  HWY_DYNAMIC_DISPATCH(ToFloatImpl)(src, type, n, dst);
}
void RmsNorm(const float* x, const void* w, WeightType w_type, size_t n, float eps, float* out) {
  HWY_DYNAMIC_DISPATCH(RmsNormImpl)(x, w, w_type, n, eps, out);
}
void SiluMul(float* gate, const float* up, size_t n) {
  HWY_DYNAMIC_DISPATCH(SiluMulImpl)(gate, up, n);
}
void Softmax(float* x, size_t n) { HWY_DYNAMIC_DISPATCH(SoftmaxImpl)(x, n); }
float Dot(const float* a, const float* b, size_t n) { return HWY_DYNAMIC_DISPATCH(DotImpl)(a, b, n); }
uint64_t XorFold(const void* p, size_t bytes) { return HWY_DYNAMIC_DISPATCH(XorFoldImpl)(p, bytes); }

std::vector<XorFoldFn> XorFoldPerTarget() {
  std::vector<XorFoldFn> fns;
  for (int64_t bits = AvailableTargetBits(); bits != 0; bits &= bits - 1) {
    hwy::ChosenTarget one;  // the dispatch-table index of this one target
    one.Update(bits & -bits);
    fns.push_back(HWY_DISPATCH_TABLE(XorFoldImpl)[one.GetIndex()]);
  }
  return fns;
}

void Axpy(float a, const float* x, float* y, size_t n) {
  HWY_DYNAMIC_DISPATCH(AxpyImpl)(a, x, y, n);
}
void Scale(float a, float* x, size_t n) { HWY_DYNAMIC_DISPATCH(ScaleImpl)(a, x, n); }
void AttentionScores(const AttentionScoresArgs& args, float* scores) {
  HWY_DYNAMIC_DISPATCH(AttentionScoresImpl)(args, scores);
}
void AttentionWeightedSum(const AttentionWeightedSumArgs& args) {
  HWY_DYNAMIC_DISPATCH(AttentionWeightedSumImpl)(args);
}
void RopeRotateHalf(float* x, const float* cos, const float* sin, size_t head_dim) {
  HWY_DYNAMIC_DISPATCH(RopeRotateHalfImpl)(x, cos, sin, head_dim);
}
const char* TargetName() {
  return UseVnni() ? "AVX3_VNNI" : HWY_DYNAMIC_DISPATCH(TargetNameImpl)();
}

}  // namespace moe::kernels
#endif  // HWY_ONCE
