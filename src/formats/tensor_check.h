// SPDX-License-Identifier: Apache-2.0
// Optional value checks on checkpoint tensors (bad-inputs.md A20, `inspect --check-tensors`).
// By default nothing looks at tensor values: the safetensors format does not forbid NaN/Inf
// (spec §5.1), and scanning every weight at load time would cost a full read of the model.
#pragma once

#include "formats/safetensors.h"
#include "util/status.h"

namespace moe {

// Reads the tensor in chunks and returns kInvalidFormat naming the tensor, its shard and the
// first non-finite element ("tensor 'x': element 17 is NaN") for F16/BF16/F32/F64 tensors.
// Other dtypes are not checked (Ok). I/O errors come back as kIoError.
Status CheckTensorFinite(const TensorRef& ref);

}  // namespace moe
