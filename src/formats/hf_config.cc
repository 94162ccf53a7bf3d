// SPDX-License-Identifier: Apache-2.0
// config.json → Qwen3MoeConfig (spec §1.1, §2.8, §3.1; bad-inputs.md C1-C7).
#include "formats/hf_config.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <system_error>

#include "formats/json.h"
#include "util/file.h"

namespace moe {
namespace {

constexpr std::string_view kSupportedTypes = "qwen3_moe, qwen3_omni_moe";
constexpr uint64_t kMaxConfigBytes = 64ull << 20;

// Typed reads from one JSON object whose keys are named "<prefix><key>" in messages.
class Fields {
 public:
  Fields(const Json& obj, std::string_view what, std::string prefix)
      : obj_(obj), what_(what), prefix_(std::move(prefix)) {}

  std::string Path(std::string_view key) const { return prefix_ + std::string(key); }
  // Present and not null.
  bool Has(std::string_view key) const {
    auto it = obj_.find(key);
    return it != obj_.end() && !it->is_null();
  }
  const Json& At(std::string_view key) const { return *obj_.find(key); }

  Result<int64_t> Int(std::string_view key) const { return GetInt(obj_, key, what_, Path(key)); }
  // Required integer in [lo, hi]; values above `hi` are a corrupt file (checked before any use).
  Result<int64_t> IntIn(std::string_view key, int64_t lo, int64_t hi) const {
    MOE_ASSIGN_OR_RETURN(int64_t v, Int(key));
    if (v < lo || v > hi) {
      return Error(StatusCode::kInvalidFormat, "{}: key '{}': {} out of range ({} vs [{}, {}])",
                   what_, Path(key), v, v, lo, hi);
    }
    return v;
  }
  Result<int64_t> OptIntIn(std::string_view key, int64_t lo, int64_t hi, int64_t def) const {
    if (!Has(key)) return def;
    return IntIn(key, lo, hi);
  }
  Result<double> OptNumber(std::string_view key, double def) const {
    if (!Has(key)) return def;
    return GetNumber(obj_, key, what_, Path(key));
  }
  Result<double> OptPositive(std::string_view key, double def) const {
    MOE_ASSIGN_OR_RETURN(double v, OptNumber(key, def));
    if (!(v > 0)) {
      return Error(StatusCode::kInvalidFormat, "{}: key '{}': {} must be > 0", what_, Path(key), v);
    }
    return v;
  }
  Result<bool> OptBool(std::string_view key, bool def) const {
    if (!Has(key)) return def;
    return GetBool(obj_, key, what_, Path(key));
  }
  Result<std::string> OptString(std::string_view key) const {
    if (!Has(key)) return std::string();
    return GetString(obj_, key, what_, Path(key));
  }
  // Token ids: an integer, a list of integers, or null/absent; each in [0, vocab).
  Status TokenIds(std::string_view key, int64_t vocab, std::vector<int64_t>* out) const {
    if (!Has(key)) return Status::Ok();
    const Json& v = At(key);
    auto check = [&](const Json& e, std::string path) -> Status {
      if (!e.is_number_integer()) {
        return Error(StatusCode::kInvalidFormat, "{}: key '{}': expected integer, got {}", what_,
                     path, JsonTypeName(e));
      }
      int64_t id =
          e.is_number_unsigned() && e.get<uint64_t>() > uint64_t{1} << 62 ? -1 : e.get<int64_t>();
      if (id < 0 || (vocab > 0 && id >= vocab)) {
        return Error(StatusCode::kInvalidFormat, "{}: key '{}': token id {} out of range [0, {})",
                     what_, path, e.dump(), vocab);
      }
      if (std::find(out->begin(), out->end(), id) == out->end()) out->push_back(id);
      return Status::Ok();
    };
    if (!v.is_array()) return check(v, Path(key));
    for (size_t i = 0; i < v.size(); ++i) {
      MOE_TRY(check(v[i], fmt::format("{}[{}]", Path(key), i)));
    }
    return Status::Ok();
  }

  std::string_view what() const { return what_; }

 private:
  const Json& obj_;
  std::string_view what_;
  std::string prefix_;
};

Status Unsupported(std::string_view what, std::string_view key, std::string_view rule) {
  return Error(StatusCode::kUnsupported, "{}: key '{}': {}", what, key, rule);
}

// RoPE: v4 rope_theta + rope_scaling, or v5 rope_parameters {rope_type, rope_theta, ...}.
Status ParseRope(const Fields& f, Qwen3MoeConfig* cfg) {
  std::string dict_key;
  if (f.Has("rope_parameters")) {
    dict_key = "rope_parameters";
  } else if (f.Has("rope_scaling")) {
    dict_key = "rope_scaling";
  }
  MOE_ASSIGN_OR_RETURN(cfg->rope_theta, f.OptPositive("rope_theta", 10000.0));
  if (dict_key.empty()) return Status::Ok();
  const Json& dict = f.At(dict_key);
  if (!dict.is_object()) {
    return Error(StatusCode::kInvalidFormat, "{}: key '{}': expected object, got {}", f.what(),
                 f.Path(dict_key), JsonTypeName(dict));
  }
  Fields r(dict, f.what(), f.Path(dict_key) + ".");
  if (r.Has("rope_theta")) {
    MOE_ASSIGN_OR_RETURN(cfg->rope_theta, r.OptPositive("rope_theta", 0));
  }
  std::string type_key = r.Has("rope_type") ? "rope_type" : "type";
  MOE_ASSIGN_OR_RETURN(std::string type, r.OptString(type_key));
  if (type.empty()) type = "default";
  if (r.Has("partial_rotary_factor")) {
    MOE_ASSIGN_OR_RETURN(double p, r.OptNumber("partial_rotary_factor", 1.0));
    if (p != 1.0) return Unsupported(f.what(), r.Path("partial_rotary_factor"), "must be 1.0");
  }
  // M-RoPE keys (Omni): identity for text-only input (spec §3.3). "mrope" is HF's legacy
  // spelling of "default" with sections.
  if (r.Has("mrope_section") && !r.At("mrope_section").is_array()) {
    return Error(StatusCode::kInvalidFormat, "{}: key '{}': expected array, got {}", f.what(),
                 r.Path("mrope_section"), JsonTypeName(r.At("mrope_section")));
  }
  if (type == "default" || type == "mrope") {
    cfg->rope_scaling = RopeScaling{};
    return Status::Ok();
  }
  if (type == "linear" || type == "dynamic" || type == "llama3" || type == "longrope" ||
      type == "su") {
    return Error(StatusCode::kUnsupported,
                 "{}: key '{}': rope type '{}' is not implemented (supported: default, yarn)",
                 f.what(), r.Path(type_key), type);
  }
  if (type != "yarn") {
    return Error(StatusCode::kInvalidFormat,
                 "{}: key '{}': unknown rope type '{}' (known: default, yarn, linear, dynamic, "
                 "llama3, longrope)",
                 f.what(), r.Path(type_key), type);
  }
  RopeScaling& y = cfg->rope_scaling;
  y.type = RopeScaling::Type::kYarn;
  MOE_ASSIGN_OR_RETURN(y.original_max_position_embeddings,
                       r.OptPositive("original_max_position_embeddings", 1.0));
  if (!r.Has("original_max_position_embeddings")) y.original_max_position_embeddings = 0;
  if (r.Has("factor")) {
    MOE_ASSIGN_OR_RETURN(y.factor, r.OptPositive("factor", 1.0));
  } else if (y.original_max_position_embeddings > 0 && cfg->max_position_embeddings > 0) {
    // v5 derives a missing factor (spec §2.8). v4 overwrote a given factor with this ratio.
    y.factor = cfg->max_position_embeddings / y.original_max_position_embeddings;
  } else {
    return Error(StatusCode::kInvalidFormat,
                 "{}: key '{}': missing (and no original_max_position_embeddings to derive it)",
                 f.what(), r.Path("factor"));
  }
  MOE_ASSIGN_OR_RETURN(y.attention_factor, r.OptNumber("attention_factor", 0.0));
  MOE_ASSIGN_OR_RETURN(y.beta_fast, r.OptNumber("beta_fast", 32.0));
  MOE_ASSIGN_OR_RETURN(y.beta_slow, r.OptNumber("beta_slow", 1.0));
  MOE_ASSIGN_OR_RETURN(y.mscale, r.OptNumber("mscale", 0.0));
  MOE_ASSIGN_OR_RETURN(y.mscale_all_dim, r.OptNumber("mscale_all_dim", 0.0));
  MOE_ASSIGN_OR_RETURN(y.truncate, r.OptBool("truncate", true));
  if (y.attention_factor < 0 || !(cfg->rope_theta > 1.0)) {
    return Error(
        StatusCode::kInvalidFormat,
        "{}: key '{}': yarn needs attention_factor >= 0 and rope_theta > 1 (got {} and {})",
        f.what(), f.Path(dict_key), y.attention_factor, cfg->rope_theta);
  }
  return Status::Ok();
}

Status ParseGeometry(const Fields& f, Qwen3MoeConfig* c) {
  MOE_ASSIGN_OR_RETURN(c->vocab_size, f.IntIn("vocab_size", 1, kMaxVocab));
  MOE_ASSIGN_OR_RETURN(c->hidden_size, f.IntIn("hidden_size", 1, kMaxHidden));
  MOE_ASSIGN_OR_RETURN(c->num_hidden_layers, f.IntIn("num_hidden_layers", 1, kMaxLayers));
  MOE_ASSIGN_OR_RETURN(c->num_attention_heads, f.IntIn("num_attention_heads", 1, kMaxHeads));
  MOE_ASSIGN_OR_RETURN(c->num_key_value_heads, f.IntIn("num_key_value_heads", 1, kMaxHeads));
  if (c->num_attention_heads % c->num_key_value_heads != 0) {
    return Error(StatusCode::kInvalidFormat,
                 "{}: key '{}': num_attention_heads {} not divisible by num_key_value_heads {}",
                 f.what(), f.Path("num_key_value_heads"), c->num_attention_heads,
                 c->num_key_value_heads);
  }
  if (f.Has("head_dim")) {
    MOE_ASSIGN_OR_RETURN(c->head_dim, f.IntIn("head_dim", 1, kMaxHeadDim));
  } else if (c->hidden_size % c->num_attention_heads != 0) {
    return Error(StatusCode::kInvalidFormat,
                 "{}: key '{}': hidden_size {} not divisible by num_attention_heads {} (and no "
                 "head_dim)",
                 f.what(), f.Path("hidden_size"), c->hidden_size, c->num_attention_heads);
  } else {
    c->head_dim = c->hidden_size / c->num_attention_heads;
    if (c->head_dim > kMaxHeadDim) {
      return Error(StatusCode::kInvalidFormat, "{}: key '{}': head_dim {} exceeds limit {}",
                   f.what(), f.Path("hidden_size"), c->head_dim, kMaxHeadDim);
    }
  }
  if (c->head_dim % 2 != 0) {
    return Error(StatusCode::kInvalidFormat, "{}: key '{}': head_dim {} must be even (RoPE)",
                 f.what(), f.Path("head_dim"), c->head_dim);
  }
  MOE_ASSIGN_OR_RETURN(c->max_position_embeddings,
                       f.OptIntIn("max_position_embeddings", 1, int64_t{1} << 40, 0));
  return Status::Ok();
}

Status ParseMoe(const Fields& f, Qwen3MoeConfig* c) {
  // 4.x writes num_experts, 5.x num_local_experts; both present must agree.
  bool has_e = f.Has("num_experts"), has_le = f.Has("num_local_experts");
  if (!has_e && !has_le) {
    return Error(StatusCode::kInvalidFormat, "{}: key '{}': missing (nor num_local_experts)",
                 f.what(), f.Path("num_experts"));
  }
  MOE_ASSIGN_OR_RETURN(c->num_experts,
                       f.IntIn(has_e ? "num_experts" : "num_local_experts", 1, kMaxExperts));
  if (has_e && has_le) {
    MOE_ASSIGN_OR_RETURN(int64_t local, f.Int("num_local_experts"));
    if (local != c->num_experts) {
      return Error(StatusCode::kInvalidFormat, "{}: key '{}': {} disagrees with num_experts {}",
                   f.what(), f.Path("num_local_experts"), local, c->num_experts);
    }
  }
  MOE_ASSIGN_OR_RETURN(c->num_experts_per_tok, f.IntIn("num_experts_per_tok", 1, c->num_experts));
  MOE_ASSIGN_OR_RETURN(c->moe_intermediate_size,
                       f.IntIn("moe_intermediate_size", 1, kMaxIntermediate));
  MOE_ASSIGN_OR_RETURN(c->intermediate_size,
                       f.OptIntIn("intermediate_size", 1, kMaxIntermediate, 0));
  MOE_ASSIGN_OR_RETURN(c->norm_topk_prob, f.OptBool("norm_topk_prob", false));
  MOE_ASSIGN_OR_RETURN(c->decoder_sparse_step, f.OptIntIn("decoder_sparse_step", 1, kMaxLayers, 1));
  if (f.Has("mlp_only_layers")) {
    const Json& v = f.At("mlp_only_layers");
    if (!v.is_array()) {
      return Error(StatusCode::kInvalidFormat, "{}: key '{}': expected array, got {}", f.what(),
                   f.Path("mlp_only_layers"), JsonTypeName(v));
    }
    for (size_t i = 0; i < v.size(); ++i) {
      std::string path = fmt::format("{}[{}]", f.Path("mlp_only_layers"), i);
      if (!v[i].is_number_integer() ||
          (v[i].is_number_unsigned() && v[i].get<uint64_t>() > uint64_t{1} << 62) ||
          v[i].get<int64_t>() < 0 || v[i].get<int64_t>() >= c->num_hidden_layers) {
        return Error(StatusCode::kInvalidFormat, "{}: key '{}': {} is not a layer index in [0, {})",
                     f.what(), path, v[i].dump(), c->num_hidden_layers);
      }
      c->mlp_only_layers.push_back(v[i].get<int64_t>());
    }
    std::sort(c->mlp_only_layers.begin(), c->mlp_only_layers.end());
    c->mlp_only_layers.erase(std::unique(c->mlp_only_layers.begin(), c->mlp_only_layers.end()),
                             c->mlp_only_layers.end());
  }
  for (int64_t i = 0; i < c->num_hidden_layers; ++i) {
    if (!c->IsMoeLayer(i) && c->intermediate_size <= 0) {
      return Error(StatusCode::kInvalidFormat,
                   "{}: key '{}': missing, but layer {} is a dense MLP layer", f.what(),
                   f.Path("intermediate_size"), i);
    }
  }
  return Status::Ok();
}

// Features the engine does not compute: refuse rather than silently differ from HF.
Status CheckUnsupported(const Fields& f) {
  MOE_ASSIGN_OR_RETURN(bool bias, f.OptBool("attention_bias", false));
  if (bias) return Unsupported(f.what(), f.Path("attention_bias"), "true is not supported");
  MOE_ASSIGN_OR_RETURN(bool swa, f.OptBool("use_sliding_window", false));
  if (swa) return Unsupported(f.what(), f.Path("use_sliding_window"), "true is not supported");
  MOE_ASSIGN_OR_RETURN(std::string act, f.OptString("hidden_act"));
  if (!act.empty() && act != "silu") {
    return Unsupported(f.what(), f.Path("hidden_act"),
                       fmt::format("'{}' is not supported (supported: silu)", act));
  }
  MOE_ASSIGN_OR_RETURN(int64_t shared,
                       f.OptIntIn("shared_expert_intermediate_size", 0, kMaxIntermediate, 0));
  if (shared > 0) {
    return Unsupported(f.what(), f.Path("shared_expert_intermediate_size"),
                       fmt::format("shared experts ({}) are not supported", shared));
  }
  return Status::Ok();
}

}  // namespace

bool Qwen3MoeConfig::IsMoeLayer(int64_t layer) const {
  if (num_experts <= 0 || decoder_sparse_step <= 0) return false;
  if (std::binary_search(mlp_only_layers.begin(), mlp_only_layers.end(), layer)) return false;
  return (layer + 1) % decoder_sparse_step == 0;
}

Result<Qwen3MoeConfig> ParseHfConfig(std::string_view json_text, std::string_view path) {
  MOE_ASSIGN_OR_RETURN(Json root, ParseJson(json_text, path));
  if (!root.is_object()) {
    return Error(StatusCode::kInvalidFormat, "{}: top level is {}, expected object", path,
                 JsonTypeName(root));
  }
  Qwen3MoeConfig c;
  MOE_ASSIGN_OR_RETURN(c.model_type, GetString(root, "model_type", path, "model_type"));
  const Json* text = &root;
  std::string prefix;
  if (c.model_type == "qwen3_omni_moe") {
    c.tensor_prefix = "thinker.";
    prefix = "thinker_config.text_config.";
    auto th = root.find("thinker_config");
    if (th == root.end() || !th->is_object()) {
      return Error(StatusCode::kInvalidFormat, "{}: key 'thinker_config': missing or not an object",
                   path);
    }
    auto tc = th->find("text_config");
    if (tc == th->end() || !tc->is_object()) {
      return Error(StatusCode::kInvalidFormat,
                   "{}: key 'thinker_config.text_config': missing or not an object", path);
    }
    text = &*tc;
  } else if (c.model_type != "qwen3_moe") {
    return Error(StatusCode::kUnsupported,
                 "{}: key 'model_type': '{}' is not supported (supported: {})", path, c.model_type,
                 kSupportedTypes);
  }
  Fields f(*text, path, prefix);
  Fields top(root, path, "");
  MOE_ASSIGN_OR_RETURN(c.dtype, f.OptString("dtype"));
  if (c.dtype.empty()) {
    MOE_ASSIGN_OR_RETURN(c.dtype, f.OptString("torch_dtype"));
  }
  if (c.dtype.empty() && text != &root) {
    MOE_ASSIGN_OR_RETURN(c.dtype, top.OptString("dtype"));
  }
  if (c.dtype.empty() && text != &root) {
    MOE_ASSIGN_OR_RETURN(c.dtype, top.OptString("torch_dtype"));
  }
  MOE_TRY(CheckUnsupported(f));
  MOE_TRY(ParseGeometry(f, &c));
  MOE_TRY(ParseMoe(f, &c));
  MOE_ASSIGN_OR_RETURN(c.rms_norm_eps, f.OptPositive("rms_norm_eps", 1e-6));
  MOE_TRY(ParseRope(f, &c));
  MOE_ASSIGN_OR_RETURN(c.tie_word_embeddings, f.OptBool("tie_word_embeddings", false));
  if (f.Has("bos_token_id") && f.At("bos_token_id").is_array()) {
    return Error(StatusCode::kInvalidFormat, "{}: key '{}': expected integer or null, got array",
                 path, f.Path("bos_token_id"));
  }
  std::vector<int64_t> bos;
  MOE_TRY(f.TokenIds("bos_token_id", c.vocab_size, &bos));
  c.bos_token_id = bos.empty() ? -1 : bos[0];
  MOE_TRY(f.TokenIds("eos_token_id", c.vocab_size, &c.eos_token_ids));
  return c;
}

Status MergeGenerationConfig(std::string_view json_text, std::string_view path,
                             Qwen3MoeConfig* cfg) {
  MOE_ASSIGN_OR_RETURN(Json root, ParseJson(json_text, path));
  if (!root.is_object()) {
    return Error(StatusCode::kInvalidFormat, "{}: top level is {}, expected object", path,
                 JsonTypeName(root));
  }
  return Fields(root, path, "").TokenIds("eos_token_id", cfg->vocab_size, &cfg->eos_token_ids);
}

Result<Qwen3MoeConfig> LoadHfConfig(const std::string& model_dir) {
  namespace fs = std::filesystem;
  const std::string path = (fs::path(model_dir) / "config.json").string();
  MOE_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path, kMaxConfigBytes));
  MOE_ASSIGN_OR_RETURN(Qwen3MoeConfig cfg, ParseHfConfig(text, path));
  const std::string gen = (fs::path(model_dir) / "generation_config.json").string();
  std::error_code ec;
  if (fs::exists(gen, ec)) {
    MOE_ASSIGN_OR_RETURN(std::string gtext, ReadFileToString(gen, kMaxConfigBytes));
    MOE_TRY(MergeGenerationConfig(gtext, gen, &cfg));
  }
  return cfg;
}

}  // namespace moe
