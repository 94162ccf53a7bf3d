// SPDX-License-Identifier: Apache-2.0
// Checkpoint::Open: single file and sharded index (bad-inputs.md B1-B4, unlisted tensors).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <limits>

#include "formats/safetensors.h"
#include "formats/tensor_check.h"
#include "formats/test_files.h"

namespace moe {
namespace {

namespace fs = std::filesystem;
using testing::BF16Bytes;
using testing::EncodeSafetensors;
using testing::F32Bytes;
using testing::StTensor;
using testing::TempDir;
using testing::WriteFile;

void ExpectError(const Status& s, StatusCode code, std::vector<std::string> parts) {
  EXPECT_EQ(s.code(), code) << s.message();
  for (const std::string& p : parts) {
    EXPECT_NE(s.message().find(p), std::string::npos) << "'" << p << "' not in: " << s.message();
  }
}

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = dir_.path() / "model";
    fs::create_directory(model_);
    shard1_ = {{"model.embed.weight", "BF16", {2, 2}, BF16Bytes({1, 2, 3, 4})},
               {"model.norm.weight", "F32", {2}, F32Bytes({0.5f, -1.0f})}};
    shard2_ = {{"lm_head.weight", "F32", {1, 2}, F32Bytes({8.0f, 9.0f})}};
  }
  void WriteShards() {
    WriteFile(model_ / "model-00001-of-00002.safetensors", EncodeSafetensors(shard1_));
    WriteFile(model_ / "model-00002-of-00002.safetensors", EncodeSafetensors(shard2_));
  }
  // weight_map entries as "name": "shard" JSON pairs.
  void WriteIndex(const std::string& weight_map_body) {
    WriteFile(model_ / "model.safetensors.index.json",
              "{\"metadata\":{\"total_size\":32},\"weight_map\":{" + weight_map_body + "}}");
  }
  std::string GoodMap() const {
    return "\"model.embed.weight\":\"model-00001-of-00002.safetensors\","
           "\"model.norm.weight\":\"model-00001-of-00002.safetensors\","
           "\"lm_head.weight\":\"model-00002-of-00002.safetensors\"";
  }
  Status Open() { return Checkpoint::Open(model_.string()).status(); }

  TempDir dir_;
  fs::path model_;
  std::vector<StTensor> shard1_, shard2_;
};

TEST_F(CheckpointTest, SingleFileRoundTrip) {
  WriteFile(model_ / "model.safetensors", EncodeSafetensors(shard1_));
  Result<Checkpoint> c = Checkpoint::Open(model_.string());
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->n_shards(), 1u);
  EXPECT_EQ(c->Names(), (std::vector<std::string>{"model.embed.weight", "model.norm.weight"}));
  const TensorRef* r = c->Find("model.norm.weight");
  ASSERT_NE(r, nullptr);
  float v[2];
  ASSERT_TRUE(c->Read(*r, v, sizeof(v)).ok());
  EXPECT_EQ(v[0], 0.5f);
  EXPECT_EQ(v[1], -1.0f);
  EXPECT_EQ(c->Read(*r, v, 4).code(), StatusCode::kInternal);
}

TEST_F(CheckpointTest, ShardedRoundTrip) {
  WriteShards();
  WriteIndex(GoodMap());
  Result<Checkpoint> c = Checkpoint::Open(model_.string());
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->n_shards(), 2u);
  EXPECT_EQ(c->Names().size(), 3u);
  const TensorRef* r = c->Find("lm_head.weight");
  ASSERT_NE(r, nullptr);
  EXPECT_NE(r->shard->path().find("model-00002-of-00002"), std::string::npos);
  float v[2];
  ASSERT_TRUE(c->Read(*r, v, sizeof(v)).ok());
  EXPECT_EQ(v[0], 8.0f);
  EXPECT_EQ(v[1], 9.0f);
  uint16_t bf[4];
  const TensorRef* e = c->Find("model.embed.weight");
  ASSERT_TRUE(c->Read(*e, bf, sizeof(bf)).ok());
  EXPECT_EQ(bf[3], 0x4080);  // 4.0 in bf16
}

TEST_F(CheckpointTest, NothingToOpen) {
  ExpectError(Open(), StatusCode::kIoError, {model_.string(), "model.safetensors"});
  ExpectError(Checkpoint::Open((dir_ / "absent").string()).status(), StatusCode::kIoError,
              {"absent"});
}

TEST_F(CheckpointTest, B1MissingShard) {
  WriteFile(model_ / "model-00001-of-00002.safetensors", EncodeSafetensors(shard1_));
  WriteIndex(GoodMap());
  ExpectError(Open(), StatusCode::kIoError,
              {(model_ / "model-00002-of-00002.safetensors").string(), "shard not found"});
}

TEST_F(CheckpointTest, B2TensorNotInItsShard) {
  WriteShards();
  WriteIndex(GoodMap() + ",\"model.extra.weight\":\"model-00002-of-00002.safetensors\"");
  ExpectError(Open(), StatusCode::kInvalidFormat,
              {"model.safetensors.index.json", "tensor 'model.extra.weight'",
               "model-00002-of-00002.safetensors", "does not contain it"});
  // Mapped to the wrong shard.
  WriteIndex(
      "\"model.embed.weight\":\"model-00002-of-00002.safetensors\","
      "\"model.norm.weight\":\"model-00001-of-00002.safetensors\","
      "\"lm_head.weight\":\"model-00002-of-00002.safetensors\"");
  ExpectError(Open(), StatusCode::kInvalidFormat,
              {"tensor 'model.embed.weight'", "does not contain it"});
}

TEST_F(CheckpointTest, B3TensorInTwoShards) {
  shard2_.push_back({"model.norm.weight", "F32", {2}, F32Bytes({1, 1})});
  WriteShards();
  WriteIndex(GoodMap());
  ExpectError(Open(), StatusCode::kInvalidFormat,
              {"tensor 'model.norm.weight'", "duplicate tensor across shards",
               "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"});
}

TEST_F(CheckpointTest, UnlistedTensorInShard) {
  shard2_.push_back({"model.secret", "F32", {1}, F32Bytes({1})});
  WriteShards();
  WriteIndex(GoodMap());
  ExpectError(Open(), StatusCode::kInvalidFormat,
              {"tensor 'model.secret'", "not listed in the index"});
}

TEST_F(CheckpointTest, B4PathEscapes) {
  WriteShards();
  // The outside file exists but is garbage: had it been opened, the error would differ.
  WriteFile(dir_ / "outside.safetensors", "garbage");
  for (const std::string& bad :
       {std::string("../outside.safetensors"), std::string("../../etc/passwd"),
        (dir_ / "outside.safetensors").string(), std::string("sub/../../outside.safetensors")}) {
    WriteIndex(GoodMap() + ",\"x\":\"" + bad + "\"");
    ExpectError(Open(), StatusCode::kInvalidFormat, {"path escapes model directory", bad});
  }
  // Symlink out of the folder.
  fs::create_symlink(dir_ / "outside.safetensors", model_ / "link.safetensors");
  WriteIndex(GoodMap() + ",\"x\":\"link.safetensors\"");
  ExpectError(Open(), StatusCode::kInvalidFormat,
              {"path escapes model directory", "link.safetensors"});
  // Validated before any shard is opened: a garbage in-folder shard listed first is not reached.
  WriteFile(model_ / "a-garbage.safetensors", "garbage");
  WriteIndex("\"y\":\"a-garbage.safetensors\",\"x\":\"../outside.safetensors\"");
  ExpectError(Open(), StatusCode::kInvalidFormat, {"path escapes model directory"});
}

TEST_F(CheckpointTest, SymlinkInsideFolderAndHubCacheLayoutAccepted) {
  // Hugging Face hub cache: snapshots/<rev>/file -> ../../blobs/<hash>.
  fs::path repo = dir_.path() / "models--org--tiny";
  fs::create_directories(repo / "blobs");
  fs::create_directories(repo / "snapshots" / "abc123");
  WriteFile(repo / "blobs" / "deadbeef", EncodeSafetensors(shard1_));
  fs::create_symlink("../../blobs/deadbeef", repo / "snapshots" / "abc123" / "model.safetensors");
  Result<Checkpoint> c = Checkpoint::Open((repo / "snapshots" / "abc123").string());
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->Names().size(), 2u);
}

TEST_F(CheckpointTest, BadIndexJson) {
  WriteShards();
  WriteFile(model_ / "model.safetensors.index.json", "{\"weight_map\": ");
  ExpectError(Open(), StatusCode::kInvalidFormat, {"model.safetensors.index.json", "invalid JSON"});
  WriteFile(model_ / "model.safetensors.index.json", "{\"metadata\":{}}");
  ExpectError(Open(), StatusCode::kInvalidFormat, {"key 'weight_map': missing"});
  WriteFile(model_ / "model.safetensors.index.json", "{\"weight_map\":[]}");
  ExpectError(Open(), StatusCode::kInvalidFormat, {"key 'weight_map': expected object, got array"});
  WriteFile(model_ / "model.safetensors.index.json", "{\"weight_map\":{\"a\":3}}");
  ExpectError(Open(), StatusCode::kInvalidFormat,
              {"key 'weight_map.a': expected string, got integer"});
  WriteFile(model_ / "model.safetensors.index.json", "{\"weight_map\":{\"a\":\"x\",\"a\":\"y\"}}");
  ExpectError(Open(), StatusCode::kInvalidFormat, {"duplicate key 'weight_map.a'"});
  WriteFile(model_ / "model.safetensors.index.json", "{\"metadata\":3,\"weight_map\":{}}");
  ExpectError(Open(), StatusCode::kInvalidFormat, {"key 'metadata'"});
}

TEST_F(CheckpointTest, BadShardReportsShardPath) {
  WriteShards();
  WriteFile(model_ / "model-00002-of-00002.safetensors", "short");
  WriteIndex(GoodMap());
  ExpectError(Open(), StatusCode::kInvalidFormat,
              {"model-00002-of-00002.safetensors", "file too small"});
}

// A20 at the library level: first non-finite element per float dtype, with its sign.
TEST_F(CheckpointTest, A20CheckTensorFinite) {
  float inf = std::numeric_limits<float>::infinity();
  std::vector<StTensor> ts = {
      {"f32", "F32", {3}, F32Bytes({1.0f, -inf, NAN})},
      {"bf16", "BF16", {3}, BF16Bytes({1.0f, 2.0f, inf})},
      {"f16", "F16", {2}, testing::U16Bytes({0x3c00, 0x7e00})},    // 1.0, NaN
      {"f16ok", "F16", {2}, testing::U16Bytes({0x3c00, 0x7bff})},  // 1.0, 65504
      {"u8", "U8", {2}, "\xff\xff"}};
  WriteFile(model_ / "model.safetensors", EncodeSafetensors(ts));
  Result<Checkpoint> c = Checkpoint::Open(model_.string());
  ASSERT_TRUE(c.ok()) << c.status().message();
  ExpectError(CheckTensorFinite(*c->Find("f32")), StatusCode::kInvalidFormat,
              {"model.safetensors", "tensor 'f32': element 1 is -Inf"});
  ExpectError(CheckTensorFinite(*c->Find("bf16")), StatusCode::kInvalidFormat,
              {"tensor 'bf16': element 2 is +Inf"});
  ExpectError(CheckTensorFinite(*c->Find("f16")), StatusCode::kInvalidFormat,
              {"tensor 'f16': element 1 is NaN"});
  EXPECT_TRUE(CheckTensorFinite(*c->Find("f16ok")).ok());
  EXPECT_TRUE(CheckTensorFinite(*c->Find("u8")).ok());
}

}  // namespace
}  // namespace moe
