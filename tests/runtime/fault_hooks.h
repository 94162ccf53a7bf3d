// SPDX-License-Identifier: Apache-2.0
// IoFaultHook implementations for tests (util/file.h): FaultHook fails or shortens chosen calls
// and records every call; PowerLossHook "crashes" at a chosen write/fsync and then drops every
// byte not yet covered by a successful fsync, like RocksDB's DropUnsyncedFileData. Not
// thread-safe: the converter does its I/O on one thread.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "util/file.h"

namespace moe::testing_io {

class FaultHook : public IoFaultHook {
 public:
  struct Call {
    IoOp op;
    std::string path;
    uint64_t offset;
    size_t size;
  };
  // Injects into the `nth` (0-based; < 0: none) call of `op` whose path contains `path_part`:
  // errno `err`, or with err == 0 on a read, end of file; err == 0 on a write or fsync injects
  // nothing (OnMatch only).
  FaultHook(IoOp op, std::string path_part, int nth, int err)
      : op_(op), part_(std::move(path_part)), nth_(nth), err_(err) {}

  void CapEveryTransfer(size_t max_bytes) { cap_ = max_bytes; }
  void OnMatch(std::function<void()> f) { on_match_ = std::move(f); }

  int Before(IoOp op, int, const std::string& path, uint64_t offset, size_t* size) override {
    calls_.push_back({op, path, offset, size ? *size : 0});
    if (size && cap_) *size = std::min(*size, cap_);
    if (op != op_ || path.find(part_) == std::string::npos || matched_++ != nth_) return 0;
    failed_at_ = calls_.size() - 1;
    if (on_match_) on_match_();
    if (err_ == 0 && op == IoOp::kRead) *size = 0;
    return err_;
  }

  std::vector<Call> Calls(IoOp op, const std::string& path_part = "") const {
    std::vector<Call> out;
    for (const Call& c : calls_) {
      if (c.op == op && c.path.find(path_part) != std::string::npos) out.push_back(c);
    }
    return out;
  }
  // Calls of `op` from the injected one (included) to the end.
  size_t CallsFromFailure(IoOp op) const {
    size_t n = 0;
    for (size_t i = failed_at_; i < calls_.size(); ++i) n += calls_[i].op == op;
    return n;
  }
  const std::string& failed_path() const { return calls_.at(failed_at_).path; }
  uint64_t failed_offset() const { return calls_.at(failed_at_).offset; }

 private:
  IoOp op_;
  std::string part_;
  int nth_, err_;
  int matched_ = 0;
  size_t cap_ = 0;
  size_t failed_at_ = SIZE_MAX;
  std::function<void()> on_match_;
  std::vector<Call> calls_;
};

class PowerLossHook : public IoFaultHook {
 public:
  // Fails (EIO, standing for the moment power goes) write-or-fsync call number `crash_at`
  // (0-based; < 0: never) and every call after it. fsync(2) itself is skipped: the hook decides
  // what is durable.
  explicit PowerLossHook(int crash_at) : crash_at_(crash_at) {}

  int Before(IoOp op, int, const std::string& path, uint64_t offset, size_t* size) override {
    if (op == IoOp::kRead) return 0;
    if (crash_at_ >= 0 && points_++ >= crash_at_) return EIO;
    if (crash_at_ < 0) ++points_;
    if (op == IoOp::kWrite) SavePreImage(path, offset, *size);
    return op == IoOp::kSync ? kSkipSync : 0;  // durability is what this hook says it is
  }
  void After(IoOp op, int, const std::string& path, uint64_t, size_t) override {
    if (op != IoOp::kSync) return;
    std::erase_if(unsynced_, [&](const Range& r) { return r.path == path; });
  }

  int points() const { return points_; }

  // Undoes every write not covered by a later fsync of its file, newest first: restores the
  // pre-write bytes and size, or with `zero`, overwrites the range with zeros and keeps the size
  // (ext4 data=writeback after a crash: the size is durable, the data is not). Returns how many
  // writes were undone.
  int DropUnsynced(bool zero = false) {
    const int n = static_cast<int>(unsynced_.size());
    for (auto it = unsynced_.rbegin(); it != unsynced_.rend(); ++it) {
      const int fd = ::open(it->path.c_str(), O_WRONLY | O_CLOEXEC);
      if (fd < 0) continue;  // removed since: nothing to restore
      if (zero) {
        const std::string zeros(it->size, '\0');
        [[maybe_unused]] ssize_t w =
            ::pwrite(fd, zeros.data(), zeros.size(), static_cast<off_t>(it->offset));
        ::close(fd);
        continue;
      }
      if (!it->old.empty()) {
        [[maybe_unused]] ssize_t w =
            ::pwrite(fd, it->old.data(), it->old.size(), static_cast<off_t>(it->offset));
      }
      struct stat st;
      if (::fstat(fd, &st) == 0 && static_cast<uint64_t>(st.st_size) > it->old_size) {
        [[maybe_unused]] int t = ::ftruncate(fd, static_cast<off_t>(it->old_size));
      }
      ::close(fd);
    }
    unsynced_.clear();
    return n;
  }

 private:
  struct Range {
    std::string path;
    uint64_t offset;
    uint64_t size;
    uint64_t old_size;
    std::string old;  // the bytes the write overwrote (inside the old size)
  };

  void SavePreImage(const std::string& path, uint64_t offset, size_t size) {
    Range r{path, offset, size, 0, {}};
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      struct stat st;
      if (::fstat(fd, &st) == 0) r.old_size = static_cast<uint64_t>(st.st_size);
      if (offset < r.old_size) {
        r.old.resize(std::min<uint64_t>(size, r.old_size - offset));
        [[maybe_unused]] ssize_t n =
            ::pread(fd, r.old.data(), r.old.size(), static_cast<off_t>(offset));
      }
      ::close(fd);
    }
    unsynced_.push_back(std::move(r));
  }

  int crash_at_;
  int points_ = 0;
  std::vector<Range> unsynced_;
};

}  // namespace moe::testing_io
