// SPDX-License-Identifier: Apache-2.0
// The tiles and decode streams of the x86 byte kernels, included by qacts_x86-inl.h once per
// weight format and multiply-add flavour, inside a namespace under qx86 whose scope defines V,
// W, LoadW, Args, kBlockBytes, ... (q4: plain and vnni; q8: vnni only):
//   MOE_QX86_VNNI 0: vpmaddubsw (u8 × s8 → s16 pairs), then vpmaddwd to int32 (AVX2, AVX-512);
//   MOE_QX86_VNNI 1: vpdpbusd (AVX512-VNNI: u8 × s8 quadruples summed straight into int32).
// Each int32 lane q gets the same exact sum either way (bytes 4q .. 4q + 3 of the lane's row:
// no saturation on either path), so both flavours give bit-identical results (tests).
// No include guard: included twice per target.

#if MOE_QX86_VNNI
// Every function on the path from Run to the vpdpbusd: AVX512-VNNI on top of the target's set.
#define MOE_QX86_ATTR __attribute__((target(HWY_TARGET_STR ",avx512vnni")))
#else
#define MOE_QX86_ATTR HWY_ATTR
#endif

// acc += f32(exact block sums, 4 lanes per row) · (d_w · d_x).
MOE_QX86_ATTR HWY_INLINE V::F Accumulate(const W& w, const ActV& x, float xd, V::F acc) {
#if MOE_QX86_VNNI
  const __m512i h =
      _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), w.ulo, x.xh_lo), w.uhi,
                          x.xh_hi);
  const __m512i l =
      _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(x.corr, x.xl_lo, w.slo), x.xl_hi, w.shi);
  const V::I s = V::Add32(_mm512_slli_epi32(h, 8), l);
#else
  const V::I t1 = V::Add16(V::Maddubs(w.ulo, x.xh_lo), V::Maddubs(w.uhi, x.xh_hi));
  const V::I t2 = V::Add16(V::Maddubs(x.xl_lo, w.slo), V::Maddubs(x.xl_hi, w.shi));
  const V::I s =
      V::Add32(V::Add32(V::Madd(t1, V::Set16(256)), V::Madd(t2, V::Set16(1))), x.corr);
#endif
  return V::Fma(V::Cvt(s), V::Scale(w.dw, xd), acc);
}

// Rows [r, r + kR) × tokens [t, t + kT); kR a multiple of kVecRows, or 1 (the row in every
// lane).
// kContiguous: each group of kVecRows rows is one run of bytes per block (LoadContiguous).
template <size_t kR, size_t kT, bool kTiled, bool kContiguous>
MOE_QX86_ATTR HWY_INLINE void TileRun(const Args& a, size_t r, size_t t) {
  static_assert(kR == 1 || kR % kVecRows == 0);
  constexpr size_t kG = (kR + kVecRows - 1) / kVecRows;
  constexpr size_t bs = QuantBlockStride<kTiled>(kBlockBytes);
  const uint8_t* row[kG * kVecRows];
  MOE_QX86_UNROLL
  for (size_t i = 0; i < kG * kVecRows; ++i) {
    row[i] = a.w + QuantRowBase<kTiled>(r + HWY_MIN(i, kR - 1), a.row_bytes, kBlockBytes);
  }
  V::F acc[kG][kT];
  MOE_QX86_UNROLL
  for (size_t g = 0; g < kG; ++g) {
    MOE_QX86_UNROLL
    for (size_t j = 0; j < kT; ++j) acc[g][j] = V::Zero();
  }
  // Row-major decode prefetches the next tile's rows (matmul_qacts.cc Tile).
  const uint8_t* next = a.w + (r + kR) * a.row_bytes;
  for (size_t b = 0; b < a.n_blocks; ++b) {
    if constexpr (kT == 1 && !kTiled) PrefetchL2(next + b * kR * kBlockBytes, kR * kBlockBytes);
    W w[kG];
    MOE_QX86_UNROLL
    for (size_t g = 0; g < kG; ++g) {
      const uint8_t* p[kVecRows];
      MOE_QX86_UNROLL
      for (size_t i = 0; i < kVecRows; ++i) p[i] = row[g * kVecRows + i] + b * bs;
      w[g] = LoadW<kContiguous>(p);
    }
    MOE_QX86_UNROLL
    for (size_t j = 0; j < kT; ++j) {
      const size_t ab = (t + j) * a.n_blocks + b;
      const ActV x = LoadAct(a.act[ab]);
      MOE_QX86_UNROLL
      for (size_t g = 0; g < kG; ++g) acc[g][j] = Accumulate(w[g], x, a.xd[ab], acc[g][j]);
    }
  }
  MOE_QX86_UNROLL
  for (size_t j = 0; j < kT; ++j) {
    MOE_QX86_UNROLL
    for (size_t g = 0; g < kG; ++g) {
      V::StoreRows(acc[g][j], HWY_MIN(kR - kVecRows * g, kVecRows),
                   a.y + (t + j) * a.y_stride + r + kVecRows * g);
    }
  }
}
template <size_t kR, size_t kT, bool kTiled>
MOE_QX86_ATTR HWY_INLINE void Tile(const Args& a, size_t r, size_t t) {
  // A tiled matrix's rows r .. r + kVecRows − 1 with r % kVecRows == 0 are one contiguous run
  // per block.
  if (kTiled && kR % kVecRows == 0 && r % kVecRows == 0) {
    TileRun<kR, kT, kTiled, kTiled && kR % kVecRows == 0>(a, r, t);
  } else {
    TileRun<kR, kT, kTiled, false>(a, r, t);
  }
}

// Decode of kS tiles' worth of rows of a tiled matrix, 8 rows per stream (simd-inl.h
// ForEachTiledDecodePass): the activation block is loaded once for all kS · 8 rows.
template <size_t kS, bool kContiguous>
MOE_QX86_ATTR HWY_INLINE void DecodeStreamsRun(const Args& a, const size_t (&r)[kS]) {
  constexpr size_t bs = QuantBlockStride<true>(kBlockBytes);
  constexpr size_t kG = kTileRows / kVecRows;
  const uint8_t* row[kS][kTileRows];
  V::F acc[kS][kG];
  MOE_QX86_UNROLL
  for (size_t s = 0; s < kS; ++s) {
    MOE_QX86_UNROLL
    for (size_t i = 0; i < kTileRows; ++i) {
      row[s][i] = a.w + QuantRowBase<true>(r[s] + i, a.row_bytes, kBlockBytes);
    }
    MOE_QX86_UNROLL
    for (size_t g = 0; g < kG; ++g) acc[s][g] = V::Zero();
  }
  for (size_t b = 0; b < a.n_blocks; ++b) {
    const ActV x = LoadAct(a.act[b]);
    const float xd = a.xd[b];
    MOE_QX86_UNROLL
    for (size_t s = 0; s < kS; ++s) {
      MOE_QX86_UNROLL
      for (size_t g = 0; g < kG; ++g) {
        const uint8_t* p[kVecRows];
        MOE_QX86_UNROLL
        for (size_t i = 0; i < kVecRows; ++i) p[i] = row[s][g * kVecRows + i] + b * bs;
        acc[s][g] = Accumulate(LoadW<kContiguous>(p), x, xd, acc[s][g]);
      }
    }
  }
  MOE_QX86_UNROLL
  for (size_t s = 0; s < kS; ++s) {
    MOE_QX86_UNROLL
    for (size_t g = 0; g < kG; ++g) V::StoreRows(acc[s][g], kVecRows, a.y + r[s] + g * kVecRows);
  }
}
// Streams start on a tile (every group contiguous) unless the row range does not.
template <size_t kS>
MOE_QX86_ATTR HWY_INLINE void DecodeStreams(const Args& a, const size_t (&r)[kS]) {
  bool contiguous = true;
  for (size_t s = 0; s < kS; ++s) contiguous = contiguous && r[s] % kVecRows == 0;
  if (contiguous) {
    DecodeStreamsRun<kS, true>(a, r);
  } else {
    DecodeStreamsRun<kS, false>(a, r);
  }
}

// The kQ4 MatMul over rows [row_begin, row_end) of split activations (qacts_x86-inl.h MatMul).
MOE_QX86_ATTR inline void Run(const Args& a, bool tiled, size_t n_tokens, size_t row_begin,
                            size_t row_end) {
  const auto tile = [&]<size_t kR, size_t kT, bool kTiled>(size_t r, size_t t) MOE_QX86_ATTR {
    Tile<kR, kT, kTiled>(a, r, t);
  };
#if HWY_TARGET <= HWY_AVX3
  if (tiled && n_tokens == 1) {
    ForEachTiledDecodePass<kStreams>(
        row_begin, row_end,
        [&](const size_t (&r)[kStreams]) MOE_QX86_ATTR { DecodeStreams<kStreams>(a, r); }, tile);
    return;
  }
#endif
  ForEachTileOf<kDecodeRows, kPrefillRows, kTokens, kPrefillRows, kTokens, 16>(
      tiled, n_tokens, row_begin, row_end, tile);
}

#undef MOE_QX86_ATTR
