// SPDX-License-Identifier: Apache-2.0
// Normalizer (NFC via utf8proc) and the Split(Isolated) pre-tokenizer (PCRE2 with UTF+UCP, JIT
// when available, and a match limit so a pathological pattern cannot hang: bad-inputs D5).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace moe {

// True only if NFC certainly leaves valid UTF-8 `s` unchanged: every code point lies in a
// range of NFC_QC=Yes, combining-class-0 characters that never start a composition as its
// second character (ASCII, Latin below U+0300, CJK, kana, Hangul syllables, Cyrillic, ...).
// A fast pre-check only; false means "ask utf8proc".
bool IsSurelyNfc(std::string_view s);

// NFC of valid UTF-8 `text`. kInvalidFormat if utf8proc rejects it.
Result<std::string> NormalizeNfc(std::string_view text);

// Rewrites an Oniguruma pattern (the dialect HF tokenizers compiles) into the PCRE2 pattern
// with the same meaning. \s/\S become \p{White_Space}/\P{White_Space}: under UCP PCRE2's \s
// also matches U+180E, Oniguruma's does not. Escapes whose meaning differs and that we cannot
// translate (\h \H: hex digit in Oniguruma) are kUnsupported.
Result<std::string> OnigurumaToPcre2(std::string_view pattern, std::string_view what);

struct SplitterOptions {
  // PCRE2 match limit per match attempt; exceeding it fails the encode with
  // kInvalidFormat instead of hanging. Linear inputs stay far below it.
  uint32_t match_limit = 10'000'000;
};

// Compiled Split pattern. Immutable after Create; Split is thread-safe (scratch per call).
class RegexSplitter {
 public:
  // `pattern` is the Oniguruma regex (is_regex) or a literal string. kInvalidFormat on bad
  // syntax (D6), naming `what` and the offset.
  static Result<RegexSplitter> Create(std::string_view pattern, bool is_regex,
                                      std::string_view what, SplitterOptions options = {});
  RegexSplitter(RegexSplitter&&) noexcept;
  RegexSplitter& operator=(RegexSplitter&&) noexcept;
  ~RegexSplitter();

  // Per-thread matching state (match data, match context with the limit, JIT stack). Create
  // one per encode call and reuse it across segments: a JIT stack is an mmap.
  class Scratch {
   public:
    explicit Scratch(const RegexSplitter& splitter);
    ~Scratch();
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;

   private:
    friend class RegexSplitter;
    void* data_ = nullptr;     // pcre2_match_data*
    void* context_ = nullptr;  // pcre2_match_context*
    void* stack_ = nullptr;    // pcre2_jit_stack*
  };

  // Isolated split of valid UTF-8 `text` (HF semantics: each match and each gap between
  // matches is a piece; empty matches advance one character and make no piece). Appends
  // [begin, end) byte offsets of the non-empty pieces to `pieces`. kInvalidFormat if the
  // match limit is hit (a pathological pattern, bad-inputs D5); kResourceExhausted on PCRE2
  // memory errors.
  Status SplitOffsets(std::string_view text, Scratch* scratch,
                      std::vector<std::pair<size_t, size_t>>* pieces) const;

  bool jit() const;

 private:
  struct Impl;
  explicit RegexSplitter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace moe
