// SPDX-License-Identifier: Apache-2.0
#include "tokenizer/utf8.h"

namespace moe {
namespace {

constexpr char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD

// Sequence length announced by a lead byte, 0 if `b` cannot start a sequence.
size_t SequenceLength(uint8_t b) {
  if (b < 0x80) return 1;
  if (b >= 0xC2 && b <= 0xDF) return 2;
  if (b >= 0xE0 && b <= 0xEF) return 3;
  if (b >= 0xF0 && b <= 0xF4) return 4;
  return 0;
}

// Whether `b` may follow `lead` as the second byte (Unicode Table 3-7, well-formed sequences).
bool ValidSecondByte(uint8_t lead, uint8_t b) {
  switch (lead) {
    case 0xE0: return b >= 0xA0 && b <= 0xBF;
    case 0xED: return b >= 0x80 && b <= 0x9F;
    case 0xF0: return b >= 0x90 && b <= 0xBF;
    case 0xF4: return b >= 0x80 && b <= 0x8F;
    default: return b >= 0x80 && b <= 0xBF;
  }
}

bool IsContinuation(uint8_t b) { return (b & 0xC0) == 0x80; }

// Length of the valid sequence at s[i], or 0 if invalid; *subpart gets the length of the
// maximal ill-formed subpart (>= 1) when invalid.
size_t ValidSequenceAt(std::string_view s, size_t i, size_t* subpart) {
  const uint8_t lead = static_cast<uint8_t>(s[i]);
  const size_t n = SequenceLength(lead);
  *subpart = 1;
  if (n == 0) return 0;
  if (n == 1) return 1;
  for (size_t k = 1; k < n; ++k) {
    if (i + k >= s.size()) return 0;
    const uint8_t b = static_cast<uint8_t>(s[i + k]);
    const bool ok = k == 1 ? ValidSecondByte(lead, b) : IsContinuation(b);
    if (!ok) return 0;
    *subpart = k + 1;
  }
  return n;
}

}  // namespace


void AppendUtf8(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

char32_t NextCodePoint(std::string_view s, size_t* pos) {
  const uint8_t b0 = static_cast<uint8_t>(s[*pos]);
  const size_t n = SequenceLength(b0);
  if (n <= 1 || *pos + n > s.size()) {  // ASCII, or a caller bug: treat as one byte
    ++*pos;
    return b0;
  }
  char32_t cp = b0 & (0xFF >> (n + 1));
  for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<uint8_t>(s[*pos + k]) & 0x3F);
  *pos += n;
  return cp;
}

void AppendUtf8Lossy(std::string_view bytes, std::string* out) {
  size_t i = 0;
  size_t run_start = 0;  // start of the current run of valid bytes
  while (i < bytes.size()) {
    if (static_cast<uint8_t>(bytes[i]) < 0x80) {
      ++i;
      continue;
    }
    size_t subpart = 0;
    const size_t n = ValidSequenceAt(bytes, i, &subpart);
    if (n > 0) {
      i += n;
      continue;
    }
    out->append(bytes.substr(run_start, i - run_start));
    out->append(kReplacement);
    i += subpart;
    run_start = i;
  }
  out->append(bytes.substr(run_start));
}

void Utf8LossyStream::PushByte(uint8_t b, std::string* out) {
  if (n_pending_ == 0) {
    const size_t n = SequenceLength(b);
    if (n == 1) {
      out->push_back(static_cast<char>(b));
    } else if (n == 0) {
      out->append(kReplacement);
    } else {
      pending_[0] = b;
      n_pending_ = 1;
      n_needed_ = n;
    }
    return;
  }
  const bool ok = n_pending_ == 1 ? ValidSecondByte(pending_[0], b) : IsContinuation(b);
  if (!ok) {
    // The pending bytes are a maximal ill-formed subpart; `b` starts afresh.
    out->append(kReplacement);
    n_pending_ = 0;
    PushByte(b, out);
    return;
  }
  pending_[n_pending_++] = b;
  if (n_pending_ == n_needed_) {
    out->append(reinterpret_cast<const char*>(pending_), n_pending_);
    n_pending_ = 0;
  }
}

void Utf8LossyStream::Push(std::string_view bytes, std::string* out) {
  for (char c : bytes) PushByte(static_cast<uint8_t>(c), out);
}

void Utf8LossyStream::Finish(std::string* out) {
  if (n_pending_ > 0) out->append(kReplacement);
  n_pending_ = 0;
}

}  // namespace moe
