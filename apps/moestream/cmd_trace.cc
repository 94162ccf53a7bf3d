// SPDX-License-Identifier: Apache-2.0
// moestream trace: the routing trace (JSON lines, analysis/router_trace.h) of a text.
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

int Trace(int argc, char** argv) {
  Flags flags("trace",
              "routing trace (JSON lines) of a text; windows of --ctx tokens (default 512), each "
              "from an empty context; default model: the bundled models/qwen3-moe-ref");
  ModelFlags model;
  model.session.max_context = 512;
  model.Register(flags);
  std::string prompt, file, out;
  flags.String("prompt", &prompt, "the text to trace");
  flags.String("file", &file, "a UTF-8 text file to trace");
  flags.String("out", &out, "output file (default: stdout)");
  int64_t max_tokens = 0;
  flags.Int("max-tokens", &max_tokens, "trace only the first N tokens of the text (0 = all)");
  Status st = flags.Parse(argc, argv);
  if (flags.help_requested()) {
    flags.PrintUsage(stdout);
    return 0;
  }
  if (st.ok() && prompt.empty() == file.empty()) {
    st = Error(StatusCode::kUsage, "give exactly one of --prompt and --file");
  }
  if (st.ok() && max_tokens < 0) st = Error(StatusCode::kUsage, "--max-tokens must be ≥ 0");
  if (!st.ok()) return flags.Fail(st);
  st = model.ResolveModelDir();
  if (!st.ok()) return flags.Fail(st);
  model.WarnIfLossy();
  if (!file.empty()) {
    auto text = ReadFileToString(file, uint64_t{1} << 30);
    if (!text.ok()) return flags.Fail(text.status());
    prompt = std::move(*text);
  }
  auto tok = Tokenizer::Load(model.engine.model_dir);
  if (!tok.ok()) return flags.Fail(tok.status());
  auto ids = tok->Encode(prompt);
  if (!ids.ok()) return flags.Fail(ids.status());
  if (max_tokens > 0 && static_cast<int64_t>(ids->size()) > max_tokens) {
    ids->resize(static_cast<size_t>(max_tokens));
  }
  if (ids->empty()) return flags.Fail(Error(StatusCode::kUsage, "the text has no tokens"));
  auto engine = Engine::Open(model.engine);
  if (!engine.ok()) return flags.Fail(engine.status());
  ThreadPool pool(model.n_threads());
  Session session(**engine, pool, model.session);
  std::vector<RouteRecord> trace;
  session.set_route_recorder(&trace);
  st = ForwardWindows(session, *ids, session.max_context());
  if (st.ok()) st = WriteOutput(out, TraceToJsonLines(trace));
  if (st.ok()) st = model.ReportExpertStats(**engine, false);
  if (!st.ok()) return flags.Fail(st);
  std::fprintf(stderr, "trace: %zu tokens, windows of %lld, %zu routing records\n", ids->size(),
               static_cast<long long>(session.max_context()), trace.size());
  return 0;
}

}  // namespace

MOE_COMMAND("trace", "routing trace (JSON lines) of a text (--prompt or --file)", Trace);

}  // namespace moe::app
