#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The bundled reference model under `moestream bench` (docs/benchmarks.md): resident and
# streamed through --expert-cache at a few byte budgets, from the HF shards and from bf16/q8/q4
# stores, perplexity of bench/data/heldout_passages.txt per expert dtype. Configurations are
# interleaved round by round (the machine is shared and noisy); the table gives medians and
# ratios against the bf16-resident baseline of the same run.
#   bench/ref_model_bench.sh [--bin build/moestream] [--rounds 3] [--threads 2]
#       [--budgets "2M 6M"] [--out FILE.jsonl]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build/moestream rounds=3 threads=2 budgets="2M 6M" out=""
while [[ $# -gt 0 ]]; do
  case $1 in
    --bin) bin=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --budgets) budgets=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "ref_model_bench.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
work=$(mktemp -d /tmp/moe_refbench_XXXXXX)
trap 'rm -rf "$work"' EXIT
model=models/qwen3-moe-ref
for q in bf16 q8 q4; do
  args=(); [[ $q == bf16 ]] || args=(--quant "$q")
  "$bin" convert --model "$model" --out "$work/$q" --quiet "${args[@]}" 2>/dev/null
done
common=(--threads "$threads" --prompt-tokens 64 --decode-tokens 32 --repeat 3)
configs=("hf resident" "bf16 resident" "q8 resident" "q4 resident")
for b in $budgets; do
  configs+=("hf $b" "bf16 $b direct" "q8 $b direct" "q4 $b direct" "bf16 $b buffered")
done
jsonl=$work/all.jsonl
for q in bf16 q8 q4; do  # perplexity once per dtype (deterministic)
  "$bin" bench --model "$work/$q" --threads "$threads" --prompt-tokens 1 --decode-tokens 1 \
    --repeat 1 --ppl-text bench/data/heldout_passages.txt --ppl-window 128 |
    sed "s/^{/{\"label\":\"ppl $q\",/" >> "$jsonl"
done
for ((r = 0; r < rounds; ++r)); do
  first=1
  for c in "${configs[@]}"; do
    read -r src budget io <<< "$c"
    dir=$model; [[ $src == hf ]] || dir=$work/$src
    extra=(--measure-memory)
    [[ $first == 1 ]] || extra=()
    [[ $budget == resident ]] || extra+=(--expert-cache "$budget")
    [[ -z ${io:-} ]] || extra+=(--io "$io")
    "$bin" bench --model "$dir" "${common[@]}" "${extra[@]}" |
      sed "s/^{/{\"label\":\"$c\",\"round\":$r,/" >> "$jsonl"
    first=0
  done
done
[[ -z $out ]] || cp "$jsonl" "$out"
python3 - "$jsonl" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
ppl = {r["label"]: r for r in rows if r["label"].startswith("ppl ")}
runs = [r for r in rows if not r["label"].startswith("ppl ")]
mem = [r["measured_memory_gb_s"] for r in runs if "measured_memory_gb_s" in r]
first = runs[0]
print(f"target {first['simd_target']}, cpu {first['cpu']}, threads {first['threads']}, "
      f"commit {first['git_commit']}, memory read bandwidth per round (GB/s): "
      f"{', '.join(f'{m:.1f}' for m in mem)}")
base = ppl.get("ppl bf16")
for q in ("bf16", "q8", "q4"):
    if f"ppl {q}" in ppl:
        p = ppl[f"ppl {q}"]
        rel = (p["perplexity"] / base["perplexity"] - 1) * 100
        print(f"perplexity {q}: {p['perplexity']:.4f} over {p['ppl_tokens_predicted']} tokens "
              f"({rel:+.2f}% vs bf16)")
labels = list(dict.fromkeys(r["label"] for r in runs))
med = {l: {k: statistics.median(r[k] for r in runs if r["label"] == l)
           for k in ("decode_tok_s", "prefill_tok_s", "ttft_ms", "cache_hit_rate",
                     "bytes_read_per_token", "io_wait_share", "memory_gb_s", "disk_gb_s")}
       for l in labels}
b = med["bf16 resident"]["decode_tok_s"]
print(f"{'config':22} {'decode tok/s':>12} {'vs bf16 res':>11} {'prefill tok/s':>13} "
      f"{'TTFT ms':>8} {'hit':>6} {'read/tok KiB':>12} {'io-wait':>7} {'mem GB/s':>8} {'disk GB/s':>9}")
for l in labels:
    m = med[l]
    print(f"{l:22} {m['decode_tok_s']:12.2f} {m['decode_tok_s'] / b:11.2f} {m['prefill_tok_s']:13.1f} "
          f"{m['ttft_ms']:8.1f} {m['cache_hit_rate']:6.3f} {m['bytes_read_per_token'] / 1024:12.1f} "
          f"{m['io_wait_share']:7.3f} {m['memory_gb_s']:8.2f} {m['disk_gb_s']:9.3f}")
EOF
