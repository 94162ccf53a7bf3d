// SPDX-License-Identifier: Apache-2.0
// Expert-store reader faults (bad-inputs.md §F): a store truncated while open (F7: the read fails
// with "file changed or truncated while in use", no SIGBUS), deleted while open (F16: the engine
// keeps running on its open fds, same logits), experts.bin from another model with the same
// geometry (F2: exit 3), and a tiny fd limit (F15: exit 5).
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "../e2e/cli_runner.h"
#include "experts/expert_store.h"
#include "experts/store_format.h"
#include "formats/hf_config.h"
#include "streaming_fixture.h"

namespace moe {
namespace {

namespace fs = std::filesystem;
using streaming::ModelDir;

class StoreReaderFaults : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/moe_reader_faults_XXXXXX";
    dir_ = mkdtemp(tmpl);
    store_ = Convert(ModelDir("base"), "store");
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Convert(const std::string& model, const std::string& name) {
    const std::string out = dir_ + "/" + name;
    auto r = testing::RunCli({"convert", "--quiet", "--model", model, "--out", out}, dir_);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return out;
  }
  Result<std::unique_ptr<ExpertSource>> Open(const std::string& store, IoMode io) {
    auto cfg = LoadHfConfig(store);
    if (!cfg.ok()) return cfg.status();
    ExpertGeometry g;
    g.hidden = static_cast<uint64_t>(cfg->hidden_size);
    g.intermediate = static_cast<uint64_t>(cfg->moe_intermediate_size);
    StoreOpenOptions so;
    so.io = io;
    return OpenExpertStore(store, g, cfg->num_hidden_layers, cfg->num_experts, so);
  }

  std::string dir_, store_;
};

TEST_F(StoreReaderFaults, F7TruncatedWhileOpenFailsTheReadWithAClearError) {
  for (IoMode io : {IoMode::kBuffered, IoMode::kAuto}) {
    const std::string store = Convert(ModelDir("base"), io == IoMode::kAuto ? "f7a" : "f7b");
    auto src = Open(store, io);
    ASSERT_TRUE(src.ok()) << src.status().message();
    const ExpertSource& s = **src;
    int64_t last_layer = -1;
    for (int64_t l = 0; l < s.n_layers(); ++l) last_layer = s.has_experts(l) ? l : last_layer;
    const int64_t last_expert = s.n_experts() - 1;
    void* buf = std::aligned_alloc(4096, s.dst_bytes());
    ASSERT_TRUE(s.Read(last_layer, last_expert, buf).ok());
    // Cut the file after the first block, while it is open.
    fs::resize_file(store + "/experts.bin", store::kBlocksOffset + s.dst_bytes());
    int64_t first_layer = 0;
    while (!s.has_experts(first_layer)) ++first_layer;
    EXPECT_TRUE(s.Read(first_layer, 0, buf).ok()) << "a block before the cut is still readable";
    Status st = s.Read(last_layer, last_expert, buf);
    std::free(buf);
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(ExitCodeFor(st.code()), 4);
    EXPECT_NE(st.message().find(fmt::format("layer {} expert {}", last_layer, last_expert)),
              std::string::npos) << st.message();
    EXPECT_NE(st.message().find(store + "/experts.bin: offset "), std::string::npos);
    EXPECT_NE(st.message().find("file changed or truncated while in use"), std::string::npos)
        << st.message();
  }
}

// F7 for HF shards, read through the page cache and with O_DIRECT (whose reads cover whole
// 4 KiB blocks, so a cut inside the last one must still be caught).
TEST_F(StoreReaderFaults, F7ShardTruncatedWhileOpenFailsTheReadWithAClearError) {
  for (const char* io : {"buffered", "direct"}) {
    const std::string model = dir_ + "/hf_" + io;
    fs::copy(ModelDir("base"), model, fs::copy_options::recursive);
    EngineOptions o;
    o.model_dir = model;
    o.io_mode = io;
    o.expert_cache = "1M";
    o.cache_fill = false;
    auto e = Engine::Open(o);
    if (!e.ok() && std::string(io) == "direct") {
      EXPECT_NE(e.status().message().find("--io direct: cannot open with O_DIRECT"),
                std::string::npos) << e.status().message();
      continue;  // this file system refuses O_DIRECT
    }
    ASSERT_TRUE(e.ok()) << e.status().message();
    const ExpertSource& s = (*e)->expert_source();
    EXPECT_EQ(s.format().find("O_DIRECT") != std::string::npos, std::string(io) == "direct");
    int64_t last_layer = -1;
    for (int64_t l = 0; l < s.n_layers(); ++l) last_layer = s.has_experts(l) ? l : last_layer;
    const int64_t last_expert = s.n_experts() - 1;
    std::vector<char> buf(s.dst_bytes());
    ASSERT_TRUE(s.Read(last_layer, last_expert, buf.data()).ok());
    // Cut every shard by one byte: whichever holds the last expert, its last tensor is short.
    for (const auto& f : fs::directory_iterator(model)) {
      if (f.path().extension() == ".safetensors") fs::resize_file(f, fs::file_size(f) - 1);
    }
    int64_t shortened = 0;  // experts whose read reaches a shard's (new) end
    for (int64_t l = 0; l < s.n_layers(); ++l) {
      for (int64_t x = 0; s.has_experts(l) && x < s.n_experts(); ++x) {
        const Status st = s.Read(l, x, buf.data());
        if (st.ok()) continue;
        ++shortened;
        EXPECT_EQ(ExitCodeFor(st.code()), 4) << st.message();
        EXPECT_NE(st.message().find(fmt::format("layer {} expert {}", l, x)), std::string::npos)
            << st.message();
        EXPECT_NE(st.message().find(model + "/model-"), std::string::npos) << st.message();
        EXPECT_NE(st.message().find("file changed or truncated while in use"), std::string::npos)
            << st.message();
      }
    }
    EXPECT_GE(shortened, 1) << io;
  }
}

TEST_F(StoreReaderFaults, F16DeletedWhileOpenKeepsServingThroughTheOpenFds) {
  EngineOptions o;
  o.model_dir = store_;
  o.expert_cache = std::to_string(2 * 4 * 12288);  // 8 slots of 12 KiB: experts keep streaming
  auto e = Engine::Open(o);
  ASSERT_TRUE(e.ok()) << e.status().message();
  const std::vector<int32_t> prompt = streaming::Prompt(ModelDir("base"));
  auto src = Open(store_, IoMode::kAuto);  // a second reader: every block is read from disk
  ASSERT_TRUE(src.ok()) << src.status().message();
  const std::vector<float> before = streaming::RunLogits(**e, prompt, 1, true);
  fs::remove_all(store_);
  ASSERT_FALSE(fs::exists(store_));
  const std::vector<float> after = streaming::RunLogits(**e, prompt, 1, true);
  ASSERT_EQ(before.size(), after.size());
  EXPECT_EQ(0, std::memcmp(before.data(), after.data(), before.size() * sizeof(float)));
  auto n = VerifyExpertStore(**src);
  ASSERT_TRUE(n.ok()) << n.status().message();
  EXPECT_EQ(*n, 16u);
}

TEST_F(StoreReaderFaults, F2ExpertsFromAnotherModelWithTheSameGeometryAreRefused) {
  // Another model of the same geometry: the base fixture with a different config.json value
  // that does not change any shape.
  const std::string other_model = dir_ + "/other_model";
  fs::copy(ModelDir("base"), other_model, fs::copy_options::recursive);
  {
    std::ifstream in(other_model + "/config.json");
    std::string cfg((std::istreambuf_iterator<char>(in)), {});
    const size_t p = cfg.find("\"initializer_range\": 0.02");
    ASSERT_NE(p, std::string::npos);
    cfg.replace(p, 25, "\"initializer_range\": 0.03");
    std::ofstream(other_model + "/config.json", std::ios::trunc) << cfg;
  }
  const std::string other = Convert(other_model, "other");
  ASSERT_TRUE(Open(other, IoMode::kBuffered).ok());
  ASSERT_TRUE(Open(store_, IoMode::kBuffered).ok());
  fs::copy_file(other + "/experts.bin", store_ + "/experts.bin",
                fs::copy_options::overwrite_existing);
  auto mixed = Open(store_, IoMode::kBuffered);
  ASSERT_FALSE(mixed.ok());
  EXPECT_EQ(ExitCodeFor(mixed.status().code()), 3);
  const std::string& m = mixed.status().message();
  EXPECT_NE(m.find(store_ + "/experts.bin: converted from a different model"), std::string::npos)
      << m;
  auto r = testing::RunCli({"convert", "--verify", store_}, dir_);
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("converted from a different model"), std::string::npos) << r.err;
}

// Every fd limit from 4 (stdin/stdout/stderr and one for the dynamic loader, which needs one to
// start the binary at all) to 16, for a store and for the 11-shard HF folder: either the run
// succeeds or it exits 5 with one line saying to raise ulimit -n.
TEST_F(StoreReaderFaults, F15TinyFdLimitIsExit5) {
#if defined(__SANITIZE_ADDRESS__)
  // UBSan's vptr check needs a free fd (it reads /proc/self/maps, and loads suppressions lazily)
  // to validate a type; with every fd in use it reports "invalid vptr" on valid objects.
  GTEST_SKIP() << "sanitizer runtimes need free fds; this case runs in the release build";
#endif
  int refused = 0;
  for (const std::string& model : {store_, ModelDir("base")}) {
    for (rlim_t n = 4; n <= 16; ++n) {
      SCOPED_TRACE(model + " with RLIMIT_NOFILE " + std::to_string(n));
      auto r = testing::RunCli({"generate", "--model", model, "--expert-cache", "1M", "--tokens",
                                "1,2,3", "-n", "2", "--ignore-eos"},
                               dir_, "/dev/null", [n] {
                                 for (int fd = 3; fd < 64; ++fd) close(fd);  // RunCli's leftovers
                                 struct rlimit rl = {n, n};
                                 setrlimit(RLIMIT_NOFILE, &rl);
                               });
      if (r.exit_code == 0) continue;
      ++refused;
      EXPECT_EQ(r.exit_code, 5) << r.err;
      EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
      EXPECT_NE(r.err.find("(raise ulimit -n)"), std::string::npos) << r.err;
    }
  }
  EXPECT_GT(refused, 0) << "no limit was small enough to refuse";
}

}  // namespace
}  // namespace moe
