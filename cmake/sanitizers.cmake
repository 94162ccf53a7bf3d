# SPDX-License-Identifier: Apache-2.0
if(MOE_SANITIZE)
  add_compile_options(-fsanitize=${MOE_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=${MOE_SANITIZE})
endif()
# Fuzz builds (tests/fuzz/, clang): every library gets coverage instrumentation for libFuzzer
# plus ASan+UBSan; the fuzz executables add -fsanitize=fuzzer (libFuzzer's main).
if(MOE_BUILD_FUZZ)
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer
                      -fno-sanitize-recover=all)
  add_link_options(-fsanitize=address,undefined)
endif()
