// SPDX-License-Identifier: Apache-2.0
// Kernel micro-benchmarks: MatMul GB/s of weight bytes at decode/prefill shapes next to the
// machine's single-thread streaming-read bandwidth, measured in the same binary.
//
//   cmake -S . -B build-bench -G Ninja -DCMAKE_BUILD_TYPE=Release -DMOE_BUILD_BENCH=ON
//   cmake --build build-bench --target kernels_bench
//   build-bench/bench/kernels_bench --benchmark_min_time=1   # MOE_FORCE_TARGET=avx2 to compare
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "bench_buffers.h"
#include "kernels/kernels.h"

namespace moe::kernels {
namespace {

// One large weight-like buffer at a time (the machine is shared; first touch of fresh memory
// is slow, so it happens outside the timed loop and the buffer is reused). Masked with 0xb3ff:
// finite, small values whether read as bf16, f16 or (pairs) f32.
uint8_t* GetBuffer(size_t bytes, uint64_t key) {
  static HugeBuffer buf;
  static size_t buf_bytes = 0;
  static uint64_t buf_key = 0;
  if (buf && buf_bytes == bytes && buf_key == key) return reinterpret_cast<uint8_t*>(buf.get());
  buf.reset();
  buf = bench::WeightLikeBuffer(bytes, static_cast<uint32_t>(key) | 1, 0xb3ff);
  buf_bytes = bytes;
  buf_key = key;
  return reinterpret_cast<uint8_t*>(buf.get());
}

WeightType TypeOf(int64_t t) { return static_cast<WeightType>(t); }

// Args: weight type, rows, cols, n_tokens.
void BM_MatMul(benchmark::State& state) {
  const WeightType type = TypeOf(state.range(0));
  const size_t rows = static_cast<size_t>(state.range(1));
  const size_t cols = static_cast<size_t>(state.range(2));
  const size_t n_tokens = static_cast<size_t>(state.range(3));
  const size_t w_bytes = WeightMatrixBytes(type, rows, cols);
  uint8_t* w = GetBuffer(w_bytes, (rows << 20) ^ (cols << 4) ^ static_cast<uint64_t>(type));
  if (IsQuantized(type)) {  // random bytes as scales could be subnormal/NaN: use a sane scale
    const float d = 0.01f;
    for (size_t off = 0; off < w_bytes; off += QuantBlockBytes(type)) std::memcpy(w + off, &d, 4);
  }
  std::vector<float> x(n_tokens * cols), y(n_tokens * rows);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 17) * 0.0625f - 0.5f;
  const WeightView view{w, type, rows, cols};
  for (auto _ : state) {
    MatMul(view, x.data(), n_tokens, cols, y.data(), rows, 0, rows);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * w_bytes));
  state.counters["GFLOP/s"] = benchmark::Counter(
      2.0 * static_cast<double>(rows * cols * n_tokens) * static_cast<double>(state.iterations()),
      benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
  state.SetLabel(TargetName());
}

// Streaming read of `bytes` split into `streams` equal parts read side by side (64-bit adds, one
// chain per stream): the single-thread bandwidth roofline. Several streams, like MatMul's
// several rows, give the prefetchers more parallelism than one.
void BM_StreamRead(benchmark::State& state) {
  const size_t bytes = static_cast<size_t>(state.range(0));
  const size_t streams = static_cast<size_t>(state.range(1));
  const auto* p = reinterpret_cast<const uint64_t*>(GetBuffer(bytes, 0x5eed));
  const size_t per_stream = bytes / 8 / streams;
  for (auto _ : state) {
    uint64_t sum[16] = {};
    for (size_t i = 0; i < per_stream; i += 2) {
      for (size_t s = 0; s < streams; ++s) sum[s] += p[s * per_stream + i] ^ p[s * per_stream + i + 1];
    }
    uint64_t total = 0;
    for (size_t s = 0; s < streams; ++s) total += sum[s];
    benchmark::DoNotOptimize(total);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * per_stream * streams * 8));
}

// Streaming read through the f32 Dot kernel (SIMD loads), a second bandwidth measurement.
void BM_StreamDot(benchmark::State& state) {
  const size_t bytes = static_cast<size_t>(state.range(0));
  auto* p = reinterpret_cast<float*>(GetBuffer(bytes, 0xd07));
  const size_t n = bytes / 4;
  for (auto _ : state) benchmark::DoNotOptimize(Dot(p, p, n));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
  state.SetLabel(TargetName());
}

// One decode step of one layer's attention (Qwen3-30B-A3B: 32 query heads sharing 4 KV heads of
// 128), 1 thread, over n_keys cached positions, as runtime/session.cc runs it: each KV head's
// keys (in key tiles) and values contiguous, read by the kernels for its 8 query heads at once
// (scores, softmax, weighted sum of values). GB/s counts the K and V bytes once.
//   Second argument: layers whose caches are visited in turn, 1 (the cache stays in L2/L3
//   between iterations) or 24 (each layer's cache comes from memory, as in a decode step).
void BM_AttentionDecode(benchmark::State& state) {
  const size_t n_keys = static_cast<size_t>(state.range(0));
  const size_t layers = static_cast<size_t>(state.range(1));
  constexpr size_t kHeads = 32, kKvHeads = 4, kDim = 128, kGroup = kHeads / kKvHeads;
  const size_t bytes = 2 * n_keys * kKvHeads * kDim * sizeof(float);
  auto* all = reinterpret_cast<float*>(GetBuffer(bytes * layers, 0xa77e));
  std::vector<float> q(kHeads * kDim, 0.01f), scores(kGroup * n_keys), out(kHeads * kDim);
  size_t layer = 0;
  for (auto _ : state) {
    const float* kv = all + layer * (bytes / sizeof(float));
    layer = (layer + 1) % layers;
    for (size_t kvh = 0; kvh < kKvHeads; ++kvh) {
      const float* k = kv + kvh * n_keys * kDim;
      const float* v = kv + (kKvHeads + kvh) * n_keys * kDim;
      AttentionScoresArgs sa;
      sa.q = &q[kvh * kGroup * kDim];
      sa.n_heads = kGroup;
      sa.k = k;
      sa.n_keys = n_keys;
      sa.head_dim = kDim;
      sa.scale = 0.088f;
      sa.scores_stride = n_keys;
      AttentionScores(sa, scores.data());
      for (size_t g = 0; g < kGroup; ++g) {
        Softmax(&scores[g * n_keys], n_keys);
        std::fill_n(&out[(kvh * kGroup + g) * kDim], kDim, 0.f);
      }
      AttentionWeightedSumArgs wa;
      wa.p = scores.data();
      wa.p_stride = n_keys;
      wa.n_heads = kGroup;
      wa.v = v;
      wa.v_stride = kDim;
      wa.n_keys = n_keys;
      wa.head_dim = kDim;
      wa.out = &out[kvh * kGroup * kDim];
      wa.out_stride = kDim;
      AttentionWeightedSum(wa);
    }
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
  state.SetLabel(TargetName());
}

constexpr int64_t kF32 = static_cast<int64_t>(WeightType::kF32);
constexpr int64_t kBF16 = static_cast<int64_t>(WeightType::kBF16);
constexpr int64_t kF16 = static_cast<int64_t>(WeightType::kF16);
constexpr int64_t kQ8 = static_cast<int64_t>(WeightType::kQ8);
constexpr int64_t kQ4 = static_cast<int64_t>(WeightType::kQ4);

void MatMulShapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"type", "rows", "cols", "tokens"});
  const int64_t shapes[][2] = {{2048, 768}, {768, 2048}, {4096, 2048}, {32768, 2048}};
  for (int64_t type : {kBF16, kF32, kF16, kQ8, kQ4}) {
    for (const auto& s : shapes) {
      for (int64_t tokens : {1, 16}) b->Args({type, s[0], s[1], tokens});
    }
  }
  b->Args({kBF16, 151936, 2048, 1});  // Qwen3 lm_head, 594 MiB
}

BENCHMARK(BM_StreamRead)
    ->ArgsProduct({{int64_t{512} << 20}, {1, 4, 8}})
    ->ArgNames({"bytes", "streams"})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_StreamDot)->Arg(int64_t{512} << 20)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_AttentionDecode)
    ->ArgsProduct({{256, 4096}, {1, 24}})
    ->ArgNames({"keys", "layers"})
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_MatMul)->Apply(MatMulShapes)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace moe::kernels

BENCHMARK_MAIN();
