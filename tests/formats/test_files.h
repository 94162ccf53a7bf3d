// SPDX-License-Identifier: Apache-2.0
// Test helpers: a minimal safetensors encoder written independently of src/formats (header JSON
// built by string concatenation, not nlohmann), temp dirs, and model-folder builders used by the
// formats tests and the CLI bad-input tests.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <map>
#include <string>
#include <vector>

namespace moe::testing {

struct StTensor {
  std::string name;
  std::string dtype;
  std::vector<uint64_t> shape;
  std::string data;  // raw little-endian bytes
};

inline std::string Le64(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return s;
}

// 8-byte length + header + data, exactly as given (no validation, for bad files).
inline std::string RawSafetensors(const std::string& header, const std::string& data) {
  return Le64(header.size()) + header + data;
}

// A well-formed file: tensors laid out in the given order, header padded with spaces to a
// multiple of 8 when pad8.
inline std::string EncodeSafetensors(const std::vector<StTensor>& tensors,
                                     const std::map<std::string, std::string>& metadata = {},
                                     bool pad8 = true) {
  std::string h = "{";
  bool first = true;
  if (!metadata.empty()) {
    h += "\"__metadata__\":{";
    for (auto it = metadata.begin(); it != metadata.end(); ++it) {
      if (it != metadata.begin()) h += ",";
      h += "\"" + it->first + "\":\"" + it->second + "\"";
    }
    h += "}";
    first = false;
  }
  std::string data;
  for (const StTensor& t : tensors) {
    if (!first) h += ",";
    first = false;
    h += "\"" + t.name + "\":{\"dtype\":\"" + t.dtype + "\",\"shape\":[";
    for (size_t i = 0; i < t.shape.size(); ++i) {
      if (i) h += ",";
      h += std::to_string(t.shape[i]);
    }
    h += "],\"data_offsets\":[" + std::to_string(data.size()) + "," +
         std::to_string(data.size() + t.data.size()) + "]}";
    data += t.data;
  }
  h += "}";
  if (pad8) {
    while (h.size() % 8 != 0) h += ' ';
  }
  return RawSafetensors(h, data);
}

inline std::string F32Bytes(const std::vector<float>& v) {
  std::string s(v.size() * 4, '\0');
  std::memcpy(s.data(), v.data(), s.size());
  return s;
}

// bf16 = the top 16 bits of an f32 (values chosen to be exact).
inline std::string BF16Bytes(const std::vector<float>& v) {
  std::string s;
  for (float f : v) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    s += static_cast<char>((u >> 16) & 0xff);
    s += static_cast<char>((u >> 24) & 0xff);
  }
  return s;
}

inline std::string U16Bytes(const std::vector<uint16_t>& v) {
  std::string s;
  for (uint16_t x : v) {
    s += static_cast<char>(x & 0xff);
    s += static_cast<char>(x >> 8);
  }
  return s;
}

// The whole file as bytes ("" when it cannot be read).
inline std::string Slurp(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline void WriteFile(const std::filesystem::path& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(f.good()) << p;
}

// A fresh directory removed at scope exit.
class TempDir {
 public:
  TempDir() {
    const char* base = getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/moe_formats_XXXXXX";
    char* p = mkdtemp(tmpl.data());
    if (p == nullptr) std::abort();
    path_ = p;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::string str() const { return path_.string(); }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

// A small valid qwen3_moe config.json (4.x spelling). `extra` is spliced into the object and
// overrides nothing: callers build variants by replacing fields in the returned text.
inline std::string TinyConfigJson() {
  return R"({
  "architectures": ["Qwen3MoeForCausalLM"],
  "model_type": "qwen3_moe",
  "auto_map": {"AutoModelForCausalLM": "evil.Model"},
  "vocab_size": 64,
  "hidden_size": 16,
  "num_hidden_layers": 3,
  "num_attention_heads": 4,
  "num_key_value_heads": 2,
  "head_dim": 8,
  "intermediate_size": 32,
  "moe_intermediate_size": 8,
  "num_experts": 4,
  "num_experts_per_tok": 2,
  "norm_topk_prob": true,
  "decoder_sparse_step": 1,
  "mlp_only_layers": [1],
  "rms_norm_eps": 1e-06,
  "rope_theta": 1000000.0,
  "rope_scaling": null,
  "max_position_embeddings": 128,
  "attention_bias": false,
  "use_sliding_window": false,
  "sliding_window": null,
  "hidden_act": "silu",
  "tie_word_embeddings": false,
  "bos_token_id": 1,
  "eos_token_id": 2,
  "torch_dtype": "bfloat16"
})";
}

// Replaces the first occurrence of `from` (which must exist) with `to`.
inline std::string Replace(std::string s, const std::string& from, const std::string& to) {
  size_t p = s.find(from);
  if (p == std::string::npos) std::abort();
  return s.replace(p, from.size(), to);
}

// Two small valid tensors, used as the base of many bad files.
inline std::vector<StTensor> TwoTensors() {
  return {{"a", "F32", {2}, F32Bytes({1.5f, -2.0f})},
          {"b", "BF16", {2, 2}, BF16Bytes({1.0f, 2.0f, -0.5f, 3.0f})}};
}

}  // namespace moe::testing
