// SPDX-License-Identifier: Apache-2.0
#include "util/file.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace moe {

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

Status File::ReadAt(uint64_t offset, void* dst, size_t size) const {
  auto* out = static_cast<char*>(dst);
  size_t done = 0;
  int retries = 0;
  while (done < size) {
    ssize_t n = ::pread(fd_, out + done, size - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if ((errno == EINTR || errno == EAGAIN) && ++retries < 1000) continue;
      return Error(StatusCode::kIoError, "{}: offset {}: read of {} bytes failed: {}", path_,
                   offset + done, size - done, std::strerror(errno));
    }
    if (n == 0) {
      return Error(StatusCode::kIoError,
                   "{}: offset {}: file changed or truncated while in use (needed {} more bytes)",
                   path_, offset + done, size - done);
    }
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
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
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    return Error(StatusCode::kIoError, "{}: cannot create: {}", tmp, std::strerror(errno));
  }
  const char* p = static_cast<const char*>(data);
  size_t done = 0;
  Status st;
  while (done < size) {
    ssize_t n = ::write(fd, p + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : EIO;
      st = Error(err == ENOSPC ? StatusCode::kResourceExhausted : StatusCode::kIoError,
                 "{}: write failed after {} of {} bytes: {}", tmp, done, size, std::strerror(err));
      break;
    }
    done += static_cast<size_t>(n);
  }
  if (st.ok() && ::fsync(fd) != 0) {
    st = Error(StatusCode::kIoError, "{}: fsync failed: {}", tmp, std::strerror(errno));
  }
  ::close(fd);
  if (st.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    st = Error(StatusCode::kIoError, "{}: cannot rename to {}: {}", tmp, path, std::strerror(errno));
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
