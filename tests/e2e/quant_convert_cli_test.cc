// SPDX-License-Identifier: Apache-2.0
// `moestream convert --quant q8|q4`: the store's header and blocks follow the documented
// quantized layout (checked byte-wise against the bf16 source: every dequantized weight within
// half a quantization step), --verify passes, and the engine's logits on the reference model's
// held-out passages stay close to transformers' (q8 much closer than q4).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "cli_runner.h"
#include "experts/store_file.h"
#include "formats/test_files.h"

namespace moe {
namespace {

namespace fs = std::filesystem;

using testing::Slurp;

struct Scratch {
  Scratch() {
    char tmpl[] = "/tmp/moe_quant_XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~Scratch() { fs::remove_all(path); }
  std::string path;
};

std::string RefModel() { return std::string(MOE_SOURCE_DIR) + "/models/qwen3-moe-ref"; }

float Bf16(const char* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Our logits on the 4 fixture passages against transformers': RMS(logit − reference) /
// RMS(reference), and the perplexity each implies over the passages' next tokens.
struct VsTransformers {
  double rel_rms = 1e9;
  double ppl = 0, ppl_ref = 0;
};

// Mean over positions i < n-1 of −log softmax(logits[i])[ids[i+1]], accumulated into *nll.
void AddNll(const std::string& f32, const std::vector<int32_t>& ids, size_t V, double* nll) {
  for (size_t i = 0; i + 1 < ids.size(); ++i) {
    std::vector<double> x(V);
    for (size_t v = 0; v < V; ++v) {
      float f;
      std::memcpy(&f, f32.data() + 4 * (i * V + v), 4);
      x[v] = f;
    }
    const double m = *std::max_element(x.begin(), x.end());
    double sum = 0;
    for (double e : x) sum += std::exp(e - m);
    *nll += m + std::log(sum) - x[static_cast<size_t>(ids[i + 1])];
  }
}

VsTransformers CompareWithTransformers(const std::string& model, const Scratch& s,
                                       const std::vector<std::string>& extra = {}) {
  const std::string dir = std::string(MOE_SOURCE_DIR) + "/tests/data/refmodel";
  const auto fx = nlohmann::json::parse(Slurp(dir + "/fixtures.json"));
  double num = 0, den = 0, nll = 0, nll_ref = 0;
  size_t predicted = 0;
  VsTransformers out;
  for (const auto& p : fx["passages"]) {
    const std::vector<int32_t> tok = p["token_ids"].get<std::vector<int32_t>>();
    std::string ids;
    for (int32_t id : tok) ids += (ids.empty() ? "" : ",") + std::to_string(id);
    std::vector<std::string> args = {"eval", "--model", model, "--tokens", ids, "--logits-out",
                                     s.path + "/l.f32"};
    args.insert(args.end(), extra.begin(), extra.end());
    const auto r = testing::RunCli(args, s.path);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    const std::string got = Slurp(s.path + "/l.f32"), ref = Slurp(dir + "/" + p["logits_file"].get<std::string>());
    EXPECT_EQ(got.size(), ref.size());
    if (got.size() != ref.size() || tok.empty()) return out;
    for (size_t i = 0; i < got.size() / 4; ++i) {
      float g, h;
      std::memcpy(&g, got.data() + 4 * i, 4);
      std::memcpy(&h, ref.data() + 4 * i, 4);
      num += (double(g) - h) * (double(g) - h);
      den += double(h) * h;
    }
    const size_t V = got.size() / 4 / tok.size();
    AddNll(got, tok, V, &nll);
    AddNll(ref, tok, V, &nll_ref);
    predicted += tok.size() - 1;
  }
  out.rel_rms = std::sqrt(num / den);
  out.ppl = std::exp(nll / static_cast<double>(predicted));
  out.ppl_ref = std::exp(nll_ref / static_cast<double>(predicted));
  return out;
}

double RelRmsLogitError(const std::string& model, const Scratch& s,
                        const std::vector<std::string>& extra = {}) {
  return CompareWithTransformers(model, s, extra).rel_rms;
}

// bad-inputs G6: perplexity on fixed text against transformers' within the agreed delta, plus a
// coarse absolute gate (like llama.cpp's ppl ≤ 20; the tiny reference model's is ~20-40).
// Agreed deltas: bf16 1e-4 relative (the logits match to f32 rounding); q8 experts and q8
// dense weights 1 %, q4 experts 5 % (issue 7's goals). Measured: −0.13 %, +0.42 %, −0.63 %.
TEST(QuantConvertCliTest, G6PerplexityGateAgainstTransformers) {
  Scratch s;
  const VsTransformers bf16 = CompareWithTransformers(RefModel(), s);
  std::printf("fixture perplexity: transformers %.4f, ours bf16 %.4f\n", bf16.ppl_ref, bf16.ppl);
  EXPECT_LT(bf16.ppl_ref, 60.0) << "coarse gate: the reference model itself regressed";
  EXPECT_NEAR(bf16.ppl / bf16.ppl_ref, 1.0, 1e-4);
  for (const char* q : {"q8", "q4"}) {
    const std::string out = s.path + "/store_" + q;
    const auto r = testing::RunCli({"convert", "--model", RefModel(), "--out", out, "--quiet",
                                    "--quant", q}, s.path);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const VsTransformers v = CompareWithTransformers(out, s);
    std::printf("fixture perplexity, %s experts: %.4f (%+.2f%%)\n", q, v.ppl,
                100 * (v.ppl / v.ppl_ref - 1));
    EXPECT_NEAR(v.ppl / v.ppl_ref, 1.0, q[1] == '8' ? 0.01 : 0.05) << q;
  }
  const VsTransformers dq = CompareWithTransformers(RefModel(), s, {"--dense-quant", "q8"});
  std::printf("fixture perplexity, q8 dense: %.4f (%+.2f%%)\n", dq.ppl,
              100 * (dq.ppl / dq.ppl_ref - 1));
  EXPECT_NEAR(dq.ppl / dq.ppl_ref, 1.0, 0.01);
}

TEST(QuantConvertCliTest, Q8AndQ4StoresMatchLayoutAndStayClose) {
  Scratch s;
  const double bf16_err = RelRmsLogitError(RefModel(), s);
  double err[2];
  for (int qi = 0; qi < 2; ++qi) {
    const std::string q = qi == 0 ? "q8" : "q4";
    const std::string out = s.path + "/store_" + q;
    auto r = testing::RunCli({"convert", "--model", RefModel(), "--out", out, "--quiet",
                              "--quant", q}, s.path);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    r = testing::RunCli({"convert", "--verify", out}, s.path);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    // Header: dtype code and block size from the documented layout (H=256, I=64).
    const testing::StoreFile f = testing::ReadStoreFile(out);
    const store::Header& h = f.h;
    ASSERT_GT(f.index.size(), 0u);
    // The verify line names the format version written (the default, the newest) and its hash.
    EXPECT_EQ(h.version, store::kVersion);
    const bool tiled = h.layout == static_cast<uint32_t>(store::StoreLayout::kTiles);
    EXPECT_NE(r.out.find("store v" + std::to_string(h.version) + " (xxh3-64 block checksums" +
                         (tiled ? ", tiled blocks" : "") + "): " + std::to_string(h.n_blocks) +
                         " blocks, every checksum matches"),
              std::string::npos)
        << r.out;
    const uint64_t H = 256, I = 64, bb = qi == 0 ? 36 : 20;
    EXPECT_EQ(h.dtype, qi == 0 ? 3u : 4u);
    EXPECT_EQ(h.block_bytes, 2 * I * (H / 32) * bb + H * (I / 32) * bb);
    // Layer 0, expert 0, gate row 0 against the bf16 source tensor.
    const store::IndexEntry* e = nullptr;
    for (const auto& x : f.index) {
      if (x.layer == 0 && x.expert == 0) e = &x;
    }
    ASSERT_NE(e, nullptr);
    const auto idx = nlohmann::json::parse(Slurp(RefModel() + "/model.safetensors.index.json"));
    const std::string name = "model.layers.0.mlp.experts.0.gate_proj.weight";
    const std::string shard = Slurp(RefModel() + "/" + idx["weight_map"][name].get<std::string>());
    uint64_t hl;
    std::memcpy(&hl, shard.data(), 8);
    const auto sh = nlohmann::json::parse(shard.substr(8, hl));
    const char* src = shard.data() + 8 + hl + sh[name]["data_offsets"][0].get<uint64_t>();
    // Block b of gate row 0: at b · bb row-major; tiled (the default where tiles pay), a tile's
    // 8 rows' block b are stored together: at b · 8 · bb.
    const char* blk0 = f.bytes.data() + e->offset;
    for (uint64_t b = 0; b < H / 32; ++b) {
      const char* blk = blk0 + b * (tiled ? 8 : 1) * bb - b * bb;
      float d;
      std::memcpy(&d, blk + b * bb, 4);
      float amax = 0;
      for (uint64_t j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(Bf16(src + 2 * (b * 32 + j))));
      EXPECT_FLOAT_EQ(d, amax / (qi == 0 ? 127.f : 7.f));
      for (uint64_t j = 0; j < 32; ++j) {
        const auto byte = static_cast<uint8_t>(blk[b * bb + 4 + (qi == 0 ? j : j % 16)]);
        const int qv = qi == 0 ? static_cast<int8_t>(byte) : (j < 16 ? byte & 15 : byte >> 4) - 8;
        EXPECT_LE(std::fabs(d * qv - Bf16(src + 2 * (b * 32 + j))), 0.5f * d * 1.0001f + 1e-30f);
      }
    }
    err[qi] = RelRmsLogitError(out, s);
  }
  // bf16 matches transformers to f32 rounding; quantization adds error, 4-bit more than 8-bit.
  std::printf("relative RMS logit error: bf16 %.3g, q8 %.3g, q4 %.3g\n", bf16_err, err[0], err[1]);
  EXPECT_LT(bf16_err, 1e-4);
  EXPECT_GT(err[0], bf16_err);
  EXPECT_LT(err[0], 0.05);
  EXPECT_LT(err[0], err[1]);
  EXPECT_LT(err[1], 0.5);
}

// --dense-quant: logits against transformers' stay close, q8 closer than q4; combined with a
// q8 expert store too. (Perplexity on held-out text: docs/benchmarks.md.)
TEST(QuantConvertCliTest, DenseQuantStaysCloseToTransformers) {
  Scratch s;
  const double bf16_err = RelRmsLogitError(RefModel(), s);
  const double q8 = RelRmsLogitError(RefModel(), s, {"--dense-quant", "q8"});
  const double q4 = RelRmsLogitError(RefModel(), s, {"--dense-quant", "q4"});
  std::printf("relative RMS logit error, dense weights: bf16 %.3g, q8 %.3g, q4 %.3g\n", bf16_err,
              q8, q4);
  EXPECT_GT(q8, bf16_err);
  EXPECT_LT(q8, 0.05);
  EXPECT_LT(q8, q4);
  EXPECT_LT(q4, 0.5);
  const auto r = testing::RunCli({"eval", "--model", RefModel(), "--tokens", "1,2",
                                  "--dense-quant", "q5"}, s.path);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--dense-quant 'q5': expected q8 or q4"), std::string::npos) << r.err;
}

// The quantizer splits rows over --threads; the store must be the same bytes for any count.
TEST(QuantConvertCliTest, StoreBytesDoNotDependOnThreads) {
  Scratch s;
  for (const char* q : {"q8", "q4"}) {
    std::string first;
    for (const char* t : {"1", "2", "5"}) {
      const std::string out = s.path + "/store_" + q + "_t" + t;
      const auto r = testing::RunCli({"convert", "--model", RefModel(), "--out", out, "--quiet",
                                      "--quant", q, "--threads", t}, s.path);
      ASSERT_EQ(r.exit_code, 0) << r.err;
      const std::string bin = Slurp(out + "/experts.bin");
      if (first.empty()) {
        first = bin;
      } else {
        EXPECT_TRUE(bin == first) << q << " with --threads " << t << " differs from --threads 1";
      }
    }
  }
  const auto r = testing::RunCli({"convert", "--model", RefModel(), "--out", s.path + "/x",
                                  "--quant", "q8", "--threads", "0"}, s.path);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--threads 0: expected 1..256"), std::string::npos) << r.err;
}

TEST(QuantConvertCliTest, UnknownQuantIsUsageError) {
  Scratch s;
  const auto r = testing::RunCli({"convert", "--model", RefModel(), "--out", s.path + "/x",
                                  "--quant", "q3"}, s.path);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--quant"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace moe
