// SPDX-License-Identifier: Apache-2.0
#include <algorithm>
#include <cstdlib>

#include "experts/expert_provider.h"
#include "util/checked_math.h"

namespace moe {

Result<std::unique_ptr<ResidentExperts>> ResidentExperts::Load(const ExpertSource& source,
                                                                bool tile) {
  std::unique_ptr<ResidentExperts> r(new ResidentExperts());
  r->geometry_ = source.geometry();
  r->n_experts_ = source.n_experts();
  int64_t slots = 0;
  for (int64_t l = 0; l < source.n_layers(); ++l) {
    r->layer_slot_.push_back(source.has_experts(l) ? slots : -1);
    if (source.has_experts(l)) slots += r->n_experts_;
  }
  r->stride_ = RoundUp(std::max(r->geometry_.block_bytes(), source.dst_bytes()), 64);
  const uint64_t block = r->stride_;
  r->bytes_ = block * static_cast<uint64_t>(slots);
  if (r->bytes_ == 0) return r;
  // Huge-page backed: decode streams 8 rows at a time through these weights, and with 4 KiB
  // pages the TLB misses cost more than the DRAM reads.
  r->arena_ = AllocateHugeBuffer(r->bytes_, /*prefault=*/false);
  if (!r->arena_) {
    return Error(StatusCode::kResourceExhausted, "cannot allocate {} bytes for resident experts",
                 r->bytes_);
  }
  // Blocks a store holds tiled stay as read; row-major ones are tiled here where it pays.
  const ExpertGeometry& g = r->geometry_;
  const bool tile_here = !g.tiled && tile && kernels::TilingPays(g.type, g.intermediate, g.hidden) &&
                         kernels::TilingPays(g.type, g.hidden, g.intermediate);
  for (int64_t l = 0; l < source.n_layers(); ++l) {
    if (!source.has_experts(l)) continue;
    for (int64_t e = 0; e < r->n_experts_; ++e) {
      MOE_TRY(source.Read(l, e, const_cast<void*>(r->block(l, e))));
      if (!tile_here) continue;
      const ExpertView v = MakeExpertView(g, r->block(l, e));
      for (const kernels::WeightView* m : {&v.gate, &v.up, &v.down}) {
        kernels::TileMatrix(const_cast<void*>(m->data), m->type, m->rows, m->cols);
      }
    }
  }
  r->geometry_.tiled = r->geometry_.tiled || tile_here;  // views made from here on say so
  return r;
}

ExpertView ResidentExperts::view(int64_t layer, int64_t expert) const {
  return MakeExpertView(geometry_, block(layer, expert));
}

ResidentExperts::~ResidentExperts() = default;

const void* ResidentExperts::block(int64_t layer, int64_t expert) const {
  const uint64_t slot = static_cast<uint64_t>(layer_slot_[static_cast<size_t>(layer)] + expert);
  return arena_.get() + slot * stride_;
}

namespace {

class ResidentProvider final : public ExpertProvider {
 public:
  explicit ResidentProvider(const ResidentExperts& experts) : experts_(experts) {}

  Status Begin(int64_t layer, std::span<const int32_t> experts) override {
    layer_ = layer;
    experts_list_ = experts;
    return Status::Ok();
  }
  Result<ExpertView> Wait(size_t i) override {
    return experts_.view(layer_, experts_list_[i]);
  }
  bool Ready(size_t) override { return true; }
  void End() override {}

 private:
  const ResidentExperts& experts_;
  int64_t layer_ = 0;
  std::span<const int32_t> experts_list_;
};

}  // namespace

std::unique_ptr<ExpertProvider> MakeResidentProvider(const ResidentExperts& experts) {
  return std::make_unique<ResidentProvider>(experts);
}

}  // namespace moe
