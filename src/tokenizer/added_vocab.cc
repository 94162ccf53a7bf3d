// SPDX-License-Identifier: Apache-2.0
#include "tokenizer/added_vocab.h"

#include <utf8proc.h>

#include <algorithm>
#include <map>

#include "tokenizer/utf8.h"

namespace moe {

bool IsUnicodeWhiteSpace(char32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

namespace {

// Approximates Rust's `c.is_alphanumeric() || c == '_'` with general categories L* and N*
// (Rust also counts Other_Alphabetic marks). Only used for single_word tokens, which Qwen
// does not have.
bool IsWordChar(char32_t cp) {
  if (cp == '_') return true;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(cp))) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
      return true;
    default:
      return false;
  }
}

char32_t LastCodePoint(std::string_view s, size_t end) {
  size_t b = end - 1;
  while (b > 0 && (static_cast<unsigned char>(s[b]) & 0xC0) == 0x80) --b;
  return NextCodePoint(s, &b);
}

// Start of the run of whitespace ending at `end`.
size_t WhiteSpaceStartBefore(std::string_view s, size_t end) {
  while (end > 0) {
    size_t b = end - 1;
    while (b > 0 && (static_cast<unsigned char>(s[b]) & 0xC0) == 0x80) --b;
    size_t p = b;
    if (!IsUnicodeWhiteSpace(NextCodePoint(s, &p))) break;
    end = b;
  }
  return end;
}

size_t WhiteSpaceEndAfter(std::string_view s, size_t pos) {
  while (pos < s.size()) {
    size_t p = pos;
    if (!IsUnicodeWhiteSpace(NextCodePoint(s, &p))) break;
    pos = p;
  }
  return pos;
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedTokenRule> rules) : rules_(std::move(rules)) {
  // Build with std::map children, then flatten to sorted edge arrays.
  std::vector<std::map<uint8_t, uint32_t>> children(1);
  std::vector<int32_t> rule_at(1, -1);
  for (size_t r = 0; r < rules_.size(); ++r) {
    uint32_t node = 0;
    for (char c : rules_[r].content) {
      const uint8_t b = static_cast<uint8_t>(c);
      auto it = children[node].find(b);
      if (it == children[node].end()) {
        children.emplace_back();
        rule_at.push_back(-1);
        it = children[node].emplace(b, static_cast<uint32_t>(children.size() - 1)).first;
      }
      node = it->second;
    }
    rule_at[node] = static_cast<int32_t>(r);  // contents are unique (checked by the loader)
    if (!rules_[r].content.empty()) first_byte_[static_cast<uint8_t>(rules_[r].content[0])] = true;
  }
  nodes_.resize(children.size());
  for (size_t n = 0; n < children.size(); ++n) {
    nodes_[n].rule = rule_at[n];
    nodes_[n].first_child = static_cast<uint32_t>(edges_.size());
    nodes_[n].n_children = static_cast<uint32_t>(children[n].size());
    for (auto [b, child] : children[n]) edges_.push_back({b, child});
  }
}

int32_t AddedTokenMatcher::LongestAt(std::string_view text, size_t pos, size_t* len) const {
  int32_t best = -1;
  uint32_t node = 0;
  for (size_t i = pos; i < text.size(); ++i) {
    const Node& n = nodes_[node];
    const Edge* begin = edges_.data() + n.first_child;
    const Edge* end = begin + n.n_children;
    const uint8_t b = static_cast<uint8_t>(text[i]);
    const Edge* e = std::lower_bound(begin, end, b, [](const Edge& x, uint8_t v) { return x.byte < v; });
    if (e == end || e->byte != b) break;
    node = e->node;
    if (nodes_[node].rule >= 0) {
      best = nodes_[node].rule;
      *len = i + 1 - pos;
    }
  }
  return best;
}

void AddedTokenMatcher::FindMatches(std::string_view text, bool skip_special,
                                    std::vector<AddedSplit>* out) const {
  size_t start_offset = 0;
  size_t pos = 0;
  while (pos < text.size() && !rules_.empty()) {
    if (!first_byte_[static_cast<uint8_t>(text[pos])]) {
      ++pos;
      continue;
    }
    size_t len = 0;
    const int32_t r = LongestAt(text, pos, &len);
    if (r < 0) {
      ++pos;
      continue;
    }
    const AddedTokenRule& rule = rules_[r];
    size_t start = pos, stop = pos + len;
    pos = stop;  // the automaton resumes after the raw match, whatever we do with it
    if (skip_special && rule.special) continue;
    if (rule.single_word) {
      const bool start_ok = start == 0 || !IsWordChar(LastCodePoint(text, start));
      size_t p = stop;
      const bool stop_ok = stop == text.size() || !IsWordChar(NextCodePoint(text, &p));
      if (!start_ok || !stop_ok) continue;
    }
    if (rule.lstrip) start = std::max(WhiteSpaceStartBefore(text, start), start_offset);
    if (rule.rstrip) stop = WhiteSpaceEndAfter(text, stop);
    if (start_offset < start) out->push_back({-1, start_offset, start});
    out->push_back({rule.id, start, stop});
    start_offset = stop;
  }
  if (start_offset < text.size()) out->push_back({-1, start_offset, text.size()});
}

}  // namespace moe
