// SPDX-License-Identifier: Apache-2.0
// The MoE block gets its experts only through ExpertProvider: it never indexes a resident array.
// Two implementations: ResidentExperts (everything loaded up front: the reference, "all-resident"
// mode) and the byte-budget expert cache that streams from disk (expert_cache.h).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "experts/expert_source.h"
#include "util/huge_buffer.h"
#include "util/status.h"

namespace moe {

// One per Session (holds the pins of the current layer). Not thread-safe; the storage behind it
// is shared between sessions.
class ExpertProvider {
 public:
  virtual ~ExpertProvider() = default;
  // Starts making experts[0..n) of `layer` available and pins them until End(). Issues all the
  // misses at once and returns without waiting for I/O. `experts` must stay valid until End().
  virtual Status Begin(int64_t layer, std::span<const int32_t> experts) = 0;
  // Blocks until experts[i] of the last Begin is ready; the view stays valid until End(), or, for
  // a cache with fewer slots than the layer's active experts, until the next Wait (callers use
  // the views one at a time, in order i = 0, 1, …). A failed read comes back as its Status.
  virtual Result<ExpertView> Wait(size_t i) = 0;
  // True when Wait(i) would return at once and keep every view handed out since Begin valid:
  // then a caller may hold the views of experts i..j together (the MoE block batches them into
  // one parallel product). Never blocks.
  virtual bool Ready(size_t i) = 0;
  // Unpins everything of the last Begin.
  virtual void End() = 0;
  // Experts of `layer` that are likely to be needed soon. Never blocks; never evicts a pinned
  // expert. Default: ignored.
  virtual void Hint(int64_t layer, std::span<const int32_t> experts) {
    (void)layer;
    (void)experts;
  }
};

// Every expert of a source read into one arena at load time. Immutable after Load; thread-safe.
class ResidentExperts {
 public:
  // `tile`: rewrite each row-major block's three matrices into the tiled layout (kernels.h)
  // where kernels::TilingPays (a store's tiled blocks stay tiled); geometry().tiled and view()
  // then say so. MatMul results are the same either way.
  static Result<std::unique_ptr<ResidentExperts>> Load(const ExpertSource& source,
                                                       bool tile = false);
  ~ResidentExperts();
  const void* block(int64_t layer, int64_t expert) const;
  // The block of (layer, expert) as gate, up and down views, tiled or row-major.
  ExpertView view(int64_t layer, int64_t expert) const;
  const ExpertGeometry& geometry() const { return geometry_; }
  uint64_t bytes() const { return bytes_; }

 private:
  ResidentExperts() = default;
  ExpertGeometry geometry_;
  int64_t n_experts_ = 0;
  std::vector<int64_t> layer_slot_;  // first slot of each layer, -1 for dense layers
  HugeBuffer arena_;
  uint64_t bytes_ = 0;
  uint64_t stride_ = 0;
};

std::unique_ptr<ExpertProvider> MakeResidentProvider(const ResidentExperts& experts);

}  // namespace moe
