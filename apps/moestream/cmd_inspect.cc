// SPDX-License-Identifier: Apache-2.0
// `moestream inspect --model DIR [--json]`: validates config.json + the safetensors checkpoint
// and prints a short summary, or the first error as one line with its exit code.
#include <cstdio>
#include <cstring>
#include <map>
#include <string>

#include "command.h"
#include "formats/hf_config.h"
#include "formats/json.h"
#include "formats/safetensors.h"
#include "formats/tensor_check.h"
#include "util/status.h"

namespace moe::app {
namespace {

constexpr const char* kUsage =
    "usage: moestream inspect --model DIR [--json] [--check-tensors]\n"
    "  --model DIR   Hugging Face model folder (config.json + model.safetensors[.index.json])\n"
    "  --json        print the summary as one JSON object\n"
    "  --check-tensors  read every float tensor and fail on the first NaN/Inf (reads the model)\n";

struct InspectArgs {
  std::string model_dir;
  bool json = false;
  bool check_tensors = false;
};

int UsageError(const std::string& message) {
  std::fprintf(stderr, "moestream inspect: %s\n%s", message.c_str(), kUsage);
  return ExitCodeFor(StatusCode::kUsage);
}

// Returns -1 when parsing succeeded, else the exit code to return.
int ParseArgs(int argc, char** argv, InspectArgs* args) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (a == "--json") {
      args->json = true;
    } else if (a == "--check-tensors") {
      args->check_tensors = true;
    } else if (a == "--model") {
      if (i + 1 >= argc) return UsageError("--model needs a value");
      args->model_dir = argv[++i];
    } else if (a.starts_with("--model=")) {
      args->model_dir = a.substr(8);
    } else {
      return UsageError("unknown argument '" + a + "'");
    }
  }
  if (args->model_dir.empty()) return UsageError("--model DIR is required");
  return -1;
}

int Fail(const Status& s) {
  std::fprintf(stderr, "moestream inspect: %s\n", s.message().c_str());
  return ExitCodeFor(s.code());
}

struct Summary {
  int64_t n_moe_layers = 0;
  std::map<std::string, uint64_t> bytes_by_dtype;
  std::map<std::string, uint64_t> tensors_by_dtype;
  uint64_t bytes_total = 0;
  size_t n_tensors = 0;
};

Summary Summarize(const Qwen3MoeConfig& cfg, const Checkpoint& ckpt) {
  Summary s;
  for (int64_t i = 0; i < cfg.num_hidden_layers; ++i) s.n_moe_layers += cfg.IsMoeLayer(i);
  for (const std::string& name : ckpt.Names()) {
    const TensorInfo& t = *ckpt.Find(name)->info;
    std::string dt(DTypeName(t.dtype));
    s.bytes_by_dtype[dt] += t.n_bytes;
    s.tensors_by_dtype[dt] += 1;
    s.bytes_total += t.n_bytes;
    ++s.n_tensors;
  }
  return s;
}

void PrintJson(const Qwen3MoeConfig& cfg, const Checkpoint& ckpt, const Summary& s) {
  Json j = {
      {"model_type", cfg.model_type},
      {"tensor_prefix", cfg.tensor_prefix},
      {"dtype", cfg.dtype},
      {"num_hidden_layers", cfg.num_hidden_layers},
      {"n_moe_layers", s.n_moe_layers},
      {"num_experts", cfg.num_experts},
      {"num_experts_per_tok", cfg.num_experts_per_tok},
      {"hidden_size", cfg.hidden_size},
      {"num_attention_heads", cfg.num_attention_heads},
      {"num_key_value_heads", cfg.num_key_value_heads},
      {"head_dim", cfg.head_dim},
      {"moe_intermediate_size", cfg.moe_intermediate_size},
      {"intermediate_size", cfg.intermediate_size},
      {"vocab_size", cfg.vocab_size},
      {"rope_type", cfg.rope_scaling.type == RopeScaling::Type::kYarn ? "yarn" : "default"},
      {"rope_theta", cfg.rope_theta},
      {"eos_token_ids", cfg.eos_token_ids},
      {"n_shards", ckpt.n_shards()},
      {"n_tensors", s.n_tensors},
      {"bytes_total", s.bytes_total},
      {"bytes_by_dtype", s.bytes_by_dtype},
      {"tensors_by_dtype", s.tensors_by_dtype},
  };
  std::printf("%s\n", j.dump().c_str());
}

void PrintText(const Qwen3MoeConfig& cfg, const Checkpoint& ckpt, const Summary& s) {
  std::printf(
      "model_type   %s%s\n", cfg.model_type.c_str(),
      cfg.tensor_prefix.empty() ? "" : (" (tensors under " + cfg.tensor_prefix + ")").c_str());
  std::printf("dtype        %s\n", cfg.dtype.empty() ? "-" : cfg.dtype.c_str());
  std::printf("layers       %lld (%lld MoE, %lld dense)\n", (long long)cfg.num_hidden_layers,
              (long long)s.n_moe_layers, (long long)(cfg.num_hidden_layers - s.n_moe_layers));
  std::printf("experts      %lld, top-%lld%s\n", (long long)cfg.num_experts,
              (long long)cfg.num_experts_per_tok, cfg.norm_topk_prob ? ", renormalised" : "");
  std::printf(
      "dims         hidden %lld, heads %lld/%lld kv, head_dim %lld, expert ffn %lld, "
      "vocab %lld\n",
      (long long)cfg.hidden_size, (long long)cfg.num_attention_heads,
      (long long)cfg.num_key_value_heads, (long long)cfg.head_dim,
      (long long)cfg.moe_intermediate_size, (long long)cfg.vocab_size);
  std::printf("rope         %s, theta %g\n",
              cfg.rope_scaling.type == RopeScaling::Type::kYarn ? "yarn" : "default",
              cfg.rope_theta);
  std::printf("checkpoint   %zu tensors in %zu shard(s), %llu bytes\n", s.n_tensors,
              ckpt.n_shards(), (unsigned long long)s.bytes_total);
  for (const auto& [dt, bytes] : s.bytes_by_dtype) {
    std::printf("  %-10s %llu tensors, %llu bytes\n", dt.c_str(),
                (unsigned long long)s.tensors_by_dtype.at(dt), (unsigned long long)bytes);
  }
}

int Inspect(int argc, char** argv) {
  InspectArgs args;
  if (int rc = ParseArgs(argc, argv, &args); rc >= 0) return rc;
  Result<Qwen3MoeConfig> cfg = LoadHfConfig(args.model_dir);
  if (!cfg.ok()) return Fail(cfg.status());
  Result<Checkpoint> ckpt = Checkpoint::Open(args.model_dir);
  if (!ckpt.ok()) return Fail(ckpt.status());
  if (args.check_tensors) {
    for (const std::string& name : ckpt->Names()) {
      if (Status st = CheckTensorFinite(*ckpt->Find(name)); !st.ok()) return Fail(st);
    }
  }
  Summary s = Summarize(cfg.value(), ckpt.value());
  if (args.json) {
    PrintJson(cfg.value(), ckpt.value(), s);
  } else {
    PrintText(cfg.value(), ckpt.value(), s);
  }
  return 0;
}

}  // namespace

MOE_COMMAND("inspect", "validate a model folder and print its config and tensor summary", Inspect);

}  // namespace moe::app
