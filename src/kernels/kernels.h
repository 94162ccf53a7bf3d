// SPDX-License-Identifier: Apache-2.0
// Public, target-agnostic CPU kernels. Activations are f32; weights stay in their stored type.
// Kernels are single-threaded and never allocate; callers parallelise over row ranges
// (util/thread_pool.h). Each kernel is compiled for several SIMD targets (Highway) and the best
// one the CPU supports is chosen at run time (docs/kernels.md); results differ between targets
// only by f32 rounding. Every result element is computed by the same instruction sequence
// whatever n_tokens, the row range or the thread count: prefill, decode and any threading give
// bit-identical outputs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace moe::kernels {

// kQ8 / kQ4: block-quantized rows (docs/kernels.md "Quantized weights"). Each row of `cols`
// values is cut into ceil(cols / 32) blocks of 32 along the input dimension; a block is
//   kQ8: f32 scale d, then 32 int8 q             (36 bytes): w = d · q
//   kQ4: f32 scale d, then 16 bytes of nibbles   (20 bytes): w = d · (nibble − 8); byte j holds
//        element j in its low nibble and element j + 16 in its high nibble.
// The last block of a row is zero-padded (q = 0, nibble 8). Rows are contiguous; weights are
// only ever used as MatMul/ToFloat inputs (never as norm weights).
enum class WeightType : uint8_t { kF32, kBF16, kF16, kQ8, kQ4 };

inline constexpr size_t kQuantBlock = 32;

// Bytes per element for f32/bf16/f16; 0 for the block-quantized types (use WeightMatrixBytes).
size_t WeightTypeBytes(WeightType t);

// Bytes of a row-major [rows, cols] matrix of type t (quantized: scales included).
uint64_t WeightMatrixBytes(WeightType t, size_t rows, size_t cols);

// "f32", "bf16", "f16", "q8", "q4".
const char* WeightTypeName(WeightType t);

// Bytes of one quantized block (36 for kQ8, 20 for kQ4) and of one row of `cols` values.
inline constexpr size_t QuantBlockBytes(WeightType t) { return t == WeightType::kQ8 ? 36 : 20; }
inline constexpr size_t QuantRowBytes(WeightType t, size_t cols) {
  return (cols + kQuantBlock - 1) / kQuantBlock * QuantBlockBytes(t);
}

// True for kQ8 and kQ4.
inline bool IsQuantized(WeightType t) { return t == WeightType::kQ8 || t == WeightType::kQ4; }

// Quantizes one row of n floats to t (kQ8 or kQ4) into dst (WeightMatrixBytes(t, 1, n) bytes).
// Per block: d = max|x| / 127 (q8) or / 7 (q4), q = round-half-away(x · (1/d)) clamped to the
// type's range (x / d where 1/d overflows); an all-zero block gets d = 0, a block holding a NaN
// or ±Inf gets d = NaN and q = 0 (it dequantizes to NaN, as the weights would compute).
// Deterministic: every target writes reference::QuantizeRow's bytes.
void QuantizeRow(const float* src, size_t n, WeightType t, void* dst);
// The first `rows` rows of a row-major matrix of `cols` columns stored as src_type → the same
// rows quantized to t at dst, one row at a time through `scratch` (cols floats): each row is
// QuantizeRow(ToFloat(row)), so the bytes do not depend on how a caller splits the rows.
void QuantizeRows(const void* src, WeightType src_type, size_t rows, size_t cols, WeightType t,
                  void* dst, float* scratch);

// The tiled layout of a [rows, cols] f32/bf16/f16 matrix (WeightView::tiled): rows in tiles of
// kTileRows, each tile's columns in chunks of kTileCols, and a chunk's kTileRows × kTileCols
// values stored together, row by row. A decode MatMul tile then reads one sequential stream
// instead of kTileRows rows at once (docs/kernels.md: 1.2-1.3x the row-major stream rate on a
// fast-memory host). Element (r, c) is at TiledIndex(r, c, cols).
inline constexpr size_t kTileRows = 8, kTileCols = 16;
inline constexpr size_t TiledIndex(size_t r, size_t c, size_t cols) {
  return (r / kTileRows) * kTileRows * cols + (c / kTileCols) * (kTileRows * kTileCols) +
         (r % kTileRows) * kTileCols + c % kTileCols;
}
// Quantized matrices (kQ8, kQ4) tile with one block per row as the chunk: a tile's block b of
// its kTileRows rows are stored together. Block b of row r starts at this byte offset
// (row_bytes = QuantRowBytes, block_bytes = QuantBlockBytes).
inline constexpr size_t TiledBlockOffset(size_t r, size_t b, size_t row_bytes,
                                         size_t block_bytes) {
  return (r / kTileRows) * kTileRows * row_bytes + b * kTileRows * block_bytes +
         (r % kTileRows) * block_bytes;
}
// True if the tiled layout is defined for this type and shape: rows a multiple of kTileRows, and
// for f32, bf16 and f16 cols a multiple of kTileCols. Independent of the CPU (what a store's
// tiled blocks follow).
bool HasTileShape(WeightType t, size_t rows, size_t cols);
// True if the kernels can read such a tiled matrix on the CPU's current SIMD target:
// HasTileShape, and for f32, bf16 and f16 the target's f32 vector a divisor of kTileCols (every
// x86 and Arm NEON target; not SVE wider than 512 bits).
bool CanTile(WeightType t, size_t rows, size_t cols);
// What loaders ask: CanTile, and the current target decodes the tiled layout faster: always for
// f32/bf16/f16; for q8/q4 where the target has a tiled quantized decode kernel (AVX-512 both,
// AVX2 q8 only; matmul_qacts.cc DecodeStreams).
bool TilingPays(WeightType t, size_t rows, size_t cols);
// Rewrites a row-major matrix in place into the tiled layout; HasTileShape(t, rows, cols) must
// hold (a byte permutation: any CPU may write a layout another reads).
void TileMatrix(void* data, WeightType t, size_t rows, size_t cols);

// A [rows, cols] weight matrix in its stored type: row-major, or tiled (above). Non-owning.
struct WeightView {
  const void* data = nullptr;
  WeightType type = WeightType::kF32;
  size_t rows = 0;
  size_t cols = 0;
  bool tiled = false;  // the tiled layout; MatMul's results are the same either way
};

// y[t * y_stride + r] = Σ_c w[r, c] · x[t * x_stride + c]
// for t in [0, n_tokens) and r in [row_begin, row_end).
void MatMul(const WeightView& w, const float* x, size_t n_tokens, size_t x_stride, float* y,
            size_t y_stride, size_t row_begin, size_t row_end);

// Contract: each y element depends only on (weight row r, token row x[t]) — never on n_tokens,
// the row range or the calling thread.

// --- Quantized weights × quantized activations: the fast path for kQ8/kQ4 matrices (the
// runtime uses it; MatMul above, with f32 activations, is the exact-dequantization path).
// Activations are quantized per token row in blocks of 32 along cols, the last block
// zero-padded: d = max|x| / 32767, q = round-to-nearest-even(x / d) as int16 (|q| ≤ 32767).
// An all-zero block, or one whose d underflows to 0, gets d = 0 and q = 0; a block holding a
// NaN or ±Inf gets d = NaN (q = 0), so every output it feeds is NaN. The rounding error of an
// element is at most 2^-16 of its block's max|x|, far below the weights' own quantization step.
// Row t of the result occupies q[t·32·ActBlocks(cols), ...) and d[t·ActBlocks(cols), ...).
inline constexpr size_t ActBlocks(size_t cols) { return (cols + kQuantBlock - 1) / kQuantBlock; }
void QuantizeActs(const float* x, size_t n_tokens, size_t x_stride, size_t cols, int16_t* q,
                  float* d);

// y[t * y_stride + r] = Σ_b f32(Σ_{c in block b} q_w[r, c] · q_x[t, c]) · (d_w[r, b] · d_x[t, b])
// for t in [0, n_tokens), r in [row_begin, row_end); w is kQ8 or kQ4, (xq, xd) come from
// QuantizeActs with cols = w.cols. The block sums are exact int32; the f32 accumulation across
// blocks follows MatMul's contract (bit-identical for any n_tokens, row range or thread).
void MatMulQuantizedActs(const WeightView& w, const int16_t* xq, const float* xd, size_t n_tokens,
                         float* y, size_t y_stride, size_t row_begin, size_t row_end);

// out[i] = x[i] / sqrt(mean(x²) + eps) · w[i], i < n (HF Qwen3 RMSNorm, weight applied directly).
// `out` may alias `x`.
void RmsNorm(const float* x, const void* w, WeightType w_type, size_t n, float eps, float* out);

// dst[i] = float(src[i]) for i < n (a quantized src is one row of n columns).
void ToFloat(const void* src, WeightType type, size_t n, float* dst);

// gate[i] = silu(gate[i]) · up[i], i < n.
void SiluMul(float* gate, const float* up, size_t n);

// In-place softmax over x[0..n). -inf entries get 0; any NaN or +inf input makes every output
// NaN (as exp(x - max) does in the reference).
void Softmax(float* x, size_t n);

// Σ a[i]·b[i], i < n, accumulated in f32 in a fixed order for a given n.
float Dot(const float* a, const float* b, size_t n);

// XOR of the 64-bit words of p[0..bytes) (a trailing partial word is ignored): a pure read
// stream with independent chains, the memory-bandwidth probe of `moestream bench`.
uint64_t XorFold(const void* p, size_t bytes);

// XorFold as compiled for each Highway target this CPU supports, best target first
// (AvailableTargets() order, where AVX3_VNNI shares AVX3's), whatever target the kernels run on. How fast one read loop streams depends on its
// code, not only on the memory: on Zen 4, Highway's AVX3 loop reads ~25 % slower than its
// AVX2 one (docs/benchmarks.md, session 9). The memory probe takes the fastest of them.
using XorFoldFn = uint64_t (*)(const void* p, size_t bytes);
std::vector<XorFoldFn> XorFoldPerTarget();

// y[i] += a · x[i], i < n.
void Axpy(float a, const float* x, float* y, size_t n);

// x[i] *= a, i < n.
void Scale(float a, float* x, size_t n);

// Attention of the query heads that share one KV head (GQA), against a range of cached keys
// and values: the kernels read each key and value once for all those heads.
//
// Keys are stored in key tiles: kKeyTile consecutive positions' keys transposed,
// [head_dim][kKeyTile] f32, so that the scores of a tile's positions are vertical
// multiply-adds with no horizontal sum per key. Key j of a range is at
// k[KeyTileIndex(j, d, head_dim)]; a range starts at a tile.
inline constexpr size_t kKeyTile = 16;
constexpr size_t KeyTileIndex(size_t j, size_t d, size_t head_dim) {
  return (j / kKeyTile) * head_dim * kKeyTile + d * kKeyTile + j % kKeyTile;
}
struct AttentionScoresArgs {
  const float* q = nullptr;  // [n_heads][head_dim] f32
  size_t n_heads = 1;
  const float* k = nullptr;  // ceil(n_keys / kKeyTile) key tiles
  size_t n_keys = 0;
  size_t head_dim = 0;
  float scale = 1.0f;          // usually 1/sqrt(head_dim)
  size_t scores_stride = 0;    // floats between heads' score rows (≥ n_keys when n_heads > 1)
};
// scores[h · scores_stride + j] = scale · Σ_d q[h][d]·key j[d], summed over d = 0, 1, ... in
// order, h < n_heads, j < n_keys. Lanes of the last tile past n_keys are read (any finite or
// non-finite value) and never written.
void AttentionScores(const AttentionScoresArgs& args, float* scores);

struct AttentionWeightedSumArgs {
  const float* p = nullptr;  // head h's weights of the keys at p + h · p_stride
  size_t p_stride = 0;
  size_t n_heads = 1;
  const float* v = nullptr;  // value j at v + j · v_stride, [head_dim] f32 each
  size_t v_stride = 0;
  size_t n_keys = 0;
  size_t head_dim = 0;
  float* out = nullptr;  // head h's output at out + h · out_stride
  size_t out_stride = 0;
};
// out[h][d] += Σ_j p[h][j] · value j[d] for h < n_heads, d < head_dim, summed over
// j = 0, 1, ... in order.
void AttentionWeightedSum(const AttentionWeightedSumArgs& args);

// HF rotate-half RoPE in place on one head (head_dim even, h = head_dim / 2): for i < h,
//   x[i]     ← x[i]·cos[i] − x[i+h]·sin[i]
//   x[i + h] ← x[i+h]·cos[i] + x[i]·sin[i]
// cos/sin hold h values (HF's cos/sin tensors repeat them for both halves).
void RopeRotateHalf(float* x, const float* cos, const float* sin, size_t head_dim);

// Name of the SIMD target the kernels run on (Highway's name: "AVX3", "AVX2", "SSE4", "EMU128";
// or "AVX3_VNNI").
const char* TargetName();

// Compiled targets this CPU supports, best first (e.g. {"AVX3_VNNI", "AVX3", "AVX2", "SSE4",
// "EMU128"}). AVX3_VNNI is Highway's AVX3 plus AVX512-VNNI instructions where a kernel has a
// use for them (q4 MatMulQuantizedActs), listed where the CPU has them (Ice Lake, Zen 4 and
// later); AVX3 then runs the same kernels without them, with bit-identical results.
std::vector<std::string> AvailableTargets();

// Makes every kernel run on the named target (case-insensitive name from AvailableTargets(),
// or "scalar"/"baseline" for the portable fallback, "avx512" for AVX3); "" restores the
// startup choice. Returns false, changing nothing, if the target is not compiled or not
// supported. The environment variable MOE_FORCE_TARGET=<name> forces a target at startup (and
// makes it the startup choice); an unknown name prints one line to stderr and is ignored.
// Not thread-safe: call while no kernel runs (startup, tests).
bool ForceTarget(std::string_view name);

}  // namespace moe::kernels
