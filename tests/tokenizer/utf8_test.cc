// SPDX-License-Identifier: Apache-2.0
// UTF-8 validation and lossy decoding against Python's bytes.decode("utf-8", "replace")
// (tests/data/tokenizer/utf8_lossy.json, scripts/gen_utf8_lossy_refs.py).
#include "tokenizer/utf8.h"

#include <gtest/gtest.h>
#include <utf8proc.h>

#include <cstdlib>

#include "tokenizer/byte_level.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer_test_util.h"

namespace moe {
namespace {

std::string FromHex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return out;
}

TEST(Utf8Test, LossyAndValidityMatchPython) {
  const auto cases = testing::ReadJson(testing::DataPath("utf8_lossy.json"));
  ASSERT_GT(cases.size(), 3000u);
  for (const auto& c : cases) {
    const std::string bytes = FromHex(c["hex"]);
    std::string lossy;
    AppendUtf8Lossy(bytes, &lossy);
    EXPECT_EQ(lossy, c["lossy"].get<std::string>()) << c["hex"];
    EXPECT_EQ(FindInvalidUtf8(bytes) == std::string::npos, c["valid"].get<bool>()) << c["hex"];
    // Streaming in every split into two pushes gives the same text.
    for (size_t cut = 0; cut <= bytes.size(); ++cut) {
      Utf8LossyStream stream;
      std::string streamed;
      stream.Push(std::string_view(bytes).substr(0, cut), &streamed);
      stream.Push(std::string_view(bytes).substr(cut), &streamed);
      stream.Finish(&streamed);
      EXPECT_EQ(streamed, lossy) << c["hex"] << " cut " << cut;
    }
  }
}

TEST(Utf8Test, StreamNeverEmitsPartialSequences) {
  const std::string text = "a\xC3\xA9\xE6\x97\xA5\xF0\x9F\x99\x82";  // a é 日 🙂
  Utf8LossyStream stream;
  std::string out;
  for (char c : text) {
    stream.Push(std::string_view(&c, 1), &out);
    EXPECT_EQ(FindInvalidUtf8(out), std::string::npos) << "partial output: " << out.size() << " bytes";
  }
  EXPECT_EQ(out, text);
  EXPECT_EQ(stream.n_pending(), 0u);
}

// Facts of the GPT-2 table stated in spec hf-moe-checkpoints.md §6.2 step 4.
TEST(ByteLevelTest, TableMatchesSpec) {
  EXPECT_EQ(ByteToUnicode(' '), 0x120u);
  EXPECT_EQ(ByteToUnicode('\n'), 0x10Au);
  EXPECT_EQ(ByteToUnicode('\t'), 0x109u);
  EXPECT_EQ(ByteToUnicode(0x00), 0x100u);
  EXPECT_EQ(ByteToUnicode(0x7F), 0x121u);
  EXPECT_EQ(ByteToUnicode(0xA0), 0x142u);
  EXPECT_EQ(ByteToUnicode(0xAD), 0x143u);
  EXPECT_EQ(ByteToUnicode('A'), static_cast<char32_t>('A'));
  EXPECT_EQ(ByteToUnicode(0xE9), 0xE9u);
  for (int b = 0; b < 256; ++b) EXPECT_EQ(UnicodeToByte(ByteToUnicode(static_cast<uint8_t>(b))), b);
  EXPECT_EQ(UnicodeToByte(' '), -1);
  // A token with a character outside the table decodes to its own UTF-8 (HF ByteLevel decoder).
  EXPECT_EQ(ByteLevelDecodeToken("a b"), "a b");
  EXPECT_EQ(ByteLevelDecodeToken("\xC4\xA0hi"), " hi");
}

}  // namespace
}  // namespace moe

namespace moe {
namespace {

// utf8proc's NFC, called directly (NormalizeNfc itself takes the fast path).
std::string Utf8procNfc(const std::string& s) {
  utf8proc_uint8_t* out = utf8proc_NFC(reinterpret_cast<const utf8proc_uint8_t*>(s.c_str()));
  std::string r(reinterpret_cast<char*>(out));
  std::free(out);
  return r;
}

// The NFC fast path may only accept text utf8proc leaves unchanged: every accepted code point,
// alone and after starters that begin compositions (Latin, Hangul LV, kana, Indic, Cyrillic).
TEST(NfcTest, FastPathAgreesWithUtf8proc) {
  const char32_t starters[] = {'a', 'e', 'A', 0xE9, 0xAC00, 0x304B, 0x0928, 0x0B47, 0x0CC6,
                               0x0D46, 0x0DD9, 0x1025, 0x0415, 0x05D0, 0x0627, 0x0E01};
  size_t accepted = 0;
  for (char32_t cp = 1; cp <= 0x10FFFF; ++cp) {
    if (cp >= 0xD800 && cp <= 0xDFFF) continue;
    std::string one;
    AppendUtf8(cp, &one);
    if (!IsSurelyNfc(one)) continue;
    ++accepted;
    ASSERT_EQ(Utf8procNfc(one), one) << std::hex << static_cast<uint32_t>(cp);
    for (char32_t s : starters) {
      std::string pair;
      AppendUtf8(s, &pair);
      pair += one;
      ASSERT_EQ(Utf8procNfc(pair), pair)
          << std::hex << static_cast<uint32_t>(s) << "+" << static_cast<uint32_t>(cp);
    }
  }
  EXPECT_GT(accepted, 30000u);
  // Decomposed input is not accepted and does get composed.
  EXPECT_FALSE(IsSurelyNfc("e\xCC\x81"));
  EXPECT_EQ(NormalizeNfc("e\xCC\x81").value(), "\xC3\xA9");
}

}  // namespace
}  // namespace moe
