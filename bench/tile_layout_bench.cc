// SPDX-License-Identifier: Apache-2.0
// Does a tile-interleaved bf16 weight layout stream faster than row-major in decode? (x86-64
// with AVX-512 only; docs/benchmarks.md, sessions 9 and 10.) A decode MatMul over 8-row tiles
// reads 8 row streams at once; stored tile-interleaved ([tile][16-column chunk][row][16]) the
// same tile is one sequential stream. The scratch arms compute every output with the engine's
// chain (16-lane FMA over the columns in order, then one reduction), so their outputs must be
// bit-identical, and that is checked; a last arm runs the engine's own kernels::MatMul on the
// row-major rows (its lane reduction may differ: checked within 1e-4). Each round times, in a
// rotating order, the memory probe (the fastest target's XorFold, as `moestream bench
// --measure-memory`) and each arm over the pool; the summary gives medians of the per-round
// shares of the probe and of the per-round ratios to arm 1 (rounds share the host's phase). A
// single-thread pass over 256 rows that stay in L2 gives each arm's compute-only rate.
//
//   build-bench/bench/tile_layout_bench [--rows 151936] [--cols 2048] [--threads 2] [--rounds 9]
// The scratch loops carry `#pragma GCC unroll`: at -O2 GCC otherwise keeps the 8 accumulators on
// the stack (a load and a store per FMA), which halved their compute-only rate in session 9.
// GCC 12's own AVX-512 intrinsics (_mm512_undefined_*) trip -Wmaybe-uninitialized.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <type_traits>
#include <vector>

#include "bench_buffers.h"
#include "kernels/kernels.h"
#include "runtime/memory_probe.h"
#include "util/thread_pool.h"

namespace moe {
namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kRows = 8;    // rows per tile, as the engine's decode tile
constexpr size_t kChunk = 16;  // columns per step (16 f32 lanes)

#define MOE_AVX512 __attribute__((target("avx512f,avx512bw")))

MOE_AVX512 inline __m512 Widen(const uint16_t* p) {
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

// Row (tile row i) chunk c's 16 weights: row-major, or interleaved within the tile.
struct RowMajor {
  static const uint16_t* At(const uint16_t* tile, size_t cols, size_t i, size_t c) {
    return tile + i * cols + c;
  }
};
struct Interleaved {
  static const uint16_t* At(const uint16_t* tile, size_t, size_t i, size_t c) {
    return tile + c * kRows + i * kChunk;
  }
};

// y[r] for rows [r0, r1) (whole tiles; cols a multiple of 16). kPrefetch: bytes ahead of the
// current step to prefetch into L2 (row-major: the next tile's rows, as the engine does).
template <class Layout, bool kPrefetch>
MOE_AVX512 void Gemv(const uint16_t* w, size_t cols, const float* x, float* y, size_t r0,
                     size_t r1) {
  for (size_t r = r0; r < r1; r += kRows) {
    const uint16_t* tile = w + r * cols;
    __m512 acc[kRows];
#pragma GCC unroll 8
    for (size_t i = 0; i < kRows; ++i) acc[i] = _mm512_setzero_ps();
    for (size_t c = 0; c < cols; c += kChunk) {
      if constexpr (kPrefetch) {
        // Row-major: one tile ahead, this step's share; interleaved: 8 steps ahead.
        const char* p = std::is_same_v<Layout, RowMajor>
                            ? reinterpret_cast<const char*>(tile + kRows * cols + c * kRows)
                            : reinterpret_cast<const char*>(tile + (c + 8 * kChunk) * kRows);
#pragma GCC unroll 4
        for (size_t k = 0; k < kRows * kChunk * 2; k += 64) _mm_prefetch(p + k, _MM_HINT_T1);
      }
      const __m512 xv = _mm512_loadu_ps(x + c);
#pragma GCC unroll 8
      for (size_t i = 0; i < kRows; ++i) {
        acc[i] = _mm512_fmadd_ps(Widen(Layout::At(tile, cols, i, c)), xv, acc[i]);
      }
    }
#pragma GCC unroll 8
    for (size_t i = 0; i < kRows; ++i) y[r + i] = _mm512_reduce_add_ps(acc[i]);
  }
}

// The engine's own decode MatMul (kernels::MatMul, one token) over the same row-major rows.
void EngineGemv(const uint16_t* w, size_t cols, const float* x, float* y, size_t r0, size_t r1) {
  const kernels::WeightView v{w, kernels::WeightType::kBF16, r1, cols};
  kernels::MatMul(v, x, 1, cols, y, r1, r0, r1);
}

void EngineTiledGemv(const uint16_t* w, size_t cols, const float* x, float* y, size_t r0,
                     size_t r1) {
  kernels::WeightView v{w, kernels::WeightType::kBF16, r1, cols};
  v.tiled = true;
  kernels::MatMul(v, x, 1, cols, y, r1, r0, r1);
}

using GemvFn = void (*)(const uint16_t*, size_t, const float*, float*, size_t, size_t);
struct Arm {
  const char* name;
  GemvFn fn;
  bool interleaved;
  bool engine;  // kernels::MatMul: its own lane reduction, so compared within a tolerance
  std::vector<double> gb_s;
  std::vector<float> y;
};

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

int Main(int argc, char** argv) {
  size_t rows = 151936, cols = 2048, threads = 2, rounds = 9;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string_view f = argv[i];
    const size_t v = std::strtoull(argv[i + 1], nullptr, 10);
    if (f == "--rows") rows = v;
    else if (f == "--cols") cols = v;
    else if (f == "--threads") threads = v;
    else if (f == "--rounds") rounds = v;
    else return std::fprintf(stderr, "unknown flag %s\n", argv[i]), 2;
  }
  if (!__builtin_cpu_supports("avx512bw")) return std::puts("needs AVX-512 (F, BW)"), 0;
  rows -= rows % (kRows * threads);
  cols -= cols % kChunk;
  if (rows == 0 || cols == 0) return std::fputs("--rows/--cols too small\n", stderr), 2;
  const size_t bytes = rows * cols * 2;
  HugeBuffer row_major = bench::WeightLikeBuffer(bytes, 7, 0x3fff);
  HugeBuffer inter = AllocateHugeBuffer(bytes, /*prefault=*/true);
  if (!row_major || !inter) return std::fputs("allocation failed\n", stderr), 1;
  const auto* rm = reinterpret_cast<const uint16_t*>(row_major.get());
  auto* il = reinterpret_cast<uint16_t*>(inter.get());
  for (size_t r = 0; r < rows; r += kRows) {
    for (size_t c = 0; c < cols; c += kChunk) {
      for (size_t i = 0; i < kRows; ++i) {
        std::memcpy(il + r * cols + c * kRows + i * kChunk, rm + (r + i) * cols + c, kChunk * 2);
      }
    }
  }
  std::vector<float> x(cols), y_l2(rows);
  for (size_t i = 0; i < cols; ++i) x[i] = static_cast<float>(i % 13) * 0.125f - 0.75f;
  // name, kernel, interleaved, engine, GB/s per round, y
  std::vector<Arm> arms = {
      {"row-major, prefetch next tile", Gemv<RowMajor, true>, false, false, {}, {}},
      {"row-major, no prefetch", Gemv<RowMajor, false>, false, false, {}, {}},
      {"interleaved, no prefetch", Gemv<Interleaved, false>, true, false, {}, {}},
      {"interleaved, prefetch 8 steps", Gemv<Interleaved, true>, true, false, {}, {}},
      {"engine kernels::MatMul", EngineGemv, false, true, {}, {}},
      {"engine kernels::MatMul, tiled", EngineTiledGemv, true, true, {}, {}}};
  for (Arm& a : arms) {  // compute-only: 256 rows (1 MiB at 2048 columns) stay in L2
    const size_t n = std::min<size_t>(rows, 256), reps = 200;
    const auto* w = a.interleaved ? il : rm;
    a.fn(w, cols, x.data(), y_l2.data(), 0, n);
    const auto t0 = Clock::now();
    for (size_t k = 0; k < reps; ++k) a.fn(w, cols, x.data(), y_l2.data(), 0, n);
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    std::printf("compute-only (L2, 1 thread)  %-30s %6.1f GB/s\n", a.name,
                static_cast<double>(reps * n * cols * 2) / s / 1e9);
  }
  ThreadPool pool(threads);
  const size_t per = rows / threads;
  uint64_t sink = 0;
  std::vector<double> probe;
  const auto time_arm = [&](Arm& a) {
    const auto* w = a.interleaved ? il : rm;
    a.y.resize(rows);
    float* y = a.y.data();
    const auto t0 = Clock::now();
    pool.ParallelFor(threads, [&](size_t t, size_t) {
      a.fn(w, cols, x.data(), y, t * per, (t + 1) * per);
    });
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    return static_cast<double>(bytes) / s / 1e9;
  };
  std::printf("bf16 %zu x %zu (%.1f MB), %zu threads\n", rows, cols, bytes / 1e6, threads);
  for (size_t r = 0; r <= rounds; ++r) {  // round 0 warms up
    const double best_probe = bytes / TimeReadPass(pool, rm, bytes, &sink) / 1e9;
    std::vector<double> gb(arms.size());
    for (size_t k = 0; k < arms.size(); ++k) {  // rotate the order: no arm always runs first
      const size_t a = (k + r) % arms.size();
      gb[a] = time_arm(arms[a]);
    }
    for (const Arm& a : arms) {
      const std::vector<float>& ref = arms[0].y;
      const bool same = a.engine ? std::equal(a.y.begin(), a.y.end(), ref.begin(),
                                              [](float u, float v) {
                                                return std::abs(u - v) <= 1e-4f * (1 + std::abs(v));
                                              })
                                 : a.y == ref;
      if (!same) return std::fprintf(stderr, "%s: output differs from arm 0\n", a.name), 1;
    }
    if (r == 0) continue;
    probe.push_back(best_probe);
    std::printf("round %2zu  probe %6.1f", r, best_probe);
    for (size_t a = 0; a < arms.size(); ++a) {
      arms[a].gb_s.push_back(gb[a]);
      std::printf("  | %5.1f", gb[a]);
    }
    std::printf("\n");
  }
  std::printf("medians: probe %.1f GB/s (sink %llx)\n", Median(probe),
              static_cast<unsigned long long>(sink & 1));
  for (const Arm& a : arms) {  // shares and ratios per round (the same phase), then medians
    std::vector<double> share, ratio;
    for (size_t k = 0; k < probe.size(); ++k) {
      share.push_back(a.gb_s[k] / probe[k]);
      ratio.push_back(a.gb_s[k] / arms[0].gb_s[k]);
    }
    std::printf("  %-30s %6.1f GB/s = %5.1f%% of probe, %.3fx arm 1 (per-round median)\n", a.name,
                Median(a.gb_s), 100 * Median(share), Median(ratio));
  }
  return 0;
}

}  // namespace
}  // namespace moe

int main(int argc, char** argv) { return moe::Main(argc, argv); }
