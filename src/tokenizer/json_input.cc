// SPDX-License-Identifier: Apache-2.0
#include "tokenizer/json_input.h"

#include <string>
#include <unordered_set>
#include <vector>

namespace moe {
namespace {

// Nesting depth of `text` ignoring brackets inside strings; stops early past `limit`.
// Checked before parsing so a nesting bomb never reaches the (recursive) DOM destructor.
int MaxNestingDepth(std::string_view text, int limit, size_t* where) {
  int depth = 0, max_depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '[' || c == '{') {
      if (++depth > max_depth) max_depth = depth;
      if (depth > limit) {
        *where = i;
        return depth;
      }
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return max_depth;
}

}  // namespace

const char* JsonTypeName(const TokJson& v) {
  switch (v.type()) {
    case TokJson::value_t::null: return "null";
    case TokJson::value_t::object: return "object";
    case TokJson::value_t::array: return "array";
    case TokJson::value_t::string: return "string";
    case TokJson::value_t::boolean: return "boolean";
    case TokJson::value_t::number_integer:
    case TokJson::value_t::number_unsigned: return "integer";
    case TokJson::value_t::number_float: return "number";
    default: return "other";
  }
}

Result<TokJson> ParseTokenizerJsonText(std::string_view text, std::string_view what,
                                       int max_depth) {
  size_t where = 0;
  if (MaxNestingDepth(text, max_depth, &where) > max_depth) {
    return Error(StatusCode::kInvalidFormat, "{}: byte {}: JSON nesting deeper than {}", what,
                 where, max_depth);
  }
  std::vector<std::unordered_set<std::string>> keys_stack;
  std::string duplicate;
  auto callback = [&](int /*depth*/, TokJson::parse_event_t event, TokJson& parsed) {
    switch (event) {
      case TokJson::parse_event_t::object_start: keys_stack.emplace_back(); break;
      case TokJson::parse_event_t::object_end:
        if (!keys_stack.empty()) keys_stack.pop_back();
        break;
      case TokJson::parse_event_t::key:
        if (!keys_stack.empty() && !keys_stack.back().insert(parsed.get<std::string>()).second &&
            duplicate.empty()) {
          duplicate = parsed.get<std::string>();
        }
        break;
      default: break;
    }
    return true;
  };
  // nlohmann reports errors by exception; this is the only place we let one cross, and it is
  // converted to a Status right here.
  TokJson doc;
  try {
    doc = TokJson::parse(text.begin(), text.end(), callback);
  } catch (const TokJson::exception& e) {
    std::string msg = e.what();
    if (const auto* pe = dynamic_cast<const TokJson::parse_error*>(&e)) {
      return Error(StatusCode::kInvalidFormat, "{}: byte {}: not valid JSON: {}", what, pe->byte,
                   msg);
    }
    return Error(StatusCode::kInvalidFormat, "{}: not valid JSON: {}", what, msg);
  }
  if (!duplicate.empty()) {
    return Error(StatusCode::kInvalidFormat, "{}: key '{}' appears twice in one object", what,
                 duplicate);
  }
  return doc;
}

}  // namespace moe
