// SPDX-License-Identifier: Apache-2.0
// Input: a whole .safetensors file (8-byte length, header, data).
#include <string_view>

#include "formats/safetensors.h"
#include "fuzz_targets.h"

namespace moe::fuzz {

int SafetensorsHeader(const uint8_t* data, size_t size) {
  const std::string_view file(reinterpret_cast<const char*>(data), size);
  auto n = ParseSafetensorsHeaderLength("fuzz.safetensors", file.substr(0, 8), size);
  if (!n.ok()) return 0;
  FUZZ_CHECK(*n <= kMaxSafetensorsHeaderBytes && 8 + *n <= size);
  auto h = ParseSafetensorsHeader("fuzz.safetensors", file.substr(8, *n), size);
  if (!h.ok()) {
    FUZZ_CHECK(h.status().message().find('\n') == std::string::npos);
    return 0;
  }
  // Accepted: tensors sorted, contiguous from the data start, ending exactly at EOF.
  uint64_t at = 8 + *n;
  for (const TensorInfo& t : h->tensors) {
    FUZZ_CHECK(t.file_offset == at);
    // Independent 128-bit recomputation of the element and byte counts.
    // (saturates above 2^64; a zero dimension makes it 0; dims are ≤ 2^53 once accepted).
    unsigned __int128 elems = 1;
    bool zero = false;
    for (uint64_t d : t.shape) {
      FUZZ_CHECK(d <= kMaxSafetensorsDim);
      zero = zero || d == 0;
      if (elems <= ~0ull) elems *= d == 0 ? 1 : d;
    }
    if (zero) elems = 0;
    FUZZ_CHECK(elems == t.n_elements);
    FUZZ_CHECK(static_cast<unsigned __int128>(t.n_bytes) * 8 == elems * DTypeBits(t.dtype));
    FUZZ_CHECK(t.file_offset <= size && t.n_bytes <= size - t.file_offset);
    at += t.n_bytes;
  }
  FUZZ_CHECK(at == size);
  return 0;
}

}  // namespace moe::fuzz
