#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""HF float32 reference for the bundled model over a long context (the engine's attention kernels'
key tiles and chunks many times over): logits at chosen positions of a ~700-token text
and a greedy continuation from its end (the decode path reading a long KV cache). Writes
long_context.json and long_context.logits.f32 into --out (tests/data/refmodel/). Runs on the GPU
machine, where torch and transformers are installed, on its CPU (float32, eager attention), as
train.py's make_fixtures does:

  python3 scripts/refmodel/long_context_fixture.py --out $OUT --text src/kernels/kernels.h"""
import argparse
import json
import os

import numpy as np
import torch
from tokenizers import Tokenizer
from transformers import Qwen3MoeForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="models/qwen3-moe-ref")
    ap.add_argument("--text", required=True, help="text file to tokenize (its first --tokens ids)")
    ap.add_argument("--tokens", type=int, default=700)
    ap.add_argument("--greedy", type=int, default=8)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    tok = Tokenizer.from_file(os.path.join(a.model, "tokenizer.json"))
    ids = tok.encode(open(a.text, encoding="utf-8").read()).ids[:a.tokens]
    if len(ids) < a.tokens:
        raise SystemExit(f"{a.text}: only {len(ids)} tokens, need {a.tokens}")
    model = None
    for extra in [dict(dtype=torch.float32, experts_implementation="eager"),
                  dict(dtype=torch.float32), dict(torch_dtype=torch.float32)]:
        try:
            model = Qwen3MoeForCausalLM.from_pretrained(a.model, attn_implementation="eager",
                                                        **extra)
            break
        except TypeError:
            continue
    model = model.float().cpu().eval()
    torch.set_grad_enabled(False)
    logits = model(input_ids=torch.tensor([ids]), use_cache=False).logits[0].float()
    n = len(ids)
    # Around tile and chunk boundaries (multiples of 16, 32, 128, 256) and the end.
    positions = sorted({0, 1, 254, 255, 256, 257, 300, 511, 512, 513} | set(range(n - 6, n)))
    rows = logits[positions]
    os.makedirs(a.out, exist_ok=True)
    np.ascontiguousarray(rows.numpy().astype("<f4")).tofile(
        os.path.join(a.out, "long_context.logits.f32"))
    seq, greedy = list(ids), []
    for _ in range(a.greedy):
        nxt = int(model(input_ids=torch.tensor([seq]), use_cache=False).logits[0, -1].argmax())
        greedy.append(nxt)
        seq.append(nxt)
    # The margin between the top two logits of each greedy step: a test may skip a near tie.
    margins = []
    for i in range(a.greedy):
        lg = model(input_ids=torch.tensor([seq[:n + i]]), use_cache=False).logits[0, -1]
        top = torch.topk(lg, 2).values
        margins.append(float(top[0] - top[1]))
    json.dump({"model": a.model, "text": a.text, "token_ids": ids, "positions": positions,
               "logits_file": "long_context.logits.f32",
               "logits_shape": [len(positions), int(logits.shape[1])],
               "logits_format": "raw little-endian float32, row-major [positions, vocab_size]",
               "max_abs_logit": float(rows.abs().max()),
               "greedy_continuation": greedy, "greedy_top2_margins": margins,
               "reference": "HF transformers, bf16 safetensors in float32 on CPU, "
                            "attn_implementation=eager, use_cache=False",
               "torch": torch.__version__,
               "transformers": __import__("transformers").__version__},
              open(os.path.join(a.out, "long_context.json"), "w"), indent=1)
    print("positions", positions, "greedy", greedy, "margins", [round(m, 3) for m in margins])


if __name__ == "__main__":
    main()
