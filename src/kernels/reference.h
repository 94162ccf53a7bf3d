// SPDX-License-Identifier: Apache-2.0
// Scalar reference kernels: the oracle every optimised kernel is tested against.
#pragma once

#include "kernels/kernels.h"

namespace moe::kernels::reference {

float LoadWeight(const void* data, WeightType type, size_t index);  // f32/bf16/f16 only
// Row `row` of a quantized [*, cols] matrix, dequantized to f32 (d · q, one f32 multiply).
void DequantizeRow(const void* data, WeightType type, size_t cols, size_t row, float* out);
void MatMul(const WeightView& w, const float* x, size_t n_tokens, size_t x_stride, float* y,
            size_t y_stride, size_t row_begin, size_t row_end);
void QuantizeActs(const float* x, size_t n_tokens, size_t x_stride, size_t cols, int16_t* q,
                  float* d);
// kernels::QuantizeRow's bytes, one element at a time (std::lround of x · (1/d)).
void QuantizeRow(const float* src, size_t n, WeightType t, void* dst);
// Block sums in int64, scaled by the f32 product d_w·d_x and accumulated in double.
void MatMulQuantizedActs(const WeightView& w, const int16_t* xq, const float* xd, size_t n_tokens,
                         float* y, size_t y_stride, size_t row_begin, size_t row_end);
void RmsNorm(const float* x, const void* w, WeightType w_type, size_t n, float eps, float* out);
void SiluMul(float* gate, const float* up, size_t n);
void Softmax(float* x, size_t n);
void ToFloat(const void* src, WeightType type, size_t n, float* dst);
float Dot(const float* a, const float* b, size_t n);  // accumulates in double
void Axpy(float a, const float* x, float* y, size_t n);
void Scale(float a, float* x, size_t n);
void AttentionScores(const AttentionScoresArgs& args, float* scores);
void AttentionWeightedSum(const AttentionWeightedSumArgs& args);
void RopeRotateHalf(float* x, const float* cos, const float* sin, size_t head_dim);

}  // namespace moe::kernels::reference
