// SPDX-License-Identifier: Apache-2.0
#include "tokenizer/tokenizer.h"

#include <filesystem>

#include "tokenizer/byte_level.h"
#include "tokenizer/tokenizer_json.h"
#include "util/file.h"

namespace moe {
namespace {

// Per-call memo of BPE results (HF keeps a similar word cache): frequent words are merged
// once per Encode call. Per call rather than shared so Encode stays lock-free and const.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
};

}  // namespace

struct WordCache {
  static constexpr size_t kMaxWordBytes = 48;
  static constexpr size_t kMaxEntries = 1 << 16;
  // word -> (offset, count) into ids
  std::unordered_map<std::string, std::pair<uint32_t, uint32_t>, StringHash, std::equal_to<>> map;
  std::vector<int32_t> ids;
};

namespace {

}  // namespace

Result<Tokenizer> Tokenizer::Load(const std::string& path, const TokenizerOptions& options) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path file(path);
  if (fs::is_directory(file, ec)) file /= "tokenizer.json";
  MOE_ASSIGN_OR_RETURN(std::string text, ReadFileToString(file.string(), options.max_file_bytes));
  std::string config;
  const fs::path config_path = file.parent_path() / "tokenizer_config.json";
  if (fs::exists(config_path, ec)) {
    MOE_ASSIGN_OR_RETURN(config, ReadFileToString(config_path.string(), 64 << 20));
  }
  MOE_ASSIGN_OR_RETURN(TokenizerSpec spec, ParseTokenizerJson(text, file.string()));
  TokenizerConfigSpec config_spec;
  if (!config.empty()) {
    MOE_ASSIGN_OR_RETURN(config_spec, ParseTokenizerConfigJson(config, config_path.string()));
  }
  return Build(std::move(spec), config_spec, file.string(), options);
}

Result<Tokenizer> Tokenizer::FromJson(std::string_view tokenizer_json, std::string_view config_json,
                                      std::string_view what, const TokenizerOptions& options) {
  MOE_ASSIGN_OR_RETURN(TokenizerSpec spec, ParseTokenizerJson(tokenizer_json, what));
  TokenizerConfigSpec config_spec;
  if (!config_json.empty()) {
    MOE_ASSIGN_OR_RETURN(config_spec, ParseTokenizerConfigJson(config_json, "tokenizer_config.json"));
  }
  return Build(std::move(spec), config_spec, what, options);
}

Result<Tokenizer> Tokenizer::Build(TokenizerSpec spec, const TokenizerConfigSpec& config,
                                   std::string_view what, const TokenizerOptions& options) {
  Tokenizer t;
  // Ids must be dense-ish: a table indexed by id is allocated, so bound it by the entry count.
  const int64_t n_entries = static_cast<int64_t>(spec.vocab.size() + spec.added_tokens.size());
  const int64_t id_limit = 2 * n_entries + 1024;
  int64_t max_id = -1;
  for (const auto& [token, id] : spec.vocab) {
    if (id < 0 || id >= id_limit) {
      return Error(StatusCode::kInvalidFormat, "{}: key 'model.vocab.{}': id {} out of range "
                   "[0, {}) for {} tokens", what, token, id, id_limit, n_entries);
    }
    max_id = std::max(max_id, id);
  }
  for (const AddedTokenSpec& a : spec.added_tokens) {
    if (a.id >= id_limit) {
      return Error(StatusCode::kInvalidFormat, "{}: key 'added_tokens': id {} of '{}' out of "
                   "range [0, {})", what, a.id, a.content, id_limit);
    }
    max_id = std::max<int64_t>(max_id, a.id);
  }
  const size_t n_vocab = static_cast<size_t>(max_id + 1);
  t.token_bytes_.resize(n_vocab);
  t.known_.assign(n_vocab, 0);
  t.special_.assign(n_vocab, 0);
  t.token_to_id_.reserve(static_cast<size_t>(n_entries));
  for (auto& [token, id] : spec.vocab) {
    if (t.known_[id]) {
      return Error(StatusCode::kInvalidFormat, "{}: key 'model.vocab': id {} is used by two "
                   "tokens", what, id);
    }
    t.known_[id] = 1;
    t.token_bytes_[id] = ByteLevelDecodeToken(token);
    t.token_to_id_.emplace(std::move(token), static_cast<int32_t>(id));
  }
  // Merges: both parts and their concatenation must be vocab tokens (HF BPE builder rule).
  std::vector<std::pair<uint64_t, MergeTable::Value>> merge_entries;
  merge_entries.reserve(spec.merges.size());
  for (size_t rank = 0; rank < spec.merges.size(); ++rank) {
    const auto& [a, b] = spec.merges[rank];
    auto ia = t.token_to_id_.find(a), ib = t.token_to_id_.find(b),
         iab = t.token_to_id_.find(a + b);
    if (ia == t.token_to_id_.end() || ib == t.token_to_id_.end() ||
        iab == t.token_to_id_.end()) {
      const std::string& missing = ia == t.token_to_id_.end() ? a
                                   : ib == t.token_to_id_.end() ? b : a + b;
      return Error(StatusCode::kInvalidFormat, "{}: key 'model.merges[{}]': merge of '{}' and "
                   "'{}' references token '{}' that is not in the vocab", what, rank, a, b,
                   missing);
    }
    merge_entries.push_back({MergeTable::Key(ia->second, ib->second),
                             {static_cast<int32_t>(rank), iab->second}});
  }
  MergeTable merges;
  merges.Build(merge_entries);
  // Monotone merge list: each merge's rank exceeds the ranks of all merges producing its parts.
  std::vector<int32_t> max_producer(t.token_bytes_.size(), -1);
  for (const auto& [key, value] : merge_entries) {
    max_producer[value.id] = std::max(max_producer[value.id], value.rank);
  }
  bool monotone = true;
  for (const auto& [key, value] : merge_entries) {
    const int32_t a = static_cast<int32_t>(key >> 32), b = static_cast<int32_t>(key & 0xFFFFFFFF);
    monotone = monotone && value.rank > max_producer[a] && value.rank > max_producer[b];
  }
  int32_t byte_ids[256];
  for (int b = 0; b < 256; ++b) {
    std::string ch;
    AppendUtf8(ByteToUnicode(static_cast<uint8_t>(b)), &ch);
    auto it = t.token_to_id_.find(ch);
    byte_ids[b] = it == t.token_to_id_.end() ? -1 : it->second;
  }
  t.bpe_ = BpeModel(byte_ids, std::move(merges), monotone);

  // Added tokens: unique contents; an id may coincide with a vocab id only for the same text.
  std::vector<AddedTokenRule> raw_rules, normalized_rules;
  std::unordered_map<std::string, int32_t> added_seen;
  for (const AddedTokenSpec& a : spec.added_tokens) {
    if (!added_seen.emplace(a.content, a.id).second) {
      return Error(StatusCode::kInvalidFormat, "{}: key 'added_tokens': token '{}' is listed "
                   "twice", what, a.content);
    }
    auto existing = t.token_to_id_.find(a.content);
    if (existing != t.token_to_id_.end() && existing->second != a.id) {
      return Error(StatusCode::kInvalidFormat, "{}: key 'added_tokens': token '{}' has id {} but "
                   "the vocab gives it id {}", what, a.content, a.id, existing->second);
    }
    if (t.known_[a.id] && existing == t.token_to_id_.end()) {
      return Error(StatusCode::kInvalidFormat, "{}: key 'added_tokens': id {} of '{}' is "
                   "already used by another token", what, a.id, a.content);
    }
    t.known_[a.id] = 1;
    t.special_[a.id] = a.special;
    t.token_bytes_[a.id] = ByteLevelDecodeToken(a.content);
    t.token_to_id_[a.content] = a.id;
    AddedTokenRule rule{a.id, a.content, a.special, a.lstrip, a.rstrip, a.single_word};
    if (a.normalized && spec.nfc) {
      MOE_ASSIGN_OR_RETURN(rule.content, NormalizeNfc(a.content));
      normalized_rules.push_back(std::move(rule));
    } else {
      raw_rules.push_back(std::move(rule));
    }
  }
  t.raw_matcher_ = AddedTokenMatcher(std::move(raw_rules));
  t.normalized_matcher_ = AddedTokenMatcher(std::move(normalized_rules));

  MOE_ASSIGN_OR_RETURN(RegexSplitter splitter,
                       RegexSplitter::Create(spec.split_pattern, spec.split_pattern_is_regex,
                                             what, options.splitter));
  t.splitter_ = std::make_unique<RegexSplitter>(std::move(splitter));
  t.nfc_ = spec.nfc;
  t.split_special_tokens_ = config.split_special_tokens;

  // Special tokens named by tokenizer_config.json must exist (D3: an out-of-range eos id
  // would index past the embedding).
  const std::pair<const std::optional<std::string>*, int32_t*> named[] = {
      {&config.bos_token, &t.bos_id_}, {&config.eos_token, &t.eos_id_},
      {&config.pad_token, &t.pad_id_}};
  const char* names[] = {"bos_token", "eos_token", "pad_token"};
  for (int i = 0; i < 3; ++i) {
    if (!named[i].first->has_value()) continue;
    const int32_t id = t.TokenId(**named[i].first);
    if (id < 0) {
      return Error(StatusCode::kInvalidFormat, "tokenizer_config.json: key '{}': token '{}' is "
                   "not in the vocabulary of {}", names[i], **named[i].first, what);
    }
    *named[i].second = id;
  }
  return t;
}

int32_t Tokenizer::TokenId(std::string_view token) const {
  auto it = token_to_id_.find(std::string(token));
  return it == token_to_id_.end() ? -1 : it->second;
}

Status Tokenizer::EncodeText(std::string_view text, EncodeScratch* scratch,
                             std::vector<int32_t>* ids) const {
  scratch->pieces.clear();
  MOE_TRY(splitter_->SplitOffsets(text, scratch->regex, &scratch->pieces));
  WordCache& cache = *scratch->cache;
  for (auto [b, e] : scratch->pieces) {
    const std::string_view word = text.substr(b, e - b);
    if (word.size() > WordCache::kMaxWordBytes) {
      bpe_.EncodeWord(word, &scratch->bpe, ids);
      continue;
    }
    auto it = cache.map.find(word);
    if (it != cache.map.end()) {
      const auto [offset, count] = it->second;
      ids->insert(ids->end(), cache.ids.begin() + offset, cache.ids.begin() + offset + count);
      continue;
    }
    const size_t before = ids->size();
    bpe_.EncodeWord(word, &scratch->bpe, ids);
    if (cache.map.size() >= WordCache::kMaxEntries) {
      cache.map.clear();
      cache.ids.clear();
    }
    cache.map.emplace(std::string(word), std::make_pair(static_cast<uint32_t>(cache.ids.size()),
                                                        static_cast<uint32_t>(ids->size() - before)));
    cache.ids.insert(cache.ids.end(), ids->begin() + static_cast<std::ptrdiff_t>(before), ids->end());
  }
  return Status::Ok();
}

Status Tokenizer::EncodeAppend(std::string_view text, std::vector<int32_t>* ids) const {
  const size_t bad = FindInvalidUtf8(text);
  if (bad != std::string_view::npos) {
    return Error(StatusCode::kInvalidFormat, "input text: invalid UTF-8 at byte {}", bad);
  }
  WordCache cache;
  EncodeScratch scratch;
  scratch.cache = &cache;
  RegexSplitter::Scratch regex_scratch(*splitter_);
  scratch.regex = &regex_scratch;
  std::vector<AddedSplit> splits, inner;
  raw_matcher_.FindMatches(text, split_special_tokens_, &splits);
  std::string normalized;
  for (const AddedSplit& s : splits) {
    if (s.id >= 0) {
      ids->push_back(s.id);
      continue;
    }
    std::string_view segment = text.substr(s.begin, s.end - s.begin);
    if (nfc_ && !IsSurelyNfc(segment)) {
      MOE_ASSIGN_OR_RETURN(normalized, NormalizeNfc(segment));
      segment = normalized;
    }
    if (normalized_matcher_.empty()) {
      MOE_TRY(EncodeText(segment, &scratch, ids));
      continue;
    }
    inner.clear();
    normalized_matcher_.FindMatches(segment, split_special_tokens_, &inner);
    for (const AddedSplit& n : inner) {
      if (n.id >= 0) {
        ids->push_back(n.id);
      } else {
        MOE_TRY(EncodeText(segment.substr(n.begin, n.end - n.begin), &scratch, ids));
      }
    }
  }
  return Status::Ok();
}

Result<std::vector<int32_t>> Tokenizer::Encode(std::string_view text) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  MOE_TRY(EncodeAppend(text, &ids));
  return ids;
}

Result<std::string> Tokenizer::Decode(std::span<const int32_t> ids,
                                      bool skip_special_tokens) const {
  std::string bytes;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (!IsValidId(ids[i])) {
      return Error(StatusCode::kInvalidFormat, "decode: id {} at position {} is not in the "
                   "vocabulary (n_vocab {})", ids[i], i, n_vocab());
    }
    if (skip_special_tokens && special_[ids[i]]) continue;
    bytes += token_bytes_[ids[i]];
  }
  std::string out;
  out.reserve(bytes.size());
  AppendUtf8Lossy(bytes, &out);
  return out;
}

void StreamDecoder::Push(int32_t id, std::string* out) {
  if (!tokenizer_->IsValidId(id)) return;
  if (skip_special_ && tokenizer_->IsSpecial(id)) return;
  utf8_.Push(tokenizer_->TokenBytes(id), out);
}

}  // namespace moe
