// SPDX-License-Identifier: Apache-2.0
#include "formats/tensor_check.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace moe {
namespace {

// Exponent mask of each float type: all exponent bits set means Inf (mantissa 0) or NaN.
struct FloatBits {
  uint32_t bytes;
  uint64_t exp_mask;
  uint64_t mant_mask;
};

bool Classify(DType t, FloatBits* fb) {
  switch (t) {
    case DType::kF16:
      *fb = {2, 0x7c00, 0x03ff};
      return true;
    case DType::kBF16:
      *fb = {2, 0x7f80, 0x007f};
      return true;
    case DType::kF32:
      *fb = {4, 0x7f800000, 0x007fffff};
      return true;
    case DType::kF64:
      *fb = {8, 0x7ff0000000000000ull, 0x000fffffffffffffull};
      return true;
    default:
      return false;
  }
}

}  // namespace

Status CheckTensorFinite(const TensorRef& ref) {
  FloatBits fb;
  if (ref.info == nullptr || ref.shard == nullptr || !Classify(ref.info->dtype, &fb)) {
    return Status::Ok();
  }
  constexpr uint64_t kChunk = 1 << 20;  // multiple of every element size
  std::vector<unsigned char> buf(std::min<uint64_t>(kChunk, ref.info->n_bytes));
  for (uint64_t done = 0; done < ref.info->n_bytes;) {
    uint64_t n = std::min<uint64_t>(kChunk, ref.info->n_bytes - done);
    MOE_TRY(ref.shard->file().ReadAt(ref.info->file_offset + done, buf.data(), n));
    for (uint64_t i = 0; i < n; i += fb.bytes) {
      uint64_t v = 0;
      for (uint32_t b = 0; b < fb.bytes; ++b) v |= uint64_t{buf[i + b]} << (8 * b);
      if ((v & fb.exp_mask) == fb.exp_mask) {
        return Error(StatusCode::kInvalidFormat,
                     "safetensors: {}: tensor '{}': element {} is {} (--check-tensors)",
                     ref.shard->path(), ref.info->name, (done + i) / fb.bytes,
                     (v & fb.mant_mask) ? "NaN" : (v >> (8 * fb.bytes - 1) ? "-Inf" : "+Inf"));
      }
    }
    done += n;
  }
  return Status::Ok();
}

}  // namespace moe
