// SPDX-License-Identifier: Apache-2.0
// A 2-D matrix stored somewhere in a checkpoint: the file, where its first row starts, its shape
// and dtype, and whether it is stored transposed relative to the [rows, cols] the engine uses.
// Fused expert tensors are described as slices of their 3-D parent (spec §1.3).
#pragma once

#include <cstdint>

#include "formats/dtype.h"

namespace moe {

class SafetensorsFile;

struct TensorSlice {
  const SafetensorsFile* file = nullptr;
  uint64_t file_offset = 0;  // absolute byte offset of the stored block
  DType dtype = DType::kBF16;
  uint64_t rows = 0;  // logical [rows, cols] as the engine uses it ([out, in])
  uint64_t cols = 0;
  // false: stored row-major [rows, cols], contiguous.
  // true: stored row-major [cols, stored_row_stride] and the logical matrix is its transpose,
  //       restricted to stored columns [stored_col_offset, stored_col_offset + rows).
  bool transposed = false;
  uint64_t stored_row_stride = 0;  // elements per stored row when transposed
  uint64_t stored_col_offset = 0;  // first stored column when transposed
};

}  // namespace moe

namespace moe {

// One routed expert's three matrices, in the engine's logical layout:
// gate [I, H], up [I, H], down [H, I].
struct ExpertSlices {
  TensorSlice gate;
  TensorSlice up;
  TensorSlice down;
};

}  // namespace moe
