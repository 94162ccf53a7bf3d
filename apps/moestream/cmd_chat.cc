// SPDX-License-Identifier: Apache-2.0
// moestream chat: interactive multi-turn chat, streamed. Each user line becomes a turn; the whole
// conversation is rendered with the Qwen3 ChatML template and the KV cache is reused for the
// token prefix it shares with the previous turn (earlier turns' reasoning is dropped by the
// template, so the shared prefix can be shorter than the history). Commands: /reset, /quit.
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <unistd.h>

#include "command.h"
#include "model_flags.h"
#include "runtime/generator.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "util/thread_pool.h"

namespace moe::app {
namespace {

size_t CommonPrefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  size_t n = 0;
  while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
  return n;
}

int Chat(int argc, char** argv) {
  Flags flags("chat", "interactive multi-turn chat (Qwen3 ChatML); one user message per line");
  ModelFlags model;
  model.Register(flags);
  SamplingFlags sampling;
  sampling.params.temperature = 0.7f;
  sampling.params.top_p = 0.9f;
  sampling.params.top_k = 20;
  sampling.Register(flags);
  std::string system;
  int64_t n_new = 256;
  bool no_think = false;
  flags.String("system", &system, "system prompt");
  flags.Int("n", &n_new, "maximum new tokens per reply (default 256)");
  flags.Bool("no-think", &no_think, "enable_thinking=false: the template inserts an empty thought");
  Status st = flags.Parse(argc, argv);
  if (flags.help_requested()) {
    flags.PrintUsage(stdout);
    return 0;
  }
  if (st.ok()) st = model.ResolveModelDir();
  if (st.ok() && n_new <= 0) st = Error(StatusCode::kUsage, "-n must be > 0");
  if (!st.ok()) return flags.Fail(st);
  model.WarnIfLossy();
  sampling.params.seed = static_cast<uint64_t>(sampling.seed);

  auto tok = Tokenizer::Load(model.engine.model_dir);
  if (!tok.ok()) return flags.Fail(tok.status());
  model.UseLmHeadShadowIfTopK(sampling.params);
  auto engine = Engine::Open(model.engine);
  if (!engine.ok()) return flags.Fail(engine.status());
  ThreadPool pool(model.n_threads());
  Session session(**engine, pool, model.session);
  GenerateOptions go;
  go.max_new_tokens = n_new;
  go.sampling = sampling.params;
  for (const char* s : {kQwenImEnd, kQwenEndOfText}) {
    if (int32_t id = tok->TokenId(s); id >= 0) go.stop_ids.push_back(id);
  }
  for (int64_t id : (*engine)->config().eos_token_ids) go.stop_ids.push_back(static_cast<int32_t>(id));

  std::vector<ChatMessage> messages;
  if (!system.empty()) messages.push_back({"system", system, std::nullopt});
  std::vector<int32_t> in_cache;  // tokens whose KV entries the session holds
  const bool tty = isatty(0);
  std::string line;
  for (;;) {
    if (tty) std::fprintf(stderr, "> ");
    if (!std::getline(std::cin, line)) break;
    if (line == "/quit") break;
    if (line == "/reset") {
      messages.resize(system.empty() ? 0 : 1);
      session.Reset();
      in_cache.clear();
      continue;
    }
    if (line.empty()) continue;
    messages.push_back({"user", line, std::nullopt});
    const std::string rendered = RenderQwen3Chat(messages, {true, !no_think});
    auto ids = tok->Encode(rendered);
    if (!ids.ok()) return flags.Fail(ids.status());
    if (static_cast<int64_t>(ids->size()) + n_new > session.max_context()) {
      return flags.Fail(Error(StatusCode::kUsage,
                              "conversation of {} tokens + {} new exceeds the context of {} (--ctx)",
                              ids->size(), n_new, session.max_context()));
    }
    const size_t keep = CommonPrefix(in_cache, *ids);
    session.Truncate(static_cast<int64_t>(keep));
    in_cache.assign(ids->begin(), ids->begin() + static_cast<ptrdiff_t>(keep));
    StreamDecoder dec(*tok, /*skip_special_tokens=*/true);
    std::string piece, reply_text;
    std::vector<int32_t> reply;
    st = moe::Generate(session, std::span<const int32_t>(*ids).subspan(keep), go,
                       [&](int32_t t) {
                         piece.clear();
                         dec.Push(t, &piece);
                         reply_text += piece;
                         std::fputs(piece.c_str(), stdout);
                         std::fflush(stdout);
                         return true;
                       },
                       &reply, nullptr);
    piece.clear();
    dec.Finish(&piece);
    reply_text += piece;
    std::fputs((piece + "\n").c_str(), stdout);
    std::fflush(stdout);
    if (!st.ok()) return flags.Fail(st);
    // The session now holds the prompt and every reply token but the last one sampled.
    in_cache.insert(in_cache.end(), ids->begin() + static_cast<ptrdiff_t>(keep), ids->end());
    if (!reply.empty()) in_cache.insert(in_cache.end(), reply.begin(), reply.end() - 1);
    messages.push_back({"assistant", reply_text, std::nullopt});
  }
  return 0;
}

}  // namespace

MOE_COMMAND("chat", "interactive multi-turn chat, streamed (Qwen3 ChatML template)", Chat);

}  // namespace moe::app
