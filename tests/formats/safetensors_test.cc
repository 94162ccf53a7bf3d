// SPDX-License-Identifier: Apache-2.0
// safetensors parser: bad-inputs.md section A (A1-A22) and valid round trips. Files are built by
// the independent encoder in test_files.h.
#include "formats/safetensors.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <string>

#include "formats/test_files.h"

namespace moe {
namespace {

using testing::BF16Bytes;
using testing::EncodeSafetensors;
using testing::F32Bytes;
using testing::RawSafetensors;
using testing::StTensor;
using testing::TempDir;
using testing::TwoTensors;
using testing::U16Bytes;
using testing::WriteFile;

class SafetensorsTest : public ::testing::Test {
 protected:
  // Writes `bytes` as a file and opens it.
  Status Open(const std::string& bytes) {
    path_ = (dir_ / "model.safetensors").string();
    WriteFile(path_, bytes);
    Result<SafetensorsFile> f = SafetensorsFile::Open(path_);
    return f.status();
  }
  // Asserts the code, that the message names the file, and contains each of `parts`.
  void ExpectError(const Status& s, StatusCode code, std::vector<std::string> parts) {
    EXPECT_EQ(s.code(), code) << s.message();
    EXPECT_NE(s.message().find(path_), std::string::npos) << s.message();
    for (const std::string& p : parts) {
      EXPECT_NE(s.message().find(p), std::string::npos) << "'" << p << "' not in: " << s.message();
    }
  }
  // A header with one F32 [1] tensor 'x' whose entry is `entry`, with `data_bytes` of data.
  Status OpenEntry(const std::string& entry, size_t data_bytes = 4) {
    return Open(RawSafetensors("{\"x\":" + entry + "}", std::string(data_bytes, '\0')));
  }

  TempDir dir_;
  std::string path_;
};

uint64_t VmHwmKiB() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6));
  }
  return 0;
}

TEST_F(SafetensorsTest, A1FileTooSmall) {
  ExpectError(Open(""), StatusCode::kInvalidFormat, {"file too small for 8-byte header length"});
  ExpectError(Open(std::string(7, '\x01')), StatusCode::kInvalidFormat,
              {"file too small for 8-byte header length", "7 bytes"});
}

TEST_F(SafetensorsTest, A2HugeHeaderLengthRefusedWithoutAllocation) {
  uint64_t before = VmHwmKiB();
  ASSERT_GT(before, 0u);
  std::string bytes = testing::Le64(~uint64_t{0}) + "{}";
  ExpectError(Open(bytes), StatusCode::kInvalidFormat,
              {"header length 18446744073709551615 exceeds limit 100000000"});
  EXPECT_LT(VmHwmKiB() - before, 16u * 1024) << "peak RSS grew while refusing the header";
}

TEST_F(SafetensorsTest, A3HeaderLimitBoundary) {
  ExpectError(Open(testing::Le64(100000001) + std::string(100, ' ')), StatusCode::kInvalidFormat,
              {"exceeds limit 100000000"});
  // Exactly 100,000,000 bytes: a valid header padded with spaces is accepted.
  std::string header = "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
  header.resize(kMaxSafetensorsHeaderBytes, ' ');
  Status s = Open(RawSafetensors(header, F32Bytes({7.0f})));
  EXPECT_TRUE(s.ok()) << s.message();
}

TEST_F(SafetensorsTest, A4HeaderLongerThanFile) {
  std::string bytes = testing::Le64(1000) + "{}";
  ExpectError(Open(bytes), StatusCode::kInvalidFormat,
              {"header length exceeds file size (truncated?)", "1000"});
}

TEST_F(SafetensorsTest, A5HeaderNotUtf8) {
  ExpectError(Open(RawSafetensors("{\"\xff\":1}   ", "")), StatusCode::kInvalidFormat,
              {"header is not UTF-8", "offset 10"});
  // Overlong encoding and an encoded surrogate are not UTF-8 either.
  ExpectError(Open(RawSafetensors("{\"\xc0\xaf\":1}", "")), StatusCode::kInvalidFormat,
              {"header is not UTF-8"});
  ExpectError(Open(RawSafetensors("{\"\xed\xa0\x80\":1}", "")), StatusCode::kInvalidFormat,
              {"header is not UTF-8"});
}

TEST_F(SafetensorsTest, A6HeaderNotJsonObject) {
  ExpectError(Open(RawSafetensors("hello", "")), StatusCode::kInvalidFormat,
              {"invalid JSON at byte 0"});
  ExpectError(Open(RawSafetensors("{\"x\":{\"dtype\":", "")), StatusCode::kInvalidFormat,
              {"invalid JSON at byte"});
  ExpectError(Open(RawSafetensors("[1,2]", "")), StatusCode::kInvalidFormat,
              {"top level is array, expected object"});
  ExpectError(Open(RawSafetensors("\"str\"", "")), StatusCode::kInvalidFormat,
              {"top level is string, expected object"});
  ExpectError(Open(RawSafetensors("{}  x", "")), StatusCode::kInvalidFormat,
              {"invalid JSON at byte 4"});
}

TEST_F(SafetensorsTest, A7NestingBomb) {
  ExpectError(Open(RawSafetensors(std::string(1000000, '['), "")), StatusCode::kInvalidFormat,
              {"nesting depth exceeds limit 256 at byte 256"});
  std::string inner = "{\"__metadata__\":" + std::string(300000, '{');
  ExpectError(Open(RawSafetensors(inner, "")), StatusCode::kInvalidFormat,
              {"nesting depth exceeds limit"});
}

TEST_F(SafetensorsTest, A8DuplicateTensorName) {
  std::string e = "{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}";
  std::string e2 = "{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}";
  ExpectError(Open(RawSafetensors("{\"w\":" + e + ",\"w\":" + e2 + "}", "ab")),
              StatusCode::kInvalidFormat, {"duplicate tensor name 'w'"});
}

TEST_F(SafetensorsTest, A9BadMetadata) {
  std::string t = "\"x\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}";
  ExpectError(Open(RawSafetensors("{\"__metadata__\":{\"format\":1}," + t + "}", "a")),
              StatusCode::kInvalidFormat,
              {"__metadata__ key 'format': expected string, got integer"});
  ExpectError(Open(RawSafetensors("{\"__metadata__\":{},\"__metadata__\":{}," + t + "}", "a")),
              StatusCode::kInvalidFormat, {"duplicate __metadata__"});
  ExpectError(Open(RawSafetensors("{\"__metadata__\":[]," + t + "}", "a")),
              StatusCode::kInvalidFormat, {"__metadata__ is array"});
  ExpectError(Open(RawSafetensors("{\"__metadata__\":{\"a\":{\"b\":\"c\"}}," + t + "}", "a")),
              StatusCode::kInvalidFormat, {"__metadata__ key 'a': expected string, got object"});
}

TEST_F(SafetensorsTest, A10UnknownDtype) {
  for (const char* dt : {"F128", "", "bf16", "f32"}) {
    ExpectError(
        OpenEntry(std::string("{\"dtype\":\"") + dt + "\",\"shape\":[1],\"data_offsets\":[0,4]}"),
        StatusCode::kInvalidFormat, {"tensor 'x'", std::string("unknown dtype '") + dt + "'"});
  }
  ExpectError(OpenEntry("{\"dtype\":5,\"shape\":[1],\"data_offsets\":[0,4]}"),
              StatusCode::kInvalidFormat, {"tensor 'x'", "dtype is integer"});
}

// Every dtype of spec §5.2 is accepted by the parser (the model binder decides what it computes
// with). Bits per element come from the spec's table, restated here.
TEST_F(SafetensorsTest, A10AllSpecDtypesAccepted) {
  const std::vector<std::pair<std::string, int>> spec = {
      {"BOOL", 8},        {"F4", 4},      {"F6_E2M3", 6}, {"F6_E3M2", 6}, {"U8", 8},
      {"I8", 8},          {"F8_E5M2", 8}, {"F8_E4M3", 8}, {"F8_E8M0", 8}, {"F8_E4M3FNUZ", 8},
      {"F8_E5M2FNUZ", 8}, {"I16", 16},    {"U16", 16},    {"F16", 16},    {"BF16", 16},
      {"I32", 32},        {"U32", 32},    {"F32", 32},    {"C64", 64},    {"F64", 64},
      {"I64", 64},        {"U64", 64}};
  std::vector<StTensor> ts;
  for (const auto& [name, bits] : spec) {
    ts.push_back({"t_" + name, name, {2, 4}, std::string(8 * bits / 8, '\x11')});
  }
  path_ = (dir_ / "all.safetensors").string();
  WriteFile(path_, EncodeSafetensors(ts));
  Result<SafetensorsFile> f = SafetensorsFile::Open(path_);
  ASSERT_TRUE(f.ok()) << f.status().message();
  for (const auto& [name, bits] : spec) {
    const TensorInfo* t = f->Find("t_" + name);
    ASSERT_NE(t, nullptr) << name;
    EXPECT_EQ(DTypeName(t->dtype), name);
    EXPECT_EQ(t->n_bytes, uint64_t(bits));  // 8 elements
    EXPECT_EQ(t->n_elements, 8u);
  }
}

TEST_F(SafetensorsTest, SubByteTensorMustBeWholeBytes) {
  ExpectError(OpenEntry("{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,2]}", 2),
              StatusCode::kInvalidFormat, {"tensor 'x'", "misaligned slice", "12 bits"});
}

TEST_F(SafetensorsTest, A11BadShapeElements) {
  for (const char* dim : {"-1", "1.5", "\"4\"", "9223372036854775808", "18446744073709551616",
                          "9007199254740993", "null", "[1]"}) {
    ExpectError(
        OpenEntry(std::string("{\"dtype\":\"U8\",\"shape\":[") + dim + "],\"data_offsets\":[0,4]}"),
        StatusCode::kInvalidFormat, {"tensor 'x'", "shape[0] is"});
  }
  ExpectError(OpenEntry("{\"dtype\":\"U8\",\"shape\":4,\"data_offsets\":[0,4]}"),
              StatusCode::kInvalidFormat, {"tensor 'x'", "shape is integer, expected array"});
}

TEST_F(SafetensorsTest, A12ElementCountOverflows) {
  // 4194305 * 4194305 * 211106198978564 wraps to 4 in 64 bits (the safetensors-cpp PoC).
  ExpectError(OpenEntry("{\"dtype\":\"U8\",\"shape\":[4194305,4194305,211106198978564],"
                        "\"data_offsets\":[0,4]}"),
              StatusCode::kInvalidFormat, {"tensor 'x'", "element count overflows"});
}

TEST_F(SafetensorsTest, A13ByteSizeOverflows) {
  // 2^53 * 1024 = 2^63 elements fit in u64; times 64 bits does not.
  ExpectError(OpenEntry("{\"dtype\":\"F64\",\"shape\":[9007199254740992,1024],"
                        "\"data_offsets\":[0,4]}"),
              StatusCode::kInvalidFormat, {"tensor 'x'", "byte size overflows"});
}

TEST_F(SafetensorsTest, A14OffsetsDisagreeWithShape) {
  ExpectError(OpenEntry("{\"dtype\":\"F32\",\"shape\":[1000,1000],\"data_offsets\":[0,4]}"),
              StatusCode::kInvalidFormat, {"tensor 'x'", "needs 4000000 bytes, offsets cover 4"});
}

TEST_F(SafetensorsTest, A15BadDataOffsets) {
  ExpectError(OpenEntry("{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[4,0]}"),
              StatusCode::kInvalidFormat, {"tensor 'x'", "end 0 < begin 4"});
  ExpectError(OpenEntry("{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0]}"),
              StatusCode::kInvalidFormat, {"tensor 'x'", "data_offsets is [0]"});
  ExpectError(OpenEntry("{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1,2]}"),
              StatusCode::kInvalidFormat, {"tensor 'x'", "data_offsets is [0,1,2]"});
  ExpectError(OpenEntry("{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[-1,0]}"),
              StatusCode::kInvalidFormat, {"tensor 'x'", "not non-negative integers"});
  ExpectError(OpenEntry("{\"dtype\":\"U8\",\"shape\":[1]}"), StatusCode::kInvalidFormat,
              {"tensor 'x'", "missing 'data_offsets'"});
  // Beyond the buffer: begin/end past the end of the file.
  ExpectError(OpenEntry("{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}", 2),
              StatusCode::kInvalidFormat, {"header requires"});
  ExpectError(OpenEntry("{\"dtype\":\"U8\",\"shape\":[1],"
                        "\"data_offsets\":[18446744073709551614,18446744073709551615]}"),
              StatusCode::kInvalidFormat, {"tensor 'x'", "gap of"});
}

TEST_F(SafetensorsTest, A16Overlap) {
  std::string h =
      "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
      "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[2,6]}}";
  ExpectError(Open(RawSafetensors(h, std::string(6, 'x'))), StatusCode::kInvalidFormat,
              {"tensors 'a' and 'b' overlap"});
}

TEST_F(SafetensorsTest, A17GapOrTrailingBytes) {
  std::string h =
      "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
      "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[6,10]}}";
  ExpectError(Open(RawSafetensors(h, std::string(10, 'x'))), StatusCode::kInvalidFormat,
              {"tensor 'b'", "gap of 2 bytes"});
  // First tensor not at 0.
  ExpectError(OpenEntry("{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[2,4]}"),
              StatusCode::kInvalidFormat, {"tensor 'x'", "gap of 2 bytes"});
  std::string ok = EncodeSafetensors(TwoTensors());
  ExpectError(Open(ok + "junk"), StatusCode::kInvalidFormat, {"4 trailing bytes"});
}

TEST_F(SafetensorsTest, A18EntryLimit) {
  std::string h = "{";
  for (int i = 0; i < 50; ++i) {
    if (i) h += ",";
    h += "\"t" + std::to_string(i) + "\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}";
  }
  h += "}";
  Result<SafetensorsHeader> r = ParseSafetensorsHeader("mem.safetensors", h, 8 + h.size(), 49);
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted) << r.status().message();
  EXPECT_NE(r.status().message().find("entry limit"), std::string::npos);
  EXPECT_NE(r.status().message().find("mem.safetensors"), std::string::npos);
  Result<SafetensorsHeader> ok = ParseSafetensorsHeader("mem.safetensors", h, 8 + h.size(), 50);
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  EXPECT_EQ(ok->tensors.size(), 50u);
}

TEST_F(SafetensorsTest, A18ManyTinyEntriesParse) {
  // 200k zero-byte tensors (about 11 MB of header) parse with bounded memory.
  std::string h = "{";
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    if (i) h += ",";
    h += "\"t" + std::to_string(i) + "\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}";
  }
  h += "}";
  Result<SafetensorsHeader> r = ParseSafetensorsHeader("big.safetensors", h, 8 + h.size());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->tensors.size(), size_t(n));
}

TEST_F(SafetensorsTest, A19ZeroDimAndScalar) {
  std::vector<StTensor> ts = {{"empty", "F32", {3, 0}, ""},
                              {"scalar", "F32", {}, F32Bytes({5.0f})}};
  path_ = (dir_ / "z.safetensors").string();
  WriteFile(path_, EncodeSafetensors(ts));
  Result<SafetensorsFile> f = SafetensorsFile::Open(path_);
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(f->Find("empty")->n_elements, 0u);
  EXPECT_EQ(f->Find("empty")->n_bytes, 0u);
  EXPECT_EQ(f->Find("empty")->shape, (std::vector<uint64_t>{3, 0}));
  EXPECT_EQ(f->Find("scalar")->n_elements, 1u);
  EXPECT_TRUE(f->Find("scalar")->shape.empty());
}

// A20: the parser does not look at tensor values (documented in spec §5.1: NaN/Inf unchecked).
TEST_F(SafetensorsTest, A20NanInfDataAcceptedByParser) {
  std::vector<StTensor> ts = {{"w", "F32", {2}, F32Bytes({NAN, INFINITY})}};
  EXPECT_TRUE(Open(EncodeSafetensors(ts)).ok());
}

TEST_F(SafetensorsTest, A21UnpaddedHeaderReadsCorrectly) {
  std::vector<StTensor> ts = {{"w", "F32", {3}, F32Bytes({1.25f, -3.5f, 1e-3f})}};
  std::string bytes = EncodeSafetensors(ts, {}, /*pad8=*/false);
  ASSERT_NE((bytes.size() - 12) % 8, 0u);  // header length is not a multiple of 8
  path_ = (dir_ / "u.safetensors").string();
  WriteFile(path_, bytes);
  Result<SafetensorsFile> f = SafetensorsFile::Open(path_);
  ASSERT_TRUE(f.ok()) << f.status().message();
  const TensorInfo* t = f->Find("w");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->file_offset % 8, (bytes.size() - 12) % 8);
  float got[3];
  ASSERT_TRUE(f->file().ReadAt(t->file_offset, got, sizeof(got)).ok());
  EXPECT_EQ(got[0], 1.25f);
  EXPECT_EQ(got[1], -3.5f);
  EXPECT_EQ(got[2], 1e-3f);
}

TEST_F(SafetensorsTest, A22TruncatedDownload) {
  std::string full = EncodeSafetensors(TwoTensors());
  std::string cut = full.substr(0, full.size() - 3);
  ExpectError(Open(cut), StatusCode::kInvalidFormat,
              {"file is " + std::to_string(cut.size()) + " bytes, header requires " +
               std::to_string(full.size()) + " (incomplete download?)"});
}

TEST_F(SafetensorsTest, EntryShapeErrors) {
  ExpectError(OpenEntry("[1]"), StatusCode::kInvalidFormat, {"tensor 'x'", "entry is array"});
  ExpectError(OpenEntry("{\"shape\":[1],\"data_offsets\":[0,4]}"), StatusCode::kInvalidFormat,
              {"tensor 'x'", "missing 'dtype'"});
  ExpectError(OpenEntry("{\"dtype\":\"F32\",\"data_offsets\":[0,4]}"), StatusCode::kInvalidFormat,
              {"tensor 'x'", "missing 'shape'"});
  // Unknown keys inside an entry are ignored, as by the reference reader.
  EXPECT_TRUE(
      OpenEntry("{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":[{}]}").ok());
  // Nested duplicate keys are rejected.
  ExpectError(
      OpenEntry("{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}"),
      StatusCode::kInvalidFormat, {"duplicate key 'x.dtype'"});
}

TEST_F(SafetensorsTest, RoundTripValuesAndMetadata) {
  // f16 bit patterns: 1.0 = 0x3c00, -2.0 = 0xc000, 0.5 = 0x3800, 65504 = 0x7bff.
  std::vector<StTensor> ts = {{"z.f32", "F32", {2, 2}, F32Bytes({1.0f, -2.5f, 3.25f, 1e-7f})},
                              {"a.bf16", "BF16", {3}, BF16Bytes({1.0f, -0.375f, 256.0f})},
                              {"m.f16", "F16", {4}, U16Bytes({0x3c00, 0xc000, 0x3800, 0x7bff})}};
  path_ = (dir_ / "rt.safetensors").string();
  std::string bytes = EncodeSafetensors(ts, {{"format", "pt"}});
  WriteFile(path_, bytes);
  Result<SafetensorsFile> f = SafetensorsFile::Open(path_);
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(f->metadata().at("format"), "pt");
  ASSERT_EQ(f->tensors().size(), 3u);
  // Sorted by offset = written order.
  EXPECT_EQ(f->tensors()[0].name, "z.f32");
  EXPECT_EQ(f->tensors()[2].name, "m.f16");

  float f32[4];
  const TensorInfo* t = f->Find("z.f32");
  ASSERT_TRUE(f->file().ReadAt(t->file_offset, f32, 16).ok());
  EXPECT_EQ(f32[1], -2.5f);
  EXPECT_EQ(f32[3], 1e-7f);

  uint16_t bf[3];
  t = f->Find("a.bf16");
  EXPECT_EQ(t->dtype, DType::kBF16);
  ASSERT_TRUE(f->file().ReadAt(t->file_offset, bf, 6).ok());
  auto bf_to_f = [](uint16_t b) {
    uint32_t u = uint32_t(b) << 16;
    float x;
    std::memcpy(&x, &u, 4);
    return x;
  };
  EXPECT_EQ(bf_to_f(bf[0]), 1.0f);
  EXPECT_EQ(bf_to_f(bf[1]), -0.375f);
  EXPECT_EQ(bf_to_f(bf[2]), 256.0f);

  uint16_t h[4];
  t = f->Find("m.f16");
  EXPECT_EQ(t->dtype, DType::kF16);
  ASSERT_TRUE(f->file().ReadAt(t->file_offset, h, 8).ok());
  EXPECT_EQ(h[3], 0x7bff);
  // Offsets are absolute and end exactly at EOF.
  EXPECT_EQ(t->file_offset + t->n_bytes, bytes.size());
  EXPECT_EQ(f->Find("nope"), nullptr);
}

TEST_F(SafetensorsTest, OffsetsMayBeListedOutOfOrder) {
  std::string h =
      "{\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[3,5]},"
      "\"a\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3]}}";
  Status s = Open(RawSafetensors(h, "abcde"));
  EXPECT_TRUE(s.ok()) << s.message();
}

TEST(SafetensorsHeaderLength, PureFunction) {
  EXPECT_EQ(ParseSafetensorsHeaderLength("p", testing::Le64(16), 24).value(), 16u);
  EXPECT_FALSE(ParseSafetensorsHeaderLength("p", testing::Le64(17), 24).ok());
  EXPECT_FALSE(ParseSafetensorsHeaderLength("p", "abc", 24).ok());
}

}  // namespace
}  // namespace moe
