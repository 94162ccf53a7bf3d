// SPDX-License-Identifier: Apache-2.0
// Trace format: write → parse round trip (f32 weights exact), malformed lines named by line.
#include "analysis/router_trace.h"

#include <gtest/gtest.h>

namespace moe {
namespace {

TEST(RouterTraceTest, RoundTripIsExact) {
  const std::vector<RouteRecord> recs = {{0, 0, {5, 1, 30, 2}, {0.4f, 0.3f, 0.2000001f, 0.1f}},
                                         {1, 7, {0, 31, 4, 9}, {1.0f / 3, 0.25f, 1e-7f, 0.0f}}};
  const std::string text = TraceToJsonLines(recs);
  EXPECT_EQ(text.substr(0, 35), "{\"pos\":0,\"layer\":0,\"experts\":[5,1,3");
  auto back = ParseTrace(text, "t");
  ASSERT_TRUE(back.ok()) << back.status().message();
  ASSERT_EQ(back->size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ((*back)[i].pos, recs[i].pos);
    EXPECT_EQ((*back)[i].layer, recs[i].layer);
    EXPECT_EQ((*back)[i].experts, recs[i].experts);
    EXPECT_EQ((*back)[i].weights, recs[i].weights);  // bit-exact through %.9g
  }
  const TraceShape s = ShapeOf(*back);
  EXPECT_EQ(s.n_layers, 8);
  EXPECT_EQ(s.n_experts, 32);
  EXPECT_EQ(s.top_k, 4);
}

TEST(RouterTraceTest, MalformedLinesNameTheLine) {
  const std::string ok = "{\"pos\":0,\"layer\":0,\"experts\":[1],\"weights\":[1]}\n";
  struct Case {
    std::string line, needle;
  };
  for (const Case& c : std::vector<Case>{
           {"[1,2]", "expected a JSON object"},
           {"{\"pos\":0,\"experts\":[1],\"weights\":[1]}", "'layer'"},
           {"{\"pos\":-1,\"layer\":0,\"experts\":[1],\"weights\":[1]}", "out of range"},
           {"{\"pos\":0,\"layer\":0,\"experts\":[1,2],\"weights\":[1]}", "1 weights for 2"},
           {"{\"pos\":0,\"layer\":0,\"experts\":[-3],\"weights\":[1]}", "expert ids"},
           {"{\"pos\":0,\"layer\":0,\"experts\":[],\"weights\":[]}", "empty"},
           {"{\"pos\":0,\"layer\":0,\"experts\":[1],\"weights\":[\"x\"]}", "numbers"},
           {"{\"pos\":0,", "t:2"}}) {
    auto r = ParseTrace(ok + c.line + "\n", "t");
    ASSERT_FALSE(r.ok()) << c.line;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidFormat);
    EXPECT_NE(r.status().message().find("t:2"), std::string::npos) << r.status().message();
    EXPECT_NE(r.status().message().find(c.needle), std::string::npos) << r.status().message();
  }
  EXPECT_TRUE(ParseTrace(ok + "\n  \n" + ok, "t").ok());
}

}  // namespace
}  // namespace moe
