// SPDX-License-Identifier: Apache-2.0
// Converter faults (bad-inputs.md §E) injected through util/file's IoFaultHook: ENOSPC (E2), EIO
// on write and fsync with no fsync retry (E3), EIO and truncation on an input shard (E4),
// short transfers, interrupts (E9), the OUT.partial lock (E8), --force (E7) and simulated power
// loss at every write/fsync (E10). After each fault the final path is untouched and a clean
// rerun produces exactly the bytes of an uninterrupted conversion.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include "experts/expert_store.h"
#include "experts/store_format.h"
#include "experts/store_file.h"
#include "experts/store_writer.h"
#include "fault_hooks.h"
#include "formats/hf_config.h"
#include "model/model_weights.h"
#include "formats/test_files.h"

namespace moe {
namespace {

namespace fs = std::filesystem;
using testing_io::FaultHook;
using testing_io::PowerLossHook;

std::string ModelDir(const std::string& name) {
  return std::string(MOE_SOURCE_DIR) + "/tests/data/models/" + name;
}

using testing::Slurp;

// The model bound the way `moestream convert` binds it (no dense weights loaded).
struct Source {
  explicit Source(const std::string& dir) : dir(dir) {
    auto c = LoadHfConfig(dir);
    EXPECT_TRUE(c.ok()) << c.status().message();
    cfg = *c;
    auto k = Checkpoint::Open(dir);
    EXPECT_TRUE(k.ok()) << k.status().message();
    ckpt = std::make_unique<Checkpoint>(std::move(k).value());
    BindOptions bo;
    bo.load_dense = false;
    auto w = ModelWeights::Bind(cfg, *ckpt, bo);
    EXPECT_TRUE(w.ok()) << w.status().message();
    weights = std::move(w).value();
    ExpertGeometry g;
    g.hidden = static_cast<uint64_t>(cfg.hidden_size);
    g.intermediate = static_cast<uint64_t>(cfg.moe_intermediate_size);
    g.type = ToWeightType(weights->expert_dtype());
    auto src = MakeHfExpertSource(weights->expert_table(), g);
    EXPECT_TRUE(src.ok()) << src.status().message();
    experts = std::move(src).value();
  }
  StoreWriterInput Input(const std::string& out) const {
    StoreWriterInput in;
    in.source_dir = dir;
    in.out_dir = out;
    in.experts = experts.get();
    in.checkpoint = ckpt.get();
    in.dense_tensors = DenseTensorNames(*weights);
    return in;
  }
  std::string dir;
  Qwen3MoeConfig cfg;
  std::unique_ptr<Checkpoint> ckpt;
  std::unique_ptr<ModelWeights> weights;
  std::unique_ptr<ExpertSource> experts;
};

class ConvertFaultsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/moe_convert_faults_XXXXXX";
    scratch_ = mkdtemp(tmpl);
    src_ = std::make_unique<Source>(ModelDir("base"));
    ref_ = scratch_ + "/ref";
    auto r = WriteExpertStore(src_->Input(ref_));
    ASSERT_TRUE(r.ok()) << r.status().message();
    out_ = scratch_ + "/out";
    part_ = out_ + ".partial";
  }
  void TearDown() override {
    SetIoFaultHook(nullptr);
    fs::remove_all(scratch_);
  }
  // Runs the writer with `hook` installed (null: none).
  Result<StoreWriterResult> Run(IoFaultHook* hook, uint64_t slow_us = 0,
                                const std::string& out = "") {
    StoreWriterInput in = src_->Input(out.empty() ? out_ : out);
    in.slow_us_per_block = slow_us;  // > 0: journal after every block
    SetIoFaultHook(hook);
    auto r = WriteExpertStore(in);
    SetIoFaultHook(nullptr);
    return r;
  }
  // Same file names and bytes as the uninterrupted reference.
  void ExpectSameAsRef(const std::string& dir) {
    std::map<std::string, std::string> want, got;
    for (const auto& e : fs::directory_iterator(ref_)) want[e.path().filename()] = Slurp(e.path());
    for (const auto& e : fs::directory_iterator(dir)) got[e.path().filename()] = Slurp(e.path());
    ASSERT_EQ(want.size(), got.size()) << dir;
    for (const auto& [name, bytes] : want) {
      ASSERT_TRUE(got.count(name)) << name;
      EXPECT_TRUE(got[name] == bytes) << dir << "/" << name << " differs from the reference";
    }
  }
  void ExpectVerifies(const std::string& dir) {
    const ExpertGeometry& g = src_->experts->geometry();
    auto s = OpenExpertStore(dir, g, src_->cfg.num_hidden_layers, src_->cfg.num_experts, {});
    ASSERT_TRUE(s.ok()) << s.status().message();
    auto n = VerifyExpertStore(**s);
    ASSERT_TRUE(n.ok()) << n.status().message();
    EXPECT_GT(*n, 0u);
  }
  // A fault was returned: nothing at the final path, the partial output kept for resume.
  void ExpectFinalUntouchedAndResumable() {
    EXPECT_FALSE(fs::exists(out_)) << "a failed conversion left something at the final path";
    EXPECT_TRUE(fs::exists(part_)) << "the partial output was not kept for resume";
    auto again = Run(nullptr);
    ASSERT_TRUE(again.ok()) << again.status().message();
    EXPECT_FALSE(fs::exists(part_));
    ExpectSameAsRef(out_);
  }
  std::string bin() const { return part_ + "/experts.bin"; }

  std::string scratch_, ref_, out_, part_;
  std::unique_ptr<Source> src_;
};

TEST_F(ConvertFaultsTest, E2NoSpaceIsResourceExhaustedNamingTempPathAndResumes) {
  FaultHook hook(IoOp::kWrite, "/experts.bin", 5, ENOSPC);  // the 6th block write
  auto r = Run(&hook, /*slow_us=*/1);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(ExitCodeFor(r.status().code()), 5);
  const std::string& m = r.status().message();
  EXPECT_NE(m.find("no space left writing " + bin()), std::string::npos) << m;
  EXPECT_NE(m.find("need "), std::string::npos) << m;
  EXPECT_NE(m.find(", free "), std::string::npos) << m;
  // Policy: the temp is kept; the 5 blocks journaled before the fault are resumed, not redone.
  auto again = Run(nullptr);
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(again->blocks_resumed, 5u);
  ExpectSameAsRef(out_);
  ExpectVerifies(out_);
}

TEST_F(ConvertFaultsTest, E2NoSpaceOnDenseFileAndOnFsync) {
  for (IoOp op : {IoOp::kWrite, IoOp::kSync}) {
    FaultHook hook(op, "/model.safetensors", 0, ENOSPC);
    auto r = Run(&hook);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted) << r.status().message();
    EXPECT_NE(r.status().message().find(part_ + "/model.safetensors"), std::string::npos);
    ExpectFinalUntouchedAndResumable();
    fs::remove_all(out_);
  }
}

TEST_F(ConvertFaultsTest, E3WriteEioIsIoErrorNamingPathAndOffset) {
  FaultHook hook(IoOp::kWrite, "/experts.bin", 2, EIO);
  auto r = Run(&hook);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(ExitCodeFor(r.status().code()), 4);
  EXPECT_NE(r.status().message().find(bin() + ": offset " + std::to_string(hook.failed_offset())),
            std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("Input/output error"), std::string::npos);
  ExpectFinalUntouchedAndResumable();
}

TEST_F(ConvertFaultsTest, E3FsyncEioIsNeverRetried) {
  // The fsyncs the writer makes: experts.bin data, the journal, dense file, copies, the marker.
  // Fail the first and the last of each file in turn.
  FaultHook count(IoOp::kSync, "", -1, 0);
  ASSERT_TRUE(Run(&count, 1, scratch_ + "/count").ok());
  const std::vector<FaultHook::Call> syncs = count.Calls(IoOp::kSync);
  ASSERT_GE(syncs.size(), 10u);
  std::map<std::string, std::pair<size_t, size_t>> first_last;  // per path
  for (size_t k = 0; k < syncs.size(); ++k) {
    first_last.try_emplace(syncs[k].path, k, k).first->second.second = k;
  }
  std::set<size_t> points;
  for (const auto& [path, fl] : first_last) points.insert({fl.first, fl.second});
  ASSERT_GE(points.size(), 6u);  // experts.bin, journal, dense, copies, marker
  for (size_t k : points) {
    SCOPED_TRACE("fsync #" + std::to_string(k) + " of " + syncs[k].path);
    FaultHook hook(IoOp::kSync, "", static_cast<int>(k), EIO);
    auto r = Run(&hook, 1);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(ExitCodeFor(r.status().code()), 4);
    EXPECT_NE(r.status().message().find("fsync failed"), std::string::npos) << r.status().message();
    // From the failure on, the seam saw exactly one fsync: the failed one, never a retry.
    EXPECT_EQ(hook.CallsFromFailure(IoOp::kSync), 1u);
    ExpectFinalUntouchedAndResumable();
    fs::remove_all(out_);
  }
}

TEST_F(ConvertFaultsTest, E4InputShardEioOrTruncationNamesShardAndOffset) {
  for (int err : {EIO, 0}) {  // 0: the read returns end of file (shard truncated under us)
    FaultHook hook(IoOp::kRead, ".safetensors", 3, err);
    auto r = Run(&hook);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(ExitCodeFor(r.status().code()), 4) << r.status().message();
    const std::string& m = r.status().message();
    EXPECT_NE(m.find(hook.failed_path() + ": offset " + std::to_string(hook.failed_offset())),
              std::string::npos) << m;
    EXPECT_EQ(hook.failed_path().rfind(src_->dir, 0), 0u) << "not an input shard";
    EXPECT_NE(m.find(err ? "Input/output error" : "file changed or truncated"), std::string::npos)
        << m;
    ExpectFinalUntouchedAndResumable();
    fs::remove_all(out_);
  }
}

TEST_F(ConvertFaultsTest, ShortReadsAndShortWritesAreContinued) {
  FaultHook hook(IoOp::kWrite, "", -1, 0);
  hook.CapEveryTransfer(1000);  // every pread and pwrite moves at most 1000 bytes
  auto r = Run(&hook);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_GT(hook.Calls(IoOp::kWrite).size(), hook.Calls(IoOp::kSync).size() * 10);
  ExpectSameAsRef(out_);
}

TEST_F(ConvertFaultsTest, E9CancelStopsAtBlockBoundaryWithJournalFlushed) {
  std::atomic<int> sig{0};
  // The "signal" arrives during the 4th block write; the writer stops before the 5th block.
  FaultHook hook(IoOp::kWrite, "/experts.bin", 3, 0);
  hook.OnMatch([&] { sig = SIGINT; });
  StoreWriterInput in = src_->Input(out_);
  in.cancel_signal = &sig;
  SetIoFaultHook(&hook);
  auto r = WriteExpertStore(in);
  SetIoFaultHook(nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCancelled);
  EXPECT_NE(r.status().message().find("interrupted by signal 2 after 4 of 16 blocks"),
            std::string::npos) << r.status().message();
  EXPECT_EQ(hook.Calls(IoOp::kWrite, "/experts.bin").size(), 4u) << "wrote past the boundary";
  EXPECT_FALSE(fs::exists(out_));
  auto again = Run(nullptr);
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(again->blocks_resumed, 4u) << "the journal was not flushed at the interrupt";
  ExpectSameAsRef(out_);
}

// A partial output's journal holds the hashes of the store version it was started with: a
// resume asking for the other version restarts (no block of the old hash kind is kept), one
// asking for the same version resumes.
TEST_F(ConvertFaultsTest, ResumeKeepsBlocksOnlyOfTheSameStoreVersion) {
  for (const uint32_t resume_version : {store::kVersion, 1u}) {
    std::atomic<int> sig{0};
    FaultHook hook(IoOp::kWrite, "/experts.bin", 3, 0);
    hook.OnMatch([&] { sig = SIGINT; });
    StoreWriterInput in = src_->Input(out_);
    in.cancel_signal = &sig;
    in.store_version = 1;
    SetIoFaultHook(&hook);
    auto r = WriteExpertStore(in);
    SetIoFaultHook(nullptr);
    ASSERT_EQ(r.status().code(), StatusCode::kCancelled) << r.status().message();
    StoreWriterInput again_in = src_->Input(out_);
    again_in.store_version = resume_version;
    auto again = WriteExpertStore(again_in);
    ASSERT_TRUE(again.ok()) << again.status().message();
    if (resume_version == 1) {
      EXPECT_EQ(again->blocks_resumed, 4u);
    } else {
      EXPECT_EQ(again->blocks_resumed, 0u);
      EXPECT_TRUE(again->restarted);
      ExpectSameAsRef(out_);  // the reference is a default (version 2) store
    }
    ExpectVerifies(out_);
    EXPECT_EQ(testing::ReadStoreFile(out_).h.version, resume_version);
    fs::remove_all(out_);
  }
}

TEST_F(ConvertFaultsTest, E8SecondWriterIsRefusedWhileTheLockIsHeld) {
  fs::create_directories(part_);
  std::ofstream(part_ + "/lock") << "4242\n";
  const int fd = ::open(part_.c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
  auto r = Run(nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(ExitCodeFor(r.status().code()), 2);
  EXPECT_NE(r.status().message().find(part_ + ": locked by pid 4242"), std::string::npos)
      << r.status().message();
  EXPECT_EQ(Slurp(part_ + "/lock"), "4242\n") << "the refused writer touched the lock file";
  ::close(fd);  // the holder dies: its stale lock file no longer blocks anyone
  auto again = Run(nullptr);
  ASSERT_TRUE(again.ok()) << again.status().message();
  ExpectSameAsRef(out_);
}

TEST_F(ConvertFaultsTest, E7ForceReplacesOnlyCompleteStoresAndFailuresLeaveTheOldOne) {
  // An existing store of another model at the target.
  Source other(ModelDir("tied"));
  ASSERT_TRUE(WriteExpertStore(other.Input(out_)).ok());
  const std::string old_bin = Slurp(out_ + "/experts.bin");
  auto refused = Run(nullptr);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(ExitCodeFor(refused.status().code()), 2);
  EXPECT_NE(refused.status().message().find("already exists"), std::string::npos);
  StoreWriterInput in = src_->Input(out_);
  in.force = true;
  // A failure late in the conversion (the marker's fsync) leaves the old store as it was.
  FaultHook hook(IoOp::kSync, "/moestream-store.json", 0, EIO);
  SetIoFaultHook(&hook);
  auto failed = WriteExpertStore(in);
  SetIoFaultHook(nullptr);
  ASSERT_FALSE(failed.ok());
  EXPECT_TRUE(Slurp(out_ + "/experts.bin") == old_bin) << "the old store was modified";
  EXPECT_TRUE(IsExpertStore(out_));
  auto r = WriteExpertStore(in);
  ASSERT_TRUE(r.ok()) << r.status().message();
  ExpectSameAsRef(out_);
  EXPECT_FALSE(fs::exists(part_)) << "the replaced store was not removed";
  // --force never deletes something that is not a complete store (no marker file), even one
  // that holds an experts.bin.
  const std::string notstore = scratch_ + "/notstore";
  fs::create_directories(notstore);
  std::ofstream(notstore + "/precious.txt") << "keep";
  std::ofstream(notstore + "/experts.bin") << "not a store";
  in.out_dir = notstore;
  auto bad = WriteExpertStore(in);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(ExitCodeFor(bad.status().code()), 2);
  EXPECT_EQ(Slurp(notstore + "/precious.txt"), "keep");
}

// E10: crash at every write and every fsync, drop what was not yet fsynced (pre-write bytes
// restored and files cut back to their synced size, or the unsynced ranges zeroed), restart: the
// store is byte-identical and verifies. Both journaling rhythms: after every block, and the
// default 64 MiB batches.
TEST_F(ConvertFaultsTest, E10PowerLossAtEveryWriteAndFsyncResumesToTheSameStore) {
  for (int mode = 0; mode < 4; ++mode) {
    const uint64_t slow = mode & 1;
    const bool zero = mode & 2;
    PowerLossHook count(-1);
    ASSERT_TRUE(Run(&count, slow, scratch_ + "/count" + std::to_string(mode)).ok());
    const int n_points = count.points();
    ASSERT_GT(n_points, 20);
    int dropped_total = 0;
    for (int k = 0; k < n_points; ++k) {
      SCOPED_TRACE("slow " + std::to_string(slow) + (zero ? ", zeroed" : ", restored") +
                   ", crash at I/O call " + std::to_string(k) + " of " + std::to_string(n_points));
      PowerLossHook hook(k);
      auto r = Run(&hook, slow);
      ASSERT_FALSE(r.ok());
      dropped_total += hook.DropUnsynced(zero);
      EXPECT_FALSE(fs::exists(out_));
      PowerLossHook no_crash(-1);
      auto again = Run(&no_crash, slow);
      ASSERT_TRUE(again.ok()) << again.status().message();
      ExpectSameAsRef(out_);
      ExpectVerifies(out_);
      fs::remove_all(out_);
    }
    EXPECT_GT(dropped_total, n_points / 2) << "few crash points had unsynced data to drop";
  }
}

}  // namespace
}  // namespace moe
