// SPDX-License-Identifier: Apache-2.0
#include "experts/store_writer.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
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

// One journal entry per block whose data is durable. `check` = XXH64 of the first 16 bytes seeded
// with the source fingerprint, so a torn or zeroed record (power loss) is never taken for a block.
struct JournalRecord {
  uint64_t block;
  uint64_t hash;  // the block's store hash (IndexEntry::hash)
  uint64_t check;
};
constexpr char kJournalFile[] = "journal.bin";
constexpr char kLockFile[] = "lock";

uint64_t RecordCheck(const JournalRecord& r, uint64_t fp) { return XXH64(&r, 16, fp); }

Status IoErr(const std::string& path, const char* what) {
  return Error(StatusCode::kIoError, "{}: {}: {}", path, what, std::strerror(errno));
}

// An flock on the OUT.partial directory itself (a dead holder's lock goes away with it), plus a
// `lock` file inside naming the holder's pid for the message a second writer gets.
class DirLock {
 public:
  DirLock() = default;
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;
  ~DirLock() {
    if (fd_ >= 0) ::close(fd_);
  }
  Status Acquire(const std::string& dir) {
    std::error_code ec;  // parents as before (`--out new/dir/store`); mkdir reports failures
    if (fs::path(dir).has_parent_path()) fs::create_directories(fs::path(dir).parent_path(), ec);
    for (int attempt = 0; attempt < 8; ++attempt) {
      if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return IoErr(dir, "cannot create");
      fd_ = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (fd_ < 0) return IoErr(dir, "cannot open directory");
      if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK) return IoErr(dir, "flock failed");
        auto pid = ReadFileToString(dir + "/" + kLockFile, 64);
        std::string who = pid.ok() ? *pid : std::string("?");
        while (!who.empty() && (who.back() == '\n' || who.back() == ' ')) who.pop_back();
        return Error(StatusCode::kUsage,
                     "{}: locked by pid {} (another convert is writing this store)", dir, who);
      }
      // The directory may have been renamed away (a finishing writer) between open and flock.
      struct stat held, now;
      if (::fstat(fd_, &held) == 0 && ::stat(dir.c_str(), &now) == 0 &&
          held.st_ino == now.st_ino && held.st_dev == now.st_dev) {
        const std::string pid = std::to_string(::getpid()) + "\n";
        MOE_ASSIGN_OR_RETURN(File f, File::OpenWrite(dir + "/" + kLockFile, O_CREAT | O_TRUNC));
        return f.WriteAt(0, pid.data(), pid.size());
      }
      ::close(fd_);
      fd_ = -1;
    }
    return Error(StatusCode::kIoError, "{}: could not lock (kept being replaced)", dir);
  }

 private:
  int fd_ = -1;
};

// Removes everything in `dir` but the lock file (a stale partial output being restarted).
Status ClearDir(const std::string& dir) {
  std::error_code ec;
  for (const auto& ent : fs::directory_iterator(dir, ec)) {
    if (ent.path().filename() == kLockFile) continue;
    fs::remove_all(ent.path(), ec);
    if (ec) {
      return Error(StatusCode::kIoError, "{}: cannot remove: {}", ent.path().string(),
                   ec.message());
    }
  }
  return ec ? Error(StatusCode::kIoError, "{}: cannot list: {}", dir, ec.message()) : Status::Ok();
}

// ENOSPC before the heavy work: free space of the output file system against what is left.
Status CheckFreeSpace(const std::string& path, uint64_t need) {
  struct statvfs vfs;
  if (::statvfs(path.c_str(), &vfs) != 0 || vfs.f_blocks == 0) return Status::Ok();  // unknown
  const uint64_t free = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
  if (free >= need) return Status::Ok();
  return Error(StatusCode::kResourceExhausted, "no space left writing {} (need {}, free {})", path,
               need, free);
}

Status SyncDir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return IoErr(dir, "cannot open directory");
  const int r = ::fsync(fd);
  ::close(fd);
  return r == 0 ? Status::Ok() : IoErr(dir, "fsync of directory failed");
}

// Identity of the source: names, sizes and mtimes of its files (changes → no resume), and of
// what is written from it (store version, expert type).
uint64_t SourceFingerprint(const std::string& dir, const std::vector<std::string>& dense,
                           uint32_t version, const std::string& out_type) {
  std::vector<std::string> rows;
  std::error_code ec;
  for (const auto& ent : fs::directory_iterator(dir, ec)) {
    struct stat st;
    if (::stat(ent.path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    rows.push_back(fmt::format("{}|{}|{}.{}", ent.path().filename().string(), st.st_size,
                               st.st_mtim.tv_sec, st.st_mtim.tv_nsec));
  }
  std::sort(rows.begin(), rows.end());
  std::string all = fmt::format("v{} journal 2\n", version);
  for (const auto& r : rows) all += r + "\n";
  for (const auto& d : dense) all += d + "\n";
  all += "type " + out_type + "\n";
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
  MOE_ASSIGN_OR_RETURN(File f, File::OpenWrite(path, O_CREAT | O_TRUNC));
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

// gate|up|down of `g` at src → the same matrices block-quantized to `type` at dst, rows in
// chunks over `pool` (each row is converted alone, so the bytes do not depend on the split).
// `rows` holds one row of floats per pool thread.
void QuantizeBlock(const ExpertGeometry& g, const char* src, kernels::WeightType type,
                   ThreadPool* pool, std::vector<float>& rows, char* dst) {
  const ExpertView v = MakeExpertView(g, src);
  const size_t row_floats = rows.size() / (pool ? pool->n_threads() : 1);
  for (const kernels::WeightView* m : {&v.gate, &v.up, &v.down}) {
    const uint64_t in_row = kernels::WeightMatrixBytes(m->type, 1, m->cols);
    const uint64_t out_row = kernels::WeightMatrixBytes(type, 1, m->cols);
    constexpr size_t kRowsPerTask = 64;
    auto task = [&](size_t t, size_t worker) {
      const size_t r0 = t * kRowsPerTask;
      kernels::QuantizeRows(static_cast<const char*>(m->data) + r0 * in_row, m->type,
                            std::min(m->rows - r0, kRowsPerTask), m->cols, type,
                            dst + r0 * out_row, &rows[worker * row_floats]);
    };
    const size_t n_tasks = (m->rows + kRowsPerTask - 1) / kRowsPerTask;
    if (pool) {
      pool->ParallelFor(n_tasks, task);
    } else {
      for (size_t t = 0; t < n_tasks; ++t) task(t, 0);
    }
    dst += m->rows * out_row;
  }
}

Status CopyFile(const std::string& from, const std::string& to) {
  std::error_code ec;
  fs::copy_file(from, to, fs::copy_options::overwrite_existing, ec);
  if (ec) return Error(StatusCode::kIoError, "{}: copy to {} failed: {}", from, to, ec.message());
  MOE_ASSIGN_OR_RETURN(File f, File::OpenRead(to));
  return f.Sync();
}

// Moves the finished OUT.partial to OUT: a rename, or with an existing store (--force) an atomic
// exchange (RENAME_EXCHANGE) after which the old store, now at OUT.partial, is removed.
Status Publish(const std::string& part, const std::string& out, bool replace) {
  const std::string parent = fs::absolute(out).parent_path().string();
  if (!replace) {
    if (::rename(part.c_str(), out.c_str()) != 0) return IoErr(out, "rename failed");
    return SyncDir(parent);
  }
  if (::renameat2(AT_FDCWD, part.c_str(), AT_FDCWD, out.c_str(), RENAME_EXCHANGE) != 0) {
    return IoErr(out, "atomic replace (renameat2 RENAME_EXCHANGE) failed; old store untouched");
  }
  MOE_TRY(SyncDir(parent));
  std::error_code ec;
  fs::remove_all(part, ec);  // the old store; a leftover is discarded by the next convert
  return Status::Ok();
}

Status Interrupted(const std::string& part, int sig, uint64_t done, uint64_t total) {
  return Error(StatusCode::kCancelled,
               "{}: interrupted by signal {} after {} of {} blocks; journal flushed, re-run the "
               "same command to resume",
               part, sig, done, total);
}

}  // namespace

Result<StoreWriterResult> WriteExpertStore(const StoreWriterInput& in) {
  const auto t0 = Clock::now();
  StoreWriterResult res;
  const ExpertSource& src = *in.experts;
  if (in.store_version < store::kMinVersion || in.store_version > store::kVersion) {
    return Error(StatusCode::kUsage, "--store-version {}: expected {}..{}", in.store_version,
                 store::kMinVersion, store::kVersion);
  }
  const bool tiles = in.layout == store::StoreLayout::kTiles;
  if (tiles && in.store_version < 3) {
    return Error(StatusCode::kUsage, "--store-layout tiles: needs store version 3 or later, not {}",
                 in.store_version);
  }
  std::error_code ec;
  const bool replace = fs::exists(in.out_dir, ec);
  if (replace && !in.force) {
    return Error(StatusCode::kUsage,
                 "--out {}: already exists (remove it, pick another, or --force to replace a "
                 "complete store)",
                 in.out_dir);
  }
  if (replace && !fs::exists(fs::path(in.out_dir) / store::kMarkerFile, ec)) {
    return Error(StatusCode::kUsage, "--out {}: exists but is not a complete store; --force only "
                 "replaces stores", in.out_dir);
  }
  const std::string part = in.out_dir + ".partial";
  const std::string bin = part + "/" + store::kExpertsFile;
  const std::string journal = part + "/" + kJournalFile;
  // The lock creates OUT.partial: a read-only or missing parent fails here, before any heavy work.
  DirLock lock;
  MOE_TRY(lock.Acquire(part));
  auto cancelled = [&]() { return in.cancel_signal ? in.cancel_signal->load() : 0; };
  MOE_ASSIGN_OR_RETURN(std::string config,
                       ReadFileToString(in.source_dir + "/config.json", 1 << 24));

  store::Header h{};
  std::memcpy(h.magic, store::kMagic, 8);
  h.version = in.store_version;
  h.block_hash = static_cast<uint32_t>(store::BlockHashOfVersion(h.version));
  h.header_bytes = h.version >= 3 ? sizeof(store::Header) : store::kHeaderBytesV2;
  h.layout = static_cast<uint32_t>(in.layout);
  h.model_id = XXH64(config.data(), config.size(), 0);
  h.n_layers = static_cast<uint32_t>(src.n_layers());
  h.n_experts = static_cast<uint32_t>(src.n_experts());
  h.hidden = src.geometry().hidden;
  h.intermediate = src.geometry().intermediate;
  ExpertGeometry out_g = src.geometry();
  out_g.tiled = false;  // the block as produced below, before any tiling
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

  // Resume from the journal when the source is unchanged; otherwise start clean. Records are
  // fixed-size and checksummed: the valid prefix is kept, a torn or zeroed tail is cut off.
  const uint64_t fp =
      SourceFingerprint(in.source_dir, in.dense_tensors, h.version,
                        fmt::format("{}{}", kernels::WeightTypeName(out_g.type),
                                    tiles ? " tiles" : ""));
  std::vector<uint8_t> done(index.size(), 0);
  uint64_t journal_bytes = 0;
  {
    std::string j;
    auto jr = ReadFileToString(journal, 1ull << 32);
    if (jr.ok()) j = std::move(jr).value();
    uint64_t jfp = 0;
    if (j.size() >= 8) std::memcpy(&jfp, j.data(), 8);
    if (j.size() < 8 || jfp != fp) {
      // Anything but the lock file is stale (changed source, or never journaled).
      res.restarted = fs::exists(bin, ec) || fs::exists(journal, ec);
      MOE_TRY(ClearDir(part));
    } else {
      journal_bytes = 8;
      for (size_t p = 8; p + sizeof(JournalRecord) <= j.size(); p += sizeof(JournalRecord)) {
        JournalRecord r;
        std::memcpy(&r, j.data() + p, sizeof(r));
        if (r.check != RecordCheck(r, fp) || r.block >= index.size()) break;
        journal_bytes = p + sizeof(JournalRecord);
        if (!done[r.block]) {
          done[r.block] = 1;
          index[r.block].hash = r.hash;
          ++res.blocks_resumed;
        }
      }
    }
  }
  uint64_t need = h.blocks_offset + h.index_bytes + sizeof(store::Footer);
  for (size_t i = 0; i < index.size(); ++i) need += done[i] ? 0 : h.block_stride;
  for (const std::string& n : in.dense_tensors) {
    if (const TensorRef* r = in.checkpoint->Find(n)) need += r->info->n_bytes;
  }
  MOE_TRY(CheckFreeSpace(part, need));
  MOE_ASSIGN_OR_RETURN(File out, File::OpenWrite(bin, O_CREAT));
  MOE_TRY(out.Truncate(file_bytes));
  MOE_ASSIGN_OR_RETURN(File jf, File::OpenWrite(journal, O_CREAT));
  if (journal_bytes == 0) {
    MOE_TRY(jf.Truncate(0));
    MOE_TRY(jf.WriteAt(0, &fp, 8));
    journal_bytes = 8;
  } else {
    MOE_TRY(jf.Truncate(journal_bytes));
  }
  MOE_TRY(jf.Sync());
  // Blocks: read, checksum, write; every ~64 MiB sync the data, then journal those blocks.
  std::unique_ptr<char, void (*)(void*)> buf(
      static_cast<char*>(std::aligned_alloc(store::kAlign, h.block_stride)), std::free);
  if (!buf) return Error(StatusCode::kResourceExhausted, "cannot allocate a block buffer");
  // Quantizing: the source block is read here, then each row is converted into buf.
  std::vector<char> src_block(in.quant ? src.dst_bytes() : 0);
  std::vector<float> rows(in.quant ? std::max(out_g.hidden, out_g.intermediate) *
                                         (in.pool ? in.pool->n_threads() : 1)
                                   : 0);
  std::vector<JournalRecord> pending;
  // Data first, then its journal records. A failed fsync returns at once and is never retried:
  // the blocks it covered are not journaled, so a resume rewrites them.
  auto flush = [&]() -> Status {
    if (pending.empty()) return Status::Ok();
    MOE_TRY(out.Sync());
    const size_t n = pending.size() * sizeof(JournalRecord);
    MOE_TRY(jf.WriteAt(journal_bytes, pending.data(), n));
    MOE_TRY(jf.Sync());
    journal_bytes += n;
    pending.clear();
    return Status::Ok();
  };
  const uint64_t total = h.n_blocks * h.block_bytes;
  ProgressMeter progress(in.progress, "convert", total);
  for (size_t i = 0; i < index.size(); ++i) {
    if (done[i]) continue;
    if (const int sig = cancelled()) {
      MOE_TRY(flush());
      return Interrupted(part, sig, res.blocks_resumed + res.blocks_written, h.n_blocks);
    }
    store::IndexEntry& x = index[i];
    std::memset(buf.get(), 0, h.block_stride);
    if (in.quant) {
      MOE_TRY(src.Read(x.layer, x.expert, src_block.data()));
      QuantizeBlock(src.geometry(), src_block.data(), out_g.type, in.pool, rows, buf.get());
    } else {
      MOE_TRY(src.Read(x.layer, x.expert, buf.get()));
    }
    if (tiles) {
      const ExpertView v = MakeExpertView(out_g, buf.get());  // out_g: row-major views
      for (const kernels::WeightView* m : {&v.gate, &v.up, &v.down}) {
        if (kernels::HasTileShape(m->type, m->rows, m->cols)) {
          kernels::TileMatrix(const_cast<void*>(m->data), m->type, m->rows, m->cols);
        }
      }
    }
    x.hash = store::HashBlock(static_cast<store::BlockHash>(h.block_hash), buf.get(),
                              h.block_bytes, store::BlockSeed(h.model_id, x.layer, x.expert));
    MOE_TRY(out.WriteAt(x.offset, buf.get(), h.block_stride));
    JournalRecord rec{i, x.hash, 0};
    rec.check = RecordCheck(rec, fp);
    pending.push_back(rec);
    ++res.blocks_written;
    res.bytes_written += h.block_stride;
    if (in.slow_us_per_block) std::this_thread::sleep_for(std::chrono::microseconds(in.slow_us_per_block));
    if (pending.size() * h.block_stride >= (64u << 20) || in.slow_us_per_block) MOE_TRY(flush());
    progress.Update((res.blocks_resumed + res.blocks_written) * h.block_bytes);
  }
  MOE_TRY(flush());
  if (const int sig = cancelled()) return Interrupted(part, sig, h.n_blocks, h.n_blocks);
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
      h.version, store::kExpertsFile, store::kDenseFile, h.model_id, h.n_blocks);
  {
    MOE_ASSIGN_OR_RETURN(File m, File::OpenWrite(part + "/" + store::kMarkerFile,
                                                 O_CREAT | O_TRUNC));
    MOE_TRY(m.WriteAt(0, marker.data(), marker.size()));
    MOE_TRY(m.Sync());
  }
  fs::remove(journal, ec);
  fs::remove(part + "/" + kLockFile, ec);  // the flock itself is held until we return
  MOE_TRY(SyncDir(part));
  MOE_TRY(Publish(part, in.out_dir, replace));
  res.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return res;
}

}  // namespace moe
