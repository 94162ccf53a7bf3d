// SPDX-License-Identifier: Apache-2.0
#include "tokenizer/byte_level.h"

#include <array>

#include "tokenizer/utf8.h"

namespace moe {
namespace {

bool MapsToItself(int b) {
  return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

struct Tables {
  std::array<char32_t, 256> to_unicode{};
  std::array<int16_t, 0x144> to_byte{};  // every mapped code point is < U+0144
  Tables() {
    to_byte.fill(-1);
    char32_t next = 0x100;
    for (int b = 0; b < 256; ++b) to_unicode[b] = MapsToItself(b) ? char32_t(b) : next++;
    for (int b = 0; b < 256; ++b) to_byte[to_unicode[b]] = static_cast<int16_t>(b);
  }
};

const Tables& GetTables() {
  static const Tables tables;  // immutable after construction
  return tables;
}

}  // namespace

char32_t ByteToUnicode(uint8_t b) { return GetTables().to_unicode[b]; }

int UnicodeToByte(char32_t cp) {
  const Tables& t = GetTables();
  return cp < t.to_byte.size() ? t.to_byte[cp] : -1;
}

std::string BytesToByteLevel(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) AppendUtf8(ByteToUnicode(static_cast<uint8_t>(c)), &out);
  return out;
}

std::string ByteLevelDecodeToken(std::string_view token) {
  std::string out;
  size_t pos = 0;
  while (pos < token.size()) {
    const int b = UnicodeToByte(NextCodePoint(token, &pos));
    if (b < 0) return std::string(token);
    out.push_back(static_cast<char>(b));
  }
  return out;
}

}  // namespace moe
