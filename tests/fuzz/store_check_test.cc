// SPDX-License-Identifier: Apache-2.0
// The expert-store header/index checks the fuzzer drives (experts/store_check.h), on hand-made
// stores: bad-inputs.md F1 (magic, version), F3 (past EOF, overlap, overflowing sizes), F4 (no
// footer), plus the regression the fuzz target pinned (wrapped block stride).
#include <gtest/gtest.h>
#include <xxhash.h>

#include <cstring>
#include <string>
#include <vector>

#include "experts/store_check.h"

namespace moe {
namespace {

// H=8 I=4 BF16, 2 layers × 4 experts, laid out as the writer does.
struct TinyStore {
  store::Header h{};
  store::Footer f{};
  std::vector<store::IndexEntry> index;
  uint64_t size = 0;
  ExpertGeometry g{8, 4, kernels::WeightType::kBF16};

  TinyStore() {
    std::memcpy(h.magic, store::kMagic, 8);
    h.version = 1;
    h.header_bytes = sizeof(h);
    h.model_id = 0x1234;
    h.n_layers = 2;
    h.n_experts = 4;
    h.hidden = 8;
    h.intermediate = 4;
    h.dtype = 1;
    h.block_bytes = 3 * 8 * 4 * 2;
    h.block_stride = 4096;
    h.blocks_offset = 4096;
    h.n_blocks = 8;
    for (uint32_t l = 0; l < 2; ++l) {
      for (uint32_t e = 0; e < 4; ++e) {
        index.push_back({l, e, 4096 + (l * 4 + e) * 4096ull, h.block_bytes, 1, 0, 0});
      }
    }
    Seal();
  }
  // Recomputes the dependent fields as a correct writer would.
  void Seal() {
    h.index_offset = h.blocks_offset + h.n_blocks * h.block_stride;
    h.index_bytes = h.n_blocks * sizeof(store::IndexEntry);
    size = h.index_offset + h.index_bytes + sizeof(store::Footer);
    std::memcpy(f.magic, store::kFooterMagic, 8);
    f.index_offset = h.index_offset;
    f.file_bytes = size;
    SealIndex();
  }
  void SealIndex() { f.index_xxh64 = XXH64(index.data(), index.size() * 40, h.model_id); }
  Status Header() const { return CheckStoreHeader("s/experts.bin", h, f, size, g, 2, 4); }
  Status Index() const {
    auto m = CheckStoreIndex("s/experts.bin", h, f, index, 2, 4);
    return m.ok() ? Status::Ok() : m.status();
  }
};

void ExpectError(const Status& s, StatusCode code, const std::string& needle) {
  EXPECT_EQ(s.code(), code) << s.message();
  EXPECT_NE(s.message().find("s/experts.bin"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find(needle), std::string::npos) << s.message();
}

TEST(StoreCheck, ValidStoreAccepted) {
  TinyStore s;
  EXPECT_TRUE(s.Header().ok()) << s.Header().message();
  auto m = CheckStoreIndex("s", s.h, s.f, s.index, 2, 4);
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->entry_of[1 * 4 + 3], 7u);
}

TEST(StoreCheck, F1BadMagicAndFutureVersion) {
  TinyStore s;
  s.h.magic[0] = 'X';
  ExpectError(s.Header(), StatusCode::kInvalidFormat, "bad magic");
  TinyStore v;
  v.h.version = store::kVersion + 1;
  ExpectError(v.Header(), StatusCode::kUnsupported,
              fmt::format("version {} is newer", store::kVersion + 1));
  TinyStore z;
  z.h.version = 0;
  ExpectError(z.Header(), StatusCode::kInvalidFormat, "version 0 unknown");
}

// Version 1 blocks are hashed with xxHash64 (block_hash 0, formerly reserved), version 2 with
// XXH3 (block_hash 1); a header whose hash kind is not its version's is refused, so a block is
// never checked with the wrong function (which would report every block as corrupt).
TEST(StoreCheck, BlockHashKindMustMatchTheVersion) {
  TinyStore v1;  // hand-made as version 1, block_hash 0
  EXPECT_TRUE(v1.Header().ok()) << v1.Header().message();
  TinyStore v2;
  v2.h.version = 2;
  v2.h.block_hash = static_cast<uint32_t>(store::BlockHash::kXxh3);
  EXPECT_TRUE(v2.Header().ok()) << v2.Header().message();
  TinyStore v2_with_xxh64;
  v2_with_xxh64.h.version = 2;
  ExpectError(v2_with_xxh64.Header(), StatusCode::kInvalidFormat,
              "block_hash code 0 does not belong to store version 2");
  TinyStore v1_with_xxh3;
  v1_with_xxh3.h.block_hash = 1;
  ExpectError(v1_with_xxh3.Header(), StatusCode::kInvalidFormat,
              "block_hash code 1 does not belong to store version 1");
  TinyStore unknown;
  unknown.h.version = 2;
  unknown.h.block_hash = 7;
  ExpectError(unknown.Header(), StatusCode::kInvalidFormat, "block_hash code 7");
}

// Version 3 appended `layout` (and a reserved word) to the header: its header_bytes must cover
// them, while versions 1 and 2 keep their 104-byte header; a layout code other than rows (0)
// or tiles (1) is refused, so blocks are never read in a layout the reader does not know.
TEST(StoreCheck, Version3HeaderCarriesAKnownLayout) {
  TinyStore v3;
  v3.h.version = 3;
  v3.h.block_hash = static_cast<uint32_t>(store::BlockHash::kXxh3);
  v3.h.layout = static_cast<uint32_t>(store::StoreLayout::kTiles);
  EXPECT_TRUE(v3.Header().ok()) << v3.Header().message();
  TinyStore v3_short = v3;
  v3_short.h.header_bytes = store::kHeaderBytesV2;
  ExpectError(v3_short.Header(), StatusCode::kInvalidFormat, "header_bytes 104 out of range");
  TinyStore v2_short;
  v2_short.h.version = 2;
  v2_short.h.block_hash = static_cast<uint32_t>(store::BlockHash::kXxh3);
  v2_short.h.header_bytes = store::kHeaderBytesV2;
  EXPECT_TRUE(v2_short.Header().ok()) << v2_short.Header().message();
  TinyStore v3_layout = v3;
  v3_layout.h.layout = 2;
  ExpectError(v3_layout.Header(), StatusCode::kInvalidFormat, "layout code 2 unknown");
}

TEST(StoreCheck, F4MissingFooterIsIncomplete) {
  TinyStore s;
  std::memset(s.f.magic, 0, 8);
  ExpectError(s.Header(), StatusCode::kIntegrity, "incomplete");
  TinyStore t;
  t.size -= 4096;  // truncated file: the footer's size disagrees
  ExpectError(t.Header(), StatusCode::kIntegrity, "incomplete");
}

TEST(StoreCheck, F3SizesThatWrapAreRefused) {
  TinyStore s;  // 8 × 2^61 wraps to 0: index_offset == blocks_offset passed the unchecked sum
  s.h.block_stride = uint64_t{1} << 61;
  s.h.index_offset = s.h.blocks_offset;
  s.size = s.h.index_offset + s.h.index_bytes + sizeof(store::Footer);
  s.f.index_offset = s.h.index_offset;
  s.f.file_bytes = s.size;
  ExpectError(s.Header(), StatusCode::kInvalidFormat, "inconsistent header");
  TinyStore t;  // index_bytes disagreeing with n_blocks (and wrapping the file end)
  t.h.index_bytes = ~uint64_t{0} - 8;
  ExpectError(t.Header(), StatusCode::kInvalidFormat, "inconsistent header");
  TinyStore u;  // blocks inside the header page
  u.h.blocks_offset = 0;
  u.Seal();
  ExpectError(u.Header(), StatusCode::kInvalidFormat, "inconsistent header");
}

TEST(StoreCheck, F3EntryPastEndOverlapOrDuplicateRefused) {
  TinyStore s;
  s.index[3].offset = s.h.index_offset;  // block would overlap the index
  s.SealIndex();
  ExpectError(s.Index(), StatusCode::kInvalidFormat, "index entry 3");
  TinyStore w;  // offset + stride wraps past 2^64
  w.index[2].offset = 0 - w.h.block_stride;
  w.SealIndex();
  ExpectError(w.Index(), StatusCode::kInvalidFormat, "index entry 2");
  TinyStore o;  // two entries share a block
  o.index[5].offset = o.index[4].offset;
  o.SealIndex();
  ExpectError(o.Index(), StatusCode::kInvalidFormat, "overlap");
  TinyStore d;  // (layer 0, expert 1) twice, (0, 2) missing
  d.index[2].expert = 1;
  d.SealIndex();
  ExpectError(d.Index(), StatusCode::kInvalidFormat, "duplicate block");
  TinyStore c;  // any change without a new index checksum
  c.index[0].offset += 4096;
  ExpectError(c.Index(), StatusCode::kIntegrity, "index checksum");
}

}  // namespace
}  // namespace moe
