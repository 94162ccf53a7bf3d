#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Builds tiny random-init Qwen3-MoE checkpoints with HF transformers and records HF's own outputs.

Runs on the GPU machine (torch, transformers ≥ 5, safetensors; no network):
    python3 scripts/make_fixtures.py --out DIR
Each case folder holds the checkpoint as transformers saved it (bf16 safetensors, sharded where
asked) plus `reference/`: float32 logits of every prompt position of the model reloaded in
float32 from the bf16 files (eager attention and experts), router top-k per (position, MoE
layer), and a greedy continuation. Variants that transformers cannot save itself (Qwen3-Omni
packaging, fused expert layouts, the 4.x config spelling) are derived from a saved case by
rewriting files; their expected outputs are the source case's (spec §1.3, §3.2).
"""
import argparse
import json
import os
import shutil
import struct
import sys

import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers import Qwen3MoeConfig, Qwen3MoeForCausalLM

PROMPT_LEN = 11
NEW_TOKENS = 8

CASES = {
    # 3 layers, layer 1 dense (mlp_only_layers), head_dim 32 != hidden/heads, GQA 2, sharded.
    "base": dict(vocab_size=384, hidden_size=64, num_hidden_layers=3, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=32, intermediate_size=96,
                 moe_intermediate_size=32, num_experts=8, num_experts_per_tok=2,
                 norm_topk_prob=True, mlp_only_layers=[1], tie_word_embeddings=False,
                 rms_norm_eps=1e-6, rope_theta=10000.0, shard="60KB"),
    # tied embeddings, norm_topk_prob false, GQA 4, decoder_sparse_step 2 (layers 1, 3 MoE).
    "tied": dict(vocab_size=320, hidden_size=48, num_hidden_layers=4, num_attention_heads=8,
                 num_key_value_heads=2, head_dim=16, intermediate_size=80,
                 moe_intermediate_size=24, num_experts=6, num_experts_per_tok=3,
                 norm_topk_prob=False, decoder_sparse_step=2, tie_word_embeddings=True,
                 rms_norm_eps=1e-5, rope_theta=1000000.0),
    # MHA (GQA 1), no head_dim key (hidden/heads), 16 experts top-4, YaRN rope scaling.
    "mha_yarn": dict(vocab_size=256, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                     num_key_value_heads=4, head_dim=None, intermediate_size=64,
                     moe_intermediate_size=16, num_experts=16, num_experts_per_tok=4,
                     norm_topk_prob=True, tie_word_embeddings=False, rms_norm_eps=1e-6,
                     rope_theta=10000.0, max_position_embeddings=256,
                     rope_scaling={"rope_type": "yarn", "factor": 4.0,
                                   "original_max_position_embeddings": 64}),
}


def build_config(spec):
    spec = dict(spec)
    spec.pop("shard", None)
    head_dim = spec.pop("head_dim", None)
    rope_scaling = spec.pop("rope_scaling", None)
    theta = spec.pop("rope_theta")
    kw = dict(spec, max_position_embeddings=spec.get("max_position_embeddings", 512),
              bos_token_id=1, eos_token_id=2, attention_bias=False, use_sliding_window=False)
    cfg = Qwen3MoeConfig(**kw)
    params = {"rope_type": "default", "rope_theta": theta}
    if rope_scaling:
        params.update(rope_scaling)
    # transformers 5 reads rope_parameters; 4.x reads rope_theta / rope_scaling.
    cfg.rope_parameters = params
    cfg.rope_theta = theta
    cfg.head_dim = head_dim if head_dim is not None else (
        spec["hidden_size"] // spec["num_attention_heads"])
    # Both spellings of the expert count, whichever this transformers version reads.
    cfg.num_experts = spec["num_experts"]
    cfg.num_local_experts = spec["num_experts"]
    return cfg


def init_weights(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:  # norms: away from 1 so a missing norm is visible
                p.copy_(0.5 + torch.rand(p.shape, generator=g))
            elif name.endswith("mlp.gate.weight"):  # router: decisive routing
                p.copy_(torch.randn(p.shape, generator=g) * 4.0 / p.shape[-1] ** 0.5)
            elif "embed_tokens" in name or "lm_head" in name:
                p.copy_(torch.randn(p.shape, generator=g))
            else:  # [out, in] linears, also fused expert tensors [E, out, in]
                fan_in = p.shape[-1]
                p.copy_(torch.randn(p.shape, generator=g) * 1.5 / fan_in ** 0.5)


def load_f32(path):
    kwargs = dict(dtype=torch.float32, attn_implementation="eager")
    for extra in ({"experts_implementation": "eager"}, {}):
        try:
            return Qwen3MoeForCausalLM.from_pretrained(path, **kwargs, **extra)
        except (TypeError, ValueError) as e:
            print("retrying load without", extra, e, file=sys.stderr)
    raise RuntimeError("cannot load " + path)


def record_reference(model, cfg, ids, ref_dir):
    os.makedirs(ref_dir, exist_ok=True)
    captured = {}
    hooks = []
    for i, layer in enumerate(model.model.layers):
        gate = getattr(layer.mlp, "gate", None)
        if gate is None or not hasattr(gate, "weight") or gate.weight.dim() != 2:
            continue
        if gate.weight.shape[0] != cfg.num_experts:
            continue

        def hook(mod, inp, out, i=i):
            captured[i] = (inp[0].detach().reshape(-1, inp[0].shape[-1]).clone(), out)
        hooks.append(gate.register_forward_hook(hook))
    with torch.no_grad():
        out = model(torch.tensor([ids]))
    for h in hooks:
        h.remove()
    logits = out.logits[0].float().contiguous()
    with open(os.path.join(ref_dir, "logits.f32"), "wb") as f:
        f.write(logits.numpy().astype("<f4").tobytes())
    k = cfg.num_experts_per_tok
    trace = []
    for layer in sorted(captured):
        x, hf_out = captured[layer]
        w = model.model.layers[layer].mlp.gate.weight
        probs = torch.softmax(torch.nn.functional.linear(x, w).float(), dim=-1)
        top_w, top_i = torch.topk(probs, k, dim=-1)
        if cfg.norm_topk_prob:
            top_w = top_w / top_w.sum(dim=-1, keepdim=True)
        # Cross-check against the indices HF's router module itself returned, when it returns them.
        hf_idx = None
        if isinstance(hf_out, (tuple, list)):
            for t in hf_out:
                if torch.is_tensor(t) and not t.is_floating_point() and t.shape[-1] == k:
                    hf_idx = t.reshape(-1, k)
        if hf_idx is not None and not torch.equal(torch.sort(hf_idx, -1).values,
                                                  torch.sort(top_i, -1).values):
            raise RuntimeError(f"router recomputation disagrees with HF at layer {layer}")
        for pos in range(x.shape[0]):
            trace.append({"pos": pos, "layer": layer, "experts": top_i[pos].tolist(),
                          "weights": [float(v) for v in top_w[pos]]})
    with open(os.path.join(ref_dir, "trace.jsonl"), "w") as f:
        for row in trace:
            f.write(json.dumps(row) + "\n")
    with torch.no_grad():
        gen = model.generate(torch.tensor([ids]), max_new_tokens=NEW_TOKENS, do_sample=False,
                             eos_token_id=None, pad_token_id=0, min_new_tokens=NEW_TOKENS)
    meta = {"prompt": ids, "vocab_size": cfg.vocab_size, "greedy": gen[0, len(ids):].tolist(),
            "transformers": transformers.__version__, "torch": torch.__version__,
            "logits_shape": list(logits.shape), "max_abs_logit": float(logits.abs().max())}
    with open(os.path.join(ref_dir, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    return meta


def rewrite_tensors(src, dst, rename, extra=None, transform=None):
    """Copies a saved checkpoint with renamed/transformed tensors into one model.safetensors."""
    os.makedirs(dst, exist_ok=True)
    tensors = {}
    for fn in sorted(os.listdir(src)):
        if fn.endswith(".safetensors"):
            tensors.update(load_file(os.path.join(src, fn)))
    if transform:
        tensors = transform(tensors)
    out = {rename(k): v.contiguous() for k, v in tensors.items()}
    if extra:
        out.update(extra)
    save_file(out, os.path.join(dst, "model.safetensors"), metadata={"format": "pt"})
    for fn in ("generation_config.json",):
        if os.path.exists(os.path.join(src, fn)):
            shutil.copy(os.path.join(src, fn), os.path.join(dst, fn))


def fuse_experts(transposed):
    def f(t):
        out, groups = {}, {}
        for k, v in t.items():
            parts = k.split(".")
            if ".mlp.experts." in k and parts[-2] in ("gate_proj", "up_proj", "down_proj"):
                layer = ".".join(parts[:parts.index("experts")])
                groups.setdefault(layer, {}).setdefault(parts[-2], {})[int(parts[-3])] = v
            else:
                out[k] = v
        for layer, g in groups.items():
            n = len(g["gate_proj"])
            gate = torch.stack([g["gate_proj"][e] for e in range(n)])
            up = torch.stack([g["up_proj"][e] for e in range(n)])
            down = torch.stack([g["down_proj"][e] for e in range(n)])
            gate_up = torch.cat([gate, up], dim=1)  # [E, 2I, H], gate rows first
            if transposed:
                gate_up, down = gate_up.transpose(1, 2), down.transpose(1, 2)
            out[layer + ".experts.gate_up_proj"] = gate_up.contiguous()
            out[layer + ".experts.down_proj"] = down.contiguous()
        return out
    return f


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.manual_seed(0)
    summary = {}
    for i, (name, spec) in enumerate(CASES.items()):
        cfg = build_config(spec)
        model = Qwen3MoeForCausalLM(cfg)
        init_weights(model, 1000 + i)
        model = model.to(torch.bfloat16)
        path = os.path.join(args.out, name)
        model.save_pretrained(path, max_shard_size=spec.get("shard", "50MB"))
        if spec.get("head_dim", 0) is None:  # exercise the hidden/heads fallback
            cj = json.load(open(os.path.join(path, "config.json")))
            cj.pop("head_dim", None)
            json.dump(cj, open(os.path.join(path, "config.json"), "w"), indent=1)
        f32 = load_f32(path).eval()
        g = torch.Generator().manual_seed(7 + i)
        ids = torch.randint(3, cfg.vocab_size, (PROMPT_LEN,), generator=g).tolist()
        summary[name] = record_reference(f32, cfg, ids, os.path.join(path, "reference"))
        print(name, "files:", sorted(os.listdir(path)), "greedy:", summary[name]["greedy"])

    base = os.path.join(args.out, "base")
    base_cfg = json.load(open(os.path.join(base, "config.json")))

    # Qwen3-Omni packaging of "base": thinker.* prefix, config under thinker_config.text_config,
    # plus audio/vision/talker tensors the text decoder must ignore.
    omni = os.path.join(args.out, "omni")
    junk = {"thinker.audio_tower.conv1.weight": torch.ones(4, 4, dtype=torch.bfloat16),
            "thinker.visual.patch_embed.proj.weight": torch.ones(8, dtype=torch.bfloat16),
            "talker.model.codec_embedding.weight": torch.ones(6, 2, dtype=torch.bfloat16),
            "code2wav.code_embedding.weight": torch.ones(3, 2, dtype=torch.bfloat16)}
    rewrite_tensors(base, omni, lambda k: "thinker." + k, extra=junk)
    text_cfg = dict(base_cfg, model_type="qwen3_omni_moe_text")
    text_cfg["rope_parameters"] = dict(text_cfg.get("rope_parameters") or {},
                                       mrope_section=[8, 4, 4], interleaved=True,
                                       mrope_interleaved=True)
    omni_cfg = {"architectures": ["Qwen3OmniMoeForConditionalGeneration"],
                "model_type": "qwen3_omni_moe", "enable_audio_output": True,
                "thinker_config": {"model_type": "qwen3_omni_moe_thinker", "text_config": text_cfg,
                                   "audio_token_id": 151675},
                "talker_config": {"model_type": "qwen3_omni_moe_talker"},
                "code2wav_config": {"model_type": "qwen3_omni_moe_code2wav"}}
    json.dump(omni_cfg, open(os.path.join(omni, "config.json"), "w"), indent=1)
    shutil.copytree(os.path.join(base, "reference"), os.path.join(omni, "reference"))

    # Fused expert layouts of "base": [E,2I,H]/[E,H,I] and transposed [E,H,2I]/[E,I,H].
    for name, transposed in (("fused", False), ("fused_t", True)):
        dst = os.path.join(args.out, name)
        rewrite_tensors(base, dst, lambda k: k, transform=fuse_experts(transposed))
        shutil.copy(os.path.join(base, "config.json"), os.path.join(dst, "config.json"))
        shutil.copytree(os.path.join(base, "reference"), os.path.join(dst, "reference"))

    # transformers 4.x spelling of "tied": num_experts, rope_theta, torch_dtype.
    tied = os.path.join(args.out, "tied")
    c = json.load(open(os.path.join(tied, "config.json")))
    c4 = dict(c)
    c4.pop("num_local_experts", None)
    c4["num_experts"] = CASES["tied"]["num_experts"]
    rp = c4.pop("rope_parameters", None) or {}
    c4["rope_theta"] = rp.get("rope_theta", CASES["tied"]["rope_theta"])
    c4["rope_scaling"] = None
    c4["torch_dtype"] = c4.pop("dtype", "bfloat16")
    c4["transformers_version"] = "4.51.0"
    json.dump(c4, open(os.path.join(tied, "config.json"), "w"), indent=1)
    json.dump(c, open(os.path.join(tied, "reference", "config.v5.json"), "w"), indent=1)

    json.dump(summary, open(os.path.join(args.out, "summary.json"), "w"), indent=1)
    print("transformers", transformers.__version__, "torch", torch.__version__)


if __name__ == "__main__":
    main()
