// SPDX-License-Identifier: Apache-2.0
#include "experts/store_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>

#include "experts/store_format.h"
#include "util/checked_math.h"
#include "util/file.h"
#include "util/progress.h"

namespace moe {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct JournalRecord {
  uint64_t block;
  uint64_t xxh64;
};

Status IoErr(const std::string& path, const char* what) {
  return Error(StatusCode::kIoError, "{}: {}: {}", path, what, std::strerror(errno));
}

class OutFile {
 public:
  ~OutFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  Status Open(const std::string& path, int flags) {
    path_ = path;
    fd_ = ::open(path.c_str(), flags | O_CLOEXEC, 0644);
    return fd_ < 0 ? IoErr(path, "cannot open for writing") : Status::Ok();
  }
  Status WriteAt(uint64_t off, const void* p, size_t n) {
    const char* c = static_cast<const char*>(p);
    while (n > 0) {
      const ssize_t w = ::pwrite(fd_, c, n, static_cast<off_t>(off));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) {
        return errno == ENOSPC ? Error(StatusCode::kResourceExhausted, "{}: disk full", path_)
                               : IoErr(path_, "write failed");
      }
      c += w;
      off += static_cast<uint64_t>(w);
      n -= static_cast<size_t>(w);
    }
    return Status::Ok();
  }
  Status Sync() { return ::fsync(fd_) == 0 ? Status::Ok() : IoErr(path_, "fsync failed"); }
  Status Truncate(uint64_t n) {
    return ::ftruncate(fd_, static_cast<off_t>(n)) == 0 ? Status::Ok() : IoErr(path_, "ftruncate");
  }
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
  std::string path_;
};

Status SyncDir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return IoErr(dir, "cannot open directory");
  const int r = ::fsync(fd);
  ::close(fd);
  return r == 0 ? Status::Ok() : IoErr(dir, "fsync of directory failed");
}

// Identity of the source: names, sizes and mtimes of its files (changes → no resume).
uint64_t SourceFingerprint(const std::string& dir, const std::vector<std::string>& dense,
                           const char* out_type) {
  std::vector<std::string> rows;
  std::error_code ec;
  for (const auto& ent : fs::directory_iterator(dir, ec)) {
    struct stat st;
    if (::stat(ent.path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    rows.push_back(fmt::format("{}|{}|{}.{}", ent.path().filename().string(), st.st_size,
                               st.st_mtim.tv_sec, st.st_mtim.tv_nsec));
  }
  std::sort(rows.begin(), rows.end());
  std::string all = fmt::format("v{}\n", store::kVersion);
  for (const auto& r : rows) all += r + "\n";
  for (const auto& d : dense) all += d + "\n";
  all += std::string("type ") + out_type + "\n";
  return XXH64(all.data(), all.size(), 0);
}

const char* SafetensorsDType(DType d) {
  return d == DType::kBF16 ? "BF16" : d == DType::kF16 ? "F16" : "F32";
}

// model.safetensors with the dense tensors, copied in 4 MiB chunks, names sorted.
Status WriteDense(const StoreWriterInput& in, const std::string& path) {
  std::vector<std::string> names = in.dense_tensors;
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  nlohmann::ordered_json header;
  header["__metadata__"] = {{"format", "pt"}, {"written_by", "moestream convert"}};
  uint64_t off = 0;
  std::vector<const TensorRef*> refs;
  for (const std::string& n : names) {
    const TensorRef* r = in.checkpoint->Find(n);
    if (!r) return Error(StatusCode::kInvalidFormat, "{}: tensor '{}' missing", in.source_dir, n);
    refs.push_back(r);
    header[n] = {{"dtype", SafetensorsDType(r->info->dtype)},
                 {"shape", r->info->shape},
                 {"data_offsets", {off, off + r->info->n_bytes}}};
    off += r->info->n_bytes;
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');
  OutFile f;
  MOE_TRY(f.Open(path, O_WRONLY | O_CREAT | O_TRUNC));
  const uint64_t hl = h.size();
  MOE_TRY(f.WriteAt(0, &hl, 8));
  MOE_TRY(f.WriteAt(8, h.data(), h.size()));
  std::vector<char> buf(4 << 20);
  uint64_t pos = 8 + h.size();
  for (const TensorRef* r : refs) {
    for (uint64_t done = 0; done < r->info->n_bytes;) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), r->info->n_bytes - done));
      MOE_TRY(r->shard->file().ReadAt(r->info->file_offset + done, buf.data(), n));
      MOE_TRY(f.WriteAt(pos, buf.data(), n));
      pos += n;
      done += n;
    }
  }
  return f.Sync();
}

// gate|up|down of `g` at src → the same matrices block-quantized to `type` at dst.
void QuantizeBlock(const ExpertGeometry& g, const char* src, kernels::WeightType type, float* row,
                   char* dst) {
  const ExpertView v = MakeExpertView(g, src);
  for (const kernels::WeightView* m : {&v.gate, &v.up, &v.down}) {
    const uint64_t in_row = kernels::WeightMatrixBytes(m->type, 1, m->cols);
    const uint64_t out_row = kernels::WeightMatrixBytes(type, 1, m->cols);
    for (size_t r = 0; r < m->rows; ++r) {
      kernels::ToFloat(static_cast<const char*>(m->data) + r * in_row, m->type, m->cols, row);
      kernels::QuantizeRow(row, m->cols, type, dst);
      dst += out_row;
    }
  }
}

Status CopyFile(const std::string& from, const std::string& to) {
  std::error_code ec;
  fs::copy_file(from, to, fs::copy_options::overwrite_existing, ec);
  if (ec) return Error(StatusCode::kIoError, "{}: copy to {} failed: {}", from, to, ec.message());
  OutFile f;
  MOE_TRY(f.Open(to, O_RDONLY));
  return f.Sync();
}

}  // namespace

Result<StoreWriterResult> WriteExpertStore(const StoreWriterInput& in) {
  const auto t0 = Clock::now();
  StoreWriterResult res;
  const ExpertSource& src = *in.experts;
  std::error_code ec;
  if (fs::exists(in.out_dir, ec)) {
    return Error(StatusCode::kUsage, "--out {}: already exists (remove it or pick another)",
                 in.out_dir);
  }
  const std::string part = in.out_dir + ".partial";
  const std::string bin = part + "/" + store::kExpertsFile, journal = part + "/journal.bin";
  MOE_ASSIGN_OR_RETURN(std::string config, ReadFileToString(in.source_dir + "/config.json", 1 << 24));

  store::Header h{};
  std::memcpy(h.magic, store::kMagic, 8);
  h.version = store::kVersion;
  h.header_bytes = sizeof(store::Header);
  h.model_id = XXH64(config.data(), config.size(), 0);
  h.n_layers = static_cast<uint32_t>(src.n_layers());
  h.n_experts = static_cast<uint32_t>(src.n_experts());
  h.hidden = src.geometry().hidden;
  h.intermediate = src.geometry().intermediate;
  ExpertGeometry out_g = src.geometry();
  if (in.quant) {
    if (!kernels::IsQuantized(*in.quant)) {
      return Error(StatusCode::kUsage, "--quant: only q8 and q4 are supported");
    }
    out_g.type = *in.quant;
  }
  h.dtype = static_cast<uint32_t>(out_g.type);  // StoreDType codes match kernels::WeightType
  h.block_bytes = out_g.block_bytes();
  h.block_stride = RoundUp(h.block_bytes, store::kAlign);
  h.blocks_offset = store::kBlocksOffset;
  std::vector<store::IndexEntry> index;
  for (int64_t l = 0; l < src.n_layers(); ++l) {
    if (!src.has_experts(l)) continue;
    for (int64_t e = 0; e < src.n_experts(); ++e) {
      store::IndexEntry x{};
      x.layer = static_cast<uint32_t>(l);
      x.expert = static_cast<uint32_t>(e);
      x.offset = h.blocks_offset + index.size() * h.block_stride;
      x.size = h.block_bytes;
      x.dtype = h.dtype;
      index.push_back(x);
    }
  }
  h.n_blocks = index.size();
  h.index_offset = h.blocks_offset + h.n_blocks * h.block_stride;
  h.index_bytes = h.n_blocks * sizeof(store::IndexEntry);
  const uint64_t file_bytes = h.index_offset + h.index_bytes + sizeof(store::Footer);

  // Resume from the journal when the source is unchanged; otherwise start clean.
  const uint64_t fp =
      SourceFingerprint(in.source_dir, in.dense_tensors, kernels::WeightTypeName(out_g.type));
  std::vector<uint8_t> done(index.size(), 0);
  if (fs::exists(part, ec)) {
    std::string j;
    auto jr = ReadFileToString(journal, 1ull << 32);
    if (jr.ok()) j = std::move(jr).value();
    uint64_t jfp = 0;
    if (j.size() >= 8) std::memcpy(&jfp, j.data(), 8);
    if (j.size() < 8 || jfp != fp) {
      fs::remove_all(part, ec);
      res.restarted = true;
    } else {
      for (size_t p = 8; p + sizeof(JournalRecord) <= j.size(); p += sizeof(JournalRecord)) {
        JournalRecord r;
        std::memcpy(&r, j.data() + p, sizeof(r));
        if (r.block < index.size() && !done[r.block]) {
          done[r.block] = 1;
          index[r.block].xxh64 = r.xxh64;
          ++res.blocks_resumed;
        }
      }
    }
  }
  fs::create_directories(part, ec);
  if (ec) return Error(StatusCode::kIoError, "{}: cannot create: {}", part, ec.message());
  OutFile out, jf;
  MOE_TRY(out.Open(bin, O_WRONLY | O_CREAT));
  MOE_TRY(out.Truncate(file_bytes));
  MOE_TRY(jf.Open(journal, O_WRONLY | O_CREAT | O_APPEND));
  struct stat jst;
  if (::fstat(jf.fd(), &jst) == 0 && jst.st_size == 0) {
    MOE_TRY(jf.WriteAt(0, &fp, 8));
    MOE_TRY(jf.Sync());
  }
  // Blocks: read, checksum, write; every ~64 MiB sync the data, then journal those blocks.
  std::unique_ptr<char, void (*)(void*)> buf(
      static_cast<char*>(std::aligned_alloc(store::kAlign, h.block_stride)), std::free);
  if (!buf) return Error(StatusCode::kResourceExhausted, "cannot allocate a block buffer");
  // Quantizing: the source block is read here, then each row is converted into buf.
  std::vector<char> src_block(in.quant ? src.dst_bytes() : 0);
  std::vector<float> row(in.quant ? std::max(out_g.hidden, out_g.intermediate) : 0);
  std::vector<JournalRecord> pending;
  auto flush = [&]() -> Status {
    if (pending.empty()) return Status::Ok();
    MOE_TRY(out.Sync());
    MOE_TRY(jf.WriteAt(0, pending.data(), pending.size() * sizeof(JournalRecord)));
    MOE_TRY(jf.Sync());
    pending.clear();
    return Status::Ok();
  };
  const uint64_t total = h.n_blocks * h.block_bytes;
  ProgressMeter progress(in.progress, "convert", total);
  for (size_t i = 0; i < index.size(); ++i) {
    if (done[i]) continue;
    store::IndexEntry& x = index[i];
    std::memset(buf.get(), 0, h.block_stride);
    if (in.quant) {
      MOE_TRY(src.Read(x.layer, x.expert, src_block.data()));
      QuantizeBlock(src.geometry(), src_block.data(), out_g.type, row.data(), buf.get());
    } else {
      MOE_TRY(src.Read(x.layer, x.expert, buf.get()));
    }
    x.xxh64 = XXH64(buf.get(), h.block_bytes, store::BlockSeed(h.model_id, x.layer, x.expert));
    MOE_TRY(out.WriteAt(x.offset, buf.get(), h.block_stride));
    pending.push_back({i, x.xxh64});
    ++res.blocks_written;
    res.bytes_written += h.block_stride;
    if (in.slow_us_per_block) std::this_thread::sleep_for(std::chrono::microseconds(in.slow_us_per_block));
    if (pending.size() * h.block_stride >= (64u << 20) || in.slow_us_per_block) MOE_TRY(flush());
    progress.Update((res.blocks_resumed + res.blocks_written) * h.block_bytes);
  }
  MOE_TRY(flush());
  // Header, index, footer.
  MOE_TRY(out.WriteAt(0, &h, sizeof(h)));
  MOE_TRY(out.WriteAt(h.index_offset, index.data(), h.index_bytes));
  store::Footer f{};
  std::memcpy(f.magic, store::kFooterMagic, 8);
  f.index_offset = h.index_offset;
  f.index_xxh64 = XXH64(index.data(), h.index_bytes, h.model_id);
  f.file_bytes = file_bytes;
  MOE_TRY(out.WriteAt(h.index_offset + h.index_bytes, &f, sizeof(f)));
  MOE_TRY(out.Sync());
  progress.Finish();
  // Dense tensors and the small files the engine and tokenizer read.
  MOE_TRY(WriteDense(in, part + "/" + store::kDenseFile));
  for (const auto& ent : fs::directory_iterator(in.source_dir, ec)) {
    const std::string name = ent.path().filename().string();
    const bool wanted = name == "config.json" || name == "generation_config.json" ||
                        name.rfind("tokenizer", 0) == 0 || name == "special_tokens_map.json" ||
                        name == "vocab.json" || name == "merges.txt" || name == "chat_template.jinja";
    if (wanted && ent.is_regular_file()) MOE_TRY(CopyFile(ent.path().string(), part + "/" + name));
  }
  const std::string marker = fmt::format(
      "{{\"format\":\"moestream-expert-store\",\"version\":{},\"experts\":\"{}\",\"dense\":\"{}\","
      "\"model_id\":\"{:016x}\",\"n_blocks\":{}}}\n",
      store::kVersion, store::kExpertsFile, store::kDenseFile, h.model_id, h.n_blocks);
  {
    OutFile m;
    MOE_TRY(m.Open(part + "/" + store::kMarkerFile, O_WRONLY | O_CREAT | O_TRUNC));
    MOE_TRY(m.WriteAt(0, marker.data(), marker.size()));
    MOE_TRY(m.Sync());
  }
  fs::remove(journal, ec);
  MOE_TRY(SyncDir(part));
  if (::rename(part.c_str(), in.out_dir.c_str()) != 0) return IoErr(in.out_dir, "rename failed");
  const fs::path parent = fs::absolute(in.out_dir).parent_path();
  MOE_TRY(SyncDir(parent.string()));
  res.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return res;
}

}  // namespace moe
