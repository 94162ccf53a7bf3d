// SPDX-License-Identifier: Apache-2.0
// Untrusted-JSON parsing over nlohmann's SAX interface: nlohmann's SAX parser is iterative (no
// recursion), and our handler builds the DOM itself so that it can stop at the depth limit, detect
// duplicate keys at any depth and, for ForEachJsonMember, hand out top-level members one by one.
#include "formats/json.h"

#include <cmath>
#include <limits>
#include <unordered_set>
#include <utility>
#include <vector>

namespace moe {
namespace {

// Shortens nlohmann's "[json.exception.parse_error.101] parse error at line 1, column 2: x" to
// "line 1, column 2: x".
std::string CleanNlohmannMessage(std::string_view m) {
  if (size_t p = m.find("] "); p != std::string_view::npos) m.remove_prefix(p + 2);
  constexpr std::string_view kPrefix = "parse error at ";
  if (m.substr(0, kPrefix.size()) == kPrefix) m.remove_prefix(kPrefix.size());
  return std::string(m);
}

class DomBuilder {
 public:
  DomBuilder(std::string_view what, const JsonLimits& limits, const JsonMemberFn* on_member)
      : what_(what), limits_(limits), on_member_(on_member) {}

  bool null() { return Put(Json(nullptr)) != nullptr; }
  bool boolean(bool v) { return Put(Json(v)) != nullptr; }
  bool number_integer(Json::number_integer_t v) { return Put(Json(v)) != nullptr; }
  bool number_unsigned(Json::number_unsigned_t v) { return Put(Json(v)) != nullptr; }
  bool number_float(Json::number_float_t v, const std::string& text) {
    if (!std::isfinite(v)) return Fail(fmt::format("number {} is out of range", text));
    return Put(Json(v)) != nullptr;
  }
  bool string(std::string& v) { return Put(Json(std::move(v))) != nullptr; }
  bool binary(Json::binary_t&) { return Fail("binary values are not JSON"); }

  bool start_object(std::size_t) { return Open(Json::object()); }
  bool start_array(std::size_t) { return Open(Json::array()); }
  bool end_object() { return Close(); }
  bool end_array() { return Close(); }

  bool key(std::string& k) {
    Frame& f = frames_.back();
    // Top-level keys of a streamed object are the callback's to check (it keeps them anyway).
    bool check = limits_.reject_duplicate_keys && f.node != nullptr;
    if (check && !f.keys.insert(k).second) {
      f.key = std::move(k);
      return Fail(fmt::format("duplicate key '{}'", KeyPath()));
    }
    f.key = std::move(k);
    return true;
  }

  bool parse_error(std::size_t position, const std::string&,
                   const nlohmann::detail::exception& ex) {
    if (error_.ok()) {
      error_ = Error(StatusCode::kInvalidFormat, "{}: invalid JSON at byte {}: {}", what_,
                     position > 0 ? position - 1 : 0, CleanNlohmannMessage(ex.what()));
    }
    return false;
  }

  Json TakeRoot() { return std::move(root_); }
  const Status& error() const { return error_; }

 private:
  struct Frame {
    Json* node = nullptr;  // nullptr for the streamed top-level object
    std::unordered_set<std::string> keys;
    std::string key;  // current key (objects)
  };

  bool Streaming() const { return on_member_ != nullptr; }

  // Where the next value goes; nullptr on failure.
  Json* Put(Json&& v) {
    if (frames_.empty()) {
      if (Streaming() && !v.is_object()) {
        Fail(fmt::format("top level is {}, expected object", JsonTypeName(v)));
        return nullptr;
      }
      root_ = std::move(v);
      return &root_;
    }
    Frame& top = frames_.back();
    if (top.node == nullptr) {  // member of the streamed top-level object
      member_ = std::move(v);
      if (!member_.is_object() && !member_.is_array()) return Emit() ? &member_ : nullptr;
      return &member_;
    }
    if (top.node->is_array()) {
      top.node->push_back(std::move(v));
      return &top.node->back();
    }
    auto [it, inserted] =
        top.node->get_ref<Json::object_t&>().insert_or_assign(top.key, std::move(v));
    return &it->second;
  }

  bool Open(Json&& container) {
    if (static_cast<int>(frames_.size()) >= limits_.max_depth) {
      return Fail(fmt::format("nesting depth exceeds limit {}", limits_.max_depth));
    }
    bool streamed_root = frames_.empty() && Streaming();
    if (streamed_root && !container.is_object()) {
      return Fail(fmt::format("top level is {}, expected object", JsonTypeName(container)));
    }
    Json* node = nullptr;
    if (!streamed_root) {
      node = Put(std::move(container));
      if (node == nullptr) return false;
    }
    frames_.push_back(Frame{node, {}, {}});
    return true;
  }

  bool Close() {
    frames_.pop_back();
    // A container member of the streamed top-level object is complete.
    if (Streaming() && frames_.size() == 1) return Emit();
    return true;
  }

  bool Emit() {
    Frame& top = frames_.back();
    Status s = (*on_member_)(std::move(top.key), std::move(member_));
    member_ = Json();
    if (!s.ok()) {
      error_ = std::move(s);
      return false;
    }
    return true;
  }

  std::string KeyPath() const {
    std::string path;
    for (size_t i = 0; i < frames_.size(); ++i) {
      const Frame& f = frames_[i];
      if (f.node != nullptr && f.node->is_array()) {
        size_t n = f.node->size();
        path += fmt::format("[{}]", i + 1 < frames_.size() && n > 0 ? n - 1 : n);
      } else {
        if (!path.empty()) path += '.';
        path += f.key;
      }
    }
    return path;
  }

  // Records the first error (nlohmann gives no position to SAX events, so messages name the key
  // path instead) and stops the parser.
  bool Fail(std::string message) {
    if (error_.ok()) {
      std::string path = KeyPath();
      if (path.size() > 200) path = path.substr(0, 200) + "...";
      error_ = path.empty()
                   ? Error(StatusCode::kInvalidFormat, "{}: {}", what_, message)
                   : Error(StatusCode::kInvalidFormat, "{}: at '{}': {}", what_, path, message);
    }
    return false;
  }

  std::string_view what_;
  const JsonLimits& limits_;
  const JsonMemberFn* on_member_;
  std::vector<Frame> frames_;
  Json root_;
  Json member_;
  Status error_;
};

// Byte offset where nesting first exceeds `max_depth` (strings respected), or npos. Lets a
// nesting bomb be reported with a position; the SAX handler enforces the limit regardless.
size_t FindDepthExcess(std::string_view text, int max_depth) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return i;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return std::string_view::npos;
}

Status Parse(std::string_view text, std::string_view what, const JsonLimits& limits,
             const JsonMemberFn* on_member, Json* root) {
  if (size_t bad = FindInvalidUtf8(text); bad != std::string_view::npos) {
    return Error(StatusCode::kInvalidFormat,
                 "{}: not valid UTF-8 (invalid byte 0x{:02x} at byte {})", what,
                 static_cast<uint8_t>(text[bad]), bad);
  }
  if (size_t at = FindDepthExcess(text, limits.max_depth); at != std::string_view::npos) {
    return Error(StatusCode::kInvalidFormat, "{}: nesting depth exceeds limit {} at byte {}", what,
                 limits.max_depth, at);
  }
  DomBuilder builder(what, limits, on_member);
  bool ok =
      Json::sax_parse(text.begin(), text.end(), &builder, nlohmann::detail::input_format_t::json,
                      /*strict=*/true);
  if (!ok || !builder.error().ok()) {
    if (!builder.error().ok()) return builder.error();
    return Error(StatusCode::kInvalidFormat, "{}: invalid JSON", what);
  }
  if (root != nullptr) *root = builder.TakeRoot();
  return Status::Ok();
}

}  // namespace

size_t FindInvalidUtf8(std::string_view text) {
  const auto* s = reinterpret_cast<const uint8_t*>(text.data());
  size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    uint8_t c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;  // overlong
      if (c == 0xED) hi = 0x9F;  // surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;  // overlong
      if (c == 0xF4) hi = 0x8F;  // > U+10FFFF
    } else {
      return i;
    }
    if (i + len > n) return i;
    if (s[i + 1] < lo || s[i + 1] > hi) return i;
    for (size_t k = 2; k < len; ++k) {
      if (s[i + k] < 0x80 || s[i + k] > 0xBF) return i;
    }
    i += len;
  }
  return std::string_view::npos;
}

std::string_view JsonTypeName(const Json& v) {
  if (v.is_number_float()) return "float";
  if (v.is_number()) return "integer";
  if (v.is_boolean()) return "boolean";
  return v.type_name();
}

Result<Json> ParseJson(std::string_view text, std::string_view what, JsonLimits limits) {
  Json root;
  MOE_TRY(Parse(text, what, limits, nullptr, &root));
  return root;
}

Status ForEachJsonMember(std::string_view text, std::string_view what, const JsonLimits& limits,
                         const JsonMemberFn& on_member) {
  return Parse(text, what, limits, &on_member, nullptr);
}

namespace {

Result<const Json*> Lookup(const Json& obj, std::string_view key, std::string_view what,
                           std::string_view key_path) {
  if (!obj.is_object()) {
    return Error(StatusCode::kInvalidFormat, "{}: key '{}': parent is {}, expected object", what,
                 key_path, JsonTypeName(obj));
  }
  auto it = obj.find(key);
  if (it == obj.end()) {
    return Error(StatusCode::kInvalidFormat, "{}: key '{}': missing", what, key_path);
  }
  return &*it;
}

Status WrongType(const Json& v, std::string_view expected, std::string_view what,
                 std::string_view key_path) {
  return Error(StatusCode::kInvalidFormat, "{}: key '{}': expected {}, got {}", what, key_path,
               expected, JsonTypeName(v));
}

}  // namespace

Result<int64_t> GetInt(const Json& obj, std::string_view key, std::string_view what,
                       std::string_view key_path) {
  MOE_ASSIGN_OR_RETURN(const Json* v, Lookup(obj, key, what, key_path));
  if (v->is_number_unsigned()) {
    uint64_t u = v->get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return Error(StatusCode::kInvalidFormat, "{}: key '{}': integer {} out of range (max {})",
                   what, key_path, u, std::numeric_limits<int64_t>::max());
    }
    return static_cast<int64_t>(u);
  }
  if (v->is_number_integer()) return v->get<int64_t>();
  return WrongType(*v, "integer", what, key_path);
}

Result<double> GetNumber(const Json& obj, std::string_view key, std::string_view what,
                         std::string_view key_path) {
  MOE_ASSIGN_OR_RETURN(const Json* v, Lookup(obj, key, what, key_path));
  if (!v->is_number()) return WrongType(*v, "number", what, key_path);
  return v->get<double>();
}

Result<bool> GetBool(const Json& obj, std::string_view key, std::string_view what,
                     std::string_view key_path) {
  MOE_ASSIGN_OR_RETURN(const Json* v, Lookup(obj, key, what, key_path));
  if (!v->is_boolean()) return WrongType(*v, "boolean", what, key_path);
  return v->get<bool>();
}

Result<std::string> GetString(const Json& obj, std::string_view key, std::string_view what,
                              std::string_view key_path) {
  MOE_ASSIGN_OR_RETURN(const Json* v, Lookup(obj, key, what, key_path));
  if (!v->is_string()) return WrongType(*v, "string", what, key_path);
  return v->get<std::string>();
}

}  // namespace moe
