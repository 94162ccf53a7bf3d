// SPDX-License-Identifier: Apache-2.0
// The fuzz targets: one function per untrusted-input parser. Each is linked twice: into a
// libFuzzer binary (fuzz_main.cc, MOE_BUILD_FUZZ=ON, clang) and into the unit test
// replay_test.cc, which runs every committed seed and regression input through it, so CI keeps
// exercising them without libFuzzer. A target returns 0; a broken invariant aborts (FUZZ_CHECK),
// which libFuzzer reports as a crash and the unit test as a death.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace moe::fuzz {

#define FUZZ_CHECK(cond)                                                                  \
  do {                                                                                    \
    if (!(cond)) {                                                                        \
      std::fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                       \
    }                                                                                     \
  } while (0)

int SafetensorsHeader(const uint8_t* data, size_t size);
int ShardIndex(const uint8_t* data, size_t size);
int HfConfig(const uint8_t* data, size_t size);
int TokenizerJson(const uint8_t* data, size_t size);
int QwenEncode(const uint8_t* data, size_t size);
int ExpertStore(const uint8_t* data, size_t size);
int CliArgs(const uint8_t* data, size_t size);

struct Target {
  const char* name;  // = the folder names under tests/fuzz/corpus and tests/fuzz/regressions
  int (*fn)(const uint8_t*, size_t);
};
inline constexpr Target kTargets[] = {
    {"safetensors_header", SafetensorsHeader}, {"shard_index", ShardIndex},
    {"hf_config", HfConfig},                   {"tokenizer_json", TokenizerJson},
    {"qwen_encode", QwenEncode},               {"expert_store", ExpertStore},
    {"cli_args", CliArgs},
};

// The repository root (compile definition), for the real Qwen3 tokenizer.json.
const char* SourceDir();

}  // namespace moe::fuzz
