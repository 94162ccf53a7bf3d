// SPDX-License-Identifier: Apache-2.0
// The one place the tokenizer turns untrusted JSON text into a DOM. Stands in for
// formats/json.h's ParseJson (written in parallel) with the same contract: depth limit,
// duplicate-key rejection, errors naming `what` and the byte offset. Swap when that lands.
#pragma once

#include <nlohmann/json.hpp>

#include <string_view>

#include "util/status.h"

namespace moe {

using TokJson = nlohmann::json;

// kInvalidFormat on syntax errors (with byte offset), invalid UTF-8, nesting deeper than
// `max_depth`, or a key repeated within one object.
Result<TokJson> ParseTokenizerJsonText(std::string_view text, std::string_view what,
                                       int max_depth = 256);

// Short description of a JSON value's type for messages ("string", "array", ...).
const char* JsonTypeName(const TokJson& v);

}  // namespace moe
