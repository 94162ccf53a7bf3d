// SPDX-License-Identifier: Apache-2.0
// libFuzzer entry point; MOE_FUZZ_FN names the target function (fuzz_targets.h).
#include "fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return moe::fuzz::MOE_FUZZ_FN(data, size);
}

const char* moe::fuzz::SourceDir() { return MOE_SOURCE_DIR; }
