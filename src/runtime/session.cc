// SPDX-License-Identifier: Apache-2.0
// The Qwen3-MoE forward pass (spec §2): composition only; arithmetic lives in kernels/.
#include "runtime/session.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstring>
#include <new>

#include "kernels/kernels.h"
#include "runtime/sampler.h"
#include "util/check.h"
#include "util/checked_math.h"

namespace moe {
namespace {

size_t Sz(int64_t v) { return static_cast<size_t>(v); }

}  // namespace

Session::Session(const Engine& engine, ThreadPool& pool, const SessionOptions& opts)
    : cfg_(engine.config()),
      w_(engine.weights()),
      pool_(pool),
      provider_(engine.NewExpertProvider()),
      rope_(cfg_, std::min<int64_t>(opts.max_context, cfg_.max_position_embeddings > 0
                                                          ? cfg_.max_position_embeddings
                                                          : opts.max_context)) {
  max_ctx_ = std::min<int64_t>(opts.max_context, cfg_.max_position_embeddings > 0
                                                     ? cfg_.max_position_embeddings
                                                     : opts.max_context);
  max_batch_ = std::max<int64_t>(1, std::min(opts.max_batch, max_ctx_));
  H_ = cfg_.hidden_size;
  Hq_ = cfg_.num_attention_heads;
  Hkv_ = cfg_.num_key_value_heads;
  d_ = cfg_.head_dim;
  E_ = cfg_.num_experts;
  k_ = engine.top_k();
  I_moe_ = cfg_.moe_intermediate_size;
  I_dense_ = cfg_.intermediate_size;
  V_ = cfg_.vocab_size;
  q_dim_ = Sz(Hq_ * d_);
  kv_dim_ = Sz(Hkv_ * d_);
  router_opts_.top_k = k_;
  router_opts_.norm_topk_prob = cfg_.norm_topk_prob;
  if (!engine.options().expert_mask.empty()) {
    router_opts_.allowed.assign(Sz(E_), 0);
    for (int32_t e : engine.options().expert_mask) router_opts_.allowed[Sz(e)] = 1;
  }

  const size_t B = Sz(max_batch_);
  const size_t L = Sz(cfg_.num_hidden_layers);
  kv_positions_ = (Sz(max_ctx_) + kernels::kKeyTile - 1) / kernels::kKeyTile * kernels::kKeyTile;
  // Huge pages: a decode step reads every layer's keys and values once, from memory, and with
  // 4 KiB pages its TLB misses cost more than the reads (machine.md). Zeroed here, at startup.
  const size_t kv_floats = L * kv_positions_ * kv_dim_;
  kv_cache_ = AllocateHugeBuffer(2 * kv_floats * sizeof(float), /*prefault=*/true);
  if (!kv_cache_) throw std::bad_alloc();  // as the vectors here (moestream reports it, exit 5)
  k_cache_ = reinterpret_cast<float*>(kv_cache_.get());
  v_cache_ = k_cache_ + kv_floats;
  x_.assign(B * Sz(H_), 0.f);
  xn_.assign(B * Sz(H_), 0.f);
  q_.assign(B * q_dim_, 0.f);
  kb_.assign(B * kv_dim_, 0.f);
  vb_.assign(B * kv_dim_, 0.f);
  att_.assign(B * q_dim_, 0.f);
  proj_.assign(B * Sz(H_), 0.f);
  mlp_gate_.assign(B * Sz(std::max(I_dense_, I_moe_)), 0.f);
  mlp_up_.assign(mlp_gate_.size(), 0.f);
  scores_.assign(pool.n_threads() * Sz(Hq_ / Hkv_) * Sz(max_ctx_), 0.f);
  router_logits_.assign(B * Sz(E_), 0.f);
  topk_idx_.assign(B * Sz(k_), 0);
  topk_w_.assign(B * Sz(k_), 0.f);
  expert_out_.assign(B * Sz(k_) * Sz(H_), 0.f);
  active_.assign(Sz(E_), 0);
  done_.assign(Sz(E_), 0);
  offsets_.assign(Sz(E_) + 1, 0);
  pairs_.assign(B * Sz(k_), 0);
  group_rows_ = std::max(B, Sz(k_));
  tasks_.resize(std::max<size_t>(512, 8 * pool.n_threads() + 2 * kMaxJobs + 8));
  xg_.assign(group_rows_ * Sz(H_), 0.f);
  eg_.assign(group_rows_ * Sz(I_moe_), 0.f);
  eu_.assign(group_rows_ * Sz(I_moe_), 0.f);
  ed_.assign(group_rows_ * Sz(H_), 0.f);
  // The largest set of distinct activations one MatMulParMany quantizes: a batch of any dense
  // input (xn_, att_, mlp_gate_) or a group's gathered rows (xg_ or eg_).
  act_blocks_ = std::max(
      B * kernels::ActBlocks(std::max({Sz(H_), q_dim_, Sz(std::max(I_dense_, I_moe_))})),
      group_rows_ * kernels::ActBlocks(Sz(std::max(H_, I_moe_))));
  act_q_.assign(act_blocks_ * kernels::kQuantBlock, 0);
  act_d_.assign(act_blocks_, 0.f);
  greedy_head_ = engine.greedy_head();
  head_logits_.assign(Sz(V_), 0.f);
  if (greedy_head_) {
    head_xq_.assign(kernels::ActBlocks(Sz(H_)) * kernels::kQuantBlock, 0);
    head_xd_.assign(kernels::ActBlocks(Sz(H_)), 0.f);
    head_candidates_.reserve(Sz(V_));
    head_marks_.assign(Sz(V_), 0);
    head_heap_.reserve(Sz(V_) / 16 + 1);
  }
  // experts: router-lookahead prefetch, only when streaming through a cache.
  if (engine.options().prefetch != PrefetchMode::kOff && engine.expert_cache()) {
    lookahead_ = std::make_unique<RouterLookahead>(w_, router_opts_, max_batch_);
  }
}

Session::~Session() = default;

void Session::MatMulPar(const kernels::WeightView& w, const float* x, int64_t n, size_t x_stride,
                        float* y, size_t y_stride) {
  MatMulParMany({{&w, x, x_stride, y, y_stride}}, n);
}

void Session::MatMulParMany(std::initializer_list<MatMulJob> jobs, int64_t n) {
  MOE_DCHECK(jobs.size() <= kMaxJobs);
  std::array<MatMulJob, kMaxJobs> with_n;
  size_t nj = 0;
  for (const MatMulJob& j : jobs) {
    with_n[nj] = j;
    with_n[nj++].n = n;
  }
  MatMulParMany(std::span<const MatMulJob>(with_n.data(), nj));
}

size_t Session::SplitTasks(std::span<const MatMulJob> jobs) {
  const size_t threads = pool_.n_threads();
  size_t n = 0;
  const auto add = [&](size_t j, size_t begin, size_t end) {
    MOE_CHECK(n < tasks_.size());
    tasks_[n++] = {j, begin, end};
  };
  const bool decode =
      std::all_of(jobs.begin(), jobs.end(), [](const MatMulJob& j) { return j.n == 1; });
  if (!decode || threads == 1) {
    // Prefill: row blocks of ≥ 16 rows, about 4 per thread in all.
    size_t total_rows = 0;
    for (const MatMulJob& j : jobs) total_rows += j.w->rows;
    const size_t want = std::max<size_t>(1, std::min(total_rows / 16, threads * 4));
    for (size_t j = 0; j < jobs.size(); ++j) {
      const size_t rows = jobs[j].w->rows;
      const size_t tasks = std::max<size_t>(1, (want * rows + total_rows - 1) / total_rows);
      size_t per = (rows + tasks - 1) / tasks;
      // A tiled matrix splits at whole tiles, so each decode tile reads one stream (any split
      // gives the same results).
      if (jobs[j].w->tiled) per = RoundUp(per, kernels::kTileRows);
      for (size_t r = 0; r < rows; r += per) add(j, r, std::min(rows, r + per));
    }
    return n;
  }
  // Decode, memory-bound: guided self-scheduling by bytes. The pool claims tasks from the last
  // index down, so tasks are made from the last job backwards, each a quarter of what is left
  // over the threads (2 · threads), at least kMinTaskBytes, in whole tiles: long streams first,
  // and short ones at the end, where the threads would otherwise wait for each other's last
  // task. No task exceeds the even split's (a quarter of the whole per thread): a thread that
  // loses its core to the expert I/O threads while holding one would hold up the rest longer.
  // The row split never changes a result (the MatMul contract).
  constexpr uint64_t kMinTaskBytes = 256 << 10;
  uint64_t left = 0;
  for (const MatMulJob& j : jobs) {
    left += kernels::WeightMatrixBytes(j.w->type, j.w->rows, j.w->cols);
  }
  const uint64_t most = std::max(kMinTaskBytes, left / (4 * threads));
  for (size_t j = jobs.size(); j-- > 0;) {
    const kernels::WeightView& w = *jobs[j].w;
    const uint64_t row_bytes = std::max<uint64_t>(1, kernels::WeightMatrixBytes(w.type, 1, w.cols));
    for (size_t end = w.rows; end > 0;) {
      const uint64_t want = std::min(most, std::max(kMinTaskBytes, left / (2 * threads)));
      size_t rows = static_cast<size_t>(std::min<uint64_t>(end, (want + row_bytes - 1) / row_bytes));
      if (w.tiled) rows = std::min(end, RoundUp(rows, kernels::kTileRows));
      if (end - rows < rows / 2) rows = end;  // no sliver left behind
      if (tasks_.size() - n <= j + 1) rows = end;  // room for one task per job still to come
      add(j, end - rows, end);
      left -= std::min<uint64_t>(left, rows * row_bytes);
      end -= rows;
    }
  }
  std::reverse(tasks_.begin(), tasks_.begin() + static_cast<ptrdiff_t>(n));
  return n;
}

void Session::MatMulParMany(std::span<const MatMulJob> jobs) {
  MOE_CHECK(jobs.size() >= 1 && jobs.size() <= kMaxJobs);
  const size_t n_tasks = SplitTasks(jobs);
  // Quantized weights multiply quantized activations (kernels::MatMulQuantizedActs): each
  // distinct x of the call is quantized once, here, before the rows are split over threads.
  std::array<size_t, kMaxJobs> act{};  // job j's first block in act_q_ / act_d_
  size_t used = 0;
  for (size_t j = 0; j < jobs.size(); ++j) {
    const MatMulJob& m = jobs[j];
    if (!kernels::IsQuantized(m.w->type)) continue;
    size_t same = j;
    for (size_t k = 0; k < j && same == j; ++k) {
      const MatMulJob& o = jobs[k];
      if (kernels::IsQuantized(o.w->type) && o.x == m.x && o.n == m.n &&
          o.x_stride == m.x_stride && o.w->cols == m.w->cols) {
        same = k;
      }
    }
    if (same != j) {
      act[j] = act[same];
      continue;
    }
    const size_t blocks = Sz(m.n) * kernels::ActBlocks(m.w->cols);
    MOE_CHECK(used + blocks <= act_blocks_);
    kernels::QuantizeActs(m.x, Sz(m.n), m.x_stride, m.w->cols, &act_q_[used * kernels::kQuantBlock],
                          &act_d_[used]);
    act[j] = used;
    used += blocks;
  }
  uint64_t& bytes = profile_.weight_bytes[static_cast<size_t>(phase_)];
  for (const MatMulJob& j : jobs) {
    bytes += kernels::WeightMatrixBytes(j.w->type, j.w->rows, j.w->cols);
  }
  const uint64_t tail0 = pool_.tail_wait_ns();
  pool_.ParallelFor(n_tasks, [&](size_t task, size_t) {
    const RowTask& rt = tasks_[task];
    const size_t j = rt.job, begin = rt.begin, end = rt.end;
    const MatMulJob& m = jobs[j];
    if (kernels::IsQuantized(m.w->type)) {
      kernels::MatMulQuantizedActs(*m.w, &act_q_[act[j] * kernels::kQuantBlock], &act_d_[act[j]],
                                   Sz(m.n), m.y, m.y_stride, begin, end);
    } else {
      kernels::MatMul(*m.w, m.x, Sz(m.n), m.x_stride, m.y, m.y_stride, begin, end);
    }
  });
  profile_.tail_ns[static_cast<size_t>(phase_)] += pool_.tail_wait_ns() - tail0;
}

Status Session::Forward(std::span<const int32_t> tokens, LogitsMode mode, float* logits_out) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (n == 0) return Status::Ok();
  for (int64_t i = 0; i < n; ++i) {
    if (tokens[Sz(i)] < 0 || tokens[Sz(i)] >= V_) {
      return Error(StatusCode::kUsage, "token id {} at index {} out of range [0, {})",
                   tokens[Sz(i)], i, V_);
    }
  }
  if (n_past_ + n > max_ctx_) {
    return Error(StatusCode::kUsage, "{} tokens after {} exceed the context of {} positions", n,
                 n_past_, max_ctx_);
  }
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t start = 0; start < n; start += max_batch_) {
    const int64_t m = std::min(max_batch_, n - start);
    const bool last_chunk = start + m == n;
    const bool last_only = mode == LogitsMode::kLast || mode == LogitsMode::kTopK;
    LogitsMode chunk_mode = mode == LogitsMode::kAll      ? LogitsMode::kAll
                            : (last_only && last_chunk) ? mode
                                                        : LogitsMode::kNone;
    float* out = mode == LogitsMode::kAll ? logits_out + Sz(start) * Sz(V_) : logits_out;
    MOE_TRY(ForwardChunk(tokens.data() + start, m, chunk_mode, out));
  }
  profile_.forward_ns += static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0)
          .count());
  ++profile_.forwards;
  return Status::Ok();
}

Status Session::ForwardChunk(const int32_t* tokens, int64_t n, LogitsMode mode, float* logits_out) {
  const size_t H = Sz(H_);
  const float eps = static_cast<float>(cfg_.rms_norm_eps);
  // 1. Embedding rows (converted to f32).
  const kernels::WeightView& emb = w_.embed().view;
  for (int64_t t = 0; t < n; ++t) {
    kernels::ToFloat(static_cast<const char*>(emb.data) +
                         Sz(tokens[t]) * H * kernels::WeightTypeBytes(emb.type),
                     emb.type, H, &x_[Sz(t) * H]);
  }
  for (int64_t l = 0; l < cfg_.num_hidden_layers; ++l) {
    const LayerWeights& lw = w_.layer(l);
    // 2. x += o_proj(attention(input_layernorm(x)))
    for (int64_t t = 0; t < n; ++t) {
      kernels::RmsNorm(&x_[Sz(t) * H], lw.input_layernorm.view.data, lw.input_layernorm.view.type,
                       H, eps, &xn_[Sz(t) * H]);
    }
    {
      const PhaseTimer timer = Time(Phase::kAttnProj);
      MatMulParMany({{&lw.attn.q_proj.view, xn_.data(), H, q_.data(), q_dim_},
                     {&lw.attn.k_proj.view, xn_.data(), H, kb_.data(), kv_dim_},
                     {&lw.attn.v_proj.view, xn_.data(), H, vb_.data(), kv_dim_}},
                    n);
    }
    {
      const PhaseTimer timer = Time(Phase::kAttention);
      Attention(l, n);
    }
    {
      const PhaseTimer timer = Time(Phase::kAttnProj);
      MatMulPar(lw.attn.o_proj.view, att_.data(), n, q_dim_, proj_.data(), H);
    }
    for (size_t i = 0; i < Sz(n) * H; ++i) x_[i] += proj_[i];
    // 3. x += ffn(post_attention_layernorm(x))
    for (int64_t t = 0; t < n; ++t) {
      kernels::RmsNorm(&x_[Sz(t) * H], lw.post_attention_layernorm.view.data,
                       lw.post_attention_layernorm.view.type, H, eps, &xn_[Sz(t) * H]);
    }
    if (lookahead_) {  // experts: prefetch L+1
      const PhaseTimer timer = Time(Phase::kRouter);
      lookahead_->Hint(l, xn_.data(), n, *provider_);
    }
    if (lw.is_moe) {
      MOE_TRY(MoeBlock(l, n));
    } else {
      const PhaseTimer timer = Time(Phase::kExperts);
      DenseMlp(l, n);
    }
    for (size_t i = 0; i < Sz(n) * H; ++i) x_[i] += proj_[i];
  }
  // 4. Final norm and lm_head for the positions asked for.
  if (mode != LogitsMode::kNone) {
    const PhaseTimer timer = Time(Phase::kLmHead);
    const int64_t first = mode == LogitsMode::kAll ? 0 : n - 1;
    for (int64_t t = first; t < n; ++t) {
      kernels::RmsNorm(&x_[Sz(t) * H], w_.final_norm().view.data, w_.final_norm().view.type, H,
                       eps, &xn_[Sz(t) * H]);
    }
    if (mode == LogitsMode::kTopK) {
      head_rows_only_ = HeadTopK(&xn_[Sz(first) * H], logits_out);
    } else {
      MatMulPar(w_.lm_head().view, &xn_[Sz(first) * H], n - first, H, logits_out, Sz(V_));
    }
  }
  n_past_ += n;
  return Status::Ok();
}

Status Session::ForwardArgmax(std::span<const int32_t> tokens, int32_t* id) {
  std::span<const int32_t> rows;
  MOE_TRY(ForwardTopK(tokens, 1, {}, head_logits_.data(), &rows));
  const float* y = head_logits_.data();
  if (rows.empty()) {
    *id = ArgMaxFirst(y, Sz(V_));
    return Status::Ok();
  }
  int32_t best = rows.front();  // ascending: the first largest is the lowest id of the ties
  for (const int32_t r : rows) {
    if (y[r] > y[best]) best = r;
  }
  *id = best;
  return Status::Ok();
}

Status Session::ForwardTopK(std::span<const int32_t> tokens, size_t k,
                            std::span<const int32_t> always, float* logits_out,
                            std::span<const int32_t>* rows) {
  if (tokens.empty()) return Error(StatusCode::kUsage, "ForwardTopK: no tokens");
  head_k_ = k;
  head_always_ = always;
  head_rows_only_ = false;
  const Status st = Forward(tokens, LogitsMode::kTopK, logits_out);
  head_always_ = {};
  MOE_TRY(st);
  *rows = head_rows_only_ ? std::span<const int32_t>(head_candidates_) : std::span<const int32_t>();
  return Status::Ok();
}

bool Session::HeadTopK(const float* x, float* y) {
  const kernels::WeightView& lm = w_.lm_head().view;
  const size_t H = Sz(H_), V = Sz(V_);
  // Past V/16 candidates their scattered rows cost more than the whole product.
  if (greedy_head_ && head_k_ >= 1 && head_k_ <= V / 16) {
    ++greedy_stats_.tokens;
    MatMulPar(greedy_head_->shadow(), x, 1, H, y, V);
    kernels::QuantizeActs(x, 1, H, H, head_xq_.data(), head_xd_.data());
    const auto in_range = [&](int32_t r) { return r >= 0 && Sz(r) < V; };
    for (const int32_t r : head_always_) {
      if (in_range(r)) head_marks_[Sz(r)] = 1;
    }
    const bool ok = greedy_head_->Candidates(x, head_xq_.data(), head_xd_.data(), y, head_k_,
                                             head_always_.empty() ? nullptr : head_marks_.data(),
                                             &head_heap_, &head_candidates_);
    for (const int32_t r : head_always_) {  // each marked row once; the marks cleared
      if (!in_range(r) || !head_marks_[Sz(r)]) continue;
      head_marks_[Sz(r)] = 0;
      if (ok) head_candidates_.push_back(r);
    }
    if (ok && head_candidates_.size() <= V / 16) {
      std::sort(head_candidates_.begin(), head_candidates_.end());
      // Each row exactly as the full product computes it (any row range gives the same bits).
      for (const int32_t r : head_candidates_) {
        kernels::MatMul(lm, x, 1, H, y, V, Sz(r), Sz(r) + 1);
      }
      greedy_stats_.candidate_rows += static_cast<int64_t>(head_candidates_.size());
      profile_.weight_bytes[static_cast<size_t>(Phase::kLmHead)] +=
          head_candidates_.size() * kernels::WeightMatrixBytes(lm.type, 1, H);
      return true;
    }
    ++greedy_stats_.fallbacks;
  }
  MatMulPar(lm, x, 1, H, y, V);
  return false;
}

void Session::Attention(int64_t layer, int64_t n) {
  const LayerWeights& lw = w_.layer(layer);
  const float eps = static_cast<float>(cfg_.rms_norm_eps);
  const size_t d = Sz(d_), ctx = Sz(max_ctx_), span = kv_positions_ * d;
  // The layer's cache holds one KV head after another (span floats each): its keys in key tiles
  // (kernels.h), its values [position][head_dim]; both read front to back.
  float* kc = k_cache_ + Sz(layer) * kv_positions_ * kv_dim_;
  float* vc = v_cache_ + Sz(layer) * kv_positions_ * kv_dim_;
  // Per-head q_norm / k_norm, then RoPE; k and v go to the cache at their absolute positions.
  for (int64_t t = 0; t < n; ++t) {
    const int64_t pos = n_past_ + t;
    for (int64_t h = 0; h < Hq_; ++h) {
      float* qh = &q_[Sz(t) * q_dim_ + Sz(h) * d];
      kernels::RmsNorm(qh, lw.attn.q_norm.view.data, lw.attn.q_norm.view.type, d, eps, qh);
      rope_.Apply(qh, pos);
    }
    for (int64_t h = 0; h < Hkv_; ++h) {
      float* kh = &kb_[Sz(t) * kv_dim_ + Sz(h) * d];
      kernels::RmsNorm(kh, lw.attn.k_norm.view.data, lw.attn.k_norm.view.type, d, eps, kh);
      rope_.Apply(kh, pos);
      float* k_head = kc + Sz(h) * span;
      for (size_t i = 0; i < d; ++i) k_head[kernels::KeyTileIndex(Sz(pos), i, d)] = kh[i];
      std::memcpy(vc + Sz(h) * span + Sz(pos) * d, &vb_[Sz(t) * kv_dim_ + Sz(h) * d],
                  d * sizeof(float));
    }
  }
  const float scale = 1.0f / std::sqrt(static_cast<float>(d_));
  const size_t group = Sz(Hq_ / Hkv_);
  // A task: one token's query heads of one KV head (or a share of them, when there are fewer
  // such groups than threads). The kernels read each key and value once from memory for all of
  // them (kernels.h); every score, and every output's sum over positions in order, is as one
  // head alone would compute it.
  const size_t groups = Sz(n) * Sz(Hkv_);
  const size_t parts = std::min(group, (pool_.n_threads() + groups - 1) / groups);
  const uint64_t tail0 = pool_.tail_wait_ns();
  pool_.ParallelFor(groups * parts, [&](size_t task, size_t worker) {
    const size_t t = task / (Sz(Hkv_) * parts), kvh = task / parts % Sz(Hkv_);
    const size_t h0 = kvh * group + (task % parts) * group / parts;
    const size_t h1 = kvh * group + (task % parts + 1) * group / parts;
    const size_t n_keys = Sz(n_past_) + t + 1;  // causal: keys at positions ≤ the token's
    float* sc = &scores_[worker * group * ctx];  // [group][ctx]
    kernels::AttentionScoresArgs sa;
    sa.q = &q_[t * q_dim_ + h0 * d];
    sa.n_heads = h1 - h0;
    sa.k = kc + kvh * span;
    sa.n_keys = n_keys;
    sa.head_dim = d;
    sa.scale = scale;
    sa.scores_stride = ctx;
    kernels::AttentionScores(sa, sc);
    for (size_t h = h0; h < h1; ++h) {
      kernels::Softmax(sc + (h - h0) * ctx, n_keys);
      float* out = &att_[t * q_dim_ + h * d];
      std::fill(out, out + d, 0.f);
    }
    kernels::AttentionWeightedSumArgs wa;
    wa.p = sc;
    wa.p_stride = ctx;
    wa.n_heads = h1 - h0;
    wa.v = vc + kvh * span;
    wa.v_stride = d;
    wa.n_keys = n_keys;
    wa.head_dim = d;
    wa.out = &att_[t * q_dim_ + h0 * d];
    wa.out_stride = d;
    kernels::AttentionWeightedSum(wa);
  });
  profile_.tail_ns[static_cast<size_t>(Phase::kAttention)] += pool_.tail_wait_ns() - tail0;
}

void Session::DenseMlp(int64_t layer, int64_t n) {
  const LayerWeights& lw = w_.layer(layer);
  const size_t H = Sz(H_), I = Sz(I_dense_);
  MatMulParMany({{&lw.mlp_gate.view, xn_.data(), H, mlp_gate_.data(), I},
                 {&lw.mlp_up.view, xn_.data(), H, mlp_up_.data(), I}},
                n);
  kernels::SiluMul(mlp_gate_.data(), mlp_up_.data(), Sz(n) * I);
  MatMulPar(lw.mlp_down.view, mlp_gate_.data(), n, I, proj_.data(), H);
}

size_t Session::RouteAndGroup(int64_t layer, int64_t n) {
  const LayerWeights& lw = w_.layer(layer);
  const size_t H = Sz(H_), K = Sz(k_), E = Sz(E_);
  // Route every token: f32 softmax over all experts, top-k, renormalise.
  MatMulPar(lw.router.view, xn_.data(), n, H, router_logits_.data(), E);
  for (int64_t t = 0; t < n; ++t) {
    Route(&router_logits_[Sz(t) * E], E_, router_opts_, &topk_idx_[Sz(t) * K], &topk_w_[Sz(t) * K]);
    if (recorder_) {
      recorder_->push_back({n_past_ + t, layer,
                            {&topk_idx_[Sz(t) * K], &topk_idx_[Sz(t) * K] + K},
                            {&topk_w_[Sz(t) * K], &topk_w_[Sz(t) * K] + K}});
    }
  }
  // Group (token, slot) pairs by expert (counting sort): each expert runs once per batch.
  std::fill(offsets_.begin(), offsets_.end(), 0);
  for (size_t i = 0; i < Sz(n) * K; ++i) ++offsets_[Sz(topk_idx_[i]) + 1];
  size_t n_active = 0;
  for (size_t e = 0; e < E; ++e) {
    if (offsets_[e + 1] > 0) active_[n_active++] = static_cast<int32_t>(e);
    offsets_[e + 1] += offsets_[e];
  }
  for (size_t i = 0; i < Sz(n) * K; ++i) {
    // Stable: pairs of an expert keep ascending token order.
    const size_t e = Sz(topk_idx_[i]);
    pairs_[Sz(offsets_[e]++)] = static_cast<int32_t>(i);
  }
  for (size_t e = E; e > 0; --e) offsets_[e] = offsets_[e - 1];
  offsets_[0] = 0;
  return n_active;
}

Status Session::MoeBlock(int64_t layer, int64_t n) {
  const size_t H = Sz(H_), K = Sz(k_);
  size_t n_active = 0;
  {
    const PhaseTimer timer = Time(Phase::kRouter);
    n_active = RouteAndGroup(layer, n);
  }
  const PhaseTimer timer = Time(Phase::kExperts);
  MOE_TRY(provider_->Begin(layer, std::span<const int32_t>(active_.data(), n_active)));
  const Status status = RunExperts(n_active);
  provider_->End();
  MOE_TRY(status);
  // Weighted sum per token in ascending expert id order (HF eager's accumulation order),
  // independent of the order in which experts became available.
  for (int64_t t = 0; t < n; ++t) {
    float* out = &proj_[Sz(t) * H];
    std::fill(out, out + H, 0.f);
    const int32_t* idx = &topk_idx_[Sz(t) * K];
    bool used[kMaxTopK] = {};
    for (size_t step = 0; step < K; ++step) {
      size_t best = K;
      for (size_t s = 0; s < K; ++s) {
        if (!used[s] && (best == K || idx[s] < idx[best])) best = s;
      }
      used[best] = true;
      const float wgt = topk_w_[Sz(t) * K + best];
      const float* y = &expert_out_[(Sz(t) * K + best) * H];
      for (size_t i = 0; i < H; ++i) out[i] += wgt * y[i];
    }
  }
  return Status::Ok();
}

Status Session::RunExperts(size_t n_active) {
  const size_t H = Sz(H_), I = Sz(I_moe_), K = Sz(k_);
  constexpr size_t kMaxGroup = kMaxJobs / 2;
  std::array<ExpertView, kMaxGroup> views;
  std::array<size_t, kMaxGroup + 1> row0{};  // group member g's rows: [row0[g], row0[g + 1])
  std::array<MatMulJob, kMaxJobs> jobs;
  std::array<size_t, kMaxGroup> member;  // group member g is active_[member[g]] ...
  std::array<size_t, kMaxGroup> pair0;   // ... and its pairs start at pairs_[pair0[g]]
  std::fill(done_.begin(), done_.begin() + static_cast<ptrdiff_t>(n_active), 0);
  const auto count = [&](size_t i) {
    const size_t e = Sz(active_[i]);
    return Sz(offsets_[e + 1] - offsets_[e]);
  };
  for (size_t n_done = 0, lowest = 0; n_done < n_active;) {
    while (done_[lowest]) ++lowest;
    // The group: every expert not yet run whose data is ready now (ascending), as many as fit
    // the gather buffers; if none is ready, the lowest one not yet run, waited for, plus those
    // ready by then. Hits thus run while misses are still being read; the order in which
    // experts run never changes the result (outputs are summed in expert id order later).
    size_t g_n = 0;
    const auto add = [&](size_t i) -> Status {
      MOE_ASSIGN_OR_RETURN(views[g_n], provider_->Wait(i));
      member[g_n] = i;
      row0[g_n + 1] = row0[g_n] + count(i);
      done_[i] = 1;
      ++g_n;
      return Status::Ok();
    };
    bool any_ready = false;
    for (size_t i = lowest; i < n_active && !any_ready; ++i) {
      any_ready = !done_[i] && provider_->Ready(i);
    }
    if (!any_ready) MOE_TRY(add(lowest));
    for (size_t i = lowest; i < n_active && g_n < kMaxGroup; ++i) {
      if (done_[i] || row0[g_n] + count(i) > group_rows_ || !provider_->Ready(i)) continue;
      MOE_TRY(add(i));
    }
    n_done += g_n;
    for (size_t g = 0; g < g_n; ++g) {
      const size_t e = Sz(active_[member[g]]);
      pair0[g] = Sz(offsets_[e]);
      for (size_t r = row0[g]; r < row0[g + 1]; ++r) {
        const size_t t = Sz(pairs_[pair0[g] + r - row0[g]]) / K;
        std::memcpy(&xg_[r * H], &xn_[t * H], H * sizeof(float));
      }
      const auto m = static_cast<int64_t>(row0[g + 1] - row0[g]);
      jobs[2 * g] = {&views[g].gate, &xg_[row0[g] * H], H, &eg_[row0[g] * I], I, m};
      jobs[2 * g + 1] = {&views[g].up, &xg_[row0[g] * H], H, &eu_[row0[g] * I], I, m};
    }
    MatMulParMany(std::span<const MatMulJob>(jobs.data(), 2 * g_n));
    kernels::SiluMul(eg_.data(), eu_.data(), row0[g_n] * I);
    for (size_t g = 0; g < g_n; ++g) {
      const auto m = static_cast<int64_t>(row0[g + 1] - row0[g]);
      jobs[g] = {&views[g].down, &eg_[row0[g] * I], I, &ed_[row0[g] * H], H, m};
    }
    MatMulParMany(std::span<const MatMulJob>(jobs.data(), g_n));
    for (size_t g = 0; g < g_n; ++g) {
      for (size_t r = row0[g]; r < row0[g + 1]; ++r) {
        std::memcpy(&expert_out_[Sz(pairs_[pair0[g] + r - row0[g]]) * H], &ed_[r * H],
                    H * sizeof(float));
      }
    }
  }
  return Status::Ok();
}

}  // namespace moe
