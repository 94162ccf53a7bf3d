// SPDX-License-Identifier: Apache-2.0
// Added-token matching, as HF tokenizers' AddedVocabulary::find_matches: leftmost-longest over
// all token contents, then single_word / lstrip / rstrip adjustments.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace moe {

struct AddedTokenRule {
  int32_t id = -1;
  std::string content;
  bool special = false;
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
};

// A piece of the input: an added token (id >= 0) or plain text (id == -1), as byte offsets.
struct AddedSplit {
  int32_t id = -1;
  size_t begin = 0;
  size_t end = 0;
};

// Byte trie over the contents of one group of added tokens. Immutable after construction;
// thread-safe.
class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  explicit AddedTokenMatcher(std::vector<AddedTokenRule> rules);

  bool empty() const { return rules_.empty(); }

  // Splits valid UTF-8 `text` into added tokens and the text between them. With
  // `skip_special` (HF encode_special_tokens), special tokens are matched but left as text.
  void FindMatches(std::string_view text, bool skip_special, std::vector<AddedSplit>* out) const;

 private:
  struct Node {
    int32_t rule = -1;       // index into rules_ of the token ending here
    uint32_t first_child = 0;  // index into edges_; children are edges_[first_child, +n)
    uint32_t n_children = 0;
  };
  struct Edge {
    uint8_t byte;
    uint32_t node;
  };
  // Longest rule matching at text[pos], or -1.
  int32_t LongestAt(std::string_view text, size_t pos, size_t* len) const;

  std::vector<AddedTokenRule> rules_;
  std::vector<Node> nodes_;
  std::vector<Edge> edges_;
  bool first_byte_[256] = {};
};

// Unicode White_Space (Rust char::is_whitespace).
bool IsUnicodeWhiteSpace(char32_t cp);

}  // namespace moe
