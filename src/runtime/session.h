// SPDX-License-Identifier: Apache-2.0
// Session: one sequence's state — KV cache, activations, expert provider pins, routing record —
// all allocated when the Session is created. Forward() appends tokens to the context: a prompt
// is processed as batches of up to max_batch tokens (prefill), a decoded token is a batch of 1;
// both run the same code and the decode step performs no heap allocation.
// Thread-compatible: one Forward at a time; the Engine behind it may be shared.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <vector>

#include "experts/expert_provider.h"
#include "runtime/engine.h"
#include "runtime/phase_profile.h"
#include "runtime/prefetch.h"
#include "runtime/rope.h"
#include "runtime/router.h"
#include "util/huge_buffer.h"
#include "util/status.h"
#include "util/thread_pool.h"

namespace moe {

struct SessionOptions {
  int64_t max_context = 4096;  // clamped to max_position_embeddings
  // Prefill chunk. Each chunk reads each expert it routes to once, so a streamed model's prefill
  // reads ~1/max_batch of an expert block per routed token: at 8 GiB of a 30B-A3B-shaped q8
  // store, 512 against 32 cut the bytes read per prompt token 431 → 26 MB and made prefill
  // 5.8× faster (docs/benchmarks.md, session 17). Costs ~200 KB of activations per token there.
  int64_t max_batch = 512;
};

// One routing decision: the router's output for one (position, MoE layer).
struct RouteRecord {
  int64_t pos = 0;
  int64_t layer = 0;
  std::vector<int32_t> experts;  // top-k order
  std::vector<float> weights;
};

// kTopK: the last token's logits at the rows a top-k caller needs (ForwardTopK).
enum class LogitsMode { kNone, kLast, kAll, kTopK };

class Session {
 public:
  Session(const Engine& engine, ThreadPool& pool, const SessionOptions& opts);
  ~Session();

  // Runs `tokens` at positions n_past()..n_past()+n-1. logits_out receives [n, V] (kAll),
  // [V] for the last token (kLast), or nothing. Errors: token id out of range or context full
  // (kUsage, nothing changed); expert read failures (the session must then be Reset).
  Status Forward(std::span<const int32_t> tokens, LogitsMode mode, float* logits_out);
  // Forward for a greedy caller: *id gets the id of the last token's largest logit, lowest id on
  // ties — what the first maximum of Forward(kLast)'s logits is, bit for bit — computed from
  // the engine's q8 lm_head shadow and the candidate rows it leaves where the engine has one
  // (--lm-head-shadow; runtime/greedy_head.h), else from every logit.
  Status ForwardArgmax(std::span<const int32_t> tokens, int32_t* id);
  // Forward for a caller that needs the last token's k largest logits (top-k sampling; k = 1
  // greedy) and the logits of the rows in `always` (e.g. those a repetition penalty changes):
  // *rows gets distinct ascending ids holding both, ties of the k-th largest included, and
  // logits_out[r] for each is Forward(kLast)'s logit r, bit for bit; the other entries of
  // logits_out ([V]) are scratch. Read from the lm_head shadow and the candidate rows it leaves
  // where the engine has one; otherwise, or when there are more than V/16 rows, every logit is
  // computed and *rows is empty. *rows lives until the next Forward.
  Status ForwardTopK(std::span<const int32_t> tokens, size_t k, std::span<const int32_t> always,
                     float* logits_out, std::span<const int32_t>* rows);
  bool has_greedy_head() const { return greedy_head_ != nullptr; }
  // ForwardTopK's use of the shadow: tokens it served, exact rows computed, and tokens where
  // a non-finite value or too many candidates sent it to the full product.
  struct GreedyHeadStats {
    int64_t tokens = 0, candidate_rows = 0, fallbacks = 0;
  };
  const GreedyHeadStats& greedy_head_stats() const { return greedy_stats_; }

  int64_t n_past() const { return n_past_; }
  int64_t max_context() const { return max_ctx_; }
  int64_t vocab_size() const { return V_; }
  void Reset() { n_past_ = 0; }
  // Forgets positions ≥ n (their KV entries are overwritten by later tokens): reuses a shared
  // prefix, e.g. the earlier turns of a chat.
  void Truncate(int64_t n) {
    if (n < n_past_) n_past_ = n < 0 ? 0 : n;
  }
  // When set, every routing decision is appended here (allocates; analysis only).
  void set_route_recorder(std::vector<RouteRecord>* r) { recorder_ = r; }

  // Time and weight bytes per phase over every Forward so far (runtime/phase_profile.h).
  const PhaseProfile& profile() const { return profile_; }

 private:
  Status ForwardChunk(const int32_t* tokens, int64_t n, LogitsMode mode, float* logits_out);
  // ForwardTopK's lm_head for normed hidden state x (H floats) into y ([V]): true when only
  // head_candidates_ hold exact logits, false when all of y does.
  bool HeadTopK(const float* x, float* y);
  void Attention(int64_t layer, int64_t n);
  Status MoeBlock(int64_t layer, int64_t n);
  // Routes the batch's tokens at `layer` and groups (token, slot) pairs by expert into
  // active_/offsets_/pairs_; returns the number of distinct experts used.
  size_t RouteAndGroup(int64_t layer, int64_t n);
  // Runs the active experts of the last Begin on the rows grouped by MoeBlock, several experts
  // per parallel product when their blocks are ready together.
  Status RunExperts(size_t n_active);
  void DenseMlp(int64_t layer, int64_t n);
  // One ParallelFor over the row blocks of several products (q/k/v, gate/up, the experts of a
  // group): fewer hand-offs per decode step; each y element is computed as MatMul alone would.
  struct MatMulJob {
    const kernels::WeightView* w;
    const float* x;
    size_t x_stride;
    float* y;
    size_t y_stride;
    int64_t n = 0;  // rows of x (set by the initializer_list overload)
  };
  static constexpr size_t kMaxJobs = 32;  // up to 16 experts' gate and up
  void MatMulParMany(std::span<const MatMulJob> jobs);
  // Splits jobs' rows into tasks_[0, n) (returned) for the pool: tasks of job j cover its rows
  // once, in whole tiles where tiled.
  size_t SplitTasks(std::span<const MatMulJob> jobs);
  struct RowTask {
    size_t job, begin, end;
  };
  // Room for 8 tasks per thread plus two per job (prefill needs at most 4 per thread plus one
  // per job; decode takes a job's rows whole when only one task per remaining job is left).
  std::vector<RowTask> tasks_;
  void MatMulParMany(std::initializer_list<MatMulJob> jobs, int64_t n);
  void MatMulPar(const kernels::WeightView& w, const float* x, int64_t n, size_t x_stride,
                 float* y, size_t y_stride);

  // Starts timing phase p (until the returned timer dies); MatMuls count their bytes to p.
  PhaseTimer Time(Phase p) {
    phase_ = p;
    return PhaseTimer(&profile_, p);
  }

  const Qwen3MoeConfig& cfg_;
  const ModelWeights& w_;
  ThreadPool& pool_;
  std::unique_ptr<ExpertProvider> provider_;
  RopeTable rope_;
  RouterOptions router_opts_;
  std::vector<RouteRecord>* recorder_ = nullptr;
  std::unique_ptr<RouterLookahead> lookahead_;  // experts: --prefetch (runtime/prefetch.h)
  PhaseProfile profile_;
  Phase phase_ = Phase::kAttnProj;

  int64_t max_ctx_, max_batch_, n_past_ = 0;
  int64_t H_, Hq_, Hkv_, d_, E_, k_, I_moe_, I_dense_, V_;
  size_t q_dim_, kv_dim_;

  // KV cache: [layer][KV head][kv_positions_ positions] f32, keys (after k_norm and RoPE) in
  // key tiles (kernels.h), values [position][d]; kv_positions_: max_ctx_ rounded up to a tile.
  size_t kv_positions_ = 0;
  HugeBuffer kv_cache_;  // keys, then values
  float* k_cache_ = nullptr;
  float* v_cache_ = nullptr;
  // Activations, [max_batch, ...] row-major.
  std::vector<float> x_, xn_, q_, kb_, vb_, att_, proj_, mlp_gate_, mlp_up_;
  std::vector<float> scores_;  // [n_threads, query heads per KV head, max_ctx]
  // MoE scratch.
  std::vector<float> router_logits_;  // [B, E]
  std::vector<int32_t> topk_idx_;     // [B, k]
  std::vector<float> topk_w_;         // [B, k]
  std::vector<float> expert_out_;     // [B, k, H]
  std::vector<int32_t> active_;       // experts used by the batch, ascending
  std::vector<uint8_t> done_;         // [E] RunExperts: active_[i] has run
  std::vector<int32_t> offsets_;      // [E + 1] counting-sort offsets
  std::vector<int32_t> pairs_;        // [B*k] (token*k + slot) grouped by expert
  // Gathered rows of a group of experts' tokens: [group_rows_, H] and [group_rows_, I].
  std::vector<float> xg_, eg_, eu_, ed_;
  // Quantized activations for kQ8/kQ4 weights (kernels::QuantizeActs), filled by MatMulParMany:
  // act_q_ holds 32 int16 per block, act_d_ one scale per block; room for act_blocks_ blocks.
  std::vector<int16_t> act_q_;
  std::vector<float> act_d_;
  size_t act_blocks_ = 0;
  size_t group_rows_ = 0;  // max(B, k): one token's k experts always fit together
  // ForwardTopK: the engine's lm_head shadow (or null), ForwardArgmax's logits, x's quantized
  // form, the candidate rows (room for V), the rows in `always` marked (V bytes), the k-heap
  // (room for V/16), and the current call's k, `always` and outcome.
  const GreedyHead* greedy_head_ = nullptr;
  std::vector<float> head_logits_;
  std::vector<int16_t> head_xq_;
  std::vector<float> head_xd_;
  std::vector<int32_t> head_candidates_;
  std::vector<uint8_t> head_marks_;
  std::vector<double> head_heap_;
  size_t head_k_ = 1;
  std::span<const int32_t> head_always_;
  bool head_rows_only_ = false;
  GreedyHeadStats greedy_stats_;
};

}  // namespace moe
