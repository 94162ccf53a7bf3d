// SPDX-License-Identifier: Apache-2.0
// Input: [flags u8][store::Header][store::Footer][file size u64][store::IndexEntry...].
// flags bit 0: recompute the footer's index checksum (so the fuzzer gets past it and exercises
// the entry checks); bit 1: take the file size from the footer. The expected geometry is the
// header's own when it is small (so geometry matching is not a wall), else a fixed one.
#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "experts/store_check.h"
#include "fuzz_targets.h"

namespace moe::fuzz {

int ExpertStore(const uint8_t* data, size_t size) {
  constexpr size_t kFixed = 1 + sizeof(store::Header) + sizeof(store::Footer) + 8;
  if (size < kFixed) return 0;
  const uint8_t flags = data[0];
  store::Header h;
  store::Footer f;
  uint64_t file_size = 0;
  std::memcpy(&h, data + 1, sizeof(h));
  std::memcpy(&f, data + 1 + sizeof(h), sizeof(f));
  std::memcpy(&file_size, data + 1 + sizeof(h) + sizeof(f), 8);
  if (flags & 2) file_size = f.file_bytes;
  std::vector<store::IndexEntry> index((size - kFixed) / sizeof(store::IndexEntry));
  if (!index.empty()) std::memcpy(index.data(), data + kFixed, index.size() * sizeof(index[0]));
  if (index.size() > h.n_blocks) index.resize(h.n_blocks);
  if (flags & 1) f.index_xxh64 = XXH64(index.data(), index.size() * sizeof(index[0]), h.model_id);

  ExpertGeometry expect{8, 4, kernels::WeightType::kBF16};
  int64_t n_layers = 2, n_experts = 4;
  if (h.hidden <= 4096 && h.intermediate <= 4096 && h.n_layers <= 64 && h.n_experts <= 256) {
    expect.hidden = h.hidden;
    expect.intermediate = h.intermediate;
    n_layers = h.n_layers;
    n_experts = h.n_experts;
  }
  Status st = CheckStoreHeader("experts.bin", h, f, file_size, expect, n_layers, n_experts);
  if (!st.ok()) return 0;
  // Accepted header: the index and every block lie inside the file, nothing wrapped.
  FUZZ_CHECK(h.version >= store::kMinVersion && h.version <= store::kVersion);
  FUZZ_CHECK(h.block_hash == static_cast<uint32_t>(store::BlockHashOfVersion(h.version)));
  FUZZ_CHECK(h.blocks_offset >= store::kBlocksOffset);
  FUZZ_CHECK(h.index_bytes == h.n_blocks * sizeof(store::IndexEntry));
  using U128 = unsigned __int128;
  FUZZ_CHECK(U128{h.blocks_offset} + U128{h.n_blocks} * h.block_stride == h.index_offset);
  FUZZ_CHECK(U128{h.index_offset} + h.index_bytes + sizeof(store::Footer) == file_size);
  auto m = CheckStoreIndex("experts.bin", h, f, index, n_layers, n_experts);
  if (!m.ok()) return 0;
  FUZZ_CHECK(m->has.size() == static_cast<size_t>(n_layers));
  for (int64_t l = 0; l < n_layers; ++l) {
    if (!m->has[static_cast<size_t>(l)]) continue;
    for (int64_t e = 0; e < n_experts; ++e) {
      const size_t at = m->entry_of[static_cast<size_t>(l * n_experts + e)];
      FUZZ_CHECK(at < index.size());
      const store::IndexEntry& x = index[at];
      FUZZ_CHECK(x.layer == l && x.expert == e && x.offset % store::kAlign == 0);
      FUZZ_CHECK(x.offset >= h.blocks_offset);
      FUZZ_CHECK(U128{x.offset} + h.block_stride <= h.index_offset);
    }
  }
  std::vector<uint64_t> offsets;
  for (const store::IndexEntry& x : index) offsets.push_back(x.offset);
  std::sort(offsets.begin(), offsets.end());
  for (size_t i = 1; i < offsets.size(); ++i) {
    FUZZ_CHECK(offsets[i] - offsets[i - 1] >= h.block_stride);
  }
  return 0;
}

}  // namespace moe::fuzz
