// SPDX-License-Identifier: Apache-2.0
// Target selection: the list of targets, forcing one (API and MOE_FORCE_TARGET), and that the
// portable baseline is among them so CPUs without AVX-512/AVX2 are covered by the other tests.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "kernels/kernels.h"

namespace moe::kernels {
namespace {

bool Contains(const std::vector<std::string>& v, const std::string& s) {
  for (const auto& e : v) {
    if (e == s) return true;
  }
  return false;
}

TEST(TargetTest, ListsBestFirstAndIncludesThePortableFallback) {
  const auto targets = AvailableTargets();
  ASSERT_FALSE(targets.empty());
  EXPECT_TRUE(Contains(targets, "SCALAR") || Contains(targets, "EMU128"));
#if defined(__x86_64__)
  EXPECT_TRUE(Contains(targets, "SSE4"));  // every x86-64 CPU we support since 2008
#endif
  // Without forcing, the best (first) target runs.
  ASSERT_TRUE(ForceTarget(""));
  const char* env = std::getenv("MOE_FORCE_TARGET");
  if (env == nullptr || *env == '\0') {
    EXPECT_EQ(std::string(TargetName()), targets.front());
  }
}

TEST(TargetTest, ForceTargetSwitchesDispatchAndRejectsUnknownNames) {
  for (const std::string& name : AvailableTargets()) {
    ASSERT_TRUE(ForceTarget(name));
    EXPECT_EQ(std::string(TargetName()), name);
  }
  ASSERT_TRUE(ForceTarget("scalar"));
  const std::string scalar = TargetName();
  EXPECT_TRUE(scalar == "SCALAR" || scalar == "EMU128") << scalar;
  EXPECT_FALSE(ForceTarget("avx9000"));
  EXPECT_EQ(std::string(TargetName()), scalar);  // unchanged on failure
  ASSERT_TRUE(ForceTarget(""));
}

// MOE_FORCE_TARGET is read at startup: re-run this binary with it set and check, inside that
// process, that TargetName() reports the forced target.
TEST(TargetTest, EnvironmentVariableForcesTargetAtStartup) {
  const char* expected = std::getenv("MOE_TEST_EXPECT_TARGET");
  if (expected != nullptr) {  // the child process
    EXPECT_EQ(std::string(TargetName()), expected);
    return;
  }
  char self[4096] = {};
  ASSERT_GT(readlink("/proc/self/exe", self, sizeof(self) - 1), 0);
  for (const std::string& name : AvailableTargets()) {
    const std::string cmd = "MOE_FORCE_TARGET=" + name + " MOE_TEST_EXPECT_TARGET=" + name +
                            " '" + self + "' --gtest_filter=TargetTest.Environment* "
                            "> /dev/null 2>&1";
    EXPECT_EQ(0, std::system(cmd.c_str())) << name;
  }
}

}  // namespace
}  // namespace moe::kernels
