// SPDX-License-Identifier: Apache-2.0
#include "util/cli_parse.h"

#include <algorithm>
#include <charconv>
#include <utility>

namespace moe {
namespace {

Result<int64_t> ParseInt(const std::string& v, const char* flag) {
  int64_t x = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
  if (ec != std::errc() || p != v.data() + v.size() || v.empty()) {
    return Error(StatusCode::kUsage, "--{}: '{}' is not an integer", flag, v);
  }
  return x;
}

}  // namespace

Result<std::vector<int32_t>> ParseIdList(const std::string& s, const char* flag) {
  std::vector<int32_t> ids;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(',', start);
    if (end == std::string::npos) end = s.size();
    const std::string item = s.substr(start, end - start);
    MOE_ASSIGN_OR_RETURN(int64_t v, ParseInt(item, flag));
    if (v < 0 || v > INT32_MAX) return Error(StatusCode::kUsage, "--{}: id {} out of range", flag, v);
    ids.push_back(static_cast<int32_t>(v));
    start = end + 1;
  }
  if (ids.empty()) return Error(StatusCode::kUsage, "--{}: empty list", flag);
  return ids;
}

Result<std::vector<int32_t>> ParseRangeList(const std::string& s, const char* flag) {
  std::vector<std::pair<int64_t, int64_t>> ranges;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(',', start);
    if (end == std::string::npos) end = s.size();
    const std::string item = s.substr(start, end - start);
    const size_t dash = item.find('-', 1);
    MOE_ASSIGN_OR_RETURN(int64_t lo, ParseInt(item.substr(0, dash), flag));
    int64_t hi = lo;
    if (dash != std::string::npos) {
      MOE_ASSIGN_OR_RETURN(hi, ParseInt(item.substr(dash + 1), flag));
    }
    if (lo < 0 || hi < lo || hi > kMaxRangeListId) {
      return Error(StatusCode::kUsage, "--{}: bad range '{}'", flag, item);
    }
    ranges.emplace_back(lo, hi);
    start = end + 1;
  }
  // Merge before expanding: "0-1000000" repeated would otherwise allocate 4 MB per item.
  std::sort(ranges.begin(), ranges.end());
  std::vector<int32_t> ids;
  int64_t next = 0;  // first id not yet emitted
  for (const auto& [lo, hi] : ranges) {
    for (int64_t v = std::max(lo, next); v <= hi; ++v) ids.push_back(static_cast<int32_t>(v));
    next = std::max(next, hi + 1);
  }
  return ids;
}

}  // namespace moe
