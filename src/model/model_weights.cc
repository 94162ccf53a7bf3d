// SPDX-License-Identifier: Apache-2.0
#include "model/model_weights.h"

#include <cstdlib>
#include <cstring>
#include <set>

#include "model/tensor_names.h"
#include "util/checked_math.h"
#include "util/huge_buffer.h"
#include "util/progress.h"

namespace moe {

kernels::WeightType ToWeightType(DType t) {
  switch (t) {
    case DType::kBF16: return kernels::WeightType::kBF16;
    case DType::kF16: return kernels::WeightType::kF16;
    default: return kernels::WeightType::kF32;
  }
}

namespace {

std::string ShapeStr(const std::vector<uint64_t>& s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

// Prefixes of Omni components a text-only engine ignores (spec §3.4).
bool IsIgnoredComponent(const std::string& name) {
  for (const char* p : {"thinker.audio_tower.", "thinker.visual.", "talker.", "code2wav."}) {
    if (name.rfind(p, 0) == 0) return true;
  }
  return name.find("rotary_emb.inv_freq") != std::string::npos;
}

}  // namespace

// Validates names/shapes/dtypes, plans the dense arena, loads it, and locates experts.
class WeightBinder {
 public:
  WeightBinder(const Qwen3MoeConfig& cfg, const Checkpoint& ckpt, ModelWeights* m)
      : cfg_(cfg), ckpt_(ckpt), m_(m), p_(cfg.tensor_prefix) {}

  Status Run(const BindOptions& opts) {
    opts_ = opts;
    const uint64_t H = cfg_.hidden_size, V = cfg_.vocab_size, d = cfg_.head_dim;
    const uint64_t Hq = cfg_.num_attention_heads, Hkv = cfg_.num_key_value_heads;
    Want(names::Embed(p_), {V, H}, &m_->embed_);
    Want(names::FinalNorm(p_), {H}, &m_->norm_);
    if (!cfg_.tie_word_embeddings) Want(names::LmHead(p_), {V, H}, &m_->lm_head_, kMatMulOnly);
    m_->layers_.resize(static_cast<size_t>(cfg_.num_hidden_layers));
    m_->experts_.resize(static_cast<size_t>(cfg_.num_hidden_layers));
    for (int64_t l = 0; l < cfg_.num_hidden_layers; ++l) {
      LayerWeights& lw = m_->layers_[static_cast<size_t>(l)];
      Want(names::Layer(p_, l, "input_layernorm.weight"), {H}, &lw.input_layernorm);
      Want(names::Layer(p_, l, "post_attention_layernorm.weight"), {H}, &lw.post_attention_layernorm);
      Want(names::Layer(p_, l, "self_attn.q_proj.weight"), {Hq * d, H}, &lw.attn.q_proj, kMatMulOnly);
      Want(names::Layer(p_, l, "self_attn.k_proj.weight"), {Hkv * d, H}, &lw.attn.k_proj, kMatMulOnly);
      Want(names::Layer(p_, l, "self_attn.v_proj.weight"), {Hkv * d, H}, &lw.attn.v_proj, kMatMulOnly);
      Want(names::Layer(p_, l, "self_attn.o_proj.weight"), {H, Hq * d}, &lw.attn.o_proj, kMatMulOnly);
      Want(names::Layer(p_, l, "self_attn.q_norm.weight"), {d}, &lw.attn.q_norm);
      Want(names::Layer(p_, l, "self_attn.k_norm.weight"), {d}, &lw.attn.k_norm);
      lw.is_moe = cfg_.IsMoeLayer(l);
      if (lw.is_moe) {
        Want(names::Layer(p_, l, "mlp.gate.weight"), {static_cast<uint64_t>(cfg_.num_experts), H},
             &lw.router);
        if (opts.locate_experts) LocateExperts(l);
      } else {
        const uint64_t I = cfg_.intermediate_size;
        Want(names::Layer(p_, l, "mlp.gate_proj.weight"), {I, H}, &lw.mlp_gate, kMatMulOnly);
        Want(names::Layer(p_, l, "mlp.up_proj.weight"), {I, H}, &lw.mlp_up, kMatMulOnly);
        Want(names::Layer(p_, l, "mlp.down_proj.weight"), {H, I}, &lw.mlp_down, kMatMulOnly);
      }
    }
    MOE_TRY(ReportMissing());
    MOE_TRY(first_error_);
    MOE_TRY(CheckUnexpected());
    if (cfg_.tie_word_embeddings) pending_tie_ = true;
    if (opts.load_dense && opts.max_dense_bytes && arena_bytes_ > opts.max_dense_bytes) {
      return Error(StatusCode::kResourceExhausted,
                   "{}: dense weights need {} bytes ({:.1f} GiB), more than the {} bytes "
                   "({:.1f} GiB) of MemAvailable: refused before allocating", ckpt_.dir(),
                   arena_bytes_, arena_bytes_ / 1073741824.0, opts.max_dense_bytes,
                   opts.max_dense_bytes / 1073741824.0);
    }
    if (opts.load_dense) MOE_TRY(LoadDense());
    if (pending_tie_) m_->lm_head_ = m_->embed_;
    return Status::Ok();
  }

 private:
  struct Planned {
    const TensorRef* ref;
    DenseTensor* out;
    uint64_t arena_offset;
    bool quantize;  // stored type → out->view.type (BindOptions::dense_quant) while loading
    bool tile;      // row-major → tiled after reading and quantizing (BindOptions::tile_dense)
  };
  static constexpr bool kMatMulOnly = true;

  void Fail(Status s) {
    if (first_error_.ok()) first_error_ = std::move(s);
  }

  const TensorRef* Lookup(const std::string& name) {
    used_.insert(name);
    const TensorRef* ref = ckpt_.Find(name);
    if (!ref) missing_.push_back(name);
    return ref;
  }

  bool CheckShapeAndType(const TensorRef& ref, const std::vector<uint64_t>& shape) {
    const TensorInfo& ti = *ref.info;
    if (ti.shape != shape) {
      Fail(Error(StatusCode::kInvalidFormat, "{}: tensor '{}': shape {} vs {} expected from config",
                 ref.shard->path(), ti.name, ShapeStr(ti.shape), ShapeStr(shape)));
      return false;
    }
    if (!IsComputeDType(ti.dtype)) {
      Fail(Error(StatusCode::kUnsupported, "{}: tensor '{}': dtype {} unsupported (BF16, F16, F32)",
                 ref.shard->path(), ti.name, DTypeName(ti.dtype)));
      return false;
    }
    return true;
  }

  // `matmul_only`: the tensor is only ever a MatMul weight, so dense_quant may apply to it.
  void Want(const std::string& name, std::vector<uint64_t> shape, DenseTensor* out,
            bool matmul_only = false) {
    const TensorRef* ref = Lookup(name);
    if (!ref || !CheckShapeAndType(*ref, shape)) return;
    out->name = name;
    out->view.type = ToWeightType(ref->info->dtype);
    out->view.rows = shape.size() == 2 ? shape[0] : 1;
    out->view.cols = shape.back();
    const bool quantize = matmul_only && opts_.dense_quant.has_value();
    if (quantize) out->view.type = *opts_.dense_quant;
    const bool tile = matmul_only && opts_.tile_dense &&
                      kernels::TilingPays(out->view.type, out->view.rows, out->view.cols);
    planned_.push_back({ref, out, arena_bytes_, quantize, tile});
    arena_bytes_ += RoundUp(kernels::WeightMatrixBytes(out->view.type, out->view.rows,
                                                       out->view.cols), 64);
  }

  // Reads a tensor in chunks of rows and block-quantizes each row into dst.
  Status LoadQuantized(const Planned& p, char* dst) {
    const kernels::WeightView& v = p.out->view;
    const kernels::WeightType src_type = ToWeightType(p.ref->info->dtype);
    const uint64_t in_row = kernels::WeightMatrixBytes(src_type, 1, v.cols);
    const uint64_t out_row = kernels::WeightMatrixBytes(v.type, 1, v.cols);
    const size_t chunk_rows = std::max<size_t>(1, opts_.dense_quant_chunk_bytes / in_row);
    std::vector<char> in(chunk_rows * in_row);
    std::vector<float> row(v.cols);
    for (size_t r0 = 0; r0 < v.rows; r0 += chunk_rows) {
      const size_t n = std::min(chunk_rows, v.rows - r0);
      MOE_TRY(ckpt_.ReadRange(*p.ref, r0 * in_row, in.data(), n * in_row));
      kernels::QuantizeRows(in.data(), src_type, n, v.cols, v.type, dst + r0 * out_row,
                            row.data());
    }
    return Status::Ok();
  }

  void NoteExpertDType(const TensorRef& ref) {
    if (!expert_dtype_set_) {
      m_->expert_dtype_ = ref.info->dtype;
      expert_dtype_set_ = true;
    } else if (ref.info->dtype != m_->expert_dtype_) {
      Fail(Error(StatusCode::kUnsupported, "{}: tensor '{}': expert dtype {} differs from {}",
                 ref.shard->path(), ref.info->name, DTypeName(ref.info->dtype),
                 DTypeName(m_->expert_dtype_)));
    }
  }

  TensorSlice Plain(const TensorRef& ref, uint64_t offset, uint64_t rows, uint64_t cols) {
    TensorSlice s;
    s.file = ref.shard;
    s.file_offset = offset;
    s.dtype = ref.info->dtype;
    s.rows = rows;
    s.cols = cols;
    return s;
  }

  TensorSlice Transposed(const TensorRef& ref, uint64_t offset, uint64_t rows, uint64_t cols,
                         uint64_t stride, uint64_t col_offset) {
    TensorSlice s = Plain(ref, offset, rows, cols);
    s.transposed = true;
    s.stored_row_stride = stride;
    s.stored_col_offset = col_offset;
    return s;
  }

  void LocateExperts(int64_t l) {
    const uint64_t E = cfg_.num_experts, H = cfg_.hidden_size, I = cfg_.moe_intermediate_size;
    auto& table = m_->experts_[static_cast<size_t>(l)];
    table.resize(E);
    const bool fused = ckpt_.Find(names::FusedGateUp(p_, l)) != nullptr;
    if (!fused) {
      for (uint64_t e = 0; e < E; ++e) {
        const auto ie = static_cast<int64_t>(e);
        const TensorRef* g = Lookup(names::Expert(p_, l, ie, "gate_proj"));
        const TensorRef* u = Lookup(names::Expert(p_, l, ie, "up_proj"));
        const TensorRef* dn = Lookup(names::Expert(p_, l, ie, "down_proj"));
        if (!g || !u || !dn) continue;
        if (!CheckShapeAndType(*g, {I, H}) || !CheckShapeAndType(*u, {I, H}) ||
            !CheckShapeAndType(*dn, {H, I})) {
          continue;
        }
        for (const TensorRef* r : {g, u, dn}) NoteExpertDType(*r);
        table[e] = {Plain(*g, g->info->file_offset, I, H), Plain(*u, u->info->file_offset, I, H),
                    Plain(*dn, dn->info->file_offset, H, I)};
      }
      return;
    }
    const TensorRef* gu = Lookup(names::FusedGateUp(p_, l));
    const TensorRef* dn = Lookup(names::FusedDown(p_, l));
    if (!gu || !dn) return;
    // Layout by shape (spec §1.3). When H == 2I the gate_up shape cannot tell, and when H == I the
    // down shape cannot: a checkpoint uses one convention for both, so the other decides.
    bool gu_t = gu->info->shape == std::vector<uint64_t>{E, H, 2 * I};
    bool dn_t = dn->info->shape == std::vector<uint64_t>{E, I, H};
    if (H == 2 * I) gu_t = dn_t;
    if (H == I) dn_t = gu_t;
    if (!CheckShapeAndType(*gu, gu_t ? std::vector<uint64_t>{E, H, 2 * I}
                                     : std::vector<uint64_t>{E, 2 * I, H}) ||
        !CheckShapeAndType(*dn, dn_t ? std::vector<uint64_t>{E, I, H}
                                     : std::vector<uint64_t>{E, H, I})) {
      return;
    }
    NoteExpertDType(*gu);
    NoteExpertDType(*dn);
    const uint64_t b = DTypeBits(gu->info->dtype) / 8;
    for (uint64_t e = 0; e < E; ++e) {
      const uint64_t gu_base = gu->info->file_offset + e * 2 * I * H * b;
      const uint64_t dn_base = dn->info->file_offset + e * H * I * b;
      ExpertLocation& loc = table[e];
      if (gu_t) {
        loc.gate = Transposed(*gu, gu_base, I, H, 2 * I, 0);
        loc.up = Transposed(*gu, gu_base, I, H, 2 * I, I);
      } else {
        loc.gate = Plain(*gu, gu_base, I, H);
        loc.up = Plain(*gu, gu_base + I * H * b, I, H);
      }
      loc.down = dn_t ? Transposed(*dn, dn_base, H, I, H, 0) : Plain(*dn, dn_base, H, I);
    }
  }

  Status ReportMissing() {
    if (missing_.empty()) return Status::Ok();
    std::vector<std::string> head(missing_.begin(),
                                  missing_.begin() + std::min<size_t>(5, missing_.size()));
    return Error(StatusCode::kInvalidFormat, "{}: {} required tensor(s) missing: {}{}", ckpt_.dir(),
                 missing_.size(), fmt::join(head, ", "), missing_.size() > head.size() ? ", ..." : "");
  }

  Status CheckUnexpected() {
    std::vector<std::string> extra;
    for (const std::string& n : ckpt_.Names()) {
      if (!used_.count(n) && !IsIgnoredComponent(n)) extra.push_back(n);
    }
    if (extra.empty()) return Status::Ok();
    return Error(StatusCode::kInvalidFormat,
                 "{}: {} unexpected tensor(s) for this config, e.g. '{}' (wrong config.json?)",
                 ckpt_.dir(), extra.size(), extra.front());
  }

  Status LoadDense() {
    m_->arena_ = AllocateHugeBuffer(arena_bytes_, /*prefault=*/false);
    if (!m_->arena_) {
      return Error(StatusCode::kResourceExhausted, "{}: cannot allocate {} bytes of dense weights",
                   ckpt_.dir(), arena_bytes_);
    }
    m_->arena_bytes_ = arena_bytes_;
    ProgressMeter progress(arena_bytes_ >= opts_.progress_min_bytes ? opts_.progress : nullptr,
                           "dense weights", arena_bytes_);
    uint64_t done = 0;
    for (const Planned& p : planned_) {
      char* dst = m_->arena_.get() + p.arena_offset;
      if (p.quantize) {
        MOE_TRY(LoadQuantized(p, dst));
      } else {
        MOE_TRY(ckpt_.Read(*p.ref, dst, p.ref->info->n_bytes));
      }
      if (p.tile) {
        kernels::TileMatrix(dst, p.out->view.type, p.out->view.rows, p.out->view.cols);
        p.out->view.tiled = true;
      }
      p.out->view.data = dst;
      done += p.ref->info->n_bytes;
      progress.Update(done);
    }
    progress.Finish();
    return Status::Ok();
  }

  const Qwen3MoeConfig& cfg_;
  BindOptions opts_;
  const Checkpoint& ckpt_;
  ModelWeights* m_;
  std::string p_;
  std::vector<Planned> planned_;
  uint64_t arena_bytes_ = 0;
  std::vector<std::string> missing_;
  std::set<std::string> used_;
  Status first_error_;
  bool expert_dtype_set_ = false;
  bool pending_tie_ = false;
};

Result<std::unique_ptr<ModelWeights>> ModelWeights::Bind(const Qwen3MoeConfig& cfg,
                                                         const Checkpoint& ckpt,
                                                         const BindOptions& opts) {
  std::unique_ptr<ModelWeights> m(new ModelWeights());
  m->cfg_ = cfg;
  WeightBinder binder(m->cfg_, ckpt, m.get());
  MOE_TRY(binder.Run(opts));
  return m;
}

namespace {
void AddName(const DenseTensor& t, std::vector<std::string>* out) {
  if (!t.name.empty()) out->push_back(t.name);
}
}  // namespace

std::vector<std::string> DenseTensorNames(const ModelWeights& w) {
  std::vector<std::string> n;
  AddName(w.embed(), &n);
  AddName(w.final_norm(), &n);
  if (!w.config().tie_word_embeddings) AddName(w.lm_head(), &n);
  for (int64_t l = 0; l < w.config().num_hidden_layers; ++l) {
    const LayerWeights& lw = w.layer(l);
    for (const DenseTensor* t : {&lw.input_layernorm, &lw.post_attention_layernorm,
                                 &lw.attn.q_proj, &lw.attn.k_proj, &lw.attn.v_proj,
                                 &lw.attn.o_proj, &lw.attn.q_norm, &lw.attn.k_norm, &lw.router,
                                 &lw.mlp_gate, &lw.mlp_up, &lw.mlp_down}) {
      AddName(*t, &n);
    }
  }
  return n;
}

}  // namespace moe
