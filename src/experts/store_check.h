// SPDX-License-Identifier: Apache-2.0
// Pure validation of an expert store's fixed parts (header, footer, index), split from
// OpenExpertStore so that the fuzzer (tests/fuzz/expert_store_fuzz.cc) and unit tests run the
// exact checks on bytes without files. All offset arithmetic is checked (bad-inputs.md F3).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "experts/expert_source.h"
#include "experts/store_format.h"
#include "util/status.h"

namespace moe {

// Header and footer against the file size and the geometry expected from config.json.
// kInvalidFormat (bad magic/fields/offsets), kUnsupported (newer version), kIntegrity (no
// footer or a footer whose size disagrees: incomplete store).
Status CheckStoreHeader(const std::string& path, const store::Header& h, const store::Footer& f,
                        uint64_t file_size, const ExpertGeometry& expect, int64_t n_layers,
                        int64_t n_experts);

struct StoreIndexMap {
  std::vector<uint8_t> has;       // [layer] → layer has blocks
  std::vector<size_t> entry_of;   // [layer × n_experts + expert] → index position
};
// The index of a store whose header passed CheckStoreHeader: its checksum against the footer,
// every entry in range and aligned, no duplicate, every layer that has blocks complete.
Result<StoreIndexMap> CheckStoreIndex(const std::string& path, const store::Header& h,
                                      const store::Footer& f,
                                      std::span<const store::IndexEntry> index, int64_t n_layers,
                                      int64_t n_experts);

}  // namespace moe
