// SPDX-License-Identifier: Apache-2.0
// moestream convert: HF folder → expert store (docs/expert_store_format.md); --verify checks
// every block checksum of an existing store. A thin wrapper around experts/store_writer.h.
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "command.h"
#include "flags.h"
#include "experts/expert_store.h"
#include "experts/store_writer.h"
#include "formats/hf_config.h"
#include "model/model_weights.h"

namespace moe::app {
namespace {

// SIGINT/SIGTERM: the writer stops at the next block boundary with its journal flushed; the
// exit code is 128 + the signal (130/143). SA_RESETHAND: a second signal kills at once.
std::atomic<int> g_signal{0};

void OnSignal(int sig) { g_signal.store(sig); }

void InstallSignalHandlers() {
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESETHAND;
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
}

Status Verify(const std::string& dir) {
  MOE_ASSIGN_OR_RETURN(Qwen3MoeConfig cfg, LoadHfConfig(dir));
  ExpertGeometry g;
  g.hidden = static_cast<uint64_t>(cfg.hidden_size);
  g.intermediate = static_cast<uint64_t>(cfg.moe_intermediate_size);
  StoreOpenOptions so;
  so.io = IoMode::kBuffered;
  MOE_ASSIGN_OR_RETURN(auto src, OpenExpertStore(dir, g, cfg.num_hidden_layers, cfg.num_experts, so));
  MOE_ASSIGN_OR_RETURN(uint64_t n, VerifyExpertStore(*src));
  std::printf("%s: %s: %llu blocks, every checksum matches\n", dir.c_str(),
              src->format().c_str(), static_cast<unsigned long long>(n));
  return Status::Ok();
}

int Convert(int argc, char** argv) {
  Flags flags("convert", "convert a HF checkpoint into an expert store (or --verify one)");
  std::string model, out, verify;
  int64_t slow_us = 0;
  bool quiet = false, force = false;
  flags.String("model", &model, "Hugging Face model folder");
  flags.String("out", &out, "store directory to create (must not exist; OUT.partial is resumed)");
  flags.Bool("force", &force, "atomically replace an existing complete store at --out");
  flags.String("verify", &verify, "check every block checksum of an existing store");
  flags.Bool("quiet", &quiet, "no progress bar");
  std::optional<kernels::WeightType> quant;  // perf: block-quantized experts
  flags.Custom("quant",
               [&](const std::string& v) -> Status {
                 if (v == "q8") {
                   quant = kernels::WeightType::kQ8;
                 } else if (v == "q4") {
                   quant = kernels::WeightType::kQ4;
                 } else {
                   return Error(StatusCode::kUsage, "--quant '{}': expected q8 or q4", v);
                 }
                 return Status::Ok();
               },
               "quantize expert blocks: q8 (int8) or q4 (4-bit), 32 values per f32 scale",
               "TYPE");
  int64_t threads = static_cast<int64_t>(DefaultThreadCount());
  flags.Int("threads", &threads, "threads quantizing rows with --quant (default: all CPUs)");
  int64_t store_version = store::kVersion;
  flags.Int("store-version", &store_version,
            "store format to write: 3 (the default), 2 (row-major blocks, readable by moestream "
            "before 2026-11-27) or 1 (xxHash64, readable before 2026-11-26)");
  std::string layout = "auto";
  flags.String("store-layout", &layout,
               "expert blocks row-major (rows) or in the kernels' tiled layout (tiles, version 3); "
               "auto: tiles where this CPU's decode kernels stream them faster (docs/kernels.md)");
  flags.Int("slow-us-per-block", &slow_us, "testing only: sleep per block (crash/resume tests)");
  Status st = flags.Parse(argc, argv);
  if (flags.help_requested()) {
    flags.PrintUsage(stdout);
    return 0;
  }
  if (st.ok() && !verify.empty()) {
    st = Verify(verify);
    return st.ok() ? 0 : flags.Fail(st);
  }
  if (st.ok() && (model.empty() || out.empty())) {
    st = Error(StatusCode::kUsage, "--model and --out are required (or --verify STORE)");
  }
  if (st.ok() && layout != "auto" && layout != "rows" && layout != "tiles") {
    st = Error(StatusCode::kUsage, "--store-layout '{}': expected rows, tiles or auto", layout);
  }
  if (st.ok() && (threads < 1 || threads > 256)) {
    st = Error(StatusCode::kUsage, "--threads {}: expected 1..256", threads);
  }
  if (!st.ok()) return flags.Fail(st);
  if (IsExpertStore(model)) return flags.Fail(Error(StatusCode::kUsage, "--model {}: already a store", model));
  InstallSignalHandlers();
  auto cfg = LoadHfConfig(model);
  if (!cfg.ok()) return flags.Fail(cfg.status());
  auto ckpt = Checkpoint::Open(model);
  if (!ckpt.ok()) return flags.Fail(ckpt.status());
  BindOptions bo;
  bo.load_dense = false;
  auto w = ModelWeights::Bind(*cfg, *ckpt, bo);
  if (!w.ok()) return flags.Fail(w.status());
  ExpertGeometry g;
  g.hidden = static_cast<uint64_t>((*w)->config().hidden_size);
  g.intermediate = static_cast<uint64_t>((*w)->config().moe_intermediate_size);
  g.type = ToWeightType((*w)->expert_dtype());
  // Buffered: conversion reads the shards in order, where the kernel's readahead helps.
  auto src = MakeHfExpertSource((*w)->expert_table(), g, IoMode::kBuffered);
  if (!src.ok()) return flags.Fail(src.status());
  StoreWriterInput in;
  in.source_dir = model;
  in.out_dir = out;
  in.experts = src->get();
  in.checkpoint = &*ckpt;
  in.dense_tensors = DenseTensorNames(**w);
  in.force = force;
  in.cancel_signal = &g_signal;
  in.progress = quiet ? nullptr : stderr;
  in.slow_us_per_block = static_cast<uint64_t>(slow_us);
  in.quant = quant;
  // Out-of-range values (negative included) become kUsage in WriteExpertStore.
  in.store_version = static_cast<uint32_t>(std::clamp<int64_t>(store_version, 0, 1 << 30));
  // auto: tiled blocks from version 3 on, where the decode kernels read tiles faster than rows
  // on this CPU (kernels::TilingPays: f32/bf16/f16 everywhere, q8 on AVX-512 and AVX2, q4 on
  // AVX-512).
  const kernels::WeightType out_type = quant ? *quant : g.type;
  const bool tiles_pay = kernels::TilingPays(out_type, g.intermediate, g.hidden) &&
                         kernels::TilingPays(out_type, g.hidden, g.intermediate);
  in.layout = layout == "tiles" || (layout == "auto" && in.store_version >= 3 && tiles_pay)
                  ? store::StoreLayout::kTiles
                  : store::StoreLayout::kRows;
  std::optional<ThreadPool> pool;
  if (quant && threads > 1) {
    pool.emplace(static_cast<size_t>(threads));
    in.pool = &*pool;
  }
  auto r = WriteExpertStore(in);
  if (!r.ok()) {
    flags.Fail(r.status());
    if (r.status().code() == StatusCode::kCancelled && g_signal.load() != 0) {
      return 128 + g_signal.load();
    }
    return ExitCodeFor(r.status().code());
  }
  std::fprintf(stderr, "%s: %llu blocks written, %llu resumed%s, %.1f MiB in %.2f s (%.1f MB/s)\n",
               out.c_str(), static_cast<unsigned long long>(r->blocks_written),
               static_cast<unsigned long long>(r->blocks_resumed),
               r->restarted ? " (source changed: restarted)" : "", r->bytes_written / 1048576.0,
               r->seconds, r->seconds > 0 ? r->bytes_written / r->seconds / 1e6 : 0.0);
  return 0;
}

}  // namespace

MOE_COMMAND("convert", "convert a HF checkpoint into an expert store; --verify STORE checks it",
            Convert);

}  // namespace moe::app
