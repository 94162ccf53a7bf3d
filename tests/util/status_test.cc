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

TEST(StatusTest, MessagesAreAlwaysOneLine) {
  // A JSON key or tensor name may hold any character; quoted into an error it must not break
  // the one-line message rule (found by the hf_config and safetensors_header fuzzers).
  Status s = Error(StatusCode::kInvalidFormat, "f.json: key '{}': bad", "a\nb\r\tc\x01\x7f");
  EXPECT_EQ(s.message(), "f.json: key 'a\\nb\\r\\tc\\x01\\x7f': bad");
  EXPECT_EQ(s.WithContext("ctx\n").message(), "ctx\\n: " + s.message());
  EXPECT_EQ(Error(StatusCode::kIoError, "plain {}", "text").message(), "plain text");
}

TEST(CheckedMathTest, DetectsOverflow) {
  EXPECT_FALSE(CheckedMul(4194305ull * 4194305ull, 211106198978564ull).has_value());
  EXPECT_EQ(*CheckedMul(3, 5), 15u);
  EXPECT_FALSE(CheckedAdd(~0ull, 1).has_value());
}

}  // namespace
}  // namespace moe
