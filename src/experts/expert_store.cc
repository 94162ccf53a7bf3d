// SPDX-License-Identifier: Apache-2.0
#include "experts/expert_store.h"

#include <fcntl.h>
#include <unistd.h>
#include <xxhash.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>
#include <vector>

#include "experts/store_check.h"
#include "experts/store_format.h"
#include "util/check.h"
#include "util/file.h"

namespace moe {
namespace {

namespace fs = std::filesystem;

kernels::WeightType ToWeightType(uint32_t d) {
  return d == 0   ? kernels::WeightType::kF32
         : d == 1 ? kernels::WeightType::kBF16
         : d == 2 ? kernels::WeightType::kF16
         : d == 3 ? kernels::WeightType::kQ8
                  : kernels::WeightType::kQ4;
}

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Fd& operator=(Fd&& o) noexcept {
    std::swap(fd_, o.fd_);
    return *this;
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

class StoreSource final : public ExpertSource {
 public:
  Status ReadRaw(int64_t layer, int64_t expert, void* dst) const override {
    const store::IndexEntry& e = Entry(layer, expert);
    const bool aligned = (reinterpret_cast<uintptr_t>(dst) % store::kAlign) == 0;
    Status st;
    if (direct_.get() >= 0 && aligned) {
      st = PreadFully(pread_, direct_.get(), e.offset, dst, h_.block_stride, path_);
    } else {
      st = PreadFully(pread_, buffered_.get(), e.offset, dst, e.size, path_);
    }
    if (!st.ok()) return st.WithContext(fmt::format("layer {} expert {}", layer, expert));
    return Status::Ok();
  }
  Status Verify(int64_t layer, int64_t expert, const void* block) const override {
    const size_t i = EntryIndex(layer, expert);
    if (verify_ == VerifyReads::kFirst && checked_[i].load(std::memory_order_relaxed)) {
      return Status::Ok();
    }
    hashed_.fetch_add(1, std::memory_order_relaxed);
    const store::IndexEntry& e = index_[i];
    const uint64_t got = store::HashBlock(static_cast<store::BlockHash>(h_.block_hash), block,
                                          e.size, store::BlockSeed(h_.model_id, e.layer, e.expert));
    if (got != e.hash) {
      return Error(StatusCode::kIntegrity,
                   "{}: layer {} expert {}: checksum mismatch at offset {} (stored {:016x}, "
                   "computed {:016x}): corrupt or swapped block; re-run moestream convert",
                   path_, layer, expert, e.offset, e.hash, got);
    }
    // Two threads may both hash a block's first reads (harmless): the flag only ever skips work.
    checked_[i].store(1, std::memory_order_relaxed);
    return Status::Ok();
  }
  uint64_t blocks_hashed() const override { return hashed_.load(std::memory_order_relaxed); }
  size_t EntryIndex(int64_t layer, int64_t expert) const {
    return entry_of_[static_cast<size_t>(layer * n_experts_ + expert)];
  }
  const store::IndexEntry& Entry(int64_t layer, int64_t expert) const {
    return index_[EntryIndex(layer, expert)];
  }
  const ExpertGeometry& geometry() const override { return g_; }
  int64_t n_layers() const override { return n_layers_; }
  bool has_experts(int64_t l) const override {
    return l >= 0 && l < n_layers_ && has_[static_cast<size_t>(l)];
  }
  int64_t n_experts() const override { return n_experts_; }
  uint64_t dst_bytes() const override { return h_.block_stride; }
  std::string format() const override {
    return fmt::format("store v{} ({} block checksums{})", h_.version,
                       store::BlockHashName(static_cast<store::BlockHash>(h_.block_hash)),
                       g_.tiled ? ", tiled blocks" : "");
  }

  store::Header h_{};
  ExpertGeometry g_;
  int64_t n_layers_ = 0, n_experts_ = 0;
  std::vector<uint8_t> has_;
  std::vector<store::IndexEntry> index_;
  std::vector<size_t> entry_of_;  // [layer × n_experts + expert] → index_ position
  Fd direct_, buffered_;
  PreadFn pread_ = ::pread;
  std::string path_;
  VerifyReads verify_ = VerifyReads::kEvery;
  std::unique_ptr<std::atomic<uint8_t>[]> checked_;  // [index_ position]: hash matched once
  mutable std::atomic<uint64_t> hashed_{0};
};

}  // namespace

Result<VerifyReads> ParseVerifyReads(const std::string& s) {
  if (s == "first") return VerifyReads::kFirst;
  if (s == "every") return VerifyReads::kEvery;
  return Error(StatusCode::kUsage, "--verify-reads '{}': expected first or every", s);
}

Result<IoMode> ParseIoMode(const std::string& s) {
  if (s == "auto") return IoMode::kAuto;
  if (s == "direct") return IoMode::kDirect;
  if (s == "buffered") return IoMode::kBuffered;
  return Error(StatusCode::kUsage, "--io '{}': expected direct, buffered or auto", s);
}

bool IsExpertStore(const std::string& dir) {
  std::error_code ec;
  return fs::exists(fs::path(dir) / store::kMarkerFile, ec) ||
         fs::exists(fs::path(dir) / store::kExpertsFile, ec);
}

Result<std::unique_ptr<ExpertSource>> OpenExpertStore(const std::string& dir,
                                                      const ExpertGeometry& expect,
                                                      int64_t n_layers, int64_t n_experts,
                                                      const StoreOpenOptions& opts) {
  std::error_code ec;
  if (!fs::exists(fs::path(dir) / store::kMarkerFile, ec)) {
    return Error(StatusCode::kIntegrity, "{}: no {}: incomplete store (conversion interrupted?); "
                 "re-run moestream convert", dir, store::kMarkerFile);
  }
  auto s = std::make_unique<StoreSource>();
  s->path_ = (fs::path(dir) / store::kExpertsFile).string();
  const std::string& path = s->path_;
  if (opts.pread_fn) s->pread_ = opts.pread_fn;
  s->verify_ = opts.verify;
  s->buffered_ = Fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (s->buffered_.get() < 0) {
    const int err = errno;
    if (err == EMFILE || err == ENFILE) {
      return Error(StatusCode::kResourceExhausted, "{}: cannot open: {} (raise ulimit -n)", path,
                   std::strerror(err));
    }
    return Error(StatusCode::kIoError, "{}: cannot open: {}", path, std::strerror(err));
  }
  const off_t size_or = ::lseek(s->buffered_.get(), 0, SEEK_END);
  const uint64_t size = size_or < 0 ? 0 : static_cast<uint64_t>(size_or);
  store::Header& h = s->h_;
  if (size < sizeof(h) + sizeof(store::Footer)) {
    return Error(StatusCode::kInvalidFormat, "{}: truncated: too small for a store", path);
  }
  MOE_TRY(PreadFully(s->pread_, s->buffered_.get(), 0, &h, sizeof(h), path));
  store::Footer f;
  MOE_TRY(PreadFully(s->pread_, s->buffered_.get(), size - sizeof(f), &f, sizeof(f), path));
  MOE_TRY(CheckStoreHeader(path, h, f, size, expect, n_layers, n_experts));
  // F2: experts.bin belongs to the config.json beside it (model_id is the hash of the source
  // config.json, which convert copies verbatim), so a store of another model with the same
  // geometry, or an experts.bin copied between stores, is refused.
  const std::string config_path = (fs::path(dir) / "config.json").string();
  MOE_ASSIGN_OR_RETURN(std::string config, ReadFileToString(config_path, 1 << 24));
  const uint64_t config_id = XXH64(config.data(), config.size(), 0);
  if (config_id != h.model_id) {
    return Error(StatusCode::kInvalidFormat,
                 "{}: converted from a different model: header model_id {:016x}, but {} hashes to "
                 "{:016x} (experts.bin and config.json do not belong together; re-run moestream "
                 "convert)",
                 path, h.model_id, config_path, config_id);
  }
  s->g_.hidden = h.hidden;
  s->g_.intermediate = h.intermediate;
  s->g_.type = ToWeightType(h.dtype);
  s->g_.tiled = h.version >= 3 && h.layout == static_cast<uint32_t>(store::StoreLayout::kTiles);
  if (s->g_.tiled) {  // tiled f32/bf16/f16 need a SIMD vector dividing the chunk (kernels.h)
    const ExpertGeometry& g = s->g_;
    for (auto [rows, cols] : {std::pair{g.intermediate, g.hidden}, {g.hidden, g.intermediate}}) {
      if (kernels::HasTileShape(g.type, rows, cols) && !kernels::CanTile(g.type, rows, cols)) {
        return Error(StatusCode::kUnsupported,
                     "{}: tiled expert blocks cannot be read with SIMD target {}; re-convert with "
                     "--store-layout rows", path, kernels::TargetName());
      }
    }
  }
  s->index_.resize(h.n_blocks);
  s->checked_ = std::make_unique<std::atomic<uint8_t>[]>(h.n_blocks);  // value-initialised: 0
  MOE_TRY(PreadFully(s->pread_, s->buffered_.get(), h.index_offset, s->index_.data(),
                     h.index_bytes, path));
  MOE_ASSIGN_OR_RETURN(StoreIndexMap map,
                       CheckStoreIndex(path, h, f, s->index_, n_layers, n_experts));
  s->n_layers_ = n_layers;
  s->n_experts_ = n_experts;
  s->has_ = std::move(map.has);
  s->entry_of_ = std::move(map.entry_of);
  if (opts.io != IoMode::kBuffered) {
    s->direct_ = Fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECT));
    if (s->direct_.get() < 0 && opts.io == IoMode::kDirect) {
      return Error(StatusCode::kIoError, "{}: --io direct: cannot open with O_DIRECT: {}", path,
                   std::strerror(errno));
    }
  }
  return std::unique_ptr<ExpertSource>(std::move(s));
}

Result<uint64_t> VerifyExpertStore(const ExpertSource& src) {
  void* buf = std::aligned_alloc(store::kAlign,
                                 (src.dst_bytes() + store::kAlign - 1) / store::kAlign * store::kAlign);
  if (!buf) return Error(StatusCode::kResourceExhausted, "verify: cannot allocate a block buffer");
  uint64_t n = 0;
  Status st;
  for (int64_t l = 0; l < src.n_layers() && st.ok(); ++l) {
    if (!src.has_experts(l)) continue;
    for (int64_t e = 0; e < src.n_experts() && st.ok(); ++e, ++n) st = src.Read(l, e, buf);
  }
  std::free(buf);
  if (!st.ok()) return st;
  return n;
}

}  // namespace moe
