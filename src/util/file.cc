// SPDX-License-Identifier: Apache-2.0
#include "util/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>

namespace moe {
namespace {

std::atomic<IoFaultHook*> g_io_hook{nullptr};

IoFaultHook* Hook() { return g_io_hook.load(std::memory_order_relaxed); }

bool IsNoSpace(int err) { return err == ENOSPC || err == EDQUOT || err == EFBIG; }

uint64_t FreeBytes(int fd) {
  struct statvfs vfs;
  if (::fstatvfs(fd, &vfs) != 0) return 0;
  return static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
}

// The read loop of File::ReadAt and PreadAtLeast: asks `read(buf, count, offset)` (pread(2)'s
// contract: bytes read, 0 at end of file, -1 with errno) for up to `want` bytes at `off` until
// at least `need` are in, retrying EINTR/EAGAIN (bounded) and continuing short reads.
template <class ReadFn>
Status ReadLoop(const ReadFn& read, uint64_t off, void* dst, size_t want, size_t need,
                const std::string& path) {
  auto* out = static_cast<char*>(dst);
  size_t done = 0;
  int retries = 0;
  while (done < need) {
    const ssize_t r = read(out + done, want - done, off + done);
    if (r < 0) {
      const int err = errno;
      if ((err == EINTR || err == EAGAIN) && ++retries < 1000) continue;
      return Error(StatusCode::kIoError, "{}: offset {}: read of {} bytes failed: {}", path,
                   off + done, want - done, std::strerror(err));
    }
    if (r == 0) {
      return Error(StatusCode::kIoError,
                   "{}: offset {}: file changed or truncated while in use (needed {} more bytes)",
                   path, off + done, need - done);
    }
    done += static_cast<size_t>(r);
  }
  return Status::Ok();
}

}  // namespace

IoFaultHook* SetIoFaultHook(IoFaultHook* hook) { return g_io_hook.exchange(hook); }

File::~File() {
  if (fd_ >= 0) ::close(fd_);
}

File::File(File&& other) noexcept : fd_(other.fd_), size_(other.size_), path_(std::move(other.path_)) {
  other.fd_ = -1;
}

File& File::operator=(File&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    size_ = other.size_;
    path_ = std::move(other.path_);
    other.fd_ = -1;
  }
  return *this;
}

Result<File> File::OpenRead(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == EMFILE || err == ENFILE) {
      return Error(StatusCode::kResourceExhausted, "{}: cannot open: {} (raise ulimit -n)", path,
                   std::strerror(err));
    }
    return Error(StatusCode::kIoError, "{}: cannot open: {}", path, std::strerror(err));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return Error(StatusCode::kIoError, "{}: cannot stat: {}", path, std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return Error(StatusCode::kIoError, "{}: not a regular file", path);
  }
  File f;
  f.fd_ = fd;
  f.size_ = static_cast<uint64_t>(st.st_size);
  f.path_ = path;
  return f;
}

Result<File> File::OpenWrite(const std::string& path, int flags) {
  int fd = ::open(path.c_str(), flags | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0) {
    const int err = errno;
    const bool resource = err == EMFILE || err == ENFILE || IsNoSpace(err);
    return Error(resource ? StatusCode::kResourceExhausted : StatusCode::kIoError,
                 "{}: cannot open for writing: {}", path, std::strerror(err));
  }
  File f;
  f.fd_ = fd;
  f.path_ = path;
  struct stat st;
  if (::fstat(fd, &st) == 0) f.size_ = static_cast<uint64_t>(st.st_size);
  return f;
}

Status File::ReadAt(uint64_t offset, void* dst, size_t size) const {
  // The test hook (if any) is asked before every pass: it may fail it, end the file or
  // shorten it.
  const auto read = [&](char* buf, size_t count, uint64_t off) -> ssize_t {
    size_t want = count;
    IoFaultHook* hook = Hook();
    const int injected = hook ? hook->Before(IoOp::kRead, fd_, path_, off, &want) : 0;
    if (injected != 0) {
      errno = injected;
      return -1;
    }
    if (want == 0) return 0;  // injected end of file
    return ::pread(fd_, buf, std::min(want, count), static_cast<off_t>(off));
  };
  return ReadLoop(read, offset, dst, size, size, path_);
}

Status File::WriteAt(uint64_t offset, const void* src, size_t size) {
  const char* in = static_cast<const char*>(src);
  size_t done = 0;
  while (done < size) {
    const uint64_t at = offset + done;
    size_t want = size - done;
    IoFaultHook* hook = Hook();
    const int injected = hook ? hook->Before(IoOp::kWrite, fd_, path_, at, &want) : 0;
    ssize_t n;
    if (injected != 0) {
      errno = injected;
      n = -1;
    } else {
      n = ::pwrite(fd_, in + done, std::min(want, size - done), static_cast<off_t>(at));
    }
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : EIO;
      if (err == EFBIG) {
        return Error(StatusCode::kResourceExhausted,
                     "file size limit reached writing {} (need {} more bytes at offset {}; ulimit "
                     "-f?): {}",
                     path_, size - done, at, std::strerror(err));
      }
      if (IsNoSpace(err)) {
        return Error(StatusCode::kResourceExhausted,
                     "no space left writing {} (need {} more bytes at offset {}, free {}): {}",
                     path_, size - done, at, FreeBytes(fd_), std::strerror(err));
      }
      return Error(StatusCode::kIoError, "{}: offset {}: write of {} bytes failed: {}", path_, at,
                   size - done, std::strerror(err));
    }
    if (hook) hook->After(IoOp::kWrite, fd_, path_, at, static_cast<size_t>(n));
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

Status File::Sync() {
  IoFaultHook* hook = Hook();
  const int injected = hook ? hook->Before(IoOp::kSync, fd_, path_, 0, nullptr) : 0;
  if (injected == IoFaultHook::kSkipSync) {
    hook->After(IoOp::kSync, fd_, path_, 0, 0);
    return Status::Ok();
  }
  if (injected != 0 || ::fsync(fd_) != 0) {
    const int err = injected != 0 ? injected : errno;
    return Error(IsNoSpace(err) ? StatusCode::kResourceExhausted : StatusCode::kIoError,
                 "{}: fsync failed (not retried; unsynced data may be lost): {}", path_,
                 std::strerror(err));
  }
  if (hook) hook->After(IoOp::kSync, fd_, path_, 0, 0);
  return Status::Ok();
}

Status File::Truncate(uint64_t size) {
  if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) {
    const int err = errno;
    if (IsNoSpace(err)) {
      return Error(StatusCode::kResourceExhausted, "{} writing {} (need {} bytes, free {}): {}",
                   err == EFBIG ? "file size limit reached" : "no space left", path_, size,
                   FreeBytes(fd_), std::strerror(err));
    }
    return Error(StatusCode::kIoError, "{}: cannot resize to {} bytes: {}", path_, size,
                 std::strerror(err));
  }
  size_ = size;
  return Status::Ok();
}

Status PreadAtLeast(PreadFn fn, int fd, uint64_t off, void* dst, size_t want, size_t need,
                    const std::string& path) {
  const auto read = [&](char* buf, size_t count, uint64_t o) {
    return fn(fd, buf, count, static_cast<off_t>(o));
  };
  return ReadLoop(read, off, dst, want, need, path);
}

Result<std::string> ReadFileToString(const std::string& path, uint64_t max_bytes) {
  MOE_ASSIGN_OR_RETURN(File f, File::OpenRead(path));
  if (f.size() > max_bytes) {
    return Error(StatusCode::kResourceExhausted, "{}: file is {} bytes, limit {}", path, f.size(),
                 max_bytes);
  }
  std::string s(f.size(), '\0');
  MOE_TRY(f.ReadAt(0, s.data(), s.size()));
  return s;
}

}  // namespace moe

namespace moe {

Status WriteFileAtomic(const std::string& path, const void* data, size_t size) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  Status st;
  {
    auto f = File::OpenWrite(tmp, O_CREAT | O_TRUNC);
    if (!f.ok()) return f.status();
    st = f->WriteAt(0, data, size);
    if (st.ok()) st = f->Sync();
  }
  if (st.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    st = Error(StatusCode::kIoError, "{}: cannot rename to {}: {}", tmp, path,
               std::strerror(errno));
  }
  if (!st.ok()) {
    ::unlink(tmp.c_str());
    return st;
  }
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash + 1);
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return Status::Ok();
}

}  // namespace moe
