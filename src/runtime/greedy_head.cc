// SPDX-License-Identifier: Apache-2.0
#include "runtime/greedy_head.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>

#include "util/thread_pool.h"

namespace moe {
namespace {

constexpr double kU = 0x1p-24;  // f32 unit roundoff
// Rounds a norm computed in double (≤ H terms, relative error far below this) up.
constexpr double kUp = 1.0 + 1e-9;
// The bound's widening for ties after a temperature (Candidates): 2⁻²⁰ relative covers the
// f32 rounding of two quotients (2⁻²³ together), 1e-30 absolute their subnormal rounding for
// temperatures up to kMaxTemperature.
constexpr double kRel = 0x1p-20, kAbs = 1e-30;
// Bounds on |logit| past this ask for the full product: divided by kMinTemperature they could
// overflow f32 and tie at infinity.
constexpr double kMaxLogit = 1e30;

// γ(n) = n·u / (1 − n·u): bounds the rounding of any f32 sum of n products (with or without
// FMA, any order) relative to the sum of their magnitudes.
double Gamma(size_t n) {
  const double nu = static_cast<double>(n) * kU;
  return nu / (1.0 - nu);
}

// Row r of a [rows, cols] f32/bf16/f16 matrix, row-major or tiled (kernels.h), as floats.
void RowToFloat(const kernels::WeightView& w, size_t r, float* dst) {
  const size_t elem = kernels::WeightTypeBytes(w.type);
  const auto* base = static_cast<const uint8_t*>(w.data);
  if (!w.tiled) {
    kernels::ToFloat(base + r * w.cols * elem, w.type, w.cols, dst);
    return;
  }
  for (size_t c = 0; c < w.cols; c += kernels::kTileCols) {
    kernels::ToFloat(base + kernels::TiledIndex(r, c, w.cols) * elem, w.type, kernels::kTileCols,
                     dst + c);
  }
}

}  // namespace

Result<std::unique_ptr<GreedyHead>> GreedyHead::Build(const kernels::WeightView& lm_head,
                                                      size_t threads) {
  using kernels::WeightType;
  if (kernels::IsQuantized(lm_head.type)) {
    return Error(StatusCode::kUnsupported,
                 "--lm-head-shadow: lm_head is already {} (--dense-quant); a shadow would not "
                 "read fewer bytes",
                 kernels::WeightTypeName(lm_head.type));
  }
  std::unique_ptr<GreedyHead> g(new GreedyHead);
  const size_t V = lm_head.rows, H = lm_head.cols;
  g->V_ = V;
  g->H_ = H;
  const size_t row_bytes = kernels::QuantRowBytes(WeightType::kQ8, H);
  const uint64_t bytes = kernels::WeightMatrixBytes(WeightType::kQ8, V, H);
  g->q8_ = AllocateHugeBuffer(bytes, /*prefault=*/false);
  if (!g->q8_) {
    return Error(StatusCode::kResourceExhausted,
                 "--lm-head-shadow: cannot allocate {} bytes for the q8 copy of lm_head", bytes);
  }
  g->alpha_.resize(V);
  g->beta_.resize(V);
  const double gamma_exact = Gamma(H + 64);
  auto* q8 = reinterpret_cast<uint8_t*>(g->q8_.get());
  const size_t bb = kernels::QuantBlockBytes(WeightType::kQ8);
  // Rows in parallel: the double sums per row cost more than QuantizeRow.
  ThreadPool pool(std::max<size_t>(1, threads));
  const size_t tasks = std::min(V, pool.n_threads() * 8);
  std::vector<std::vector<float>> rows(pool.n_threads(), std::vector<float>(H));
  pool.ParallelFor(tasks, [&](size_t task, size_t worker) {
    float* row = rows[worker].data();
    for (size_t r = V * task / tasks; r < V * (task + 1) / tasks; ++r) {
      RowToFloat(lm_head, r, row);
      uint8_t* dst = q8 + r * row_bytes;
      kernels::QuantizeRow(row, H, WeightType::kQ8, dst);
      // Sums of squares per block (each product d·q exact in double), then over blocks.
      double err2 = 0, nq2 = 0, nw2 = 0;
      for (size_t c0 = 0; c0 < H; c0 += kernels::kQuantBlock) {
        const uint8_t* blk = dst + c0 / kernels::kQuantBlock * bb;
        float d;
        std::memcpy(&d, blk, 4);
        const auto* q = reinterpret_cast<const int8_t*>(blk + 4);
        const size_t n = std::min(kernels::kQuantBlock, H - c0);
        double e = 0, nq = 0, nw = 0;
        for (size_t i = 0; i < n; ++i) {
          const double wq = static_cast<double>(d) * q[i], wv = row[c0 + i];
          e += (wv - wq) * (wv - wq);
          nq += wq * wq;
          nw += wv * wv;
        }
        err2 += e;
        nq2 += nq;
        nw2 += nw;
      }
      g->alpha_[r] = (std::sqrt(err2) + gamma_exact * std::sqrt(nw2)) * kUp;
      g->beta_[r] = std::sqrt(nq2) * kUp;
    }
  });
  g->shadow_ = {q8, WeightType::kQ8, V, H};
  if (kernels::TilingPays(WeightType::kQ8, V, H)) {
    kernels::TileMatrix(q8, WeightType::kQ8, V, H);
    g->shadow_.tiled = true;
  }
  return g;
}

bool GreedyHead::Candidates(const float* x, const int16_t* xq, const float* xd, const float* q,
                            size_t k, const uint8_t* skip, std::vector<double>* heap,
                            std::vector<int32_t>* out) const {
  double xx = 0, dd = 0, hh = 0;
  for (size_t c = 0; c < H_; ++c) {
    const double xh = static_cast<double>(xq[c]) * xd[c / kernels::kQuantBlock];  // exact
    const double xv = x[c];
    xx += xv * xv;
    dd += (xv - xh) * (xv - xh);
    hh += xh * xh;
  }
  const double X = std::sqrt(xx) * kUp;
  const double Y = (std::sqrt(dd) + Gamma(kernels::ActBlocks(H_) + 64) * std::sqrt(hh)) * kUp;
  if (!std::isfinite(X) || !std::isfinite(Y) || k == 0) return false;
  // The bound terms are computed in double from values ≥ 0: E rounds by far less than the
  // slack kUp and the γ terms leave. One pass: t, the k-th largest lower bound so far (a min-heap
  // of k), only grows, so a row below the running t is below the final one; the rows kept on
  // the way are filtered against the final t.
  //
  // E is widened by kRel·(E + |q|) + kAbs, so a row left out has l + kRel·|l| + kAbs below the
  // k-th largest: still below it after the sampler's division by a temperature in
  // [kMinTemperature, kMaxTemperature] rounds both (a strictly monotone map in exact arithmetic
  // that rounding could otherwise turn into a tie, which the id would then break).
  const auto bound = [&](size_t r, double qr) {
    return (alpha_[r] * X + beta_[r] * Y) * (1 + kRel) + kRel * std::fabs(qr) + kAbs;
  };
  double t = -std::numeric_limits<double>::infinity(), probe = 0, amax = 0;
  heap->clear();
  out->clear();
  const auto below = std::greater<double>();  // min-heap
  for (size_t r = 0; r < V_; ++r) {
    const double qr = q[r], e = bound(r, qr);
    probe += (qr - qr) + (e - e);  // NaN once any q or E is NaN or ±Inf
    amax = std::max(amax, std::fabs(qr) + e);
    if (skip && skip[r]) continue;
    const double lo = qr - e;
    if (heap->size() < k) {
      heap->push_back(lo);
      std::push_heap(heap->begin(), heap->end(), below);
      if (heap->size() == k) t = heap->front();
    } else if (lo > t) {
      std::pop_heap(heap->begin(), heap->end(), below);
      heap->back() = lo;
      std::push_heap(heap->begin(), heap->end(), below);
      t = heap->front();
    }
    if (qr + e >= t) out->push_back(static_cast<int32_t>(r));
  }
  if (probe != 0) return false;  // NaN/Inf weights or logits
  if (amax >= kMaxLogit) return false;  // a logit / kMinTemperature could overflow
  size_t kept = 0;
  for (const int32_t r : *out) {
    if (static_cast<double>(q[r]) + bound(static_cast<size_t>(r), q[r]) >= t) (*out)[kept++] = r;
  }
  out->resize(kept);
  return true;
}

}  // namespace moe
