// SPDX-License-Identifier: Apache-2.0
// `moestream bench` prints one JSON object whose figures are consistent with the model and the
// run (never checks timings): the decoded ids match `generate`'s greedy continuation of the
// same prompt, the weight bytes per token follow from the tensor shapes, and the cache figures
// follow from the mode.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <sstream>
#include <string>

#include "cli_runner.h"
#include "experts/store_file.h"
#include "kernels/kernels.h"

namespace moe {
namespace {

namespace fs = std::filesystem;

struct Scratch {
  Scratch() {
    char tmpl[] = "/tmp/moe_bench_XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~Scratch() { fs::remove_all(path); }
  std::string path;
};


// Same splitmix64 ids as cmd_bench.cc's documented prompt (seed 1) — recomputed independently
// from the published constants.
std::vector<int32_t> PromptIds(size_t n, uint64_t seed, uint64_t vocab) {
  std::vector<int32_t> ids;
  uint64_t s = seed;
  for (size_t i = 0; i < n; ++i) {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    ids.push_back(static_cast<int32_t>((z ^ (z >> 31)) % vocab));
  }
  return ids;
}

std::string Join(const std::vector<int32_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s;
}

nlohmann::json RunBench(const std::vector<std::string>& extra, const Scratch& s) {
  std::vector<std::string> args = {"bench", "--prompt-tokens", "9", "--decode-tokens", "4",
                                   "--repeat", "2", "--threads", "2"};
  args.insert(args.end(), extra.begin(), extra.end());
  const auto r = testing::RunCli(args, s.path);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << "one JSON line: " << r.out;
  return nlohmann::json::parse(r.out);
}

TEST(BenchCliTest, ResidentJsonIsConsistent) {
  Scratch s;
  const auto j = RunBench({}, s);
  for (const char* k : {"prefill_tok_s", "decode_tok_s", "ttft_ms", "memory_gb_s",
                        "bytes_read_per_token", "cache_hit_rate", "io_wait_share", "disk_gb_s",
                        "simd_target", "cpu", "git_commit", "threads"}) {
    EXPECT_TRUE(j.contains(k)) << k;
  }
  EXPECT_EQ(j["mode"], "resident");
  EXPECT_EQ(j["threads"], 2);
  EXPECT_EQ(j["prompt_tokens"], 9);
  EXPECT_EQ(j["decode_tokens"], 4);
  EXPECT_GT(j["prefill_tok_s"].get<double>(), 0);
  EXPECT_GT(j["decode_tok_s"].get<double>(), 0);
  EXPECT_GT(j["ttft_ms"].get<double>(), 0);
  EXPECT_EQ(j["bytes_read_per_token"].get<double>(), 0);
  EXPECT_EQ(j["cache_hit_rate"].get<double>(), 1.0);
  EXPECT_EQ(j["simd_target"], kernels::TargetName());
  // Reference model (config.json): H=256, 8 layers, Hq=8, Hkv=2, d=64, E=32, k=4, I=64,
  // V=6144, all bf16, untied lm_head. Per decode token: attention q,k,v,o + norms + router +
  // 4 experts × 3 × I × H per layer, plus final norm, lm_head and one embedding row.
  const uint64_t H = 256, d = 64, q = 8 * d, kv = 2 * d, E = 32, I = 64, V = 6144, L = 8;
  const uint64_t per_layer = (q * H + 2 * kv * H + H * q) + 2 * H + 2 * d + E * H + 4 * 3 * I * H;
  const uint64_t expected = 2 * (L * per_layer + H + V * H + H);
  EXPECT_EQ(j["weight_bytes_per_decode_token"].get<uint64_t>(), expected);
  EXPECT_EQ(j["expert_bytes_per_decode_token"].get<uint64_t>(), 2 * L * 4 * 3 * I * H);
  EXPECT_EQ(j["head_bytes_per_decode_token"].get<uint64_t>(), 2 * (H + V * H + H));
  EXPECT_EQ(j["moe_layers"].get<int>(), 8);
  // The default tiled layout covers the MatMul-only matrices: attention projections, the
  // resident experts and lm_head (not norms, router or embedding).
  EXPECT_EQ(j["weight_layout"], "tiles");
  EXPECT_EQ(j["tiled_weight_bytes_per_decode_token"].get<uint64_t>(),
            2 * (L * ((q * H + 2 * kv * H + H * q) + 4 * 3 * I * H) + V * H));
  // K and V (f32) of every layer, over a mean context of 9 + (4 + 1) / 2 positions.
  EXPECT_DOUBLE_EQ(j["kv_bytes_per_decode_token"].get<double>(), L * 2 * kv * 4 * (9 + 2.5));
  EXPECT_NEAR(j["memory_gb_s"].get<double>(),
              (expected + L * 2 * kv * 4 * 11.5) * j["decode_tok_s"].get<double>() / 1e9, 1e-3);
  EXPECT_EQ(j["expert_dtype"], "bf16");
  EXPECT_EQ(j["expert_block_bytes"].get<uint64_t>(), 2 * 3 * I * H);
  // The phase profile's weight bytes per decode token follow from the same shapes, and its
  // times are nested in Forward's (the rest is what the phases leave uncovered).
  const auto& ph = j["decode_phases"];
  const auto phase_bytes = [&](const char* p) {
    return ph[p]["weight_bytes_per_token"].get<double>();
  };
  EXPECT_EQ(phase_bytes("attn_proj"), 2.0 * L * (q * H + 2 * kv * H + H * q));
  EXPECT_EQ(phase_bytes("attention"), 0);
  EXPECT_EQ(phase_bytes("router"), 2.0 * L * E * H);
  EXPECT_EQ(phase_bytes("experts"), 2.0 * L * 4 * 3 * I * H);
  EXPECT_EQ(phase_bytes("lm_head"), 2.0 * V * H);
  for (const char* p : {"attn_proj", "attention", "router", "experts", "lm_head", "rest"}) {
    EXPECT_GE(ph[p]["ms_per_token"].get<double>(), 0) << p;
  }
  EXPECT_GT(ph["experts"]["ms_per_token"].get<double>(), 0);
  EXPECT_GE(j["pool_tail_ms_per_token"].get<double>(), 0);
  // Decoded ids are the greedy continuation `generate` produces for the same prompt.
  const auto prompt = PromptIds(9, 1, V);
  const auto g = testing::RunCli({"generate", "--tokens", Join(prompt), "-n", "4", "--ignore-eos"},
                                 s.path);
  ASSERT_EQ(g.exit_code, 0) << g.err;
  std::string got = g.out;
  while (!got.empty() && (got.back() == '\n' || got.back() == ' ')) got.pop_back();
  EXPECT_EQ(got, Join(j["decoded_ids"].get<std::vector<int32_t>>()));
}

TEST(BenchCliTest, StreamingReportsCacheTraffic) {
  Scratch s;
  // 64 KiB blocks (bf16 3×64×256): 512K holds 8 blocks, far fewer than the 4 × 8 layers a
  // token needs, so decode must read from disk every step.
  const auto j = RunBench({"--expert-cache", "512K", "--prefetch", "off"}, s);
  EXPECT_EQ(j["mode"], "streaming");
  EXPECT_EQ(j["io_threads"].get<int>(), 4);  // the defaults, reported with the run
  EXPECT_EQ(j["io_depth"].get<int>(), 0);
  const double hit = j["cache_hit_rate"].get<double>();
  EXPECT_GE(hit, 0.0);
  EXPECT_LT(hit, 1.0);
  const double per_tok = j["bytes_read_per_token"].get<double>();
  const double block = j["expert_block_bytes"].get<double>();
  // Misses per token × block bytes: at most every expert of every layer (8 × 4).
  EXPECT_GT(per_tok, 0);
  EXPECT_LE(per_tok, 8 * 4 * block + 1);
  EXPECT_NEAR(per_tok / block, (1 - hit) * 32, 1e-6 * 32 + 1e-3);
  EXPECT_GE(j["io_wait_share"].get<double>(), 0);
  EXPECT_LE(j["io_wait_share"].get<double>(), 1.0);
  EXPECT_GT(j["disk_gb_s"].get<double>(), 0);
  // The read path's rate counts only the time reads were in flight, a part of the phase's wall
  // time (every read of a phase completes in it: no prefetch), so it is at least the phase's.
  EXPECT_GE(j["read_path_gb_s"].get<double>(), j["disk_gb_s"].get<double>() * 0.999);
  EXPECT_GE(j["prefill_read_path_gb_s"].get<double>(),
            j["prefill_disk_gb_s"].get<double>() * 0.999);
  EXPECT_GT(j["prefill_read_path_gb_s"].get<double>(), 0);
  // Time with 1, 2, 3, ≥ 4 reads in flight: shares of the decode wall time that sum to the
  // busy share (bytes over busy time is read_path_gb_s), nonzero since decode read from disk.
  const auto in_flight = j["reads_in_flight_share"].get<std::vector<double>>();
  ASSERT_EQ(in_flight.size(), 4u);
  double busy = 0;
  for (double v : in_flight) {
    EXPECT_GE(v, 0);
    busy += v;
  }
  EXPECT_GT(busy, 0);
  EXPECT_LE(busy, 1.0 + 1e-3);
  // (both rates are printed to 3 decimals)
  EXPECT_NEAR(busy, j["disk_gb_s"].get<double>() / j["read_path_gb_s"].get<double>(), 0.02);
  // Streamed experts stay as read; only the dense matrices are tiled.
  EXPECT_EQ(j["tiled_weight_bytes_per_decode_token"].get<uint64_t>(),
            j["weight_bytes_per_decode_token"].get<uint64_t>() -
                j["expert_bytes_per_decode_token"].get<uint64_t>() -
                2 * 8 * (2 * 256 + 2 * 64 + 32 * 256) - 2 * (256 + 256));  // norms, router, emb
  EXPECT_EQ(RunBench({"--weight-layout", "rows"}, s)["tiled_weight_bytes_per_decode_token"], 0);
  // Provenance: the bundled model is a HF folder, read without a store.
  EXPECT_NE(j["expert_source"].get<std::string>().find("hf safetensors"), std::string::npos)
      << j["expert_source"];
}

// --prefetch's decode counters: reported per token, consistent with each other and with the
// bytes read, and the prefetch changes what is read early, never the decoded ids.
TEST(BenchCliTest, PrefetchCountersAreConsistent) {
  Scratch s;
  const auto off = RunBench({"--expert-cache", "512K", "--prefetch", "off"}, s);
  EXPECT_EQ(off["prefetch"], "off");
  EXPECT_EQ(off["prefetch_issued_per_token"].get<double>(), 0);
  EXPECT_EQ(off["prefetch_unused_bytes_per_token"].get<double>(), 0);
  const auto on = RunBench({"--expert-cache", "512K", "--prefetch", "on"}, s);
  EXPECT_EQ(on["prefetch"], "on");
  EXPECT_EQ(on["prefetch_skipped_per_token"].get<double>(), 0);
  EXPECT_EQ(on["decoded_ids"], off["decoded_ids"]);
  const double issued = on["prefetch_issued_per_token"].get<double>();
  const double used = on["prefetch_used_per_token"].get<double>();
  const double cancelled = on["prefetch_cancelled_per_token"].get<double>();
  // The reference model is trained: the lookahead names the right experts more often than not.
  EXPECT_GT(issued, 0);
  EXPECT_GT(used, 0);
  EXPECT_GE(cancelled, 0);
  EXPECT_GT(on["prefetch_precision"].get<double>(), 0.5);
  EXPECT_LE(on["prefetch_precision"].get<double>(), 1.0);
  // Unused = issued − used − cancelled blocks (≥ 0), each a whole block, all part of the bytes read.
  const double block = on["expert_block_bytes"].get<double>();
  const double unused = on["prefetch_unused_bytes_per_token"].get<double>();
  EXPECT_NEAR(unused / block, std::max(0.0, issued - used - cancelled), 0.01);
  EXPECT_LE(unused, on["bytes_read_per_token"].get<double>());
  // The default is auto: the same ids, every prediction either read or skipped.
  const auto def = RunBench({"--expert-cache", "512K"}, s);
  EXPECT_EQ(def["prefetch"], "auto");
  EXPECT_EQ(def["decoded_ids"], off["decoded_ids"]);
  EXPECT_GT(def["prefetch_issued_per_token"].get<double>() +
                def["prefetch_skipped_per_token"].get<double>(), 0);
  const auto bad = testing::RunCli({"bench", "--prefetch", "yes"}, s.path);
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--prefetch 'yes'"), std::string::npos) << bad.err;
}

// --cache-fill: reads into free slots in the background change what is read when, never the
// decoded ids; its decode counters are per token and consistent with each other.
TEST(BenchCliTest, CacheFillKeepsTheIdsAndReportsItsReads) {
  Scratch s;
  const auto off = RunBench({"--expert-cache", "64M", "--cache-fill", "off"}, s);
  EXPECT_EQ(off["cache_fill"], "off");
  EXPECT_EQ(off["fill_issued_per_token"].get<double>(), 0);
  const auto on = RunBench({"--expert-cache", "64M"}, s);  // the default
  EXPECT_EQ(on["cache_fill"], "on");
  EXPECT_EQ(on["decoded_ids"], off["decoded_ids"]);
  const double block = on["expert_block_bytes"].get<double>();
  EXPECT_NEAR(on["fill_bytes_per_token"].get<double>() / block,
              on["fill_issued_per_token"].get<double>(), 0.01);
  EXPECT_LE(on["fill_bytes_per_token"].get<double>(), on["bytes_read_per_token"].get<double>());
  const auto bad = testing::RunCli({"bench", "--cache-fill", "yes"}, s.path);
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--cache-fill 'yes': expected on or off"), std::string::npos) << bad.err;
}

// A run from a converted store names the store's format version and block hash, as its header
// says (read here from the file), so results from v1 and v2 stores are never confused.
TEST(BenchCliTest, StreamingFromAStoreReportsItsFormatVersion) {
  Scratch s;
  for (const char* version : {"1", "2", "3"}) {
    const std::string out = s.path + "/store_v" + version;
    const std::string model = std::string(MOE_SOURCE_DIR) + "/models/qwen3-moe-ref";
    const auto c = testing::RunCli(
        {"convert", "--model", model, "--out", out, "--quiet", "--store-version", version}, s.path);
    ASSERT_EQ(c.exit_code, 0) << c.err;
    const store::Header h = testing::ReadStoreFile(out).h;
    const uint32_t file_version = h.version, block_hash = h.block_hash;
    EXPECT_EQ(std::to_string(file_version), version);
    const auto j = RunBench({"--model", out, "--expert-cache", "512K"}, s);
    EXPECT_EQ(j["expert_source"].get<std::string>(),
              "store v" + std::to_string(file_version) + " (" +
                  (block_hash == static_cast<uint32_t>(store::BlockHash::kXxh3) ? "xxh3-64"
                                                                                 : "xxh64") +
                  " block checksums" +
                  (h.version >= 3 && h.layout == static_cast<uint32_t>(store::StoreLayout::kTiles)
                       ? ", tiled blocks"
                       : "") +
                  ")");
  }
}

// --verify-reads every hashes each block read while decoding; first (the default) only blocks
// read for the first time, and decodes the same ids. Demand reads only (--prefetch off), so every
// read counted in bytes_read has finished, and been hashed, when the counters are taken.
TEST(BenchCliTest, VerifyReadsFirstHashesFewerBlocksForTheSameIds) {
  Scratch s;
  const std::string out = s.path + "/store";
  const std::string model = std::string(MOE_SOURCE_DIR) + "/models/qwen3-moe-ref";
  const auto c = testing::RunCli({"convert", "--model", model, "--out", out, "--quiet"}, s.path);
  ASSERT_EQ(c.exit_code, 0) << c.err;
  const std::vector<std::string> common = {"--model", out, "--expert-cache", "512K",
                                           "--prefetch", "off"};
  auto with = [&](std::vector<std::string> extra) {
    extra.insert(extra.begin(), common.begin(), common.end());
    return RunBench(extra, s);
  };
  const auto every = with({"--verify-reads", "every"});
  const auto first = with({});
  EXPECT_EQ(every["verify_reads"], "every");
  EXPECT_EQ(first["verify_reads"], "first");
  EXPECT_EQ(first["decoded_ids"], every["decoded_ids"]);
  const double stride =
      std::ceil(every["expert_block_bytes"].get<double>() / 4096) * 4096;  // whole 4 KiB pages
  const double every_reads = every["bytes_read_per_token"].get<double>() / stride;
  EXPECT_GT(every_reads, 0);
  EXPECT_NEAR(every["blocks_hashed_per_token"].get<double>(), every_reads, 1e-3);
  const double first_reads = first["bytes_read_per_token"].get<double>() / stride;
  EXPECT_NEAR(first_reads, every_reads, 1e-3);  // the same reads, ...
  EXPECT_LT(first["blocks_hashed_per_token"].get<double>(), every_reads);  // ... fewer hashed
  const auto bad = testing::RunCli({"bench", "--verify-reads", "never"}, s.path);
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--verify-reads 'never'"), std::string::npos) << bad.err;
}

TEST(BenchCliTest, MeasureMemoryReportsARooflineFromTheProbe) {
  Scratch s;
  const auto j = RunBench({"--measure-memory", "--repeat", "1"}, s);
  const double probe = j["measured_memory_gb_s"].get<double>();
  // One repeat: the probe that counts is the larger of those before and after the decode.
  ASSERT_EQ(j["repeat"].get<int>(), 1);
  EXPECT_NEAR(probe, std::max(j["memory_probe_before_gb_s"].get<double>(),
                              j["memory_probe_after_gb_s"].get<double>()), 1e-3);
  const double bytes = j["weight_bytes_per_decode_token"].get<double>() +
                       j["kv_bytes_per_decode_token"].get<double>();
  EXPECT_GT(probe, 0);
  EXPECT_NEAR(j["memory_roofline_tok_s"].get<double>(), probe * 1e9 / bytes,
              1e-3 * probe * 1e9 / bytes);
  // The share is a median of per-repeat ratios, each decode against the larger probe around
  // it: positive, and not wildly off the ratio of the medians.
  const double share = j["decode_share_of_memory_roofline"].get<double>();
  EXPECT_GT(share, 0);
  const double of_medians = j["memory_gb_s"].get<double>() / probe;
  EXPECT_LT(share, 10 * of_medians);
  EXPECT_GT(share, of_medians / 10);
}

// --probe-each-token adds a share per decode token against quick probes around it; it needs
// --measure-memory (usage error otherwise).
TEST(BenchCliTest, ProbeEachTokenReportsAPerTokenShare) {
  Scratch s;
  const auto j = RunBench({"--measure-memory", "--probe-each-token", "--repeat", "1"}, s);
  const double probe = j["memory_probe_per_token_gb_s"].get<double>();
  const double share = j["decode_share_of_memory_roofline_per_token"].get<double>();
  EXPECT_GT(probe, 0);
  EXPECT_GT(share, 0);
  // The probes are not decode time: the per-repeat share stays of the same order.
  const double whole = j["decode_share_of_memory_roofline"].get<double>();
  EXPECT_LT(share, 10 * whole);
  EXPECT_GT(share, whole / 10);
  const auto bad = testing::RunCli({"bench", "--probe-each-token"}, s.path);
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--probe-each-token needs --measure-memory"), std::string::npos)
      << bad.err;
}

// With several repeats the JSON carries each repeat's decode rate and the larger probe around
// it, consistent with the medians it reports.
TEST(BenchCliTest, MeasureMemoryReportsEachRepeat) {
  Scratch s;
  const auto j = RunBench({"--measure-memory", "--repeat", "3"}, s);
  const auto tok_s = j["decode_tok_s_per_repeat"].get<std::vector<double>>();
  const auto probe = j["memory_probe_per_repeat_gb_s"].get<std::vector<double>>();
  ASSERT_EQ(tok_s.size(), 3u);
  ASSERT_EQ(probe.size(), 3u);
  const auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[1];
  };
  EXPECT_NEAR(median(probe), j["measured_memory_gb_s"].get<double>(), 1e-3);
  // decode_tok_s is decode tokens over the median decode time: the median of the rates.
  EXPECT_NEAR(median(tok_s), j["decode_tok_s"].get<double>(),
              2e-3 * j["decode_tok_s"].get<double>() + 2e-3);
  for (double p : probe) EXPECT_GT(p, 0);
}

// `generate --stats` reports the same phase profile per decode token on stderr.
TEST(BenchCliTest, GenerateStatsPrintsTheDecodePhases) {
  Scratch s;
  const auto g = testing::RunCli({"generate", "--tokens", "1,2,3", "-n", "4", "--ignore-eos",
                                  "--stats"}, s.path);
  ASSERT_EQ(g.exit_code, 0) << g.err;
  const size_t at = g.err.find("decode per token: attn_proj ");
  ASSERT_NE(at, std::string::npos) << g.err;
  const std::string line = g.err.substr(at, g.err.find('\n', at) - at);
  size_t last = 0;
  for (const char* p : {"attn_proj", "attention", "router", "experts", "lm_head", "rest"}) {
    const size_t i = line.find(std::string(p) + " ");
    EXPECT_NE(i, std::string::npos) << p << " in " << line;
    if (i != std::string::npos) {
      EXPECT_GE(i, last) << p << " out of order in " << line;
      last = i;
    }
  }
  EXPECT_NE(line.find("GB/s"), std::string::npos) << line;
}

// --lm-head-shadow q8: the same decoded ids as without it and as `generate` with it; lm_head's
// bytes become the q8 copy's (36 bytes per 32 weights) plus the candidate rows read, as counted.
TEST(BenchCliTest, LmHeadShadowDecodesTheSameIdsFromFewerBytes) {
  Scratch s;
  const auto plain = RunBench({}, s);
  const auto j = RunBench({"--lm-head-shadow", "q8"}, s);
  EXPECT_EQ(plain["lm_head_shadow"], "off");
  EXPECT_FALSE(plain.contains("lm_head_candidate_rows_per_token"));
  EXPECT_EQ(j["lm_head_shadow"], "q8");
  EXPECT_EQ(j["decoded_ids"], plain["decoded_ids"]);
  const uint64_t H = 256, V = 6144;  // the reference model (ResidentJsonIsConsistent)
  const uint64_t shadow = V * (H / 32) * 36;
  EXPECT_EQ(j["head_bytes_per_decode_token"].get<uint64_t>(),
            plain["head_bytes_per_decode_token"].get<uint64_t>() - 2 * V * H + shadow);
  EXPECT_EQ(j["weight_bytes_per_decode_token"].get<uint64_t>(),
            plain["weight_bytes_per_decode_token"].get<uint64_t>() - 2 * V * H + shadow);
  const double rows = j["lm_head_candidate_rows_per_token"].get<double>();
  EXPECT_GE(rows, 1.0);
  EXPECT_LT(rows, V / 16.0);
  EXPECT_EQ(j["lm_head_fallbacks"].get<int>(), 0);
  EXPECT_NEAR(j["lm_head_extra_bytes_per_decode_token"].get<double>(), rows * 2 * H, 1.0);
  EXPECT_NEAR(j["decode_phases"]["lm_head"]["weight_bytes_per_token"].get<double>(),
              static_cast<double>(shadow) + rows * 2 * H, 1.0);
  const auto prompt = PromptIds(9, 1, V);
  const auto g = testing::RunCli({"generate", "--tokens", Join(prompt), "-n", "4", "--ignore-eos",
                                  "--lm-head-shadow", "q8"}, s.path);
  ASSERT_EQ(g.exit_code, 0) << g.err;
  std::string got = g.out;
  while (!got.empty() && (got.back() == '\n' || got.back() == ' ')) got.pop_back();
  EXPECT_EQ(got, Join(j["decoded_ids"].get<std::vector<int32_t>>()));
  // Bad values: a usage error naming the flag; a quantized lm_head: unsupported (exit 7).
  const auto bad = testing::RunCli({"bench", "--lm-head-shadow", "q4"}, s.path);
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--lm-head-shadow"), std::string::npos) << bad.err;
  const auto dq = testing::RunCli(
      {"bench", "--lm-head-shadow", "q8", "--dense-quant", "q8", "--decode-tokens", "1"}, s.path);
  EXPECT_EQ(dq.exit_code, 7) << dq.err;
  EXPECT_NE(dq.err.find("--lm-head-shadow"), std::string::npos) << dq.err;
  EXPECT_EQ(std::count(dq.err.begin(), dq.err.end(), '\n'), 1) << dq.err;
}

// `generate` turns the shadow on by itself for greedy and top-k decoding, penalty or not, and
// prints the same ids as without it (the same seed); not for sampling from every logit, nor over
// a dense-quantized lm_head.
TEST(BenchCliTest, GenerateUsesTheShadowForGreedyAndTopKDecoding) {
  Scratch s;
  const auto run = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = {"generate", "--tokens", "1,2,3", "-n", "24", "--ignore-eos",
                                     "--stats"};
    args.insert(args.end(), extra.begin(), extra.end());
    const auto r = testing::RunCli(args, s.path);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r;
  };
  const auto greedy = run({});
  EXPECT_NE(greedy.err.find("lm_head shadow (q8): 24 steps"), std::string::npos) << greedy.err;
  for (const std::vector<std::string>& sampled :
       {std::vector<std::string>{},
        std::vector<std::string>{"--repetition-penalty", "1.2"},
        std::vector<std::string>{"--temperature", "0.7", "--sample-top-k", "20", "--top-p", "0.9",
                                 "--seed", "3"},
        std::vector<std::string>{"--temperature", "1.3", "--sample-top-k", "8", "--min-p", "0.05",
                                 "--repetition-penalty", "1.3", "--seed", "4"}}) {
    const auto on = run(sampled);
    EXPECT_NE(on.err.find("lm_head shadow (q8): 24 steps"), std::string::npos) << on.err;
    std::vector<std::string> off_args = sampled;
    off_args.insert(off_args.end(), {"--lm-head-shadow", "off"});
    const auto off = run(off_args);
    EXPECT_EQ(off.err.find("lm_head shadow"), std::string::npos) << off.err;
    EXPECT_EQ(off.out, on.out) << "the same ids with and without the shadow";
  }
  for (const std::vector<std::string>& every_logit_or_lossy :
       {std::vector<std::string>{"--temperature", "0.7", "--seed", "3"},
        std::vector<std::string>{"--dense-quant", "q8"}}) {
    const auto r = run(every_logit_or_lossy);
    EXPECT_EQ(r.err.find("lm_head shadow"), std::string::npos) << every_logit_or_lossy[0];
  }
}

TEST(BenchCliTest, BadFlagIsUsageError) {
  Scratch s;
  const auto r = testing::RunCli({"bench", "--repeat", "0"}, s.path);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--repeat"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace moe
