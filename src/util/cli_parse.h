// SPDX-License-Identifier: Apache-2.0
// Pure parsers for list-valued command-line arguments. They live below apps/ so that the
// fuzz targets (tests/fuzz/) and the unit tests link them without the CLI's main().
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "util/status.h"

namespace moe {

// Largest id a range list may name (and so the most ids it can expand to, plus one).
inline constexpr int64_t kMaxRangeListId = 1'000'000;

// "5,17,300" → ids in the given order (each a non-negative int32). kUsage naming `flag`.
Result<std::vector<int32_t>> ParseIdList(const std::string& s, const char* flag);
// "0-7,12" → sorted unique ids, each in [0, kMaxRangeListId]. Overlapping ranges are merged
// before expansion, so the result never exceeds kMaxRangeListId + 1 ids whatever the input.
Result<std::vector<int32_t>> ParseRangeList(const std::string& s, const char* flag);

}  // namespace moe
