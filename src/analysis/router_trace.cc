// SPDX-License-Identifier: Apache-2.0
#include "analysis/router_trace.h"

#include <algorithm>

#include "formats/json.h"
#include "util/file.h"

namespace moe {

std::string TraceToJsonLines(const std::vector<RouteRecord>& records) {
  std::string out;
  for (const RouteRecord& r : records) {
    out += fmt::format("{{\"pos\":{},\"layer\":{},\"experts\":[{}],\"weights\":[", r.pos, r.layer,
                       fmt::join(r.experts, ","));
    for (size_t i = 0; i < r.weights.size(); ++i) {
      out += fmt::format("{}{:.9g}", i ? "," : "", r.weights[i]);
    }
    out += "]}\n";
  }
  return out;
}

namespace {

Result<RouteRecord> ParseLine(std::string_view line, const std::string& what) {
  MOE_ASSIGN_OR_RETURN(Json j, ParseJson(line, what));
  if (!j.is_object()) {
    return Error(StatusCode::kInvalidFormat, "{}: expected a JSON object, got {}", what,
                 JsonTypeName(j));
  }
  RouteRecord r;
  MOE_ASSIGN_OR_RETURN(r.pos, GetInt(j, "pos", what, "pos"));
  MOE_ASSIGN_OR_RETURN(r.layer, GetInt(j, "layer", what, "layer"));
  if (r.pos < 0 || r.layer < 0 || r.layer > (1 << 20)) {
    return Error(StatusCode::kInvalidFormat, "{}: pos {} / layer {} out of range", what, r.pos,
                 r.layer);
  }
  for (const char* key : {"experts", "weights"}) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_array()) {
      return Error(StatusCode::kInvalidFormat, "{}: key '{}': expected an array", what, key);
    }
  }
  for (const Json& e : j["experts"]) {
    if (!e.is_number_integer() || e.get<int64_t>() < 0 || e.get<int64_t>() > (1 << 20)) {
      return Error(StatusCode::kInvalidFormat,
                   "{}: key 'experts': expected expert ids in [0, 2^20], got {}", what, e.dump());
    }
    r.experts.push_back(static_cast<int32_t>(e.get<int64_t>()));
  }
  for (const Json& w : j["weights"]) {
    if (!w.is_number()) {
      return Error(StatusCode::kInvalidFormat, "{}: key 'weights': expected numbers, got {}",
                   what, w.dump());
    }
    r.weights.push_back(w.get<float>());
  }
  if (r.experts.empty()) {
    return Error(StatusCode::kInvalidFormat, "{}: key 'experts': empty list", what);
  }
  if (r.weights.size() != r.experts.size()) {
    return Error(StatusCode::kInvalidFormat, "{}: key 'weights': {} weights for {} experts", what,
                 r.weights.size(), r.experts.size());
  }
  return r;
}

}  // namespace

Result<std::vector<RouteRecord>> ParseTrace(std::string_view text, std::string_view what) {
  std::vector<RouteRecord> out;
  size_t line_no = 0;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    MOE_ASSIGN_OR_RETURN(RouteRecord r, ParseLine(line, fmt::format("{}:{}", what, line_no)));
    out.push_back(std::move(r));
  }
  return out;
}

Result<std::vector<RouteRecord>> ReadTraceFile(const std::string& path) {
  MOE_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path, uint64_t{1} << 32));
  return ParseTrace(text, path);
}

TraceShape ShapeOf(const std::vector<RouteRecord>& records) {
  TraceShape s;
  for (const RouteRecord& r : records) {
    s.n_layers = std::max(s.n_layers, static_cast<int32_t>(r.layer + 1));
    s.top_k = std::max(s.top_k, static_cast<int32_t>(r.experts.size()));
    for (int32_t e : r.experts) s.n_experts = std::max(s.n_experts, e + 1);
  }
  return s;
}

}  // namespace moe
