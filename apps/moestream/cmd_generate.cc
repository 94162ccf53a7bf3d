// SPDX-License-Identifier: Apache-2.0
// moestream generate / run: continue a prompt (text through the model's tokenizer, or token
// ids) greedily or by sampling, streaming the output as it is produced.
//   generate --prompt TEXT   prints the continuation as text
//   generate --tokens IDS    prints the new token ids, comma separated
//   run [--prompt TEXT]      the same as generate --prompt, echoing the prompt first
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "command.h"
#include "model_flags.h"
#include "runtime/generator.h"
#include "tokenizer/tokenizer.h"
#include "util/thread_pool.h"

namespace moe::app {
namespace {

constexpr const char* kRunDefaultPrompt = "1 In the beginning God created";

Status ValidateSampling(const SamplingParams& p, int64_t n_new) {
  if (n_new < 0) return Error(StatusCode::kUsage, "-n must be ≥ 0");
  if (p.temperature < 0) return Error(StatusCode::kUsage, "--temperature must be ≥ 0");
  if (p.top_p <= 0 || p.top_p > 1) return Error(StatusCode::kUsage, "--top-p must be in (0, 1]");
  if (p.min_p < 0 || p.min_p > 1) return Error(StatusCode::kUsage, "--min-p must be in [0, 1]");
  if (p.repetition_penalty <= 0) return Error(StatusCode::kUsage, "--repetition-penalty must be > 0");
  if (p.top_k < 0) return Error(StatusCode::kUsage, "--sample-top-k must be ≥ 0");
  return Status::Ok();
}

int GenerateOrRun(int argc, char** argv, bool run_mode) {
  Flags flags(run_mode ? "run" : "generate",
              run_mode ? "continue a text prompt with the model (default: the bundled model)"
                       : "continue a prompt (--prompt TEXT or --tokens IDS), greedy or sampled");
  ModelFlags model;
  model.Register(flags);
  SamplingFlags sampling;
  if (run_mode) {  // run samples by default; generate is greedy unless asked
    sampling.params.temperature = 0.8f;
    sampling.params.top_p = 0.95f;
    sampling.params.repetition_penalty = 1.1f;
  }
  sampling.Register(flags);
  std::vector<int32_t> tokens;
  std::string prompt;
  int64_t n_new = run_mode ? 64 : 32;
  bool ignore_eos = false, stats = false;
  flags.String("prompt", &prompt, "prompt text, encoded with the model's tokenizer.json");
  flags.Custom("tokens",
               [&](const std::string& v) -> Status {
                 MOE_ASSIGN_OR_RETURN(tokens, ParseIdList(v, "tokens"));
                 return Status::Ok();
               },
               "prompt token ids, e.g. 5,17,300", "IDS");
  flags.Int("n", &n_new, "maximum new tokens");
  flags.Bool("ignore-eos", &ignore_eos, "do not stop at the model's EOS ids");
  flags.Bool("stats", &stats, "print timing (and expert cache statistics) to stderr");
  Status st = flags.Parse(argc, argv);
  if (flags.help_requested()) {
    flags.PrintUsage(stdout);
    return 0;
  }
  if (st.ok()) st = model.ResolveModelDir();
  if (st.ok() && run_mode && prompt.empty() && tokens.empty()) prompt = kRunDefaultPrompt;
  if (st.ok() && prompt.empty() == tokens.empty()) {
    st = Error(StatusCode::kUsage, "give exactly one of --prompt TEXT or --tokens IDS");
  }
  if (st.ok()) st = ValidateSampling(sampling.params, n_new);
  if (!st.ok()) return flags.Fail(st);
  model.WarnIfLossy();
  sampling.params.seed = static_cast<uint64_t>(sampling.seed);

  const bool text_mode = !prompt.empty();
  std::optional<Tokenizer> tokenizer;
  if (text_mode) {
    auto tok = Tokenizer::Load(model.engine.model_dir);
    if (!tok.ok()) return flags.Fail(tok.status());
    tokenizer.emplace(std::move(tok).value());
    auto ids = tokenizer->Encode(prompt);
    if (!ids.ok()) return flags.Fail(ids.status());
    tokens = std::move(ids).value();
    if (tokens.empty()) return flags.Fail(Error(StatusCode::kUsage, "--prompt encodes to no tokens"));
  }
  model.UseLmHeadShadowIfTopK(sampling.params);
  auto engine = Engine::Open(model.engine);
  if (!engine.ok()) return flags.Fail(engine.status());
  ThreadPool pool(model.n_threads());
  SessionOptions so = model.session;
  so.max_context = std::max<int64_t>(so.max_context, static_cast<int64_t>(tokens.size()) + n_new);
  Session session(**engine, pool, so);
  GenerateOptions go;
  go.max_new_tokens = n_new;
  go.sampling = sampling.params;
  if (!ignore_eos) {
    for (int64_t id : (*engine)->config().eos_token_ids) go.stop_ids.push_back(static_cast<int32_t>(id));
    if (tokenizer) {
      for (const char* s : {"<|im_end|>", "<|endoftext|>"}) {
        if (int32_t id = tokenizer->TokenId(s); id >= 0) go.stop_ids.push_back(id);
      }
    }
  }
  std::optional<StreamDecoder> decoder;
  if (tokenizer) decoder.emplace(*tokenizer, /*skip_special_tokens=*/true);
  if (run_mode) {
    std::fputs(prompt.c_str(), stdout);
    std::fflush(stdout);
  }
  bool first = true;
  std::string piece;
  GenerateStats gs;
  st = moe::Generate(session, tokens, go,
                     [&](int32_t tok) {
                       if (decoder) {
                         piece.clear();
                         decoder->Push(tok, &piece);
                         std::fputs(piece.c_str(), stdout);
                       } else {
                         std::printf(first ? "%d" : ",%d", tok);
                       }
                       std::fflush(stdout);
                       first = false;
                       return true;
                     },
                     nullptr, &gs);
  if (decoder) {
    piece.clear();
    decoder->Finish(&piece);
    std::fputs(piece.c_str(), stdout);
  }
  std::printf("\n");
  if (!st.ok()) return flags.Fail(st);
  if (stats) {
    std::fprintf(stderr, "prompt %lld tokens in %.1f ms; %lld new tokens in %.1f ms (%.2f tok/s)\n",
                 static_cast<long long>(gs.prompt_tokens), gs.prefill_ms,
                 static_cast<long long>(gs.generated_tokens), gs.decode_ms,
                 gs.decode_ms > 0 ? 1000.0 * static_cast<double>(gs.generated_tokens - 1) / gs.decode_ms : 0.0);
    if (gs.decode_phases.forwards > 0) {
      std::fprintf(stderr, "decode per token: %s\n", PhaseSummary(gs.decode_phases).c_str());
    }
    if (session.has_greedy_head()) {
      const Session::GreedyHeadStats& g = session.greedy_head_stats();
      std::fprintf(stderr,
                   "lm_head shadow (q8): %lld steps, %.2f exact rows per step, %lld full "
                   "products\n",
                   static_cast<long long>(g.tokens),
                   g.tokens > 0 ? static_cast<double>(g.candidate_rows) / static_cast<double>(g.tokens)
                                : 0.0,
                   static_cast<long long>(g.fallbacks));
    }
  }
  st = model.ReportExpertStats(**engine, stats);
  if (!st.ok()) return flags.Fail(st);
  return 0;
}

int Generate(int argc, char** argv) { return GenerateOrRun(argc, argv, false); }
int Run(int argc, char** argv) { return GenerateOrRun(argc, argv, true); }

}  // namespace

MOE_COMMAND("generate", "continue a prompt (--prompt TEXT or --tokens IDS), greedy or sampled",
            Generate);
MOE_COMMAND("run", "continue a text prompt with the bundled (or --model) model", Run);

}  // namespace moe::app
