#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes tests/data/tokenizer/utf8_lossy.json: random byte strings (hex) and Python's
bytes.decode("utf-8", "replace") of each (the same maximal-subpart substitution as Rust's
String::from_utf8_lossy, which HF's ByteLevel decoder uses), plus strict validity."""
import json
import os
import random

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
rng = random.Random(4242)
interesting = [0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF,
               0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xF8, 0xFE, 0xFF]
cases = []
for _ in range(3000):
    n = rng.randint(1, 10)
    b = bytes(rng.choice(interesting) if rng.random() < 0.8 else rng.randrange(256)
              for _ in range(n))
    cases.append(b)
for s in ["héllo", "日本", "🙂", "\U0010FFFF", "\ud7ff", "\ue000"]:
    e = s.encode("utf-8")
    cases += [e, e[:-1], e[1:], e + e[:1], e[:1] + e]
out = []
for b in cases:
    try:
        b.decode("utf-8")
        valid = True
    except UnicodeDecodeError:
        valid = False
    out.append({"hex": b.hex(), "lossy": b.decode("utf-8", "replace"), "valid": valid})
path = os.path.join(ROOT, "tests", "data", "tokenizer", "utf8_lossy.json")
with open(path, "w", encoding="utf-8") as f:
    f.write("[\n" + ",\n".join(json.dumps(x, ensure_ascii=False) for x in out) + "\n]\n")
print(f"wrote {path}: {len(out)} cases")
