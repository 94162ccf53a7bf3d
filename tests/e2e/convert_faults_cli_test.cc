// SPDX-License-Identifier: Apache-2.0
// `moestream convert` under faults, through the real binary (bad-inputs.md §E): SIGINT/SIGTERM
// (E9: exit 130/143, resumable), a second converter on the same output (E8: exit 2 "locked by
// pid N"), a file-size limit standing in for a full disk (E2's exit 5 mapping), a read-only
// output directory (E6: exit 4 before any output), --force (E7) and an unsupported expert dtype
// (E11: exit 7, nothing written). No std::regex: GCC 12 gives false -Wmaybe-uninitialized on it
// under ASan. Injected EIO/ENOSPC/fsync faults are library tests
// (runtime_test: ConvertFaultsTest.*).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <thread>

#include "cli_runner.h"
#include "formats/test_files.h"

namespace moe {
namespace {

namespace fs = std::filesystem;
using testing::CliResult;
using testing::RunCli;

std::string Fixture(const std::string& name) {
  return std::string(MOE_SOURCE_DIR) + "/tests/data/models/" + name;
}

using testing::Slurp;

size_t Lines(const std::string& s) {
  return static_cast<size_t>(std::count(s.begin(), s.end(), '\n'));
}

class ConvertCli : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/moe_convert_cli_XXXXXX";
    dir_ = mkdtemp(tmpl);
    ref_ = dir_ + "/ref";
    out_ = dir_ + "/out";
    CliResult r = RunCli({"convert", "--quiet", "--model", Fixture("base"), "--out", ref_}, dir_);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  void TearDown() override { fs::remove_all(dir_); }

  CliResult Convert(const std::vector<std::string>& extra = {},
                    const std::function<void()>& in_child = {}) {
    std::vector<std::string> args = {"convert", "--quiet", "--model", Fixture("base"), "--out",
                                     out_};
    args.insert(args.end(), extra.begin(), extra.end());
    return RunCli(args, dir_, "/dev/null", in_child);
  }
  void ExpectSameAsRef(const std::string& d) {
    std::map<std::string, std::string> want, got;
    for (const auto& e : fs::directory_iterator(ref_)) want[e.path().filename()] = Slurp(e.path());
    for (const auto& e : fs::directory_iterator(d)) got[e.path().filename()] = Slurp(e.path());
    ASSERT_EQ(want.size(), got.size());
    for (const auto& [name, bytes] : want) EXPECT_TRUE(got[name] == bytes) << name << " differs";
  }
  // Blocks resumed, from the summary line "OUT: N blocks written, M resumed, …".
  static int Resumed(const std::string& err) {
    size_t end = err.find(" resumed");
    if (end == std::string::npos) return -1;
    size_t begin = end;
    while (begin > 0 && std::isdigit(static_cast<unsigned char>(err[begin - 1]))) --begin;
    return begin == end ? -1 : std::stoi(err.substr(begin, end - begin));
  }

  std::string dir_, ref_, out_;
};

// A slow conversion in the background; returns its pid. stderr goes to `err_path`.
pid_t SpawnSlowConvert(const std::string& out, const std::string& err_path,
                       const std::string& model = Fixture("base")) {
  const std::string bin = testing::MoestreamBin();
  const pid_t pid = fork();
  if (pid == 0) {
    const int e = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(e, 2);
    execl(bin.c_str(), bin.c_str(), "convert", "--quiet", "--slow-us-per-block", "100000",
          "--model", model.c_str(), "--out", out.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

int WaitExit(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Waits (bounded at 60 s, polling) until the journal holds at least one block record: the
// converter is then inside its block loop. Not a timing assertion: only an upper bound.
bool WaitForJournaledBlock(const std::string& part) {
  for (int i = 0; i < 6000; ++i) {
    std::error_code ec;
    if (fs::file_size(part + "/journal.bin", ec) > 8 && !ec) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

TEST_F(ConvertCli, E8AndE9SecondWriterLockedThenSignalsExit130Or143AndResume) {
  for (int sig : {SIGINT, SIGTERM}) {
    SCOPED_TRACE(sig == SIGINT ? "SIGINT" : "SIGTERM");
    const std::string err_path = dir_ + "/bg.stderr";
    const pid_t pid = SpawnSlowConvert(out_, err_path);
    ASSERT_TRUE(WaitForJournaledBlock(out_ + ".partial")) << Slurp(err_path);
    // E8: a second converter on the same output is refused while the first runs.
    CliResult second = Convert();
    EXPECT_EQ(second.exit_code, 2) << second.err;
    EXPECT_NE(second.err.find(out_ + ".partial: locked by pid " + std::to_string(pid)),
              std::string::npos) << second.err;
    // E9.
    ASSERT_EQ(kill(pid, sig), 0);
    EXPECT_EQ(WaitExit(pid), 128 + sig);
    const std::string err = Slurp(err_path);
    EXPECT_EQ(Lines(err), 1u) << err;
    EXPECT_NE(err.find("interrupted by signal " + std::to_string(sig)), std::string::npos) << err;
    EXPECT_FALSE(fs::exists(out_)) << "partial store at the final path";
    CliResult again = Convert();
    ASSERT_EQ(again.exit_code, 0) << again.err;
    EXPECT_GT(Resumed(again.err), 0) << again.err;
    ExpectSameAsRef(out_);
    EXPECT_FALSE(fs::exists(out_ + ".partial"));
    fs::remove_all(out_);
  }
}

// E4 through the CLI: the input shards are cut short while the converter runs (after its first
// journaled block): the next read hits end of file → exit 4 naming a shard and an offset.
TEST_F(ConvertCli, E4ShardTruncatedDuringConversionIsExit4NamingShardAndOffset) {
  const std::string model = dir_ + "/model";
  fs::copy(Fixture("base"), model, fs::copy_options::recursive);
  const std::string err_path = dir_ + "/bg.stderr";
  const pid_t pid = SpawnSlowConvert(out_, err_path, model);
  ASSERT_TRUE(WaitForJournaledBlock(out_ + ".partial")) << Slurp(err_path);
  for (const auto& e : fs::directory_iterator(model)) {
    if (e.path().extension() == ".safetensors") fs::resize_file(e.path(), 8);
  }
  EXPECT_EQ(WaitExit(pid), 4);
  const std::string err = Slurp(err_path);
  EXPECT_EQ(Lines(err), 1u) << err;
  // "…/model/model-000NN-of-00011.safetensors: offset N: file changed or truncated while in use"
  const size_t shard = err.find(model + "/model-");
  const size_t offset = err.find(".safetensors: offset ", shard);
  EXPECT_NE(shard, std::string::npos) << err;
  EXPECT_NE(offset, std::string::npos) << err;
  EXPECT_NE(err.find(": file changed or truncated while in use", offset), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(out_));
}

TEST_F(ConvertCli, E2FileSizeLimitIsExit5AndResumes) {
  const uint64_t experts = fs::file_size(ref_ + "/experts.bin");
  const uint64_t dense = fs::file_size(ref_ + "/model.safetensors");
  ASSERT_GT(dense, experts + 8192) << "fixture no longer lets the limit fall inside the dense file";
  const rlim_t limit = experts + 4096;  // experts.bin fits, model.safetensors does not
  CliResult r = Convert({}, [limit] {
    signal(SIGXFSZ, SIG_IGN);  // the write then fails with EFBIG instead of killing us
    struct rlimit rl = {limit, limit};
    setrlimit(RLIMIT_FSIZE, &rl);
  });
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_EQ(Lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("file size limit reached writing " + out_ + ".partial/model.safetensors"),
            std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out_));
  CliResult again = Convert();
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(Resumed(again.err), 16) << again.err;  // every block was journaled before the fault
  ExpectSameAsRef(out_);
}

TEST_F(ConvertCli, E6ReadOnlyOutputDirectoryIsExit4BeforeWritingAnything) {
  // Root ignores directory permissions, so as root use a directory nobody can create entries in.
  std::string ro = dir_ + "/ro";
  if (geteuid() == 0) {
    ro = "/sys";
  } else {
    fs::create_directories(ro);
    fs::permissions(ro, fs::perms::owner_read | fs::perms::owner_exec);
  }
  out_ = ro + "/store";
  CliResult r = Convert();
  EXPECT_EQ(r.exit_code, 4) << r.err;
  EXPECT_EQ(Lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find(out_ + ".partial: cannot create"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out_ + ".partial"));
  EXPECT_FALSE(fs::exists(out_));
}

TEST_F(ConvertCli, E7ForceReplacesACompleteStore) {
  CliResult first = RunCli({"convert", "--quiet", "--model", Fixture("tied"), "--out", out_}, dir_);
  ASSERT_EQ(first.exit_code, 0) << first.err;
  const std::string tied_bin = Slurp(out_ + "/experts.bin");
  CliResult refused = Convert();
  EXPECT_EQ(refused.exit_code, 2) << refused.err;
  EXPECT_NE(refused.err.find("already exists"), std::string::npos);
  EXPECT_TRUE(Slurp(out_ + "/experts.bin") == tied_bin);
  CliResult forced = Convert({"--force"});
  ASSERT_EQ(forced.exit_code, 0) << forced.err;
  ExpectSameAsRef(out_);
  EXPECT_FALSE(fs::exists(out_ + ".partial"));
}

TEST_F(ConvertCli, E11UnsupportedExpertDtypeIsExit7BeforeWritingAnything) {
  // A copy of the fixture whose expert tensors claim I16 (same bytes per element as BF16; the
  // header keeps its length: "BF16" → "I16" plus a space).
  const std::string model = dir_ + "/i16";
  fs::copy(Fixture("base"), model, fs::copy_options::recursive);
  int changed = 0;
  for (const auto& e : fs::directory_iterator(model)) {
    if (e.path().extension() != ".safetensors") continue;
    std::string b = Slurp(e.path());
    uint64_t n = 0;
    std::memcpy(&n, b.data(), 8);
    std::string header = b.substr(8, n);
    if (header.find(".mlp.experts.") == std::string::npos) continue;
    for (size_t p; (p = header.find("\"dtype\":\"BF16\"")) != std::string::npos; ++changed) {
      header.replace(p, 14, "\"dtype\":\"I16\" ");
    }
    b.replace(8, n, header);
    std::ofstream(e.path(), std::ios::binary | std::ios::trunc) << b;
  }
  ASSERT_GT(changed, 0);
  CliResult r = RunCli({"convert", "--quiet", "--model", model, "--out", out_}, dir_);
  EXPECT_EQ(r.exit_code, 7) << r.err;
  EXPECT_EQ(Lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("dtype I16 unsupported"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out_));
  EXPECT_FALSE(fs::exists(out_ + ".partial")) << "something was written before the refusal";
}

}  // namespace
}  // namespace moe
