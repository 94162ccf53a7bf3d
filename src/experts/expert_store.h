// SPDX-License-Identifier: Apache-2.0
// Reads a converted expert store (store_format.h) as an ExpertSource: one pread per block,
// O_DIRECT when allowed and the destination is 4 KiB aligned (cache slots are), checksum
// verified on every read or on each block's first read (VerifyReads; a mismatch is kIntegrity
// naming layer and expert, the block is not handed out). Thread-safe.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "experts/expert_source.h"
#include "util/file.h"
#include "util/status.h"

namespace moe {

// Which reads of a block hash it. kFirst: a block's checksum is computed until it has matched
// once in this process, then its later reads (re-reads after eviction) skip the hash; corruption
// on disk is still caught on the first read (bad-inputs.md F5), and the CPU time of hashing every
// streamed byte (≈ 1/3 of a core at 5 GB/s) is paid once per block. kEvery: every read.
enum class VerifyReads { kEvery, kFirst };
Result<VerifyReads> ParseVerifyReads(const std::string& s);
inline const char* VerifyReadsName(VerifyReads v) {
  return v == VerifyReads::kFirst ? "first" : "every";
}

struct StoreOpenOptions {
  IoMode io = IoMode::kAuto;   // kDirect: refuse if O_DIRECT cannot be opened
  PreadFn pread_fn = nullptr;  // null = ::pread
  VerifyReads verify = VerifyReads::kEvery;
};

// True when `dir` holds a store marker file.
bool IsExpertStore(const std::string& dir);

// Opens STORE/experts.bin, checks header, footer, index (every (MoE layer, expert) exactly once,
// offsets aligned and inside the file) against `expect` (geometry and layer count from the
// config; type is taken from the store when expect.type mismatches → kInvalidFormat).
// Errors: kIntegrity (no marker, no footer, index checksum), kUnsupported (newer version),
// kInvalidFormat (bad fields), kIoError.
Result<std::unique_ptr<ExpertSource>> OpenExpertStore(const std::string& dir,
                                                      const ExpertGeometry& expect,
                                                      int64_t n_layers, int64_t n_experts,
                                                      const StoreOpenOptions& opts);

// Reads every block and checks its checksum (a source opened with VerifyReads::kFirst skips the
// blocks it has already checked). Returns the number of blocks read.
Result<uint64_t> VerifyExpertStore(const ExpertSource& store);

}  // namespace moe
