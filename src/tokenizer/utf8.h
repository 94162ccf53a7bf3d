// SPDX-License-Identifier: Apache-2.0
// UTF-8 helpers for the tokenizer: validation, lossy decoding exactly as Rust's
// String::from_utf8_lossy (what HF tokenizers' ByteLevel decoder uses), and an incremental
// lossy decoder for streaming that never emits a partial sequence.
#pragma once

#include "formats/json.h"  // FindInvalidUtf8

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace moe {


// Appends `cp` (must be a Unicode scalar value) encoded as UTF-8.
void AppendUtf8(char32_t cp, std::string* out);

// Decodes the code point starting at s[*pos] of a *valid* UTF-8 string and advances *pos.
char32_t NextCodePoint(std::string_view s, size_t* pos);

// Appends `bytes` to `out`, replacing each maximal ill-formed subpart with U+FFFD (the Unicode
// "substitution of maximal subparts" practice that from_utf8_lossy and Python's
// errors="replace" follow).
void AppendUtf8Lossy(std::string_view bytes, std::string* out);

// Incremental form of AppendUtf8Lossy: the concatenation of everything Push() and Finish()
// append equals AppendUtf8Lossy of all pushed bytes. Holds back at most 3 bytes of an
// incomplete (but so far valid) sequence. Not thread-safe.
class Utf8LossyStream {
 public:
  void Push(std::string_view bytes, std::string* out);
  // Flushes a dangling incomplete sequence as one U+FFFD and resets.
  void Finish(std::string* out);
  size_t n_pending() const { return n_pending_; }

 private:
  void PushByte(uint8_t b, std::string* out);
  uint8_t pending_[4] = {};
  size_t n_pending_ = 0;
  size_t n_needed_ = 0;  // total length of the sequence being collected
};

}  // namespace moe
