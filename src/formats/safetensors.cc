// SPDX-License-Identifier: Apache-2.0
// safetensors header validation (spec §5.3, bad-inputs.md A1-A22) and single-file access.
// Sharded checkpoints are in checkpoint.cc.
#include "formats/safetensors.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "formats/json.h"
#include "util/checked_math.h"

namespace moe {
namespace {

// Non-negative JSON integer as uint64, or nullopt (negative, float, string, ...).
std::optional<uint64_t> AsUint(const Json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer() && v.get<int64_t>() >= 0)
    return static_cast<uint64_t>(v.get<int64_t>());
  return std::nullopt;
}

std::string ShapeString(const std::vector<uint64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

// One header entry → TensorInfo with every per-tensor rule checked. file_offset is relative to
// the data buffer here; the caller makes it absolute after the layout checks.
Result<TensorInfo> ParseEntry(std::string_view path, std::string&& name, const Json& entry) {
  auto fail = [&](std::string rule) {
    return Error(StatusCode::kInvalidFormat, "safetensors: {}: tensor '{}': {}", path, name, rule);
  };
  if (!entry.is_object()) {
    return fail(fmt::format("entry is {}, expected object", JsonTypeName(entry)));
  }
  TensorInfo t;
  auto dtype_it = entry.find("dtype");
  if (dtype_it == entry.end()) return fail("missing 'dtype'");
  if (!dtype_it->is_string()) {
    return fail(fmt::format("dtype is {}, expected string", JsonTypeName(*dtype_it)));
  }
  Result<DType> dtype = ParseDType(dtype_it->get_ref<const std::string&>());
  if (!dtype.ok()) return fail(dtype.status().message());
  t.dtype = dtype.value();

  auto shape_it = entry.find("shape");
  if (shape_it == entry.end()) return fail("missing 'shape'");
  if (!shape_it->is_array()) {
    return fail(fmt::format("shape is {}, expected array", JsonTypeName(*shape_it)));
  }
  t.shape.reserve(shape_it->size());
  for (size_t i = 0; i < shape_it->size(); ++i) {
    const Json& d = (*shape_it)[i];
    std::optional<uint64_t> v = AsUint(d);
    if (!v || *v > kMaxSafetensorsDim) {
      return fail(fmt::format("shape[{}] is {} (must be an integer in [0, {}])", i, d.dump(),
                              kMaxSafetensorsDim));
    }
    t.shape.push_back(*v);
  }
  uint64_t n = 1;
  for (uint64_t d : t.shape) {
    std::optional<uint64_t> p = CheckedMul(n, d);
    if (!p) return fail(fmt::format("element count overflows (shape {})", ShapeString(t.shape)));
    n = *p;
  }
  t.n_elements = n;
  std::optional<uint64_t> bits = CheckedMul(n, DTypeBits(t.dtype));
  if (!bits) {
    return fail(fmt::format("byte size overflows ({} elements of {})", n, DTypeName(t.dtype)));
  }
  if (*bits % 8 != 0) {
    return fail(fmt::format("misaligned slice: {} elements of {} is {} bits, not whole bytes", n,
                            DTypeName(t.dtype), *bits));
  }
  t.n_bytes = *bits / 8;

  auto off_it = entry.find("data_offsets");
  if (off_it == entry.end()) return fail("missing 'data_offsets'");
  if (!off_it->is_array() || off_it->size() != 2) {
    return fail(fmt::format("data_offsets is {} (expected [begin, end])", off_it->dump()));
  }
  std::optional<uint64_t> begin = AsUint((*off_it)[0]);
  std::optional<uint64_t> end = AsUint((*off_it)[1]);
  if (!begin || !end) {
    return fail(fmt::format("data_offsets {} are not non-negative integers", off_it->dump()));
  }
  if (*end < *begin) return fail(fmt::format("data_offsets end {} < begin {}", *end, *begin));
  if (*end - *begin != t.n_bytes) {
    return fail(fmt::format("{} {} needs {} bytes, offsets cover {}", DTypeName(t.dtype),
                            ShapeString(t.shape), t.n_bytes, *end - *begin));
  }
  t.file_offset = *begin;
  t.name = std::move(name);
  return t;
}

Status ParseMetadata(std::string_view path, const Json& v,
                     std::map<std::string, std::string>* out) {
  if (!v.is_object()) {
    return Error(StatusCode::kInvalidFormat,
                 "safetensors: {}: __metadata__ is {}, expected object of strings", path,
                 JsonTypeName(v));
  }
  for (const auto& [k, val] : v.items()) {
    if (!val.is_string()) {
      return Error(StatusCode::kInvalidFormat,
                   "safetensors: {}: __metadata__ key '{}': expected string, got {}", path, k,
                   JsonTypeName(val));
    }
    (*out)[k] = val.get<std::string>();
  }
  return Status::Ok();
}

// Duplicate names (A8), found by sorting pointers rather than hashing: a 100 MB header may hold
// about 2 million entries, and a hash set of their names would double peak memory.
Status CheckUniqueNames(std::string_view path, const std::vector<TensorInfo>& tensors) {
  std::vector<const std::string*> names;
  names.reserve(tensors.size());
  for (const TensorInfo& t : tensors) names.push_back(&t.name);
  std::sort(names.begin(), names.end(),
            [](const std::string* a, const std::string* b) { return *a < *b; });
  for (size_t i = 1; i < names.size(); ++i) {
    if (*names[i] == *names[i - 1]) {
      return Error(StatusCode::kInvalidFormat, "safetensors: {}: duplicate tensor name '{}'", path,
                   *names[i]);
    }
  }
  return Status::Ok();
}

// Sorted by offset, the tensors must tile [0, buffer_bytes) exactly (spec §5.3 steps 5-8).
Status CheckLayout(std::string_view path, uint64_t header_bytes, uint64_t file_size,
                   std::vector<TensorInfo>* tensors) {
  std::sort(tensors->begin(), tensors->end(), [](const TensorInfo& a, const TensorInfo& b) {
    uint64_t ea = a.file_offset + a.n_bytes, eb = b.file_offset + b.n_bytes;
    if (a.file_offset != b.file_offset) return a.file_offset < b.file_offset;
    if (ea != eb) return ea < eb;
    return a.name < b.name;
  });
  uint64_t expected = 0;
  const TensorInfo* prev = nullptr;
  for (const TensorInfo& t : *tensors) {
    if (t.file_offset < expected) {
      return Error(StatusCode::kInvalidFormat,
                   "safetensors: {}: tensors '{}' and '{}' overlap ('{}' begins at {}, '{}' ends "
                   "at {})",
                   path, prev->name, t.name, t.name, t.file_offset, prev->name, expected);
    }
    if (t.file_offset > expected) {
      return Error(StatusCode::kInvalidFormat,
                   "safetensors: {}: tensor '{}': gap of {} bytes before it (begins at {} vs "
                   "expected {})",
                   path, t.name, t.file_offset - expected, t.file_offset, expected);
    }
    expected = t.file_offset + t.n_bytes;  // end >= begin was checked, no overflow (end is u64)
    prev = &t;
  }
  uint64_t buffer_bytes = file_size - 8 - header_bytes;  // caller checked 8 + N <= file_size
  if (expected > buffer_bytes) {
    std::optional<uint64_t> needed = CheckedAdd(8 + header_bytes, expected);
    return Error(StatusCode::kInvalidFormat,
                 "safetensors: {}: file is {} bytes, header requires {} (incomplete download?)",
                 path, file_size,
                 needed ? fmt::format("{}", *needed) : std::string("more than 2^64"));
  }
  if (expected < buffer_bytes) {
    return Error(StatusCode::kInvalidFormat,
                 "safetensors: {}: {} trailing bytes after the last tensor (data ends at byte {} "
                 "vs file size {})",
                 path, buffer_bytes - expected, 8 + header_bytes + expected, file_size);
  }
  for (TensorInfo& t : *tensors) t.file_offset += 8 + header_bytes;
  return Status::Ok();
}

}  // namespace

Result<uint64_t> ParseSafetensorsHeaderLength(std::string_view path, std::string_view first8,
                                              uint64_t file_size) {
  if (file_size < 8 || first8.size() < 8) {
    return Error(StatusCode::kInvalidFormat,
                 "safetensors: {}: file too small for 8-byte header length ({} bytes vs 8)", path,
                 std::min<uint64_t>(file_size, first8.size()));
  }
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(first8[i]);
  if (n > kMaxSafetensorsHeaderBytes) {
    return Error(StatusCode::kInvalidFormat, "safetensors: {}: header length {} exceeds limit {}",
                 path, n, kMaxSafetensorsHeaderBytes);
  }
  if (n > file_size - 8) {
    return Error(StatusCode::kInvalidFormat,
                 "safetensors: {}: header length exceeds file size (truncated?) ({} vs {} - 8)",
                 path, n, file_size);
  }
  return n;
}

Result<SafetensorsHeader> ParseSafetensorsHeader(std::string_view path,
                                                 std::string_view header_json, uint64_t file_size,
                                                 uint64_t max_tensors) {
  SafetensorsHeader h;
  h.header_bytes = header_json.size();
  if (h.header_bytes > kMaxSafetensorsHeaderBytes || file_size < 8 ||
      h.header_bytes > file_size - 8) {
    return Error(StatusCode::kInvalidFormat,
                 "safetensors: {}: header length {} does not fit file of {} bytes (limit {})", path,
                 h.header_bytes, file_size, kMaxSafetensorsHeaderBytes);
  }
  if (size_t bad = FindInvalidUtf8(header_json); bad != std::string_view::npos) {
    return Error(StatusCode::kInvalidFormat,
                 "safetensors: {}: header is not UTF-8 (invalid byte 0x{:02x} at offset {})", path,
                 static_cast<uint8_t>(header_json[bad]), 8 + bad);
  }
  const std::string what = fmt::format("safetensors: {}: header", path);
  bool have_metadata = false;
  Status s = ForEachJsonMember(
      header_json, what, JsonLimits{}, [&](std::string&& key, Json&& value) -> Status {
        if (key == "__metadata__") {
          if (have_metadata) {
            return Error(StatusCode::kInvalidFormat, "safetensors: {}: duplicate __metadata__",
                         path);
          }
          have_metadata = true;
          return ParseMetadata(path, value, &h.metadata);
        }
        if (h.tensors.size() >= max_tensors) {
          return Error(StatusCode::kResourceExhausted,
                       "safetensors: {}: more than {} tensor entries (entry limit)", path,
                       max_tensors);
        }
        MOE_ASSIGN_OR_RETURN(TensorInfo t, ParseEntry(path, std::move(key), value));
        h.tensors.push_back(std::move(t));
        return Status::Ok();
      });
  MOE_TRY(s);
  MOE_TRY(CheckUniqueNames(path, h.tensors));
  MOE_TRY(CheckLayout(path, h.header_bytes, file_size, &h.tensors));
  return h;
}

Result<SafetensorsFile> SafetensorsFile::Open(const std::string& path) {
  SafetensorsFile f;
  MOE_ASSIGN_OR_RETURN(f.file_, File::OpenRead(path));
  char first8[8] = {};
  uint64_t size = f.file_.size();
  if (size >= 8) MOE_TRY(f.file_.ReadAt(0, first8, 8));
  MOE_ASSIGN_OR_RETURN(uint64_t n,
                       ParseSafetensorsHeaderLength(path, std::string_view(first8, 8), size));
  // n <= kMaxSafetensorsHeaderBytes and n <= size - 8 are checked: the allocation is bounded.
  std::string header(n, '\0');
  MOE_TRY(f.file_.ReadAt(8, header.data(), header.size()));
  MOE_ASSIGN_OR_RETURN(f.header_, ParseSafetensorsHeader(path, header, size));
  f.by_name_.reserve(f.header_.tensors.size());
  for (size_t i = 0; i < f.header_.tensors.size(); ++i) {
    // Duplicates were rejected by the JSON layer; keep the check as a guard for our own bugs.
    if (!f.by_name_.emplace(f.header_.tensors[i].name, i).second) {
      return Error(StatusCode::kInvalidFormat, "safetensors: {}: duplicate tensor name '{}'", path,
                   f.header_.tensors[i].name);
    }
  }
  return f;
}

const TensorInfo* SafetensorsFile::Find(std::string_view name) const {
  auto it = by_name_.find(std::string(name));
  return it == by_name_.end() ? nullptr : &header_.tensors[it->second];
}

}  // namespace moe
