// SPDX-License-Identifier: Apache-2.0
// On-disk structures of the converted expert store (docs/expert_store_format.md).
//
// Goals: each expert's gate|up|down is ONE contiguous, 4 KiB-aligned block in the engine layout
// (one O_DIRECT read per miss, straight into a cache slot); every block carries a 64-bit hash
// (XXH3 since version 2, xxHash64 in version 1) bound to its identity (seeded with model id,
// layer and expert), so corrupt or swapped blocks are detected; readers can read files whose
// header grew (header_bytes); an incomplete file (no footer) is refused.
// Quantised blocks (dtype q8/q4) keep the same layout with quantised rows.
// Non-goals: compression, cross-endian files (little-endian only).
#pragma once

#include <bit>
#include <cstdint>

namespace moe::store {

static_assert(std::endian::native == std::endian::little, "the store is little-endian");

inline constexpr char kMagic[8] = {'M', 'O', 'E', 'S', 'T', 'O', 'R', 'E'};
inline constexpr char kFooterMagic[8] = {'M', 'O', 'E', 'S', 'T', 'E', 'N', 'D'};
// Version 3 (2026-11-27): Header::layout, blocks may hold their matrices in the kernels' tiled
// layout (StoreLayout::kTiles). Version 2 (2026-11-26): blocks hashed with XXH3-64
// (Header::block_hash = kXxh3). Version 1: xxHash64 (block_hash = 0, the field was `reserved`).
// Readers read all three; convert writes 3 unless asked for 2 or 1 (row-major blocks, readable
// by moestream before version 3, and before version 2).
inline constexpr uint32_t kVersion = 3;
inline constexpr uint32_t kMinVersion = 1;
inline constexpr uint64_t kAlign = 4096;
inline constexpr uint64_t kBlocksOffset = 4096;  // header page
inline constexpr char kExpertsFile[] = "experts.bin";
inline constexpr char kMarkerFile[] = "moestream-store.json";  // written last: store complete
inline constexpr char kDenseFile[] = "model.safetensors";     // non-expert tensors

// Expert dtype codes (match kernels::WeightType).
// kQ8/kQ4: block-quantized rows (kernels.h), written by `moestream convert --quant q8|q4`.
enum class StoreDType : uint32_t { kF32 = 0, kBF16 = 1, kF16 = 2, kQ8 = 3, kQ4 = 4 };

// How a block's gate, up and down matrices are laid out (Header::layout, version 3).
// kRows: row-major. kTiles: each matrix with kernels::HasTileShape in the tiled layout
// (kernels.h TiledIndex / TiledBlockOffset), the others row-major.
enum class StoreLayout : uint32_t { kRows = 0, kTiles = 1 };

// How IndexEntry::hash is computed (both 64-bit, both with seed BlockSeed(...)).
enum class BlockHash : uint32_t { kXxh64 = 0, kXxh3 = 1 };

// At offset 0. Fields are only ever appended; header_bytes says how many were written.
struct Header {
  char magic[8];
  uint32_t version;
  uint32_t header_bytes;  // sizeof(Header) of the writer
  uint64_t model_id;      // xxHash64 of the source config.json bytes
  uint32_t n_layers;      // all decoder layers (dense layers have no blocks)
  uint32_t n_experts;     // per MoE layer
  uint64_t hidden;
  uint64_t intermediate;
  uint32_t dtype;       // StoreDType
  uint32_t block_hash;  // BlockHash; version 1 stores have 0 (kXxh64) here
  uint64_t block_bytes;   // gate + up + down bytes (kernels::WeightMatrixBytes)
  uint64_t block_stride;  // block_bytes rounded up to kAlign
  uint64_t blocks_offset;
  uint64_t n_blocks;
  uint64_t index_offset;  // = blocks_offset + n_blocks × block_stride
  uint64_t index_bytes;   // n_blocks × sizeof(IndexEntry)
  // Version 3 and later (header_bytes ≥ 112); earlier versions' blocks are row-major.
  uint32_t layout;    // StoreLayout
  uint32_t reserved;  // 0
};
static_assert(sizeof(Header) == 112);
inline constexpr uint32_t kHeaderBytesV2 = 104;  // the header of versions 1 and 2

struct IndexEntry {
  uint32_t layer;
  uint32_t expert;
  uint64_t offset;  // absolute, multiple of kAlign
  uint64_t size;    // block_bytes
  uint32_t dtype;
  uint32_t reserved;
  uint64_t hash;    // Header::block_hash of the block's `size` bytes, seed BlockSeed(...)
};
static_assert(sizeof(IndexEntry) == 40);

// Right after the index; its presence (and the marker file) is what makes a store complete.
struct Footer {
  char magic[8];
  uint64_t index_offset;
  uint64_t index_xxh64;  // of the index bytes, seed model_id
  uint64_t file_bytes;   // total size of experts.bin
};
static_assert(sizeof(Footer) == 32);

inline uint64_t BlockSeed(uint64_t model_id, uint32_t layer, uint32_t expert) {
  return model_id ^ ((static_cast<uint64_t>(layer) << 32 | expert) * 0x9E3779B97F4A7C15ull);
}

// The hash of one block's bytes (store_hash.cc; XXH3 picks its SIMD at run time on x86-64).
uint64_t HashBlock(BlockHash kind, const void* data, uint64_t bytes, uint64_t seed);
// The kind a store of `version` declares: kXxh64 for version 1, kXxh3 for version 2.
BlockHash BlockHashOfVersion(uint32_t version);
// "xxh64" or "xxh3-64", for reports.
const char* BlockHashName(BlockHash kind);

}  // namespace moe::store
