// SPDX-License-Identifier: Apache-2.0
// moestream generate: continue a prompt (token ids) greedily or by sampling.
#include <cstdio>
#include <string>
#include <vector>

#include "command.h"
#include "model_flags.h"
#include "runtime/generator.h"
#include "util/thread_pool.h"

namespace moe::app {
namespace {

int Generate(int argc, char** argv) {
  Flags flags("generate", "continue a prompt of token ids; prints the new ids as they come");
  ModelFlags model;
  model.Register(flags);
  SamplingFlags sampling;
  sampling.Register(flags);
  std::vector<int32_t> tokens;
  int64_t n_new = 32;
  bool ignore_eos = false, stats = false;
  flags.Custom("tokens",
               [&](const std::string& v) -> Status {
                 MOE_ASSIGN_OR_RETURN(tokens, ParseIdList(v, "tokens"));
                 return Status::Ok();
               },
               "prompt token ids, e.g. 5,17,300", "IDS");
  flags.Int("n", &n_new, "maximum new tokens (default 32)");
  flags.Bool("ignore-eos", &ignore_eos, "do not stop at the model's EOS ids");
  flags.Bool("stats", &stats, "print timing to stderr");
  Status st = flags.Parse(argc, argv);
  if (flags.help_requested()) {
    flags.PrintUsage(stdout);
    return 0;
  }
  if (st.ok() && model.engine.model_dir.empty()) st = Error(StatusCode::kUsage, "--model is required");
  if (st.ok() && tokens.empty()) st = Error(StatusCode::kUsage, "--tokens is required");
  if (st.ok() && n_new < 0) st = Error(StatusCode::kUsage, "-n must be ≥ 0");
  if (st.ok() && sampling.params.temperature < 0) st = Error(StatusCode::kUsage, "--temperature must be ≥ 0");
  if (st.ok() && (sampling.params.top_p <= 0 || sampling.params.top_p > 1)) {
    st = Error(StatusCode::kUsage, "--top-p must be in (0, 1]");
  }
  if (st.ok() && (sampling.params.min_p < 0 || sampling.params.min_p > 1)) {
    st = Error(StatusCode::kUsage, "--min-p must be in [0, 1]");
  }
  if (st.ok() && sampling.params.repetition_penalty <= 0) {
    st = Error(StatusCode::kUsage, "--repetition-penalty must be > 0");
  }
  if (st.ok() && sampling.params.top_k < 0) st = Error(StatusCode::kUsage, "--sample-top-k must be ≥ 0");
  if (!st.ok()) return flags.Fail(st);
  model.WarnIfLossy();
  sampling.params.seed = static_cast<uint64_t>(sampling.seed);

  auto engine = Engine::Open(model.engine);
  if (!engine.ok()) return flags.Fail(engine.status());
  ThreadPool pool(model.n_threads());
  Session session(**engine, pool, model.session);
  GenerateOptions go;
  go.max_new_tokens = n_new;
  go.sampling = sampling.params;
  if (!ignore_eos) {
    for (int64_t id : (*engine)->config().eos_token_ids) go.stop_ids.push_back(static_cast<int32_t>(id));
  }
  bool first = true;
  GenerateStats gs;
  st = moe::Generate(session, tokens, go,
                     [&](int32_t tok) {
                       std::printf(first ? "%d" : ",%d", tok);
                       std::fflush(stdout);
                       first = false;
                       return true;
                     },
                     nullptr, &gs);
  std::printf("\n");
  if (!st.ok()) return flags.Fail(st);
  if (stats) {
    std::fprintf(stderr, "prompt %lld tokens in %.1f ms; %lld new tokens in %.1f ms (%.2f tok/s)\n",
                 static_cast<long long>(gs.prompt_tokens), gs.prefill_ms,
                 static_cast<long long>(gs.generated_tokens), gs.decode_ms,
                 gs.decode_ms > 0 ? 1000.0 * static_cast<double>(gs.generated_tokens - 1) / gs.decode_ms : 0.0);
  }
  st = model.ReportExpertStats(**engine, stats);  // expert cache stats (experts owner)
  if (!st.ok()) return flags.Fail(st);
  return 0;
}

}  // namespace

MOE_COMMAND("generate", "continue a prompt of token ids (greedy or sampled)", Generate);

}  // namespace moe::app
