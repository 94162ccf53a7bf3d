// SPDX-License-Identifier: Apache-2.0
// moestream perplexity FILE: perplexity of a text over non-overlapping windows of --ctx tokens
// (analysis/perplexity.h). Exact at every --expert-cache budget; --expert-mask / --top-k measure
// lossy routing and print the not-exact warning.
#include <cstdio>
#include <string>
#include <vector>

#include "analysis/perplexity.h"
#include "analysis/router_trace.h"
#include "analysis_cli.h"
#include "command.h"
#include "tokenizer/tokenizer.h"
#include "util/file.h"
#include "util/thread_pool.h"

namespace moe::app {
namespace {

std::string ResultJson(const std::string& file, const PerplexityResult& r, int64_t window,
                       const Engine& e) {
  return fmt::format(
      "{{\"file\":{},\"tokens\":{},\"windows\":{},\"window\":{},\"scored\":{},"
      "\"sum_nll\":{:.17g},\"mean_nll\":{:.17g},\"perplexity\":{:.17g},\"top_k\":{},"
      "\"expert_mask\":[{}]}}\n",
      JsonQuote(file), r.n_tokens, r.n_windows, window, r.n_scored, r.sum_nll, r.mean_nll(), r.perplexity(),
      e.top_k(), fmt::join(e.options().expert_mask, ","));
}

int Perplexity(int argc, char** argv) {
  std::string file;
  argc = TakePositional(argc, argv, &file);
  Flags flags("perplexity",
              "perplexity FILE: NLL over non-overlapping windows of --ctx tokens (default 512; "
              "every token but a window's first is scored); default model: models/qwen3-moe-ref");
  ModelFlags model;
  model.session.max_context = 512;
  model.Register(flags);
  std::string json_out, trace_out, nll_out;
  int64_t max_tokens = 0;
  bool stats = false;
  flags.String("file", &file, "the text file (or give it as the first argument)");
  flags.Int("max-tokens", &max_tokens, "use only the first N tokens of the file (0 = all)");
  flags.String("json-out", &json_out, "write the result as JSON to FILE");
  flags.String("trace-out", &trace_out, "write the routing trace (JSON lines) to FILE");
  flags.String("nll-out", &nll_out, "write each scored token's NLL (f64 little-endian) to FILE");
  flags.Bool("stats", &stats, "print expert cache statistics on stderr");
  Status st = flags.Parse(argc, argv);
  if (flags.help_requested()) {
    flags.PrintUsage(stdout);
    return 0;
  }
  if (st.ok() && file.empty()) st = Error(StatusCode::kUsage, "give the text FILE");
  if (st.ok() && max_tokens < 0) st = Error(StatusCode::kUsage, "--max-tokens must be ≥ 0");
  if (!st.ok()) return flags.Fail(st);
  st = model.ResolveModelDir();
  if (!st.ok()) return flags.Fail(st);
  model.WarnIfLossy();
  auto text = ReadFileToString(file, uint64_t{1} << 30);
  if (!text.ok()) return flags.Fail(text.status());
  auto tok = Tokenizer::Load(model.engine.model_dir);
  if (!tok.ok()) return flags.Fail(tok.status());
  auto ids = tok->Encode(*text);
  if (!ids.ok()) return flags.Fail(ids.status());
  if (max_tokens > 0 && static_cast<int64_t>(ids->size()) > max_tokens) {
    ids->resize(static_cast<size_t>(max_tokens));
  }
  if (ids->size() < 2) {
    return flags.Fail(Error(StatusCode::kUsage, "{}: fewer than 2 tokens to score", file));
  }
  auto engine = Engine::Open(model.engine);
  if (!engine.ok()) return flags.Fail(engine.status());
  ThreadPool pool(model.n_threads());
  Session session(**engine, pool, model.session);
  std::vector<RouteRecord> trace;
  if (!trace_out.empty()) session.set_route_recorder(&trace);
  const int64_t window = session.max_context();
  auto r = ComputePerplexity(session, *ids, {window});
  if (!r.ok()) return flags.Fail(r.status());
  std::printf("perplexity %.6f  mean NLL %.6f nats over %lld tokens (%lld windows of <= %lld)\n",
              r->perplexity(), r->mean_nll(), static_cast<long long>(r->n_scored),
              static_cast<long long>(r->n_windows), static_cast<long long>(window));
  if (!json_out.empty()) st = WriteOutput(json_out, ResultJson(file, *r, window, **engine));
  if (st.ok() && !trace_out.empty()) st = WriteOutput(trace_out, TraceToJsonLines(trace));
  if (st.ok() && !nll_out.empty()) {
    st = WriteFileAtomic(nll_out, r->nll.data(), r->nll.size() * sizeof(double));
  }
  if (st.ok()) st = model.ReportExpertStats(**engine, stats);
  if (!st.ok()) return flags.Fail(st);
  return 0;
}

}  // namespace

MOE_COMMAND("perplexity", "perplexity of a text file (windows of --ctx tokens)", Perplexity);

}  // namespace moe::app
