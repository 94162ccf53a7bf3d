// SPDX-License-Identifier: Apache-2.0
#include "tokenizer/tokenizer_json.h"

#include <initializer_list>

#include "formats/json.h"

namespace moe {
namespace {

// Context for messages: file name plus the dotted key path of the object being read.
struct Ctx {
  std::string_view what;
  std::string path;
  Ctx Sub(std::string_view key) const {
    return Ctx{what, path.empty() ? std::string(key) : path + "." + std::string(key)};
  }
  Ctx Index(size_t i) const { return Ctx{what, path + "[" + std::to_string(i) + "]"}; }
};

Status TypeError(const Ctx& c, std::string_view expected, const Json& got) {
  return Error(StatusCode::kInvalidFormat, "{}: key '{}': expected {}, got {}", c.what, c.path,
               expected, JsonTypeName(got));
}

Status Unsupported(const Ctx& c, std::string_view detail) {
  return Error(StatusCode::kUnsupported, "{}: key '{}': {} (supported: the Qwen2/Qwen3 "
               "byte-level BPE pipeline)", c.what, c.path, detail);
}

// Rejects keys of `obj` not in `allowed`, so an option we would silently ignore is reported.
Status OnlyKeys(const Ctx& c, const Json& obj, std::initializer_list<std::string_view> allowed) {
  for (const auto& [key, value] : obj.items()) {
    bool known = false;
    for (std::string_view a : allowed) known = known || key == a;
    if (!known) return Unsupported(c.Sub(key), "unknown option");
  }
  return Status::Ok();
}

Result<std::string> GetStr(const Ctx& c, const Json& obj, std::string_view key) {
  auto it = obj.find(key);
  if (it == obj.end()) {
    return Error(StatusCode::kInvalidFormat, "{}: key '{}' is missing", c.what, c.Sub(key).path);
  }
  if (!it->is_string()) return TypeError(c.Sub(key), "string", *it);
  return it->get<std::string>();
}

// Optional bool with a default; a present non-bool is a type error.
Result<bool> GetBoolOr(const Ctx& c, const Json& obj, std::string_view key, bool dflt) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return dflt;
  if (!it->is_boolean()) return TypeError(c.Sub(key), "boolean", *it);
  return it->get<bool>();
}

// Requires `key` to be absent, null or equal to `expected` (a no-op setting).
Status RequireNoop(const Ctx& c, const Json& obj, std::string_view key, const Json& expected) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null() || *it == expected) return Status::Ok();
  return Unsupported(c.Sub(key), "value " + it->dump() + " is not supported, only " +
                                     expected.dump() + " or null");
}

Result<std::string> GetType(const Ctx& c, const Json& obj) {
  if (!obj.is_object()) return TypeError(c, "object", obj);
  return GetStr(c, obj, "type");
}

Status ParseNormalizer(const Ctx& c, const Json& n, TokenizerSpec* spec) {
  if (n.is_null()) return Status::Ok();
  MOE_ASSIGN_OR_RETURN(std::string type, GetType(c, n));
  if (type != "NFC") return Unsupported(c.Sub("type"), "normalizer '" + type + "'");
  MOE_TRY(OnlyKeys(c, n, {"type"}));
  spec->nfc = true;
  return Status::Ok();
}

// `affects_ids`: false for the ByteLevel decoder and post-processor, whose flags only change
// offsets (tokenizers' ByteLevel::decode_chain and process ignore them), true for the
// pre-tokenizer, where add_prefix_space would change the ids.
Status ParseByteLevelOptions(const Ctx& c, const Json& b, bool affects_ids = true) {
  MOE_TRY(OnlyKeys(c, b, {"type", "add_prefix_space", "trim_offsets", "use_regex"}));
  if (!affects_ids) {
    for (const char* k : {"add_prefix_space", "trim_offsets", "use_regex"}) {
      MOE_ASSIGN_OR_RETURN(bool v, GetBoolOr(c, b, k, false));
      (void)v;  // type-checked, no effect on ids or decoded text
    }
    return Status::Ok();
  }
  MOE_TRY(RequireNoop(c, b, "add_prefix_space", false));
  MOE_ASSIGN_OR_RETURN(bool trim_offsets, GetBoolOr(c, b, "trim_offsets", true));
  (void)trim_offsets;  // affects offsets only, never ids
  return Status::Ok();
}

Status ParseSplit(const Ctx& c, const Json& s, TokenizerSpec* spec) {
  MOE_TRY(OnlyKeys(c, s, {"type", "pattern", "behavior", "invert"}));
  auto it = s.find("pattern");
  if (it == s.end()) return Error(StatusCode::kInvalidFormat, "{}: key '{}' is missing", c.what,
                                  c.Sub("pattern").path);
  if (!it->is_object() || it->size() != 1) return TypeError(c.Sub("pattern"),
                                                             "{\"Regex\": ..} or {\"String\": ..}", *it);
  const Ctx pc = c.Sub("pattern");
  if (it->contains("Regex")) {
    MOE_ASSIGN_OR_RETURN(spec->split_pattern, GetStr(pc, *it, "Regex"));
  } else if (it->contains("String")) {
    MOE_ASSIGN_OR_RETURN(spec->split_pattern, GetStr(pc, *it, "String"));
    spec->split_pattern_is_regex = false;
  } else {
    return Unsupported(pc, "pattern kind " + it->begin().key());
  }
  MOE_ASSIGN_OR_RETURN(std::string behavior, GetStr(c, s, "behavior"));
  if (behavior != "Isolated") return Unsupported(c.Sub("behavior"), "behavior '" + behavior + "'");
  return RequireNoop(c, s, "invert", false);
}

// Sequence[Split(Isolated), ByteLevel(use_regex false)].
Status ParsePreTokenizer(const Ctx& c, const Json& p, TokenizerSpec* spec) {
  if (p.is_null()) return Unsupported(c, "a null pre_tokenizer");
  MOE_ASSIGN_OR_RETURN(std::string type, GetType(c, p));
  if (type != "Sequence") return Unsupported(c.Sub("type"), "pre_tokenizer '" + type + "'");
  MOE_TRY(OnlyKeys(c, p, {"type", "pretokenizers"}));
  const Ctx lc = c.Sub("pretokenizers");
  auto it = p.find("pretokenizers");
  if (it == p.end() || !it->is_array()) return TypeError(lc, "array", it == p.end() ? Json() : *it);
  if (it->size() != 2) return Unsupported(lc, "a sequence of " + std::to_string(it->size()) +
                                                  " steps (expected Split, ByteLevel)");
  const Ctx c0 = lc.Index(0), c1 = lc.Index(1);
  MOE_ASSIGN_OR_RETURN(std::string t0, GetType(c0, (*it)[0]));
  if (t0 != "Split") return Unsupported(c0.Sub("type"), "pre_tokenizer '" + t0 + "'");
  MOE_TRY(ParseSplit(c0, (*it)[0], spec));
  MOE_ASSIGN_OR_RETURN(std::string t1, GetType(c1, (*it)[1]));
  if (t1 != "ByteLevel") return Unsupported(c1.Sub("type"), "pre_tokenizer '" + t1 + "'");
  MOE_TRY(ParseByteLevelOptions(c1, (*it)[1]));
  MOE_ASSIGN_OR_RETURN(bool use_regex, GetBoolOr(c1, (*it)[1], "use_regex", true));
  if (use_regex) return Unsupported(c1.Sub("use_regex"), "ByteLevel with use_regex true");
  return Status::Ok();
}

Status ParseByteLevelStage(const Ctx& c, const Json& d, bool allow_null) {
  if (d.is_null() && allow_null) return Status::Ok();
  if (d.is_null()) return Unsupported(c, "null (a ByteLevel decoder is required)");
  MOE_ASSIGN_OR_RETURN(std::string type, GetType(c, d));
  if (type != "ByteLevel") return Unsupported(c.Sub("type"), "'" + type + "'");
  return ParseByteLevelOptions(c, d, /*affects_ids=*/false);
}

Status ParseVocab(const Ctx& c, const Json& v, TokenizerSpec* spec) {
  if (!v.is_object()) return TypeError(c, "object", v);
  spec->vocab.reserve(v.size());
  for (const auto& [token, id] : v.items()) {
    if (!id.is_number_integer()) return TypeError(c.Sub(token), "integer id", id);
    spec->vocab.emplace_back(token, id.get<int64_t>());
  }
  return Status::Ok();
}

Status ParseMerges(const Ctx& c, const Json& m, TokenizerSpec* spec) {
  if (!m.is_array()) return TypeError(c, "array", m);
  spec->merges.reserve(m.size());
  for (size_t i = 0; i < m.size(); ++i) {
    const Json& e = m[i];
    if (e.is_string()) {  // legacy "a b"
      const std::string& s = e.get_ref<const std::string&>();
      if (s.rfind("#version", 0) == 0) continue;
      const size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos) {
        return Error(StatusCode::kInvalidFormat, "{}: key '{}': merge \"{}\" is not two tokens "
                     "separated by one space", c.what, c.Index(i).path, s);
      }
      spec->merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      spec->merges.emplace_back(e[0].get<std::string>(), e[1].get<std::string>());
    } else {
      return TypeError(c.Index(i), "\"a b\" string or [\"a\", \"b\"] pair", e);
    }
  }
  return Status::Ok();
}

Status ParseModel(const Ctx& c, const Json& m, TokenizerSpec* spec) {
  MOE_ASSIGN_OR_RETURN(std::string type, GetType(c, m));
  if (type != "BPE") return Unsupported(c.Sub("type"), "model type '" + type + "'");
  MOE_TRY(OnlyKeys(c, m, {"type", "dropout", "unk_token", "continuing_subword_prefix",
                          "end_of_word_suffix", "fuse_unk", "byte_fallback", "ignore_merges",
                          "vocab", "merges"}));
  MOE_TRY(RequireNoop(c, m, "unk_token", nullptr));
  MOE_TRY(RequireNoop(c, m, "continuing_subword_prefix", ""));
  MOE_TRY(RequireNoop(c, m, "end_of_word_suffix", ""));
  MOE_TRY(RequireNoop(c, m, "fuse_unk", false));
  MOE_TRY(RequireNoop(c, m, "byte_fallback", false));
  MOE_TRY(RequireNoop(c, m, "ignore_merges", false));
  auto dropout = m.find("dropout");
  if (dropout != m.end() && !dropout->is_null()) {
    if (!dropout->is_number()) return TypeError(c.Sub("dropout"), "number or null", *dropout);
    if (dropout->get<double>() != 0.0) return Unsupported(c.Sub("dropout"), "BPE dropout");
  }
  for (const char* key : {"vocab", "merges"}) {
    if (!m.contains(key)) return Error(StatusCode::kInvalidFormat, "{}: key '{}' is missing",
                                       c.what, c.Sub(key).path);
  }
  MOE_TRY(ParseVocab(c.Sub("vocab"), m["vocab"], spec));
  return ParseMerges(c.Sub("merges"), m["merges"], spec);
}

Status ParseAddedTokens(const Ctx& c, const Json& a, TokenizerSpec* spec) {
  if (a.is_null()) return Status::Ok();
  if (!a.is_array()) return TypeError(c, "array", a);
  for (size_t i = 0; i < a.size(); ++i) {
    const Ctx ec = c.Index(i);
    const Json& t = a[i];
    if (!t.is_object()) return TypeError(ec, "object", t);
    MOE_TRY(OnlyKeys(ec, t, {"id", "content", "special", "lstrip", "rstrip", "single_word",
                             "normalized"}));
    AddedTokenSpec tok;
    auto id = t.find("id");
    if (id == t.end() || !id->is_number_integer()) {
      return TypeError(ec.Sub("id"), "integer", id == t.end() ? Json() : *id);
    }
    if (id->get<int64_t>() < 0 || id->get<int64_t>() > INT32_MAX) {
      return Error(StatusCode::kInvalidFormat, "{}: key '{}': id {} out of range", c.what,
                   ec.Sub("id").path, id->get<int64_t>());
    }
    tok.id = static_cast<int32_t>(id->get<int64_t>());
    MOE_ASSIGN_OR_RETURN(tok.content, GetStr(ec, t, "content"));
    if (tok.content.empty()) {
      return Error(StatusCode::kInvalidFormat, "{}: key '{}': empty added token", c.what,
                   ec.Sub("content").path);
    }
    MOE_ASSIGN_OR_RETURN(tok.special, GetBoolOr(ec, t, "special", false));
    MOE_ASSIGN_OR_RETURN(tok.lstrip, GetBoolOr(ec, t, "lstrip", false));
    MOE_ASSIGN_OR_RETURN(tok.rstrip, GetBoolOr(ec, t, "rstrip", false));
    MOE_ASSIGN_OR_RETURN(tok.single_word, GetBoolOr(ec, t, "single_word", false));
    // HF's AddedToken default: normalized = !special.
    MOE_ASSIGN_OR_RETURN(tok.normalized, GetBoolOr(ec, t, "normalized", !tok.special));
    spec->added_tokens.push_back(std::move(tok));
  }
  return Status::Ok();
}

}  // namespace

Result<TokenizerSpec> ParseTokenizerJson(std::string_view text, std::string_view what) {
  MOE_ASSIGN_OR_RETURN(Json doc, ParseJson(text, what));
  const Ctx root{what, ""};
  if (!doc.is_object()) return TypeError(Ctx{what, "(root)"}, "object", doc);
  MOE_TRY(OnlyKeys(root, doc, {"version", "truncation", "padding", "added_tokens", "normalizer",
                               "pre_tokenizer", "post_processor", "decoder", "model"}));
  if (!doc.contains("model")) {
    return Error(StatusCode::kInvalidFormat, "{}: key 'model' is missing", what);
  }
  MOE_TRY(RequireNoop(root, doc, "truncation", nullptr));
  MOE_TRY(RequireNoop(root, doc, "padding", nullptr));
  TokenizerSpec spec;
  static const Json kNull;
  auto get = [&](const char* key) -> const Json& {
    auto it = doc.find(key);
    return it == doc.end() ? kNull : *it;
  };
  MOE_TRY(ParseModel(root.Sub("model"), doc["model"], &spec));
  MOE_TRY(ParseAddedTokens(root.Sub("added_tokens"), get("added_tokens"), &spec));
  MOE_TRY(ParseNormalizer(root.Sub("normalizer"), get("normalizer"), &spec));
  MOE_TRY(ParsePreTokenizer(root.Sub("pre_tokenizer"), get("pre_tokenizer"), &spec));
  MOE_TRY(ParseByteLevelStage(root.Sub("post_processor"), get("post_processor"), true));
  MOE_TRY(ParseByteLevelStage(root.Sub("decoder"), get("decoder"), false));
  return spec;
}

namespace {

// A special token in tokenizer_config.json: null, "text", or {"content": "text", ...}.
Result<std::optional<std::string>> GetTokenField(const Ctx& c, const Json& cfg,
                                                 const char* key) {
  auto it = cfg.find(key);
  if (it == cfg.end() || it->is_null()) return std::optional<std::string>();
  if (it->is_string()) return std::optional<std::string>(it->get<std::string>());
  if (it->is_object()) {
    MOE_ASSIGN_OR_RETURN(std::string content, GetStr(c.Sub(key), *it, "content"));
    return std::optional<std::string>(std::move(content));
  }
  return TypeError(c.Sub(key), "string, object or null", *it);
}

}  // namespace

Result<TokenizerConfigSpec> ParseTokenizerConfigJson(std::string_view text,
                                                     std::string_view what) {
  MOE_ASSIGN_OR_RETURN(Json cfg, ParseJson(text, what));
  const Ctx root{what, ""};
  if (!cfg.is_object()) return TypeError(Ctx{what, "(root)"}, "object", cfg);
  TokenizerConfigSpec out;
  MOE_ASSIGN_OR_RETURN(out.bos_token, GetTokenField(root, cfg, "bos_token"));
  MOE_ASSIGN_OR_RETURN(out.eos_token, GetTokenField(root, cfg, "eos_token"));
  MOE_ASSIGN_OR_RETURN(out.pad_token, GetTokenField(root, cfg, "pad_token"));
  MOE_ASSIGN_OR_RETURN(out.split_special_tokens,
                       GetBoolOr(root, cfg, "split_special_tokens", false));
  // The fast tokenizer adds BOS/EOS only through its post_processor, which must be ByteLevel
  // here; a config asking for them would not get them, so refuse rather than diverge.
  MOE_ASSIGN_OR_RETURN(bool add_bos, GetBoolOr(root, cfg, "add_bos_token", false));
  MOE_ASSIGN_OR_RETURN(bool add_eos, GetBoolOr(root, cfg, "add_eos_token", false));
  if (add_bos && out.bos_token) return Unsupported(root.Sub("add_bos_token"), "true");
  if (add_eos) return Unsupported(root.Sub("add_eos_token"), "true");
  return out;
}

}  // namespace moe
