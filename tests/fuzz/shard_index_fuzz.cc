// SPDX-License-Identifier: Apache-2.0
// Input: model.safetensors.index.json text, opened by Checkpoint::Open in a scratch model folder
// that holds two valid shards (a.safetensors: "x", "y"; b.safetensors: "z"), a symlink
// out.safetensors pointing outside the folder, and nothing else. The folder is created once per
// process under $TMPDIR (or /tmp); each input rewrites only the index file.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "formats/safetensors.h"
#include "fuzz_targets.h"

namespace moe::fuzz {
namespace {

namespace fs = std::filesystem;

std::string Le64(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return s;
}

void Write(const fs::path& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Two F32 tensors of 2 elements ("x" then "y") or one ("z").
std::string Shard(bool two) {
  const std::string header =
      two ? R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
            R"("y":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})"
          : R"({"z":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  return Le64(header.size()) + header + std::string(two ? 16 : 8, '\0');
}

struct Scratch {
  fs::path root, model;
  Scratch() {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/moe_fuzz_index_XXXXXX";
    FUZZ_CHECK(::mkdtemp(templ.data()) != nullptr);
    root = templ;
    model = root / "model";
    fs::create_directories(model);
    Write(model / "a.safetensors", Shard(true));
    Write(model / "b.safetensors", Shard(false));
    Write(root / "outside.safetensors", Shard(false));
    fs::create_symlink("../outside.safetensors", model / "out.safetensors");
  }
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(root, ec);
  }
};

}  // namespace

int ShardIndex(const uint8_t* data, size_t size) {
  static Scratch scratch;
  Write(scratch.model / "model.safetensors.index.json",
        std::string(reinterpret_cast<const char*>(data), size));
  auto c = Checkpoint::Open(scratch.model.string());
  if (!c.ok()) {
    FUZZ_CHECK(c.status().message().find('\n') == std::string::npos);
    return 0;
  }
  // Accepted: every tensor resolves to a shard inside the folder and reads in bounds.
  for (const std::string& name : c->Names()) {
    const TensorRef* ref = c->Find(name);
    FUZZ_CHECK(ref != nullptr && ref->info != nullptr && ref->shard != nullptr);
    FUZZ_CHECK(ref->info->name == name);
    const fs::path resolved = fs::weakly_canonical(ref->shard->path());
    FUZZ_CHECK(resolved.parent_path() == fs::canonical(scratch.model));
    std::string buf(ref->info->n_bytes, '\0');
    FUZZ_CHECK(c->Read(*ref, buf.data(), buf.size()).ok());
  }
  return 0;
}

}  // namespace moe::fuzz
