// SPDX-License-Identifier: Apache-2.0
// Replays every committed seed (tests/fuzz/corpus/<target>/) and regression input
// (tests/fuzz/regressions/<target>/) through the same fuzz target functions that libFuzzer
// drives (fuzz_targets.h), so CI exercises them without clang or libFuzzer. A broken invariant
// or a crash in a parser fails (aborts) this test; sanitizer builds catch memory errors too.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz_targets.h"

const char* moe::fuzz::SourceDir() { return MOE_SOURCE_DIR; }

namespace moe::fuzz {
namespace {

namespace fs = std::filesystem;

std::vector<fs::path> Inputs(const fs::path& dir) {
  std::vector<fs::path> files;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return files;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.is_regular_file()) files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

class Replay : public testing::TestWithParam<Target> {};

TEST_P(Replay, SeedsAndRegressions) {
  const fs::path root = fs::path(MOE_SOURCE_DIR) / "tests" / "fuzz";
  const std::vector<fs::path> seeds = Inputs(root / "corpus" / GetParam().name);
  ASSERT_FALSE(seeds.empty()) << "no seed corpus in " << (root / "corpus" / GetParam().name);
  std::vector<fs::path> all = seeds;
  for (const fs::path& p : Inputs(root / "regressions" / GetParam().name)) all.push_back(p);
  for (const fs::path& p : all) {
    SCOPED_TRACE(p.string());
    const std::string bytes = ReadAll(p);
    EXPECT_EQ(GetParam().fn(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), 0);
  }
  RecordProperty("inputs", static_cast<int>(all.size()));
}

std::string TargetName(const testing::TestParamInfo<Target>& i) { return i.param.name; }
INSTANTIATE_TEST_SUITE_P(AllTargets, Replay, testing::ValuesIn(kTargets), TargetName);

}  // namespace
}  // namespace moe::fuzz
