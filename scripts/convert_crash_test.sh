#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# kill -9 `moestream convert` at ≥ 20 random moments, resume each time, and check the final
# store is byte-identical to an uninterrupted conversion; then check that a changed source is
# not resumed but restarted (and still gives the same bytes).
# Usage: convert_crash_test.sh MOESTREAM_BIN FIXTURE_DIR WORK_DIR
set -euo pipefail
bin=$1; fixture=$2; work=$3
rm -rf "$work"; mkdir -p "$work"
cp -r "$fixture" "$work/src"
"$bin" convert --quiet --model "$work/src" --out "$work/ref"

same() {  # same DIR_A DIR_B: identical file lists and bytes
  diff <(cd "$1" && ls) <(cd "$2" && ls) >/dev/null && for f in "$1"/*; do
    cmp -s "$f" "$2/$(basename "$f")" || return 1; done
}

slow=15000  # µs per block
kills=0; completed=0; tries=0
while (( kills < 20 )); do
  (( ++tries <= 200 )) || { echo "FAIL: could not land 20 kills"; exit 1; }
  "$bin" convert --quiet --slow-us-per-block $slow --model "$work/src" --out "$work/out" \
      2>>"$work/log" &
  pid=$!
  sleep "$(awk -v r=$RANDOM 'BEGIN{printf "%.3f", r/32768*0.3}')"
  if kill -9 "$pid" 2>/dev/null; then
    wait "$pid" 2>/dev/null || true
    if [[ -d "$work/out" ]]; then  # finished just before the kill
      same "$work/ref" "$work/out" || { echo "FAIL: store differs after completion"; exit 1; }
      rm -rf "$work/out"; (( ++completed ))
    else
      (( ++kills ))
    fi
  else
    wait "$pid"  # finished before the kill: must have succeeded
    same "$work/ref" "$work/out" || { echo "FAIL: store differs"; exit 1; }
    rm -rf "$work/out"; (( ++completed ))
  fi
done
"$bin" convert --quiet --model "$work/src" --out "$work/out" 2>>"$work/log"
same "$work/ref" "$work/out" || { echo "FAIL: resumed store differs from the reference"; exit 1; }
[[ ! -e "$work/out.partial" ]] || { echo "FAIL: partial output left behind"; exit 1; }
grep -Eq " [1-9][0-9]* resumed" "$work/log" || { echo "FAIL: no run ever resumed journaled blocks"; exit 1; }

# A changed source (new mtime) must restart, not resume.
rm -rf "$work/out"
"$bin" convert --quiet --slow-us-per-block $slow --model "$work/src" --out "$work/out" 2>/dev/null &
pid=$!; sleep 0.1; kill -9 $pid; wait $pid 2>/dev/null || true
[[ -d "$work/out.partial" ]] || { echo "FAIL: no partial output to resume"; exit 1; }
touch "$work/src/config.json"
"$bin" convert --quiet --model "$work/src" --out "$work/out" 2>"$work/log2"
grep -q "source changed: restarted" "$work/log2" || { echo "FAIL: changed source resumed"; cat "$work/log2"; exit 1; }
same "$work/ref" "$work/out" || { echo "FAIL: restarted store differs"; exit 1; }
echo "OK: $kills kills, $completed completed runs, resumed output byte-identical"
rm -rf "$work"
