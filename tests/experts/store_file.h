// SPDX-License-Identifier: Apache-2.0
// A converted store's experts.bin as the file holds it: header, index and raw bytes, decoded by
// the documented layout (experts/store_format.h) with memcpy, not through the store reader, so
// tests can check what the writer wrote independently of the code that reads it.
#pragma once

#include <cstring>
#include <string>
#include <vector>

#include "experts/store_format.h"
#include "formats/test_files.h"

namespace moe::testing {

struct StoreFile {
  store::Header h{};                     // zero when the file is shorter than a header
  std::vector<store::IndexEntry> index;  // empty when the index lies outside the file
  std::string bytes;                     // the whole file
};

inline StoreFile ReadStoreFile(const std::string& store_dir) {
  StoreFile f;
  f.bytes = Slurp(store_dir + "/" + store::kExpertsFile);
  if (f.bytes.size() < sizeof(f.h)) return f;
  std::memcpy(&f.h, f.bytes.data(), sizeof(f.h));
  if (f.h.index_bytes != f.h.n_blocks * sizeof(store::IndexEntry) ||
      f.h.index_offset > f.bytes.size() || f.h.index_bytes > f.bytes.size() - f.h.index_offset) {
    return f;
  }
  f.index.resize(f.h.n_blocks);
  std::memcpy(f.index.data(), f.bytes.data() + f.h.index_offset, f.h.index_bytes);
  return f;
}

}  // namespace moe::testing
