// SPDX-License-Identifier: Apache-2.0
// The GPT-2 byte <-> unicode table used by ByteLevel pre-tokenizers and decoders.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace moe {

// Code point that byte `b` maps to: 0x21-0x7E, 0xA1-0xAC, 0xAE-0xFF map to themselves; the
// other 68 bytes, in increasing order, map to U+0100, U+0101, ...
char32_t ByteToUnicode(uint8_t b);

// Inverse of ByteToUnicode; -1 if `cp` is not in the table.
int UnicodeToByte(char32_t cp);

// UTF-8 of the byte-level string for `bytes` (each byte becomes one character).
std::string BytesToByteLevel(std::string_view bytes);

// ByteLevel decoder for one token (HF decoders/byte_level.rs): if every character of `token`
// (valid UTF-8) is in the table, the bytes those characters stand for; else `token` itself.
std::string ByteLevelDecodeToken(std::string_view token);

}  // namespace moe
