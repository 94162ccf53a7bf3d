// SPDX-License-Identifier: Apache-2.0
// Binding a checkpoint to its config (bad-inputs B5, B6, A10 at bind time): a required tensor
// missing, a shape that disagrees with config.json, an unexpected tensor, a dtype we do not
// compute with — each refused with the tensor named. Fixtures are copies of the HF-made "tied"
// checkpoint with one tensor removed or re-shaped.
#include <gtest/gtest.h>

#include <filesystem>
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>

#include <fmt/format.h>

#include "e2e/cli_runner.h"
#include "formats/hf_config.h"
#include "formats/safetensors.h"
#include "formats/test_files.h"
#include "model/model_weights.h"

namespace moe {
namespace {

namespace fs = std::filesystem;

const std::string kSrc = std::string(MOE_SOURCE_DIR) + "/tests/data/models/tied";

// Copies the fixture to `dir`, letting `edit` change its tensor list before re-encoding.
void CopyWithEdit(const fs::path& dir, const std::function<void(std::vector<testing::StTensor>*)>& edit) {
  auto f = SafetensorsFile::Open(kSrc + "/model.safetensors");
  ASSERT_TRUE(f.ok()) << f.status().message();
  std::vector<testing::StTensor> ts;
  for (const TensorInfo& t : f->tensors()) {
    std::string data(t.n_bytes, '\0');
    ASSERT_TRUE(f->file().ReadAt(t.file_offset, data.data(), data.size()).ok());
    ts.push_back({t.name, std::string(DTypeName(t.dtype)), t.shape, data});
  }
  edit(&ts);
  testing::WriteFile(dir / "model.safetensors", testing::EncodeSafetensors(ts));
  fs::copy_file(kSrc + "/config.json", dir / "config.json");
}

Status Bind(const fs::path& dir) {
  MOE_ASSIGN_OR_RETURN(Qwen3MoeConfig cfg, LoadHfConfig(dir.string()));
  MOE_ASSIGN_OR_RETURN(Checkpoint ckpt, Checkpoint::Open(dir.string()));
  auto w = ModelWeights::Bind(cfg, ckpt);
  return w.status();
}

// The CLI exits 3 with one stderr line naming the tensor, and writes no output file.
void ExpectCliRefuses(const testing::TempDir& dir, const std::string& tensor) {
  const auto r = testing::RunCli({"eval", "--model", dir.str(), "--tokens", "1,2", "--logits-out",
                                  (dir / "logits.f32").string()},
                                 dir.str());
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find(tensor), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_FALSE(fs::exists(dir / "logits.f32"));
}

TEST(BindTest, UneditedCopyBinds) {
  testing::TempDir dir;
  CopyWithEdit(dir.path(), [](auto*) {});
  EXPECT_TRUE(Bind(dir.path()).ok()) << Bind(dir.path()).message();
}

// The dense-weight load draws a progress line (label, total MiB, rate, ETA) on the given stream
// once the dense weights reach progress_min_bytes, and stays silent below it.
// --dense-quant: exactly the MatMul-only matrices are quantized (the router, norms and embedding
// keep their type), each row as kernels::QuantizeRow makes it from the stored row, also across
// the row chunks of the load (5 rows per read here: 6144 lm_head rows leave a partial chunk);
// with tile_dense each quantized row's blocks then sit where TiledBlockOffset says.
TEST(BindTest, DenseQuantQuantizesOnlyMatMulWeightsRowByRow) {
  const std::string ref = std::string(MOE_SOURCE_DIR) + "/models/qwen3-moe-ref";
  auto cfg = LoadHfConfig(ref);
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  ASSERT_FALSE(cfg->tie_word_embeddings);
  auto ckpt = Checkpoint::Open(ref);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().message();
  auto plain = ModelWeights::Bind(*cfg, *ckpt);
  ASSERT_TRUE(plain.ok()) << plain.status().message();
  for (const bool tile : {false, true}) {
    for (kernels::WeightType q : {kernels::WeightType::kQ8, kernels::WeightType::kQ4}) {
      SCOPED_TRACE(tile ? "tiled" : "row-major");
      BindOptions opts;
      opts.dense_quant = q;
      opts.dense_quant_chunk_bytes = 5 * 256 * 2 + 100;
      opts.tile_dense = tile;  // tiled: quantized first, then tiled (kernels.h TiledBlockOffset)
      auto w = ModelWeights::Bind(*cfg, *ckpt, opts);
      ASSERT_TRUE(w.ok()) << w.status().message();
      EXPECT_LT((*w)->dense_bytes(), (*plain)->dense_bytes());
      const LayerWeights& l0 = (*w)->layer(0);
      for (const DenseTensor* t : {&l0.attn.q_proj, &l0.attn.k_proj, &l0.attn.v_proj,
                                   &l0.attn.o_proj, &(*w)->lm_head()}) {
        EXPECT_EQ(t->view.type, q) << t->name;
        // Tiled where the target's quantized decode tile fits (kernels::TilingPays).
        EXPECT_EQ(t->view.tiled, tile && kernels::TilingPays(q, t->view.rows, t->view.cols))
            << t->name;
      }
      for (const DenseTensor* t : {&l0.router, &l0.input_layernorm, &l0.attn.q_norm,
                                   &(*w)->embed(), &(*w)->final_norm()}) {
        EXPECT_EQ(t->view.type, kernels::WeightType::kBF16) << t->name;
      }
      for (const DenseTensor* t : {&(*w)->lm_head(), &l0.attn.o_proj}) {
        const kernels::WeightView& v = t->view;
        const TensorRef* src = ckpt->Find(t->name);
        ASSERT_NE(src, nullptr) << t->name;
        std::string raw(src->info->n_bytes, '\0');
        ASSERT_TRUE(ckpt->Read(*src, raw.data(), raw.size()).ok());
        const size_t out_row = kernels::WeightMatrixBytes(q, 1, v.cols);
        std::vector<float> row(v.cols);
        std::vector<char> want(out_row);
        for (size_t r : {size_t{0}, size_t{4}, size_t{5}, v.rows / 2, v.rows - 1}) {
          kernels::ToFloat(raw.data() + r * v.cols * 2, kernels::WeightType::kBF16, v.cols,
                           row.data());
          kernels::QuantizeRow(row.data(), v.cols, q, want.data());
          const size_t bb = kernels::QuantBlockBytes(q);
          for (size_t b = 0; b < out_row / bb; ++b) {
            const size_t at =
                v.tiled ? kernels::TiledBlockOffset(r, b, out_row, bb) : r * out_row + b * bb;
            ASSERT_EQ(0, std::memcmp(static_cast<const char*>(v.data) + at, &want[b * bb], bb))
                << t->name << " row " << r << " block " << b;
          }
        }
      }
    }
  }
}

TEST(BindTest, DenseLoadProgressIsDrawnAboveThreshold) {
  auto cfg = LoadHfConfig(kSrc);
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  auto ckpt = Checkpoint::Open(kSrc);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().message();
  for (const bool above : {true, false}) {
    FILE* f = std::tmpfile();
    ASSERT_NE(f, nullptr);
    BindOptions opts;
    opts.progress = f;
    auto probe = ModelWeights::Bind(*cfg, *ckpt);
    ASSERT_TRUE(probe.ok()) << probe.status().message();
    const uint64_t dense = (*probe)->dense_bytes();
    opts.progress_min_bytes = above ? dense : dense + 1;
    auto w = ModelWeights::Bind(*cfg, *ckpt, opts);
    ASSERT_TRUE(w.ok()) << w.status().message();
    std::string out(4096, '\0');
    std::rewind(f);
    out.resize(std::fread(out.data(), 1, out.size(), f));
    std::fclose(f);
    if (!above) {
      EXPECT_EQ(out, "");
      continue;
    }
    const std::string total = fmt::format("/{:.1f} MiB", dense / 1048576.0);
    EXPECT_NE(out.find("dense weights ["), std::string::npos) << out;
    EXPECT_NE(out.find(total), std::string::npos) << out << " expected " << total;
    EXPECT_NE(out.find("MB/s ETA"), std::string::npos) << out;
    EXPECT_EQ(out.back(), '\n') << out;
  }
}

TEST(BindTest, B5MissingRequiredTensorIsNamed) {
  testing::TempDir dir;
  const std::string gone = "model.layers.3.mlp.experts.4.down_proj.weight";
  CopyWithEdit(dir.path(), [&](std::vector<testing::StTensor>* ts) {
    std::erase_if(*ts, [&](const testing::StTensor& t) { return t.name == gone; });
  });
  const Status s = Bind(dir.path());
  EXPECT_EQ(s.code(), StatusCode::kInvalidFormat);
  EXPECT_NE(s.message().find("1 required tensor(s) missing: " + gone), std::string::npos)
      << s.message();
  ExpectCliRefuses(dir, gone);
}

TEST(BindTest, B6ShapeDisagreeingWithConfigNamesBoth) {
  testing::TempDir dir;
  CopyWithEdit(dir.path(), [](std::vector<testing::StTensor>* ts) {
    for (auto& t : *ts) {
      if (t.name == "model.layers.1.mlp.experts.0.up_proj.weight") {  // [24, 48] → [23, 48]
        t.shape = {23, 48};
        t.data.resize(23 * 48 * 2);
      }
    }
  });
  const Status s = Bind(dir.path());
  EXPECT_EQ(s.code(), StatusCode::kInvalidFormat);
  EXPECT_NE(s.message().find("tensor 'model.layers.1.mlp.experts.0.up_proj.weight': shape [23, 48] "
                             "vs [24, 48] expected from config"),
            std::string::npos)
      << s.message();
  ExpectCliRefuses(dir, "model.layers.1.mlp.experts.0.up_proj.weight");
}

TEST(BindTest, UnexpectedTensorIsRefused) {
  testing::TempDir dir;
  CopyWithEdit(dir.path(), [](std::vector<testing::StTensor>* ts) {
    ts->push_back({"model.layers.9.self_attn.q_proj.weight", "BF16", {2, 2}, std::string(8, '\0')});
  });
  const Status s = Bind(dir.path());
  EXPECT_EQ(s.code(), StatusCode::kInvalidFormat);
  EXPECT_NE(s.message().find("model.layers.9.self_attn.q_proj.weight"), std::string::npos)
      << s.message();
}

TEST(BindTest, A10ValidButUncomputableDTypeIsUnsupported) {
  testing::TempDir dir;
  CopyWithEdit(dir.path(), [](std::vector<testing::StTensor>* ts) {
    for (auto& t : *ts) {
      if (t.name == "model.norm.weight") {  // 48 BF16 → 48 I16 (same bytes)
        t.dtype = "I16";
      }
    }
  });
  const Status s = Bind(dir.path());
  EXPECT_EQ(s.code(), StatusCode::kUnsupported);
  EXPECT_NE(s.message().find("tensor 'model.norm.weight': dtype I16 unsupported"), std::string::npos)
      << s.message();
}

}  // namespace
}  // namespace moe
