#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the libFuzzer targets (tests/fuzz/, clang-14, ASan+UBSan, build dir build-fuzz/) and
# runs each for a given time, one after the other, at nice 19.
# Usage: scripts/fuzz.sh SECONDS [MAX_RUNS] [TARGET...]
#   scripts/fuzz.sh 60                  60 s per target
#   scripts/fuzz.sh 300 10000000        up to 10^7 executions, capped at 300 s per target
#   scripts/fuzz.sh 30 0 cli_args       one target (MAX_RUNS 0 = no execution cap)
# Prints, per target: executions, exec/s, coverage (cov = edges, ft = features, from libFuzzer's
# last status line), corpus size and findings (crash/leak/timeout/oom artifacts written to
# build-fuzz/artifacts/<target>/). A finding is reproduced with
#   build-fuzz/tests/fuzz/fuzz_<target> <artifact>; fix it, then copy the artifact to
#   tests/fuzz/regressions/<target>/ so that fuzz_test replays it forever.
# Exit status: 0 when no target found anything, 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:?usage: scripts/fuzz.sh SECONDS [MAX_RUNS] [TARGET...]}
runs=${2:-0}
shift $(( $# >= 2 ? 2 : 1 ))
all=(safetensors_header shard_index hf_config tokenizer_json qwen_encode expert_store cli_args)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

bdir=build-fuzz
if [ ! -f "$bdir/build.ninja" ]; then
  CC=clang-14 CXX=clang++-14 cmake -S . -B "$bdir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DMOE_BUILD_FUZZ=ON -DMOE_BUILD_TESTS=OFF >/dev/null
fi
# FUZZ_TIMEOUT=S: per-input timeout (default 10 s, qwen_encode 120 s); raise it (e.g. 1200) when
# the fuzzers will be paused with SIGSTOP for benchmarks: libFuzzer's timeout is wall-clock.
# FUZZ_NO_BUILD=1: use the binaries as they are (e.g. while another build runs in build-fuzz/).
[ -n "${FUZZ_NO_BUILD:-}" ] ||
  nice -n 19 cmake --build "$bdir" --target "${targets[@]/#/fuzz_}" -j "$(nproc)" >/dev/null

declare -A max_len=([tokenizer_json]=16384 [qwen_encode]=4096 [safetensors_header]=8192
                    [shard_index]=4096 [hf_config]=8192 [expert_store]=4096 [cli_args]=256)
# qwen_encode loads the 11 MB Qwen3 tokenizer.json on its first input (seconds under ASan).
declare -A timeout=([qwen_encode]=120)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
total_findings=0
printf '%-20s %12s %9s %7s %7s %7s %9s\n' target executions exec/s cov ft corpus findings
for t in "${targets[@]}"; do
  work="$bdir/corpus/$t" art="$bdir/artifacts/$t" log="$bdir/logs/$t.log"
  mkdir -p "$work" "$art" "$(dirname "$log")"
  set +e
  TMPDIR=${TMPDIR:-/tmp} nice -n 19 "$bdir/tests/fuzz/fuzz_$t" -runs="$runs" -max_total_time="$secs" \
    -max_len="${max_len[$t]:-4096}" -rss_limit_mb=2048 -timeout="${FUZZ_TIMEOUT:-${timeout[$t]:-10}}" \
    -print_final_stats=1 -artifact_prefix="$art/" "$work" "tests/fuzz/corpus/$t" >"$log" 2>&1
  set -e
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  last=$(grep -aE '^#[0-9]+' "$log" | grep -aE ' cov: ' | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(find "$work" -type f | wc -l)
  findings=$(find "$art" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
                                    -o -name 'oom-*' -o -name 'slow-unit-*' \) | wc -l)
  total_findings=$((total_findings + findings))
  printf '%-20s %12s %9s %7s %7s %7s %9s\n' "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" \
    "${ft:-?}" "$corp" "$findings"
  if [ "$findings" -gt 0 ]; then
    find "$art" -type f | sed 's/^/    artifact: /'
    grep -a -m3 -E 'ERROR|invariant|runtime error' "$log" | sed 's/^/    /' || true
  fi
done
[ "$total_findings" -eq 0 ]
