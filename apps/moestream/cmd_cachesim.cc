// SPDX-License-Identifier: Apache-2.0
// moestream cache-sim TRACE: replays a routing trace through the runtime's cache policies
// (analysis/cache_sim.h) and Belady's optimum; hit rate per policy × budget as Markdown, JSON and
// an SVG plot.
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "analysis/cache_sim.h"
#include "analysis/router_trace.h"
#include "analysis_cli.h"
#include "command.h"
#include "experts/expert_cache.h"

namespace moe::app {
namespace {

// "64" = 64 experts; "6M", "512K", "100000B" = bytes (needs slot_bytes).
Result<uint64_t> ParseBudget(const std::string& item, uint64_t slot_bytes) {
  const bool bytes = item.find_first_not_of("0123456789") != std::string::npos;
  if (!bytes) {
    if (item.size() > 12) return Error(StatusCode::kUsage, "--budget {}: too large", item);
    return std::stoull(item);
  }
  const std::string num = item.back() == 'B' || item.back() == 'b'
                              ? item.substr(0, item.size() - 1) : item;
  MOE_ASSIGN_OR_RETURN(uint64_t b, ParseByteSize(num, "budget"));
  if (slot_bytes == 0) {
    return Error(StatusCode::kUsage, "--budget {}: a size in bytes needs --slot-bytes", item);
  }
  return b / slot_bytes;  // the runtime cache rounds down to whole slots the same way
}

int CacheSim(int argc, char** argv) {
  std::string trace_path;
  argc = TakePositional(argc, argv, &trace_path);
  Flags flags("cache-sim",
              "cache-sim TRACE: replay a routing trace through the expert cache policies");
  std::string budgets = "8,16,32,64,128", policies = "lru,lfu,layer,belady", out_dir;
  int64_t batch = 1, slot_bytes = 0, n_layers = 0, n_experts = 0;
  flags.String("trace", &trace_path, "trace file (or give it as the first argument)");
  flags.String("budget", &budgets,
               "budgets: N experts, or bytes with a unit (6M, 512K, 98304B), comma-separated");
  flags.String("policy", &policies, "policies: lru,lfu,layer,belady (default all)");
  flags.Int("batch", &batch,
            "prefill batch the trace was recorded with (moestream --batch; 1 = token by token)");
  flags.Int("slot-bytes", &slot_bytes, "bytes per cache slot, for byte budgets (see --stats-json)");
  flags.Int("layers", &n_layers, "layers in the key space (default: from the trace)");
  flags.Int("experts", &n_experts, "experts per layer (default: from the trace)");
  flags.String("out-dir", &out_dir, "write cache_sim.md, cache_sim.json, cache_sim.svg here");
  Status st = flags.Parse(argc, argv);
  if (flags.help_requested()) {
    flags.PrintUsage(stdout);
    return 0;
  }
  if (st.ok() && trace_path.empty()) st = Error(StatusCode::kUsage, "give the TRACE file");
  if (st.ok() && (batch < 1 || slot_bytes < 0 || n_layers < 0 || n_experts < 0)) {
    st = Error(StatusCode::kUsage, "--batch must be ≥ 1; sizes must be ≥ 0");
  }
  std::vector<uint64_t> caps;
  std::vector<PolicyKind> kinds;
  for (const std::string& b : SplitCommaList(budgets)) {
    if (!st.ok()) break;
    auto c = ParseBudget(b, static_cast<uint64_t>(slot_bytes));
    if (!c.ok()) st = c.status();
    else if (*c == 0) st = Error(StatusCode::kUsage, "--budget {}: less than one expert", b);
    else caps.push_back(*c);
  }
  for (const std::string& p : SplitCommaList(policies)) {
    if (!st.ok()) break;
    auto k = ParseSimPolicy(p);
    if (!k.ok()) st = Error(StatusCode::kUsage, "--policy '{}': expected lru, lfu, layer or belady", p);
    else kinds.push_back(*k);
  }
  if (!st.ok()) return flags.Fail(st);
  auto trace = ReadTraceFile(trace_path);
  if (!trace.ok()) return flags.Fail(trace.status());
  const TraceShape shape = ShapeOf(*trace);
  PolicyUniverse u{static_cast<int32_t>(n_layers ? n_layers : shape.n_layers),
                   static_cast<int32_t>(n_experts ? n_experts : shape.n_experts)};
  auto r = SimulateCache(RuntimeAccessOrder(*trace, batch), u, kinds, caps);
  if (!r.ok()) return flags.Fail(r.status());
  const std::string md = CacheSimMarkdown(*r, static_cast<uint64_t>(slot_bytes));
  std::printf("%s", md.c_str());
  if (!out_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(out_dir, ec);
    if (ec) {
      return flags.Fail(Error(StatusCode::kIoError, "{}: cannot create folder: {}", out_dir,
                              ec.message()));
    }
    st = WriteOutput(out_dir + "/cache_sim.md", md);
    if (st.ok()) {
      st = WriteOutput(out_dir + "/cache_sim.json",
                       CacheSimJson(*r, static_cast<uint64_t>(slot_bytes)));
    }
    if (st.ok()) st = WriteOutput(out_dir + "/cache_sim.svg", CacheSimSvg(*r));
    if (!st.ok()) return flags.Fail(st);
  }
  return 0;
}

}  // namespace

MOE_COMMAND("cache-sim", "replay a routing trace through the expert cache policies", CacheSim);

}  // namespace moe::app
