// SPDX-License-Identifier: Apache-2.0
// Bad tokenizer files and inputs (../shared/spec/bad-inputs.md section D): each gets a clear
// error with the right code, through the library and through `moestream tokenize`.
// Also the added-token flags Qwen does not use (lstrip/rstrip/single_word), on a small
// synthetic byte-level tokenizer whose expected splits follow HF's AddedVocabulary rules.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "tokenizer/byte_level.h"
#include "tokenizer_test_util.h"

namespace moe {
namespace {

using nlohmann::json;

constexpr char kQwenRegex[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+"
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

json AddedToken(int id, const std::string& content, bool special) {
  return {{"id", id}, {"content", content}, {"single_word", false}, {"lstrip", false},
          {"rstrip", false}, {"normalized", false}, {"special", special}};
}

// 256 byte tokens (id = byte), "he"=256, "ll"=257, "hell"=258; added <|end|>=300 (special).
json MinimalTokenizer() {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[BytesToByteLevel(std::string(1, static_cast<char>(b)))] = b;
  vocab["he"] = 256;
  vocab["ll"] = 257;
  vocab["hell"] = 258;
  json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false},
                     {"use_regex", false}};
  return {
      {"version", "1.0"}, {"truncation", nullptr}, {"padding", nullptr},
      {"added_tokens", json::array({AddedToken(300, "<|end|>", true)})},
      {"normalizer", {{"type", "NFC"}}},
      {"pre_tokenizer", {{"type", "Sequence"}, {"pretokenizers", json::array({
          {{"type", "Split"}, {"pattern", {{"Regex", kQwenRegex}}}, {"behavior", "Isolated"},
           {"invert", false}}, byte_level})}}},
      {"post_processor", byte_level},
      {"decoder", byte_level},
      {"model", {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr},
                 {"continuing_subword_prefix", ""}, {"end_of_word_suffix", ""},
                 {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", false},
                 {"vocab", vocab},
                 {"merges", json::array({json::array({"h", "e"}), json::array({"l", "l"}),
                                         json::array({"he", "ll"})})}}}};
}

Status LoadStatus(const std::string& text, const std::string& config = "") {
  auto t = Tokenizer::FromJson(text, config, "tokenizer.json");
  return t.ok() ? Status::Ok() : t.status();
}

void ExpectError(const Status& s, StatusCode code, const std::string& needle) {
  EXPECT_EQ(s.code(), code) << s.message();
  EXPECT_NE(s.message().find(needle), std::string::npos) << "message: " << s.message();
  EXPECT_EQ(s.message().find('\n'), std::string::npos) << "one-line message: " << s.message();
}

TEST(BadTokenizer, MinimalTokenizerLoadsAndMerges) {
  auto t = Tokenizer::FromJson(MinimalTokenizer().dump(), "", "min");
  ASSERT_TRUE(t.ok()) << t.status().message();
  // BPE by rank: h+e (0), l+l (1), he+ll (2) -> "hell", then "o" stays a byte token.
  EXPECT_EQ(testing::Val(t->Encode("hello")), (std::vector<int32_t>{258, 'o'}));
  EXPECT_EQ(testing::Val(t->Encode("x<|end|>he")), (std::vector<int32_t>{'x', 300, 256}));
}

TEST(BadTokenizer, D1NotJsonNoModelUnknownModel) {
  ExpectError(LoadStatus("{\"model\": "), StatusCode::kInvalidFormat, "invalid JSON");
  ExpectError(LoadStatus("[1, 2]"), StatusCode::kInvalidFormat, "expected object");
  json j = MinimalTokenizer();
  j.erase("model");
  ExpectError(LoadStatus(j.dump()), StatusCode::kInvalidFormat, "'model' is missing");
  j = MinimalTokenizer();
  j["model"]["type"] = "WordPiece";
  ExpectError(LoadStatus(j.dump()), StatusCode::kUnsupported, "model.type");
  j = MinimalTokenizer();
  j["normalizer"] = {{"type", "NFKC"}};
  ExpectError(LoadStatus(j.dump()), StatusCode::kUnsupported, "normalizer.type");
  j = MinimalTokenizer();
  j["pre_tokenizer"]["pretokenizers"][1]["use_regex"] = true;
  ExpectError(LoadStatus(j.dump()), StatusCode::kUnsupported, "use_regex");
  j = MinimalTokenizer();
  j["model"]["byte_fallback"] = true;
  ExpectError(LoadStatus(j.dump()), StatusCode::kUnsupported, "model.byte_fallback");
  j = MinimalTokenizer();
  j["post_processor"] = {{"type", "TemplateProcessing"}};
  ExpectError(LoadStatus(j.dump()), StatusCode::kUnsupported, "post_processor.type");
  j = MinimalTokenizer();
  j["decoder"] = nullptr;
  ExpectError(LoadStatus(j.dump()), StatusCode::kUnsupported, "decoder");
  std::string nested(100000, '[');
  ExpectError(LoadStatus(nested), StatusCode::kInvalidFormat, "nesting");
}

TEST(BadTokenizer, D2DuplicatesAndOutOfRangeIdsAndBadMerges) {
  std::string text = MinimalTokenizer().dump();
  const std::string dup = "\"vocab\":{";
  text.replace(text.find(dup), dup.size(), dup + "\"he\":5,");  // "he" twice in vocab
  ExpectError(LoadStatus(text), StatusCode::kInvalidFormat, "duplicate key 'model.vocab.he'");
  json j = MinimalTokenizer();
  j["model"]["vocab"]["zz"] = 256;  // id shared with "he"
  ExpectError(LoadStatus(j.dump()), StatusCode::kInvalidFormat, "id 256 is used by two");
  j = MinimalTokenizer();
  j["model"]["vocab"]["zz"] = 1 << 30;
  ExpectError(LoadStatus(j.dump()), StatusCode::kInvalidFormat, "out of range");
  j = MinimalTokenizer();
  j["model"]["vocab"]["zz"] = -1;
  ExpectError(LoadStatus(j.dump()), StatusCode::kInvalidFormat, "out of range");
  j = MinimalTokenizer();
  j["model"]["merges"].push_back(json::array({"q", "\xE2\x82\xAC"}));
  ExpectError(LoadStatus(j.dump()), StatusCode::kInvalidFormat, "model.merges[3]");
  j = MinimalTokenizer();
  j["model"]["merges"].push_back("h e l");
  ExpectError(LoadStatus(j.dump()), StatusCode::kInvalidFormat, "model.merges[3]");
  j = MinimalTokenizer();
  j["added_tokens"].push_back(AddedToken(301, "<|end|>", true));
  ExpectError(LoadStatus(j.dump()), StatusCode::kInvalidFormat, "listed twice");
  j = MinimalTokenizer();
  j["added_tokens"].push_back(AddedToken(256, "<x>", true));
  ExpectError(LoadStatus(j.dump()), StatusCode::kInvalidFormat, "already used");
  j = MinimalTokenizer();
  j["added_tokens"].push_back(AddedToken(301, "he", false));
  ExpectError(LoadStatus(j.dump()), StatusCode::kInvalidFormat, "vocab gives it id 256");
}

TEST(BadTokenizer, D3SpecialTokensMustExist) {
  const std::string tok = MinimalTokenizer().dump();
  ExpectError(LoadStatus(tok, R"({"eos_token": "<|nope|>"})"), StatusCode::kInvalidFormat,
              "eos_token");
  ExpectError(LoadStatus(tok, R"({"pad_token": {"content": "<|nope|>"}})"),
              StatusCode::kInvalidFormat, "pad_token");
  ExpectError(LoadStatus(tok, R"({"bos_token": 5})"), StatusCode::kInvalidFormat, "bos_token");
  auto t = Tokenizer::FromJson(tok, R"({"eos_token": "<|end|>", "bos_token": null})", "t");
  ASSERT_TRUE(t.ok()) << t.status().message();
  EXPECT_EQ(t->eos_token_id(), 300);
  EXPECT_EQ(t->bos_token_id(), -1);
}

TEST(BadTokenizer, D4WrongElementTypes) {
  json j = MinimalTokenizer();
  j["model"]["vocab"]["zz"] = "7";
  ExpectError(LoadStatus(j.dump()), StatusCode::kInvalidFormat, "model.vocab.zz");
  j = MinimalTokenizer();
  j["model"]["merges"][1] = 42;
  ExpectError(LoadStatus(j.dump()), StatusCode::kInvalidFormat, "model.merges[1]");
  j = MinimalTokenizer();
  j["model"]["merges"][0] = json::array({"h", 1});
  ExpectError(LoadStatus(j.dump()), StatusCode::kInvalidFormat, "model.merges[0]");
  j = MinimalTokenizer();
  j["added_tokens"][0]["id"] = "300";
  ExpectError(LoadStatus(j.dump()), StatusCode::kInvalidFormat, "added_tokens[0].id");
  j = MinimalTokenizer();
  j["added_tokens"][0]["special"] = "yes";
  ExpectError(LoadStatus(j.dump()), StatusCode::kInvalidFormat, "added_tokens[0].special");
  j = MinimalTokenizer();
  j["model"]["vocab"] = json::array();
  ExpectError(LoadStatus(j.dump()), StatusCode::kInvalidFormat, "model.vocab");
}

TEST(BadTokenizer, D5PathologicalRegexNeverHangs) {
  json j = MinimalTokenizer();
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(a+)+$";
  TokenizerOptions opts;
  opts.splitter.match_limit = 100000;
  auto t = Tokenizer::FromJson(j.dump(), "", "redos", opts);
  ASSERT_TRUE(t.ok()) << t.status().message();
  auto ids = t->Encode(std::string(30, 'a') + "b");
  // Exponential backtracking is stopped by the match limit, as an error naming the cause.
  ExpectError(ids.status(), StatusCode::kInvalidFormat, "match limit");
}

TEST(BadTokenizer, D6InvalidRegex) {
  json j = MinimalTokenizer();
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "([a-z";
  ExpectError(LoadStatus(j.dump()), StatusCode::kInvalidFormat, "invalid regex at offset");
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\h+";
  ExpectError(LoadStatus(j.dump()), StatusCode::kUnsupported, "\\h");
}

TEST(BadTokenizer, D7HostileTextEncodesOrFailsCleanly) {
  auto t = Tokenizer::FromJson(MinimalTokenizer().dump(), "", "min");
  ASSERT_TRUE(t.ok());
  ExpectError(t->Encode("ab\xFF").status(), StatusCode::kInvalidFormat, "invalid UTF-8 at byte 2");
  ExpectError(t->Encode("\xED\xA0\x80").status(), StatusCode::kInvalidFormat, "invalid UTF-8");
  EXPECT_EQ(testing::Val(t->Encode(std::string("a\0b", 3))),
            (std::vector<int32_t>{'a', 0, 'b'}));
  // A 1 MB single word: one BPE piece through the O(n log n) path, every byte kept.
  const std::string word(1 << 20, 'l');
  auto ids = t->Encode(word);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(testing::Val(t->Decode(*ids, false)), word);
}

TEST(BadTokenizer, D8DecodeOutOfRangeIds) {
  auto t = Tokenizer::FromJson(MinimalTokenizer().dump(), "", "min");
  ASSERT_TRUE(t.ok());
  const std::vector<int32_t> bad = {'a', 299, 'b'};  // 259..299 are unassigned
  ExpectError(t->Decode(bad, false).status(), StatusCode::kInvalidFormat, "id 299 at position 1");
  const std::vector<int32_t> negative = {-1};
  ExpectError(t->Decode(negative, false).status(), StatusCode::kInvalidFormat, "id -1");
  const std::vector<int32_t> huge = {1 << 30};
  ExpectError(t->Decode(huge, false).status(), StatusCode::kInvalidFormat, "not in the vocab");
}

// HF AddedVocabulary::find_matches: lstrip eats whitespace before the token, rstrip after it,
// single_word only matches between non-word characters.
TEST(AddedTokens, StripAndSingleWordFlags) {
  json j = MinimalTokenizer();
  json l = AddedToken(301, "<L>", true), r = AddedToken(302, "<R>", true),
       w = AddedToken(303, "<W>", false);
  l["lstrip"] = true;
  r["rstrip"] = true;
  w["single_word"] = true;
  j["added_tokens"].push_back(l);
  j["added_tokens"].push_back(r);
  j["added_tokens"].push_back(w);
  auto t = Tokenizer::FromJson(j.dump(), "", "flags");
  ASSERT_TRUE(t.ok()) << t.status().message();
  using V = std::vector<int32_t>;
  EXPECT_EQ(testing::Val(t->Encode("a  <L>b")), (V{'a', 301, 'b'}));
  EXPECT_EQ(testing::Val(t->Encode("a<R> \t b")), (V{'a', 302, 'b'}));
  EXPECT_EQ(testing::Val(t->Encode("a <W> b")), (V{'a', ' ', 303, ' ', 'b'}));
  const V glued = testing::Val(t->Encode("a<W>b"));
  EXPECT_EQ(std::count(glued.begin(), glued.end(), 303), 0) << "single_word matched inside a word";
  const V spaced = testing::Val(t->Encode("a <W> b"));
  EXPECT_EQ(std::count(spaced.begin(), spaced.end(), 303), 1);
}

// `moestream tokenize` maps each failure to its exit code (3 invalid, 7 unsupported, 2 usage).
TEST(BadTokenizerCli, ExitCodes) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("moe_tok_cli_" + std::to_string(getpid()));
  fs::create_directories(dir);
  auto write = [&](const std::string& text) {
    std::ofstream(dir / "tokenizer.json") << text;
  };
  auto run = [&](const std::string& args, const std::string& stdin_text) {
    std::ofstream(dir / "in.txt") << stdin_text;
    std::string out;
    return testing::RunCommand(testing::MoestreamBin() + " tokenize --tokenizer " + dir.string() +
                               " " + args + " < " + (dir / "in.txt").string() + " 2>/dev/null",
                               &out);
  };
  write(MinimalTokenizer().dump());
  EXPECT_EQ(run("--jsonl", "\"hello\"\n"), 0);
  EXPECT_EQ(run("--jsonl --decode", "[104, 258]\n"), 0);
  EXPECT_EQ(run("--jsonl --decode", "[999999]\n"), 3);           // D8
  EXPECT_EQ(run("--jsonl --decode", "[\"x\"]\n"), 3);
  EXPECT_EQ(run("--decode", "12 -4\n"), 3);
  EXPECT_EQ(run("--jsonl", "not json\n"), 3);
  EXPECT_EQ(run("--bogus", ""), 2);
  write("{\"model\": ");                                        // D1
  EXPECT_EQ(run("--jsonl", "\"x\"\n"), 3);
  json j = MinimalTokenizer();
  j["model"]["type"] = "Unigram";
  write(j.dump());
  EXPECT_EQ(run("--jsonl", "\"x\"\n"), 7);
  j = MinimalTokenizer();
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(";  // D6
  write(j.dump());
  EXPECT_EQ(run("--jsonl", "\"x\"\n"), 3);
  fs::remove_all(dir);
  std::string out;
  EXPECT_EQ(testing::RunCommand(testing::MoestreamBin() + " tokenize --tokenizer " +
                                (dir / "missing").string() + " < /dev/null 2>/dev/null", &out), 4);
}

}  // namespace
}  // namespace moe
