// SPDX-License-Identifier: Apache-2.0
// ParseJson / ForEachJsonMember / typed getters on hostile input.
#include "formats/json.h"

#include <gtest/gtest.h>

namespace moe {
namespace {

void ExpectInvalid(const Status& s, const std::string& part) {
  EXPECT_EQ(s.code(), StatusCode::kInvalidFormat) << s.message();
  EXPECT_NE(s.message().find(part), std::string::npos)
      << "'" << part << "' not in: " << s.message();
  EXPECT_EQ(s.message().rfind("doc.json: ", 0), 0u) << s.message();
}

TEST(Json, ParsesValidDocument) {
  Result<Json> j = ParseJson(R"({"a": {"b": [1, 2.5, "x", null, true]}, "é": "ü"})", "doc.json");
  ASSERT_TRUE(j.ok()) << j.status().message();
  EXPECT_EQ((*j)["a"]["b"][0], 1);
  EXPECT_EQ((*j)["a"]["b"][1], 2.5);
  EXPECT_EQ((*j)["a"]["b"][2], "x");
  EXPECT_TRUE((*j)["a"]["b"][3].is_null());
  EXPECT_EQ((*j)["é"], "ü");
}

TEST(Json, SyntaxErrorsNameBytePosition) {
  ExpectInvalid(ParseJson(R"({"a": tru})", "doc.json").status(), "invalid JSON at byte");
  ExpectInvalid(ParseJson("{} x", "doc.json").status(), "invalid JSON at byte 3");
  ExpectInvalid(ParseJson("", "doc.json").status(), "invalid JSON at byte 0");
  ExpectInvalid(ParseJson(R"({"a": 1,})", "doc.json").status(), "invalid JSON");
}

TEST(Json, NanInfinityAndOverflowRejected) {
  ExpectInvalid(ParseJson(R"({"a": NaN})", "doc.json").status(), "invalid JSON");
  ExpectInvalid(ParseJson(R"({"a": Infinity})", "doc.json").status(), "invalid JSON");
  ExpectInvalid(ParseJson(R"({"a": -Infinity})", "doc.json").status(), "invalid JSON");
  ExpectInvalid(ParseJson(R"({"a": 1e999})", "doc.json").status(), "number overflow");
}

TEST(Json, DepthLimit) {
  std::string ok = std::string(256, '[') + std::string(256, ']');
  EXPECT_TRUE(ParseJson(ok, "doc.json").ok());
  std::string deep = std::string(257, '[') + std::string(257, ']');
  ExpectInvalid(ParseJson(deep, "doc.json").status(),
                "nesting depth exceeds limit 256 at byte 256");
  ExpectInvalid(ParseJson(std::string(1000000, '['), "doc.json").status(), "nesting depth");
  ExpectInvalid(ParseJson(deep, "doc.json", JsonLimits{.max_depth = 8}).status(), "limit 8");
  // Brackets inside strings (with escaped quotes) do not count.
  std::string in_string = "{\"k\":\"\\\"" + std::string(1000, '[') + "\"}";
  EXPECT_TRUE(ParseJson(in_string, "doc.json").ok());
}

TEST(Json, DuplicateKeysAtAnyDepth) {
  ExpectInvalid(ParseJson(R"({"a":1,"a":2})", "doc.json").status(), "duplicate key 'a'");
  ExpectInvalid(ParseJson(R"({"x":{"b":1,"b":2}})", "doc.json").status(), "duplicate key 'x.b'");
  ExpectInvalid(ParseJson(R"({"x":[{"c":1},{"d":1,"d":2}]})", "doc.json").status(),
                "duplicate key 'x[1].d'");
  EXPECT_TRUE(ParseJson(R"({"a":{"k":1},"b":{"k":1}})", "doc.json").ok());
  Result<Json> lax =
      ParseJson(R"({"a":1,"a":2})", "doc.json", JsonLimits{.reject_duplicate_keys = false});
  ASSERT_TRUE(lax.ok());
  EXPECT_EQ((*lax)["a"], 2);
}

TEST(Json, InvalidUtf8Rejected) {
  ExpectInvalid(ParseJson("{\"a\":\"\xff\"}", "doc.json").status(), "not valid UTF-8");
  ExpectInvalid(ParseJson("{\"a\":\"\xc0\xaf\"}", "doc.json").status(), "at byte 6");
  ExpectInvalid(ParseJson("{\"a\":\"\xed\xa0\x80\"}", "doc.json").status(), "UTF-8");
  ExpectInvalid(ParseJson("{\"a\":\"\xf4\x90\x80\x80\"}", "doc.json").status(), "UTF-8");
  ExpectInvalid(ParseJson("{\"a\":\"\xe2\x82\"}", "doc.json").status(), "UTF-8");
  // Escaped lone surrogate is not valid either.
  ExpectInvalid(ParseJson(R"({"a":"\ud800"})", "doc.json").status(), "invalid JSON");
  EXPECT_TRUE(ParseJson("{\"a\":\"\xe2\x82\xac \xf0\x9f\x98\x80\"}", "doc.json").ok());
}

TEST(Json, FindInvalidUtf8) {
  EXPECT_EQ(FindInvalidUtf8("abc"), std::string_view::npos);
  EXPECT_EQ(FindInvalidUtf8("ab\x80"), 2u);
  EXPECT_EQ(FindInvalidUtf8("\xe0\x80\x80"), 0u);                          // overlong
  EXPECT_EQ(FindInvalidUtf8("\xf4\x8f\xbf\xbf"), std::string_view::npos);  // U+10FFFF
  EXPECT_EQ(FindInvalidUtf8("\xf5\x80\x80\x80"), 0u);
}

TEST(Json, TypedGetters) {
  Json j = ParseJson(R"({"i": 5, "f": 2.0, "s": "x", "b": true, "n": null,
                         "big": 18446744073709551615, "neg": -3})",
                     "doc.json")
               .value();
  EXPECT_EQ(GetInt(j, "i", "doc.json", "cfg.i").value(), 5);
  EXPECT_EQ(GetInt(j, "neg", "doc.json", "neg").value(), -3);
  EXPECT_EQ(GetNumber(j, "i", "doc.json", "i").value(), 5.0);
  EXPECT_EQ(GetNumber(j, "f", "doc.json", "f").value(), 2.0);
  EXPECT_EQ(GetString(j, "s", "doc.json", "s").value(), "x");
  EXPECT_TRUE(GetBool(j, "b", "doc.json", "b").value());
  ExpectInvalid(GetInt(j, "s", "doc.json", "cfg.s").status(),
                "key 'cfg.s': expected integer, got string");
  ExpectInvalid(GetInt(j, "f", "doc.json", "f").status(), "key 'f': expected integer, got float");
  ExpectInvalid(GetInt(j, "big", "doc.json", "big").status(),
                "key 'big': integer 18446744073709551615 out of range");
  ExpectInvalid(GetInt(j, "missing", "doc.json", "a.missing").status(), "key 'a.missing': missing");
  ExpectInvalid(GetBool(j, "i", "doc.json", "i").status(), "expected boolean, got integer");
  ExpectInvalid(GetString(j, "n", "doc.json", "n").status(), "expected string, got null");
  ExpectInvalid(GetNumber(j, "b", "doc.json", "b").status(), "expected number, got boolean");
  ExpectInvalid(GetInt(j["i"], "x", "doc.json", "i.x").status(), "parent is integer");
}

TEST(Json, ForEachMemberStreamsInOrder) {
  std::vector<std::string> keys;
  Status s = ForEachJsonMember(R"({"b": [1, {"x": 2}], "a": 3, "c": {}})", "doc.json", {},
                               [&](std::string&& k, Json&& v) {
                                 keys.push_back(k + "=" + v.dump());
                                 return Status::Ok();
                               });
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(keys, (std::vector<std::string>{"b=[1,{\"x\":2}]", "a=3", "c={}"}));
  auto noop = [](std::string&&, Json&&) { return Status::Ok(); };
  ExpectInvalid(ForEachJsonMember("[1]", "doc.json", {}, noop), "top level is array");
  ExpectInvalid(ForEachJsonMember("7", "doc.json", {}, noop), "top level is integer");
  ExpectInvalid(ForEachJsonMember(R"({"a":{"k":1,"k":2}})", "doc.json", {}, noop),
                "duplicate key 'a.k'");
  // The callback's error stops parsing and comes back unchanged.
  int calls = 0;
  Status stop =
      ForEachJsonMember(R"({"a":1,"b":2,"c":3})", "doc.json", {}, [&](std::string&& k, Json&&) {
        ++calls;
        return k == "b" ? Status(StatusCode::kUnsupported, "stop at b") : Status::Ok();
      });
  EXPECT_EQ(stop.code(), StatusCode::kUnsupported);
  EXPECT_EQ(stop.message(), "stop at b");
  EXPECT_EQ(calls, 2);
}

}  // namespace
}  // namespace moe
