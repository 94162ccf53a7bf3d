// SPDX-License-Identifier: Apache-2.0
// Parses tokenizer.json (+ tokenizer_config.json) into plain data, accepting exactly the
// pipeline Qwen2/2.5/3/3-Omni use (spec hf-moe-checkpoints.md §6.1). Any other component or
// option is kUnsupported naming the key; malformed content is kInvalidFormat naming the key.
// No semantic validation of ids/merges here; that happens when the Tokenizer is built.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "util/status.h"

namespace moe {

struct AddedTokenSpec {
  int32_t id = -1;
  std::string content;
  bool special = false;
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
  bool normalized = false;
};

struct TokenizerSpec {
  std::vector<std::pair<std::string, int64_t>> vocab;            // model.vocab, file order
  std::vector<std::pair<std::string, std::string>> merges;       // model.merges, rank order
  std::vector<AddedTokenSpec> added_tokens;
  bool nfc = false;                 // normalizer NFC (else none)
  std::string split_pattern;        // pre_tokenizer Split pattern
  bool split_pattern_is_regex = true;  // {"Regex": ..} vs {"String": ..}
};

// Special-token settings from tokenizer_config.json; token strings, not ids.
struct TokenizerConfigSpec {
  std::optional<std::string> bos_token, eos_token, pad_token;
  bool split_special_tokens = false;
};

// `what` names the file in messages.
Result<TokenizerSpec> ParseTokenizerJson(std::string_view text, std::string_view what);
Result<TokenizerConfigSpec> ParseTokenizerConfigJson(std::string_view text,
                                                     std::string_view what);

}  // namespace moe
