// SPDX-License-Identifier: Apache-2.0
// `moestream tokenize`: encode/decode with a model's tokenizer.json (the CLI contract external
// checks use), plus a throughput benchmark mode.
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "command.h"
#include "formats/json.h"
#include "tokenizer/tokenizer.h"
#include "util/file.h"

namespace moe::app {
namespace {

constexpr char kUsage[] =
    "usage: moestream tokenize --tokenizer FILE_OR_MODEL_DIR [--jsonl] [--decode]\n"
    "                          [--skip-special] [--bench FILE [--repeat N]]\n"
    "  (default)  stdin text -> ids, space separated on one line\n"
    "  --decode   stdin ids (whitespace separated) -> text\n"
    "  --jsonl    one JSON string per line -> one JSON array of ids per line;\n"
    "             with --decode: one JSON array of ids per line -> one JSON string per line\n"
    "  --skip-special  drop special tokens when decoding (default: keep)\n"
    "  --bench FILE    encode FILE (UTF-8) as one string N times; print MB/s, ids, hash\n";

struct TokenizeOptions {
  std::string tokenizer;
  std::string bench_file;
  int repeat = 3;
  bool jsonl = false;
  bool decode = false;
  bool skip_special = false;
};

int Fail(const Status& s) {
  std::fprintf(stderr, "moestream tokenize: %s\n", s.message().c_str());
  return ExitCodeFor(s.code());
}

int UsageError(const std::string& msg) {
  std::fprintf(stderr, "moestream tokenize: %s\n%s", msg.c_str(), kUsage);
  return 2;
}

void PrintIds(const std::vector<int32_t>& ids, bool json) {
  std::string line = json ? "[" : "";
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) line += json ? "," : " ";
    line += std::to_string(ids[i]);
  }
  if (json) line += "]";
  line += "\n";
  std::fwrite(line.data(), 1, line.size(), stdout);
}

int RunJsonl(const Tokenizer& tok, const TokenizeOptions& o) {
  std::string line;
  for (size_t n = 1; std::getline(std::cin, line); ++n) {
    const std::string what = "stdin line " + std::to_string(n);
    auto doc = ParseJson(line, what);
    if (!doc.ok()) return Fail(doc.status());
    if (!o.decode) {
      if (!doc->is_string()) return Fail(Error(StatusCode::kInvalidFormat, "{}: expected a JSON "
                                               "string, got {}", what, JsonTypeName(*doc)));
      auto ids = tok.Encode(doc->get_ref<const std::string&>());
      if (!ids.ok()) return Fail(ids.status().WithContext(what));
      PrintIds(*ids, true);
      continue;
    }
    std::vector<int32_t> ids;
    if (!doc->is_array()) return Fail(Error(StatusCode::kInvalidFormat, "{}: expected a JSON "
                                            "array of ids, got {}", what, JsonTypeName(*doc)));
    for (const auto& v : *doc) {
      if (!v.is_number_integer() || !tok.IsValidId(v.get<int64_t>())) {
        return Fail(Error(StatusCode::kInvalidFormat, "{}: element {} is not a token id of this "
                          "tokenizer (n_vocab {})", what, v.dump(), tok.n_vocab()));
      }
      ids.push_back(static_cast<int32_t>(v.get<int64_t>()));
    }
    auto text = tok.Decode(ids, o.skip_special);
    if (!text.ok()) return Fail(text.status().WithContext(what));
    std::string out = Json(*text).dump() + "\n";
    std::fwrite(out.data(), 1, out.size(), stdout);
  }
  return 0;
}

int RunPlain(const Tokenizer& tok, const TokenizeOptions& o) {
  std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  if (!o.decode) {
    auto ids = tok.Encode(input);
    if (!ids.ok()) return Fail(ids.status().WithContext("stdin"));
    PrintIds(*ids, false);
    return 0;
  }
  std::vector<int32_t> ids;
  size_t pos = 0;
  while (pos < input.size()) {
    while (pos < input.size() && std::isspace(static_cast<unsigned char>(input[pos]))) ++pos;
    if (pos == input.size()) break;
    size_t end = pos;
    while (end < input.size() && !std::isspace(static_cast<unsigned char>(input[end]))) ++end;
    const std::string word = input.substr(pos, end - pos);
    char* rest = nullptr;
    const long long v = std::strtoll(word.c_str(), &rest, 10);
    if (*rest != '\0' || !tok.IsValidId(v)) {
      return Fail(Error(StatusCode::kInvalidFormat, "stdin: '{}' is not a token id of this "
                        "tokenizer (n_vocab {})", word, tok.n_vocab()));
    }
    ids.push_back(static_cast<int32_t>(v));
    pos = end;
  }
  auto text = tok.Decode(ids, o.skip_special);
  if (!text.ok()) return Fail(text.status());
  std::fwrite(text->data(), 1, text->size(), stdout);
  return 0;
}

int RunBench(const Tokenizer& tok, const TokenizeOptions& o) {
  auto text = ReadFileToString(o.bench_file, uint64_t{4} << 30);
  if (!text.ok()) return Fail(text.status());
  double best_s = 1e30;
  std::vector<int32_t> ids;
  for (int r = 0; r < o.repeat; ++r) {
    ids.clear();
    const auto t0 = std::chrono::steady_clock::now();
    Status s = tok.EncodeAppend(*text, &ids);
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!s.ok()) return Fail(s);
    best_s = std::min(best_s, dt);
  }
  uint64_t hash = 1469598103934665603ull;  // FNV-1a over the ids as decimal text, like the
  for (int32_t id : ids) {                 // HF script, so the two runs can be compared
    for (char c : std::to_string(id) + ",") hash = (hash ^ static_cast<uint8_t>(c)) * 1099511628211ull;
  }
  const double mb = static_cast<double>(text->size()) / 1e6;
  std::printf("file=%s bytes=%zu tokens=%zu fnv1a=%016llx best_of=%d time_s=%.4f MB/s=%.2f\n",
              o.bench_file.c_str(), text->size(), ids.size(),
              static_cast<unsigned long long>(hash), o.repeat, best_s, mb / best_s);
  return 0;
}

int CmdTokenize(int argc, char** argv) {
  TokenizeOptions o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](std::string* out) {
      if (i + 1 >= argc) return false;
      *out = argv[++i];
      return true;
    };
    std::string repeat;
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (a == "--tokenizer") {
      if (!value(&o.tokenizer)) return UsageError("--tokenizer needs a value");
    } else if (a == "--bench") {
      if (!value(&o.bench_file)) return UsageError("--bench needs a file");
    } else if (a == "--repeat") {
      if (!value(&repeat) || std::atoi(repeat.c_str()) < 1) return UsageError("--repeat needs N >= 1");
      o.repeat = std::atoi(repeat.c_str());
    } else if (a == "--jsonl") {
      o.jsonl = true;
    } else if (a == "--decode") {
      o.decode = true;
    } else if (a == "--skip-special") {
      o.skip_special = true;
    } else {
      return UsageError("unknown option '" + a + "'");
    }
  }
  if (o.tokenizer.empty()) return UsageError("--tokenizer is required");
  auto tok = Tokenizer::Load(o.tokenizer);
  if (!tok.ok()) return Fail(tok.status());
  if (!o.bench_file.empty()) return RunBench(*tok, o);
  return o.jsonl ? RunJsonl(*tok, o) : RunPlain(*tok, o);
}

}  // namespace

MOE_COMMAND("tokenize", "encode/decode text with a tokenizer.json (--jsonl for the test contract)",
            CmdTokenize);

}  // namespace moe::app
