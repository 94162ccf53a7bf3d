// SPDX-License-Identifier: Apache-2.0
// Tokenizer facade: loads a Hugging Face tokenizer.json (+ tokenizer_config.json) of the
// Qwen2/2.5/3/3-Omni byte-level BPE family and encodes/decodes exactly as HF `tokenizers`
// (spec hf-moe-checkpoints.md §6). Ownership: a Tokenizer owns all its tables; it is
// movable, not copyable. Thread-safety: after Load, all const methods are thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/added_vocab.h"
#include "tokenizer/bpe.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/utf8.h"
#include "util/status.h"

namespace moe {

struct TokenizerSpec;
struct TokenizerConfigSpec;
struct WordCache;

struct TokenizerOptions {
  SplitterOptions splitter;
  uint64_t max_file_bytes = uint64_t{1} << 30;  // tokenizer.json size cap
};

class Tokenizer {
 public:
  // `path` is a tokenizer.json file or a model folder holding one. tokenizer_config.json next
  // to it is read if present (special tokens, split_special_tokens). Errors: kIoError (missing
  // or unreadable), kInvalidFormat (malformed, D1-D6), kUnsupported (a component or option
  // other than the Qwen pipeline), each naming the file and key.
  static Result<Tokenizer> Load(const std::string& path, const TokenizerOptions& options = {});
  // Same from in-memory texts; `config_json` may be empty (no tokenizer_config.json).
  static Result<Tokenizer> FromJson(std::string_view tokenizer_json, std::string_view config_json,
                                    std::string_view what, const TokenizerOptions& options = {});

  Tokenizer(Tokenizer&&) noexcept = default;
  Tokenizer& operator=(Tokenizer&&) noexcept = default;

  // Ids of `text` as HF `tokenizer(text)["input_ids"]` (no BOS/EOS are added). Added tokens in
  // the text (special or not) become their ids unless split_special_tokens is set.
  // kInvalidFormat if `text` is not valid UTF-8 (HF cannot receive such text either);
  // kInvalidFormat if the pre-tokenizer regex hits its match limit (pathological pattern).
  Result<std::vector<int32_t>> Encode(std::string_view text) const;
  Status EncodeAppend(std::string_view text, std::vector<int32_t>* ids) const;

  // Text of `ids` as HF `decode(ids, skip_special_tokens)`: byte-level decoding, invalid UTF-8
  // replaced by U+FFFD. kInvalidFormat naming the position for an id not in the vocabulary
  // (HF silently drops those; D8 asks for an error).
  Result<std::string> Decode(std::span<const int32_t> ids, bool skip_special_tokens) const;

  // Id of a token string (vocab entry or added token content), -1 if absent.
  int32_t TokenId(std::string_view token) const;
  // Whether `id` names a token (vocab entry or added token).
  bool IsValidId(int64_t id) const {
    return id >= 0 && id < static_cast<int64_t>(token_bytes_.size()) && known_[id];
  }
  bool IsSpecial(int32_t id) const { return IsValidId(id) && special_[id]; }
  // Raw bytes token `id` decodes to (empty for an invalid id).
  std::string_view TokenBytes(int32_t id) const {
    return IsValidId(id) ? std::string_view(token_bytes_[id]) : std::string_view();
  }
  // One past the largest token id.
  int32_t n_vocab() const { return static_cast<int32_t>(token_bytes_.size()); }

  // From tokenizer_config.json; -1 when not set.
  int32_t bos_token_id() const { return bos_id_; }
  int32_t eos_token_id() const { return eos_id_; }
  int32_t pad_token_id() const { return pad_id_; }

 private:
  Tokenizer() = default;
  static Result<Tokenizer> Build(TokenizerSpec spec, const TokenizerConfigSpec& config,
                                 std::string_view what, const TokenizerOptions& options);
  struct EncodeScratch {
    BpeScratch bpe;
    std::vector<std::pair<size_t, size_t>> pieces;
    WordCache* cache = nullptr;
    RegexSplitter::Scratch* regex = nullptr;
  };
  Status EncodeText(std::string_view text, EncodeScratch* scratch,
                    std::vector<int32_t>* ids) const;

  std::vector<std::string> token_bytes_;  // [n_vocab] decoded bytes per id
  std::vector<uint8_t> known_;            // [n_vocab] id is assigned
  std::vector<uint8_t> special_;          // [n_vocab] added token with special=true
  std::unordered_map<std::string, int32_t> token_to_id_;  // vocab + added contents
  BpeModel bpe_;
  std::unique_ptr<RegexSplitter> splitter_;
  AddedTokenMatcher raw_matcher_;         // normalized=false added tokens, on raw text
  AddedTokenMatcher normalized_matcher_;  // normalized=true added tokens, on NFC text
  bool nfc_ = false;
  bool split_special_tokens_ = false;
  int32_t bos_id_ = -1, eos_id_ = -1, pad_id_ = -1;
};

// Incremental decoder for streaming generation: Push(id) appends only complete UTF-8
// (holding back at most 3 bytes), and the concatenation of all output after Finish() equals
// Decode(all ids). Unknown ids are skipped as HF does (the model's embedding may have more
// rows than the tokenizer has tokens). Not thread-safe; the Tokenizer must outlive it.
class StreamDecoder {
 public:
  StreamDecoder(const Tokenizer& tokenizer, bool skip_special_tokens)
      : tokenizer_(&tokenizer), skip_special_(skip_special_tokens) {}
  void Push(int32_t id, std::string* out);
  void Finish(std::string* out) { utf8_.Finish(out); }

 private:
  const Tokenizer* tokenizer_;
  bool skip_special_;
  Utf8LossyStream utf8_;
};

}  // namespace moe
