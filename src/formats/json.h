// SPDX-License-Identifier: Apache-2.0
// Wrapper over nlohmann::json for untrusted input: nesting-depth limit (no stack overflow on
// nesting bombs), parse errors with byte position, NaN/Infinity rejected (not JSON), optional
// duplicate-key detection, and typed getters that name the key in their error messages.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>

#include "util/status.h"

namespace moe {

using Json = nlohmann::json;

struct JsonLimits {
  int max_depth = 256;
  bool reject_duplicate_keys = true;  // at any depth
};

// Parses `text`; `what` (usually a path) prefixes every error. kInvalidFormat on any failure:
// invalid UTF-8, syntax error (with byte offset), depth over the limit, duplicate key.
Result<Json> ParseJson(std::string_view text, std::string_view what, JsonLimits limits = {});

// Typed access: kInvalidFormat "<what>: key 'a.b': expected integer, got string" etc.
// `key_path` is the dotted path used in messages; `obj` must be the object holding `key`.
Result<int64_t> GetInt(const Json& obj, std::string_view key, std::string_view what,
                       std::string_view key_path);
Result<double> GetNumber(const Json& obj, std::string_view key, std::string_view what,
                         std::string_view key_path);
Result<bool> GetBool(const Json& obj, std::string_view key, std::string_view what,
                     std::string_view key_path);
Result<std::string> GetString(const Json& obj, std::string_view key, std::string_view what,
                              std::string_view key_path);

}  // namespace moe
