# SPDX-License-Identifier: Apache-2.0
if(MOE_SANITIZE)
  add_compile_options(-fsanitize=${MOE_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=${MOE_SANITIZE})
  # Sanitizer builds compile the SIMD kernels for AVX2, SSE4 and the portable fallback only, not
  # AVX-512: the kernels' heavily unrolled tiles are the slowest files to compile under
  # ASan+UBSan (matmul.cc: ~22 s in release, ~150 s instrumented, a quarter of it for AVX3), and
  # the release stage already tests every target this CPU has. (kernels/targets.h)
  add_compile_definitions("HWY_DISABLED_TARGETS=(HWY_SSSE3|HWY_AVX3_DL|HWY_AVX3)")
endif()
# Fuzz builds (tests/fuzz/, clang): every library gets coverage instrumentation for libFuzzer
# plus ASan+UBSan; the fuzz executables add -fsanitize=fuzzer (libFuzzer's main).
if(MOE_BUILD_FUZZ)
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer
                      -fno-sanitize-recover=all)
  add_link_options(-fsanitize=address,undefined)
endif()
