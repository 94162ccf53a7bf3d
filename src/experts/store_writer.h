// SPDX-License-Identifier: Apache-2.0
// Converts a checkpoint into an expert store directory (docs/expert_store_format.md):
// experts.bin (every expert block, 4 KiB aligned, checksummed), model.safetensors (the dense
// tensors, so the ordinary checkpoint code loads them), copies of config/tokenizer files, and
// the marker file written last.
//
// Crash safety: everything is written under OUT.partial/; blocks are journaled (data synced
// before its journal record, each record checksummed, a torn tail cut off), so re-running
// continues where it stopped and produces the same bytes as an uninterrupted run; a source whose
// files changed (size/mtime) is not resumed but restarted. At the end: fsync, rename
// OUT.partial → OUT (with `force`: an atomic exchange with the old store, which is then removed),
// fsync of the parent directory.
// Failures (docs/reliability.md §E): OUT.partial is kept for resume after any error, ENOSPC and
// interrupts included; a failed fsync is never retried; OUT.partial is flock'ed (a second writer
// gets kUsage "locked by pid N"; a dead holder's lock is released by the kernel).
// Memory: one block buffer plus a 4 MiB copy buffer, whatever the model size.
#pragma once

#include <atomic>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "experts/expert_source.h"
#include "experts/store_format.h"
#include "formats/safetensors.h"
#include "util/status.h"
#include "util/thread_pool.h"

namespace moe {

struct StoreWriterInput {
  std::string source_dir;  // the HF folder (config.json, tokenizer files, shards)
  std::string out_dir;     // must not exist, unless `force` and it is a complete store
  bool force = false;      // atomically replace an existing complete store at out_dir
  // Set (to a signal number) by the caller's SIGINT/SIGTERM handler: the writer stops at the next
  // block boundary, flushes the journal and returns kCancelled. Null = not interruptible.
  const std::atomic<int>* cancel_signal = nullptr;
  const ExpertSource* experts = nullptr;
  const Checkpoint* checkpoint = nullptr;
  std::vector<std::string> dense_tensors;  // names copied into model.safetensors
  FILE* progress = nullptr;                // progress bar target (null = quiet)
  uint64_t slow_us_per_block = 0;          // testing only: sleep per block (kill -9 tests)
  // perf: --quant q8|q4: expert blocks are block-quantized (kernels.h kQ8/kQ4) from the
  // source's values; dense tensors are copied unchanged. nullopt = the source's type.
  std::optional<kernels::WeightType> quant;
  // Quantizes the rows of a block in parallel on this pool (null: on the calling thread). The
  // output is the same bytes for any thread count.
  ThreadPool* pool = nullptr;
  // The store format written (store_format.h): kVersion (XXH3 block hashes), or 1 (xxHash64)
  // for moestream builds that predate version 2. Others: kUsage.
  uint32_t store_version = store::kVersion;
  // kTiles (version 3 only): each block's matrices with kernels::HasTileShape are written in
  // the kernels' tiled layout, which decode streams fastest (docs/kernels.md).
  store::StoreLayout layout = store::StoreLayout::kRows;
};

struct StoreWriterResult {
  uint64_t blocks_written = 0;  // this run (excludes blocks resumed from the journal)
  uint64_t blocks_resumed = 0;
  uint64_t bytes_written = 0;
  double seconds = 0;
  bool restarted = false;  // a stale partial output from a changed source was discarded
};

Result<StoreWriterResult> WriteExpertStore(const StoreWriterInput& in);

}  // namespace moe
