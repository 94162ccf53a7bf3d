// SPDX-License-Identifier: Apache-2.0
// The converted expert store: same bits as the HF shards for every fixture and budget, corrupt /
// swapped / truncated / incomplete stores refused with errors naming the block, and I/O faults
// injected through the PreadFn hook (EIO delivered, EINTR and short reads retried).
#include <gtest/gtest.h>
#include <unistd.h>
#include <xxhash.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "experts/expert_cache.h"
#include "experts/expert_store.h"
#include "experts/store_format.h"
#include "experts/store_file.h"
#include "streaming_fixture.h"
#include "util/checked_math.h"

namespace moe {
namespace {

namespace fs = std::filesystem;
using streaming::ModelDir;
using streaming::Prompt;
using streaming::RunLogits;

std::string Convert(const std::string& fixture, const std::string& tag,
                    const std::string& extra = "") {
  const std::string out = std::string(MOE_BINARY_DIR) + "/test_stores/" + fixture + "-" + tag +
                          "-" + std::to_string(::getpid());
  fs::remove_all(out);
  fs::remove_all(out + ".partial");
  fs::create_directories(fs::path(out).parent_path());
  const std::string cmd = std::string(MOESTREAM_BIN_PATH) + " convert --quiet --model " +
                          ModelDir(fixture) + " --out " + out + extra;
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  return out;
}

std::vector<char> Slurp(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}
void Spit(const std::string& p, const std::vector<char>& d) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(d.data(), static_cast<std::streamsize>(d.size()));
}

class StoreFixtureTest : public ::testing::TestWithParam<std::string> {};

TEST_P(StoreFixtureTest, StoreIsBitIdenticalToHfShardsAtEveryBudget) {
  const std::string store = Convert(GetParam(), "bits");
  EngineOptions ro;
  ro.model_dir = ModelDir(GetParam());
  auto hf = Engine::Open(ro);
  ASSERT_TRUE(hf.ok()) << hf.status().message();
  const std::vector<int32_t> prompt = Prompt(ro.model_dir);
  const std::vector<float> want = RunLogits(**hf, prompt, 32, false);
  ro.model_dir = store;
  auto res = Engine::Open(ro);
  ASSERT_TRUE(res.ok()) << res.status().message();
  EXPECT_EQ(0, std::memcmp(RunLogits(**res, prompt, 32, false).data(), want.data(), want.size() * 4));
  const ExpertSource& src = (*res)->expert_source();
  const uint64_t slot = ExpertCache::SlotBytes(src);
  int64_t n_total = 0;
  for (int64_t l = 0; l < src.n_layers(); ++l) n_total += src.has_experts(l) ? src.n_experts() : 0;
  for (int64_t n = (*res)->top_k(); n <= n_total; ++n) {
    for (const char* io : {"direct", "buffered"}) {
      EngineOptions o = ro;
      o.expert_cache = std::to_string(n * static_cast<int64_t>(slot));
      o.io_mode = io;
      auto e = Engine::Open(o);
      ASSERT_TRUE(e.ok()) << e.status().message();
      const std::vector<float> got = RunLogits(**e, prompt, 3, false);
      EXPECT_EQ(0, std::memcmp(got.data(), want.data(), want.size() * 4)) << n << " " << io;
    }
  }
  // Deterministic: a second conversion is byte-identical, file by file.
  const std::string again = Convert(GetParam(), "again");
  for (const auto& ent : fs::directory_iterator(store)) {
    EXPECT_EQ(Slurp(ent.path().string()), Slurp(again + "/" + ent.path().filename().string()))
        << ent.path();
  }
  EXPECT_EQ(std::distance(fs::directory_iterator(store), {}),
            std::distance(fs::directory_iterator(again), {}));
  fs::remove_all(store);
  fs::remove_all(again);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, StoreFixtureTest,
                         ::testing::Values("base", "tied", "mha_yarn", "omni", "fused", "fused_t"));

struct Opened {
  std::unique_ptr<Engine> hf;
  std::unique_ptr<ExpertSource> store;
};

Result<std::unique_ptr<ExpertSource>> OpenStore(const std::string& dir, const Engine& hf,
                                                PreadFn fn = nullptr, IoMode io = IoMode::kAuto,
                                                VerifyReads verify = VerifyReads::kEvery) {
  StoreOpenOptions so;
  so.pread_fn = fn;
  so.io = io;
  so.verify = verify;
  return OpenExpertStore(dir, hf.expert_source().geometry(), hf.config().num_hidden_layers,
                         hf.config().num_experts, so);
}

std::unique_ptr<Engine> OpenHf(const std::string& fixture) {
  EngineOptions o;
  o.model_dir = ModelDir(fixture);
  auto e = Engine::Open(o);
  EXPECT_TRUE(e.ok());
  return std::move(e).value();
}

// The block of (layer, expert) as a store of geometry `g` holds it: the HF block, row-major, or
// with every matrix that has a tile shape moved by the documented formulas
// (docs/expert_store_format.md, written out here rather than calling kernels::TileMatrix).
std::vector<char> AsStored(const Engine& hf, int64_t layer, int64_t expert,
                           const ExpertGeometry& g) {
  std::vector<char> rows(g.block_bytes());
  EXPECT_TRUE(hf.expert_source().Read(layer, expert, rows.data()).ok());
  if (!g.tiled) return rows;
  std::vector<char> out(rows.size());
  ExpertGeometry flat = g;
  flat.tiled = false;
  const ExpertView v = MakeExpertView(flat, rows.data());
  for (const kernels::WeightView* m : {&v.gate, &v.up, &v.down}) {
    const char* src = static_cast<const char*>(m->data);
    char* dst = out.data() + (src - rows.data());
    const bool q = kernels::IsQuantized(m->type);
    const uint64_t mbytes = kernels::WeightMatrixBytes(m->type, m->rows, m->cols);
    if (m->rows % 8 != 0 || (!q && m->cols % 16 != 0)) {
      std::memcpy(dst, src, mbytes);
      continue;
    }
    // A chunk: 16 values, or one quantized block; chunk k of row r goes to
    // (r / 8) · 8 · row_bytes + k · 8 · chunk + (r % 8) · chunk.
    const uint64_t chunk = q ? kernels::QuantBlockBytes(m->type) : 16 * kernels::WeightTypeBytes(m->type);
    const uint64_t row_bytes = mbytes / m->rows;
    for (uint64_t r = 0; r < m->rows; ++r) {
      for (uint64_t k = 0; k < row_bytes / chunk; ++k) {
        std::memcpy(dst + (r / 8) * 8 * row_bytes + k * 8 * chunk + (r % 8) * chunk,
                    src + r * row_bytes + k * chunk, chunk);
      }
    }
  }
  return out;
}

// A fresh store of the base fixture for a test to damage: its folder, the HF model it was
// converted from, and experts.bin's path and original bytes.
struct StoreToDamage {
  explicit StoreToDamage(const std::string& tag)
      : store(Convert("base", tag)), hf(OpenHf("base")), bin(store + "/experts.bin"),
        bytes(Slurp(bin)) {}
  std::string store;
  std::unique_ptr<Engine> hf;
  std::string bin;
  std::vector<char> bytes;
};

int64_t FirstMoeLayer(const ExpertSource& s) {
  for (int64_t l = 0; l < s.n_layers(); ++l) {
    if (s.has_experts(l)) return l;
  }
  return -1;
}

TEST(ExpertStoreTest, FlippedBitIsAnIntegrityErrorNamingTheBlock) {
  StoreToDamage d("flip");
  auto& [store, hf, bin, bytes] = d;
  bytes[store::kBlocksOffset + 1000] ^= 0x10;  // first block: first MoE layer, expert 0
  Spit(bin, bytes);
  auto src = OpenStore(store, *hf);
  ASSERT_TRUE(src.ok()) << src.status().message();
  const int64_t l = FirstMoeLayer(**src);
  std::vector<char> buf((*src)->dst_bytes());
  Status st = (*src)->Read(l, 0, buf.data());
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), StatusCode::kIntegrity);
  EXPECT_NE(st.message().find(fmt::format("layer {} expert 0", l)), std::string::npos)
      << st.message();
  EXPECT_TRUE((*src)->Read(l, 1, buf.data()).ok());
  // The cache never serves it: the wait gets the error.
  ExpertCacheOptions co;
  co.budget_bytes = 1 << 20;
  co.top_k = 1;
  auto cache = ExpertCache::Create(**src, co);
  ASSERT_TRUE(cache.ok());
  auto prov = (*cache)->NewProvider();
  const std::vector<int32_t> e = {0};
  ASSERT_TRUE(prov->Begin(l, e).ok());
  auto v = prov->Wait(0);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), StatusCode::kIntegrity);
  prov->End();
  // The CLI in resident mode reports it with exit code 6.
  const std::string cmd = std::string(MOESTREAM_BIN_PATH) + " eval --model " + store +
                          " --tokens 1,2 --logits-out /dev/null 2>/dev/null";
  EXPECT_EQ(WEXITSTATUS(std::system(cmd.c_str())), 6);
  fs::remove_all(store);
}

// --verify-reads: `first` hashes a block until it has matched once, then skips the hash on its
// re-reads; `every` hashes each read. Both catch a block that is corrupt on disk at its first
// read, and neither ever marks a block that failed. A store is damaged under two open sources
// (the file is rewritten in place, so both read the new bytes): a block already checked passes
// unhashed in `first` mode and fails in `every` mode; a block never read before fails in both.
TEST(ExpertStoreTest, FirstReadModeHashesEachBlockOnceEveryModeEachRead) {
  StoreToDamage d("verify_first");
  auto& [store, hf, bin, bytes] = d;
  auto first = OpenStore(store, *hf, nullptr, IoMode::kAuto, VerifyReads::kFirst);
  auto every = OpenStore(store, *hf, nullptr, IoMode::kAuto, VerifyReads::kEvery);
  ASSERT_TRUE(first.ok() && every.ok());
  ExpertSource& f = **first;
  ExpertSource& e = **every;
  const int64_t l = FirstMoeLayer(f);
  std::vector<char> buf(f.dst_bytes());
  for (int rep = 0; rep < 3; ++rep) {
    ASSERT_TRUE(f.Read(l, 0, buf.data()).ok());
    ASSERT_TRUE(e.Read(l, 0, buf.data()).ok());
  }
  EXPECT_EQ(f.blocks_hashed(), 1u);
  EXPECT_EQ(e.blocks_hashed(), 3u);
  // Damage block (l, 0), read and checked above, and block (l, 1), never read.
  const uint64_t stride = f.dst_bytes();
  bytes[store::kBlocksOffset + 1000] ^= 0x10;
  bytes[store::kBlocksOffset + stride + 1000] ^= 0x10;
  Spit(bin, bytes);
  EXPECT_TRUE(f.Read(l, 0, buf.data()).ok());  // checked once already: not hashed again
  EXPECT_EQ(f.blocks_hashed(), 1u);
  EXPECT_EQ(e.Read(l, 0, buf.data()).code(), StatusCode::kIntegrity);
  for (int rep = 0; rep < 2; ++rep) {  // a failed block is hashed (and refused) on every read
    EXPECT_EQ(f.Read(l, 1, buf.data()).code(), StatusCode::kIntegrity);
    EXPECT_EQ(e.Read(l, 1, buf.data()).code(), StatusCode::kIntegrity);
  }
  EXPECT_EQ(f.blocks_hashed(), 3u);
  EXPECT_EQ(e.blocks_hashed(), 6u);
  EXPECT_EQ(ParseVerifyReads("first").value(), VerifyReads::kFirst);
  EXPECT_EQ(ParseVerifyReads("every").value(), VerifyReads::kEvery);
  EXPECT_EQ(ParseVerifyReads("never").status().code(), StatusCode::kUsage);
  fs::remove_all(store);
}

TEST(ExpertStoreTest, SwappedBlocksAreDetected) {
  StoreToDamage d("swap");
  auto& [store, hf, bin, bytes] = d;
  auto src0 = OpenStore(store, *hf);
  ASSERT_TRUE(src0.ok());
  const uint64_t stride = (*src0)->dst_bytes();
  src0.value().reset();
  std::swap_ranges(bytes.begin() + store::kBlocksOffset,
                   bytes.begin() + static_cast<ptrdiff_t>(store::kBlocksOffset + stride),
                   bytes.begin() + static_cast<ptrdiff_t>(store::kBlocksOffset + stride));
  Spit(bin, bytes);
  auto src = OpenStore(store, *hf);
  ASSERT_TRUE(src.ok());
  const int64_t l = FirstMoeLayer(**src);
  std::vector<char> buf(stride);
  EXPECT_EQ((*src)->Read(l, 0, buf.data()).code(), StatusCode::kIntegrity);
  EXPECT_EQ((*src)->Read(l, 1, buf.data()).code(), StatusCode::kIntegrity);
  auto verify = VerifyExpertStore(**src);
  EXPECT_EQ(verify.status().code(), StatusCode::kIntegrity);
  fs::remove_all(store);
}

TEST(ExpertStoreTest, TruncatedOrIncompleteStoresAreRefused) {
  StoreToDamage d("trunc");
  auto& [store, hf, bin, bytes] = d;
  Spit(bin, std::vector<char>(bytes.begin(), bytes.end() - 100));
  auto t = OpenStore(store, *hf);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kIntegrity) << t.status().message();
  Spit(bin, std::vector<char>(bytes.begin(), bytes.begin() + 5000));
  EXPECT_FALSE(OpenStore(store, *hf).ok());
  Spit(bin, bytes);
  ASSERT_TRUE(OpenStore(store, *hf).ok());
  fs::remove(store + "/moestream-store.json");
  auto m = OpenStore(store, *hf);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kIntegrity);
  EXPECT_NE(m.status().message().find("incomplete store"), std::string::npos);
  fs::remove_all(store);
}

// What a store's file says about itself, read straight from experts.bin.
// Version 3 (the default) may hold tiled blocks (`--store-layout tiles`), version 2 row-major
// ones with XXH3 hashes, `--store-version 1` the old format (xxHash64) for older readers. Each
// block's stored hash is recomputed here with the xxhash library's own functions (not the
// store's code); versions 1 and 2 hold the same block bytes, version 3 tiled holds them moved as
// the format says (AsStored), a version 3 store with `--store-layout rows` the same bytes as
// version 2; all verify, and a flipped bit is caught.
TEST(ExpertStoreTest, AllStoreVersionsHashEveryBlockAndVerify) {
  const std::string v3 = Convert("base", "v3", " --store-layout tiles");
  const std::string v3r = Convert("base", "v3r", " --store-layout rows");
  const std::string v2 = Convert("base", "v2", " --store-version 2");
  const std::string v1 = Convert("base", "v1", " --store-version 1");
  auto hf = OpenHf("base");
  const testing::StoreFile f3 = testing::ReadStoreFile(v3), f3r = testing::ReadStoreFile(v3r),
                           f2 = testing::ReadStoreFile(v2), f1 = testing::ReadStoreFile(v1);
  EXPECT_EQ(f3.h.version, 3u);
  EXPECT_EQ(f3.h.header_bytes, 112u);
  EXPECT_EQ(f3.h.layout, static_cast<uint32_t>(store::StoreLayout::kTiles));
  EXPECT_EQ(f3r.h.layout, static_cast<uint32_t>(store::StoreLayout::kRows));
  EXPECT_EQ(f2.h.version, 2u);
  EXPECT_EQ(f2.h.header_bytes, store::kHeaderBytesV2);
  EXPECT_EQ(f2.h.block_hash, static_cast<uint32_t>(store::BlockHash::kXxh3));
  EXPECT_EQ(f1.h.version, 1u);
  EXPECT_EQ(f1.h.block_hash, 0u);
  ASSERT_EQ(f1.index.size(), f2.index.size());
  ASSERT_EQ(f3.index.size(), f2.index.size());
  ASSERT_GT(f2.index.size(), 0u);
  ExpertGeometry tiled_g = hf->expert_source().geometry();
  tiled_g.tiled = true;
  for (size_t i = 0; i < f2.index.size(); ++i) {
    const store::IndexEntry& a = f2.index[i];
    const store::IndexEntry& b = f1.index[i];
    const store::IndexEntry& c = f3.index[i];
    ASSERT_EQ(a.offset, b.offset);
    ASSERT_EQ(a.offset, c.offset);
    const char* block2 = f2.bytes.data() + a.offset;
    const char* block1 = f1.bytes.data() + b.offset;
    const char* block3 = f3.bytes.data() + c.offset;
    ASSERT_EQ(std::memcmp(block1, block2, a.size), 0) << "block " << i;
    ASSERT_EQ(std::memcmp(f3r.bytes.data() + f3r.index[i].offset, block2, a.size), 0) << i;
    const std::vector<char> tiled = AsStored(*hf, a.layer, a.expert, tiled_g);
    ASSERT_EQ(std::memcmp(block3, tiled.data(), c.size), 0) << "block " << i;
    ASSERT_NE(std::memcmp(block3, block2, c.size), 0) << "block " << i;
    const uint64_t seed = store::BlockSeed(f2.h.model_id, a.layer, a.expert);
    EXPECT_EQ(a.hash, XXH3_64bits_withSeed(block2, a.size, seed)) << "block " << i;
    EXPECT_EQ(c.hash, XXH3_64bits_withSeed(block3, c.size, seed)) << "block " << i;
    EXPECT_EQ(b.hash, XXH64(block1, b.size, seed)) << "block " << i;
    EXPECT_NE(a.hash, b.hash);
  }
  const std::pair<std::string, std::string> formats[] = {
      {v1, "store v1 (xxh64 block checksums)"},
      {v2, "store v2 (xxh3-64 block checksums)"},
      {v3r, "store v3 (xxh3-64 block checksums)"},
      {v3, "store v3 (xxh3-64 block checksums, tiled blocks)"}};
  for (const auto& [store, format] : formats) {
    auto src = OpenStore(store, *hf);
    ASSERT_TRUE(src.ok()) << src.status().message();
    EXPECT_EQ((*src)->format(), format);
    EXPECT_EQ((*src)->geometry().tiled, store == v3);
    auto n = VerifyExpertStore(**src);
    ASSERT_TRUE(n.ok()) << n.status().message();
    EXPECT_EQ(*n, f2.index.size());
  }
  // A flipped bit in the version 1 store: the CLI's full verify exits 6 naming the block.
  std::vector<char> bytes(f1.bytes.begin(), f1.bytes.end());
  bytes[f1.index[0].offset + 17] ^= 0x01;
  Spit(v1 + "/experts.bin", bytes);
  auto src = OpenStore(v1, *hf);
  ASSERT_TRUE(src.ok());
  std::vector<char> buf((*src)->dst_bytes());
  Status st = (*src)->Read(f1.index[0].layer, f1.index[0].expert, buf.data());
  EXPECT_EQ(st.code(), StatusCode::kIntegrity) << st.message();
  EXPECT_NE(st.message().find("checksum mismatch"), std::string::npos) << st.message();
  const std::string verify = std::string(MOESTREAM_BIN_PATH) + " convert --verify " + v1 +
                             " >/dev/null 2>&1";
  EXPECT_EQ(WEXITSTATUS(std::system(verify.c_str())), 6);
  for (const std::string& d : {v1, v2, v3, v3r}) fs::remove_all(d);
}

// A tiled store decodes the same logits as the HF shards, resident and streamed through a
// cache smaller than one token's experts (the engine reads the blocks as tiled views).
TEST(ExpertStoreTest, TiledStoreGivesTheSameLogitsAsTheShards) {
  const std::string store = Convert("base", "tiles", " --store-layout tiles");
  EngineOptions o;
  o.model_dir = ModelDir("base");
  const std::vector<int32_t> prompt = Prompt(o.model_dir);
  auto hf = Engine::Open(o);
  ASSERT_TRUE(hf.ok()) << hf.status().message();
  const auto want = RunLogits(**hf, prompt, 32, false);
  for (const char* budget : {"", "262144"}) {
    EngineOptions so;
    so.model_dir = store;
    so.expert_cache = budget;
    auto e = Engine::Open(so);
    ASSERT_TRUE(e.ok()) << e.status().message();
    const auto got = RunLogits(**e, prompt, 32, false);
    ASSERT_EQ(got.size(), want.size());
    EXPECT_EQ(0, std::memcmp(got.data(), want.data(), want.size() * 4)) << "budget " << budget;
  }
  fs::remove_all(store);
}

TEST(ExpertStoreTest, UnknownStoreVersionToWriteIsAUsageError) {
  const std::string out = std::string(MOE_BINARY_DIR) + "/test_stores/base-v9-" +
                          std::to_string(::getpid());
  for (const char* v : {"0", "4", "-1", "2 --store-layout tiles"}) {
    const std::string cmd = std::string(MOESTREAM_BIN_PATH) + " convert --quiet --model " +
                            ModelDir("base") + " --out " + out + " --store-version " + v +
                            " 2>/dev/null";
    EXPECT_EQ(WEXITSTATUS(std::system(cmd.c_str())), 2) << v;
    EXPECT_FALSE(fs::exists(out + ".partial")) << v;  // refused before anything is written
    EXPECT_FALSE(fs::exists(out)) << v;
  }
}

// --- Fault injection through the pread hook. ---
std::atomic<int> g_calls{0};
std::atomic<int> g_mode{0};  // 0 pass, 1 EINTR every other call, 2 short reads, 3 EIO, 4 EAGAIN,
                             // 5 stall g_stall_ms before reading
std::atomic<int> g_stall_ms{0};

ssize_t FaultyPread(int fd, void* buf, size_t n, off_t off) {
  const int c = g_calls.fetch_add(1);
  switch (g_mode.load()) {
    case 1:
      if (c % 2 == 0) {
        errno = EINTR;
        return -1;
      }
      break;
    case 2: {
      // Short reads of 4 KiB (O_DIRECT-safe) or 1000 bytes (buffered).
      const size_t cap = (reinterpret_cast<uintptr_t>(buf) % 4096 == 0 && off % 4096 == 0) ? 4096 : 1000;
      return ::pread(fd, buf, std::min(n, cap), off);
    }
    case 3:
      errno = EIO;
      return -1;
    case 4:
      if (c % 3 != 2) {
        errno = EAGAIN;
        return -1;
      }
      break;
    case 5:
      std::this_thread::sleep_for(std::chrono::milliseconds(g_stall_ms.load()));
      break;
  }
  return ::pread(fd, buf, n, off);
}

TEST(ExpertStoreTest, InjectedFaultsAreRetriedOrDelivered) {
  const std::string store = Convert("base", "fault");
  auto hf = OpenHf("base");
  g_mode = 0;
  auto src = OpenStore(store, *hf, &FaultyPread);
  ASSERT_TRUE(src.ok()) << src.status().message();
  const int64_t l = FirstMoeLayer(**src);
  const uint64_t bytes = (*src)->geometry().block_bytes();
  const std::vector<char> want = AsStored(*hf, l, 2, (*src)->geometry());
  for (int mode : {1, 2, 4}) {
    g_mode = mode;
    for (bool aligned : {true, false}) {
      alignas(4096) static char buf[1 << 20];
      char* dst = aligned ? buf : buf + 64;
      ASSERT_LE((*src)->dst_bytes() + 64, sizeof(buf));
      Status st = (*src)->Read(l, 2, dst);
      ASSERT_TRUE(st.ok()) << "mode " << mode << ": " << st.message();
      EXPECT_EQ(0, std::memcmp(dst, want.data(), bytes)) << "mode " << mode;
    }
  }
  // EIO through the cache: the waiting compute gets the error; no hang; a later read succeeds.
  ExpertCacheOptions co;
  co.budget_bytes = 1 << 20;
  co.top_k = 2;
  co.wait_timeout_ms = 10000;
  auto cache = ExpertCache::Create(**src, co);
  ASSERT_TRUE(cache.ok());
  auto prov = (*cache)->NewProvider();
  const std::vector<int32_t> e = {1, 3};
  g_mode = 3;
  ASSERT_TRUE(prov->Begin(l, e).ok());
  for (size_t i = 0; i < e.size(); ++i) {
    auto v = prov->Wait(i);
    ASSERT_FALSE(v.ok());
    EXPECT_EQ(v.status().code(), StatusCode::kIoError);
    EXPECT_NE(v.status().message().find(fmt::format("layer {} expert {}", l, e[i])),
              std::string::npos) << v.status().message();
  }
  prov->End();
  g_mode = 0;
  ASSERT_TRUE(prov->Begin(l, e).ok());
  auto v = prov->Wait(0);
  ASSERT_TRUE(v.ok()) << v.status().message();
  const std::vector<char> want1 = AsStored(*hf, l, 1, (*src)->geometry());
  EXPECT_EQ(0, std::memcmp(v->gate.data, want1.data(), bytes));
  prov->End();
  EXPECT_EQ((*cache)->Stats().read_errors, 2u);
  fs::remove_all(store);
}

// F12: a read that stalls fails the request waiting on it after --io-timeout-ms with an error
// naming the layer and expert; the request's pins are given back, so once the late reads land
// the two slots of a two-slot cache serve other experts; a cache destroyed while stalled reads
// are in flight waits for them (no hang, no use after free under ASan).
TEST(ExpertStoreTest, F12StalledReadTimesOutAndFreesItsSlots) {
  const std::string store = Convert("base", "stall");
  auto hf = OpenHf("base");
  g_mode = 0;
  auto src = OpenStore(store, *hf, &FaultyPread);
  ASSERT_TRUE(src.ok()) << src.status().message();
  const int64_t l = FirstMoeLayer(**src);
  const uint64_t bytes = (*src)->geometry().block_bytes();
  ExpertCacheOptions co;
  co.top_k = 2;
  co.budget_bytes = 1 << 20;
  co.wait_timeout_ms = 200;
  {
    auto probe = ExpertCache::Create(**src, co);
    ASSERT_TRUE(probe.ok());
    co.budget_bytes = 2 * (*probe)->slot_bytes();  // exactly top_k slots
  }
  constexpr int kStallMs = 1500;
  g_stall_ms = kStallMs;
  {
    auto cache = ExpertCache::Create(**src, co);
    ASSERT_TRUE(cache.ok());
    ASSERT_EQ((*cache)->n_slots(), 2u);
    auto prov = (*cache)->NewProvider();
    const std::vector<int32_t> stalled = {1, 3};
    g_mode = 5;
    ASSERT_TRUE(prov->Begin(l, stalled).ok());
    const auto t0 = std::chrono::steady_clock::now();
    auto v = prov->Wait(0);
    const auto waited_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - t0).count();
    ASSERT_FALSE(v.ok());
    EXPECT_EQ(v.status().code(), StatusCode::kIoError);
    EXPECT_NE(v.status().message().find(fmt::format("layer {} expert 1", l)), std::string::npos)
        << v.status().message();
    EXPECT_NE(v.status().message().find("within 200 ms"), std::string::npos)
        << v.status().message();
    EXPECT_GE(waited_ms, 190);
    EXPECT_LT(waited_ms, kStallMs - 200) << "the wait was not cut short by the timeout";
    prov->End();
    // The reads complete late; then both slots are free for other experts.
    g_mode = 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(kStallMs + 300));
    const std::vector<int32_t> other = {4, 5};
    ASSERT_TRUE(prov->Begin(l, other).ok());
    for (size_t i = 0; i < other.size(); ++i) {
      auto w = prov->Wait(i);
      ASSERT_TRUE(w.ok()) << w.status().message();
      const std::vector<char> want = AsStored(*hf, l, other[i], (*src)->geometry());
      EXPECT_EQ(0, std::memcmp(w->gate.data, want.data(), bytes)) << "expert " << other[i];
    }
    prov->End();
    // Destroyed with stalled reads in flight: returns once they finish.
    g_mode = 5;
    ASSERT_TRUE(prov->Begin(l, stalled).ok());
    prov->End();
    prov.reset();
  }
  g_mode = 0;
  fs::remove_all(store);
}

}  // namespace
}  // namespace moe
