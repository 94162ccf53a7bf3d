// SPDX-License-Identifier: Apache-2.0
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <map>
#include <set>
#include <vector>

#include "experts/expert_source.h"
#include "formats/safetensors.h"
#include "util/file.h"
#include "util/huge_buffer.h"

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

constexpr uint64_t kDirectAlign = 4096;

uint64_t AlignDown(uint64_t v) { return v / kDirectAlign * kDirectAlign; }
uint64_t AlignUp(uint64_t v) { return (v + kDirectAlign - 1) / kDirectAlign * kDirectAlign; }

// Reads [offset, offset + size) of an O_DIRECT descriptor as its 4 KiB-aligned cover
// [AlignDown(offset), AlignUp(offset + size)) into `dst` (4 KiB aligned, room for the cover).
Status ReadCover(int fd, const std::string& path, uint64_t offset, uint64_t size, char* dst) {
  const uint64_t a0 = AlignDown(offset);
  const uint64_t need = offset + size - a0;
  return PreadAtLeast(::pread, fd, a0, dst, AlignUp(need), need, path);
}

// ReadCover into this thread's aligned buffer (grown as needed, kept for the thread's life).
// Returns where the bytes start in it, valid until this thread's next read.
Result<const char*> ReadDirect(int fd, const std::string& path, uint64_t offset, uint64_t size) {
  thread_local HugeBuffer buf;
  thread_local uint64_t buf_bytes = 0;
  const uint64_t cover = AlignUp(offset + size - AlignDown(offset));
  if (buf_bytes < cover) {
    buf = AllocateHugeBuffer(cover, /*prefault=*/true);
    buf_bytes = buf ? cover : 0;
    if (!buf) {
      return Error(StatusCode::kResourceExhausted, "{}: no memory for a {}-byte read buffer",
                   path, cover);
    }
  }
  MOE_TRY(ReadCover(fd, path, offset, size, buf.get()));
  return static_cast<const char*>(buf.get() + (offset - AlignDown(offset)));
}

class HfExpertSource final : public ExpertSource {
 public:
  HfExpertSource(std::vector<std::vector<ExpertSlices>> table, ExpertGeometry g)
      : table_(std::move(table)), g_(g), cache_dst_bytes_(g.block_bytes()) {
    for (const auto& layer : table_) {
      if (!layer.empty()) n_experts_ = static_cast<int64_t>(layer.size());
    }
  }
  ~HfExpertSource() override {
    for (const auto& [file, fd] : direct_) ::close(fd);
  }

  // O_DIRECT descriptors of every shard holding experts (kAuto: where the file system allows).
  Status OpenDirect(IoMode io) {
    if (io == IoMode::kBuffered) return Status::Ok();
    for (const auto& layer : table_) {
      for (const ExpertSlices& e : layer) {
        for (const TensorSlice* t : {&e.gate, &e.up, &e.down}) {
          if (Direct(t->file) >= 0 || buffered_.count(t->file)) continue;
          const int fd = ::open(t->file->path().c_str(), O_RDONLY | O_CLOEXEC | O_DIRECT);
          if (fd >= 0) {
            direct_.emplace(t->file, fd);
          } else if (io == IoMode::kDirect) {
            return Error(StatusCode::kIoError, "{}: --io direct: cannot open with O_DIRECT: {}",
                         t->file->path(), std::strerror(errno));
          } else {
            buffered_.insert(t->file);
          }
        }
      }
    }
    cache_dst_bytes_ = g_.block_bytes();
    for (const auto& layer : table_) {
      for (const ExpertSlices& e : layer) {
        if (Direct(e.gate.file) < 0 || !Contiguous(e)) continue;
        const uint64_t start = SpanStart(e);
        const uint64_t cover = AlignUp(start + SpanBytes(e)) - AlignDown(start);
        cache_dst_bytes_ = std::max(cache_dst_bytes_, cover);
      }
    }
    return Status::Ok();
  }

  const ExpertGeometry& geometry() const override { return g_; }
  int64_t n_layers() const override { return static_cast<int64_t>(table_.size()); }
  bool has_experts(int64_t layer) const override {
    return layer >= 0 && layer < n_layers() && !table_[static_cast<size_t>(layer)].empty();
  }
  int64_t n_experts() const override { return n_experts_; }
  std::string format() const override {
    return direct_.empty()      ? "hf safetensors shards (no block checksums)"
           : buffered_.empty() ? "hf safetensors shards (O_DIRECT, no block checksums)"
                               : "hf safetensors shards (O_DIRECT where allowed, no block "
                                 "checksums)";
  }

  Status ReadRaw(int64_t layer, int64_t expert, void* dst) const override {
    const ExpertSlices& s = Slices(layer, expert);
    char* out = static_cast<char*>(dst);
    const uint64_t m = g_.matrix_bytes();
    Status st;
    if (const int fd = Direct(s.gate.file); fd >= 0 && Contiguous(s)) {
      st = ReadSpanDirect(fd, s, out);  // one read, whatever the three matrices' order
    } else if (Adjacent(s)) {
      st = s.gate.file->file().ReadAt(s.gate.file_offset, out, 3 * m);
    } else {
      st = ReadSlice(s.gate, out);
      if (st.ok()) st = ReadSlice(s.up, out + m);
      if (st.ok()) st = ReadSlice(s.down, out + 2 * m);
    }
    if (!st.ok()) return st.WithContext(fmt::format("layer {} expert {}", layer, expert));
    return Status::Ok();
  }

  // An expert whose span InPlace allows is read into the slot as its aligned cover, copied
  // nowhere: CacheView points into it (the file's matrix order, the span's offset in the cover).
  uint64_t cache_dst_bytes() const override { return cache_dst_bytes_; }
  Status ReadRawForCache(int64_t layer, int64_t expert, void* dst) const override {
    const ExpertSlices& s = Slices(layer, expert);
    if (!InPlace(s, dst)) return ReadRaw(layer, expert, dst);
    const Status st = ReadCover(Direct(s.gate.file), s.gate.file->path(), SpanStart(s),
                                SpanBytes(s), static_cast<char*>(dst));
    if (!st.ok()) return st.WithContext(fmt::format("layer {} expert {}", layer, expert));
    return Status::Ok();
  }
  ExpertView CacheView(int64_t layer, int64_t expert, const void* block) const override {
    const ExpertSlices& s = Slices(layer, expert);
    ExpertView v = MakeExpertView(g_, block);
    if (!InPlace(s, block)) return v;
    const char* span = static_cast<const char*>(block) - AlignDown(SpanStart(s));
    v.gate.data = span + s.gate.file_offset;
    v.up.data = span + s.up.file_offset;
    v.down.data = span + s.down.file_offset;
    return v;
  }

 private:
  const ExpertSlices& Slices(int64_t layer, int64_t expert) const {
    return table_[static_cast<size_t>(layer)][static_cast<size_t>(expert)];
  }
  uint64_t SpanStart(const ExpertSlices& s) const {
    return std::min({s.gate.file_offset, s.up.file_offset, s.down.file_offset});
  }
  uint64_t SpanBytes(const ExpertSlices& s) const {
    return SliceBytes(s.gate) + SliceBytes(s.up) + SliceBytes(s.down);
  }
  // Read with O_DIRECT as one span, into a 4 KiB-aligned slot (cache slots always are).
  bool InPlace(const ExpertSlices& s, const void* dst) const {
    return Direct(s.gate.file) >= 0 && Contiguous(s) &&
           reinterpret_cast<uintptr_t>(dst) % kDirectAlign == 0;
  }

  bool Adjacent(const ExpertSlices& s) const {
    const uint64_t m = g_.matrix_bytes();
    return !s.gate.transposed && !s.up.transposed && !s.down.transposed &&
           s.gate.file == s.up.file && s.up.file == s.down.file &&
           s.up.file_offset == s.gate.file_offset + m && s.down.file_offset == s.up.file_offset + m;
  }

  uint64_t SliceBytes(const TensorSlice& t) const {
    return t.rows * t.cols * kernels::WeightTypeBytes(g_.type);
  }

  // gate, up and down untransposed in one file and together one gapless span, in any order
  // (HF shards store an expert's tensors by name: down, gate, up).
  bool Contiguous(const ExpertSlices& s) const {
    std::array<const TensorSlice*, 3> t = {&s.gate, &s.up, &s.down};
    for (const TensorSlice* x : t) {
      if (x->transposed || x->file != s.gate.file) return false;
    }
    std::sort(t.begin(), t.end(), [](const TensorSlice* a, const TensorSlice* b) {
      return a->file_offset < b->file_offset;
    });
    return t[0]->file_offset + SliceBytes(*t[0]) == t[1]->file_offset &&
           t[1]->file_offset + SliceBytes(*t[1]) == t[2]->file_offset;
  }

  Status ReadSpanDirect(int fd, const ExpertSlices& s, char* out) const {
    const uint64_t lo = SpanStart(s);
    MOE_ASSIGN_OR_RETURN(const char* p, ReadDirect(fd, s.gate.file->path(), lo, SpanBytes(s)));
    const uint64_t m = g_.matrix_bytes();
    std::memcpy(out, p + (s.gate.file_offset - lo), SliceBytes(s.gate));
    std::memcpy(out + m, p + (s.up.file_offset - lo), SliceBytes(s.up));
    std::memcpy(out + 2 * m, p + (s.down.file_offset - lo), SliceBytes(s.down));
    return Status::Ok();
  }

  int Direct(const SafetensorsFile* f) const {
    const auto it = direct_.find(f);
    return it == direct_.end() ? -1 : it->second;
  }

  Status ReadBytes(const SafetensorsFile& f, uint64_t offset, char* dst, uint64_t size) const {
    const int fd = Direct(&f);
    if (fd < 0) return f.file().ReadAt(offset, dst, size);
    MOE_ASSIGN_OR_RETURN(const char* p, ReadDirect(fd, f.path(), offset, size));
    std::memcpy(dst, p, size);
    return Status::Ok();
  }

  Status ReadSlice(const TensorSlice& s, char* dst) const {
    const uint64_t b = kernels::WeightTypeBytes(g_.type);
    if (!s.transposed) return ReadBytes(*s.file, s.file_offset, dst, s.rows * s.cols * b);
    // Stored [cols, stride]; logical [rows, cols] = columns [col_offset, col_offset + rows).
    thread_local std::vector<char> scratch;
    const uint64_t stored = s.cols * s.stored_row_stride * b;
    if (scratch.size() < stored) scratch.resize(stored);
    MOE_TRY(ReadBytes(*s.file, s.file_offset, scratch.data(), stored));
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
  std::map<const SafetensorsFile*, int> direct_;  // shard → its O_DIRECT descriptor
  std::set<const SafetensorsFile*> buffered_;     // shards the file system kept from O_DIRECT
  uint64_t cache_dst_bytes_;                      // ≥ the largest in-place cover (OpenDirect)
};

}  // namespace

Result<std::unique_ptr<ExpertSource>> MakeHfExpertSource(
    std::vector<std::vector<ExpertSlices>> table, ExpertGeometry geometry, IoMode io) {
  auto src = std::make_unique<HfExpertSource>(std::move(table), geometry);
  MOE_TRY(src->OpenDirect(io));
  return std::unique_ptr<ExpertSource>(std::move(src));
}

}  // namespace moe
