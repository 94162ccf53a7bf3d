// SPDX-License-Identifier: Apache-2.0
#include "experts/store_check.h"

#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "util/checked_math.h"

namespace moe {
namespace {

Status Bad(const std::string& path, const std::string& what) {
  return Error(StatusCode::kInvalidFormat, "{}: {}", path, what);
}

}  // namespace

Status CheckStoreHeader(const std::string& path, const store::Header& h, const store::Footer& f,
                        uint64_t size, const ExpertGeometry& expect, int64_t n_layers,
                        int64_t n_experts) {
  if (std::memcmp(h.magic, store::kMagic, 8) != 0) return Bad(path, "bad magic: not an expert store");
  if (h.version > store::kVersion) {
    return Error(StatusCode::kUnsupported, "{}: store version {} is newer than {} (upgrade "
                 "moestream or re-convert)", path, h.version, store::kVersion);
  }
  if (h.version < store::kMinVersion) {
    return Bad(path, fmt::format("store version {} unknown (expected {}..{})", h.version,
                                 store::kMinVersion, store::kVersion));
  }
  // The hash kind is the version's: a version 1 store's field was reserved (0 = xxHash64).
  if (h.block_hash != static_cast<uint32_t>(store::BlockHashOfVersion(h.version))) {
    return Bad(path, fmt::format("block_hash code {} does not belong to store version {} "
                                 "(expected {})", h.block_hash, h.version,
                                 static_cast<uint32_t>(store::BlockHashOfVersion(h.version))));
  }
  const uint32_t min_header = h.version >= 3 ? sizeof(store::Header) : store::kHeaderBytesV2;
  if (h.header_bytes < min_header || h.header_bytes > store::kBlocksOffset) {
    return Bad(path, fmt::format("header_bytes {} out of range", h.header_bytes));
  }
  if (h.version >= 3 && h.layout > static_cast<uint32_t>(store::StoreLayout::kTiles)) {
    return Bad(path, fmt::format("layout code {} unknown (expected 0 rows or 1 tiles)", h.layout));
  }
  if (std::memcmp(f.magic, store::kFooterMagic, 8) != 0 || f.file_bytes != size) {
    return Error(StatusCode::kIntegrity, "{}: no footer or size {} differs from the footer's: "
                 "truncated or incomplete store", path, size);
  }
  if (h.dtype > static_cast<uint32_t>(store::StoreDType::kQ4)) {
    return Bad(path, fmt::format("dtype code {} unknown", h.dtype));
  }
  if (h.hidden != expect.hidden || h.intermediate != expect.intermediate ||
      static_cast<int64_t>(h.n_layers) != n_layers || static_cast<int64_t>(h.n_experts) != n_experts) {
    return Bad(path, fmt::format("geometry H={} I={} layers={} experts={} differs from config.json "
                                 "(H={} I={} layers={} experts={})", h.hidden, h.intermediate,
                                 h.n_layers, h.n_experts, expect.hidden, expect.intermediate,
                                 n_layers, n_experts));
  }
  ExpertGeometry g = expect;
  g.type = static_cast<kernels::WeightType>(h.dtype);  // codes match (store_format.h)
  // blocks_offset + n_blocks × block_stride and the index/footer ends, all without wrapping.
  const auto blocks = CheckedMul(h.n_blocks, h.block_stride);
  const auto index_at = blocks ? CheckedAdd(h.blocks_offset, *blocks) : std::nullopt;
  const auto index_end = CheckedAdd(h.index_offset, h.index_bytes);
  const auto file_end = index_end ? CheckedAdd(*index_end, sizeof(store::Footer)) : std::nullopt;
  if (h.block_bytes != g.block_bytes() || h.block_stride % store::kAlign != 0 ||
      h.block_stride < h.block_bytes || h.blocks_offset % store::kAlign != 0 ||
      h.blocks_offset < store::kBlocksOffset || h.n_blocks > (1u << 24) ||
      h.index_bytes != h.n_blocks * sizeof(store::IndexEntry) || !index_at ||
      h.index_offset != *index_at || f.index_offset != h.index_offset || !file_end ||
      *file_end != size) {
    return Bad(path, "inconsistent header sizes/offsets (truncated or corrupt)");
  }
  return Status::Ok();
}

Result<StoreIndexMap> CheckStoreIndex(const std::string& path, const store::Header& h,
                                      const store::Footer& f,
                                      std::span<const store::IndexEntry> index, int64_t n_layers,
                                      int64_t n_experts) {
  if (index.size() != h.n_blocks) {
    return Bad(path, fmt::format("index has {} entries, header says {}", index.size(), h.n_blocks));
  }
  if (XXH64(index.data(), index.size_bytes(), h.model_id) != f.index_xxh64) {
    return Error(StatusCode::kIntegrity, "{}: index checksum mismatch", path);
  }
  StoreIndexMap m;
  m.has.assign(static_cast<size_t>(n_layers), 0);
  m.entry_of.assign(static_cast<size_t>(n_layers * n_experts), SIZE_MAX);
  for (size_t i = 0; i < index.size(); ++i) {
    const store::IndexEntry& e = index[i];
    // offset ≤ index_offset − stride, written so that nothing wraps.
    if (e.layer >= h.n_layers || e.expert >= h.n_experts || e.size != h.block_bytes ||
        e.dtype != h.dtype || e.offset % store::kAlign != 0 || e.offset < h.blocks_offset ||
        h.index_offset < h.block_stride || e.offset > h.index_offset - h.block_stride) {
      return Bad(path, fmt::format("index entry {}: bad layer/expert/offset/size", i));
    }
    size_t& slot = m.entry_of[static_cast<size_t>(e.layer) * h.n_experts + e.expert];
    if (slot != SIZE_MAX) return Bad(path, fmt::format("index entry {}: duplicate block", i));
    slot = i;
    m.has[e.layer] = 1;
  }
  // No two blocks overlap (F3): sorted offsets are at least one stride apart.
  std::vector<std::pair<uint64_t, size_t>> by_offset(index.size());
  for (size_t i = 0; i < index.size(); ++i) by_offset[i] = {index[i].offset, i};
  std::sort(by_offset.begin(), by_offset.end());
  for (size_t i = 1; i < by_offset.size(); ++i) {
    if (by_offset[i].first - by_offset[i - 1].first < h.block_stride) {
      return Bad(path, fmt::format("index entries {} and {} overlap (offsets {} and {})",
                                   by_offset[i - 1].second, by_offset[i].second,
                                   by_offset[i - 1].first, by_offset[i].first));
    }
  }
  for (int64_t l = 0; l < n_layers; ++l) {
    if (!m.has[static_cast<size_t>(l)]) continue;
    for (int64_t e = 0; e < n_experts; ++e) {
      if (m.entry_of[static_cast<size_t>(l * n_experts + e)] == SIZE_MAX) {
        return Bad(path, fmt::format("index: layer {} expert {} missing", l, e));
      }
    }
  }
  return m;
}

}  // namespace moe
