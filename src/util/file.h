// SPDX-License-Identifier: Apache-2.0
// Reads arrays of bytes from files by offset (pread), with EINTR/short-read handling.
// pread rather than mmap: I/O errors and truncation come back as return values instead of
// SIGBUS, and the caller controls what memory holds the bytes (bad-inputs.md rule 7).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "util/status.h"

namespace moe {

// Test seam for I/O faults (bad-inputs.md rule 8): when a hook is installed, every File read,
// write and fsync (and WriteFileAtomic's) asks it first. Like the store reader's PreadFn hook,
// it exists for tests only: nothing in the product installs one, and with none installed the
// cost is one relaxed atomic load per call. Process-wide, because the files it targets (input
// shards, converter temp files) are opened deep inside the libraries; install it only while no
// other thread does I/O.
enum class IoOp { kRead, kWrite, kSync };

class IoFaultHook {
 public:
  virtual ~IoFaultHook() = default;
  // Returned by Before for a kSync: skip fsync(2) and report success (a simulated file system
  // that tracks durability itself, e.g. the power-loss simulation; also keeps such tests fast).
  static constexpr int kSkipSync = -1;
  // Before the syscall. Return 0 to perform it or an errno to fail it (nothing is transferred).
  // For kRead/kWrite, lowering *size makes a short transfer; a read lowered to 0 reads as end of
  // file. `fd` lets a hook save the bytes a write will overwrite (power-loss simulation).
  virtual int Before(IoOp op, int fd, const std::string& path, uint64_t offset, size_t* size) = 0;
  // After a successful write (offset, bytes written) or fsync.
  virtual void After(IoOp /*op*/, int /*fd*/, const std::string& /*path*/, uint64_t /*offset*/,
                     size_t /*size*/) {}
};

// Installs `hook` (null removes it); returns the previous one. Tests only.
IoFaultHook* SetIoFaultHook(IoFaultHook* hook);

// RAII file descriptor. Movable, not copyable.
// Thread-compatible; ReadAt/WriteAt are thread-safe (pread/pwrite have no shared offset).
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

  // Opens `path` for writing with open(2) `flags` (O_WRONLY is added; O_CREAT makes it 0644).
  // kIoError naming the path (kResourceExhausted for EMFILE/ENFILE/ENOSPC/EDQUOT).
  static Result<File> OpenWrite(const std::string& path, int flags);

  // Reads exactly `size` bytes at `offset` into `dst`, retrying EINTR/EAGAIN and short reads.
  // Reaching end of file early is kIoError "file changed or truncated".
  Status ReadAt(uint64_t offset, void* dst, size_t size) const;

  // Writes exactly `size` bytes at `offset`, retrying EINTR and continuing short writes.
  // ENOSPC/EDQUOT/EFBIG → kResourceExhausted "no space left writing PATH (need X more bytes at
  // offset O, free Y)"; other errors → kIoError naming path and offset.
  Status WriteAt(uint64_t offset, const void* src, size_t size);

  // fsync(2), called exactly once: a failed fsync is never retried (after "fsyncgate" the kernel
  // may have dropped the dirty pages and marked them clean, so a retry can falsely succeed).
  Status Sync();

  // ftruncate(2) to `size` bytes.
  Status Truncate(uint64_t size);

  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
  uint64_t size_ = 0;
  std::string path_;
};

// pread(2)'s signature: the test hook for injecting EIO, EINTR, short reads and delays.
using PreadFn = ssize_t (*)(int fd, void* buf, size_t count, off_t offset);

// Reads up to `want` bytes at `off` through `fn` until at least `need` (≤ want) are in, retrying
// EINTR/EAGAIN (bounded) and continuing short reads (an O_DIRECT read asks for whole aligned
// blocks, and past the end of the file returns short). End of file first → kIoError "file
// changed or truncated while in use"; `path` labels errors.
Status PreadAtLeast(PreadFn fn, int fd, uint64_t off, void* dst, size_t want, size_t need,
                    const std::string& path);
// Exactly n bytes: PreadAtLeast(fn, fd, off, dst, n, n, path).
inline Status PreadFully(PreadFn fn, int fd, uint64_t off, void* dst, size_t n,
                         const std::string& path) {
  return PreadAtLeast(fn, fd, off, dst, n, n, path);
}

// Reads a whole (small) file into a string; `max_bytes` guards against giant inputs.
Result<std::string> ReadFileToString(const std::string& path, uint64_t max_bytes);

}  // namespace moe

namespace moe {

// Writes `size` bytes to `path` atomically: a temporary file beside it, fsync, rename, fsync of
// the directory. On failure the final path is untouched and the temporary removed.
Status WriteFileAtomic(const std::string& path, const void* data, size_t size);

}  // namespace moe
