// SPDX-License-Identifier: Apache-2.0
// moestream experts: expert-usage statistics over routing traces (analysis/expert_stats.h):
// usage per layer and domain, JS divergence between domains vs shuffled labels, co-activation,
// temporal locality. Writes experts.md, experts.json and SVG plots into --out-dir.
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "analysis/expert_stats.h"
#include "analysis_cli.h"
#include "command.h"

namespace moe::app {
namespace {

std::string StemOf(const std::string& path) {
  std::string stem = std::filesystem::path(path).filename().string();
  const size_t dot = stem.find('.');
  return dot == std::string::npos || dot == 0 ? stem : stem.substr(0, dot);
}

int Experts(int argc, char** argv) {
  Flags flags("experts",
              "expert usage over routing traces: histograms, per-domain JS divergence vs a "
              "shuffled-label baseline, co-activation, reuse distance");
  std::vector<std::string> traces, labels;
  std::string out_dir;
  ExpertStatsOptions opts;
  int64_t shuffles = opts.n_shuffles, seed = static_cast<int64_t>(opts.seed);
  flags.Custom("trace",
               [&](const std::string& v) -> Status {
                 for (std::string& t : SplitCommaList(v)) traces.push_back(std::move(t));
                 return Status::Ok();
               },
               "trace file(s), JSON lines (repeatable or comma-separated)", "FILE");
  flags.Custom("labels",
               [&](const std::string& v) -> Status {
                 labels = SplitCommaList(v);
                 return Status::Ok();
               },
               "one domain label per trace (default: each file's name up to its first dot); "
               "traces sharing a label are pooled", "NAMES");
  flags.String("out-dir", &out_dir, "output folder (created)");
  flags.Int("block", &opts.block_tokens, "tokens per block of the shuffled-label baseline (128)");
  flags.Int("shuffles", &shuffles, "label permutations for the baseline (10)");
  flags.Int("seed", &seed, "first permutation seed (1)");
  flags.Int("max-gap", &opts.max_histogram, "reuse histograms: exact up to N (64)");
  // Accept trailing trace files after --trace as positionals: `--trace a.jsonl b.jsonl`.
  std::vector<char*> args(argv, argv + argc);
  std::string joined;  // owns the merged --trace value for the lifetime of `args`
  for (size_t i = 1; i + 1 < args.size(); ++i) {
    if (std::string(args[i]) != "--trace") continue;
    size_t j = i + 2;
    joined = args[i + 1];
    while (j < args.size() && args[j][0] != '-') joined += std::string(",") + args[j++];
    args.erase(args.begin() + static_cast<ptrdiff_t>(i) + 1, args.begin() + static_cast<ptrdiff_t>(j));
    args.insert(args.begin() + static_cast<ptrdiff_t>(i) + 1, joined.data());
    break;
  }
  Status st = flags.Parse(static_cast<int>(args.size()), args.data());
  if (flags.help_requested()) {
    flags.PrintUsage(stdout);
    return 0;
  }
  if (st.ok() && traces.empty()) st = Error(StatusCode::kUsage, "--trace is required");
  if (st.ok() && out_dir.empty()) st = Error(StatusCode::kUsage, "--out-dir is required");
  if (st.ok() && !labels.empty() && labels.size() != traces.size()) {
    st = Error(StatusCode::kUsage, "--labels: {} labels for {} traces", labels.size(),
               traces.size());
  }
  if (st.ok() && (shuffles < 0 || shuffles > 100000 || seed < 0)) {
    st = Error(StatusCode::kUsage, "--shuffles must be in [0, 100000] and --seed ≥ 0");
  }
  if (!st.ok()) return flags.Fail(st);
  opts.n_shuffles = static_cast<int>(shuffles);
  opts.seed = static_cast<uint64_t>(seed);
  std::vector<LabeledTrace> inputs;
  for (size_t i = 0; i < traces.size(); ++i) {
    auto recs = ReadTraceFile(traces[i]);
    if (!recs.ok()) return flags.Fail(recs.status());
    inputs.push_back({labels.empty() ? StemOf(traces[i]) : labels[i], std::move(*recs)});
  }
  auto stats = ComputeExpertStats(inputs, opts);
  if (!stats.ok()) return flags.Fail(stats.status());
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) {
    return flags.Fail(Error(StatusCode::kIoError, "{}: cannot create folder: {}", out_dir,
                            ec.message()));
  }
  const std::string md = ExpertStatsMarkdown(*stats, opts);
  st = WriteOutput(out_dir + "/experts.md", md);
  if (st.ok()) st = WriteOutput(out_dir + "/experts.json", ExpertStatsJson(*stats, opts));
  if (st.ok()) st = WriteExpertStatsPlots(*stats, out_dir);
  if (!st.ok()) return flags.Fail(st);
  std::printf("%s", md.c_str());
  return 0;
}

}  // namespace

MOE_COMMAND("experts", "expert usage statistics over routing traces (Markdown, JSON, SVG)",
            Experts);

}  // namespace moe::app
