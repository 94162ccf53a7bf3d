// SPDX-License-Identifier: Apache-2.0
// Scalar reference kernels: the oracle every optimised kernel is tested against.
#pragma once

#include "kernels/kernels.h"

namespace moe::kernels::reference {

float LoadWeight(const void* data, WeightType type, size_t index);
void MatMul(const WeightView& w, const float* x, size_t n_tokens, size_t x_stride, float* y,
            size_t y_stride, size_t row_begin, size_t row_end);
void RmsNorm(const float* x, const void* w, WeightType w_type, size_t n, float eps, float* out);
void SiluMul(float* gate, const float* up, size_t n);
void Softmax(float* x, size_t n);

}  // namespace moe::kernels::reference
