// SPDX-License-Identifier: Apache-2.0
// moestream bench: a prompt of P tokens (prefill) then D greedy decode steps, repeated R times;
// prints ONE JSON object (docs/benchmarks.md): speeds, time to first token, expert cache
// behaviour during decode, achieved memory and disk bandwidth, and the build/CPU/SIMD target.
// Timings are medians over the repeats; cache figures are summed over the decode phases of all
// repeats (prefill phases are reported separately).
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <numeric>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "command.h"
#include "kernels/kernels.h"
#include "model_flags.h"
#include "runtime/memory_probe.h"
#include "runtime/session.h"
#include "tokenizer/tokenizer.h"
#include "util/file.h"
#include "util/thread_pool.h"

#include "git_commit.h"  // generated at build time: MOE_GIT_COMMIT

namespace moe::app {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::string CpuModel() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("model name", 0) == 0) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos) {
        size_t b = colon + 1;
        while (b < line.size() && line[b] == ' ') ++b;
        return line.substr(b);
      }
    }
  }
  return "unknown";
}

// JSON string literal (quotes, backslashes and control characters escaped).
std::string JsonStr(const std::string& s) {
  std::string o = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') {
      o += '\\';
      o += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      o += fmt::format("\\u{:04x}", static_cast<int>(c));
    } else {
      o += c;
    }
  }
  return o + "\"";
}

uint64_t ViewBytes(const kernels::WeightView& v) {
  return v.data ? kernels::WeightMatrixBytes(v.type, v.rows, v.cols) : 0;
}

// Expert bytes one decode token reads: top-k blocks of every MoE layer (the part of
// WeightBytesPerDecodeToken that streams from disk on a miss).
uint64_t ExpertBytesPerDecodeToken(const Engine& e) {
  const uint64_t block = e.expert_source().geometry().block_bytes();
  uint64_t b = 0;
  for (int64_t l = 0; l < e.config().num_hidden_layers; ++l) {
    if (e.weights().layer(l).is_moe) b += static_cast<uint64_t>(e.top_k()) * block;
  }
  return b;
}

// The lm_head matrix a decode token reads: its q8 shadow with --lm-head-shadow (the bench then
// decodes with Session::ForwardArgmax, which reads the candidate rows on top: counted as
// measured), else lm_head itself.
const kernels::WeightView& DecodeLmHead(const Engine& e) {
  return e.greedy_head() ? e.greedy_head()->shadow() : e.weights().lm_head().view;
}

// Bytes of a decode token outside its layers: one embedding row, the final norm and lm_head
// (the work between one token's last layer and the next token's first router, which no
// next-layer prediction can overlap with reads).
uint64_t HeadBytesPerDecodeToken(const Engine& e) {
  const ModelWeights& w = e.weights();
  const kernels::WeightView& emb = w.embed().view;
  return ViewBytes(w.final_norm().view) + ViewBytes(DecodeLmHead(e)) +
         kernels::WeightMatrixBytes(emb.type, 1, emb.cols);
}

int64_t MoeLayers(const Engine& e) {
  int64_t n = 0;
  for (int64_t l = 0; l < e.config().num_hidden_layers; ++l) n += e.weights().layer(l).is_moe;
  return n;
}

// Weight bytes one decode token reads: every dense matrix and norm, one embedding row, the
// final norm and lm_head, plus top_k expert blocks per MoE layer. `tiled_only`: just the part
// held in the tiled layout (kernels.h; --weight-layout).
uint64_t WeightBytesPerDecodeToken(const Engine& e, bool tiled_only = false) {
  const ModelWeights& w = e.weights();
  const auto bytes = [&](const kernels::WeightView& v) {
    return !tiled_only || v.tiled ? ViewBytes(v) : 0;
  };
  uint64_t b = bytes(w.final_norm().view) + bytes(DecodeLmHead(e));
  const kernels::WeightView& emb = w.embed().view;
  if (!tiled_only) b += kernels::WeightMatrixBytes(emb.type, 1, emb.cols);
  for (int64_t l = 0; l < w.config().num_hidden_layers; ++l) {
    const LayerWeights& lw = w.layer(l);
    for (const DenseTensor* t :
         {&lw.input_layernorm, &lw.post_attention_layernorm, &lw.attn.q_proj, &lw.attn.k_proj,
          &lw.attn.v_proj, &lw.attn.o_proj, &lw.attn.q_norm, &lw.attn.k_norm, &lw.router,
          &lw.mlp_gate, &lw.mlp_up, &lw.mlp_down}) {
      b += bytes(t->view);
    }
  }
  const bool experts_tiled =
      (e.resident_experts() && e.resident_experts()->geometry().tiled) ||
      (e.expert_cache() && e.expert_cache()->geometry().tiled);
  return b + (!tiled_only || experts_tiled ? ExpertBytesPerDecodeToken(e) : 0);
}

LayerCacheStats Diff(const LayerCacheStats& a, const LayerCacheStats& b) {  // b − a
  LayerCacheStats d = b;
  d.Sub(a);
  return d;
}

LayerCacheStats Totals(const Engine& e) {
  return e.expert_cache() ? e.expert_cache()->Stats().total : LayerCacheStats{};
}

uint64_t IoBusyNs(const Engine& e) { return e.expert_cache() ? e.expert_cache()->io_busy_ns() : 0; }
using InFlightNs = std::array<uint64_t, Loader::kInFlightBuckets>;
InFlightNs IoInFlightNs(const Engine& e) {
  return e.expert_cache() ? e.expert_cache()->io_in_flight_ns() : InFlightNs{};
}

// Bytes over the time reads were in flight, GB/s (0 when nothing was read).
double ReadPathGbS(uint64_t bytes, uint64_t busy_ns) {
  return busy_ns ? static_cast<double>(bytes) / static_cast<double>(busy_ns) : 0;
}

// Mean next-token NLL (nats) of `ids` in windows of `window` tokens, each window a fresh
// context; every position after the first of a window is predicted.
Result<std::pair<double, int64_t>> MeanNll(Session& session, const std::vector<int32_t>& ids,
                                           int64_t window) {
  const size_t V = static_cast<size_t>(session.vocab_size());
  std::vector<float> logits(static_cast<size_t>(window) * V);
  double nll = 0;
  int64_t n = 0;
  for (size_t b = 0; b + 1 < ids.size(); b += static_cast<size_t>(window)) {
    const size_t len = std::min(ids.size() - b, static_cast<size_t>(window));
    if (len < 2) break;
    session.Reset();
    MOE_TRY(session.Forward(std::span<const int32_t>(&ids[b], len), LogitsMode::kAll,
                            logits.data()));
    for (size_t t = 0; t + 1 < len; ++t) {
      const float* row = &logits[t * V];
      const double mx = *std::max_element(row, row + V);
      double sum = 0;
      for (size_t v = 0; v < V; ++v) sum += std::exp(static_cast<double>(row[v]) - mx);
      nll += mx + std::log(sum) - row[ids[b + t + 1]];
      ++n;
    }
  }
  return std::make_pair(n ? nll / static_cast<double>(n) : 0.0, n);
}

// "decode_phases": per phase of a decode token (runtime/phase_profile.h) its wall time, the
// bytes of the matrices it multiplied and the rate at which it moved them; "rest" is the part
// of Forward no phase covers (embedding row, norms, residual adds); "pool_tail_ms_per_token":
// the ParallelFor tails inside them (runtime's caller waiting for the last task), per phase
// (the MatMuls') and in all.
std::string DecodePhasesJson(const PhaseProfile& p, uint64_t tail_ns, double tokens) {
  const auto ms = [&](uint64_t ns) {
    return tokens > 0 ? static_cast<double>(ns) / 1e6 / tokens : 0;
  };
  std::string j = "\"decode_phases\":{";
  for (size_t i = 0; i < kPhaseCount; ++i) {
    j += fmt::format(
        "\"{}\":{{\"ms_per_token\":{:.4f},\"weight_bytes_per_token\":{:.1f},"
        "\"weight_gb_s\":{:.3f},\"pool_tail_ms_per_token\":{:.4f}}},",
        PhaseName(static_cast<Phase>(i)), ms(p.ns[i]),
        tokens > 0 ? static_cast<double>(p.weight_bytes[i]) / tokens : 0,
        p.ns[i] ? static_cast<double>(p.weight_bytes[i]) / static_cast<double>(p.ns[i]) : 0,
        ms(p.tail_ns[i]));
  }
  j += fmt::format("\"rest\":{{\"ms_per_token\":{:.4f}}}}},",
                   ms(p.rest_ns()));
  j += fmt::format("\"pool_tail_ms_per_token\":{:.4f},", ms(tail_ns));
  return j;
}

int Bench(int argc, char** argv) {
  Flags flags("bench", "prefill P tokens then decode D tokens, R times; print one JSON object");
  ModelFlags model;
  model.Register(flags);
  int64_t prompt_tokens = 64, decode_tokens = 32, repeat = 3, seed = 1;
  flags.Int("prompt-tokens", &prompt_tokens, "prompt length P (default 64)");
  flags.Int("decode-tokens", &decode_tokens, "greedy decode steps D after the prompt (default 32)");
  flags.Int("repeat", &repeat, "repetitions R; timings are medians (default 3)");
  flags.Int("seed", &seed, "seed of the deterministic pseudo-random prompt ids (default 1)");
  std::string ppl_text;
  int64_t ppl_window = 256;
  flags.String("ppl-text", &ppl_text, "also report perplexity of this text file (model tokenizer)");
  flags.Int("ppl-window", &ppl_window, "tokens per perplexity window (default 256)");
  bool measure_memory = false;
  flags.Bool("measure-memory", &measure_memory,
             "also measure memory read bandwidth (512 MiB, --threads) before and after each "
             "repeat, the larger counting, and the decode roofline");
  bool probe_each_token = false;
  flags.Bool("probe-each-token", &probe_each_token,
             "with --measure-memory: also probe 256 MiB once between decode tokens (not timed) "
             "and report each token against the probes around it; for resident or all-cached "
             "runs (a pause lets streamed reads catch up)");
  Status st = flags.Parse(argc, argv);
  if (flags.help_requested()) {
    flags.PrintUsage(stdout);
    return 0;
  }
  if (st.ok()) st = model.ResolveModelDir();
  if (st.ok() && (prompt_tokens < 1 || decode_tokens < 1 || repeat < 1)) {
    st = Error(StatusCode::kUsage, "--prompt-tokens, --decode-tokens and --repeat must be ≥ 1");
  }
  if (st.ok() && probe_each_token && !measure_memory) {
    st = Error(StatusCode::kUsage, "--probe-each-token needs --measure-memory");
  }
  if (!st.ok()) return flags.Fail(st);
  model.WarnIfLossy();

  const auto t_open = Clock::now();
  auto engine_r = Engine::Open(model.engine);
  if (!engine_r.ok()) return flags.Fail(engine_r.status());
  const Engine& engine = **engine_r;
  // The expert cache faults its arena in behind the scenes; the bench times the steady state,
  // so open_s includes the wait (a chat starts at once instead: docs/expert_cache.md).
  if (engine.expert_cache()) engine.expert_cache()->WaitArenaPrefaulted();
  const double open_s = Seconds(t_open, Clock::now());
  ThreadPool pool(model.n_threads());
  SessionOptions so = model.session;
  so.max_context = std::max<int64_t>(so.max_context, prompt_tokens + decode_tokens);
  Session session(engine, pool, so);
  const int64_t V = session.vocab_size();
  if (prompt_tokens + decode_tokens > session.max_context()) {
    return flags.Fail(Error(StatusCode::kUsage, "P + D = {} exceed the model's context of {}",
                            prompt_tokens + decode_tokens, session.max_context()));
  }
  // Deterministic prompt ids (splitmix64), the same for every run of the same seed.
  std::vector<int32_t> prompt(static_cast<size_t>(prompt_tokens));
  uint64_t s = static_cast<uint64_t>(seed);
  for (int32_t& id : prompt) {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    id = static_cast<int32_t>((z ^ (z >> 31)) % static_cast<uint64_t>(V));
  }

  double ppl_nll = 0;
  int64_t ppl_n = 0;
  if (!ppl_text.empty()) {
    auto text = ReadFileToString(ppl_text, 1ull << 30);
    if (!text.ok()) return flags.Fail(text.status());
    auto tok = Tokenizer::Load(model.engine.model_dir);
    if (!tok.ok()) return flags.Fail(tok.status());
    auto ids = tok->Encode(*text);
    if (!ids.ok()) return flags.Fail(ids.status());
    if (ppl_window < 2 || ppl_window > session.max_context()) {
      return flags.Fail(Error(StatusCode::kUsage, "--ppl-window {}: expected 2..{}", ppl_window,
                              session.max_context()));
    }
    auto r = MeanNll(session, *ids, ppl_window);
    if (!r.ok()) return flags.Fail(r.status());
    std::tie(ppl_nll, ppl_n) = *r;
  }
  std::unique_ptr<MemoryProbe> probe;
  if (measure_memory) probe = std::make_unique<MemoryProbe>();
  std::vector<double> prefill_s, decode_s, ttft_s, probe_before_gb_s, probe_after_gb_s;
  // Bytes a decode token must read: weights, and K and V (f32, every layer) per position it
  // attends to.
  const uint64_t wbytes = WeightBytesPerDecodeToken(engine);
  const Qwen3MoeConfig& cfg = engine.config();
  const double kv_bytes_per_position = static_cast<double>(cfg.num_hidden_layers) *
                                       static_cast<double>(cfg.num_key_value_heads * cfg.head_dim) *
                                       2 * 4;
  // --probe-each-token: per decode token, its share of the memory roofline against the larger
  // of the quick probes just before and just after it, and that probe.
  constexpr size_t kTokenProbeBytes = size_t{256} << 20;
  std::vector<double> token_share, token_probe_gb_s;
  LayerCacheStats prefill_cache, decode_cache;
  uint64_t prefill_busy_ns = 0, decode_busy_ns = 0, decode_hashed = 0, decode_tail_ns = 0;
  PhaseProfile decode_phases;
  InFlightNs decode_in_flight_ns{};
  std::vector<int32_t> first_run_ids;
  // The greedy choice (Session::ForwardArgmax): from all logits, or with --lm-head-shadow from
  // the shadow and the candidate rows (the same ids), whose bytes a token reads beyond wbytes.
  const auto greedy = [&](std::span<const int32_t> tokens, int32_t* id) {
    return session.ForwardArgmax(tokens, id);
  };
  const uint64_t lm_row_bytes = kernels::WeightMatrixBytes(engine.weights().lm_head().view.type,
                                                           1, engine.weights().lm_head().view.cols);
  const auto extra_head_bytes = [&](const Session::GreedyHeadStats& a,
                                    const Session::GreedyHeadStats& b) {
    return static_cast<double>(b.candidate_rows - a.candidate_rows) *
               static_cast<double>(lm_row_bytes) +
           static_cast<double>(b.fallbacks - a.fallbacks) *
               static_cast<double>(ViewBytes(engine.weights().lm_head().view));
  };
  Session::GreedyHeadStats decode_greedy;  // decode steps only, all repeats
  for (int64_t r = 0; r < repeat; ++r) {
    session.Reset();
    // The memory probe runs right before and right after each repeat, so each decode is
    // compared with the bandwidth the machine gave at that time: a shared VM drifts by ±20%
    // within a minute, and some hosts switch between two memory rates (29-38 and 59-69 GB/s
    // on session 19's); the larger probe counts, so a switch mid-run cannot lift the share.
    if (probe) probe_before_gb_s.push_back(probe->GbS(pool));
    const LayerCacheStats c0 = Totals(engine);
    const uint64_t b0 = IoBusyNs(engine);
    const auto t0 = Clock::now();
    int32_t next = 0;
    st = greedy(prompt, &next);
    if (!st.ok()) return flags.Fail(st);
    const auto t1 = Clock::now();
    const LayerCacheStats c1 = Totals(engine);
    const uint64_t b1 = IoBusyNs(engine);
    const uint64_t h1 = engine.expert_source().blocks_hashed();
    const PhaseProfile p1 = session.profile();
    const uint64_t tail1 = pool.tail_wait_ns();
    const Session::GreedyHeadStats gh1 = session.greedy_head_stats();
    const InFlightNs f1 = IoInFlightNs(engine);
    double probes_s = 0, quick_before = 0;  // the per-token probes' time is not decode time
    if (probe_each_token) {
      const auto tp = Clock::now();
      quick_before = probe->QuickGbS(pool, kTokenProbeBytes);
      probes_s += Seconds(tp, Clock::now());
    }
    for (int64_t d = 0; d < decode_tokens; ++d) {
      if (r == 0) first_run_ids.push_back(next);
      const auto td = Clock::now();
      const Session::GreedyHeadStats g0 = session.greedy_head_stats();
      st = greedy(std::span<const int32_t>(&next, 1), &next);
      if (!st.ok()) return flags.Fail(st);
      if (probe_each_token) {
        const auto tp = Clock::now();
        const double quick_after = probe->QuickGbS(pool, kTokenProbeBytes);
        probes_s += Seconds(tp, Clock::now());
        const double p = std::max(quick_before, quick_after);
        token_probe_gb_s.push_back(p);
        const double bytes = static_cast<double>(wbytes) +
                             extra_head_bytes(g0, session.greedy_head_stats()) +
                             kv_bytes_per_position * static_cast<double>(prompt_tokens + d + 1);
        token_share.push_back(p > 0 ? bytes / Seconds(td, tp) / 1e9 / p : 0);
        quick_before = quick_after;
      }
    }
    const auto t2 = Clock::now();
    if (probe) probe_after_gb_s.push_back(probe->GbS(pool));
    prefill_cache.Add(Diff(c0, c1));
    decode_cache.Add(Diff(c1, Totals(engine)));
    prefill_busy_ns += b1 - b0;
    decode_busy_ns += IoBusyNs(engine) - b1;
    decode_hashed += engine.expert_source().blocks_hashed() - h1;
    PhaseProfile dp = session.profile();
    dp -= p1;
    decode_phases += dp;
    decode_tail_ns += pool.tail_wait_ns() - tail1;
    const Session::GreedyHeadStats gh2 = session.greedy_head_stats();
    decode_greedy.tokens += gh2.tokens - gh1.tokens;
    decode_greedy.candidate_rows += gh2.candidate_rows - gh1.candidate_rows;
    decode_greedy.fallbacks += gh2.fallbacks - gh1.fallbacks;
    const InFlightNs f2 = IoInFlightNs(engine);
    for (size_t i = 0; i < f2.size(); ++i) decode_in_flight_ns[i] += f2[i] - f1[i];
    prefill_s.push_back(Seconds(t0, t1));
    ttft_s.push_back(Seconds(t0, t1));
    decode_s.push_back(Seconds(t1, t2) - probes_s);
  }
  const double P = static_cast<double>(prompt_tokens), D = static_cast<double>(decode_tokens);
  const double R = static_cast<double>(repeat);
  const double pf = Median(prefill_s), dc = Median(decode_s);
  const double decode_total_s = std::accumulate(decode_s.begin(), decode_s.end(), 0.0);
  const double decode_tps = dc > 0 ? D / dc : 0;
  // KV-cache bytes a decode token reads (K and V, f32, every layer), averaged over the decode
  // steps: step i attends to P + i + 1 positions. Part of what decode must move, so part of
  // the memory roofline.
  const double kv_bytes = kv_bytes_per_position * (P + (D + 1) / 2);
  // With --lm-head-shadow, the candidate rows (and any full products) decode read on top.
  const double head_extra = extra_head_bytes({}, decode_greedy) / (D * R);
  const double mbytes = static_cast<double>(wbytes) + head_extra + kv_bytes;
  const LayerCacheStats& dcs = decode_cache;
  const uint64_t requests = dcs.hits + dcs.joins + dcs.misses;
  const bool streaming = engine.expert_cache() != nullptr;
  const ExpertGeometry& g = engine.expert_source().geometry();

  std::string j = "{";
  j += fmt::format("\"model\":{},", JsonStr(model.engine.model_dir));
  j += fmt::format("\"mode\":\"{}\",", streaming ? "streaming" : "resident");
  j += fmt::format("\"expert_cache_bytes\":{},",
                   streaming ? engine.expert_cache()->n_slots() * engine.expert_cache()->slot_bytes()
                             : 0);
  j += fmt::format("\"io\":{},\"io_threads\":{},\"io_depth\":{},\"verify_reads\":\"{}\",",
                   JsonStr(model.engine.io_mode), model.engine.io_threads, model.engine.io_depth,
                   VerifyReadsName(model.engine.verify_reads));
  j += fmt::format("\"expert_source\":{},", JsonStr(engine.expert_source().format()));
  j += fmt::format("\"expert_dtype\":\"{}\",", kernels::WeightTypeName(g.type));
  j += fmt::format("\"expert_block_bytes\":{},", g.block_bytes());
  j += fmt::format("\"threads\":{},", pool.n_threads());
  j += fmt::format("\"prompt_tokens\":{},\"decode_tokens\":{},\"repeat\":{},", prompt_tokens,
                   decode_tokens, repeat);
  j += fmt::format("\"open_s\":{:.4f},", open_s);
  j += fmt::format("\"prefill_tok_s\":{:.3f},", pf > 0 ? P / pf : 0);
  j += fmt::format("\"decode_tok_s\":{:.3f},", decode_tps);
  j += fmt::format("\"ttft_ms\":{:.3f},", Median(ttft_s) * 1e3);
  j += fmt::format("\"weight_bytes_per_decode_token\":{},", wbytes);
  j += fmt::format("\"weight_layout\":\"{}\",\"tiled_weight_bytes_per_decode_token\":{},",
                   model.engine.tile_weights ? "tiles" : "rows",
                   WeightBytesPerDecodeToken(engine, /*tiled_only=*/true));
  j += fmt::format("\"expert_bytes_per_decode_token\":{},", ExpertBytesPerDecodeToken(engine));
  j += fmt::format("\"head_bytes_per_decode_token\":{},\"moe_layers\":{},",
                   HeadBytesPerDecodeToken(engine), MoeLayers(engine));
  j += fmt::format("\"lm_head_shadow\":\"{}\",", engine.greedy_head() ? "q8" : "off");
  if (engine.greedy_head()) {
    j += fmt::format(
        "\"lm_head_candidate_rows_per_token\":{:.3f},\"lm_head_fallbacks\":{},"
        "\"lm_head_extra_bytes_per_decode_token\":{:.0f},",
        static_cast<double>(decode_greedy.candidate_rows) / (D * R), decode_greedy.fallbacks,
        head_extra);
  }
  j += fmt::format("\"kv_bytes_per_decode_token\":{:.0f},", kv_bytes);
  j += fmt::format("\"memory_gb_s\":{:.3f},", mbytes * decode_tps / 1e9);
  if (measure_memory) {
    // Share of the roofline per repeat (decode bytes/s over the larger of the probes taken
    // just before and just after it), then the median; the probe reported is the median of
    // the per-repeat larger probes.
    std::vector<double> share, probe_gb_s;
    for (size_t r = 0; r < decode_s.size(); ++r) {
      probe_gb_s.push_back(std::max(probe_before_gb_s[r], probe_after_gb_s[r]));
      const double gb_s = decode_s[r] > 0 ? mbytes * D / decode_s[r] / 1e9 : 0;
      share.push_back(probe_gb_s[r] > 0 ? gb_s / probe_gb_s[r] : 0);
    }
    const double mem_gb_s = Median(probe_gb_s);
    // Per repeat, for a roofline matched repeat by repeat (bench/scale/roofline.py): this
    // host's memory switches rate within seconds, so one probe for a whole run can be off by 2×.
    std::string tok_s_list, probe_list;
    for (size_t r = 0; r < decode_s.size(); ++r) {
      const char* sep = r ? "," : "";
      tok_s_list += fmt::format("{}{:.3f}", sep, decode_s[r] > 0 ? D / decode_s[r] : 0.0);
      probe_list += fmt::format("{}{:.3f}", sep, probe_gb_s[r]);
    }
    j += fmt::format("\"decode_tok_s_per_repeat\":[{}],\"memory_probe_per_repeat_gb_s\":[{}],",
                     tok_s_list, probe_list);
    j += fmt::format("\"measured_memory_gb_s\":{:.3f},", mem_gb_s);
    j += fmt::format("\"memory_probe_before_gb_s\":{:.3f},\"memory_probe_after_gb_s\":{:.3f},",
                     Median(probe_before_gb_s), Median(probe_after_gb_s));
    j += fmt::format("\"memory_roofline_tok_s\":{:.3f},", mem_gb_s * 1e9 / mbytes);
    j += fmt::format("\"decode_share_of_memory_roofline\":{:.4f},", Median(share));
    if (probe_each_token) {
      j += fmt::format("\"memory_probe_per_token_gb_s\":{:.3f},"
                       "\"decode_share_of_memory_roofline_per_token\":{:.4f},",
                       Median(token_probe_gb_s), Median(token_share));
    }
  }
  const auto per_decode_token = [&](uint64_t v) { return static_cast<double>(v) / (D * R); };
  j += fmt::format("\"bytes_read_per_token\":{:.1f},", per_decode_token(dcs.bytes_read));
  // Router lookahead (--prefetch), decode: reads issued, later used, dropped unread, and the
  // bytes of those read but never used (speculation's cost; what a token needs is
  // bytes_read_per_token minus these).
  j += fmt::format("\"prefetch\":\"{}\",", PrefetchModeName(model.engine.prefetch));
  j += fmt::format("\"prefetch_issued_per_token\":{:.4f},\"prefetch_used_per_token\":{:.4f},"
                   "\"prefetch_cancelled_per_token\":{:.4f},",
                   per_decode_token(dcs.prefetch_issued), per_decode_token(dcs.prefetch_used),
                   per_decode_token(dcs.prefetch_cancelled));
  j += fmt::format("\"prefetch_skipped_per_token\":{:.4f},",
                   per_decode_token(dcs.prefetch_skipped));
  j += fmt::format("\"prefetch_precision\":{:.4f},",
                   dcs.predicted ? static_cast<double>(dcs.predicted_and_actual) /
                                       static_cast<double>(dcs.predicted)
                                 : 0.0);
  j += fmt::format("\"prefetch_unused_bytes_per_token\":{:.1f},",
                   per_decode_token(dcs.prefetch_unused() * g.block_bytes()));
  // The background fill (--cache-fill), decode: reads into free slots and filled blocks used.
  // Its bytes are in bytes_read_per_token; a roofline counting what the tokens' own layers read
  // leaves all of them out (bench/scale/roofline.py), which can only raise its bar.
  j += fmt::format("\"cache_fill\":\"{}\",\"fill_issued_per_token\":{:.4f},"
                   "\"fill_used_per_token\":{:.4f},\"fill_bytes_per_token\":{:.1f},",
                   model.engine.cache_fill ? "on" : "off", per_decode_token(dcs.fill_issued),
                   per_decode_token(dcs.fill_used),
                   per_decode_token(dcs.fill_issued * g.block_bytes()));
  j += fmt::format("\"prefill_bytes_read_per_token\":{:.1f},",
                   static_cast<double>(prefill_cache.bytes_read) / (P * R));
  j += fmt::format("\"cache_hit_rate\":{:.4f},",
                   streaming ? (requests ? static_cast<double>(dcs.hits + dcs.joins) /
                                               static_cast<double>(requests)
                                         : 0.0)
                             : 1.0);
  j += fmt::format("\"io_wait_share\":{:.4f},",
                   decode_total_s > 0 ? static_cast<double>(dcs.wait_ns) / 1e9 / decode_total_s : 0);
  j += fmt::format("\"disk_gb_s\":{:.3f},",
                   decode_total_s > 0 ? static_cast<double>(dcs.bytes_read) / decode_total_s / 1e9 : 0);
  const double prefill_total_s = std::accumulate(prefill_s.begin(), prefill_s.end(), 0.0);
  j += fmt::format("\"prefill_disk_gb_s\":{:.3f},",
                   prefill_total_s > 0
                       ? static_cast<double>(prefill_cache.bytes_read) / prefill_total_s / 1e9
                       : 0);
  // The read path's own rate: bytes over the wall time during which ≥ 1 read was in flight.
  j += fmt::format("\"prefill_read_path_gb_s\":{:.3f},",
                   ReadPathGbS(prefill_cache.bytes_read, prefill_busy_ns));
  j += fmt::format("\"read_path_gb_s\":{:.3f},", ReadPathGbS(dcs.bytes_read, decode_busy_ns));
  // Share of decode wall time with 1, 2, 3 and ≥ 4 expert reads in flight (the rest: none).
  std::vector<double> in_flight_share;
  for (uint64_t ns : decode_in_flight_ns) {
    in_flight_share.push_back(decode_total_s > 0 ? static_cast<double>(ns) / 1e9 / decode_total_s
                                                 : 0);
  }
  j += fmt::format("\"reads_in_flight_share\":[{:.4f}],", fmt::join(in_flight_share, ","));
  // Checksums computed while decoding (--verify-reads first: only blocks read for the first time).
  j += fmt::format("\"blocks_hashed_per_token\":{:.4f},",
                   per_decode_token(decode_hashed));
  j += fmt::format("\"read_gb_s_per_io_thread\":{:.3f},",
                   dcs.read_ns ? static_cast<double>(dcs.bytes_read) / static_cast<double>(dcs.read_ns)
                               : 0);
  j += DecodePhasesJson(decode_phases, decode_tail_ns, D * R);
  j += fmt::format("\"decoded_ids\":[{}],", fmt::join(first_run_ids, ","));
  if (!ppl_text.empty()) {
    j += fmt::format("\"ppl_text\":{},\"ppl_tokens_predicted\":{},\"ppl_mean_nll\":{:.6f},"
                     "\"perplexity\":{:.5f},", JsonStr(ppl_text), ppl_n, ppl_nll, std::exp(ppl_nll));
  }
  j += fmt::format("\"simd_target\":\"{}\",", kernels::TargetName());
  j += fmt::format("\"cpu\":{},", JsonStr(CpuModel()));
  j += fmt::format("\"git_commit\":{},", JsonStr(MOE_GIT_COMMIT));
  j += fmt::format("\"peak_rss_bytes\":{}", PeakRssBytes());
  j += "}\n";
  std::fputs(j.c_str(), stdout);
  st = model.ReportExpertStats(engine, false);
  return st.ok() ? 0 : flags.Fail(st);
}

}  // namespace

MOE_COMMAND("bench", "prefill + decode benchmark; prints one JSON object (docs/benchmarks.md)",
            Bench);

}  // namespace moe::app
