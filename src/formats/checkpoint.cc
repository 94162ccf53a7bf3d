// SPDX-License-Identifier: Apache-2.0
// Checkpoint: a model folder with model.safetensors, or model.safetensors.index.json + shards
// (spec §5.4, bad-inputs.md B1-B4).
#include <algorithm>
#include <filesystem>
#include <set>
#include <system_error>

#include "formats/json.h"
#include "formats/safetensors.h"

namespace moe {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kSingleFile = "model.safetensors";
constexpr std::string_view kIndexFile = "model.safetensors.index.json";
constexpr uint64_t kMaxIndexBytes = 256ull << 20;

bool IsUnder(const fs::path& p, const fs::path& root) {
  auto [root_end, p_it] = std::mismatch(root.begin(), root.end(), p.begin(), p.end());
  return root_end == root.end();
}

// Roots a file of the model folder may resolve into: the folder itself and, for a snapshot of
// the Hugging Face hub cache (<repo>/snapshots/<rev>/ whose files are symlinks to
// <repo>/blobs/<hash>), that repository's blobs folder.
std::vector<fs::path> AllowedRoots(const fs::path& canonical_dir) {
  std::vector<fs::path> roots = {canonical_dir};
  fs::path snapshots = canonical_dir.parent_path();
  fs::path repo = snapshots.parent_path();
  if (snapshots.filename() == "snapshots" && repo.filename().string().starts_with("models--")) {
    roots.push_back(repo / "blobs");
  }
  return roots;
}

// Resolves `name` (as written in the index) inside the model folder without opening anything.
// kInvalidFormat "path escapes model directory" for absolute names, ".." components and symlinks
// that resolve outside the allowed roots.
Result<std::string> ResolveInside(const std::string& dir, const std::string& name,
                                  std::string_view what) {
  fs::path rel(name);
  bool bad = name.empty() || rel.is_absolute() || rel.has_root_name() ||
             name.find('\0') != std::string::npos;
  for (const fs::path& part : rel) bad = bad || part == "..";
  if (bad) {
    return Error(StatusCode::kInvalidFormat, "{}: shard '{}': path escapes model directory", what,
                 name);
  }
  std::error_code ec;
  fs::path canonical_dir = fs::canonical(dir, ec);
  if (ec) return Error(StatusCode::kIoError, "{}: cannot resolve: {}", dir, ec.message());
  fs::path resolved = fs::weakly_canonical(canonical_dir / rel, ec);
  if (ec) return Error(StatusCode::kIoError, "{}: cannot resolve: {}", name, ec.message());
  for (const fs::path& root : AllowedRoots(canonical_dir)) {
    if (IsUnder(resolved, root)) return (fs::path(dir) / rel).string();
  }
  return Error(StatusCode::kInvalidFormat,
               "{}: shard '{}': path escapes model directory (resolves to {})", what, name,
               resolved.string());
}

Result<std::unique_ptr<SafetensorsFile>> OpenShard(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    return Error(StatusCode::kIoError, "{}: shard not found", path);
  }
  MOE_ASSIGN_OR_RETURN(SafetensorsFile f, SafetensorsFile::Open(path));
  return std::make_unique<SafetensorsFile>(std::move(f));
}

}  // namespace

Result<Checkpoint> Checkpoint::Open(const std::string& model_dir) {
  Checkpoint c;
  c.dir_ = model_dir;
  std::error_code ec;
  if (!fs::is_directory(model_dir, ec)) {
    return Error(StatusCode::kIoError, "{}: not a directory", model_dir);
  }
  const std::string index_path = (fs::path(model_dir) / kIndexFile).string();
  if (!fs::exists(index_path, ec)) {
    const std::string single = (fs::path(model_dir) / kSingleFile).string();
    if (!fs::exists(single, ec)) {
      return Error(StatusCode::kIoError, "{}: no {} or {} found", model_dir, kSingleFile,
                   kIndexFile);
    }
    MOE_ASSIGN_OR_RETURN(std::string path,
                         ResolveInside(model_dir, std::string(kSingleFile), model_dir));
    MOE_ASSIGN_OR_RETURN(auto shard, OpenShard(path));
    for (const TensorInfo& t : shard->tensors()) c.by_name_[t.name] = TensorRef{&t, shard.get()};
    c.shards_.push_back(std::move(shard));
    return c;
  }

  MOE_ASSIGN_OR_RETURN(std::string text, ReadFileToString(index_path, kMaxIndexBytes));
  MOE_ASSIGN_OR_RETURN(Json index, ParseJson(text, index_path));
  if (!index.is_object()) {
    return Error(StatusCode::kInvalidFormat, "{}: top level is {}, expected object", index_path,
                 JsonTypeName(index));
  }
  if (auto it = index.find("metadata"); it != index.end() && !it->is_object() && !it->is_null()) {
    return Error(StatusCode::kInvalidFormat, "{}: key 'metadata': expected object, got {}",
                 index_path, JsonTypeName(*it));
  }
  auto wm = index.find("weight_map");
  if (wm == index.end()) {
    return Error(StatusCode::kInvalidFormat, "{}: key 'weight_map': missing", index_path);
  }
  if (!wm->is_object()) {
    return Error(StatusCode::kInvalidFormat, "{}: key 'weight_map': expected object, got {}",
                 index_path, JsonTypeName(*wm));
  }
  // Validate every shard name before opening any file (B4: no file opened on escape).
  std::map<std::string, std::string> shard_paths;  // name in index → path
  for (const auto& [tensor, shard] : wm->items()) {
    if (!shard.is_string()) {
      return Error(StatusCode::kInvalidFormat, "{}: key 'weight_map.{}': expected string, got {}",
                   index_path, tensor, JsonTypeName(shard));
    }
    const std::string& name = shard.get_ref<const std::string&>();
    if (shard_paths.count(name)) continue;
    MOE_ASSIGN_OR_RETURN(shard_paths[name], ResolveInside(model_dir, name, index_path));
  }
  // Open each distinct shard once; a tensor may live in only one of them (B3).
  std::map<std::string, size_t> shard_index;
  std::unordered_map<std::string, size_t> found_in;  // tensor → shard number
  for (const auto& [name, path] : shard_paths) {
    MOE_ASSIGN_OR_RETURN(auto shard, OpenShard(path));
    size_t k = c.shards_.size();
    for (const TensorInfo& t : shard->tensors()) {
      auto [it, inserted] = found_in.emplace(t.name, k);
      if (!inserted) {
        return Error(StatusCode::kInvalidFormat,
                     "{}: tensor '{}': duplicate tensor across shards ('{}' and '{}')", index_path,
                     t.name, c.shards_[it->second]->path(), path);
      }
    }
    shard_index[name] = k;
    c.shards_.push_back(std::move(shard));
  }
  // Every listed tensor is in the shard the index names (B2).
  for (const auto& [tensor, shard] : wm->items()) {
    const std::string& name = shard.get_ref<const std::string&>();
    const SafetensorsFile* f = c.shards_[shard_index[name]].get();
    const TensorInfo* info = f->Find(tensor);
    if (info == nullptr) {
      return Error(StatusCode::kInvalidFormat,
                   "{}: tensor '{}': index maps it to '{}', which does not contain it", index_path,
                   tensor, f->path());
    }
    c.by_name_[tensor] = TensorRef{info, f};
  }
  // ...and no shard holds a tensor the index does not list.
  if (c.by_name_.size() != found_in.size()) {
    for (const auto& shard : c.shards_) {
      for (const TensorInfo& t : shard->tensors()) {
        if (!c.by_name_.count(t.name)) {
          return Error(StatusCode::kInvalidFormat,
                       "{}: tensor '{}': present in shard '{}' but not listed in the index",
                       index_path, t.name, shard->path());
        }
      }
    }
  }
  return c;
}

const TensorRef* Checkpoint::Find(std::string_view name) const {
  auto it = by_name_.find(std::string(name));
  return it == by_name_.end() ? nullptr : &it->second;
}

std::vector<std::string> Checkpoint::Names() const {
  std::vector<std::string> names;
  names.reserve(by_name_.size());
  for (const auto& [name, ref] : by_name_) names.push_back(name);
  std::sort(names.begin(), names.end());
  return names;
}

Status Checkpoint::Read(const TensorRef& ref, void* dst, size_t size) const {
  if (ref.info == nullptr || ref.shard == nullptr || size != ref.info->n_bytes) {
    return Error(StatusCode::kInternal, "{}: tensor '{}': read of {} bytes, tensor has {}",
                 ref.shard ? ref.shard->path() : dir_, ref.info ? ref.info->name : "?", size,
                 ref.info ? ref.info->n_bytes : 0);
  }
  return ref.shard->file().ReadAt(ref.info->file_offset, dst, size);
}

Status Checkpoint::ReadRange(const TensorRef& ref, uint64_t offset, void* dst,
                             size_t size) const {
  if (ref.info == nullptr || ref.shard == nullptr || offset > ref.info->n_bytes ||
      size > ref.info->n_bytes - offset) {
    return Error(StatusCode::kInternal, "{}: tensor '{}': read of [{}, +{}) outside its {} bytes",
                 ref.shard ? ref.shard->path() : dir_, ref.info ? ref.info->name : "?", offset,
                 size, ref.info ? ref.info->n_bytes : 0);
  }
  return ref.shard->file().ReadAt(ref.info->file_offset + offset, dst, size);
}

}  // namespace moe
