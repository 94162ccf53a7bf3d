// SPDX-License-Identifier: Apache-2.0
#include <cstring>
#include <vector>

#include "experts/expert_source.h"
#include "formats/safetensors.h"

namespace moe {

ExpertView MakeExpertView(const ExpertGeometry& g, const void* block) {
  const char* p = static_cast<const char*>(block);
  const uint64_t m = g.matrix_bytes();
  ExpertView v;
  v.gate = {p, g.type, g.intermediate, g.hidden};
  v.up = {p + m, g.type, g.intermediate, g.hidden};
  v.down = {p + 2 * m, g.type, g.hidden, g.intermediate};
  for (kernels::WeightView* w : {&v.gate, &v.up, &v.down}) {
    w->tiled = g.tiled && kernels::HasTileShape(w->type, w->rows, w->cols);
  }
  return v;
}

namespace {

class HfExpertSource final : public ExpertSource {
 public:
  HfExpertSource(std::vector<std::vector<ExpertSlices>> table, ExpertGeometry g)
      : table_(std::move(table)), g_(g) {
    for (const auto& layer : table_) {
      if (!layer.empty()) n_experts_ = static_cast<int64_t>(layer.size());
    }
  }

  const ExpertGeometry& geometry() const override { return g_; }
  int64_t n_layers() const override { return static_cast<int64_t>(table_.size()); }
  bool has_experts(int64_t layer) const override {
    return layer >= 0 && layer < n_layers() && !table_[static_cast<size_t>(layer)].empty();
  }
  int64_t n_experts() const override { return n_experts_; }
  std::string format() const override { return "hf safetensors shards (no block checksums)"; }

  Status ReadRaw(int64_t layer, int64_t expert, void* dst) const override {
    const ExpertSlices& s = table_[static_cast<size_t>(layer)][static_cast<size_t>(expert)];
    char* out = static_cast<char*>(dst);
    const uint64_t m = g_.matrix_bytes();
    Status st;
    if (Adjacent(s)) {
      st = s.gate.file->file().ReadAt(s.gate.file_offset, out, 3 * m);
    } else {
      st = ReadSlice(s.gate, out);
      if (st.ok()) st = ReadSlice(s.up, out + m);
      if (st.ok()) st = ReadSlice(s.down, out + 2 * m);
    }
    if (!st.ok()) return st.WithContext(fmt::format("layer {} expert {}", layer, expert));
    return Status::Ok();
  }

 private:
  bool Adjacent(const ExpertSlices& s) const {
    const uint64_t m = g_.matrix_bytes();
    return !s.gate.transposed && !s.up.transposed && !s.down.transposed &&
           s.gate.file == s.up.file && s.up.file == s.down.file &&
           s.up.file_offset == s.gate.file_offset + m && s.down.file_offset == s.up.file_offset + m;
  }

  Status ReadSlice(const TensorSlice& s, char* dst) const {
    const uint64_t b = kernels::WeightTypeBytes(g_.type);
    if (!s.transposed) return s.file->file().ReadAt(s.file_offset, dst, s.rows * s.cols * b);
    // Stored [cols, stride]; logical [rows, cols] = columns [col_offset, col_offset + rows).
    thread_local std::vector<char> scratch;
    const uint64_t stored = s.cols * s.stored_row_stride * b;
    if (scratch.size() < stored) scratch.resize(stored);
    MOE_TRY(s.file->file().ReadAt(s.file_offset, scratch.data(), stored));
    for (uint64_t r = 0; r < s.rows; ++r) {
      for (uint64_t c = 0; c < s.cols; ++c) {
        std::memcpy(dst + (r * s.cols + c) * b,
                    scratch.data() + (c * s.stored_row_stride + s.stored_col_offset + r) * b, b);
      }
    }
    return Status::Ok();
  }

  std::vector<std::vector<ExpertSlices>> table_;
  ExpertGeometry g_;
  int64_t n_experts_ = 0;
};

}  // namespace

std::unique_ptr<ExpertSource> MakeHfExpertSource(std::vector<std::vector<ExpertSlices>> table,
                                                 ExpertGeometry geometry) {
  return std::make_unique<HfExpertSource>(std::move(table), geometry);
}

}  // namespace moe
