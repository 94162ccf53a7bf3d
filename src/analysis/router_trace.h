// SPDX-License-Identifier: Apache-2.0
// Routing traces: the JSON-lines format `moestream eval --trace-out` and `moestream trace` write,
// one routing decision per line: {"pos":P,"layer":L,"experts":[...],"weights":[...]}.
//
// Goals: one writer and one validating reader shared by every analysis tool; records keep the
// order the runtime produced them in (for a forward batch: layer 0 for every token of the batch,
// then layer 1, …), which the cache simulator relies on to replay the runtime's access order.
// Non-goals: compactness (traces are small: 8 layers × 4 experts per token).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "runtime/session.h"
#include "util/status.h"

namespace moe {

// JSON lines of `records` (weights printed with 9 significant digits: exact for f32).
std::string TraceToJsonLines(const std::vector<RouteRecord>& records);

// Parses a trace. `what` (usually the path) prefixes errors. kInvalidFormat naming the line and
// key for: a line that is not a JSON object, missing/mistyped keys, negative pos/layer/expert,
// an empty expert list, weights of another length than experts.
Result<std::vector<RouteRecord>> ParseTrace(std::string_view text, std::string_view what);
Result<std::vector<RouteRecord>> ReadTraceFile(const std::string& path);

// Shape of a trace: 1 + the largest layer and expert id seen, and the largest experts per line.
struct TraceShape {
  int32_t n_layers = 0;
  int32_t n_experts = 0;
  int32_t top_k = 0;
};
TraceShape ShapeOf(const std::vector<RouteRecord>& records);

}  // namespace moe
