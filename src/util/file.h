// SPDX-License-Identifier: Apache-2.0
// Reads arrays of bytes from files by offset (pread), with EINTR/short-read handling.
// pread rather than mmap: I/O errors and truncation come back as return values instead of
// SIGBUS, and the caller controls what memory holds the bytes (bad-inputs.md rule 7).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "util/status.h"

namespace moe {

// RAII file descriptor opened read-only. Movable, not copyable.
// Thread-compatible; ReadAt is thread-safe (pread has no shared offset).
class File {
 public:
  File() = default;
  ~File();
  File(File&& other) noexcept;
  File& operator=(File&& other) noexcept;
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  // Opens `path` read-only. kIoError naming the path on failure.
  static Result<File> OpenRead(const std::string& path);

  // Reads exactly `size` bytes at `offset` into `dst`, retrying EINTR/EAGAIN and short reads.
  // Reaching end of file early is kIoError "file changed or truncated".
  Status ReadAt(uint64_t offset, void* dst, size_t size) const;

  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
  uint64_t size_ = 0;
  std::string path_;
};

// Reads a whole (small) file into a string; `max_bytes` guards against giant inputs.
Result<std::string> ReadFileToString(const std::string& path, uint64_t max_bytes);

}  // namespace moe

namespace moe {

// Writes `size` bytes to `path` atomically: a temporary file beside it, fsync, rename, fsync of
// the directory. On failure the final path is untouched and the temporary removed.
Status WriteFileAtomic(const std::string& path, const void* data, size_t size);

}  // namespace moe
