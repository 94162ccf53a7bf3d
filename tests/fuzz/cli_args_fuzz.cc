// SPDX-License-Identifier: Apache-2.0
// Input: [selector u8][argument text]. selector % 5: 0 --tokens id list, 1 --expert-mask range
// list, 2 --expert-cache size, 3 --io mode, 4 --cache-policy.
#include <algorithm>
#include <string>

#include "experts/cache_policy.h"
#include "experts/expert_cache.h"
#include "experts/expert_store.h"
#include "fuzz_targets.h"
#include "util/cli_parse.h"

namespace moe::fuzz {
namespace {

void CheckError(const Status& s) {
  FUZZ_CHECK(s.code() == StatusCode::kUsage);
  FUZZ_CHECK(s.message().find('\n') == std::string::npos);
}

}  // namespace

int CliArgs(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string arg(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0] % 5) {
    case 0: {
      auto ids = ParseIdList(arg, "tokens");
      if (!ids.ok()) return CheckError(ids.status()), 0;
      FUZZ_CHECK(!ids->empty() && ids->size() <= arg.size() / 2 + 1);
      for (int32_t id : *ids) FUZZ_CHECK(id >= 0);
      break;
    }
    case 1: {
      auto ids = ParseRangeList(arg, "expert-mask");
      if (!ids.ok()) return CheckError(ids.status()), 0;
      FUZZ_CHECK(ids->size() <= static_cast<size_t>(kMaxRangeListId) + 1);
      FUZZ_CHECK(std::adjacent_find(ids->begin(), ids->end(),
                                    [](int32_t a, int32_t b) { return a >= b; }) == ids->end());
      for (int32_t id : *ids) FUZZ_CHECK(id >= 0 && id <= kMaxRangeListId);
      break;
    }
    case 2: {
      auto bytes = ParseByteSize(arg, "expert-cache");
      if (!bytes.ok()) return CheckError(bytes.status()), 0;
      // Independent check: digits then an optional unit; the value fits in 64 bits.
      size_t digits = 0;
      unsigned __int128 v = 0;
      while (digits < arg.size() && arg[digits] >= '0' && arg[digits] <= '9') {
        v = v * 10 + static_cast<unsigned>(arg[digits++] - '0');
        FUZZ_CHECK(v <= ~0ull);
      }
      FUZZ_CHECK(digits > 0);
      int shift = 0;
      if (digits < arg.size()) {
        const char u = static_cast<char>(arg[digits] | 0x20);
        shift = u == 'k' ? 10 : u == 'm' ? 20 : u == 'g' ? 30 : 40;
      }
      FUZZ_CHECK((v << shift) == *bytes);
      break;
    }
    case 3: {
      auto m = ParseIoMode(arg);
      FUZZ_CHECK(m.ok() == (arg == "auto" || arg == "direct" || arg == "buffered"));
      if (!m.ok()) CheckError(m.status());
      break;
    }
    default: {
      auto p = ParsePolicyKind(arg);
      if (!p.ok()) FUZZ_CHECK(p.status().message().find('\n') == std::string::npos);
      break;
    }
  }
  return 0;
}

}  // namespace moe::fuzz
