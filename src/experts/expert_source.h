// SPDX-License-Identifier: Apache-2.0
// Where expert bytes come from, and how a block of them is laid out in memory.
// An expert block is gate [I, H] | up [I, H] | down [H, I], contiguous, row-major, in the
// expert's stored type: the layout the kernels use directly and the unit the cache holds.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "formats/tensor_slice.h"
#include "kernels/kernels.h"
#include "util/status.h"

namespace moe {

struct ExpertGeometry {
  uint64_t hidden = 0;        // H
  uint64_t intermediate = 0;  // I
  kernels::WeightType type = kernels::WeightType::kBF16;
  // Each matrix with kernels::HasTileShape is in the tiled layout (a version 3 store's
  // StoreLayout::kTiles, or resident experts tiled at load); MakeExpertView marks their views.
  bool tiled = false;

  // gate (= up) [I, H]; for f32/bf16/f16 also the size of down.
  uint64_t matrix_bytes() const { return kernels::WeightMatrixBytes(type, intermediate, hidden); }
  // down [H, I] (differs from matrix_bytes only for quantized types with I % 32 != 0).
  uint64_t down_bytes() const { return kernels::WeightMatrixBytes(type, hidden, intermediate); }
  uint64_t block_bytes() const { return 2 * matrix_bytes() + down_bytes(); }
};

struct ExpertView {
  kernels::WeightView gate;  // [I, H]
  kernels::WeightView up;    // [I, H]
  kernels::WeightView down;  // [H, I]
};

// The three matrices of a block laid out as `g` says (views of tiled matrices marked tiled).
ExpertView MakeExpertView(const ExpertGeometry& g, const void* block);

// How a source reads its files: kDirect (O_DIRECT, refused if a file cannot be opened so),
// kBuffered (through the page cache), kAuto (O_DIRECT where the file system allows it).
enum class IoMode { kAuto, kDirect, kBuffered };
// "auto" | "direct" | "buffered"; anything else is kUsage naming --io.
Result<IoMode> ParseIoMode(const std::string& s);

// Reads expert blocks. Thread-safe: Read may be called from several I/O threads at once.
class ExpertSource {
 public:
  virtual ~ExpertSource() = default;
  virtual const ExpertGeometry& geometry() const = 0;
  virtual int64_t n_layers() const = 0;
  // True when `layer` has routed experts.
  virtual bool has_experts(int64_t layer) const = 0;
  virtual int64_t n_experts() const = 0;
  // Reads the block of (layer, expert) into dst (geometry().block_bytes() bytes) and checks it:
  // ReadRaw then Verify. Errors name the file, offset, layer and expert.
  Status Read(int64_t layer, int64_t expert, void* dst) const {
    MOE_TRY(ReadRaw(layer, expert, dst));
    return Verify(layer, expert, dst);
  }
  // The two halves of Read, for a loader that lets the next read use the device while this
  // block is checked: ReadRaw moves the bytes (device time), Verify checks them (CPU time; the
  // bytes must not be used unless it returns Ok). Default Verify: nothing to check.
  virtual Status ReadRaw(int64_t layer, int64_t expert, void* dst) const = 0;
  virtual Status Verify(int64_t layer, int64_t expert, const void* block) const {
    (void)layer, (void)expert, (void)block;
    return Status::Ok();
  }
  // Where the blocks come from and how they are checked, for reports and benchmark provenance,
  // e.g. "store v3 (xxh3-64 block checksums, tiled blocks)".
  virtual std::string format() const = 0;
  // Blocks whose checksum Verify has computed so far (a source that checks nothing: 0).
  virtual uint64_t blocks_hashed() const { return 0; }
  // Bytes Read may write at dst: ≥ block_bytes (a store reads whole 4 KiB-padded blocks).
  virtual uint64_t dst_bytes() const { return geometry().block_bytes(); }

  // The streaming cache's reads (Loader, then Verify): like ReadRaw, but the block may keep its
  // layout in the file, so a source can read straight into the slot; CacheView says where each
  // matrix is. `dst` is 4 KiB aligned with room for cache_dst_bytes(). Default: ReadRaw.
  virtual Status ReadRawForCache(int64_t layer, int64_t expert, void* dst) const {
    return ReadRaw(layer, expert, dst);
  }
  virtual uint64_t cache_dst_bytes() const { return dst_bytes(); }
  // The matrices of a block ReadRawForCache wrote at `block`. Default: MakeExpertView.
  virtual ExpertView CacheView(int64_t layer, int64_t expert, const void* block) const {
    (void)layer, (void)expert;
    return MakeExpertView(geometry(), block);
  }
  // True when reads go through the page cache (HF shards; a store read buffered).
  virtual bool reads_page_cache() const { return false; }
  // With `on`, every read through the page cache drops the bytes it read from it: the expert
  // cache holds them, and a page cache growing beside a budget that fills the memory makes the
  // kernel reclaim on the cores that compute (docs/benchmarks.md, session 19). Call before the
  // first read (not thread-safe with Read).
  virtual void SetDropPageCache(bool on) { (void)on; }
};

// Experts straight from the HF safetensors shards (no conversion): pread of each matrix, one
// read when gate|up|down happen to be adjacent; transposed fused layouts are transposed on read.
// With O_DIRECT (`io`: kAuto where the file system allows it, kDirect or an error naming the
// shard; tensor offsets are not aligned) the cache's reads of an expert whose three tensors
// form one gapless span take the span's 4 KiB-aligned cover straight into the slot, and
// CacheView points into it; other reads take a matrix's (or span's) cover into a per-thread
// huge-page buffer and copy the bytes out (docs/benchmarks.md, session 19).
Result<std::unique_ptr<ExpertSource>> MakeHfExpertSource(
    std::vector<std::vector<ExpertSlices>> table, ExpertGeometry geometry,
    IoMode io = IoMode::kBuffered);

}  // namespace moe
