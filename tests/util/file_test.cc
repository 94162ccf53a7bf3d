// SPDX-License-Identifier: Apache-2.0
// File::ReadAt and PreadAtLeast share one read loop (util/file.cc): short reads continue,
// EINTR/EAGAIN retry, errors and an early end of file fail with the path and offset. Checked
// against the bytes of a real file.
#include "util/file.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace moe {
namespace {

class FileReadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = ::testing::TempDir() + "file_read_test_" + std::to_string(::getpid());
    bytes_.resize(1000);
    for (size_t i = 0; i < bytes_.size(); ++i) bytes_[i] = static_cast<char>(i * 7 + 3);
    std::FILE* f = std::fopen(path_.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    ASSERT_EQ(std::fwrite(bytes_.data(), 1, bytes_.size(), f), bytes_.size());
    ASSERT_EQ(std::fclose(f), 0);
  }
  void TearDown() override { std::remove(path_.c_str()); }

  std::string path_;
  std::vector<char> bytes_;
};

// A pread that returns at most 7 bytes and fails every third call with EINTR.
int g_calls = 0;
ssize_t ShortAndInterrupted(int fd, void* buf, size_t count, off_t off) {
  if (++g_calls % 3 == 0) {
    errno = EINTR;
    return -1;
  }
  return ::pread(fd, buf, count < 7 ? count : 7, off);
}
ssize_t Eio(int, void*, size_t, off_t) {
  errno = EIO;
  return -1;
}

TEST_F(FileReadTest, PreadAtLeastContinuesShortReadsAndRetriesEintr) {
  auto f = File::OpenRead(path_);
  ASSERT_TRUE(f.ok());
  std::vector<char> got(300);
  g_calls = 0;
  ASSERT_TRUE(PreadFully(ShortAndInterrupted, f->fd(), 100, got.data(), got.size(), path_).ok());
  EXPECT_EQ(0, std::memcmp(got.data(), bytes_.data() + 100, got.size()));
  EXPECT_GT(g_calls, 300 / 7);
}

TEST_F(FileReadTest, PreadAtLeastStopsOnceItHasWhatItNeeds) {
  auto f = File::OpenRead(path_);
  ASSERT_TRUE(f.ok());
  // Ask for 64 bytes past the end (as an O_DIRECT read of a whole block would), need 40.
  std::vector<char> got(64, 0);
  ASSERT_TRUE(PreadAtLeast(::pread, f->fd(), 960, got.data(), 64, 40, path_).ok());
  EXPECT_EQ(0, std::memcmp(got.data(), bytes_.data() + 960, 40));
  // Needing more than the file holds is an early end of file.
  const Status st = PreadAtLeast(::pread, f->fd(), 960, got.data(), 64, 50, path_);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find(path_ + ": offset 1000: file changed or truncated while in use"),
            std::string::npos)
      << st.message();
}

TEST_F(FileReadTest, PreadAtLeastReportsTheError) {
  auto f = File::OpenRead(path_);
  ASSERT_TRUE(f.ok());
  std::vector<char> got(10);
  const Status st = PreadFully(Eio, f->fd(), 20, got.data(), got.size(), path_);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), StatusCode::kIoError);
  EXPECT_NE(st.message().find(path_ + ": offset 20: read of 10 bytes failed"), std::string::npos)
      << st.message();
}

// A hook that shortens every read to 5 bytes, fails the second with EINTR, and can end the file.
class ShorteningHook : public IoFaultHook {
 public:
  int Before(IoOp op, int, const std::string&, uint64_t offset, size_t* size) override {
    if (op != IoOp::kRead) return 0;
    ++calls;
    if (calls == 2) return EINTR;
    if (eof_at != 0 && offset >= eof_at) *size = 0;
    if (*size > 5) *size = 5;
    return 0;
  }
  int calls = 0;
  uint64_t eof_at = 0;
};

TEST_F(FileReadTest, ReadAtAsksTheHookBeforeEveryPass) {
  auto f = File::OpenRead(path_);
  ASSERT_TRUE(f.ok());
  ShorteningHook hook;
  IoFaultHook* prev = SetIoFaultHook(&hook);
  std::vector<char> got(52);
  const Status ok = f->ReadAt(500, got.data(), got.size());
  const int calls = hook.calls;
  hook.eof_at = 530;
  const Status eof = f->ReadAt(500, got.data(), got.size());
  SetIoFaultHook(prev);
  ASSERT_TRUE(ok.ok()) << ok.message();
  EXPECT_EQ(0, std::memcmp(got.data(), bytes_.data() + 500, got.size()));
  EXPECT_EQ(calls, 52 / 5 + 1 + 1);  // 10 reads of 5, one of 2, and the EINTR
  ASSERT_FALSE(eof.ok());
  EXPECT_NE(eof.message().find(path_ + ": offset 530: file changed or truncated while in use "
                                       "(needed 22 more bytes)"),
            std::string::npos)
      << eof.message();
}

}  // namespace
}  // namespace moe
