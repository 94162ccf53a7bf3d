// SPDX-License-Identifier: Apache-2.0
#include "util/status.h"

#include <gtest/gtest.h>

#include "util/checked_math.h"

namespace moe {
namespace {

Result<int> Half(int x) {
  if (x % 2) return Error(StatusCode::kInvalidFormat, "odd value {}", x);
  return x / 2;
}

Status Chain(int x, int* out) {
  MOE_ASSIGN_OR_RETURN(*out, Half(x));
  return Status::Ok();
}

TEST(StatusTest, ResultCarriesValueOrError) {
  int v = 0;
  EXPECT_TRUE(Chain(8, &v).ok());
  EXPECT_EQ(v, 4);
  Status s = Chain(7, &v);
  EXPECT_EQ(s.code(), StatusCode::kInvalidFormat);
  EXPECT_EQ(s.message(), "odd value 7");
  EXPECT_EQ(ExitCodeFor(s.code()), 3);
}

TEST(CheckedMathTest, DetectsOverflow) {
  EXPECT_FALSE(CheckedMul(4194305ull * 4194305ull, 211106198978564ull).has_value());
  EXPECT_EQ(*CheckedMul(3, 5), 15u);
  EXPECT_FALSE(CheckedAdd(~0ull, 1).has_value());
}

}  // namespace
}  // namespace moe
