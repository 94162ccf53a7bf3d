// SPDX-License-Identifier: Apache-2.0
// Decode MatMul at N threads against the memory-read probe, interleaved in one process: the
// kernel-level half of the resident roofline (docs/benchmarks.md). Each round times the probe
// (kernels::XorFold over the pool on every available target, the fastest counting, as
// `moestream bench --measure-memory`) and a decode MatMul of
// the same bytes split into row tasks over the pool (as runtime/session.cc), then prints
// GB/s of each and their ratio; medians at the end. Load noise on a shared VM moves both.
//
//   build-bench/bench/decode_stream_bench [--type bf16|q8|q4|f32] [--rows 151936] [--cols 2048]
//       [--threads 2] [--tasks-per-thread 4[,16,...]] [--rounds 15] [--acts int16|f32]
//       [--layout rows|tiles]
// Several --tasks-per-thread values run as arms, in a rotating order each round.
// q8/q4 run the runtime's path by default: activations quantized once per MatMul (timed, on
// the calling thread, as runtime/session.cc does), then MatMulQuantizedActs; --acts f32 runs
// MatMul with f32 activations instead.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "bench_buffers.h"
#include "kernels/kernels.h"
#include "runtime/memory_probe.h"
#include "util/thread_pool.h"

namespace moe {
namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  kernels::WeightType type = kernels::WeightType::kBF16;
  size_t rows = 151936, cols = 2048, threads = 2, rounds = 15;
  std::vector<size_t> tasks_per_thread = {4};  // one arm each, rotated round by round
  bool float_acts = false;  // q8/q4: MatMul with f32 activations instead of the int16 path
  bool tiled = false;       // the tiled layout (kernels.h); tasks split at whole tiles
};

bool ParseType(std::string_view s, kernels::WeightType* t) {
  for (auto c : {kernels::WeightType::kF32, kernels::WeightType::kBF16, kernels::WeightType::kF16,
                 kernels::WeightType::kQ8, kernels::WeightType::kQ4}) {
    if (s == kernels::WeightTypeName(c)) {
      *t = c;
      return true;
    }
  }
  return false;
}

bool Parse(int argc, char** argv, Options* o) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string_view f = argv[i];
    const char* v = argv[i + 1];
    const size_t n = std::strtoull(v, nullptr, 10);
    if (f == "--type") {
      if (!ParseType(v, &o->type)) return false;
    } else if (f == "--rows") {
      o->rows = n;
    } else if (f == "--cols") {
      o->cols = n;
    } else if (f == "--threads") {
      o->threads = n;
    } else if (f == "--tasks-per-thread") {
      o->tasks_per_thread.clear();
      for (const char* p = v; *p;) {
        char* end = nullptr;
        const size_t k = std::strtoull(p, &end, 10);
        if (end == p || k == 0) return false;
        o->tasks_per_thread.push_back(k);
        p = *end == ',' ? end + 1 : end;
        if (*end != ',' && *end != '\0') return false;
      }
    } else if (f == "--layout") {
      if (std::string_view(v) != "rows" && std::string_view(v) != "tiles") return false;
      o->tiled = std::string_view(v) == "tiles";
    } else if (f == "--rounds") {
      o->rounds = n;
    } else if (f == "--acts") {
      if (std::string_view(v) != "f32" && std::string_view(v) != "int16") return false;
      o->float_acts = std::string_view(v) == "f32";
    } else {
      return false;
    }
  }
  return argc % 2 == 1 && o->rows > 0 && o->cols > 0 && o->threads > 0 &&
         !o->tasks_per_thread.empty() && o->rounds > 0 &&
         (!o->tiled || kernels::TilingPays(o->type, o->rows, o->cols));
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int Main(int argc, char** argv) {
  Options o;
  if (!Parse(argc, argv, &o)) {
    std::fprintf(stderr,
                 "usage: decode_stream_bench [--type bf16|q8|q4|f32|f16] [--rows N] [--cols N] "
                 "[--threads N] [--tasks-per-thread N[,N...]] [--rounds N] [--acts int16|f32] "
                 "[--layout rows|tiles]\n");
    return 2;
  }
  const size_t bytes = kernels::WeightMatrixBytes(o.type, o.rows, o.cols);
  // Huge-page backed and filled outside any timing, like the weight arenas.
  HugeBuffer w_buf = bench::WeightLikeBuffer(bytes, 12345, 0x33ff);
  auto* w = reinterpret_cast<uint8_t*>(w_buf.get());
  if (!w_buf) {
    std::fprintf(stderr, "decode_stream_bench: cannot allocate %zu bytes\n", bytes);
    return 1;
  }
  if (kernels::IsQuantized(o.type)) {  // sane scales
    const float d = 0.01f;
    for (size_t off = 0; off < bytes; off += kernels::QuantBlockBytes(o.type)) {
      std::memcpy(w + off, &d, 4);
    }
  }
  std::vector<float> x(o.cols), y(o.rows), xd(kernels::ActBlocks(o.cols));
  std::vector<int16_t> xq(kernels::ActBlocks(o.cols) * kernels::kQuantBlock);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 17) * 0.0625f - 0.5f;
  kernels::WeightView view{w, o.type, o.rows, o.cols};
  view.tiled = o.tiled;  // the bytes are random either way: only the access pattern changes
  ThreadPool pool(o.threads);
  const size_t arms = o.tasks_per_thread.size();
  std::printf("%s %zu x %zu (%.1f MB, %s), %zu threads, target %s\n",
              kernels::WeightTypeName(o.type), o.rows, o.cols, static_cast<double>(bytes) / 1e6,
              o.tiled ? "tiles" : "rows", o.threads, kernels::TargetName());
  uint64_t sink = 0;
  const bool qa = kernels::IsQuantized(o.type) && !o.float_acts;
  // One decode MatMul over `tasks` row blocks (as runtime/session.cc: tiled blocks whole tiles).
  const auto time_matmul = [&](size_t tasks) {
    tasks = std::min(o.rows, tasks);
    size_t per = (o.rows + tasks - 1) / tasks;
    if (o.tiled) per = (per + kernels::kTileRows - 1) / kernels::kTileRows * kernels::kTileRows;
    const auto t0 = Clock::now();
    if (qa) kernels::QuantizeActs(x.data(), 1, o.cols, o.cols, xq.data(), xd.data());
    pool.ParallelFor(tasks, [&](size_t task, size_t) {
      const size_t b = task * per, e = std::min(o.rows, b + per);
      if (b >= e) return;
      if (qa) {
        kernels::MatMulQuantizedActs(view, xq.data(), xd.data(), 1, y.data(), o.rows, b, e);
      } else {
        kernels::MatMul(view, x.data(), 1, o.cols, y.data(), o.rows, b, e);
      }
    });
    return std::chrono::duration<double>(Clock::now() - t0).count();
  };
  std::vector<double> probe;
  std::vector<std::vector<double>> mm(arms), ratio(arms);
  for (size_t r = 0; r <= o.rounds; ++r) {  // round 0 warms up
    const double probe_s = TimeReadPass(pool, w, bytes, &sink);
    std::vector<double> s(arms);
    for (size_t k = 0; k < arms; ++k) {  // rotate the order: no arm always runs first
      const size_t a = (k + r) % arms;
      s[a] = time_matmul(o.threads * o.tasks_per_thread[a]);
    }
    if (r == 0) continue;
    probe.push_back(static_cast<double>(bytes) / probe_s / 1e9);
    std::printf("round %2zu  probe %6.2f GB/s  matmul", r, probe.back());
    for (size_t a = 0; a < arms; ++a) {
      mm[a].push_back(static_cast<double>(bytes) / s[a] / 1e9);
      ratio[a].push_back(probe_s / s[a]);
      std::printf("  %zu/thread %6.2f GB/s = %5.1f%%", o.tasks_per_thread[a], mm[a].back(),
                  100 * ratio[a].back());
    }
    std::printf("\n");
  }
  std::printf("median    probe %6.2f GB/s  (sink %llx)\n", Median(probe),
              static_cast<unsigned long long>(sink ^ static_cast<uint64_t>(y[0])));
  for (size_t a = 0; a < arms; ++a) {
    std::printf("  %3zu tasks per thread: matmul %6.2f GB/s = %5.1f%% of the probe\n",
                o.tasks_per_thread[a], Median(mm[a]), 100 * Median(ratio[a]));
  }
  return 0;
}

}  // namespace
}  // namespace moe

int main(int argc, char** argv) { return moe::Main(argc, argv); }
