// SPDX-License-Identifier: Apache-2.0
// SIMD targets compiled into moe_kernels. Include before any hwy/ header in every kernels TU so
// all of them agree (dispatch tables are per TU; a mismatch would only waste code, not break).
#pragma once

// x86: SSE4 (baseline of the "v2" class), AVX2 (+FMA, F16C), AVX3 (AVX-512 F/BW/DQ/VL), plus the
// portable EMU128 fallback that runs on any x86-64. SSSE3 adds nothing over EMU128 for our
// float kernels; AVX3_DL (Ice Lake) is not in Highway's default set. Highway 1.0.3 has no
// AVX3_ZEN4/AVX3_SPR targets, so Zen 4 runs AVX3. Arm: Highway's defaults (NEON, SVE, SVE2).
#ifndef HWY_DISABLED_TARGETS
#define HWY_DISABLED_TARGETS (HWY_SSSE3 | HWY_AVX3_DL)
#endif
