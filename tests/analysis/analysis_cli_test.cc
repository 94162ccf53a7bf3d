// SPDX-License-Identifier: Apache-2.0
// The analysis subcommands on the bundled reference model, end to end through the CLI:
// perplexity = exp(mean NLL) from `eval` logits (log-softmax computed here), bit-identical NLL
// at every cache budget, the runtime cache's hits = the simulator's for the same trace, trace =
// eval's --trace-out, and the experts/cache-sim outputs.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "analysis/router_trace.h"
#include "e2e/cli_runner.h"
#include "formats/json.h"
#include "tokenizer/tokenizer.h"
#include "formats/test_files.h"

namespace moe {
namespace {

using testing::CliResult;
using testing::RunCli;

const std::string kModel = std::string(MOE_SOURCE_DIR) + "/models/qwen3-moe-ref";
const std::string kHeldout = std::string(MOE_SOURCE_DIR) + "/tests/data/analysis/heldout/";

using testing::Slurp;

void Spit(const std::string& p, const std::string& s) {
  std::ofstream(p, std::ios::binary) << s;
}

class AnalysisCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::string(MOE_BINARY_DIR) + "/analysis_cli_test/" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    // A short passage of held-out scripture: ~100 tokens.
    const std::string text = Slurp(kHeldout + "scripture.txt");
    ASSERT_GT(text.size(), 1000u) << "missing " << kHeldout << "scripture.txt";
    text_ = dir_ + "/text.txt";
    Spit(text_, text.substr(0, text.find('\n', 300) + 1));
  }
  CliResult Run(std::vector<std::string> args) { return RunCli(args, dir_); }
  Json ReadJson(const std::string& path) {
    auto j = ParseJson(Slurp(path), path);
    EXPECT_TRUE(j.ok()) << path;
    return j.ok() ? *j : Json();
  }
  std::string dir_, text_;
};

// NLL of each window's tokens from `moestream eval` logits, log-softmax in long double here.
TEST_F(AnalysisCliTest, PerplexityMatchesEvalLogits) {
  auto tok = Tokenizer::Load(kModel);
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  auto ids = tok->Encode(Slurp(text_));
  ASSERT_TRUE(ids.ok());
  ASSERT_GT(ids->size(), 40u);
  const size_t window = 32;
  CliResult r = Run({"perplexity", text_, "--model", kModel, "--ctx", "32", "--json-out",
                     dir_ + "/ppl.json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Json j = ReadJson(dir_ + "/ppl.json");
  ASSERT_EQ(j["tokens"].get<size_t>(), ids->size());
  const size_t V = 6144;
  long double sum = 0;
  size_t scored = 0;
  for (size_t start = 0; start < ids->size(); start += window) {
    const size_t n = std::min(window, ids->size() - start);
    std::string list;
    for (size_t i = 0; i < n; ++i) list += (i ? "," : "") + std::to_string((*ids)[start + i]);
    CliResult e = Run({"eval", "--model", kModel, "--tokens", list, "--logits-out",
                       dir_ + "/logits.f32"});
    ASSERT_EQ(e.exit_code, 0) << e.err;
    const std::string raw = Slurp(dir_ + "/logits.f32");
    ASSERT_EQ(raw.size(), n * V * sizeof(float));
    const auto* logits = reinterpret_cast<const float*>(raw.data());
    for (size_t i = 1; i < n; ++i) {
      const float* row = logits + (i - 1) * V;
      long double mx = row[0], z = 0;
      for (size_t v = 0; v < V; ++v) mx = std::max<long double>(mx, row[v]);
      for (size_t v = 0; v < V; ++v) z += std::exp(static_cast<long double>(row[v]) - mx);
      sum += mx + std::log(z) - row[(*ids)[start + i]];
      ++scored;
    }
  }
  EXPECT_EQ(j["scored"].get<size_t>(), scored);
  const double mean = static_cast<double>(sum / scored);
  EXPECT_NEAR(j["mean_nll"].get<double>(), mean, 1e-9 * mean);
  EXPECT_NEAR(j["perplexity"].get<double>(), std::exp(mean), 1e-9 * std::exp(mean));
  EXPECT_NE(r.out.find("perplexity "), std::string::npos);
  EXPECT_EQ(r.err.find("not exact"), std::string::npos);
}

// Every budget gives bit-identical per-token NLLs (resident, 4 slots, 24 slots). Buffered
// reads: slots of exactly one 96 KiB block (O_DIRECT shard reads add a page to each).
TEST_F(AnalysisCliTest, PerplexityIdenticalAtEveryCacheBudget) {
  std::vector<std::string> nll, sums;
  for (const std::string budget : {"", "384K", "2304K"}) {
    std::vector<std::string> args = {"perplexity", text_, "--model", kModel, "--nll-out",
                                     dir_ + "/nll.bin", "--json-out", dir_ + "/p.json"};
    if (!budget.empty()) args.insert(args.end(), {"--expert-cache", budget, "--io", "buffered"});
    CliResult r = Run(args);
    ASSERT_EQ(r.exit_code, 0) << budget << ": " << r.err;
    nll.push_back(Slurp(dir_ + "/nll.bin"));
    sums.push_back(ReadJson(dir_ + "/p.json")["sum_nll"].dump());
  }
  ASSERT_FALSE(nll[0].empty());
  EXPECT_EQ(nll[0], nll[1]);
  EXPECT_EQ(nll[0], nll[2]);
  EXPECT_EQ(sums[0], sums[1]);
  EXPECT_EQ(sums[0], sums[2]);
}

TEST_F(AnalysisCliTest, LossyKnobsWarnAndChangePerplexity) {
  CliResult full = Run({"perplexity", text_, "--model", kModel, "--json-out", dir_ + "/a.json"});
  CliResult k1 = Run({"perplexity", text_, "--model", kModel, "--top-k", "1", "--json-out",
                      dir_ + "/b.json"});
  CliResult m4 = Run({"perplexity", text_, "--model", kModel, "--expert-mask", "0-3",
                      "--json-out", dir_ + "/c.json"});
  ASSERT_EQ(full.exit_code, 0) << full.err;
  ASSERT_EQ(k1.exit_code, 0) << k1.err;
  ASSERT_EQ(m4.exit_code, 0) << m4.err;
  EXPECT_NE(k1.err.find("no longer exact"), std::string::npos) << k1.err;
  EXPECT_NE(m4.err.find("no longer exact"), std::string::npos) << m4.err;
  const double a = ReadJson(dir_ + "/a.json")["perplexity"].get<double>();
  EXPECT_NE(ReadJson(dir_ + "/b.json")["perplexity"].get<double>(), a);
  EXPECT_EQ(ReadJson(dir_ + "/b.json")["top_k"].get<int>(), 1);
  EXPECT_EQ(ReadJson(dir_ + "/c.json")["expert_mask"].size(), 4u);
  EXPECT_EQ(Run({"perplexity", "--model", kModel}).exit_code, 2);
  EXPECT_EQ(Run({"perplexity", dir_ + "/missing.txt", "--model", kModel}).exit_code, 4);
}

// The runtime's LRU cache counts exactly what cache-sim replays from the same run's trace
// (demand reads only: the simulator models neither --prefetch nor --cache-fill).
TEST_F(AnalysisCliTest, RuntimeHitsMatchSimulator) {
  for (const int slots : {6, 40}) {
    for (const int batch : {1, 32}) {
      SCOPED_TRACE(::testing::Message() << slots << " slots, batch " << batch);
      CliResult r = Run({"perplexity", text_, "--model", kModel, "--expert-cache",
                         std::to_string(slots * 96) + "K", "--io", "buffered",  // 96 KiB slots
                         "--cache-policy", "lru", "--batch",
                         std::to_string(batch), "--prefetch", "off", "--cache-fill", "off",
                         "--stats-json", dir_ + "/stats.json", "--trace-out",
                         dir_ + "/trace.jsonl"});
      ASSERT_EQ(r.exit_code, 0) << r.err;
      const Json stats = ReadJson(dir_ + "/stats.json");
      ASSERT_EQ(stats["n_slots"].get<int>(), slots);
      CliResult s = Run({"cache-sim", dir_ + "/trace.jsonl", "--budget", std::to_string(slots),
                         "--policy", "lru", "--batch", std::to_string(batch), "--out-dir",
                         dir_ + "/sim"});
      ASSERT_EQ(s.exit_code, 0) << s.err;
      const Json sim = ReadJson(dir_ + "/sim/cache_sim.json");
      EXPECT_EQ(sim["points"][0]["hits"], stats["total"]["hits"]);
      EXPECT_EQ(sim["points"][0]["misses"], stats["total"]["misses"]);
      EXPECT_EQ(sim["points"][0]["evictions"], stats["total"]["evictions"]);
      EXPECT_EQ(stats["total"]["joins"].get<int>(), 0);
    }
  }
}

TEST_F(AnalysisCliTest, TraceEqualsEvalTraceAndFeedsExperts) {
  const std::string prompt = "In the beginning God created the heaven and the earth.";
  CliResult t = Run({"trace", "--model", kModel, "--prompt", prompt, "--out", dir_ + "/t.jsonl"});
  ASSERT_EQ(t.exit_code, 0) << t.err;
  auto tok = Tokenizer::Load(kModel);
  ASSERT_TRUE(tok.ok());
  auto ids = tok->Encode(prompt);
  ASSERT_TRUE(ids.ok());
  std::string list;
  for (size_t i = 0; i < ids->size(); ++i) list += (i ? "," : "") + std::to_string((*ids)[i]);
  CliResult e = Run({"eval", "--model", kModel, "--tokens", list, "--trace-out",
                     dir_ + "/e.jsonl"});
  ASSERT_EQ(e.exit_code, 0) << e.err;
  EXPECT_EQ(Slurp(dir_ + "/t.jsonl"), Slurp(dir_ + "/e.jsonl"));
  auto recs = ReadTraceFile(dir_ + "/t.jsonl");
  ASSERT_TRUE(recs.ok());
  EXPECT_EQ(recs->size(), ids->size() * 8);

  // Two "domains" from two texts; JSON and plots appear.
  CliResult t2 = Run({"trace", "--model", kModel, "--file", text_, "--out", dir_ + "/u.jsonl"});
  ASSERT_EQ(t2.exit_code, 0) << t2.err;
  CliResult x = Run({"experts", "--trace", dir_ + "/t.jsonl", dir_ + "/u.jsonl", "--labels",
                     "genesis,other", "--out-dir", dir_ + "/ex", "--shuffles", "3"});
  ASSERT_EQ(x.exit_code, 0) << x.err;
  const Json j = ReadJson(dir_ + "/ex/experts.json");
  EXPECT_EQ(j["labels"], Json::parse(R"(["genesis","other"])"));
  EXPECT_EQ(j["layers"].size(), 8u);
  EXPECT_EQ(j["tokens_per_label"][0].get<size_t>(), ids->size());
  for (const char* f : {"experts.md", "js_by_layer.svg", "usage_layer0.svg", "reuse_gap.svg",
                        "coactivation_layer7.svg"}) {
    EXPECT_TRUE(std::filesystem::exists(dir_ + "/ex/" + f)) << f;
  }
  EXPECT_EQ(Slurp(dir_ + "/ex/js_by_layer.svg").rfind("<svg", 0), 0u);
  // Usage errors exit 2; a malformed trace exits 3.
  EXPECT_EQ(Run({"experts", "--out-dir", dir_ + "/ex"}).exit_code, 2);
  EXPECT_EQ(Run({"trace", "--model", kModel}).exit_code, 2);
  Spit(dir_ + "/bad.jsonl", "{\"pos\":0}\n");
  EXPECT_EQ(Run({"cache-sim", dir_ + "/bad.jsonl"}).exit_code, 3);
  EXPECT_EQ(Run({"cache-sim", dir_ + "/t.jsonl", "--policy", "fifo"}).exit_code, 2);
  EXPECT_EQ(Run({"cache-sim", dir_ + "/t.jsonl", "--budget", "1M"}).exit_code, 2);
}

}  // namespace
}  // namespace moe
