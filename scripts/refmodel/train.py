#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Trains moestream's bundled reference model (a small Qwen3-MoE) on the .refcorpus corpus.

Runs on the GPU machine from the repository root, with torch, transformers (5.x), tokenizers,
safetensors and numpy, and no network:

  python3 scripts/refmodel/train.py --corpus .refcorpus --out $OUT/refmodel --minutes 7
  python3 scripts/refmodel/train.py --corpus .refcorpus --out $OUT/refmodel --smoke   # ~1 min

Steps: (1) train a byte-level BPE tokenizer in the exact Qwen2/Qwen3 pipeline and check the saved
tokenizer.json; (2) build Qwen3MoeForCausalLM; (3) train for a wall-clock budget (bf16 weights and
activations, fp32 master weights in AdamW, cosine schedule, load-balancing router loss) on
windows drawn from all domains; (4) evaluate held-out perplexity per domain; (5) save in HF format
(bf16, shards <= 15 MB) with tokenizer files, metrics, loss curve, samples and a model card;
(6) reload the saved files in float32 (eager attention, eager experts, CPU) and record reference
logits, router top-k and greedy continuations of held-out passages (test fixtures).

Outputs in --out (at most 6 files, each <= 15 MiB):
  refmodel.tar.NN   parts of one tar; `cat refmodel.tar.* | tar -xm -C <repo root>` creates
                    models/qwen3-moe-ref/ (the model) and tests/data/refmodel/ (fixtures)
  metrics.json, samples.txt, train.log   copies for a quick look
"""

import argparse
import contextlib
import io
import json
import math
import os
import random
import shutil
import tarfile
import time
import traceback

T0 = time.time()

QWEN_SPLIT_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
                    r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
PLAIN_ADDED_TOKENS = ["<think>", "</think>"]
DOMAINS = ["scripture", "dictionary", "quotations", "c_headers", "python", "manpages", "chat"]
MODEL_DIR = "models/qwen3-moe-ref"        # inside the tar, relative to the repository root
FIXTURE_DIR = "tests/data/refmodel"
PART_BYTES = 15 * 1024 * 1024

# ChatML template in the Qwen3 style (no tools section): the last assistant turn shows its think
# block (empty when there is no reasoning); enable_thinking=false pre-fills an empty one.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message.role == 'assistant' %}"
    "{%- set content = message.content if message.content is string else '' %}"
    "{%- set reasoning = message.reasoning_content if message.reasoning_content is string "
    "else '' %}"
    "{%- if not reasoning and '</think>' in content %}"
    "{%- set reasoning = content.split('</think>')[0].split('<think>')[-1].strip('\\n') %}"
    "{%- set content = content.split('</think>')[-1].lstrip('\\n') %}"
    "{%- endif %}"
    "{%- if loop.last %}"
    "{{- '<|im_start|>assistant\\n<think>\\n' + reasoning.strip('\\n') + '\\n</think>\\n\\n'"
    " + content.lstrip('\\n') + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>assistant\\n' + content.lstrip('\\n') + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- elif message.role == 'tool' %}"
    "{{- '<|im_start|>user\\n<tool_response>\\n' + message.content + '\\n</tool_response>"
    "<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{- '<think>\\n\\n</think>\\n\\n' }}"
    "{%- endif %}"
    "{%- endif %}")

_LOG_FILE = None


def log(msg):
    line = f"[{time.time() - T0:7.1f}s] {msg}"
    print(line, flush=True)
    if _LOG_FILE is not None:
        _LOG_FILE.write(line + "\n")
        _LOG_FILE.flush()


def parse_args():
    ap = argparse.ArgumentParser(description="Train the bundled Qwen3-MoE reference model.")
    ap.add_argument("--corpus", default=".refcorpus")
    ap.add_argument("--out", required=True, help="folder for the returned files")
    ap.add_argument("--work", default=None, help="scratch folder (default: <tmp>/refmodel-work)")
    ap.add_argument("--minutes", type=float, default=7.0, help="training wall-clock budget")
    ap.add_argument("--total-minutes", type=float, default=9.0,
                    help="hard budget for the whole script; training is cut short to fit")
    ap.add_argument("--reserve-s", type=float, default=80.0,
                    help="seconds kept for evaluation and export after training")
    ap.add_argument("--steps", type=int, default=0,
                    help="fixed number of optimizer steps (default: fit --minutes)")
    ap.add_argument("--smoke", action="store_true",
                    help="tiny data, ~5 s of training; exercises every other step")
    ap.add_argument("--seed", type=int, default=1234)
    # Tokenizer
    ap.add_argument("--tokenizer-vocab", type=int, default=6100,
                    help="total tokenizer size including the 5 added tokens")
    ap.add_argument("--tokenizer-sample-mb", type=float, default=3.0,
                    help="MB of text per domain used to train the tokenizer")
    # Model
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--head-dim", type=int, default=64)
    ap.add_argument("--experts", type=int, default=32)
    ap.add_argument("--top-k", type=int, default=4)
    ap.add_argument("--expert-inter", type=int, default=64)
    ap.add_argument("--tie-embeddings", action="store_true")
    ap.add_argument("--max-bytes", type=float, default=38.5e6,
                    help="refuse configurations whose bf16 weights exceed this")
    # Optimisation
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--min-lr-ratio", type=float, default=0.1)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--aux-coef", type=float, default=0.01)
    ap.add_argument("--domain-alpha", type=float, default=0.8,
                    help="domain sampling weight = train_tokens ** alpha")
    ap.add_argument("--experts-impl", default="auto",
                    help="auto (fastest that works), grouped_mm or eager")
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--eval-every-s", type=float, default=60.0)
    ap.add_argument("--eval-tokens", type=int, default=100_000,
                    help="held-out tokens per domain in the final evaluation")
    return ap.parse_args()


# ---------------------------------------------------------------------------------------------
# Corpus


def load_corpus(path, smoke):
    import gzip
    manifest = json.load(open(os.path.join(path, "manifest.json")))
    corpus = {}
    for d in DOMAINS:
        corpus[d] = {}
        for split in ["train", "heldout"]:
            p = os.path.join(path, f"{d}.{split}.jsonl.gz")
            opener = gzip.open if os.path.exists(p) else open
            if not os.path.exists(p):
                p = p[:-3]
            with opener(p, "rt", encoding="utf-8") as f:
                docs = [json.loads(line)["text"] for line in f]
            if smoke:
                docs = docs[:300 if split == "train" else 40]
            corpus[d][split] = docs
    return corpus, manifest


# ---------------------------------------------------------------------------------------------
# Tokenizer


def train_tokenizer(corpus, args):
    from tokenizers import (AddedToken, Regex, Tokenizer, decoders, models, normalizers,
                            pre_tokenizers, processors, trainers)
    tok = Tokenizer(models.BPE(unk_token=None, byte_fallback=False, fuse_unk=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_SPLIT_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    try:
        tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False,
                                                  use_regex=False)
    except TypeError:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    n_added = len(SPECIAL_TOKENS) + len(PLAIN_ADDED_TOKENS)
    trainer = trainers.BpeTrainer(vocab_size=args.tokenizer_vocab - n_added, min_frequency=2,
                                  show_progress=False, special_tokens=[],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    # A per-domain sample (chat excluded: it re-uses other domains' text around added tokens).
    budget = int(args.tokenizer_sample_mb * 1e6)
    sample = []
    for d in DOMAINS:
        if d == "chat":
            continue
        size = 0
        for text in corpus[d]["train"]:
            if size >= budget:
                break
            sample.append(text)
            size += len(text)
    tok.train_from_iterator(sample, trainer=trainer, length=len(sample))
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False, lstrip=False,
                                       rstrip=False, single_word=False) for t in SPECIAL_TOKENS])
    tok.add_tokens([AddedToken(t, special=False, normalized=False, lstrip=False, rstrip=False,
                               single_word=False) for t in PLAIN_ADDED_TOKENS])
    return tok


def check_tokenizer_json(path):
    """Fails unless tokenizer.json has exactly the Qwen2/Qwen3 pipeline."""
    j = json.load(open(path, encoding="utf-8"))
    problems = []

    def expect(cond, what):
        if not cond:
            problems.append(what)

    expect(j.get("normalizer") == {"type": "NFC"}, f"normalizer {j.get('normalizer')}")
    pt = j.get("pre_tokenizer") or {}
    steps = pt.get("pretokenizers", [])
    expect(pt.get("type") == "Sequence" and len(steps) == 2, f"pre_tokenizer {pt}")
    if len(steps) == 2:
        s0, s1 = steps
        expect(s0.get("type") == "Split" and s0.get("pattern") == {"Regex": QWEN_SPLIT_REGEX}
               and s0.get("behavior") == "Isolated" and s0.get("invert") is False,
               f"split step {s0}")
        expect(s1.get("type") == "ByteLevel" and s1.get("add_prefix_space") is False
               and s1.get("trim_offsets") is False and s1.get("use_regex") is False,
               f"byte-level step {s1}")
    expect((j.get("decoder") or {}).get("type") == "ByteLevel", f"decoder {j.get('decoder')}")
    m = j.get("model") or {}
    expect(m.get("type") == "BPE" and m.get("unk_token") is None and not m.get("byte_fallback")
           and m.get("dropout") is None and not m.get("ignore_merges"),
           f"model flags { {k: v for k, v in m.items() if k not in ('vocab', 'merges')} }")
    vocab = m.get("vocab", {})
    from tokenizers import pre_tokenizers
    missing = [c for c in pre_tokenizers.ByteLevel.alphabet() if c not in vocab]
    expect(len(pre_tokenizers.ByteLevel.alphabet()) == 256 and not missing,
           f"byte alphabet incomplete: {len(missing)} missing")
    added = {a["content"]: a for a in j.get("added_tokens", [])}
    n = len(vocab)
    for i, t in enumerate(SPECIAL_TOKENS + PLAIN_ADDED_TOKENS):
        a = added.get(t)
        expect(a is not None and a["id"] == n + i and a["special"] == (t in SPECIAL_TOKENS)
               and a["normalized"] is False, f"added token {t}: {a}")
    if problems:
        raise SystemExit("tokenizer.json check failed: " + "; ".join(problems))
    return {"ordinary_vocab": n, "merges": len(m.get("merges", [])),
            "total": n + len(SPECIAL_TOKENS) + len(PLAIN_ADDED_TOKENS)}


def write_tokenizer_config(path, tok, max_len):
    added = {}
    for t in SPECIAL_TOKENS + PLAIN_ADDED_TOKENS:
        added[str(tok.token_to_id(t))] = {"content": t, "lstrip": False, "normalized": False,
                                          "rstrip": False, "single_word": False,
                                          "special": t in SPECIAL_TOKENS}
    cfg = {
        "add_bos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": added,
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
        "bos_token": None,
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|endoftext|>",
        "errors": "replace",
        "model_max_length": max_len,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=2, ensure_ascii=False)
        f.write("\n")


def encode_domains(tok, corpus, eos_id):
    import numpy as np
    streams, stats = {}, {}
    for d in DOMAINS:
        streams[d] = {}
        for split in ["train", "heldout"]:
            docs = corpus[d][split]
            encs = tok.encode_batch(docs, add_special_tokens=False)
            parts = []
            for e in encs:
                parts.append(np.asarray(e.ids, dtype=np.int32))
                parts.append(np.asarray([eos_id], dtype=np.int32))
            arr = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)
            streams[d][split] = arr
            nbytes = sum(len(t.encode("utf-8")) for t in docs)
            stats[f"{d}.{split}"] = {"docs": len(docs), "bytes": nbytes, "tokens": int(arr.size),
                                     "bytes_per_token": nbytes / max(1, arr.size - len(docs))}
    return streams, stats


# ---------------------------------------------------------------------------------------------
# Model


def build_configs(args, vocab_size, eos_ids):
    """Candidate configs: v5 spells RoPE as rope_parameters, v4 as rope_theta."""
    from transformers import Qwen3MoeConfig
    kw = dict(vocab_size=vocab_size, hidden_size=args.hidden, intermediate_size=4 * args.hidden,
              num_hidden_layers=args.layers, num_attention_heads=args.heads,
              num_key_value_heads=args.kv_heads, head_dim=args.head_dim, hidden_act="silu",
              max_position_embeddings=2048, initializer_range=0.02, rms_norm_eps=1e-6,
              use_cache=True, tie_word_embeddings=args.tie_embeddings, attention_bias=False,
              use_sliding_window=False, attention_dropout=0.0, decoder_sparse_step=1,
              moe_intermediate_size=args.expert_inter, num_experts_per_tok=args.top_k,
              num_experts=args.experts, norm_topk_prob=True, output_router_logits=False,
              router_aux_loss_coef=args.aux_coef, mlp_only_layers=[],
              bos_token_id=eos_ids["<|endoftext|>"], eos_token_id=eos_ids["<|endoftext|>"],
              pad_token_id=eos_ids["<|endoftext|>"])
    for rope in [{"rope_parameters": {"rope_type": "default", "rope_theta": 1e6}},
                 {"rope_theta": 1e6}]:
        try:
            cfg = Qwen3MoeConfig(**kw, **rope)
        except Exception as e:  # noqa: BLE001 - try the next spelling
            log(f"config variant {list(rope)} rejected: {e}")
            continue
        if getattr(cfg, "head_dim", None) != args.head_dim:
            cfg.head_dim = args.head_dim
        yield cfg


def build_model(args, vocab_size, eos_ids):
    from transformers import Qwen3MoeForCausalLM
    problems = []
    for cfg in build_configs(args, vocab_size, eos_ids):
        model = Qwen3MoeForCausalLM(cfg)
        try:
            check_model(model, args)
            return model
        except SystemExit as e:
            problems.append(str(e))
            log(f"config variant rejected: {e}")
    raise SystemExit("no config variant gives the intended model: " + " | ".join(problems))


def check_model(model, args):
    """Fails early if the built model does not have the intended geometry."""
    attn = model.model.layers[0].self_attn
    problems = []
    if attn.q_proj.out_features != args.heads * args.head_dim:
        problems.append(f"q_proj out {attn.q_proj.out_features}")
    if attn.k_proj.out_features != args.kv_heads * args.head_dim:
        problems.append(f"k_proj out {attn.k_proj.out_features}")
    if not hasattr(attn, "q_norm") or attn.q_norm.weight.numel() != args.head_dim:
        problems.append("q_norm missing or wrong size")
    inv = None
    for name, buf in model.named_buffers():
        if name.endswith("inv_freq"):
            inv = buf.float().cpu()
            break
    if inv is None or inv.numel() != args.head_dim // 2:
        problems.append("rotary inv_freq missing or wrong size")
    else:
        want = 1.0 / (1e6 ** (2.0 / args.head_dim))
        if abs(inv[1].item() - want) > 1e-6 * max(1.0, want) + 1e-9:
            problems.append(f"rope theta: inv_freq[1]={inv[1].item()} want {want}")
    mlp = model.model.layers[0].mlp
    if not hasattr(mlp, "gate") or not hasattr(mlp, "experts"):
        problems.append("layer 0 is not a sparse MoE block")
    if problems:
        raise SystemExit("model check failed: " + "; ".join(problems))


def init_weights(model, n_layers, std=0.02):
    import torch
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.fill_(1.0)  # RMSNorm weights
            elif name.endswith("o_proj.weight") or "down_proj" in name:
                p.normal_(0.0, std / math.sqrt(2 * n_layers))
            else:
                p.normal_(0.0, std)


def set_experts_impl(model, impl):
    if hasattr(model, "set_experts_implementation"):
        model.set_experts_implementation(impl)
    else:
        model.config._experts_implementation = impl


class RouterStats:
    """Forward hooks on every router: a load-balancing loss computed from the router's own input
    (independent of what a transformers version returns from the router), and per-expert load."""

    def __init__(self, model, n_experts, top_k):
        import torch
        self.torch = torch
        self.E, self.k = n_experts, top_k
        self.losses = []
        self._layer_counts = []
        self.enabled = True
        self.handles = []
        self.gates = [layer.mlp.gate for layer in model.model.layers if hasattr(layer.mlp, "gate")]
        for g in self.gates:
            self.handles.append(g.register_forward_hook(self._hook, with_kwargs=True))

    def _hook(self, module, args, kwargs, output):
        if not self.enabled:
            return
        torch = self.torch
        x = args[0] if args else next(iter(kwargs.values()))
        h = x.reshape(-1, x.shape[-1])
        logits = torch.nn.functional.linear(h, module.weight).float()
        probs = torch.softmax(logits, dim=-1)
        idx = torch.topk(probs, self.k, dim=-1).indices
        frac = torch.zeros(self.E, device=h.device, dtype=torch.float32)
        frac.scatter_add_(0, idx.reshape(-1), torch.ones(idx.numel(), device=h.device))
        frac = frac / idx.numel()
        # Switch/Mixtral-style load balancing: E * sum_e (fraction routed to e) * (mean prob of e).
        self.losses.append(self.E * (frac * probs.mean(0)).sum())
        self._layer_counts.append(frac.detach())

    def start_step(self):
        self.losses = []
        self._layer_counts = []

    def aux_loss(self, like):
        if not self.losses:
            return like.new_zeros(())
        return self.torch.stack(self.losses).mean()

    def layer_loads(self):
        """[layers, E] fraction of routed slots per expert in the last forward."""
        if not self._layer_counts:
            return None
        return self.torch.stack(self._layer_counts)

    def remove(self):
        for h in self.handles:
            h.remove()
        self.handles = []


# ---------------------------------------------------------------------------------------------
# Training


class Batcher:
    def __init__(self, streams, args, device, seed):
        import numpy as np
        import torch
        self.torch = torch
        self.seq = args.seq
        names, lens, parts = [], [], []
        for d in DOMAINS:
            arr = streams[d]["train"]
            if arr.size <= args.seq + 1:
                continue
            names.append(d)
            lens.append(arr.size)
            parts.append(arr)
        self.names = names
        self.data = torch.from_numpy(np.concatenate(parts).astype(np.int64)).to(device)
        lens_t = torch.tensor(lens, dtype=torch.float64)
        self.offsets = torch.cumsum(torch.tensor([0] + lens[:-1], dtype=torch.int64), 0).to(device)
        self.span = torch.tensor([n - args.seq - 1 for n in lens], dtype=torch.int64).to(device)
        w = lens_t ** args.domain_alpha
        self.weights = (w / w.sum()).float().to(device)
        self.gen = torch.Generator(device=device)
        self.gen.manual_seed(seed)
        self.ar = torch.arange(args.seq + 1, device=device)

    def domain_weights(self):
        return {n: round(float(w), 4) for n, w in zip(self.names, self.weights.tolist())}

    def next(self, batch):
        torch = self.torch
        dom = torch.multinomial(self.weights, batch, replacement=True, generator=self.gen)
        r = torch.rand(batch, generator=self.gen, device=self.data.device, dtype=torch.float64)
        start = self.offsets[dom] + (r * self.span[dom].double()).long()
        win = self.data[start[:, None] + self.ar[None, :]]
        return win[:, :-1].contiguous(), win[:, 1:].contiguous()


def lm_loss(model, x, y):
    import torch
    out = model(input_ids=x, use_cache=False)
    logits = out.logits
    return torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]),
                                             y.reshape(-1))


@contextlib.contextmanager
def router_paused(stats):
    old = stats.enabled
    stats.enabled = False
    try:
        yield
    finally:
        stats.enabled = old


def evaluate(model, streams, split, seq, max_tokens, batch, device, stats=None):
    """Mean next-token NLL per domain over non-overlapping windows of the split's stream."""
    import torch
    res = {}
    ctx = router_paused(stats) if stats is not None else contextlib.nullcontext()
    was_training = model.training
    model.eval()
    with torch.no_grad(), ctx:
        for d in DOMAINS:
            arr = streams[d][split]
            n_win = min((arr.size - 1) // seq, max(1, max_tokens // seq))
            if n_win <= 0:
                continue
            t = torch.from_numpy(arr[:n_win * seq + 1].astype("int64")).to(device)
            xs = t[:-1].reshape(n_win, seq)
            ys = t[1:].reshape(n_win, seq)
            tot, cnt = 0.0, 0
            for i in range(0, n_win, batch):
                out = model(input_ids=xs[i:i + batch], use_cache=False)
                lf = out.logits.float()
                tot += torch.nn.functional.cross_entropy(
                    lf.reshape(-1, lf.shape[-1]), ys[i:i + batch].reshape(-1),
                    reduction="sum").item()
                cnt += ys[i:i + batch].numel()
            res[d] = {"nll": tot / cnt, "tokens": cnt}
    if was_training:
        model.train()
    return res


def pick_experts_impl(model, batcher, args, params, stats):
    import torch
    candidates = ["grouped_mm", "eager"] if args.experts_impl == "auto" else [args.experts_impl]
    best, best_t, notes = None, None, {}
    for impl in candidates:
        try:
            set_experts_impl(model, impl)
            times = []
            sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
            for i in range(4):
                sync()
                t = time.time()
                x, y = batcher.next(args.batch)
                stats.start_step()
                loss = lm_loss(model, x, y)
                aux = stats.aux_loss(loss)
                (loss + args.aux_coef * aux).backward()
                sync()
                times.append(time.time() - t)
            for p in params:
                p.grad = None
            step_t = min(times[1:])
            notes[impl] = round(step_t, 4)
            log(f"experts implementation {impl}: {step_t * 1000:.1f} ms per fwd+bwd "
                f"(loss {loss.item():.3f})")
            if best_t is None or step_t < best_t:
                best, best_t = impl, step_t
        except Exception as e:  # noqa: BLE001 - any failure just rules the candidate out
            notes[impl] = f"failed: {type(e).__name__}: {str(e)[:200]}"
            log(f"experts implementation {impl} failed: {notes[impl]}")
            for p in params:
                p.grad = None
    if best is None:
        raise SystemExit("no experts implementation works for training")
    set_experts_impl(model, best)
    return best, notes


def train(model, batcher, streams, args, device, stats, deadline, csv_path):
    import torch
    params = [p for p in model.parameters() if p.requires_grad]
    names = {id(p): n for n, p in model.named_parameters()}
    master = [p.detach().float().clone().requires_grad_(True) for p in params]
    decay = [m for p, m in zip(params, master) if p.dim() >= 2]
    no_decay = [m for p, m in zip(params, master) if p.dim() < 2]
    opt_kw = dict(lr=args.lr, betas=(0.9, 0.95), eps=1e-8)
    groups = [{"params": decay, "weight_decay": args.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    try:
        opt = torch.optim.AdamW(groups, fused=True, **opt_kw)
    except (TypeError, RuntimeError):
        opt = torch.optim.AdamW(groups, **opt_kw)
    del names

    impl, impl_notes = pick_experts_impl(model, batcher, args, params, stats)
    total_steps = args.steps
    step, tokens = 0, 0
    curve, held_curve = [], []
    t_start = time.time()
    budget = max(1.0, min(args.minutes * 60.0, deadline - t_start))
    log(f"training: budget {budget:.0f} s, batch {args.batch} x {args.seq} tokens")
    last_eval = t_start
    csv = open(csv_path, "w")
    csv.write("step,tokens,elapsed_s,lr,loss,aux_loss,grad_norm\n")
    ema = None
    loads_acc = None
    interrupted = None
    while True:
        now = time.time()
        elapsed = now - t_start
        if total_steps == 0 and step == 30:
            per = elapsed / 30.0
            total_steps = max(31, int(budget / per * 0.98))
            log(f"measured {per * 1000:.1f} ms/step -> schedule of {total_steps} steps")
        if total_steps and step >= total_steps:
            break
        if elapsed > budget * 1.03 and step > 0:
            log(f"wall-clock budget reached at step {step} (schedule was {total_steps})")
            break
        sched_total = total_steps if total_steps else max(args.warmup * 10, 1000)
        if step < args.warmup:
            lr = args.lr * (step + 1) / args.warmup
        else:
            prog = min(1.0, (step - args.warmup) / max(1, sched_total - args.warmup))
            lr = args.lr * (args.min_lr_ratio + (1 - args.min_lr_ratio) * 0.5 *
                            (1 + math.cos(math.pi * prog)))
        for g in opt.param_groups:
            g["lr"] = lr
        try:
            x, y = batcher.next(args.batch)
            stats.start_step()
            loss = lm_loss(model, x, y)
            aux = stats.aux_loss(loss)
            (loss + args.aux_coef * aux).backward()
            loads = stats.layer_loads()
            loads_acc = loads if loads_acc is None else loads_acc + loads
            for p, m in zip(params, master):
                m.grad = p.grad.float() if p.grad is not None else torch.zeros_like(m)
                p.grad = None
            gn = torch.nn.utils.clip_grad_norm_(master, 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            with torch.no_grad():
                for p, m in zip(params, master):
                    p.copy_(m)
        except Exception as e:  # noqa: BLE001 - keep what was trained so far and export it
            if step == 0:
                raise
            log(f"ERROR at step {step}: {type(e).__name__}: {e}; stopping training here")
            traceback.print_exc()
            interrupted = f"{type(e).__name__}: {e}"
            for p in params:
                p.grad = None
            break
        step += 1
        tokens += x.numel()
        if step % args.log_every == 0 or step == 1:
            lv, av, gv = loss.item(), aux.item(), gn.item()
            if not math.isfinite(lv):
                raise SystemExit(f"loss is {lv} at step {step}")
            ema = lv if ema is None else 0.9 * ema + 0.1 * lv
            curve.append({"step": step, "tokens": tokens, "elapsed_s": round(elapsed, 2),
                          "lr": lr, "loss": lv, "aux_loss": av, "grad_norm": gv})
            csv.write(f"{step},{tokens},{elapsed:.2f},{lr:.6g},{lv:.5f},{av:.5f},{gv:.4f}\n")
            if step % (args.log_every * 10) == 0 or step == 1:
                csv.flush()
                log(f"step {step}/{total_steps or '?'} loss {lv:.4f} (ema {ema:.4f}) aux {av:.4f}"
                    f" gn {gv:.3f} lr {lr:.2e} {tokens / max(elapsed, 1e-9) / 1e3:.0f}k tok/s")
        if time.time() - last_eval > args.eval_every_s:
            ev = evaluate(model, streams, "heldout", args.seq, 16 * args.seq, args.batch, device,
                          stats)
            held_curve.append({"step": step, "tokens": tokens,
                               **{d: round(v["nll"], 4) for d, v in ev.items()}})
            log("held-out nll: " + " ".join(f"{d}={v['nll']:.3f}" for d, v in ev.items()))
            last_eval = time.time()
    csv.close()
    with torch.no_grad():
        for p, m in zip(params, master):
            p.copy_(m)
    loads = (loads_acc / max(1, step)).float().cpu() if loads_acc is not None else None
    return {"steps": step, "tokens_seen": tokens, "train_seconds": round(time.time() - t_start, 1),
            "experts_implementation": impl, "experts_impl_timing": impl_notes,
            "loss_curve": curve, "heldout_curve": held_curve,
            "interrupted": interrupted, "expert_load": loads}


# ---------------------------------------------------------------------------------------------
# Export


def generation_config(ids):
    from transformers import GenerationConfig
    return GenerationConfig(bos_token_id=ids["<|endoftext|>"],
                            eos_token_id=[ids["<|endoftext|>"], ids["<|im_end|>"]],
                            pad_token_id=ids["<|endoftext|>"], do_sample=True, temperature=0.7,
                            top_k=20, top_p=0.9)


def save_model(model, tok, ids, model_dir, args):
    os.makedirs(model_dir, exist_ok=True)
    model.config.output_router_logits = False  # training-only; save_pretrained records dtype
    model.generation_config = generation_config(ids)
    model.save_pretrained(model_dir, max_shard_size="15MB")
    tok.save(os.path.join(model_dir, "tokenizer.json"))
    write_tokenizer_config(os.path.join(model_dir, "tokenizer_config.json"), tok, 2048)
    files = sorted(os.listdir(model_dir))
    info = {"files": {f: os.path.getsize(os.path.join(model_dir, f)) for f in files}}
    shards = [f for f in files if f.endswith(".safetensors")]
    info["shards"] = len(shards)
    info["max_shard_bytes"] = max(info["files"][f] for f in shards)
    info["total_bytes"] = sum(info["files"].values())
    names = []
    try:
        from safetensors import safe_open
        for f in shards:
            with safe_open(os.path.join(model_dir, f), framework="pt") as st:
                names += list(st.keys())
    except Exception as e:  # noqa: BLE001
        log(f"warning: could not list tensors: {e}")
    info["tensors"] = len(names)
    info["per_expert_layout"] = any(".mlp.experts.0.gate_proj.weight" in n for n in names)
    info["fused_layout"] = any(n.endswith("mlp.experts.gate_up_proj") for n in names)
    if info["max_shard_bytes"] > PART_BYTES:
        log(f"warning: a shard has {info['max_shard_bytes']} bytes")
    return info


def check_hf_tokenizer(model_dir, tok, samples):
    """Loads the saved folder with AutoTokenizer and compares it with `tokenizers` itself."""
    out = {}
    try:
        from transformers import AutoTokenizer
        hf = AutoTokenizer.from_pretrained(model_dir)
        mism = 0
        for s in samples:
            a = hf(s, add_special_tokens=True)["input_ids"]
            b = tok.encode(s, add_special_tokens=False).ids
            mism += a != b
        out["autotokenizer_class"] = type(hf).__name__
        out["autotokenizer_mismatches"] = int(mism)
        msgs = [{"role": "user", "content": "What does \"lantern\" mean?"}]
        r = hf.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True,
                                   enable_thinking=False)
        out["chat_prompt"] = r
        out["chat_prompt_ok"] = r == ("<|im_start|>user\nWhat does \"lantern\" mean?<|im_end|>\n"
                                      "<|im_start|>assistant\n<think>\n\n</think>\n\n")
    except Exception as e:  # noqa: BLE001
        out["error"] = f"{type(e).__name__}: {str(e)[:300]}"
    return out


def sample_prompts(corpus):
    held = corpus["scripture"]["heldout"][0] if corpus["scripture"]["heldout"] else ""
    prompts = [
        ("scripture (train)", "John 3\n\n16 For God so loved"),
        ("scripture (held-out chapter)", held[:held.find("\n", held.find("\n\n") + 2) + 3]
         if held else "Psalms 23\n\n1 The LORD is"),
        ("dictionary (GCIDE)", "Lantern, n."),
        ("dictionary (WordNet)", "lighthouse, beacon (noun):"),
        ("quotations", "A journey of a thousand miles"),
        ("C header", "#include <stdio.h>\n\nstatic int\ncount_lines(FILE *fp)\n{\n"),
        ("Python", "def fibonacci(n):\n    \"\"\""),
        ("man page", "ls(1)                       General Commands Manual                      "
                     "ls(1)\n\nNAME\n       ls - "),
        ("chat", "<|im_start|>user\nWhat does \"lantern\" mean?<|im_end|>\n<|im_start|>assistant"
                 "\n<think>\n\n</think>\n\n"),
        ("chat", "<|im_start|>user\nRecite Genesis 1:3.<|im_end|>\n<|im_start|>assistant\n"
                 "<think>\n\n</think>\n\n"),
    ]
    return prompts


def write_samples(model, tok, ids, prompts, path, device, seed, n_new):
    import torch
    eos = [ids["<|endoftext|>"], ids["<|im_end|>"]]
    model.eval()
    lines = []
    for label, prompt in prompts:
        enc = tok.encode(prompt, add_special_tokens=False).ids
        x = torch.tensor([enc], device=device)
        for mode in ["greedy", "sampled (T=0.8, top-k 40, seed %d)" % seed]:
            try:
                torch.manual_seed(seed)
                kw = dict(max_new_tokens=n_new, eos_token_id=eos, pad_token_id=eos[0],
                          attention_mask=torch.ones_like(x))
                if mode == "greedy":
                    kw.update(do_sample=False)
                else:
                    kw.update(do_sample=True, temperature=0.8, top_k=40, top_p=1.0)
                with torch.no_grad():
                    out = model.generate(x, **kw)
                text = tok.decode(out[0, len(enc):].tolist(), skip_special_tokens=False)
            except Exception as e:  # noqa: BLE001
                text = f"<generation failed: {type(e).__name__}: {str(e)[:200]}>"
            lines.append(f"### {label} — {mode}\n--- prompt ---\n{prompt}\n--- continuation ---\n"
                         f"{text}\n")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))


def fixture_passages(tok, corpus, n_tokens):
    """Held-out passages: from each domain's first held-out document long enough, starting at
    the first line start at or after 40% of the document."""
    out = []
    for d in ["scripture", "dictionary", "c_headers", "python"]:
        for text in corpus[d]["heldout"]:
            start = text.find("\n", int(len(text) * 0.4))
            start = 0 if start < 0 else start + 1
            ids = tok.encode(text[start:], add_special_tokens=False).ids
            if len(ids) >= n_tokens:
                ids = ids[:n_tokens]
                out.append({"name": d, "domain": d, "token_ids": ids,
                            "text": tok.decode(ids, skip_special_tokens=False)})
                break
    return out


def make_fixtures(model_dir, fixture_dir, passages, n_greedy):
    """Reloads the saved bf16 checkpoint in float32 on CPU (eager attention and experts) and
    records logits, router top-k per (position, MoE layer) and a greedy continuation."""
    import numpy as np
    import torch
    from transformers import Qwen3MoeForCausalLM
    os.makedirs(fixture_dir, exist_ok=True)
    kw = dict(attn_implementation="eager")
    model = None
    for extra in [dict(dtype=torch.float32, experts_implementation="eager"),
                  dict(torch_dtype=torch.float32, experts_implementation="eager"),
                  dict(dtype=torch.float32), dict(torch_dtype=torch.float32)]:
        try:
            model = Qwen3MoeForCausalLM.from_pretrained(model_dir, **kw, **extra)
            break
        except TypeError:
            continue
    if model is None:
        raise SystemExit("could not reload the saved model")
    try:
        set_experts_impl(model, "eager")
    except Exception:  # noqa: BLE001
        pass
    model = model.float().cpu().eval()
    impl = getattr(model.config, "_experts_implementation", "n/a")
    cfg = model.config
    k = cfg.num_experts_per_tok
    records = []
    gates = [(i, layer.mlp.gate) for i, layer in enumerate(model.model.layers)
             if hasattr(layer.mlp, "gate")]
    captured = {}
    mismatches, used_hf = [0], [False]

    def hook_for(layer_idx):
        def hook(module, args, kwargs, output):
            x = args[0] if args else next(iter(kwargs.values()))
            h = x.reshape(-1, x.shape[-1]).float()
            logits = torch.nn.functional.linear(h, module.weight.float())
            probs = torch.softmax(logits, dim=-1)
            top = torch.topk(probs, min(k + 1, probs.shape[-1]), dim=-1)
            w, idx = top.values[:, :k], top.indices[:, :k]
            if cfg.norm_topk_prob:
                w = w / w.sum(-1, keepdim=True)
            # Prefer what the router itself returned, when it has the expected form.
            if (isinstance(output, tuple) and len(output) >= 3
                    and getattr(output[2], "shape", None) == idx.shape):
                hf_idx = output[2].long()
                hf_w = output[1]
                if hf_w.shape != idx.shape:
                    hf_w = torch.gather(hf_w, 1, hf_idx)
                same = (hf_idx.sort(-1).values == idx.sort(-1).values).all(-1)
                mismatches[0] += int((~same).sum())
                idx, w = hf_idx, hf_w.float()
                used_hf[0] = True
            margin = (top.values[:, k - 1] - top.values[:, k]) if top.values.shape[1] > k else \
                torch.full((h.shape[0],), float("inf"))
            captured[layer_idx] = (idx.cpu(), w.cpu(), margin.cpu())
        return hook

    handles = [g.register_forward_hook(hook_for(i), with_kwargs=True) for i, g in gates]
    torch.set_grad_enabled(False)
    for p in passages:
        captured.clear()
        x = torch.tensor([p["token_ids"]])
        logits = model(input_ids=x, use_cache=False).logits[0].float()
        n, vocab = logits.shape
        name = p["name"]
        np.ascontiguousarray(logits.numpy().astype("<f4")).tofile(
            os.path.join(fixture_dir, f"{name}.logits.f32"))
        near_ties = []
        with open(os.path.join(fixture_dir, f"{name}.trace.jsonl"), "w") as f:
            for pos in range(n):
                for li, _ in gates:
                    idx, w, margin = captured[li]
                    f.write(json.dumps({"pos": pos, "layer": li,
                                        "experts": [int(e) for e in idx[pos].tolist()],
                                        "weights": [float(v) for v in w[pos].tolist()]}) + "\n")
                    if float(margin[pos]) < 1e-4:
                        near_ties.append({"pos": pos, "layer": li, "margin": float(margin[pos])})
        # Greedy continuation by full recomputation (no KV cache, no generation config).
        for h in handles:
            h.remove()
        seq = list(p["token_ids"])
        for _ in range(n_greedy):
            nxt = int(model(input_ids=torch.tensor([seq]), use_cache=False).logits[0, -1]
                      .argmax())
            seq.append(nxt)
        handles = [g.register_forward_hook(hook_for(i), with_kwargs=True) for i, g in gates]
        records.append({
            "name": name, "domain": p["domain"], "text": p["text"], "token_ids": p["token_ids"],
            "logits_file": f"{name}.logits.f32", "logits_shape": [n, vocab],
            "logits_format": "raw little-endian float32, row-major [tokens, vocab_size]",
            "max_abs_logit": float(logits.abs().max()),
            "trace_file": f"{name}.trace.jsonl",
            "greedy_continuation": seq[len(p["token_ids"]):],
            "router_near_ties": near_ties,
        })
    for h in handles:
        h.remove()
    meta = {"model": MODEL_DIR, "reference": "transformers Qwen3MoeForCausalLM reloaded from the "
            "bf16 safetensors in float32 on CPU, attn_implementation=eager, experts "
            f"implementation={impl}; router top-k in top-k order with renormalised weights",
            "torch": torch.__version__, "transformers": __import__("transformers").__version__,
            "passages": records}
    with open(os.path.join(fixture_dir, "fixtures.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1, ensure_ascii=False)
        f.write("\n")
    torch.set_grad_enabled(True)
    return {"passages": len(records), "experts_implementation": impl,
            "router_output_used": used_hf[0], "router_recompute_mismatches": mismatches[0]}


def model_card(metrics, cfg_summary):
    m = metrics
    lines = ["# qwen3-moe-ref: moestream's bundled reference model", "",
             "A small Qwen3-MoE (`Qwen3MoeForCausalLM`) trained from scratch by "
             "`scripts/refmodel/train.py` on the corpus of `scripts/refmodel/assemble_corpus.py` "
             "(see docs/reference_model.md for sources and licenses).", "",
             "## Architecture", ""]
    for k, v in cfg_summary.items():
        lines.append(f"- {k}: {v}")
    t = m.get("training", {})
    lines += ["", "## Training", "",
              f"- steps: {t.get('steps')}, tokens seen: {t.get('tokens_seen')}, "
              f"train time: {t.get('train_seconds')} s on {m.get('device')}",
              f"- batch {m['args']['batch']} x {m['args']['seq']} tokens, AdamW (0.9, 0.95), "
              f"peak lr {m['args']['lr']}, warmup {m['args']['warmup']}, cosine to "
              f"{m['args']['min_lr_ratio']} x peak, weight decay {m['args']['weight_decay']}, "
              f"grad clip 1.0, load-balancing loss x {m['args']['aux_coef']}, seed "
              f"{m['args']['seed']}",
              f"- domain sampling weights: {t.get('domain_weights')}", "",
              "Loss curve (training cross-entropy, every ~10% of the run; full curve in "
              "loss_curve.csv):", "", "| step | tokens | loss | aux |", "|---|---|---|---|"]
    curve = t.get("loss_curve", [])
    if curve:
        picks = sorted(set([0] + [int(i * (len(curve) - 1) / 10) for i in range(1, 11)]))
        for i in picks:
            c = curve[i]
            lines.append(f"| {c['step']} | {c['tokens']} | {c['loss']:.3f} | {c['aux_loss']:.3f} |")
    lines += ["", "## Held-out evaluation (same tokenizer)", "",
              "| domain | tokens | nll/token | perplexity | bits/byte | train-split ppl |",
              "|---|---|---|---|---|---|"]
    for d, v in m.get("heldout", {}).items():
        tr = m.get("train_eval", {}).get(d, {})
        lines.append(f"| {d} | {v['tokens']} | {v['nll']:.3f} | {v['ppl']:.2f} | "
                     f"{v.get('bits_per_byte', float('nan')):.3f} | "
                     f"{tr.get('ppl', float('nan')):.2f} |")
    lines += ["", "Sample continuations (greedy and sampled): samples.txt.", ""]
    return "\n".join(lines)


def pack(out_dir, stage):
    """Tars the staged tree and splits it into parts of at most PART_BYTES."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for root, dirs, files in os.walk(stage):
            dirs.sort()
            for f in sorted(files):
                full = os.path.join(root, f)
                arc = os.path.relpath(full, stage)
                ti = tf.gettarinfo(full, arcname=arc)
                ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname = 0, 0, 0, "", ""
                with open(full, "rb") as fh:
                    tf.addfile(ti, fh)
    data = buf.getvalue()
    for name in os.listdir(out_dir):
        if name.startswith("refmodel.tar."):
            os.remove(os.path.join(out_dir, name))
    parts = []
    for i in range(0, len(data), PART_BYTES):
        p = os.path.join(out_dir, f"refmodel.tar.{i // PART_BYTES:02d}")
        with open(p, "wb") as f:
            f.write(data[i:i + PART_BYTES])
        parts.append(os.path.basename(p))
    return parts, len(data)


# ---------------------------------------------------------------------------------------------


def main():
    global _LOG_FILE
    args = parse_args()
    if args.smoke:
        args.minutes = min(args.minutes, 5.0 / 60.0)
        args.eval_tokens = 4 * args.seq
        args.warmup = 5
        args.eval_every_s = 1e9
        args.tokenizer_sample_mb = 0.3
    deadline = T0 + args.total_minutes * 60.0 - args.reserve_s
    os.makedirs(args.out, exist_ok=True)
    _LOG_FILE = open(os.path.join(args.out, "train.log"), "w", encoding="utf-8")
    work = args.work or os.path.join(os.environ.get("TMPDIR", "/tmp"), "refmodel-work")
    shutil.rmtree(work, ignore_errors=True)
    stage = os.path.join(work, "stage")
    model_dir = os.path.join(stage, MODEL_DIR)
    fixture_dir = os.path.join(stage, FIXTURE_DIR)
    os.makedirs(model_dir)
    log(f"args: {vars(args)}")

    import numpy as np
    import torch
    import transformers
    log(f"torch {torch.__version__}, transformers {transformers.__version__}, numpy "
        f"{np.__version__}, cuda {torch.cuda.is_available()}")
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    metrics = {"args": vars(args), "torch": torch.__version__,
               "transformers": transformers.__version__,
               "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu"}

    corpus, manifest = load_corpus(args.corpus, args.smoke)
    metrics["corpus_manifest_total_bytes"] = manifest.get("total_bytes")
    log("corpus: " + ", ".join(f"{d} {len(corpus[d]['train'])}+{len(corpus[d]['heldout'])}"
                               for d in DOMAINS))

    # 1. Tokenizer.
    tok = train_tokenizer(corpus, args)
    tok_path = os.path.join(model_dir, "tokenizer.json")
    tok.save(tok_path)
    metrics["tokenizer"] = check_tokenizer_json(tok_path)
    ids = {t: tok.token_to_id(t) for t in SPECIAL_TOKENS + PLAIN_ADDED_TOKENS}
    probe = [corpus[d]["heldout"][0] for d in DOMAINS if corpus[d]["heldout"]]
    bad = [i for i, s in enumerate(probe)
           if tok.decode(tok.encode(s, add_special_tokens=False).ids,
                         skip_special_tokens=False) != s]
    if bad:
        raise SystemExit(f"tokenizer round trip failed on held-out docs {bad}")
    log(f"tokenizer: {metrics['tokenizer']}, added ids {ids}")
    streams, tstats = encode_domains(tok, corpus, ids["<|endoftext|>"])
    metrics["token_stats"] = tstats
    log("tokens: " + ", ".join(f"{k} {v['tokens']}" for k, v in tstats.items()
                               if k.endswith(".train")))

    # 2. Model.
    vocab = metrics["tokenizer"]["total"]
    vocab = (vocab + 63) // 64 * 64
    model = build_model(args, vocab, ids)
    init_weights(model, args.layers)
    n_params = sum(p.numel() for p in model.parameters())
    n_expert = sum(p.numel() for n, p in model.named_parameters() if ".experts." in n)
    n_active = n_params - n_expert + n_expert * args.top_k // args.experts
    log(f"model: {n_params:,} parameters ({n_params * 2 / 1e6:.2f} MB bf16), experts "
        f"{n_expert:,}, active per token ~{n_active:,}; vocab {vocab}")
    if n_params * 2 > args.max_bytes:
        raise SystemExit(f"model too large: {n_params * 2} bytes > {args.max_bytes}")
    metrics["parameters"] = {"total": n_params, "experts": n_expert, "active_per_token": n_active,
                             "bf16_bytes": n_params * 2}
    # bf16 weights, but RoPE inverse frequencies stay float32 as from_pretrained(dtype=bf16)
    # leaves them (a plain .to(bfloat16) would round them and train on slightly wrong angles).
    inv = {n: m.inv_freq.detach().float().clone() for n, m in model.named_modules()
           if isinstance(getattr(m, "inv_freq", None), torch.Tensor)}
    model = model.to(device=device, dtype=torch.bfloat16)
    for n, m in model.named_modules():
        if n in inv:
            m.inv_freq = inv[n].to(device)
    model.train()
    stats = RouterStats(model, args.experts, args.top_k)

    # 3. Training.
    batcher = Batcher(streams, args, device, args.seed)
    csv_path = os.path.join(model_dir, "loss_curve.csv")
    tr = train(model, batcher, streams, args, device, stats, deadline, csv_path)
    tr["domain_weights"] = batcher.domain_weights()
    loads = tr.pop("expert_load")
    if loads is not None:
        E = args.experts
        tr["expert_load_per_layer"] = [
            {"layer": i, "max_over_uniform": round(float(row.max()) * E, 3),
             "min_over_uniform": round(float(row.min()) * E, 3),
             "unused_experts": int((row * E < 0.05).sum())} for i, row in enumerate(loads)]
    metrics["training"] = tr
    log(f"trained {tr['steps']} steps, {tr['tokens_seen']:,} tokens in {tr['train_seconds']} s")
    stats.remove()

    # 4-6. Evaluation and export; each step is guarded so a failure still returns the rest.
    def guarded(label, fn):
        try:
            return fn()
        except SystemExit:
            raise
        except Exception as e:  # noqa: BLE001
            log(f"ERROR in {label}: {type(e).__name__}: {e}")
            traceback.print_exc()
            metrics.setdefault("errors", []).append(f"{label}: {type(e).__name__}: {e}")
            return None

    def final_eval():
        model.eval()
        held = evaluate(model, streams, "heldout", args.seq, args.eval_tokens, args.batch, device)
        trn = evaluate(model, streams, "train", args.seq, args.eval_tokens, args.batch, device)
        for d, v in held.items():
            v["ppl"] = math.exp(v["nll"])
            bpt = tstats[f"{d}.heldout"]["bytes_per_token"]
            v["bits_per_byte"] = v["nll"] / math.log(2) / bpt
        for d, v in trn.items():
            v["ppl"] = math.exp(v["nll"])
        metrics["heldout"], metrics["train_eval"] = held, trn
        log("held-out ppl: " + " ".join(f"{d}={v['ppl']:.2f}" for d, v in held.items()))
        log("train ppl:    " + " ".join(f"{d}={v['ppl']:.2f}" for d, v in trn.items()))
    guarded("evaluation", final_eval)

    save_info = guarded("save", lambda: save_model(model, tok, ids, model_dir, args))
    metrics["saved"] = save_info
    if save_info:
        log(f"saved {save_info['shards']} shards, {save_info['total_bytes'] / 1e6:.2f} MB, "
            f"{save_info['tensors']} tensors, per-expert layout {save_info['per_expert_layout']}")
    metrics["hf_tokenizer_check"] = guarded("tokenizer check", lambda: check_hf_tokenizer(
        model_dir, tok, probe + ["<|im_start|>user\nhi<|im_end|>\n<think>\n\n</think>"]))
    log(f"AutoTokenizer check: {metrics['hf_tokenizer_check']}")
    samples_path = os.path.join(model_dir, "samples.txt")
    guarded("samples", lambda: write_samples(model, tok, ids, sample_prompts(corpus), samples_path,
                                             device, args.seed, 20 if args.smoke else 80))
    model = None  # free GPU memory before the CPU reload
    if device == "cuda":
        torch.cuda.empty_cache()
    if save_info:
        metrics["fixtures"] = guarded("fixtures", lambda: make_fixtures(
            model_dir, fixture_dir, fixture_passages(tok, corpus, 32), 8 if args.smoke else 16))
        log(f"fixtures: {metrics['fixtures']}")

    cfg_summary = {"layers": args.layers, "hidden_size": args.hidden,
                   "attention": f"{args.heads} query heads / {args.kv_heads} KV heads (GQA), "
                                f"head_dim {args.head_dim}, QK-norm, RoPE theta 1e6",
                   "experts": f"{args.experts} per layer, top-{args.top_k}, "
                              f"moe_intermediate_size {args.expert_inter}, norm_topk_prob true",
                   "vocab": f"{vocab} rows ({metrics['tokenizer']['total']} tokenizer ids)",
                   "tie_word_embeddings": args.tie_embeddings,
                   "parameters": f"{n_params:,} ({n_params * 2 / 1e6:.2f} MB bf16), "
                                 f"~{n_active:,} active per token"}
    metrics["config_summary"] = cfg_summary
    metrics["total_seconds"] = round(time.time() - T0, 1)
    with open(os.path.join(model_dir, "metrics.json"), "w", encoding="utf-8") as f:
        json.dump(metrics, f, indent=1, ensure_ascii=False, default=str)
        f.write("\n")
    guarded("model card", lambda: open(os.path.join(model_dir, "README.md"), "w",
                                       encoding="utf-8").write(model_card(metrics, cfg_summary)))
    for f in ["metrics.json", "samples.txt"]:
        if os.path.exists(os.path.join(model_dir, f)):
            shutil.copy(os.path.join(model_dir, f), os.path.join(args.out, f))
    parts, size = pack(args.out, stage)
    log(f"packed {size / 1e6:.2f} MB into {parts} in {args.out}; "
        f"unpack with: cat refmodel.tar.* | tar -xm -C <repo root>")
    log(f"done in {time.time() - T0:.1f} s")


if __name__ == "__main__":
    main()
