#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Resident decode against the memory roofline (issue 7; docs/benchmarks.md): for each model
# folder or store, `moestream bench --measure-memory` (all experts resident) in interleaved
# rounds; prints per run decode tok/s, weight GB/s moved, the read bandwidth measured in the same
# process and the share of the roofline, then medians per model.
#   bench/resident_bench.sh [--rounds 3] [--threads 2] [--bin build/moestream]
#       [--prompt 64] [--decode 64] [--repeat 10] MODEL[:EXTRA-FLAGS]...
# A model argument may carry extra `moestream bench` flags after a colon, commas for spaces,
# e.g. /tmp/mid4_q8:--dense-quant,q8 (the row's label is the whole argument).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=3 threads=2 bin=build/moestream prompt=64 decode=64 repeat=10
while [[ $# -gt 0 ]]; do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --prompt) prompt=$2; shift 2 ;;
    --decode) decode=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    --*) echo "resident_bench.sh: unknown flag '$1'" >&2; exit 2 ;;
    *) break ;;
  esac
done
[[ $# -gt 0 ]] || { echo "usage: bench/resident_bench.sh [flags] MODEL..." >&2; exit 2; }
[[ -x $bin ]] || { echo "$bin: not built" >&2; exit 2; }
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for ((r = 1; r <= rounds; r++)); do
  for m in "$@"; do
    extra=()
    [[ $m == *:* ]] && IFS=, read -r -a extra <<< "${m#*:}"
    "$bin" bench --model "${m%%:*}" --threads "$threads" --prompt-tokens "$prompt" \
      --decode-tokens "$decode" --repeat "$repeat" --measure-memory "${extra[@]}" 2>/dev/null |
      python3 -c 'import json,sys; j=json.load(sys.stdin); j["model_arg"]=sys.argv[1]; print(json.dumps(j))' "$m" |
      tee -a "$out" | python3 bench/resident_row.py
  done
done
python3 - "$out" <<'PY'
import json, statistics, sys, collections
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    j = json.loads(line)
    runs[j["model_arg"]].append(j)
print("medians:")
for m, js in runs.items():
    med = lambda k: statistics.median(x[k] for x in js)
    print(f"{m:32} decode {med('decode_tok_s'):9.2f} tok/s  {med('memory_gb_s'):6.2f} GB/s  "
          f"share of roofline {100 * med('decode_share_of_memory_roofline'):5.1f}%  "
          f"(target {js[0]['simd_target']}, {js[0]['threads']} threads, commit {js[0]['git_commit'][:12]})")
PY
