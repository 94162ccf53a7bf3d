// SPDX-License-Identifier: Apache-2.0
// config.json parsing: both transformers spellings, Omni nesting, rope variants, bad-inputs.md
// C1-C7.
#include "formats/hf_config.h"

#include <gtest/gtest.h>

#include "formats/test_files.h"

namespace moe {
namespace {

using testing::Replace;
using testing::TempDir;
using testing::TinyConfigJson;
using testing::WriteFile;

Result<Qwen3MoeConfig> Parse(const std::string& text) {
  return ParseHfConfig(text, "m/config.json");
}

void ExpectError(const Result<Qwen3MoeConfig>& r, StatusCode code, std::vector<std::string> parts) {
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), code) << r.status().message();
  EXPECT_EQ(r.status().message().rfind("m/config.json: ", 0), 0u) << r.status().message();
  for (const std::string& p : parts) {
    EXPECT_NE(r.status().message().find(p), std::string::npos)
        << "'" << p << "' not in: " << r.status().message();
  }
}

TEST(HfConfig, Transformers4Spelling) {
  Result<Qwen3MoeConfig> r = Parse(TinyConfigJson());
  ASSERT_TRUE(r.ok()) << r.status().message();
  const Qwen3MoeConfig& c = r.value();
  EXPECT_EQ(c.model_type, "qwen3_moe");
  EXPECT_EQ(c.tensor_prefix, "");
  EXPECT_EQ(c.dtype, "bfloat16");
  EXPECT_EQ(c.vocab_size, 64);
  EXPECT_EQ(c.hidden_size, 16);
  EXPECT_EQ(c.num_hidden_layers, 3);
  EXPECT_EQ(c.num_attention_heads, 4);
  EXPECT_EQ(c.num_key_value_heads, 2);
  EXPECT_EQ(c.head_dim, 8);  // from config, not 16/4
  EXPECT_EQ(c.intermediate_size, 32);
  EXPECT_EQ(c.moe_intermediate_size, 8);
  EXPECT_EQ(c.num_experts, 4);
  EXPECT_EQ(c.num_experts_per_tok, 2);
  EXPECT_TRUE(c.norm_topk_prob);
  EXPECT_EQ(c.mlp_only_layers, (std::vector<int64_t>{1}));
  EXPECT_TRUE(c.IsMoeLayer(0));
  EXPECT_FALSE(c.IsMoeLayer(1));
  EXPECT_TRUE(c.IsMoeLayer(2));
  EXPECT_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_EQ(c.rope_theta, 1e6);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::kDefault);
  EXPECT_EQ(c.max_position_embeddings, 128);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{2}));
}

TEST(HfConfig, Transformers5Spelling) {
  std::string t = TinyConfigJson();
  t = Replace(t, "\"num_experts\": 4", "\"num_local_experts\": 4");
  t = Replace(t, "\"rope_theta\": 1000000.0,", "");
  t = Replace(t, "\"rope_scaling\": null",
              "\"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": 5000.0}");
  t = Replace(t, "\"torch_dtype\": \"bfloat16\"", "\"dtype\": \"float32\"");
  Result<Qwen3MoeConfig> r = Parse(t);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->num_experts, 4);
  EXPECT_EQ(r->rope_theta, 5000.0);
  EXPECT_EQ(r->dtype, "float32");
  // Both expert-count spellings present must agree.
  std::string both = Replace(TinyConfigJson(), "\"num_experts\": 4",
                             "\"num_experts\": 4, \"num_local_experts\": 8");
  ExpectError(Parse(both), StatusCode::kInvalidFormat, {"num_local_experts", "disagrees"});
}

TEST(HfConfig, DecoderSparseStepAndDefaults) {
  std::string t =
      Replace(TinyConfigJson(), "\"decoder_sparse_step\": 1", "\"decoder_sparse_step\": 2");
  t = Replace(t, "\"mlp_only_layers\": [1],", "");
  t = Replace(t, "\"head_dim\": 8,", "");
  t = Replace(t, "\"bos_token_id\": 1", "\"bos_token_id\": null");
  t = Replace(t, "\"eos_token_id\": 2", "\"eos_token_id\": [2, 3, 2]");
  t = Replace(t, "\"norm_topk_prob\": true,", "");
  Result<Qwen3MoeConfig> r = Parse(t);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->head_dim, 4);  // hidden_size / num_attention_heads when absent
  EXPECT_FALSE(r->IsMoeLayer(0));
  EXPECT_TRUE(r->IsMoeLayer(1));
  EXPECT_FALSE(r->IsMoeLayer(2));
  EXPECT_EQ(r->bos_token_id, -1);
  EXPECT_EQ(r->eos_token_ids, (std::vector<int64_t>{2, 3}));
  EXPECT_FALSE(r->norm_topk_prob);  // class default
}

TEST(HfConfig, OmniThinkerTextConfig) {
  std::string text = TinyConfigJson();
  text = Replace(text, "\"model_type\": \"qwen3_moe\"", "\"model_type\": \"qwen3_omni_moe_text\"");
  text = Replace(text, "\"rope_scaling\": null",
                 "\"rope_scaling\": {\"rope_type\": \"default\", \"interleaved\": true, "
                 "\"mrope_interleaved\": true, \"mrope_section\": [24, 20, 20]}");
  std::string omni =
      "{\"model_type\": \"qwen3_omni_moe\", \"architectures\": "
      "[\"Qwen3OmniMoeForConditionalGeneration\"], \"talker_config\": {\"num_local_experts\": 128},"
      " \"thinker_config\": {\"audio_token_id\": 151675, \"text_config\": " +
      text + "}}";
  Result<Qwen3MoeConfig> r = ParseHfConfig(omni, "m/config.json");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->model_type, "qwen3_omni_moe");
  EXPECT_EQ(r->tensor_prefix, "thinker.");
  EXPECT_EQ(r->num_experts, 4);
  EXPECT_EQ(r->rope_scaling.type, RopeScaling::Type::kDefault);
  // Errors name the nested key path.
  std::string bad = Replace(omni, "\"num_experts_per_tok\": 2", "\"num_experts_per_tok\": \"2\"");
  ExpectError(
      ParseHfConfig(bad, "m/config.json"), StatusCode::kInvalidFormat,
      {"key 'thinker_config.text_config.num_experts_per_tok': expected integer, got string"});
  ExpectError(Parse("{\"model_type\": \"qwen3_omni_moe\"}"), StatusCode::kInvalidFormat,
              {"thinker_config"});
}

TEST(HfConfig, Yarn) {
  std::string t = Replace(TinyConfigJson(), "\"rope_scaling\": null",
                          "\"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4.0, "
                          "\"original_max_position_embeddings\": 32}");
  Result<Qwen3MoeConfig> r = Parse(t);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->rope_scaling.type, RopeScaling::Type::kYarn);
  EXPECT_EQ(r->rope_scaling.factor, 4.0);
  EXPECT_EQ(r->rope_scaling.original_max_position_embeddings, 32.0);
  EXPECT_EQ(r->rope_scaling.beta_fast, 32.0);
  EXPECT_EQ(r->rope_scaling.beta_slow, 1.0);
  EXPECT_EQ(r->rope_scaling.attention_factor, 0.0);
  EXPECT_TRUE(r->rope_scaling.truncate);
  // v5: factor derived from max_position_embeddings / original (128 / 32) when absent; legacy
  // "type".
  std::string v5 =
      Replace(TinyConfigJson(), "\"rope_scaling\": null",
              "\"rope_parameters\": {\"type\": \"yarn\", \"rope_theta\": 10000.0, "
              "\"original_max_position_embeddings\": 32, \"beta_fast\": 16, \"truncate\": false}");
  Result<Qwen3MoeConfig> r5 = Parse(v5);
  ASSERT_TRUE(r5.ok()) << r5.status().message();
  EXPECT_EQ(r5->rope_scaling.factor, 4.0);
  EXPECT_EQ(r5->rope_scaling.beta_fast, 16.0);
  EXPECT_FALSE(r5->rope_scaling.truncate);
  EXPECT_EQ(r5->rope_theta, 10000.0);
}

TEST(HfConfig, RopeTypes) {
  auto with = [](const std::string& type) {
    return Parse(Replace(TinyConfigJson(), "\"rope_scaling\": null",
                         "\"rope_scaling\": {\"rope_type\": \"" + type + "\", \"factor\": 2.0}"));
  };
  for (const char* t : {"linear", "dynamic", "llama3", "longrope"}) {
    ExpectError(with(t), StatusCode::kUnsupported,
                {"rope_scaling.rope_type", t, "not implemented"});
  }
  // C7: unknown type.
  ExpectError(with("wobbly"), StatusCode::kInvalidFormat,
              {"rope_scaling.rope_type", "unknown rope type 'wobbly'"});
  ExpectError(Parse(Replace(TinyConfigJson(), "\"rope_scaling\": null",
                            "\"rope_scaling\": {\"type\": \"bogus\"}")),
              StatusCode::kInvalidFormat, {"rope_scaling.type", "unknown rope type 'bogus'"});
  EXPECT_TRUE(with("default").ok());
  ExpectError(Parse(Replace(TinyConfigJson(), "\"rope_scaling\": null", "\"rope_scaling\": 3")),
              StatusCode::kInvalidFormat, {"rope_scaling", "expected object"});
  ExpectError(
      Parse(Replace(
          TinyConfigJson(), "\"rope_scaling\": null",
          "\"rope_scaling\": {\"rope_type\": \"default\", \"partial_rotary_factor\": 0.5}")),
      StatusCode::kUnsupported, {"partial_rotary_factor"});
}

TEST(HfConfig, C1MissingOrMistypedKeys) {
  ExpectError(Parse("{not json"), StatusCode::kInvalidFormat, {"invalid JSON at byte"});
  ExpectError(Parse("[]"), StatusCode::kInvalidFormat, {"top level is array"});
  ExpectError(Parse(Replace(TinyConfigJson(), "\"num_experts\": 4", "\"num_experts\": \"64\"")),
              StatusCode::kInvalidFormat, {"key 'num_experts': expected integer, got string"});
  ExpectError(Parse(Replace(TinyConfigJson(), "\"hidden_size\": 16,", "")),
              StatusCode::kInvalidFormat, {"key 'hidden_size': missing"});
  ExpectError(Parse(Replace(TinyConfigJson(), "\"num_experts\": 4,", "")),
              StatusCode::kInvalidFormat, {"key 'num_experts': missing"});
  ExpectError(Parse(Replace(TinyConfigJson(), "\"hidden_size\": 16", "\"hidden_size\": 16.0")),
              StatusCode::kInvalidFormat, {"key 'hidden_size': expected integer, got float"});
  ExpectError(Parse(Replace(TinyConfigJson(), "\"norm_topk_prob\": true", "\"norm_topk_prob\": 1")),
              StatusCode::kInvalidFormat, {"key 'norm_topk_prob': expected boolean, got integer"});
  ExpectError(Parse(Replace(TinyConfigJson(), "\"eos_token_id\": 2", "\"eos_token_id\": \"2\"")),
              StatusCode::kInvalidFormat, {"key 'eos_token_id'"});
  ExpectError(Parse(Replace(TinyConfigJson(), "\"eos_token_id\": 2", "\"eos_token_id\": [2, 99]")),
              StatusCode::kInvalidFormat, {"key 'eos_token_id[1]'", "out of range"});
  ExpectError(Parse(Replace(TinyConfigJson(), "\"bos_token_id\": 1", "\"bos_token_id\": [1]")),
              StatusCode::kInvalidFormat, {"key 'bos_token_id'"});
  ExpectError(Parse(Replace(TinyConfigJson(), "\"rms_norm_eps\": 1e-06", "\"rms_norm_eps\": -1")),
              StatusCode::kInvalidFormat, {"key 'rms_norm_eps'"});
  ExpectError(Parse(Replace(TinyConfigJson(), "\"vocab_size\": 64",
                            "\"vocab_size\": 64, \"vocab_size\": 65")),
              StatusCode::kInvalidFormat, {"duplicate key 'vocab_size'"});
}

TEST(HfConfig, C2NonPositiveSizes) {
  for (const char* key :
       {"num_hidden_layers", "num_experts", "num_experts_per_tok", "hidden_size"}) {
    for (const char* v : {"0", "-4"}) {
      std::string t = TinyConfigJson();
      size_t p = t.find(std::string("\"") + key + "\": ");
      ASSERT_NE(p, std::string::npos);
      size_t vs = p + std::string(key).size() + 4, ve = t.find(',', vs);
      t.replace(vs, ve - vs, v);
      ExpectError(Parse(t), StatusCode::kInvalidFormat,
                  {std::string("key '") + key + "'", "out of range"});
    }
  }
}

TEST(HfConfig, C3Inconsistent) {
  ExpectError(
      Parse(Replace(TinyConfigJson(), "\"num_experts_per_tok\": 2", "\"num_experts_per_tok\": 5")),
      StatusCode::kInvalidFormat, {"key 'num_experts_per_tok'", "5 vs [1, 4]"});
  std::string t = Replace(TinyConfigJson(), "\"head_dim\": 8,", "");
  t = Replace(t, "\"num_attention_heads\": 4", "\"num_attention_heads\": 6");
  t = Replace(t, "\"num_key_value_heads\": 2", "\"num_key_value_heads\": 3");
  ExpectError(Parse(t), StatusCode::kInvalidFormat,
              {"hidden_size 16 not divisible by num_attention_heads 6"});
  ExpectError(
      Parse(Replace(TinyConfigJson(), "\"num_key_value_heads\": 2", "\"num_key_value_heads\": 3")),
      StatusCode::kInvalidFormat, {"num_attention_heads 4 not divisible by num_key_value_heads 3"});
  ExpectError(
      Parse(Replace(TinyConfigJson(), "\"mlp_only_layers\": [1]", "\"mlp_only_layers\": [3]")),
      StatusCode::kInvalidFormat, {"key 'mlp_only_layers[0]'", "not a layer index in [0, 3)"});
  ExpectError(
      Parse(Replace(TinyConfigJson(), "\"mlp_only_layers\": [1]", "\"mlp_only_layers\": [-1]")),
      StatusCode::kInvalidFormat, {"key 'mlp_only_layers[0]'"});
  ExpectError(
      Parse(Replace(TinyConfigJson(), "\"mlp_only_layers\": [1]", "\"mlp_only_layers\": [\"1\"]")),
      StatusCode::kInvalidFormat, {"key 'mlp_only_layers[0]'"});
  // A dense layer needs intermediate_size.
  ExpectError(Parse(Replace(TinyConfigJson(), "\"intermediate_size\": 32,", "")),
              StatusCode::kInvalidFormat,
              {"key 'intermediate_size'", "layer 1 is a dense MLP layer"});
}

TEST(HfConfig, C4HugeValuesRejectedBeforeAllocation) {
  ExpectError(Parse(Replace(TinyConfigJson(), "\"vocab_size\": 64", "\"vocab_size\": 2147483648")),
              StatusCode::kInvalidFormat, {"key 'vocab_size'", "2147483648 vs [1, 16777216]"});
  ExpectError(Parse(Replace(TinyConfigJson(), "\"intermediate_size\": 32",
                            "\"intermediate_size\": 1099511627776")),
              StatusCode::kInvalidFormat, {"key 'intermediate_size'", "out of range"});
  ExpectError(Parse(Replace(TinyConfigJson(), "\"num_experts\": 4",
                            "\"num_experts\": 18446744073709551615")),
              StatusCode::kInvalidFormat, {"key 'num_experts'", "out of range"});
  ExpectError(Parse(Replace(TinyConfigJson(), "\"head_dim\": 8", "\"head_dim\": 4096")),
              StatusCode::kInvalidFormat, {"key 'head_dim'"});
  ExpectError(
      Parse(Replace(TinyConfigJson(), "\"num_hidden_layers\": 3", "\"num_hidden_layers\": 100000")),
      StatusCode::kInvalidFormat, {"key 'num_hidden_layers'"});
}

TEST(HfConfig, C5UnsupportedArchitecture) {
  ExpectError(Parse(Replace(TinyConfigJson(), "\"model_type\": \"qwen3_moe\"",
                            "\"model_type\": \"mixtral\"")),
              StatusCode::kUnsupported, {"'mixtral'", "qwen3_moe", "qwen3_omni_moe"});
  ExpectError(Parse(Replace(TinyConfigJson(), "\"model_type\": \"qwen3_moe\",", "")),
              StatusCode::kInvalidFormat, {"key 'model_type': missing"});
  ExpectError(
      Parse(Replace(TinyConfigJson(), "\"attention_bias\": false", "\"attention_bias\": true")),
      StatusCode::kUnsupported, {"attention_bias"});
  ExpectError(Parse(Replace(TinyConfigJson(), "\"use_sliding_window\": false",
                            "\"use_sliding_window\": true")),
              StatusCode::kUnsupported, {"use_sliding_window"});
  ExpectError(
      Parse(Replace(TinyConfigJson(), "\"hidden_act\": \"silu\"", "\"hidden_act\": \"gelu\"")),
      StatusCode::kUnsupported, {"hidden_act", "gelu"});
  ExpectError(Parse(Replace(TinyConfigJson(), "\"hidden_act\"",
                            "\"shared_expert_intermediate_size\": 8, \"hidden_act\"")),
              StatusCode::kUnsupported, {"shared_expert_intermediate_size"});
  // sliding_window set but not used is fine (v5 forces it to None).
  EXPECT_TRUE(
      Parse(Replace(TinyConfigJson(), "\"sliding_window\": null", "\"sliding_window\": 4096"))
          .ok());
}

// C6: auto_map is in TinyConfigJson and is ignored; this test proves parsing does not depend on it
// (the parser has no code path that could execute anything).
TEST(HfConfig, C6AutoMapIgnored) {
  Result<Qwen3MoeConfig> with = Parse(TinyConfigJson());
  Result<Qwen3MoeConfig> without = Parse(
      Replace(TinyConfigJson(), "\"auto_map\": {\"AutoModelForCausalLM\": \"evil.Model\"},", ""));
  ASSERT_TRUE(with.ok());
  ASSERT_TRUE(without.ok());
  EXPECT_EQ(with->num_experts, without->num_experts);
}

TEST(HfConfig, C7NonStandardJson) {
  ExpectError(Parse(Replace(TinyConfigJson(), "\"rms_norm_eps\": 1e-06", "\"rms_norm_eps\": NaN")),
              StatusCode::kInvalidFormat, {"invalid JSON at byte"});
  ExpectError(
      Parse(Replace(TinyConfigJson(), "\"rope_theta\": 1000000.0", "\"rope_theta\": Infinity")),
      StatusCode::kInvalidFormat, {"invalid JSON at byte"});
}

TEST(HfConfig, LoadFromDirWithGenerationConfig) {
  TempDir dir;
  Result<Qwen3MoeConfig> missing = LoadHfConfig(dir.str());
  EXPECT_EQ(missing.status().code(), StatusCode::kIoError);
  EXPECT_NE(missing.status().message().find("config.json"), std::string::npos);
  WriteFile(dir / "config.json", TinyConfigJson());
  WriteFile(dir / "generation_config.json", "{\"eos_token_id\": [5, 2], \"bos_token_id\": 1}");
  Result<Qwen3MoeConfig> r = LoadHfConfig(dir.str());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->eos_token_ids, (std::vector<int64_t>{2, 5}));
  WriteFile(dir / "generation_config.json", "{\"eos_token_id\": 7.5}");
  Result<Qwen3MoeConfig> bad = LoadHfConfig(dir.str());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidFormat);
  EXPECT_NE(bad.status().message().find("generation_config.json"), std::string::npos);
}

TEST(HfConfig, MergeGenerationConfigInt) {
  Qwen3MoeConfig c = Parse(TinyConfigJson()).value();
  ASSERT_TRUE(MergeGenerationConfig("{\"eos_token_id\": 9}", "g.json", &c).ok());
  ASSERT_TRUE(MergeGenerationConfig("{\"eos_token_id\": null}", "g.json", &c).ok());
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{2, 9}));
}

}  // namespace
}  // namespace moe
