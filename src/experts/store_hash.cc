// SPDX-License-Identifier: Apache-2.0
// Block hashes of the expert store (store_format.h). XXH3 through the library's x86 dispatch
// entry point, which picks SSE2/AVX2/AVX-512 at run time (measured on this machine: 13 GB/s on a
// block fresh from DMA, against 8 GB/s for xxHash64; docs/benchmarks.md, session 6); elsewhere
// (ARM64) the library's own build, NEON included.
#include <xxhash.h>
#if defined(__x86_64__)
#include <xxh_x86dispatch.h>
#endif

#include "experts/store_format.h"

namespace moe::store {

uint64_t HashBlock(BlockHash kind, const void* data, uint64_t bytes, uint64_t seed) {
  const size_t n = static_cast<size_t>(bytes);
  if (kind == BlockHash::kXxh3) {
#if defined(__x86_64__)
    return XXH3_64bits_withSeed_dispatch(data, n, seed);
#else
    return XXH3_64bits_withSeed(data, n, seed);
#endif
  }
  return XXH64(data, n, seed);
}

BlockHash BlockHashOfVersion(uint32_t version) {
  return version >= 2 ? BlockHash::kXxh3 : BlockHash::kXxh64;
}

const char* BlockHashName(BlockHash kind) {
  return kind == BlockHash::kXxh3 ? "xxh3-64" : "xxh64";
}

}  // namespace moe::store
