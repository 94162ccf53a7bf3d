#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Cuts the committed held-out evaluation texts (tests/data/analysis/heldout/<domain>.txt) from the
reference corpus's held-out split (.refcorpus/<domain>.heldout.jsonl.gz, made by
scripts/refmodel/assemble_corpus.py). Deterministic: documents in file order, joined by one blank
line, cut at the first line end at or after --bytes bytes. Standard library only.

usage: python3 scripts/analysis_heldout.py [--corpus .refcorpus] [--out tests/data/analysis/heldout]
"""
import argparse
import gzip
import hashlib
import json
import os

DOMAINS = ["scripture", "dictionary", "quotations", "c_headers", "python", "manpages", "chat"]


def cut(path, limit):
    out = []
    size = 0
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            doc = json.loads(line)["text"]
            if out:
                out.append("\n")
                size += 1
            for piece in doc.splitlines(keepends=True):
                out.append(piece)
                size += len(piece.encode("utf-8"))
                if size >= limit:
                    return "".join(out).rstrip("\n") + "\n"
    return "".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", default=".refcorpus")
    ap.add_argument("--out", default="tests/data/analysis/heldout")
    ap.add_argument("--bytes", type=int, default=24000)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    manifest = json.load(open(os.path.join(a.corpus, "manifest.json")))
    sums = {}
    for d in DOMAINS:
        text = cut(os.path.join(a.corpus, d + ".heldout.jsonl.gz"), a.bytes)
        with open(os.path.join(a.out, d + ".txt"), "w", encoding="utf-8") as f:
            f.write(text)
        sums[d] = {
            "bytes": len(text.encode("utf-8")),
            "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
            "heldout_sha256": manifest["domains"][d]["heldout_sha256"],
            "packages": [s["package"] + " " + s["version"] for s in manifest["domains"][d]["sources"]],
        }
        print(d, sums[d]["bytes"])
    with open(os.path.join(a.out, "SOURCES.json"), "w") as f:
        json.dump({"rule": "documents of <domain>.heldout.jsonl.gz in order, joined by a blank "
                           "line, cut at the first line end at or after %d bytes" % a.bytes,
                   "heldout_rule": manifest.get("heldout_rule"), "domains": sums}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
