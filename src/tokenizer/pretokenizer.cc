// SPDX-License-Identifier: Apache-2.0
#include "tokenizer/pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>

#include <cstdlib>
#include <utility>

#include "tokenizer/utf8.h"

namespace moe {
namespace {

// Code point ranges whose characters have NFC_QC=Yes, canonical combining class 0 and are never
// the second character of a canonical composition, so NFC leaves any text made only of them
// unchanged (a following mark outside these ranges sends the text to utf8proc). Sorted.
// Below U+0300 nothing is NFC_QC No/Maybe. Excluded inside blocks: Devanagari nukta, virama,
// stress marks and the QC=No U+0958-095F; Thai marks of class 103/107/9; kana voicing marks
// U+3099/309A; U+2000/2001 (singleton decompositions).
constexpr std::pair<char32_t, char32_t> kNfcSafe[] = {
    {0x0000, 0x02FF}, {0x0400, 0x0482}, {0x048A, 0x04FF}, {0x05D0, 0x05EA}, {0x0621, 0x064A},
    {0x0900, 0x093B}, {0x093D, 0x094C}, {0x094E, 0x0950}, {0x0955, 0x0957}, {0x0960, 0x097F},
    {0x0E01, 0x0E37}, {0x0E3F, 0x0E47}, {0x0E4C, 0x0E5B}, {0x2002, 0x2027}, {0x2030, 0x205E},
    {0x3000, 0x3098}, {0x309B, 0x30FF}, {0x4E00, 0x9FFF}, {0xAC00, 0xD7A3}, {0xFE00, 0xFE0F},
    {0xFF01, 0xFF5E}, {0x1F000, 0x1FAFF},
};

bool NfcSafe(char32_t cp) {
  for (const auto& [lo, hi] : kNfcSafe) {
    if (cp < lo) return false;
    if (cp <= hi) return true;
  }
  return false;
}

}  // namespace

bool IsSurelyNfc(std::string_view s) {
  size_t pos = 0;
  while (pos < s.size()) {
    if (static_cast<unsigned char>(s[pos]) < 0x80) {
      ++pos;
      continue;
    }
    if (!NfcSafe(NextCodePoint(s, &pos))) return false;
  }
  return true;
}

Result<std::string> NormalizeNfc(std::string_view text) {
  if (IsSurelyNfc(text)) return std::string(text);
  utf8proc_uint8_t* out = nullptr;
  const utf8proc_ssize_t n = utf8proc_map(
      reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
      static_cast<utf8proc_ssize_t>(text.size()), &out,
      static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  if (n < 0) {
    return Error(StatusCode::kInvalidFormat, "NFC normalisation failed: {}",
                 utf8proc_errmsg(n));
  }
  std::string result(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
  std::free(out);
  return result;
}

Result<std::string> OnigurumaToPcre2(std::string_view pattern, std::string_view what) {
  std::string out;
  out.reserve(pattern.size() + 32);
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c != '\\' || i + 1 == pattern.size()) {
      out.push_back(c);
      continue;
    }
    const char e = pattern[++i];
    switch (e) {
      case 's': out += "\\p{White_Space}"; break;
      case 'S': out += "\\P{White_Space}"; break;
      case 'h':
      case 'H':
        return Error(StatusCode::kUnsupported, "{}: regex offset {}: escape \\{} (Oniguruma hex "
                     "digit) is not supported", what, i - 1, e);
      default:
        out.push_back('\\');
        out.push_back(e);
    }
  }
  return out;
}

struct RegexSplitter::Impl {
  pcre2_code* code = nullptr;
  bool jit = false;
  uint32_t match_limit = 0;
  ~Impl() { pcre2_code_free(code); }
};

RegexSplitter::RegexSplitter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RegexSplitter::RegexSplitter(RegexSplitter&&) noexcept = default;
RegexSplitter& RegexSplitter::operator=(RegexSplitter&&) noexcept = default;
RegexSplitter::~RegexSplitter() = default;
bool RegexSplitter::jit() const { return impl_->jit; }

Result<RegexSplitter> RegexSplitter::Create(std::string_view pattern, bool is_regex,
                                            std::string_view what, SplitterOptions options) {
  std::string translated(pattern);
  uint32_t flags = PCRE2_UTF | PCRE2_UCP;
  if (is_regex) {
    MOE_ASSIGN_OR_RETURN(translated, OnigurumaToPcre2(pattern, what));
  } else {
    flags |= PCRE2_LITERAL;
  }
  int err = 0;
  PCRE2_SIZE err_offset = 0;
  auto impl = std::make_unique<Impl>();
  impl->match_limit = options.match_limit;
  impl->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                             flags, &err, &err_offset, nullptr);
  if (impl->code == nullptr) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof(msg));
    return Error(StatusCode::kInvalidFormat, "{}: key 'pre_tokenizer.pretokenizers[0].pattern': "
                 "invalid regex at offset {}: {}", what, err_offset, reinterpret_cast<char*>(msg));
  }
  impl->jit = pcre2_jit_compile(impl->code, PCRE2_JIT_COMPLETE) == 0;
  return RegexSplitter(std::move(impl));
}

RegexSplitter::Scratch::Scratch(const RegexSplitter& splitter) {
  auto* data = pcre2_match_data_create(1, nullptr);
  auto* context = pcre2_match_context_create(nullptr);
  data_ = data;
  context_ = context;
  if (context == nullptr) return;
  pcre2_set_match_limit(context, splitter.impl_->match_limit);
  if (splitter.impl_->jit) {
    auto* stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);
    stack_ = stack;
    if (stack != nullptr) pcre2_jit_stack_assign(context, nullptr, stack);
  }
}

RegexSplitter::Scratch::~Scratch() {
  pcre2_match_data_free(static_cast<pcre2_match_data*>(data_));
  pcre2_match_context_free(static_cast<pcre2_match_context*>(context_));
  pcre2_jit_stack_free(static_cast<pcre2_jit_stack*>(stack_));
}

Status RegexSplitter::SplitOffsets(std::string_view text, Scratch* scratch,
                                   std::vector<std::pair<size_t, size_t>>* pieces) const {
  if (text.empty()) return Status::Ok();
  auto* data = static_cast<pcre2_match_data*>(scratch->data_);
  auto* context = static_cast<pcre2_match_context*>(scratch->context_);
  if (data == nullptr || context == nullptr) {
    return Error(StatusCode::kResourceExhausted, "regex split: out of memory");
  }
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  PCRE2_SIZE* ov = pcre2_get_ovector_pointer(data);
  size_t prev = 0;  // end of the last match
  size_t start = 0;
  while (start <= text.size()) {
    const int rc = pcre2_match(impl_->code, subject, text.size(), start, PCRE2_NO_UTF_CHECK,
                               data, context);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT) {
      return Error(StatusCode::kInvalidFormat, "pre-tokenizer regex exceeded its match limit "
                   "({} steps) at byte {} of the input: pathological pattern", impl_->match_limit,
                   start);
    }
    if (rc < 0) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof(msg));
      return Error(StatusCode::kResourceExhausted, "pre-tokenizer regex failed at byte {}: {}",
                   start, reinterpret_cast<char*>(msg));
    }
    const size_t b = ov[0], e = ov[1];
    if (b > prev) pieces->emplace_back(prev, b);
    if (e > b) pieces->emplace_back(b, e);
    prev = e;
    if (e > b) {
      start = e;
    } else {  // empty match: step over one character (find_iter semantics)
      if (e >= text.size()) break;
      start = e + 1;
      while (start < text.size() && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) {
        ++start;
      }
    }
  }
  if (prev < text.size()) pieces->emplace_back(prev, text.size());
  return Status::Ok();
}

}  // namespace moe
