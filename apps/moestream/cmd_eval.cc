// SPDX-License-Identifier: Apache-2.0
// moestream eval: run token ids as one prompt; write every position's logits (raw little-endian
// f32, row-major [tokens, vocab]) and optionally the routing trace (JSON lines).
#include <cstdio>
#include <string>
#include <vector>

#include "analysis/router_trace.h"
#include "command.h"
#include "model_flags.h"
#include "runtime/session.h"
#include "util/file.h"
#include "util/thread_pool.h"

namespace moe::app {
namespace {

int Eval(int argc, char** argv) {
  Flags flags("eval", "run token ids as one prompt and write the logits of every position");
  ModelFlags model;
  model.Register(flags);
  std::vector<int32_t> tokens;
  std::string logits_out, trace_out;
  flags.Custom("tokens",
               [&](const std::string& v) -> Status {
                 MOE_ASSIGN_OR_RETURN(tokens, ParseIdList(v, "tokens"));
                 return Status::Ok();
               },
               "prompt token ids, e.g. 5,17,300", "IDS");
  flags.String("logits-out", &logits_out, "output file: f32 logits [tokens, vocab_size]");
  flags.String("trace-out", &trace_out, "output file: routing trace, JSON lines");
  bool stats = false;  // expert cache summary (experts owner)
  flags.Bool("stats", &stats, "print expert cache statistics on stderr");
  Status st = flags.Parse(argc, argv);
  if (flags.help_requested()) {
    flags.PrintUsage(stdout);
    return 0;
  }
  if (st.ok()) st = model.ResolveModelDir();
  if (st.ok() && tokens.empty()) st = Error(StatusCode::kUsage, "--tokens is required");
  if (st.ok() && logits_out.empty() && trace_out.empty()) {
    st = Error(StatusCode::kUsage, "nothing to write: give --logits-out and/or --trace-out");
  }
  if (!st.ok()) return flags.Fail(st);
  model.WarnIfLossy();

  auto engine = Engine::Open(model.engine);
  if (!engine.ok()) return flags.Fail(engine.status());
  ThreadPool pool(model.n_threads());
  SessionOptions so = model.session;
  so.max_context = std::max<int64_t>(so.max_context, static_cast<int64_t>(tokens.size()));
  Session session(**engine, pool, so);
  std::vector<RouteRecord> trace;
  if (!trace_out.empty()) session.set_route_recorder(&trace);
  const size_t V = static_cast<size_t>((*engine)->config().vocab_size);
  std::vector<float> logits(tokens.size() * V);
  st = session.Forward(tokens, LogitsMode::kAll, logits.data());
  if (st.ok() && !logits_out.empty()) {
    st = WriteFileAtomic(logits_out, logits.data(), logits.size() * sizeof(float));
  }
  if (st.ok() && !trace_out.empty()) {
    const std::string text = TraceToJsonLines(trace);
    st = WriteFileAtomic(trace_out, text.data(), text.size());
  }
  if (st.ok()) st = model.ReportExpertStats(**engine, stats);
  if (!st.ok()) return flags.Fail(st);
  return 0;
}

}  // namespace

MOE_COMMAND("eval", "run token ids as one prompt; write logits of every position (+ routing trace)",
            Eval);

}  // namespace moe::app
