// SPDX-License-Identifier: Apache-2.0
// Wrapper over nlohmann::json for untrusted input: nesting-depth limit (no stack overflow on
// nesting bombs), parse errors with byte position, NaN/Infinity rejected (not JSON), optional
// duplicate-key detection, and typed getters that name the key in their error messages.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
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

// Streams the members of a top-level JSON object in file order without building the whole
// document: memory stays bounded by the largest single member (safetensors headers may be 100 MB).
// Same checks and messages as ParseJson; a top level that is not an object is kInvalidFormat.
// A non-ok Status from `on_member` stops parsing and is returned unchanged. Duplicate top-level
// keys are NOT detected here (the callback keeps the keys and names the rule better); nested
// duplicates are, per `limits`.
using JsonMemberFn = std::function<Status(std::string&& key, Json&& value)>;
Status ForEachJsonMember(std::string_view text, std::string_view what, const JsonLimits& limits,
                         const JsonMemberFn& on_member);

// Byte offset of the first invalid UTF-8 sequence (overlong forms, surrogates and code points
// over U+10FFFF are invalid), or std::string_view::npos when `text` is valid UTF-8.
size_t FindInvalidUtf8(std::string_view text);

// "object", "array", "string", "boolean", "null", "integer" or "float".
std::string_view JsonTypeName(const Json& v);

// Typed access: kInvalidFormat "<what>: key 'a.b': expected integer, got string" etc.
// `key_path` is the dotted path used in messages; `obj` must be the object holding `key`.
// A missing key is "<what>: key 'a.b': missing". GetInt accepts only JSON integers (not 2.0)
// that fit in int64_t.
Result<int64_t> GetInt(const Json& obj, std::string_view key, std::string_view what,
                       std::string_view key_path);
Result<double> GetNumber(const Json& obj, std::string_view key, std::string_view what,
                         std::string_view key_path);
Result<bool> GetBool(const Json& obj, std::string_view key, std::string_view what,
                     std::string_view key_path);
Result<std::string> GetString(const Json& obj, std::string_view key, std::string_view what,
                              std::string_view key_path);

}  // namespace moe
