// SPDX-License-Identifier: Apache-2.0
// safetensors files and sharded checkpoints: validated headers, tensor lookup, pread access.
//
// Validation mirrors the reference reader (spec §5.3, bad-inputs.md A1-A22, B1-B5): 8-byte
// length, header ≤ 100,000,000 bytes, UTF-8 JSON object, string→string __metadata__, known
// dtypes, integer shapes, checked element/byte counts, contiguous offsets from 0 with no gaps
// or overlaps, last tensor ending exactly at EOF, and duplicate names rejected.
// Tensor bytes are read with pread (util/file.h) into memory the caller owns: see file.h for
// why not mmap.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "formats/dtype.h"
#include "util/file.h"
#include "util/status.h"

namespace moe {

inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;
inline constexpr uint64_t kMaxSafetensorsTensors = 10'000'000;

struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<uint64_t> shape;
  uint64_t n_elements = 0;
  uint64_t file_offset = 0;  // absolute byte offset of the data in the file (8 + N + begin)
  uint64_t n_bytes = 0;
};

// Parses the first bytes of a safetensors file (`prefix` = the 8-byte length followed by at
// least the header), given the whole file's size. Pure function: used by SafetensorsFile and
// by the fuzzer. `path` only labels messages. Tensors come back sorted by offset.
struct SafetensorsHeader {
  uint64_t header_bytes = 0;  // N
  std::vector<TensorInfo> tensors;
  std::map<std::string, std::string> metadata;
};
Result<uint64_t> ParseSafetensorsHeaderLength(std::string_view path, std::string_view first8,
                                              uint64_t file_size);
// `max_tensors` exists so that tests can reach the entry limit (kResourceExhausted) without a
// 100 MB header.
Result<SafetensorsHeader> ParseSafetensorsHeader(std::string_view path, std::string_view header_json,
                                                 uint64_t file_size,
                                                 uint64_t max_tensors = kMaxSafetensorsTensors);
// Largest accepted shape element: JSON integers beyond 2^53 are not exact in most writers.
inline constexpr uint64_t kMaxSafetensorsDim = uint64_t{1} << 53;

// One open .safetensors file. Movable; thread-safe for concurrent reads after Open.
class SafetensorsFile {
 public:
  static Result<SafetensorsFile> Open(const std::string& path);

  const std::vector<TensorInfo>& tensors() const { return header_.tensors; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  const TensorInfo* Find(std::string_view name) const;  // nullptr when absent
  const File& file() const { return file_; }
  const std::string& path() const { return file_.path(); }

 private:
  File file_;
  SafetensorsHeader header_;
  std::unordered_map<std::string, size_t> by_name_;
};

// A located tensor of a checkpoint: its info and the shard file holding it.
struct TensorRef {
  const TensorInfo* info = nullptr;
  const SafetensorsFile* shard = nullptr;
};

// A model folder as downloaded: `model.safetensors`, or `model.safetensors.index.json` plus the
// shards it names. Index rules (B1-B4): every shard path stays inside the folder (no "..", no
// absolute path, no symlink out), every listed tensor is found in its shard exactly once, no
// tensor appears in two shards, and no shard holds a tensor the index does not list.
// Immutable after Open; thread-safe.
class Checkpoint {
 public:
  static Result<Checkpoint> Open(const std::string& model_dir);

  const TensorRef* Find(std::string_view name) const;  // nullptr when absent
  // All tensor names, sorted.
  std::vector<std::string> Names() const;
  // Reads the whole tensor into dst (size must equal n_bytes).
  Status Read(const TensorRef& ref, void* dst, size_t size) const;
  // Reads bytes [offset, offset + size) of the tensor (within n_bytes) into dst.
  Status ReadRange(const TensorRef& ref, uint64_t offset, void* dst, size_t size) const;
  const std::string& dir() const { return dir_; }
  size_t n_shards() const { return shards_.size(); }

 private:
  std::string dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> shards_;
  std::unordered_map<std::string, TensorRef> by_name_;
};

}  // namespace moe
