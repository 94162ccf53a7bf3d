// SPDX-License-Identifier: Apache-2.0
// `moestream inspect --model DIR` on bad model folders (bad-inputs.md sections A, B, C): the
// exit code, and one stderr line "moestream inspect: <message naming file/tensor/key>".
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "formats/json.h"
#include "formats/test_files.h"

namespace moe {
namespace {

namespace fs = std::filesystem;
using testing::BF16Bytes;
using testing::EncodeSafetensors;
using testing::F32Bytes;
using testing::Le64;
using testing::RawSafetensors;
using testing::Replace;
using testing::StTensor;
using testing::TempDir;
using testing::TinyConfigJson;
using testing::WriteFile;

struct RunResult {
  int exit_code = -1;
  std::string out, err;
  long max_rss_kib = 0;
};

using testing::Slurp;

RunResult RunMoestream(const std::vector<std::string>& args, const TempDir& scratch) {
  // MOESTREAM_BIN overrides the binary built with these tests (MOESTREAM_BIN_PATH).
  const char* env = getenv("MOESTREAM_BIN");
  const std::string bin_path = env && *env ? env : MOESTREAM_BIN_PATH;
  const char* bin = bin_path.c_str();
  RunResult r;
  if (!fs::exists(bin_path)) {
    ADD_FAILURE() << "moestream binary not found at " << bin_path << " (set MOESTREAM_BIN)";
    return r;
  }
  fs::path out = scratch / "stdout.txt", err = scratch / "stderr.txt";
  pid_t pid = fork();
  if (pid == 0) {
    int o = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int e = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(o, 1);
    dup2(e, 2);
    std::vector<char*> argv = {const_cast<char*>(bin)};
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(bin, argv.data());
    _exit(127);
  }
  int status = 0;
  struct rusage ru {};
  EXPECT_EQ(wait4(pid, &status, 0, &ru), pid);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = Slurp(out);
  r.err = Slurp(err);
  r.max_rss_kib = ru.ru_maxrss;
  return r;
}

// A model folder with a valid config.json; the test then adds or breaks files.
struct Case {
  std::string id;
  std::function<void(const fs::path& model)> setup;
  int exit_code;
  std::vector<std::string> message_parts;
};

std::vector<StTensor> Tensors() {
  return {{"model.embed_tokens.weight", "BF16", {4, 2}, BF16Bytes({1, 2, 3, 4, 5, 6, 7, 8})},
          {"model.norm.weight", "F32", {2}, F32Bytes({1.0f, 0.5f})}};
}

void Single(const fs::path& m, const std::string& bytes) {
  WriteFile(m / "model.safetensors", bytes);
}
std::string Entry(const std::string& e) { return "{\"x\":" + e + "}"; }

void Sharded(const fs::path& m, const std::string& extra_map = "") {
  WriteFile(m / "s1.safetensors", EncodeSafetensors({Tensors()[0]}));
  WriteFile(m / "s2.safetensors", EncodeSafetensors({Tensors()[1]}));
  WriteFile(m / "model.safetensors.index.json",
            "{\"metadata\":{\"total_size\":24},\"weight_map\":{"
            "\"model.embed_tokens.weight\":\"s1.safetensors\","
            "\"model.norm.weight\":\"s2.safetensors\"" +
                extra_map + "}}");
}

void Config(const fs::path& m, const std::string& from, const std::string& to) {
  WriteFile(m / "config.json", Replace(TinyConfigJson(), from, to));
  Single(m, EncodeSafetensors(Tensors()));
}

std::vector<Case> Cases() {
  std::string u8_1 = "{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}";
  return {
      {"A1", [](auto m) { Single(m, "1234567"); }, 3, {"model.safetensors", "file too small"}},
      {"A2", [](auto m) { Single(m, Le64(~uint64_t{0}) + "{}"); }, 3, {"exceeds limit 100000000"}},
      {"A3", [](auto m) { Single(m, Le64(100000001) + "{}"); }, 3, {"exceeds limit 100000000"}},
      {"A4", [](auto m) { Single(m, Le64(500) + "{}"); }, 3, {"header length exceeds file size"}},
      {"A5",
       [](auto m) { Single(m, RawSafetensors("{\"\xfe\":1}", "")); },
       3,
       {"header is not UTF-8"}},
      {"A6", [](auto m) { Single(m, RawSafetensors("[]", "")); }, 3, {"top level is array"}},
      {"A6b",
       [](auto m) { Single(m, RawSafetensors("{\"x\":", "")); },
       3,
       {"invalid JSON at byte"}},
      {"A7",
       [](auto m) { Single(m, RawSafetensors(std::string(1000000, '['), "")); },
       3,
       {"nesting depth exceeds limit"}},
      {"A8",
       [=](auto m) { Single(m, RawSafetensors("{\"w\":" + u8_1 + ",\"w\":" + u8_1 + "}", "a")); },
       3,
       {"duplicate tensor name 'w'"}},
      {"A9",
       [=](auto m) {
         Single(m, RawSafetensors("{\"__metadata__\":{\"f\":1},\"w\":" + u8_1 + "}", "a"));
       },
       3,
       {"__metadata__ key 'f'"}},
      {"A10",
       [](auto m) {
         Single(m, RawSafetensors(
                       Entry("{\"dtype\":\"F128\",\"shape\":[1],\"data_offsets\":[0,4]}"), "abcd"));
       },
       3,
       {"tensor 'x'", "unknown dtype 'F128'"}},
      {"A11",
       [](auto m) {
         Single(m, RawSafetensors(Entry("{\"dtype\":\"U8\",\"shape\":[-1],\"data_offsets\":[0,1]}"),
                                  "a"));
       },
       3,
       {"tensor 'x'", "shape[0] is -1"}},
      {"A12",
       [](auto m) {
         Single(m, RawSafetensors(Entry("{\"dtype\":\"U8\",\"shape\":[4194305,4194305,"
                                        "211106198978564],\"data_offsets\":[0,4]}"),
                                  "abcd"));
       },
       3,
       {"tensor 'x'", "element count overflows"}},
      {"A13",
       [](auto m) {
         Single(m, RawSafetensors(Entry("{\"dtype\":\"F64\",\"shape\":[9007199254740992,1024],"
                                        "\"data_offsets\":[0,4]}"),
                                  "abcd"));
       },
       3,
       {"tensor 'x'", "byte size overflows"}},
      {"A14",
       [](auto m) {
         Single(m, RawSafetensors(
                       Entry("{\"dtype\":\"F32\",\"shape\":[1000,1000],\"data_offsets\":[0,4]}"),
                       "abcd"));
       },
       3,
       {"tensor 'x'", "needs 4000000 bytes, offsets cover 4"}},
      {"A15",
       [](auto m) {
         Single(m, RawSafetensors(Entry("{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0]}"),
                                  "a"));
       },
       3,
       {"tensor 'x'", "data_offsets"}},
      {"A16",
       [](auto m) {
         Single(m, RawSafetensors("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
                                  "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[2,6]}}",
                                  "abcdef"));
       },
       3,
       {"tensors 'a' and 'b' overlap"}},
      {"A17",
       [](auto m) { Single(m, EncodeSafetensors(Tensors()) + "xx"); },
       3,
       {"2 trailing bytes"}},
      {"A18",
       [](auto m) {
         std::string h = "{";
         for (int i = 0; i < 20000; ++i) {
           h += (i ? ",\"t" : "\"t") + std::to_string(i) +
                "\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}";
         }
         Single(m, RawSafetensors(h + "}", ""));
       },
       0,
       {}},
      {"A19",
       [](auto m) {
         Single(m, EncodeSafetensors({{"e", "F32", {0, 3}, ""}, {"s", "F32", {}, F32Bytes({1})}}));
       },
       0,
       {}},
      {"A21", [](auto m) { Single(m, EncodeSafetensors(Tensors(), {}, /*pad8=*/false)); }, 0, {}},
      {"A22",
       [](auto m) {
         std::string b = EncodeSafetensors(Tensors());
         Single(m, b.substr(0, b.size() - 5));
       },
       3,
       {"header requires", "(incomplete download?)"}},
      {"B1",
       [](auto m) {
         Sharded(m);
         fs::remove(m / "s2.safetensors");
       },
       4,
       {"s2.safetensors", "shard not found"}},
      {"B2",
       [](auto m) { Sharded(m, ",\"lm_head.weight\":\"s2.safetensors\""); },
       3,
       {"tensor 'lm_head.weight'", "does not contain it"}},
      {"B3",
       [](auto m) {
         Sharded(m);
         WriteFile(m / "s2.safetensors", EncodeSafetensors({Tensors()[1], Tensors()[0]}));
       },
       3,
       {"duplicate tensor across shards"}},
      {"B4",
       [](auto m) { Sharded(m, ",\"z\":\"../../etc/passwd\""); },
       3,
       {"path escapes model directory", "../../etc/passwd"}},
      {"C1",
       [](auto m) { Config(m, "\"num_experts\": 4", "\"num_experts\": \"64\""); },
       3,
       {"config.json", "key 'num_experts': expected integer, got string"}},
      {"C1b",
       [](auto m) { WriteFile(m / "config.json", "{oops"); },
       3,
       {"config.json", "invalid JSON at byte"}},
      {"C1c", [](auto m) { Single(m, EncodeSafetensors(Tensors())); }, 4, {"config.json"}},
      {"C2",
       [](auto m) { Config(m, "\"num_hidden_layers\": 3", "\"num_hidden_layers\": 0"); },
       3,
       {"config.json", "key 'num_hidden_layers'"}},
      {"C3",
       [](auto m) { Config(m, "\"num_experts_per_tok\": 2", "\"num_experts_per_tok\": 9"); },
       3,
       {"config.json", "key 'num_experts_per_tok'"}},
      {"C4",
       [](auto m) { Config(m, "\"vocab_size\": 64", "\"vocab_size\": 2147483648"); },
       3,
       {"config.json", "key 'vocab_size'"}},
      {"C5",
       [](auto m) { Config(m, "\"model_type\": \"qwen3_moe\"", "\"model_type\": \"llama\""); },
       7,
       {"config.json", "'llama' is not supported", "qwen3_moe"}},
      {"C6",
       [](auto m) { Config(m, "\"auto_map\": {", "\"trust_remote_code\": true, \"auto_map\": {"); },
       0,
       {}},
      {"C7",
       [](auto m) { Config(m, "\"rms_norm_eps\": 1e-06", "\"rms_norm_eps\": NaN"); },
       3,
       {"config.json", "invalid JSON at byte"}},
      {"C7b",
       [](auto m) {
         Config(m, "\"rope_scaling\": null", "\"rope_scaling\": {\"type\": \"spin\"}");
       },
       3,
       {"config.json", "unknown rope type 'spin'"}},
  };
}

TEST(BadInputsCli, EveryCaseGivesExitCodeAndOneLineMessage) {
  for (const Case& c : Cases()) {
    SCOPED_TRACE(c.id);
    TempDir dir;
    fs::path model = dir / "model";
    fs::create_directory(model);
    if (!c.id.starts_with("C")) WriteFile(model / "config.json", TinyConfigJson());
    c.setup(model);
    RunResult r = RunMoestream({"inspect", "--model", model.string()}, dir);
    EXPECT_EQ(r.exit_code, c.exit_code) << r.err;
    if (c.exit_code == 0) {
      EXPECT_TRUE(r.err.empty()) << r.err;
      continue;
    }
    EXPECT_EQ(r.err.rfind("moestream inspect: ", 0), 0u) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find(model.string()), std::string::npos)
        << "message does not name the file: " << r.err;
    for (const std::string& p : c.message_parts) {
      EXPECT_NE(r.err.find(p), std::string::npos) << "'" << p << "' not in: " << r.err;
    }
  }
}

TEST(BadInputsCli, A2HugeHeaderLengthDoesNotAllocate) {
  TempDir dir;
  fs::path model = dir / "model";
  fs::create_directory(model);
  WriteFile(model / "config.json", TinyConfigJson());
  Single(model, Le64(~uint64_t{0}) + "{}");
  RunResult r = RunMoestream({"inspect", "--model", model.string()}, dir);
  EXPECT_EQ(r.exit_code, 3) << r.err;
  // A 2^64-1 (or even 100 MB) header buffer would show here; sanitizer builds start near 30 MB.
  EXPECT_LT(r.max_rss_kib, 90 * 1024) << "peak RSS of moestream inspect";
}

TEST(BadInputsCli, ValidModelSummary) {
  TempDir dir;
  fs::path model = dir / "model";
  fs::create_directory(model);
  WriteFile(model / "config.json", TinyConfigJson());
  Sharded(model);
  RunResult r = RunMoestream({"inspect", "--model", model.string(), "--json"}, dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Result<Json> j = ParseJson(r.out, "inspect --json output");
  ASSERT_TRUE(j.ok()) << j.status().message() << "\n" << r.out;
  EXPECT_EQ((*j)["model_type"], "qwen3_moe");
  EXPECT_EQ((*j)["num_experts"], 4);
  EXPECT_EQ((*j)["num_experts_per_tok"], 2);
  EXPECT_EQ((*j)["num_hidden_layers"], 3);
  EXPECT_EQ((*j)["n_moe_layers"], 2);  // mlp_only_layers [1]
  EXPECT_EQ((*j)["n_shards"], 2);
  EXPECT_EQ((*j)["n_tensors"], Tensors().size());
  EXPECT_EQ((*j)["bytes_by_dtype"]["BF16"], Tensors()[0].data.size());
  EXPECT_EQ((*j)["bytes_by_dtype"]["F32"], Tensors()[1].data.size());
  RunResult text = RunMoestream({"inspect", "--model", model.string()}, dir);
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("qwen3_moe"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("2 tensors in 2 shard(s)"), std::string::npos) << text.out;
}

// A20: NaN/Inf in tensor data is accepted by default (documented) and refused with
// --check-tensors, naming the tensor and the first bad element.
TEST(BadInputsCli, A20CheckTensors) {
  TempDir dir;
  fs::path model = dir / "model";
  fs::create_directory(model);
  WriteFile(model / "config.json", TinyConfigJson());
  Single(model, EncodeSafetensors({{"model.ok", "F32", {2}, F32Bytes({1.0f, 2.0f})},
                                   {"model.bad", "BF16", {3}, BF16Bytes({1.0f, 2.0f, NAN})}}));
  RunResult r = RunMoestream({"inspect", "--model", model.string()}, dir);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = RunMoestream({"inspect", "--model", model.string(), "--check-tensors"}, dir);
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("tensor 'model.bad': element 2 is NaN"), std::string::npos) << r.err;
}

TEST(BadInputsCli, UsageErrors) {
  TempDir dir;
  RunResult r = RunMoestream({"inspect"}, dir);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err.rfind("moestream inspect: --model DIR is required\n", 0), 0u) << r.err;
  r = RunMoestream({"inspect", "--model", dir.str(), "--bogus"}, dir);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("unknown argument '--bogus'"), std::string::npos) << r.err;
  r = RunMoestream({"inspect", "--model"}, dir);
  EXPECT_EQ(r.exit_code, 2);
  r = RunMoestream({"inspect", "--help"}, dir);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("usage: moestream inspect"), std::string::npos);
}

}  // namespace
}  // namespace moe
